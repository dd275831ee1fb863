"""Drives psql's tab completion against a server, as a person at a terminal would.

    python3 complete.py PORT TYPED EXPECTED [TYPED EXPECTED ...]

Starts psql on a pseudo-terminal (readline only completes on one), and for each pair types TYPED, presses Tab twice
(once to complete, once more to list the candidates when there are several) and waits until the terminal shows
EXPECTED after what was typed; then clears the line with Ctrl-C. Prints `ok` or `FAIL` with what psql showed for
each pair, and exits 0 only when every completion appeared.

After Ctrl-C, readline sets the terminal up again once the fresh prompt is shown and may discard keys typed in that
moment. So the script waits for the terminal to fall quiet before typing, and types a pair again when psql did not
echo what was typed (keys lost, not a wrong completion).
"""

import os
import pty
import select
import sys
import time

# How long psql may take to show a completion (it runs a catalog query for each) before the pair fails.
WAIT_SECONDS_MAX = 20
# How long the terminal must stay quiet after a prompt before the next line is typed.
QUIET_SECONDS = 0.3
# How many times a pair is typed when psql lost the keys.
ATTEMPTS_MAX = 3


def read_until(fd, wanted, deadline):
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if wanted is not None and wanted in seen:
                return seen, True
    return seen, False


def settle(fd):
    """Reads until the terminal has been quiet for QUIET_SECONDS."""
    while select.select([fd], [], [], QUIET_SECONDS)[0]:
        try:
            if not os.read(fd, 4096):
                return
        except OSError:
            return


def complete(fd, typed, expected):
    """Types TYPED and two Tabs; returns (found, what psql showed). Clears the line afterwards."""
    for _ in range(ATTEMPTS_MAX):
        os.write(fd, typed.encode() + b"\t\t")
        seen, found = read_until(fd, expected.encode(), time.monotonic() + WAIT_SECONDS_MAX)
        # Ctrl-C clears the line; wait for the fresh prompt before typing the next one.
        os.write(fd, b"\x03")
        read_until(fd, b"testdb=#", time.monotonic() + WAIT_SECONDS_MAX)
        settle(fd)
        if found or typed.encode() in seen:
            return found, seen
    return False, seen


def main():
    port, pairs = sys.argv[1], sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "dumb"
        os.environ.pop("PGPASSWORD", None)
        os.execvp("psql", ["psql", "-X", "-h", "127.0.0.1", "-p", port, "-U", "tester", "-d", "testdb"])
    _, started = read_until(fd, b"testdb=#", time.monotonic() + WAIT_SECONDS_MAX)
    if not started:
        print("FAIL psql did not show its prompt")
        sys.exit(1)
    settle(fd)
    failed = 0
    for typed, expected in zip(pairs[::2], pairs[1::2]):
        found, seen = complete(fd, typed, expected)
        print(("ok" if found else "FAIL"), repr(typed), "->", repr(seen.decode(errors="replace")))
        failed += not found
    os.write(fd, b"\\q\n")
    os.waitpid(pid, 0)
    sys.exit(1 if failed else 0)


main()
