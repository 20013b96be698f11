#!/usr/bin/env bash
# Builds app.py into STEP.wasm with componentize-py (PyPI, into a venv kept between
# runs), against the WIT in ./wit (world `step`: a wasi:cli command). ~15 s.
set -euo pipefail
cd "$(dirname "$0")"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/weir/componentize-py-venv"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q '^componentize-py 0\.25\.'; then
  echo "installing componentize-py 0.25 from PyPI into $venv (once)" >&2
  python3 -c 'import ensurepip' 2>/dev/null || ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq python3-venv
  mkdir -p "$(dirname "$venv")"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py>=0.25,<0.26"
fi
"$venv/bin/componentize-py" -d wit -w step componentize app -o STEP.wasm >/dev/null
echo "built STEP.wasm"
