#!/usr/bin/env bash
# A snapshot of a big table while Voter runs over the wire: how much the snapshot costs the lanes.
#
#   benches/snapshot_under_load.sh           # 10M rows, 64 connections, 20 s per run
#   ROWS=1000000 DURATION=10 benches/snapshot_under_load.sh
#
# Loads ROWS rows into a partitioned table, then runs pgbench `CALL vote(...)` twice: once undisturbed, once with a
# CHECKPOINT issued a quarter into the run. Prints both throughputs, the snapshot's size and time (from the server
# log), and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-20}
PORT=${PORT:-5493}
LANEDB_LOG=info
source benches/common.sh
names="Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman"
start_lanedb "$PORT" --durability sync --modules voter --connection-count-max 500 --snapshot-interval-s 0 \
    --snapshot-log-bytes-max 0
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -c "CALL initialize(6, '$names')" \
    -c "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(20))" \
    -c "PARTITION TABLE big ON COLUMN id" \
    -c "INSERT INTO big SELECT g, g * 7, 'row' FROM generate_series(1, $ROWS) AS s(g)" >/dev/null
run() {
    (cd "$work" && pgbench -n -h 127.0.0.1 -p "$PORT" -U bench -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" \
        -f "$OLDPWD/benches/pgbench/vote_lanedb.sql" bench 2>&1) | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1
}
quiet=$(run)
(sleep $((DURATION / 4)); psql -q -X -h 127.0.0.1 -p "$PORT" -c CHECKPOINT) &
checkpoint=$!
during=$(run)
wait "$checkpoint"
snapshot=$(grep -o 'snapshot [0-9]*: .*' "$work/lanedb.log" | tail -1)
echo "rows $ROWS, $CLIENTS clients, $DURATION s: Voter ${quiet%.*} tps undisturbed, ${during%.*} tps with a snapshot" \
    "($(awk "BEGIN {printf \"%.0f\", 100 * $during / $quiet}")%); $snapshot"
