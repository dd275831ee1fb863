#!/usr/bin/env bash
# Voter over the wire: pgbench `CALL vote(...)` against LaneDB's voter module, and `SELECT vote(...)` against the
# same logic as a PL/pgSQL function in PostgreSQL 15 (benches/pgbench/voter_postgres.sql), same machine, same run.
#
#   benches/voter_pgbench.sh                 # 64 connections, -M prepared, 20 s
#   CLIENTS="16 64" DURATION=10 benches/voter_pgbench.sh
#
# Neither side waits for a disk flush: LaneDB has no command log yet; PostgreSQL runs synchronous_commit=off.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-64}
DURATION=${DURATION:-20}
LANEDB_PORT=${LANEDB_PORT:-5494}
PG_PORT=${PG_PORT:-5495}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if ! test -x "$PG_BIN/postgres" || ! command -v pgbench >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
cargo build --release --bin lanedb --quiet
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
    [ -n "${lanedb_pid:-}" ] && kill "$lanedb_pid" 2>/dev/null || true
    [ -d "$work/pg" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$CARGO_TARGET_DIR/release/lanedb" serve --listen "127.0.0.1:$LANEDB_PORT" --data-dir "$work/lanedb" \
    --modules voter --connection-count-max 500 --log warn 2>"$work/lanedb.log" &
lanedb_pid=$!
install -d -o postgres "$work/pg" "$work/pgsock"
runuser -u postgres -- "$PG_BIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pgsock/pg.log" -w start -o \
    "-p $PG_PORT -k $work/pgsock -c listen_addresses=127.0.0.1 -c synchronous_commit=off -c shared_buffers=1GB -c max_connections=300" >/dev/null
for _ in $(seq 50); do psql -h 127.0.0.1 -p "$LANEDB_PORT" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

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
        p99=$(cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", a[i]/1000}')
        echo "| $server | $clients | ${tps%.*} | $avg | $p99 |"
    done
done
echo "votes: LaneDB $(psql -X -A -t -h 127.0.0.1 -p "$LANEDB_PORT" -c 'SELECT count(*) FROM votes'), PostgreSQL $(psql -X -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT count(*) FROM votes')"
