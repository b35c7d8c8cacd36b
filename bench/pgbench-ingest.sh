#!/usr/bin/env bash
# Measures the raw PostgreSQL ceiling for ingest (one INSERT transaction per event, 32 clients) in a
# scratch database, for comparison with `handoff bench ingest`. Usage:
#   bench/pgbench-ingest.sh [postgres://postgres@127.0.0.1:5432] [seconds]
set -euo pipefail
server=${1:-postgres://postgres@127.0.0.1:5432}
seconds=${2:-15}
here=$(cd "$(dirname "$0")" && pwd)
db=handoff_pgbench_$$
bin=${HANDOFF_BIN:-$here/../target/release/handoff}
psql "$server/postgres" -qc "CREATE DATABASE $db"
trap 'psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
export DATABASE_URL="$server/$db"
export HANDOFF__SECURITY__MASTER_KEY=$(head -c 32 /dev/urandom | base64)
ids=$("$bin" admin init --json 2>/dev/null | tail -n 1)
org=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["organization_id"])' "$ids")
ws=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["workspace_id"])' "$ids")
pgbench -n -c 32 -j 2 -T "$seconds" -D org="'$org'" -D ws="'$ws'" -f "$here/pgbench-events.sql" "$DATABASE_URL" \
  | grep -E 'number of transactions actually processed|latency average|^tps'
