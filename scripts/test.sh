#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, PostgreSQL, lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --test
GATEWAY_TEST_PG_URL="$(bash scripts/postgres.sh)"
export GATEWAY_TEST_PG_URL

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
