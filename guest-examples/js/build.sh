#!/usr/bin/env bash
# Builds the JavaScript steps into components with componentize-js (npm, installed
# into a folder of its own on first use, kept between runs): guest-examples/js/NAME.js ->
# guest-examples/out/js-NAME.wasm, against weir's WIT (world `step`), with wasi:http left
# out (`-d http -d fetch-event`). Built again only when the source is newer (~16 s each).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/../out"
mkdir -p "$out"
command -v npm >/dev/null || "$root/scripts/need.sh" "componentize-js comes from npm" nodejs npm
tools="${XDG_CACHE_HOME:-$HOME/.cache}/weir/componentize-js"
bin="$tools/node_modules/.bin/componentize-js"
if [ ! -x "$bin" ]; then
  echo "js guests: installing @bytecodealliance/componentize-js 0.23 from npm into $tools (once)"
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund "@bytecodealliance/componentize-js@0.23")
fi
for src in "$here"/*.js; do
  name="$(basename "$src" .js)"
  dest="$out/js-$name.wasm"
  if [ -f "$dest" ] && [ "$dest" -nt "$src" ]; then
    echo "js/$name.js -> out/js-$name.wasm is up to date"
    continue
  fi
  "$bin" --wit "$root/wit" --world-name step -d http -d fetch-event -o "$dest" "$src" >/dev/null
  echo "built js/$name.js -> out/js-$name.wasm (component, $(($(stat -c %s "$dest") / 1048576)) MiB)"
done
