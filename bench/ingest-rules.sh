#!/usr/bin/env bash
# Ingest throughput with 0, 1 and 20 active rules in the workspace (1 matching), one sitting, PostgreSQL.
# Usage: bench/ingest-rules.sh [postgres://postgres@127.0.0.1:5432] [requests]
set -euo pipefail
server=${1:-postgres://postgres@127.0.0.1:5432}
requests=${2:-30000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${HANDOFF_BIN:-$here/../target/release/handoff}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for rules in 0 1 20; do
  "$bin" bench ingest --database-url "$server/postgres" --requests "$requests" --rules "$rules"
done
