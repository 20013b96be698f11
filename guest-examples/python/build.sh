#!/usr/bin/env bash
# Builds the Python steps into components with componentize-py (PyPI, installed into a
# venv of its own on first use, kept between runs): guest-examples/python/NAME.py ->
# guest-examples/out/py-NAME.wasm, against weir's WIT: world `step` unless the source has a
# `# weir-world: typed-step` line. A component is built again only when its source is newer
# (each build takes ~14 s).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/../out"
mkdir -p "$out"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/weir/componentize-py-venv"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q '^componentize-py 0\.25\.'; then
  echo "python guests: installing componentize-py 0.25 from PyPI into $venv (once)"
  python3 -c 'import ensurepip' 2>/dev/null || "$root/scripts/need.sh" "componentize-py needs a Python venv" python3-venv
  mkdir -p "$(dirname "$venv")"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py>=0.25,<0.26"
fi
for src in "$here"/*.py; do
  name="$(basename "$src" .py)"
  dest="$out/py-$name.wasm"
  if [ -f "$dest" ] && [ "$dest" -nt "$src" ]; then
    echo "python/$name.py -> out/py-$name.wasm is up to date"
    continue
  fi
  world="$(sed -n 's/^# weir-world: *//p' "$src" | head -n 1)"
  world="${world:-step}"
  (cd "$here" && "$venv/bin/componentize-py" -d "$root/wit" -w "$world" componentize "$name" -o "$dest" >/dev/null)
  echo "built python/$name.py -> out/py-$name.wasm (world $world, $(($(stat -c %s "$dest") / 1048576)) MiB)"
done
