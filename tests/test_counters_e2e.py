"""Counters, N+1 events and the call in flight from real `opentelemetry-instrument gunicorn`.

What a backend receives over OTLP from the example apps: the SQLite N+1 and
the PostgreSQL row-lock wait of examples/shop.py (default semantic
conventions), and the SQLAlchemy lazy-loading N+1 of examples/orders_pg.py
(``OTEL_SEMCONV_STABILITY_OPT_IN=database,http``).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from support.spans import samples, server_span
from support.servers import gunicorn

pytestmark = pytest.mark.e2e


def n_plus_one(span: dict) -> list:
    return samples(span, "slowstack.n_plus_one")


def innermost_line(stack: str) -> str:
    return [line for line in stack.splitlines() if line.startswith("  File ")][-1]


def drop(dsn: str, *tables: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        for table in tables:
            connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")


def test_shop_n_plus_one_and_row_lock_reach_the_backend(receiver: Any, postgres_dsn: str, tmp_path: Any) -> None:
    accounts = f"slowstack_accounts_{uuid.uuid4().hex[:10]}"
    try:
        with gunicorn(
            receiver.endpoint,
            OTEL_PYTHON_SLOWSTACK_THRESHOLD="300",
            SHOP_DB=str(tmp_path / "shop.db"),
            SHOP_POSTGRES=postgres_dsn,
            SHOP_ACCOUNTS_TABLE=accounts,
        ) as server:
            assert server.get("/orders") == (200, "50 orders\n")
            status, body = server.get("/lock?seconds=2.5")
            assert status == 200, body + server.log()
            orders = receiver.wait_for(server_span("/orders"))[0]
            locked = receiver.wait_for(server_span("/lock"))[0]
    finally:
        drop(postgres_dsn, accounts)

    attributes = orders["attributes"]
    assert attributes["slowstack.db.count"] == 51
    assert attributes["slowstack.db.duration_ms"] > 0
    assert "slowstack.http.count" not in attributes
    (event,) = n_plus_one(orders)
    assert event["db.query.text"] == "SELECT name FROM customers WHERE id = ?"
    assert event["slowstack.repeat.count"] == 10
    assert re.search(r'shop\.py", line \d+, in customer_name$', innermost_line(event["code.stacktrace"]))
    assert "in orders" in event["code.stacktrace"]

    first = samples(locked)[0]
    assert re.fullmatch(rf"SELECT balance FROM {accounts} WHERE id = \? FOR UPDATE \(\d+ ms\)", first["slowstack.in_flight"]), first
    assert first["slowstack.cpu_ratio"] < 0.3
    assert "psycopg" in first["code.stacktrace"] and "in withdraw" in first["code.stacktrace"]
    assert locked["attributes"]["slowstack.db.count"] >= 3


def test_orm_lazy_loading_n_plus_one_with_stable_semconv(receiver: Any, postgres_dsn: str) -> None:
    prefix = f"slowstack_{uuid.uuid4().hex[:10]}_"
    try:
        with gunicorn(
            receiver.endpoint,
            app="orders_pg:app",
            OTEL_SEMCONV_STABILITY_OPT_IN="database,http",
            ORDERS_PG=postgres_dsn,
            ORDERS_PG_PREFIX=prefix,
        ) as server:
            for path in ("/orders/eager", "/orders", "/orders/eager"):  # the first one creates the tables
                status, body = server.get(path)
                assert status == 200, body + server.log()
            spans = receiver.wait_for(lambda s: s["kind"] == "server", count=3)
    finally:
        drop(postgres_dsn, f"{prefix}orders", f"{prefix}customers")

    spans.sort(key=lambda s: s["start_ns"])
    lazy, eager = spans[1], spans[2]
    assert lazy["attributes"]["slowstack.db.count"] == 51
    (event,) = n_plus_one(lazy)
    table = f"{prefix}customers"
    assert re.fullmatch(rf"SELECT {table}\.id, {table}\.name FROM {table} WHERE {table}\.id = \?(::INTEGER)?", event["db.query.text"])
    assert event["slowstack.repeat.count"] == 10
    assert "orders_pg.py" in event["code.stacktrace"] and "in customer_names" in event["code.stacktrace"]
    assert eager["attributes"]["slowstack.db.count"] == 2
    assert n_plus_one(eager) == []
