#!/usr/bin/env bash
# The system programs the test suite needs, beside the Python packages in the venv:
#   /usr/bin/chromium  tests/live drive Debian's Chromium through playwright (never `playwright install`)
#   redis-server       fault tests start a Redis of their own on a free port
#   initdb, pg_ctl     fault tests start a PostgreSQL of their own on a free port
# Installs what is missing with apt when it can (root on Debian); otherwise stops with one line
# saying what to install, before any test runs.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "=== installing ${missing[*]} for the test suite ===" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  exit 0
fi
echo "make test needs these Debian packages, not installed here: ${missing[*]} (apt-get install ${missing[*]})" >&2
exit 1
