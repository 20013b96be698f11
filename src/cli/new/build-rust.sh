#!/usr/bin/env bash
# Builds STEP.rs into STEP.wasm with Debian's rustc and its wasm32-wasi std (rustup has
# no wasm32 target here), called by its full path since rustup's comes first on PATH.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/wasm32-wasi ]; then
  echo "installing rustc libstd-rust-dev-wasm32 (apt) for the Rust step" >&2
  ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq rustc libstd-rust-dev-wasm32
fi
/usr/bin/rustc --target wasm32-wasi -O -C strip=symbols -o STEP.wasm STEP.rs
echo "built STEP.wasm"
