#!/usr/bin/env bash
# Fuzzes the real `weir dev` binary with schemathesis: every operation of its own
# /openapi.json gets generated inputs (valid and invalid), and any 5xx fails the run — a
# bad input must be a 4xx JSON error with a stable code. Every reply is also checked
# against the document (status code, content type, headers, body schema), so the
# document cannot drift from what weir returns. `GET /v1/stream` is left out: it is an
# endless Server-Sent Events stream. Extra arguments go to `st run` (e.g. --seed N).
#
# WEIR_BIN: the binary to test (default: the debug build, as test.sh builds it).
# WEIR_SCHEMATHESIS_EXAMPLES: test cases per operation and phase (default 30).
# WEIR_SCHEMATHESIS_CHECKS: the checks (default: no 5xx, and replies as documented).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

weir="${WEIR_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/weir}"
if [[ -z "${WEIR_BIN:-}" ]]; then
  # The features test.sh and guest-examples/build.sh build with, so nothing is rebuilt.
  cargo build --quiet --features fuzzing --bin weir
fi

# schemathesis comes from PyPI into a venv of its own, kept between runs.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/weir/venv"
if ! "$venv/bin/st" --version >/dev/null 2>&1; then
  echo "schemathesis: installing schemathesis 4 from PyPI into $venv (once; it fuzzes weir's HTTP API from its OpenAPI document)"
  python3 -c 'import ensurepip' 2>/dev/null || "$root/scripts/need.sh" "schemathesis needs a Python venv" python3-venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi
echo "schemathesis: $("$venv/bin/st" --version) from $venv"

tmp="$(mktemp -d)"
pid=""
stop() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap stop EXIT
mkdir -p "$tmp/functions"

# A fresh store, an empty functions dir, and a port of its own (0: the OS picks one;
# weir prints it).
WEIR_LOG="${WEIR_LOG:-weir=warn}" "$weir" dev --port 0 --data-dir "$tmp/data" \
  --functions "$tmp/functions" >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!

deadline=$((SECONDS + 60))
url=""
until [[ -n "$url" ]]; do
  url="$(sed -n 's|.*API \(http://[^/ ]*\)/v1.*|\1|p' "$tmp/stdout" | head -n1)"
  if [[ -z "$url" ]]; then
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
      echo "schemathesis: weir dev did not become ready:" >&2
      cat "$tmp/stdout" "$tmp/stderr" >&2
      exit 1
    fi
    sleep 0.1
  fi
done
until curl -fsS "$url/health" >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then
    echo "schemathesis: $url/health did not answer" >&2
    exit 1
  fi
  sleep 0.1
done
echo "schemathesis: weir dev at $url (data in $tmp)"

# Something to find: a component, a function with two versions and a rollout (its runs
# wait for a second event, so users have waiting runs), a warn-mode schema, events of
# three users (one against the schema), and a dry-run replay. Generated requests then
# reach stored things through the ids the listings return, not only 404s.
call() {
  local method="$1" path="$2"
  shift 2
  curl -fsS -X "$method" "$url$path" -H "Content-Type: application/json" "$@" >/dev/null || {
    echo "schemathesis: seeding failed at $method $path" >&2
    exit 1
  }
}
"$weir" componentize guest-examples/wat/echo.wat -o "$tmp/echo.wasm" 2>/dev/null
sha="$(sha256sum "$tmp/echo.wasm" | cut -d' ' -f1)"
call PUT "/v1/components/$sha" --data-binary "@$tmp/echo.wasm"
for name in "Sign-up" "Sign-up, v2"; do
  call POST /v1/functions --data "{\"id\": \"signup\", \"name\": \"$name\",
    \"triggers\": [{\"event\": \"user/signed.up\"}],
    \"steps\": {\"greet\": {\"path\": \"sha256:$sha\"},
      \"verify\": {\"path\": \"sha256:$sha\", \"after\": [{\"step\": \"greet\",
        \"async\": {\"event\": \"user/verified\", \"match\": \"event.user.id == async.user.id\", \"ttl\": \"1h\"}}]}}}"
done
call PUT /v1/functions/signup/rollout --data '{"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}'
call PUT /v1/schemas/user/signed.up --data '{"v": "1", "mode": "warn", "schema": {"type": "object", "properties": {"plan": {"type": "string"}}}}'
call POST /e/seed --data '[{"name": "user/signed.up", "data": {"plan": "pro"}, "user": {"id": "u1", "email": "a@b.c"}},
  {"name": "user/signed.up", "data": {"plan": "free"}, "user": {"id": "u2"}, "id": "once"},
  {"name": "user/signed.up", "data": {"plan": 5}, "user": {"id": "u3"}}]'
call POST /v1/replays --data '{"function": "signup", "mode": "dry_run"}'

# Run from the temp dir so schemathesis's example database stays out of the checkout.
started=$SECONDS
status=0
(
  cd "$tmp"
  "$venv/bin/st" run "$url/openapi.json" \
    --checks "${WEIR_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}" \
    --exclude-path /v1/stream \
    --max-examples "${WEIR_SCHEMATHESIS_EXAMPLES:-30}" \
    --header "Authorization: Bearer weir-dev" \
    --generation-database none \
    --no-color \
    "$@" | tee "$tmp/st.log"
) || status=$?
cases="$(grep -Eo '[0-9]+ generated' "$tmp/st.log" | tail -n1 | grep -Eo '[0-9]+' || echo '?')"
echo "schemathesis: ${cases} test cases in $((SECONDS - started)) s, exit status $status"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: weir dev died during the run:" >&2
  cat "$tmp/stderr" >&2
  status=1
fi
if ((status != 0)); then
  echo "schemathesis: weir's log:" >&2
  tail -n 50 "$tmp/stderr" >&2
fi
exit "$status"
