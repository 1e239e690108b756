#!/bin/sh
# Bring the database schema up to date, then run the container's command
# (serve.py's granian by default) as PID 1 so it receives stop signals directly.
set -eu

flask --app app:create_app db upgrade
# Create signing keys only if the mounted keys/ has none (idempotent; rotation is `flask keys rotate`).
flask --app app:create_app keys ensure

exec "$@"
