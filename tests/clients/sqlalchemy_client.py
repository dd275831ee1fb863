#!/usr/bin/env python3
"""SQLAlchemy 2 (ORM and Core, with psycopg 3) against a running LaneDB server (run by tests/clients.rs).

Usage: python3 sqlalchemy_client.py [HOST] PORT      (HOST defaults to 127.0.0.1)

Uses a default engine, so every unit of work is a BEGIN ... COMMIT block as SQLAlchemy sends it: `create_all` of
models with serial, identity and Sequence keys, a CHECK and a unique constraint; the ORM adding several objects
at once (SQLAlchemy's many-row INSERT ... SELECT ... FROM (VALUES ...) RETURNING) and fetching their keys; a
duplicate key failing the commit; Core inserts with RETURNING; reflection of the tables (columns with their
defaults and identity options, keys, indexes, CHECK constraints); and `drop_all`. Every check runs even after an
earlier one failed; the program prints each failure and exits 1 if there was any.
"""

import sys

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    create_engine,
    exc,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from checks import check, expect, finish, host_and_port

class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "sa_customer"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    credit: Mapped[int] = mapped_column(Integer, CheckConstraint("credit >= 0", name="credit_not_negative"))


class Order(Base):
    __tablename__ = "sa_order"
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True, start=100), primary_key=True)
    customer: Mapped[int] = mapped_column(Integer)
    item: Mapped[str] = mapped_column(String(20))
    __table_args__ = (Index("sa_order_customer", "customer"),)


class Ticket(Base):
    __tablename__ = "sa_ticket"
    id: Mapped[int] = mapped_column(Integer, Sequence("sa_ticket_seq", start=1000, increment=5), primary_key=True)
    note: Mapped[str] = mapped_column(String(20))


def main():
    host, port = host_and_port()
    engine = create_engine(f"postgresql+psycopg://tester@{host}:{port}/testdb")

    check("create_all in a transaction", lambda: Base.metadata.create_all(engine))

    def orm_keys():
        with Session(engine) as session:
            customers = [Customer(name=f"c{i}", credit=i * 10) for i in range(5)]
            session.add_all(customers)
            session.flush()
            expect([c.id for c in customers], [1, 2, 3, 4, 5], "serial keys after flush")
            orders = [Order(customer=c.id, item=f"item{c.id}") for c in customers]
            tickets = [Ticket(note="a"), Ticket(note="b")]
            session.add_all(orders + tickets)
            session.commit()
            expect([o.id for o in orders], [100, 101, 102, 103, 104], "identity keys")
            expect([t.id for t in tickets], [1000, 1005], "Sequence keys")
        with Session(engine) as session:
            names = session.scalars(select(Customer.name).order_by(Customer.id)).all()
            expect(names, ["c0", "c1", "c2", "c3", "c4"], "names read back")

    check("ORM add_all, flush and commit take keys from sequences", orm_keys)

    def duplicate():
        with Session(engine) as session:
            session.add(Customer(name="c1", credit=1))
            try:
                session.commit()
            except exc.IntegrityError as e:
                expect(e.orig.sqlstate, "23505", "SQLSTATE of a duplicate name")
                session.rollback()
            else:
                raise AssertionError("a duplicate name was committed")
        with Session(engine) as session:
            count = len(session.scalars(select(Customer.id)).all())
            expect(count, 5, "customers after the failed commit")

    check("a duplicate key fails the commit and leaves nothing", duplicate)

    def orm_update_and_delete():
        with Session(engine) as session:
            customer = session.scalars(select(Customer).where(Customer.name == "c2")).one()
            customer.credit = 99
            session.delete(session.scalars(select(Customer).where(Customer.name == "c4")).one())
            session.commit()
        with Session(engine) as session:
            credits = session.scalars(select(Customer.credit).order_by(Customer.id)).all()
            expect(credits, [0, 10, 99, 30], "credits after an update and a delete")

    check("ORM update and delete in a transaction", orm_update_and_delete)

    def check_violation():
        with Session(engine) as session:
            session.add(Customer(name="broke", credit=-1))
            try:
                session.commit()
            except exc.IntegrityError as e:
                expect(e.orig.sqlstate, "23514", "SQLSTATE of a CHECK violation")
                session.rollback()
            else:
                raise AssertionError("a negative credit was committed")

    check("a CHECK constraint is enforced", check_violation)

    def core_returning():
        with engine.begin() as conn:
            rows = conn.execute(
                insert(Customer.__table__).returning(Customer.id, Customer.name, sort_by_parameter_order=True),
                [{"name": "x1", "credit": 1}, {"name": "x2", "credit": 2}],
            ).all()
        # The failed commits above used keys 6 and 7: sequences are not rolled back.
        expect([(r.id, r.name) for r in rows], [(8, "x1"), (9, "x2")], "Core RETURNING in parameter order")

    check("Core insert with RETURNING in parameter order", core_returning)

    def reflection():
        inspector = inspect(engine)
        expect(
            sorted(inspector.get_table_names()),
            ["sa_customer", "sa_order", "sa_ticket"],
            "tables",
        )
        columns = {c["name"]: c for c in inspector.get_columns("sa_customer")}
        expect(columns["id"]["default"], "nextval('sa_customer_id_seq'::regclass)", "serial default")
        expect(columns["name"]["type"].length, 40, "varchar length")
        identity = {c["name"]: c for c in inspector.get_columns("sa_order")}["id"]["identity"]
        expect((identity["always"], identity["start"]), (True, 100), "identity options")
        expect(inspector.get_pk_constraint("sa_order")["constrained_columns"], ["id"], "primary key")
        expect(
            [i["column_names"] for i in inspector.get_indexes("sa_order")],
            [["customer"]],
            "indexes",
        )
        expect(
            [u["column_names"] for u in inspector.get_unique_constraints("sa_customer")],
            [["name"]],
            "unique constraints",
        )
        expect(
            [c["name"] for c in inspector.get_check_constraints("sa_customer")],
            ["credit_not_negative"],
            "check constraints",
        )
        reflected = MetaData()
        reflected.reflect(engine)
        expect(sorted(reflected.tables), ["sa_customer", "sa_order", "sa_ticket"], "metadata.reflect")
        table = Table("sa_ticket", MetaData(), autoload_with=engine)
        expect([c.name for c in table.columns], ["id", "note"], "autoloaded columns")

    check("reflection of tables, keys, indexes and constraints", reflection)

    check("drop_all in a transaction", lambda: Base.metadata.drop_all(engine))
    check(
        "nothing left after drop_all",
        lambda: expect(inspect(engine).get_table_names(), [], "tables after drop_all"),
    )

    return finish("SQLAlchemy client")


if __name__ == "__main__":
    sys.exit(main())
