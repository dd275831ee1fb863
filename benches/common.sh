# Shared by the side-by-side benchmark scripts: PostgreSQL 15 from the Debian package on a temporary data directory,
# and a release `lanedb serve`, both stopped (and their files removed) when the script exits.
#   source "$(dirname "$0")/common.sh"; start_lanedb PORT [serve flags]; start_postgres PORT

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# The build directory .ci/run uses, so a benchmark after the tests does not build DataFusion again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lanedb/target}"
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

# start_lanedb PORT [flags]: a release server on $work/lanedb, waited for (durability sync unless the flags say).
start_lanedb() {
    local port=$1
    shift
    "$CARGO_TARGET_DIR/release/lanedb" serve --listen "127.0.0.1:$port" --data-dir "$work/lanedb" --log "${LANEDB_LOG:-warn}" "$@" \
        2>"$work/lanedb.log" &
    lanedb_pid=$!
    for _ in $(seq 50); do psql -h 127.0.0.1 -p "$port" -c 'SELECT 1' >/dev/null 2>&1 && return; sleep 0.2; done
    cat "$work/lanedb.log" >&2
    return 1
}

# stop_lanedb [SIGNAL]: stops the server started last (SIGTERM: a clean stop with a snapshot; KILL: a crash).
stop_lanedb() {
    kill -"${1:-TERM}" "$lanedb_pid" 2>/dev/null || true
    wait "$lanedb_pid" 2>/dev/null || true
    lanedb_pid=
}

# start_postgres PORT [on|off]: synchronous_commit (default off: no flush wait, like LaneDB's async mode), 1 GB of
# shared buffers.
start_postgres() {
    install -d -o postgres "$work/pg" "$work/pgsock"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pgsock/pg.log" -w start -o \
        "-p $1 -k $work/pgsock -c listen_addresses=127.0.0.1 -c synchronous_commit=${2:-off} -c shared_buffers=1GB -c max_connections=300" >/dev/null
}

# p99_ms: the 99th percentile latency of the pgbench per-transaction logs in $work, in milliseconds.
p99_ms() {
    cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n \
        | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", a[i]/1000}'
}
