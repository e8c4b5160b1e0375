"""A small Flask shop with the hotspots otel-slowstack is for.

Run it under OpenTelemetry, unchanged::

    OTEL_PYTHON_SLOWSTACK_THRESHOLD=500 \\
    opentelemetry-instrument --traces_exporter console \\
        gunicorn --chdir examples shop:app

Pages:

- ``/``                      fast
- ``/report?seconds=3``      waits on a slow upstream call (a sleep)
- ``/prices?n=3000``         a non-linear algorithm burning CPU (``&seconds=2``:
  for at least that long, however fast the machine)
- ``/orders``                an N+1: one query per order (SQLite)
- ``/stuck?seconds=60``      stuck far longer than any server timeout
- ``/lock?seconds=3``        waits on a PostgreSQL row lock another session holds
  (``SHOP_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/test``)
"""

from __future__ import annotations

import contextvars
import os
import sqlite3
import tempfile
import threading
import time

from flask import Flask, request

app = Flask(__name__)
DB_PATH = os.environ.get("SHOP_DB", os.path.join(tempfile.gettempdir(), "otel-slowstack-shop.db"))


@app.get("/")
def index() -> str:
    return "ok\n"


@app.get("/report")
def report() -> str:
    seconds = float(request.args.get("seconds", "3"))
    rates = fetch_exchange_rates(seconds)
    return f"report ready ({rates} rates)\n"


def fetch_exchange_rates(seconds: float) -> int:
    """Stands for a slow upstream HTTP call: the request just waits."""
    time.sleep(seconds)
    return 42


@app.get("/prices")
def prices() -> str:
    n = int(request.args.get("n", "3000"))
    seconds = float(request.args.get("seconds", "0"))
    catalogue = list(range(n))
    # A fixed amount of work takes 0.4 s on one machine and 2 s on a busier
    # one; with ``seconds`` the page computes for that long on any machine.
    deadline = time.monotonic() + seconds
    collisions = count_price_collisions(catalogue)
    while time.monotonic() < deadline:
        collisions = count_price_collisions(catalogue)
    return f"{collisions} collisions\n"


def count_price_collisions(prices: list) -> int:
    """Quadratic on purpose: fine for ten items, minutes for a big catalogue."""
    collisions = 0
    for i, a in enumerate(prices):
        for b in prices[i + 1 :]:
            if (a * 7919) % 10007 == (b * 7919) % 10007:
                collisions += 1
    return collisions


@app.get("/stuck")
def stuck() -> str:
    seconds = float(request.args.get("seconds", "60"))
    wait_for_lock(seconds)
    return "finally\n"


def wait_for_lock(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _connect() -> sqlite3.Connection:
    connection = sqlite3.connect(DB_PATH)
    connection.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
    connection.execute("CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT)")
    if connection.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0:
        connection.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"customer {i}") for i in range(50)])
        connection.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i % 50) for i in range(50)])
        connection.commit()
    return connection


@app.get("/orders")
def orders() -> str:
    connection = _connect()
    try:
        # Through cursors: the sqlite3 instrumentation traces cursors, not Connection.execute.
        rows = connection.cursor().execute("SELECT id, customer_id FROM orders").fetchall()
        names = [customer_name(connection, customer_id) for _, customer_id in rows]
        return f"{len(names)} orders\n"
    finally:
        connection.close()


def customer_name(connection: sqlite3.Connection, customer_id: int) -> str:
    """The N+1: one query per order instead of one JOIN."""
    return connection.cursor().execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]


@app.post("/checkout")
def checkout() -> str:
    """Records an order, then waits for a payment provider that may never answer.

    The order is written inside a transaction that commits only when the
    payment went through; any exception on the way (``SlowRequestInterrupted``
    included) rolls it back.
    """
    customer_id = int(request.args.get("customer", "1"))
    seconds = float(request.args.get("seconds", "0"))
    connection = _connect()
    try:
        with connection:  # commit on success, roll back on any exception
            connection.execute("INSERT INTO orders (customer_id) VALUES (?)", (customer_id,))
            wait_for_payment(seconds)
        return "paid\n"
    finally:
        connection.close()


def wait_for_payment(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


# -- PostgreSQL: a request waiting on a row lock ----------------------------------

#: A libpq connection string; psycopg 3 (``pip install 'psycopg[binary]'``) talks to it.
SHOP_POSTGRES = os.environ.get("SHOP_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNTS_TABLE = os.environ.get("SHOP_ACCOUNTS_TABLE", "shop_accounts")


@app.get("/lock")
def lock() -> tuple:
    """Waits ``seconds`` on a row that another session holds with SELECT ... FOR UPDATE.

    What a slow sample of this request shows: the stack in the driver's wait,
    a CPU ratio near 0, and ``slowstack.in_flight`` naming the locking query.
    """
    seconds = float(request.args.get("seconds", "3"))
    if not ACCOUNTS_TABLE.isidentifier():
        return f"SHOP_ACCOUNTS_TABLE={ACCOUNTS_TABLE!r} is not a plain table name\n", 500
    try:
        import psycopg
    except ImportError:
        return "/lock needs psycopg 3: pip install 'psycopg[binary]'\n", 503
    try:
        connection = psycopg.connect(SHOP_POSTGRES, connect_timeout=3)
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable (set SHOP_POSTGRES to a libpq connection string): {exc}\n", 503
    with connection:
        _create_account(connection)
        holder = _hold_account(psycopg, seconds)
        balance = withdraw(connection, 10)  # waits here until the other session commits
        holder.join()
    return f"balance {balance}\n", 200


def _create_account(connection) -> None:
    connection.execute(f"CREATE TABLE IF NOT EXISTS {ACCOUNTS_TABLE} (id int PRIMARY KEY, balance int NOT NULL)")
    connection.execute(f"INSERT INTO {ACCOUNTS_TABLE} VALUES (1, 1000) ON CONFLICT (id) DO NOTHING")
    connection.commit()


def _hold_account(psycopg, seconds: float) -> threading.Thread:
    """Another session (a batch job, a colleague's psql) takes the row lock and sits on it."""
    locked = threading.Event()

    def hold() -> None:
        try:
            with psycopg.connect(SHOP_POSTGRES) as other:
                other.execute(f"SELECT balance FROM {ACCOUNTS_TABLE} WHERE id = 1 FOR UPDATE")
                locked.set()
                time.sleep(seconds)
        finally:
            locked.set()

    # A fresh context: the other session is not part of this request's trace.
    holder = threading.Thread(target=contextvars.Context().run, args=(hold,), daemon=True)
    holder.start()
    locked.wait(10)
    return holder


def withdraw(connection, amount: int) -> int:
    """Takes the row lock itself, so it waits for the other session first."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT balance FROM {ACCOUNTS_TABLE} WHERE id = 1 FOR UPDATE")
        balance = cursor.fetchone()[0] - amount
        cursor.execute(f"UPDATE {ACCOUNTS_TABLE} SET balance = %s WHERE id = 1", (balance,))
    connection.commit()
    return balance
