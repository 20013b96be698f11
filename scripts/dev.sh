#!/usr/bin/env bash
# Builds the example guests and starts `weir dev` on the example functions in ./functions.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# One build of weir (release, after build.sh has installed the packages it needs): it
# componentizes the WAT guests and then serves.
WEIR_PROFILE=release ./guest-examples/build.sh
exec "${CARGO_TARGET_DIR:-$root/target}/release/weir" dev "$@"
