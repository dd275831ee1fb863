#!/usr/bin/env python3
"""psycopg 3 against a running LaneDB server (run by tests/clients.rs).

Usage: python3 psycopg_client.py [HOST] PORT      (HOST defaults to 127.0.0.1)

Connects as user `tester` to database `testdb` in autocommit mode (each statement its own transaction), then checks
parameters both ways, executemany, binary and prepared statements, transaction blocks (read-only; INSERTs, UPDATEs and
COPY committed together; a failed COPY rolling its block back), the SQLSTATEs of a duplicate key and of a syntax
error, a procedure, and json, jsonb and arrays of uuid, varchar and jsonb in text and binary.
Every check runs even after an earlier one failed; the program prints each failure and exits 1 if there was any.
"""

import datetime
import sys
import uuid
from decimal import Decimal

import psycopg
import psycopg.errors
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json, Jsonb

from checks import check, expect, finish, host_and_port

ROWS = [
    (1, "apple", Decimal("1.25"), datetime.date(2024, 1, 15)),
    (2, "banana", Decimal("0.99"), datetime.date(2023, 12, 31)),
    (3, "cherry", Decimal("12345678.90"), datetime.date(2000, 2, 29)),
    (4, "damson", None, None),
    (5, "elder", Decimal("-3.50"), datetime.date(1999, 1, 1)),
]

def expect_row(row, expected, what):
    expect(row, expected, what)
    for value, want in zip(row, expected):
        if want is not None and type(value) is not type(want):
            raise AssertionError(f"{what}: {value!r} is a {type(value).__name__}, not a {type(want).__name__}")


def expect_error(fn, error_class, sqlstate, what):
    try:
        fn()
    except psycopg.Error as e:
        if e.sqlstate != sqlstate or not isinstance(e, error_class):
            raise AssertionError(
                f"{what}: expected {error_class.__name__} ({sqlstate}), "
                f"got {type(e).__name__} ({e.sqlstate}): {e}"
            ) from e
        return e
    raise AssertionError(f"{what}: no error raised")


def expect_usable(conn, what):
    expect(conn.closed, False, f"{what}: connection closed")
    expect(conn.info.transaction_status, TransactionStatus.IDLE, f"{what}: transaction status")
    expect(conn.execute("SELECT 1").fetchone(), (1,), f"{what}: SELECT 1 afterwards")


def main():
    host, port = host_and_port()
    conn = psycopg.connect(
        host=host, port=port, user="tester", dbname="testdb", autocommit=True, connect_timeout=10
    )
    cur = conn.cursor()

    def create():
        cur.execute(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2), added DATE)"
        )

    def insert_one():
        cur.execute("INSERT INTO items (id, name, price, added) VALUES (%s, %s, %s, %s)", ROWS[0])
        expect(cur.rowcount, 1, "rowcount of one INSERT")
        expect(cur.statusmessage, "INSERT 0 1", "command tag of one INSERT")

    def insert_many():
        # With libpq 14+ psycopg sends these in pipeline mode: all Bind/Execute messages, then one Sync.
        cur.executemany("INSERT INTO items (id, name, price, added) VALUES (%s, %s, %s, %s)", ROWS[1:])
        expect(cur.rowcount, len(ROWS) - 1, "rowcount of executemany")

    def select_by_parameter():
        cur.execute("SELECT id, name, price, added FROM items WHERE id = %s", (3,))
        expect([d.name for d in cur.description], ["id", "name", "price", "added"], "column names")
        expect_row(cur.fetchone(), ROWS[2], "row 3")
        expect(cur.fetchone(), None, "a second row for id = 3")
        cur.execute("SELECT id, name, price, added FROM items WHERE id = %s", (4,))
        expect_row(cur.fetchone(), ROWS[3], "row 4 with NULLs")

    def select_all():
        cur.execute("SELECT id, name, price, added FROM items WHERE name <> %s ORDER BY id", ("nothing",))
        got = cur.fetchall()
        expect(len(got), len(ROWS), "row count")
        for row, want in zip(got, ROWS):
            expect_row(row, want, f"row {want[0]}")

    def select_typed_parameters():
        cur.execute(
            "SELECT name FROM items WHERE price > %s AND added >= %s ORDER BY id",
            (Decimal("1.00"), datetime.date(2000, 1, 1)),
        )
        expect(cur.fetchall(), [("apple",), ("cherry",)], "rows with price > 1.00 added since 2000")

    def declared_types_win():
        # psycopg declares a timedelta as interval: `timestamp - %s` subtracts an interval, as in PostgreSQL (the place
        # alone would make the parameter a timestamp).
        cur.execute("SELECT '2024-01-04'::timestamp - %s", (datetime.timedelta(days=1),))
        expect(cur.fetchone(), (datetime.datetime(2024, 1, 3),), "timestamp minus a timedelta parameter")
        # A list of strings goes untyped; = ANY makes it text[].
        cur.execute("SELECT id FROM items WHERE name = ANY(%s) ORDER BY id", (["apple", "cherry"],))
        expect(cur.fetchall(), [(1,), (3,)], "name = ANY(list parameter)")

    def parameters_echoed():
        # PostgreSQL types each bare $n from the OID psycopg sends (int8, unknown -> text, numeric, date).
        cur.execute("SELECT %s, %s, %s, %s", ROWS[0])
        expect_row(cur.fetchone(), ROWS[0], "SELECT of four parameters")

    def binary_parameters_and_results():
        # %b sends the parameters in binary; binary=True asks for binary results.
        cur.execute("SELECT id, name, price, added FROM items WHERE id = %b", (1,), binary=True)
        expect_row(cur.fetchone(), ROWS[0], "binary row 1")
        cur.execute(
            "SELECT id, name, price, added FROM items WHERE price = %b AND added = %b",
            (ROWS[1][2], ROWS[1][3]),
            binary=True,
        )
        expect_row(cur.fetchone(), ROWS[1], "binary row 2 found by binary DECIMAL and DATE")

    def binary_insert():
        row = (6, "fig", Decimal("7.07"), datetime.date(2020, 6, 30))
        cur.execute("INSERT INTO items VALUES (%b, %b, %b, %b)", row)
        expect(cur.rowcount, 1, "rowcount of a binary INSERT")
        cur.execute("SELECT id, name, price, added FROM items WHERE id = %s", (6,))
        expect_row(cur.fetchone(), row, "row inserted with binary parameters")
        cur.execute("DELETE FROM items WHERE id = %s", (6,))
        expect(cur.rowcount, 1, "rowcount of DELETE")

    def prepared_statement():
        # prepare=True makes psycopg Parse a named server-side statement once and Bind/Execute it each time.
        query = "SELECT name, price FROM items WHERE id = %s"
        for row in ROWS:
            cur.execute(query, (row[0],), prepare=True)
            expect(cur.fetchone(), (row[1], row[2]), f"prepared lookup of {row[0]}")
        cur.execute(query, (99,), prepare=True)
        expect(cur.fetchone(), None, "prepared lookup of a missing id")

    def duplicate_key():
        e = expect_error(
            lambda: cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s)", (1, "again", None, None)),
            psycopg.errors.UniqueViolation,
            "23505",
            "duplicate primary key",
        )
        expect(e.diag.sqlstate, "23505", "diag.sqlstate")
        expect_usable(conn, "after the duplicate key")
        cur.execute("SELECT name FROM items WHERE id = %s", (1,))
        expect(cur.fetchall(), [("apple",)], "the original row 1")

    def syntax_error():
        expect_error(
            lambda: cur.execute("SELEC id FROM items"), psycopg.errors.SyntaxError, "42601", "misspelt SELECT"
        )
        expect_usable(conn, "after the syntax error")

    def read_only_transaction():
        with conn.transaction():
            expect(conn.info.transaction_status, TransactionStatus.INTRANS, "status inside the block")
            cur.execute("SELECT count(*) FROM items")
            expect(cur.fetchone(), (len(ROWS),), "count inside the block")
            cur.execute("SELECT name FROM items WHERE id = %s", (2,))
            expect(cur.fetchone(), ("banana",), "lookup inside the block")
        expect(conn.info.transaction_status, TransactionStatus.IDLE, "status after the block")

    def writes_in_a_transaction():
        # INSERTs, UPDATEs and a COPY wait for COMMIT and apply together.
        with conn.transaction():
            cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s)", (7, "grape", None, None))
            cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s)", (8, "guava", None, None))
            cur.execute("UPDATE items SET name = %s WHERE id = %s", ("apple!", 1))
            expect(cur.rowcount, 1, "rows the UPDATE in the block wrote")
            with cur.copy("COPY items (id, name) FROM STDIN") as copy:
                copy.write_row((9, "kiwi"))
                copy.write_row((10, "lime"))
            expect(cur.rowcount, 2, "rows the COPY in the block loaded")
        cur.execute("SELECT count(*) FROM items WHERE id IN (7, 8, 9, 10)")
        expect(cur.fetchone(), (4,), "rows inserted by the committed block")
        cur.execute("SELECT name FROM items WHERE id = %s", (1,))
        expect(cur.fetchone(), ("apple!",), "the row the committed block updated")
        cur.execute("UPDATE items SET name = %s WHERE id = %s", ("apple", 1))
        cur.execute("DELETE FROM items WHERE id IN (7, 8, 9, 10)")

        # A COPY whose key is taken fails as in PostgreSQL, and the block rolls back with nothing applied.
        def copy_in_block():
            with conn.transaction():
                cur.execute("INSERT INTO items VALUES (%s, %s, %s, %s)", (11, "kiwi", None, None))
                with cur.copy("COPY items (id, name) FROM STDIN") as copy:
                    copy.write_row((12, "x"))
                    copy.write_row((1, "taken"))

        expect_error(copy_in_block, psycopg.errors.UniqueViolation, "23505", "COPY of a taken key in a block")
        expect_usable(conn, "after the failed COPY")
        cur.execute("SELECT count(*) FROM items WHERE id IN (11, 12)")
        expect(cur.fetchone(), (0,), "rows with id 11 or 12")

    def final_count():
        expect(conn.execute("SELECT count(*) FROM items").fetchone(), (len(ROWS),), "rows at the end")

    check("CREATE TABLE", create)
    check("INSERT with %s parameters", insert_one)
    check("executemany INSERT", insert_many)
    check("SELECT with a parameter: values and types", select_by_parameter)
    check("SELECT all rows in order", select_all)
    check("DECIMAL and DATE parameters", select_typed_parameters)
    check("declared parameter types and untyped arrays", declared_types_win)
    check("parameters echoed by SELECT %s", parameters_echoed)
    check("binary parameters and results", binary_parameters_and_results)
    check("INSERT with binary parameters", binary_insert)
    check("prepared statement (prepare=True)", prepared_statement)
    check("duplicate key -> UniqueViolation 23505", duplicate_key)
    check("syntax error -> 42601", syntax_error)
    check("read-only transaction block", read_only_transaction)
    check("INSERTs, UPDATEs and COPY in a block commit together", writes_in_a_transaction)
    def call_procedure():
        cur.execute(
            "CREATE PROCEDURE item_name AS SELECT name FROM items WHERE id = $1"
        )
        cur.execute("CALL item_name(%s)", (2,))
        expect(cur.fetchone(), ("banana",), "CALL item_name(2)")
        cur.execute("CALL item_name(%s)", (5,), prepare=True)
        expect(cur.fetchone(), ("elder",), "prepared CALL item_name(5)")
        # In a block (every statement of a connection without autocommit is in one): the call's answer comes at
        # once, its writes apply at COMMIT.
        cur.execute("CREATE PROCEDURE rename_item AS UPDATE items SET name = $2 WHERE id = $1")
        with conn.transaction():
            cur.execute("CALL rename_item(%s, %s)", (2, "banana!"))
            cur.execute("CALL item_name(%s)", (2,))
            expect(cur.fetchone(), ("banana!",), "CALL in a block sees the block's call")
        expect(conn.execute("CALL item_name(2)").fetchone(), ("banana!",), "the committed call")
        conn.execute("CALL rename_item(2, 'banana')")

    check("CREATE PROCEDURE and CALL it", call_procedure)

    def json_and_array_columns():
        conn.execute(
            "CREATE TABLE docs (id int PRIMARY KEY, body jsonb, raw json, ids uuid[], tags varchar(5)[], notes jsonb[])"
        )
        some = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        conn.execute(
            "INSERT INTO docs VALUES (%s, %s, %s, %s, %s, %s)",
            (1, Jsonb({"b": 1, "a": [1, 2.5]}), Json({"x": None}), [some, None], ["ab", None], [Jsonb({"k": 1}), None]),
        )
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            row = cur.execute("SELECT body, raw, ids, tags, notes FROM docs WHERE id = %s", (1,)).fetchone()
            expect(
                row,
                ({"a": [1, 2.5], "b": 1}, {"x": None}, [some, None], ["ab", None], [{"k": 1}, None]),
                f"json and arrays read back (binary={binary})",
            )
            expect(
                [d.type_code for d in cur.description],
                [3802, 114, 2951, 1015, 3807],
                f"their type OIDs (binary={binary})",
            )
        row = conn.execute(
            "SELECT id FROM docs WHERE body @> %s AND %s = ANY(ids) AND tags && %s",
            (Jsonb({"a": [2.5]}), some, ["ab"]),
        ).fetchone()
        expect(row, (1,), "containment, ANY and overlap with parameters")
        expect_error(
            lambda: conn.execute("INSERT INTO docs (id, body) VALUES (2, %s::jsonb)", ('{"a": ',)),
            psycopg.errors.InvalidTextRepresentation,
            "22P02",
            "bad JSON",
        )

    check("json, jsonb and arrays of uuid, varchar and jsonb", json_and_array_columns)
    check("row count at the end", final_count)
    conn.close()

    return finish("psycopg client")


if __name__ == "__main__":
    sys.exit(main())
