#!/usr/bin/env bash
# The shared sqllogictest corpus (../shared/slt, read in place) over the wire with sqllogictest-bin, in both its
# engines: `postgres` (simple protocol, text results) and `postgres-extended` (prepared statements, binary results).
# Each file gets a fresh `lanedb serve` (sqllogictest-bin's per-file databases need CREATE DATABASE).
#
#   tests/slt_wire.sh LANEDB_BIN [SQLLOGICTEST_BIN]
#
# Servers run in the time zone the corpus's timestamptz results were written in (America/New_York).
# sqllogictest-rs/postgres_extended_test.slt runs with `postgres` only: under `postgres-extended` sqllogictest-bin
# prints an empty string inside an array as `(empty)` and timestamps inside arrays unquoted, so PostgreSQL 15 fails it
# there too (checked against a PostgreSQL 15 server).
set -uo pipefail
cd "$(dirname "$0")/.."
lanedb=${1:?usage: tests/slt_wire.sh LANEDB_BIN [SQLLOGICTEST_BIN]}
slt=${2:-sqllogictest}
corpus=../shared/slt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for mode in postgres postgres-extended; do
    files=("$corpus"/risinglight/*.slt "$corpus"/sqllogictest-rs/postgres_simple_test.slt "$corpus"/sqlite/*.test)
    if [ "$mode" = postgres ]; then
        files+=("$corpus"/sqllogictest-rs/postgres_extended_test.slt)
    fi
    for file in "${files[@]}"; do
        "$lanedb" serve --listen 127.0.0.1:0 --data-dir "$work/data" --modules none --log info \
            --timezone America/New_York 2>"$work/server.log" &
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
