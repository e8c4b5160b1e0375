"""A small Flask shop with the hotspots otel-slowstack is for.

Run it under OpenTelemetry, unchanged::

    OTEL_PYTHON_SLOWSTACK_THRESHOLD=500 \\
    opentelemetry-instrument --traces_exporter console \\
        gunicorn --chdir examples shop:app

Pages:

- ``/``                      fast
- ``/report?seconds=3``      waits on a slow upstream call (a sleep)
- ``/prices?n=3000``         a non-linear algorithm burning CPU
- ``/orders``                an N+1: one query per order (SQLite)
- ``/stuck?seconds=60``      stuck far longer than any server timeout
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
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
    return f"{count_price_collisions(list(range(n)))} collisions\n"


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
        rows = connection.execute("SELECT id, customer_id FROM orders").fetchall()
        names = [customer_name(connection, customer_id) for _, customer_id in rows]
        return f"{len(names)} orders\n"
    finally:
        connection.close()


def customer_name(connection: sqlite3.Connection, customer_id: int) -> str:
    """The N+1: one query per order instead of one JOIN."""
    return connection.execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]
