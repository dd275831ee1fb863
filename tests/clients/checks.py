"""What the Python client programs share: each check runs even after an earlier one failed; `finish` reports them."""

import sys
import traceback

failures = []


def check(name, fn):
    """Runs one check; an exception or a failed assertion is recorded and the next check runs."""
    try:
        fn()
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - every failure is reported, whatever it is
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        sqlstate = getattr(e, "sqlstate", None)
        if sqlstate:
            detail += f" [SQLSTATE {sqlstate}]"
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}")


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def host_and_port():
    """The server from the command line: `[HOST] PORT`, HOST defaulting to 127.0.0.1."""
    args = sys.argv[1:]
    if len(args) == 1:
        return "127.0.0.1", args[0]
    if len(args) == 2:
        return args[0], args[1]
    print(f"usage: {sys.argv[0]} [HOST] PORT", file=sys.stderr)
    sys.exit(2)


def finish(client):
    """Prints the failures of the checks and the exit status for them: 1 if any failed."""
    if failures:
        print(f"{client}: {len(failures)} check(s) failed:")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print(f"{client}: every check passed")
    return 0
