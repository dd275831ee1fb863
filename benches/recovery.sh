#!/usr/bin/env bash
# Recovery rates alone: Voter over the wire in async mode for a while, kill -9, restart (log replay rate), then a
# clean stop and a restart (snapshot load rate). Quicker than durability.sh, which measures the three modes first.
#
#   benches/recovery.sh                      # 32 connections, 15 s of votes
#   CLIENTS=64 DURATION=20 benches/recovery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-15}
PORT=${PORT:-5498}
LANEDB_LOG=info
source benches/common.sh
start_lanedb "$PORT" --durability async --modules voter --connection-count-max 500
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -c "CALL initialize(6, 'A,B,C,D,E,F')" >/dev/null
(cd "$work" && pgbench -n -h 127.0.0.1 -p "$PORT" -U bench -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" \
    -f "$OLDPWD/benches/pgbench/vote_lanedb.sql" bench 2>&1) | grep '^tps'
stop_lanedb KILL
start_lanedb "$PORT" --durability async --modules voter
grep -o 'replayed .*' "$work/lanedb.log" || echo "replayed nothing"
stop_lanedb TERM
start_lanedb "$PORT" --durability async --modules voter
grep -o 'loaded snapshot .*' "$work/lanedb.log" || echo "no snapshot loaded"
stop_lanedb TERM
