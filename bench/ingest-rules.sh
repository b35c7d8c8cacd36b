#!/usr/bin/env bash
# Ingest throughput with 0, 1 and 20 active rules in the workspace (1 matching), PostgreSQL, one sitting.
# The three settings are interleaved over several rounds (the machine is shared and noisy); compare the
# medians. Usage: bench/ingest-rules.sh [postgres://postgres@127.0.0.1:5432] [requests] [rounds]
set -euo pipefail
server=${1:-postgres://postgres@127.0.0.1:5432}
requests=${2:-20000}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
bin=${HANDOFF_BIN:-$here/../target/release/handoff}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
  for rules in 0 1 20; do
    rate=$("$bin" bench ingest --database-url "$server/postgres" --requests "$requests" --rules "$rules" 2>/dev/null \
      | awk '/^requests/ {print $(NF-3)}')
    echo "round $round rules=$rules events/s=$rate"
  done
done
