#!/usr/bin/env bash
# Fuzzes the event parser, the function parser/validator and CEL compile+evaluate with
# cargo-fuzz (libFuzzer), each for FUZZ_SECONDS (default 60). Seeds come from
# tests/fuzz-corpus/<target>/; an input that crashes a target is copied there, so the
# regular test suite (tests/fuzz_regressions.rs) replays it from then on.
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh [target …]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags; this machine has only a stable rustc.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/cache/weir-fuzz-target}"
secs="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event_parse function_parse cel_compile)
cd "$root/fuzz"
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  cp -n "$root/tests/fuzz-corpus/$t/"* "corpus/$t/" 2>/dev/null || true
  echo "== $t for ${secs}s"
  if ! cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>"/tmp/weir-fuzz-$t.log"; then
    status=1
    echo "!! $t crashed; inputs kept in tests/fuzz-corpus/$t/:"
    for a in "artifacts/$t"/*; do
      [ -f "$a" ] || continue
      cp "$a" "$root/tests/fuzz-corpus/$t/$(basename "$a")"
      echo "   $(basename "$a")"
    done
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "/tmp/weir-fuzz-$t.log" || tail -5 "/tmp/weir-fuzz-$t.log"
done
exit "$status"
