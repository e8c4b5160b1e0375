"""The classic N+1, through an ORM: SQLAlchemy lazy loading on PostgreSQL.

Run it under OpenTelemetry, unchanged::

    pip install flask gunicorn sqlalchemy 'psycopg[binary]' \\
        opentelemetry-distro opentelemetry-instrumentation-flask \\
        opentelemetry-instrumentation-psycopg otel-slowstack
    ORDERS_PG=postgresql://postgres@127.0.0.1:5432/test \\
    opentelemetry-instrument --traces_exporter console \\
        gunicorn --chdir examples orders_pg:app

Pages:

- ``/orders``         one SELECT for the orders, then one more per order as
  ``order.customer`` is first touched: the server span gets
  ``slowstack.db.count`` = 51 and one ``slowstack.n_plus_one`` event whose
  stack ends in ``customer_names`` below
- ``/orders/eager``   the fix, ``selectinload``: two SELECTs, whatever the
  number of orders, and no event

The tables (``ORDERS_PG_PREFIX`` + ``customers``/``orders``) are created and
filled by the first request, whose counts include that work. When PostgreSQL does not answer, pages say so with a 503.
"""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import ForeignKey, Integer, String, create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, relationship, selectinload

DSN = os.environ.get("ORDERS_PG", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = os.environ.get("ORDERS_PG_PREFIX", "example_")
ORDERS = 50

app = Flask(__name__)
engine = create_engine(DSN.replace("postgresql://", "postgresql+psycopg://", 1))
_prepared = False


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = f"{PREFIX}customers"
    id = mapped_column(Integer, primary_key=True)
    name = mapped_column(String, nullable=False)


class Order(Base):
    __tablename__ = f"{PREFIX}orders"
    id = mapped_column(Integer, primary_key=True)
    customer_id = mapped_column(ForeignKey(Customer.id), nullable=False)
    customer = relationship(Customer, lazy="select")  # loaded on first access: one query each


def _prepare() -> None:
    """Tables and rows, once per process (so later requests count only their own queries)."""
    global _prepared
    if _prepared:
        return
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.scalar(select(func.count()).select_from(Order)) == 0:
            session.add_all([Customer(id=i, name=f"customer {i}") for i in range(ORDERS)])
            session.flush()
            session.add_all([Order(id=i, customer_id=i) for i in range(ORDERS)])
            session.commit()
    _prepared = True


def customer_names(orders: list) -> list:
    """Reads like one loop over loaded rows; runs one SELECT per order."""
    return [order.customer.name for order in orders]


@app.get("/orders")
def orders() -> tuple:
    try:
        _prepare()
        with Session(engine) as session:
            rows = session.scalars(select(Order).order_by(Order.id)).all()
            return f"{len(customer_names(rows))} orders\n", 200
    except OperationalError as exc:
        return f"PostgreSQL is not reachable (set ORDERS_PG): {exc.orig}\n", 503


@app.get("/orders/eager")
def orders_eager() -> tuple:
    try:
        _prepare()
        with Session(engine) as session:
            rows = session.scalars(select(Order).options(selectinload(Order.customer)).order_by(Order.id)).all()
            return f"{len(customer_names(rows))} orders\n", 200
    except OperationalError as exc:
        return f"PostgreSQL is not reachable (set ORDERS_PG): {exc.orig}\n", 503
