#!/usr/bin/env bash
# Durability costs and recovery speed, over the wire with pgbench and the voter module.
#
#   benches/durability.sh                   # 64 connections, 20 s per mode
#   CLIENTS=16 DURATION=10 benches/durability.sh
#
# 1. Voter (`CALL vote(...)`, -M prepared) against `lanedb serve --durability sync|async|off`, one fresh server per
#    mode: tps, average and p99 latency. Sync mode answers a vote only once its command-log record is fsynced, so
#    it measures group commit; off is the in-memory ceiling.
# 2. Recovery: the sync-mode server is killed with SIGKILL and restarted; its log replay rate is read from the
#    start-up line. Then it is stopped cleanly (a snapshot) and started again: the snapshot load rate.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-20}
PORT=${PORT:-5496}
LANEDB_LOG=info
source benches/common.sh
names="Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman"

echo "| durability | clients | tps | latency avg ms | p99 ms |"
echo "|---|---|---|---|---|"
for mode in sync async off; do
    rm -rf "$work/lanedb"
    start_lanedb "$PORT" --durability "$mode" --modules voter --connection-count-max 500
    psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -c "CALL initialize(6, '$names')" >/dev/null
    rm -f "$work"/pgbench_log.*
    out=$(cd "$work" && pgbench -n -h 127.0.0.1 -p "$PORT" -U bench -M prepared -c "$CLIENTS" -j 2 \
        -T "$DURATION" -f "$OLDPWD/benches/pgbench/vote_lanedb.sql" -l --sampling-rate 0.1 bench 2>&1) \
        || { echo "$out" >&2; exit 1; }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    avg=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "| $mode | $CLIENTS | ${tps%.*} | $avg | $(p99_ms) |"
    if [ "$mode" = sync ]; then
        stop_lanedb KILL
        start_lanedb "$PORT" --durability sync --modules voter
        replay=$(grep -o 'replayed .*' "$work/lanedb.log" || echo "replayed nothing")
        stop_lanedb TERM
        start_lanedb "$PORT" --durability sync --modules voter
        load=$(grep -o 'loaded snapshot .*' "$work/lanedb.log" || echo "no snapshot loaded")
        votes=$(psql -X -A -t -h 127.0.0.1 -p "$PORT" -c 'SELECT count(*) FROM votes')
        recovery="after kill -9: $replay; after a clean stop: $load ($votes votes)"
    fi
    stop_lanedb TERM
done
echo
echo "recovery: $recovery"
