#!/usr/bin/env bash
# Makes sure moto's server (a local AWS endpoint, PyPI `moto[server]`) is installed in a
# venv of its own, kept between runs, and prints the absolute path of its `moto_server`
# executable as the last line on stdout; all progress goes to stderr. The Lambda step
# runtime's tests start it as `moto_server -H 127.0.0.1 -p PORT` (with -p 0 it picks a
# port and says ` * Running on http://127.0.0.1:PORT` on stderr) and call the Lambda
# Invoke API on it (no Docker: POST /moto-api/config {"lambda":{"use_docker":false}}).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

venv="${XDG_CACHE_HOME:-$HOME/.cache}/weir/moto-venv"
server="$venv/bin/moto_server"
# The check asks the venv's Python which moto and flask (the [server] extra) it has, so a
# half-done install, a venv whose Python has gone or another major version is made again.
have() {
  "$venv/bin/python" -c 'import importlib.metadata as m; m.version("flask"); print(m.version("moto"))' 2>/dev/null
}
if [[ "$(have)" != 5.* || ! -x "$server" ]]; then
  echo "moto: installing moto[server] 5 from PyPI into $venv (once; a local AWS Lambda endpoint for the lambda step tests)" >&2
  python3 -c 'import ensurepip' 2>/dev/null || "$root/scripts/need.sh" "moto needs a Python venv" python3-venv >&2
  mkdir -p "$(dirname "$venv")"
  python3 -m venv --clear "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]>=5,<6" >&2
fi
echo "moto: $(have) from $venv" >&2
cd "$venv/bin" && echo "$(pwd -P)/moto_server"
