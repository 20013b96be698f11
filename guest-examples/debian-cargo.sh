#!/usr/bin/env bash
# Builds a Rust guest crate with Debian's cargo and rustc (1.63, with the wasm32-wasi std),
# offline, against the crate sources Debian ships in /usr/share/cargo/registry (from the
# librust-*-dev packages): rustup has no wasm32 target here.
#   debian-cargo.sh CRATE_DIR ARTIFACT OUT   (ARTIFACT: the .wasm cargo makes; OUT: its name in out/)
set -euo pipefail
crate="$(cd "$1" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
"$root/scripts/need.sh" "Rust guests build offline with Debian's cargo and packaged crates" \
  cargo rustc libstd-rust-dev-wasm32 librust-serde-json-dev librust-serde-derive-dev
home="${CARGO_TARGET_DIR:-$root/target}/guest-cargo-home"
mkdir -p "$home"
cat > "$home/config.toml" <<'TOML'
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "/usr/share/cargo/registry"
[net]
offline = true
TOML
target="${CARGO_TARGET_DIR:-$root/target}/guest-$(basename "$crate")"
(cd "$crate" && CARGO_HOME="$home" RUSTC=/usr/bin/rustc /usr/bin/cargo build --quiet --release \
  --target wasm32-wasi --target-dir "$target")
mkdir -p "$here/out"
cp "$target/wasm32-wasi/release/$2" "$here/out/$3"
