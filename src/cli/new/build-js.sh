#!/usr/bin/env bash
# Builds STEP.js into STEP.wasm with componentize-js (npm, into a folder kept between
# runs), against the WIT in ./wit (world `step`), without wasi:http. ~15 s.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq nodejs npm
tools="${XDG_CACHE_HOME:-$HOME/.cache}/weir/componentize-js"
bin="$tools/node_modules/.bin/componentize-js"
if [ ! -x "$bin" ]; then
  echo "installing @bytecodealliance/componentize-js 0.23 from npm into $tools (once)" >&2
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund "@bytecodealliance/componentize-js@0.23")
fi
"$bin" --wit wit --world-name step -d http -d fetch-event -o STEP.wasm STEP.js >/dev/null
echo "built STEP.wasm"
