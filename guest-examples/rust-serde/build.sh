#!/usr/bin/env bash
# Builds the serde guest: Debian's cargo and rustc (1.63, with the wasm32-wasi std),
# offline, against the crate sources Debian ships in /usr/share/cargo/registry
# (librust-serde-json-dev, librust-serde-derive-dev) -> guest-examples/out/serde-greet.wasm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$root/scripts/need.sh" "the Rust serde guest builds offline with Debian's cargo and packaged crates" \
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
(cd "$here" && CARGO_HOME="$home" RUSTC=/usr/bin/rustc /usr/bin/cargo build --quiet --release \
  --target wasm32-wasi --target-dir "${CARGO_TARGET_DIR:-$root/target}/guest-rust-serde")
cp "${CARGO_TARGET_DIR:-$root/target}/guest-rust-serde/wasm32-wasi/release/serde-greet.wasm" "$here/../out/serde-greet.wasm"
echo "built rust-serde (serde_json) -> out/serde-greet.wasm"
