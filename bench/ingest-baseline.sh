#!/usr/bin/env bash
# One sitting, side by side: the raw PostgreSQL ceiling (pgbench, one INSERT transaction per event,
# 32 clients) and Handoff's single-event ingest at 64 connections on PostgreSQL and on SQLite.
# Usage: bench/ingest-baseline.sh [postgres://postgres@127.0.0.1:5432] [requests]
set -euo pipefail
server=${1:-postgres://postgres@127.0.0.1:5432}
requests=${2:-30000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${HANDOFF_BIN:-$here/../target/release/handoff}
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== pgbench ceiling (32 clients, 15 s)"
"$here/pgbench-ingest.sh" "$server" 15
echo "== handoff bench ingest"
"$bin" bench ingest --database-url "$server/postgres" --requests "$requests"
"$bin" bench ingest --requests "$requests"
