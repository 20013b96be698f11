#!/usr/bin/env bash
# Builds every example step from source into guest-examples/out/.
#   C    -> WASI preview1 core modules (clang --target=wasm32-wasi); weir wraps them into
#           components when they are uploaded.
#   Rust -> WASI preview1 core modules (Debian's rustc --target wasm32-wasi; with
#           serde_json, Debian's cargo offline); rust-typed exports weir's typed entry point.
#   WAT -> components, with `weir componentize` (so this script builds weir first).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/out"
mkdir -p "$out"

# The guest toolchains come from Debian's packages: install the missing ones (as root, or
# through sudo), so that a fresh machine with only Rust needs nothing else.
"$root/scripts/need.sh" "the C and Rust guest toolchains" \
  clang lld wasi-libc libclang-rt-14-dev-wasm32 rustc libstd-rust-dev-wasm32
command -v clang >/dev/null || { echo "clang is missing: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2; exit 1; }
for src in "$here"/c/*.c; do
  name="$(basename "$src" .c)"
  clang --target=wasm32-wasi -O2 -Wall -Werror -Wno-unused-function -Wl,--strip-all -o "$out/$name.wasm" "$src"
  echo "built c/$name.c -> out/$name.wasm"
done

# Rust with Debian's own rustc (rustup has no wasm32 target here); by full path, since
# rustup's rustc comes first on PATH.
debian_rustc=/usr/bin/rustc
if [ ! -x "$debian_rustc" ] || [ ! -d /usr/lib/rustlib/wasm32-wasi ]; then
  echo "Debian's rustc for wasm32-wasi is missing: apt-get install rustc libstd-rust-dev-wasm32" >&2
  exit 1
fi
for src in "$here"/rust/*.rs; do
  name="$(basename "$src" .rs)"
  "$debian_rustc" --target wasm32-wasi -O -C strip=symbols -o "$out/$name.wasm" "$src"
  echo "built rust/$name.rs -> out/$name.wasm"
done

# The weir that componentizes, built after the packages above are in: with
# WEIR_PROFILE=release the release binary dev.sh then runs, else the debug build
# test.sh goes on to use (same features). Either way weir is built once.
if [ "${WEIR_PROFILE:-}" = release ]; then
  cargo build --manifest-path "$root/Cargo.toml" --release --bin weir
  weir="${CARGO_TARGET_DIR:-$root/target}/release/weir"
else
  cargo build --quiet --manifest-path "$root/Cargo.toml" --features fuzzing --bin weir
  weir="${CARGO_TARGET_DIR:-$root/target}/debug/weir"
fi
for src in "$here"/wat/*.wat; do
  name="$(basename "$src" .wat)"
  "$weir" componentize "$src" -o "$out/$name.wasm" 2>/dev/null
  echo "built wat/$name.wat -> out/$name.wasm (component)"
done

# Python, with componentize-py from PyPI (a venv of its own).
"$here/python/build.sh"

# Rust with serde_json, offline with Debian's cargo and packaged crates: a command, and a
# typed step (world typed-step, a core module weir wraps when it is uploaded).
"$here/rust-serde/build.sh"
"$here/rust-typed/build.sh"

# JavaScript, with componentize-js from npm.
"$here/js/build.sh"
