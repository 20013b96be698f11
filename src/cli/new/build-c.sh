#!/usr/bin/env bash
# Builds STEP.c into STEP.wasm (a WASI preview1 module; weir wraps it into a component).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v clang >/dev/null || [ ! -e /usr/lib/wasm32-wasi/libc.a ]; then
  echo "installing clang lld wasi-libc libclang-rt-14-dev-wasm32 (apt) for the C step" >&2
  ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32
fi
clang --target=wasm32-wasi -O2 -Wl,--strip-all -o STEP.wasm STEP.c
echo "built STEP.wasm"
