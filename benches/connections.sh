#!/usr/bin/env bash
# Connection scale: 16 busy pgbench clients alone, then with 1,000 idle sessions open beside them; reports server
# memory (RSS) and TPS for both.
#
#   benches/connections.sh            # IDLE=1000 BUSY=16 DURATION=15 ROWS=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${IDLE:-1000}
BUSY=${BUSY:-16}
DURATION=${DURATION:-15}
ROWS=${ROWS:-1000000}
PORT=${PORT:-5493}
# The build directory .ci/run uses, so a benchmark after the tests does not build DataFusion again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lanedb/target}"
cargo build --release --bin lanedb --quiet
ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d)
cleanup() { kill "${idle_pid:-}" "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$CARGO_TARGET_DIR/release/lanedb" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" --modules none --log warn 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 50); do psql -h 127.0.0.1 -p "$PORT" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" \
    -c "CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, abalance INTEGER NOT NULL, filler VARCHAR(84))" \
    -c "PARTITION TABLE accounts ON COLUMN aid" \
    -c "INSERT INTO accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, $ROWS) AS s(g)"
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
tps() {
    pgbench -n -h 127.0.0.1 -p "$PORT" -M prepared -c "$BUSY" -j 2 -T "$DURATION" -D rows="$ROWS" \
        -f benches/pgbench/select.sql 2>&1 | sed -n 's/^tps = \([0-9]*\).*/\1/p'
}
echo "loaded: RSS $(rss) MiB"
alone=$(tps)
echo "busy $BUSY alone: $alone tps, RSS $(rss) MiB"
python3 - "$PORT" "$IDLE" <<'PY' &
import socket, struct, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
body = struct.pack("!i", 196608) + b"user\0idle\0database\0idle\0\0"
packet = struct.pack("!i", len(body) + 4) + body
conns = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(packet)
    data = b""
    while not data.endswith(b"Z\0\0\0\x05I"):
        data += s.recv(4096)
    conns.append(s)
print(f"{len(conns)} idle sessions open", flush=True)
time.sleep(3600)
PY
idle_pid=$!
for _ in $(seq 600); do
    [ "$(ls /proc/$server_pid/fd | wc -l)" -ge "$IDLE" ] && break
    sleep 0.1
done
sleep 1
echo "with $IDLE idle: RSS $(rss) MiB"
with=$(tps)
echo "busy $BUSY beside $IDLE idle: $with tps, RSS $(rss) MiB"
echo "tps change: $(awk -v a="$alone" -v b="$with" 'BEGIN {printf "%+.1f%%", (b - a) * 100 / a}')"
