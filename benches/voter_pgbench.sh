#!/usr/bin/env bash
# Voter over the wire: pgbench `CALL vote(...)` against LaneDB's voter module, and `SELECT vote(...)` against the
# same logic as a PL/pgSQL function in PostgreSQL 15 (benches/pgbench/voter_postgres.sql), same machine, same run.
#
#   benches/voter_pgbench.sh                 # 64 connections, -M prepared, 20 s
#   CLIENTS="16 64" DURATION=10 benches/voter_pgbench.sh
#
# DURABILITY=async (the default): neither side waits for a disk flush (LaneDB --durability async, PostgreSQL
# synchronous_commit=off). DURABILITY=sync: both do (--durability sync, synchronous_commit=on).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-20}
LANEDB_PORT=${LANEDB_PORT:-5494}
PG_PORT=${PG_PORT:-5495}
DURABILITY=${DURABILITY:-async}
source benches/common.sh
start_lanedb "$LANEDB_PORT" --durability "$DURABILITY" --modules voter --connection-count-max 500
if [ "$DURABILITY" = sync ]; then start_postgres "$PG_PORT" on; else start_postgres "$PG_PORT" off; fi

names="Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman"
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LANEDB_PORT" -c "CALL initialize(6, '$names')" >/dev/null
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -f benches/pgbench/voter_postgres.sql
# The same area codes on both sides.
psql -q -X -h 127.0.0.1 -p "$LANEDB_PORT" -c "COPY area_code_state TO STDOUT" \
    | psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "COPY area_code_state FROM STDIN"

echo "| server | clients | tps | latency avg ms | p99 ms |"
echo "|---|---|---|---|---|"
for clients in $CLIENTS; do
    for server in lanedb postgres; do
        if [ "$server" = lanedb ]; then
            port=$LANEDB_PORT user=bench db=bench script=vote_lanedb.sql
        else
            port=$PG_PORT user=postgres db=postgres script=vote_postgres.sql
        fi
        rm -f "$work"/pgbench_log.*
        out=$(cd "$work" && pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -M prepared -c "$clients" -j 2 \
            -T "$DURATION" -f "$OLDPWD/benches/pgbench/$script" -l --sampling-rate 0.1 "$db" 2>&1) \
            || { echo "$out" >&2; exit 1; }
        tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
        avg=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
        p99=$(p99_ms)
        echo "| $server | $clients | ${tps%.*} | $avg | $p99 |"
    done
done
echo "votes: LaneDB $(psql -X -A -t -h 127.0.0.1 -p "$LANEDB_PORT" -c 'SELECT count(*) FROM votes'), PostgreSQL $(psql -X -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT count(*) FROM votes')"
