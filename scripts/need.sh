#!/usr/bin/env bash
# Installs the Debian packages a script needs that are missing, saying what and why:
#   scripts/need.sh "<why>" pkg...
# As root it runs apt-get; otherwise through sudo when there is one; else it prints the
# exact command to run and fails.
set -euo pipefail
why="$1"; shift
need=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
((${#need[@]})) || exit 0
echo "installing ${need[*]} (apt) — $why"
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null; then
  sudo="sudo"
else
  echo "not root and no sudo: run this as root, then try again:" >&2
  echo "  apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
