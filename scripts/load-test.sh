#!/usr/bin/env bash
# The collector under the load generator (docs/benchmarks.md, "Decoding, merging and
# committing faster"; docs/deploy.md, "Sizing"): starts `modelwatch collect` on STORE (a
# SQLite path, emptied first, or a postgres:// URL of a database whose public schema is
# dropped first), posts N summaries over 16 connections with cli/examples/load_collector.rs,
# and prints the rate, the collector's and PostgreSQL's CPU per summary (from /proc), the
# commits, then how long the collector took to stop (the rollup of every stored window).
#
#   bash scripts/load-test.sh /tmp/load.db 10000
#   bash scripts/load-test.sh postgres://modelwatch:modelwatch@127.0.0.1:5432/modelwatch_load 10000
set -euo pipefail
store=${1:?usage: load-test.sh STORE [N]}
n=${2:-10000}
cd "$(dirname "$0")/.."
cargo build --release -q -p modelwatch-cli --bin modelwatch --example load_collector
case $store in
    postgres*) psql "$store" -qc "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" > /dev/null ;;
    *) rm -f "$store" "$store-wal" "$store-shm" ;;
esac
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }
pg_cpu() {
    local total=0 p
    for p in $(pgrep -x postgres || true); do total=$((total + $(cpu "$p"))); done
    echo "$total"
}
target/release/modelwatch collect --listen 127.0.0.1:9400 --api-key load-key --store "$store" \
    2> /tmp/modelwatch-load-test.log &
collector=$!
sleep 1.5
ticks=$(getconf CLK_TCK)
c0=$(cpu $collector); p0=$(pg_cpu)
target/release/examples/load_collector 127.0.0.1:9400 load-key "$n" 16 | tail -1
c1=$(cpu $collector); p1=$(pg_cpu)
commits=$(curl -s -H "Authorization: Bearer load-key" http://127.0.0.1:9400/metrics \
    | awk '/^modelwatch_store_commits/ {print $2}')
echo "collector CPU $(( (c1 - c0) * 1000000 / ticks / n )) us per summary," \
    "PostgreSQL CPU $(( (p1 - p0) * 1000000 / ticks / n )) us per summary, $commits commits"
t0=$(date +%s.%N)
kill -INT $collector
wait $collector || true
echo "stopped (rolling up every stored window) in $(echo "$(date +%s.%N) - $t0" | bc) s"
