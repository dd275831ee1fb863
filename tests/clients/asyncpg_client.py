#!/usr/bin/env python3
"""asyncpg against a running LaneDB server (run by tests/clients.rs).

Usage: python3 asyncpg_client.py [HOST] PORT      (HOST defaults to 127.0.0.1)

asyncpg speaks only the extended protocol in binary, sends `client_encoding='utf-8'` (quotes included) at start-up,
looks up every type it has no codec for (arrays among them) with its own catalog query, and resets a pooled
connection with `UNLISTEN *`. Checks: arrays of several element types both ways, a binary COPY
(`copy_records_to_table`), executemany (all rows or none), transactions with
nested savepoints and their modes, a pool shared by concurrent tasks, prepared statements' descriptions, a cursor,
the SQLSTATE and constraint of a duplicate key, and LISTEN / NOTIFY through `add_listener`.
Every check runs even after an earlier one failed; the program prints each failure and exits 1 if there was any.
"""

import asyncio
import datetime
import sys
import uuid
from decimal import Decimal

import asyncpg

from checks import check, expect, finish, host_and_port

HOST, PORT = host_and_port()
loop = asyncio.new_event_loop()


def run(coroutine):
    return loop.run_until_complete(coroutine)


def connect():
    return asyncpg.connect(host=HOST, port=PORT, user="tester", database="testdb")


conn = run(connect())


async def arrays():
    await conn.execute(
        "CREATE TABLE tagged (id int PRIMARY KEY, tags int[], names varchar(10)[], ids uuid[], "
        "prices numeric(8,2)[], days date[], flags boolean[])"
    )
    u = uuid.uuid4()
    row = (1, [1, None, 3], ["a", "b"], [u], [Decimal("1.50"), None], [datetime.date(2024, 2, 29)], [True, False])
    await conn.execute("INSERT INTO tagged VALUES ($1, $2, $3, $4, $5, $6, $7)", *row)
    got = await conn.fetchrow("SELECT * FROM tagged WHERE id = $1", 1)
    expect(tuple(got), row, "a row of arrays")
    expect(await conn.fetchval("SELECT $1::bigint[]", [2**40, -1]), [2**40, -1], "a bigint[] parameter")
    expect(await conn.fetchval("SELECT count(*) FROM tagged WHERE $1 = ANY(tags)", 3), 1, "= ANY of an array column")


async def lookup_in_a_transaction():
    # asyncpg turns `jit` off before a type lookup; inside a transaction an error there would abort it.
    fresh = await connect()
    async with fresh.transaction():
        expect(await fresh.fetchval("SELECT $1::int2[]", [1, 2]), [1, 2], "an int2[] first met in a transaction")
        expect(await fresh.fetchval("SELECT 1"), 1, "the transaction after the lookup")
    await fresh.close()


async def executemany():
    await conn.execute("CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(10,2))")
    await conn.executemany(
        "INSERT INTO item VALUES ($1, $2, $3)", [(i, f"item {i}", Decimal(i) / 4) for i in range(1, 101)]
    )
    expect(await conn.fetchval("SELECT sum(price) FROM item"), Decimal("1262.50"), "the sum of what was inserted")
    rows = await conn.fetch("SELECT id, name FROM item WHERE id < $1 ORDER BY id", 4)
    expect([tuple(r) for r in rows], [(1, "item 1"), (2, "item 2"), (3, "item 3")], "fetch")
    # One implicit transaction, as in PostgreSQL: a duplicate key among the rows leaves none of them.
    try:
        await conn.executemany("INSERT INTO item VALUES ($1, $2, 1)", [(201, "x"), (202, "y"), (201, "z")])
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("no error for a duplicate key in executemany")
    expect(await conn.fetchval("SELECT count(*) FROM item WHERE id > 200"), 0, "rows of a failed executemany")


async def binary_copy():
    await conn.execute(
        "CREATE TABLE loaded (id int PRIMARY KEY, name text, price numeric(10,2), at timestamptz, tags text[], "
        "u uuid, ok boolean)"
    )
    at = datetime.datetime(2024, 3, 4, 10, 30, tzinfo=datetime.timezone.utc)
    u = uuid.uuid4()
    records = [(i, f"n{i}", Decimal(i) / 4, at, ["a", f"t{i}"], u, i % 2 == 0) for i in range(1, 1001)]
    records.append((1001, None, None, None, None, None, None))
    result = await conn.copy_records_to_table("loaded", records=records)
    expect(result, "COPY 1001", "the COPY's tag")
    got = await conn.fetchrow("SELECT * FROM loaded WHERE id = 7")
    expect(tuple(got), records[6], "a row loaded in binary")
    expect(await conn.fetchval("SELECT count(*) FROM loaded WHERE name IS NULL"), 1, "NULLs loaded in binary")
    # A duplicate key fails the COPY and loads nothing of it.
    try:
        await conn.copy_records_to_table("loaded", records=[(2000, "x", 1, at, [], u, True), (1, "dup", 1, at, [], u, True)])
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("no error for a duplicate key in a COPY")
    expect(await conn.fetchval("SELECT count(*) FROM loaded"), 1001, "rows after a failed COPY")


async def transactions():
    async with conn.transaction():
        await conn.execute("INSERT INTO item VALUES (1001, 'kept', 1)")
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO item VALUES (1002, 'undone', 1)")
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
    expect(await conn.fetchval("SELECT count(*) FROM item WHERE id > 1000"), 1, "the savepoint's insert undone")
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO item VALUES (1003, 'undone', 1)")
            raise RuntimeError("roll the block back")
    except RuntimeError:
        pass
    expect(await conn.fetchval("SELECT count(*) FROM item WHERE id = 1003"), 0, "the block's insert undone")
    async with conn.transaction(isolation="serializable", readonly=True, deferrable=True):
        expect(await conn.fetchval("SELECT count(*) FROM item"), 101, "a read-only deferrable block")


async def duplicate_key():
    try:
        await conn.execute("INSERT INTO item VALUES (1, 'again', 1)")
    except asyncpg.UniqueViolationError as e:
        expect(e.constraint_name, "item_pkey", "the constraint")
        expect(e.sqlstate, "23505", "the SQLSTATE")
        return
    raise AssertionError("no error for a duplicate key")


async def pool():
    async with asyncpg.create_pool(
        host=HOST, port=PORT, user="tester", database="testdb", min_size=2, max_size=4
    ) as p:

        async def one(i):
            async with p.acquire() as c:
                return await c.fetchval("SELECT name FROM item WHERE id = $1", i)

        names = await asyncio.gather(*(one(i) for i in range(1, 21)))
        expect(names, [f"item {i}" for i in range(1, 21)], "20 tasks through a pool of 4")


async def prepared():
    statement = await conn.prepare("SELECT id, name, price FROM item WHERE id = $1 AND name <> $2")
    expect([t.name for t in statement.get_parameters()], ["int4", "text"], "parameter types")
    expect([a.name for a in statement.get_attributes()], ["id", "name", "price"], "result columns")
    expect(tuple(await statement.fetchrow(2, "x")), (2, "item 2", Decimal("0.50")), "a prepared statement's row")


async def cursor():
    async with conn.transaction():
        ids = [r["id"] async for r in conn.cursor("SELECT id FROM item WHERE id <= 50 ORDER BY id", prefetch=7)]
    expect(ids, list(range(1, 51)), "a cursor's rows")
    # Cursor.forward moves the cursor's portal (MOVE FORWARD n portal).
    async with conn.transaction():
        cur = await conn.cursor("SELECT id FROM item WHERE id <= 50 ORDER BY id")
        expect(await cur.fetch(2), [(1,), (2,)], "a cursor's first rows")
        expect(await cur.forward(3), 3, "rows moved over")
        expect(await cur.fetchrow(), (6,), "the row after them")


async def notifications():
    heard = loop.create_future()

    def on_note(_conn, _pid, channel, payload):
        if not heard.done():
            heard.set_result((channel, payload))

    await conn.add_listener("jobs", on_note)
    other = await connect()
    await other.execute("SELECT pg_notify('jobs', $1)", "job 7")
    expect(await asyncio.wait_for(heard, 10), ("jobs", "job 7"), "a notification")
    await conn.remove_listener("jobs", on_note)
    await other.close()


check("arrays", lambda: run(arrays()))
check("type lookup in a transaction", lambda: run(lookup_in_a_transaction()))
check("executemany", lambda: run(executemany()))
check("binary COPY", lambda: run(binary_copy()))
check("transactions", lambda: run(transactions()))
check("duplicate key", lambda: run(duplicate_key()))
check("pool", lambda: run(pool()))
check("prepared statements", lambda: run(prepared()))
check("cursor", lambda: run(cursor()))
check("LISTEN / NOTIFY", lambda: run(notifications()))
run(conn.close())
sys.exit(finish("asyncpg"))
