#!/usr/bin/env bash
# The shared sqllogictest corpus (../shared/slt, read in place) over the wire with sqllogictest-bin, in both its
# engines: `postgres` (simple protocol, text results) and `postgres-extended` (prepared statements, binary results).
# Each file gets a fresh `lanedb serve` (sqllogictest-bin's per-file databases need CREATE DATABASE).
#
#   tests/slt_wire.sh LANEDB_BIN [SQLLOGICTEST_BIN]
#
# Left out: sqllogictest-rs/postgres_extended_test.slt needs array types, timestamptz with session time zones and
# intervals, which LaneDB does not have yet (the embedded runner in tests/slt.rs marks it ignored for the same reason).
set -uo pipefail
cd "$(dirname "$0")/.."
lanedb=${1:?usage: tests/slt_wire.sh LANEDB_BIN [SQLLOGICTEST_BIN]}
slt=${2:-sqllogictest}
corpus=../shared/slt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for mode in postgres postgres-extended; do
    for file in "$corpus"/risinglight/*.slt "$corpus"/sqllogictest-rs/postgres_simple_test.slt "$corpus"/sqlite/*.test; do
        "$lanedb" serve --listen 127.0.0.1:0 --data-dir "$work/data" --modules none --log info 2>"$work/server.log" &
        pid=$!
        addr=""
        for _ in $(seq 200); do
            addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/server.log" | head -1)
            [ -n "$addr" ] && break
            sleep 0.05
        done
        if [ -z "$addr" ]; then
            echo "slt-wire: the server did not start" >&2
            cat "$work/server.log" >&2
            exit 1
        fi
        if timeout 600 "$slt" --color never -h 127.0.0.1 -p "${addr##*:}" -u lanedb -d lanedb -e "$mode" \
            "$file" >"$work/out" 2>&1; then
            echo "slt-wire: ok    $mode $file"
        else
            echo "slt-wire: FAIL  $mode $file"
            tail -40 "$work/out"
            failed=1
        fi
        kill "$pid"
        if ! wait "$pid"; then
            echo "slt-wire: the server did not stop cleanly" >&2
            failed=1
        fi
        rm -rf "$work/data"
    done
done
exit $failed
