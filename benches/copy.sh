#!/usr/bin/env bash
# Bulk loading with COPY, side by side: psql's `\copy` of one CSV file into LaneDB (durability sync) and into
# PostgreSQL 15 (synchronous_commit on), then LaneDB killed with SIGKILL and restarted from its command log.
#
#   benches/copy.sh              # 1,000,000 rows of pgbench's accounts shape (about 96 MB of CSV)
#   ROWS=200000 benches/copy.sh
#
# Reports the load time and rows/s of each, LaneDB's peak resident memory over the load, and its restart time
# (start to first answered query) with the log replay line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
PORT=${PORT:-5497}
PG_PORT=${PG_PORT:-5498}
LANEDB_LOG=info
source benches/common.sh
csv="$work/accounts.csv"
python3 -c "
import sys
filler = 'x' * 84
with open(sys.argv[1], 'w') as f:
    for i in range(1, int(sys.argv[2]) + 1):
        f.write(f'{i},{(i - 1) // 100000 + 1},0,{filler}\n')
" "$csv" "$ROWS"
chmod 644 "$csv"
ddl="CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, abalance INTEGER NOT NULL, filler VARCHAR(84))"
seconds() { python3 -c 'import time; print(time.monotonic())'; }
load() { # load PORT USER: prints the seconds \copy took
    local start end
    start=$(seconds)
    psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "$2" -d postgres \
        -c "\\copy accounts from '$csv' with (format csv)" >/dev/null
    end=$(seconds)
    python3 -c "print(f'{$end - $start:.2f}')"
}
rate() { python3 -c "print(f'{$ROWS / $1:,.0f}')"; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

start_lanedb "$PORT" --durability sync --modules none
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -c "$ddl; PARTITION TABLE accounts ON COLUMN aid"
before=$(peak_mib "$lanedb_pid")
lanedb_s=$(load "$PORT" bench)
lanedb_peak=$(peak_mib "$lanedb_pid")
stop_lanedb KILL
start=$(seconds)
start_lanedb "$PORT" --durability sync --modules none
restart_s=$(python3 -c "print(f'{$(seconds) - $start:.2f}')")
count=$(psql -X -At -h 127.0.0.1 -p "$PORT" -c "SELECT count(*) FROM accounts")
[ "$count" = "$ROWS" ] || { echo "LaneDB holds $count rows after the restart, not $ROWS" >&2; exit 1; }
replay=$(grep -o 'replayed .*' "$work/lanedb.log" | tail -1 || echo "replayed nothing")
stop_lanedb TERM

start_postgres "$PG_PORT" on
psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$ddl"
pg_s=$(load "$PG_PORT" postgres)

echo "CSV: $ROWS rows, $(du -m "$csv" | cut -f1) MB"
echo "| server | load s | rows/s | peak memory MiB |"
echo "|---|---|---|---|"
echo "| LaneDB | $lanedb_s | $(rate "$lanedb_s") | $lanedb_peak (from $before) |"
echo "| PostgreSQL | $pg_s | $(rate "$pg_s") | |"
echo "LaneDB after kill -9: $count rows, answering $restart_s s after start; $replay"
