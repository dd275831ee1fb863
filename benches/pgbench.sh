#!/usr/bin/env bash
# Side-by-side pgbench: LaneDB against PostgreSQL 15 on this machine, same scripts, same run.
#
#   benches/pgbench.sh                     # 1M rows, 16 and 64 clients, -M prepared, 20 s per run
#   ROWS=100000 DURATION=5 CLIENTS="16" MODES="simple extended prepared" benches/pgbench.sh
#   WIRE_THREADS=1 benches/pgbench.sh      # lanedb serve --wire-threads 1
#   LANEDB_FLAGS="--wire-slice-us 0" benches/pgbench.sh   # any other serve flags
#   TRANSPORT=unix benches/pgbench.sh      # pgbench over each server's Unix socket instead of loopback TCP
#   ROUNDS=5 DURATION=10 benches/pgbench.sh  # LaneDB and PostgreSQL alternately, 5 rounds each; median ratio
#
# Point SELECT by key (benches/pgbench/select.sql) and UPDATE by key (update.sql) on an `accounts` table shaped like
# pgbench's own. PostgreSQL runs from the Debian package on a temporary data directory. DURABILITY=async (the default)
# runs LaneDB with --durability async and PostgreSQL with synchronous_commit=off: neither waits for a disk flush.
# DURABILITY=sync runs both durable (--durability sync; synchronous_commit=on). Both get their latencies logged per
# transaction, from which p99 is computed. Prints one Markdown table row per run. With ROUNDS above 1 the two
# servers take turns, round after round, so a slow spell of the disk or CPU falls on both; after each
# configuration's rounds comes a line with the ratio of every round and their median.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"16 64"}
MODES=${MODES:-prepared}
SCRIPTS=${SCRIPTS:-"select update"}
LANEDB_PORT=${LANEDB_PORT:-5491}
PG_PORT=${PG_PORT:-5492}
DURABILITY=${DURABILITY:-async}
TRANSPORT=${TRANSPORT:-tcp}
ROUNDS=${ROUNDS:-1}
source benches/common.sh
if [ "$TRANSPORT" = unix ]; then
    mkdir -p "$work/lsock"
    LANEDB_FLAGS="${LANEDB_FLAGS:-} --unix-socket-dir $work/lsock"
fi
start_lanedb "$LANEDB_PORT" --durability "$DURABILITY" --modules none ${WIRE_THREADS:+--wire-threads $WIRE_THREADS} ${LANEDB_FLAGS:-}
if [ "$DURABILITY" = sync ]; then start_postgres "$PG_PORT" on; else start_postgres "$PG_PORT" off; fi

schema="CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, abalance INTEGER NOT NULL, filler VARCHAR(84))"
load="INSERT INTO accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, $ROWS) AS s(g)"
psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$LANEDB_PORT" -U bench -d bench \
    -c "$schema" -c "PARTITION TABLE accounts ON COLUMN aid" -c "$load"
psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -c "$schema" -c "$load" -c "VACUUM ANALYZE accounts"

echo "| server ($TRANSPORT) | script | mode | clients | tps | latency avg ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
for script in $SCRIPTS; do
  for mode in $MODES; do
    for clients in $CLIENTS; do
      ratios=()
      for round in $(seq "$ROUNDS"); do
        for server in lanedb postgres; do
          if [ "$server" = lanedb ]; then port=$LANEDB_PORT; user=bench; else port=$PG_PORT; user=postgres; fi
          host=127.0.0.1
          if [ "$TRANSPORT" = unix ]; then
              if [ "$server" = lanedb ]; then host=$work/lsock; else host=$work/pgsock; fi
          fi
          rm -f "$work"/pgbench_log.*
          out=$(cd "$work" && pgbench -n -h "$host" -p "$port" -U "$user" -M "$mode" -c "$clients" -j 2 \
              -T "$DURATION" -D rows="$ROWS" -f "$OLDPWD/benches/pgbench/$script.sql" -l --sampling-rate 0.1 \
              "$([ "$server" = lanedb ] && echo bench || echo postgres)" 2>&1) || { echo "$out" >&2; exit 1; }
          tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
          avg=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
          # Per-transaction log: field 3 is the latency in microseconds.
          p99=$(p99_ms)
          echo "| $server | $script | $mode | $clients | ${tps%.*} | $avg | $p99 |"
          if [ "$server" = lanedb ]; then
              lanedb_tps=$tps
          else
              ratios+=("$(awk -v a="$lanedb_tps" -v b="$tps" 'BEGIN {printf "%.2f", a / b}')")
          fi
        done
      done
      if [ "$ROUNDS" -gt 1 ]; then
          median=$(printf '%s\n' "${ratios[@]}" | sort -n \
              | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
          echo "| ratio | $script | $mode | $clients | rounds ${ratios[*]} | median ${median}x | |"
      fi
    done
  done
done
