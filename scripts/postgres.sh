#!/usr/bin/env bash
# Make sure the local PostgreSQL cluster is running and accepting connections; print the URL tests use.
# Idempotent: does nothing but wait and print when the cluster is already up.
#   PG_VERSION / PG_CLUSTER pick the cluster (default: the first one pg_lsclusters lists, else 15/main).
#   GATEWAY_TEST_PG_URL overrides the printed URL (for a server elsewhere).
set -euo pipefail

timeout_s="${PG_WAIT_SECONDS:-60}"

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "postgres.sh: pg_lsclusters not found; install the postgresql package (Debian/Ubuntu)" >&2
  exit 1
fi

read -r version cluster port status < <(
  pg_lsclusters --no-header | awk -v v="${PG_VERSION:-}" -v c="${PG_CLUSTER:-}" \
    '(v == "" || $1 == v) && (c == "" || $2 == c) {print $1, $2, $3, $4; exit}'
) || true
if [[ -z "${version:-}" ]]; then
  echo "postgres.sh: no PostgreSQL cluster found (pg_createcluster ${PG_VERSION:-15} main --start)" >&2
  exit 1
fi

run_as_postgres() {
  if [[ "$(id -un)" == "postgres" ]]; then "$@"; elif [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if [[ "$status" != online* ]]; then
  echo "postgres.sh: starting cluster $version/$cluster" >&2
  if [[ "$(id -u)" == "0" ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
  else
    run_as_postgres pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
  fi
fi

deadline=$((SECONDS + timeout_s))
until pg_isready -q -h 127.0.0.1 -p "$port"; do
  if ((SECONDS >= deadline)); then
    echo "postgres.sh: cluster $version/$cluster not accepting connections after ${timeout_s}s" >&2
    exit 1
  fi
  sleep 0.2
done

echo "${GATEWAY_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:${port}/postgres}"
