"""SQLAlchemy 2 (psycopg 3 dialect) as a masked identity through the clsf
proxy (tests/tests/tools.rs runs it): connect (the dialect's start-up
queries), reflection, Core, the ORM, streaming with yield_per.

Usage: sqlalchemy_check.py HOST PORT DBNAME CA_FILE TOKEN

Prints one `key value` line per check. Exits non-zero on anything
unexpected.
"""
import sys

from sqlalchemy import MetaData, Table, URL, create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

host, port, dbname, ca, token = sys.argv[1:6]

engine = create_engine(URL.create(
    "postgresql+psycopg", username="workload", password=token, host=host,
    port=int(port), database=dbname,
    query={"sslmode": "verify-full", "sslrootcert": ca, "hostaddr": "127.0.0.1",
           "connect_timeout": "10"},
))

with engine.connect() as c:
    print("connect", c.scalar(text("SELECT 1")), engine.dialect.server_version_info[0])

insp = inspect(engine)
print("tables", *sorted(insp.get_table_names()))
print("views", *insp.get_view_names())
print("columns", *[c["name"] for c in insp.get_columns("customers")])
print("pk", *insp.get_pk_constraint("customers")["constrained_columns"])
fk = insp.get_foreign_keys("orders")[0]
print("fk", fk["referred_table"], *fk["referred_columns"])
print("indexes", *sorted(i["name"] for i in insp.get_indexes("events")))

customers = Table("customers", MetaData(), autoload_with=engine)
with engine.connect() as c:
    row = c.execute(select(customers.c.email, customers.c.card_number).where(customers.c.id == 1)).one()
    print("core", *row)
    try:
        c.execute(select(customers.c.ssn)).all()
        print("denied", "NOT-DENIED")
    except DBAPIError as e:
        print("denied", e.orig.sqlstate)
    c.rollback()
    print("after_denial", c.scalar(text("SELECT count(*) FROM orders")))
    n = 0
    result = c.execution_options(stream_results=True, max_row_buffer=500).execute(
        text("SELECT id, contact FROM events ORDER BY id"))
    for _ in result:
        n += 1
    print("stream_results", n)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact: Mapped[str]


with Session(engine) as s:
    print("orm", s.get(Customer, 2).email)
    n, first = 0, None
    for ev in s.scalars(select(Event).order_by(Event.id).execution_options(yield_per=1000)):
        n += 1
        first = first or ev.contact
    print("yield_per", n, first)
