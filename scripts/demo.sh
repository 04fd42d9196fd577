#!/usr/bin/env bash
# The main job on embedded defaults: set up, then the Bright Smile Dental receptionist answers a
# demo SIP call (SQLite metrics in gateway.db, local models, everything on 127.0.0.1) and the
# call's timeline is printed from the database. Extra arguments go to `gateway demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gateway demo "$@"
