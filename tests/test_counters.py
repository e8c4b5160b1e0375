"""Counters, the call in flight and N+1 events, against real databases and HTTP.

The real SDK with an in-memory exporter, the real contrib instrumentors and
real SQLite, PostgreSQL (psycopg 3, SQLAlchemy ORM), Redis and HTTP servers.
Each test builds its own provider and instruments the libraries it needs
with it. These run in the pytest process's semantic-convention mode (the
contrib reads OTEL_SEMCONV_STABILITY_OPT_IN once per process);
test_counters_semconv.py runs both modes in subprocesses.
"""

from __future__ import annotations

import contextvars
import http.server
import re
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from opentelemetry.trace import SpanKind

from otel_slowstack import conventions, counters, sql
from otel_slowstack import sample
from support.sdk import Sdk
from support.spans import samples

SERVER = SpanKind.SERVER


def call_kind(span: Any) -> Any:
    """What the processor counts a span as: ``conventions.call_kind`` of CLIENT spans."""
    return conventions.call_kind(span.attributes) if span.kind is SpanKind.CLIENT else None


class Tracing(Sdk):
    """``Sdk`` with instrumentors bound to its provider; N+1 events on, no early samples."""

    def __init__(self, instrumentors: tuple, **settings: Any) -> None:
        options = {"threshold": "60s", "n_plus_one": 10, "snapshot_after": None}
        options.update(settings)
        super().__init__(**options)
        self.instrumentors = []
        for make, kwargs in instrumentors:
            instrumentor = make()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
            instrumentor.instrument(tracer_provider=self.provider, **kwargs)
            self.instrumentors.append(instrumentor)

    def request(self, name: str = "GET /test") -> Any:
        """A SERVER span started by the caller's own frame, as a WSGI middleware's would be."""
        return self.tracer.start_as_current_span(name, kind=SERVER)

    def finished(self, name: str = "GET /test") -> Any:
        return super().finished(name)

    def children_of_trace(self, root: Any) -> list:
        return [
            s
            for s in self.exporter.get_finished_spans()
            if s.context.trace_id == root.context.trace_id and s.context.span_id != root.context.span_id
        ]

    def watched(self, span: Any) -> Any:
        return self.processor._spans[span.get_span_context().span_id]

    def close(self) -> None:
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.shutdown()


@pytest.fixture
def tracing() -> Iterator[Any]:
    made: list = []

    def make(*instrumentors: Any, **settings: Any) -> Tracing:
        pairs = tuple(i if isinstance(i, tuple) else (i, {}) for i in instrumentors)
        made.append(Tracing(pairs, **settings))
        return made[-1]

    yield make
    for t in made:
        t.close()


def sqlite3_instrumentor() -> Any:
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    return SQLite3Instrumentor


def psycopg_instrumentor() -> tuple:
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    return (PsycopgInstrumentor, {"enable_commenter": False})


def repeat_events(span: Any) -> list:
    return samples(span, conventions.N_PLUS_ONE_EVENT)


def innermost_line(stack: str) -> str:
    return [line for line in stack.splitlines() if line.startswith("  File ")][-1]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- SQLite ----------------------------------------------------------------------


def customer_name(cursor: Any, customer_id: int) -> str:
    """The N+1 of the SQLite tests: one query per order."""
    return cursor.execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]


def list_orders(issued: list) -> list:
    connection = sqlite3.connect(":memory:")
    cursor = connection.cursor()
    for statement in (
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers VALUES (0, 'ann'), (1, 'bob'), (2, 'cy'), (3, 'di'), (4, 'ed'), (5, 'fay'),"
        " (6, 'gus'), (7, 'hal'), (8, 'ivy'), (9, 'jo'), (10, 'kim'), (11, 'lou')",
        "SELECT id FROM customers ORDER BY id",
    ):
        cursor.execute(statement)
        issued.append(statement)
    ids = [row[0] for row in cursor.fetchall()]
    names = []
    for customer_id in ids:
        names.append(customer_name(cursor, customer_id))
        issued.append("n+1")
    connection.close()
    return names


def test_sqlite_counts_and_one_n_plus_one_event(tracing: Any) -> None:
    t = tracing(sqlite3_instrumentor())
    issued: list = []
    with t.request():
        assert len(list_orders(issued)) == 12
    span = t.finished()
    database_spans = [s for s in t.children_of_trace(span) if call_kind(s) == conventions.DB]

    assert span.attributes["slowstack.db.count"] == len(issued) == len(database_spans) == 15
    assert 0 < span.attributes["slowstack.db.duration_ms"] <= (span.end_time - span.start_time) / 1e6
    assert "slowstack.http.count" not in span.attributes
    assert not samples(span)  # never slow, and the N+1 is reported all the same

    (event,) = repeat_events(span)
    assert event["db.query.text"] == "SELECT name FROM customers WHERE id = ?"
    assert event["slowstack.repeat.count"] == 10
    stack = event["code.stacktrace"]
    assert innermost_line(stack).endswith("in customer_name")
    assert __file__ in innermost_line(stack)
    assert "in list_orders" in stack
    assert "opentelemetry" not in stack and "otel_slowstack" not in stack
    assert "_pytest" not in stack  # starts at the span's entry, as samples do
    assert len(stack.encode()) <= 2048


@pytest.mark.parametrize("setting, expected", [(3, 3), ("off", None)])
def test_n_plus_one_threshold_and_off(tracing: Any, setting: Any, expected: Any) -> None:
    t = tracing(sqlite3_instrumentor(), n_plus_one=setting)
    with t.request():
        list_orders([])
    span = t.finished()
    assert span.attributes["slowstack.db.count"] == 15
    events = repeat_events(span)
    if expected is None:
        assert events == []
    else:
        assert [e["slowstack.repeat.count"] for e in events] == [expected]


def query_in_worker(path: str, customer_id: int) -> str:
    connection = sqlite3.connect(path)
    try:
        return customer_name(connection.cursor(), customer_id)
    finally:
        connection.close()


def test_grandchildren_and_threads_with_the_context_count(tracing: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "shop.db")
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    setup.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"c{i}") for i in range(12)])
    setup.commit()
    setup.close()
    t = tracing(sqlite3_instrumentor())
    with t.request():
        with t.tracer.start_as_current_span("load page"):  # an INTERNAL span between
            with t.tracer.start_as_current_span("load customers"):
                query_in_worker(path, 0)  # a grandchild's child
        with ThreadPoolExecutor(max_workers=3) as pool:
            # handed over with the context: counted, N+1 included
            jobs = [pool.submit(contextvars.copy_context().run, query_in_worker, path, i) for i in range(11)]
            assert len([j.result() for j in jobs]) == 11
            # handed over without it: the span is a root of its own, not ours
            pool.submit(query_in_worker, path, 1).result()
    span = t.finished()
    assert span.attributes["slowstack.db.count"] == 12
    (event,) = repeat_events(span)
    assert event["slowstack.repeat.count"] == 10
    stack = event["code.stacktrace"]
    assert innermost_line(stack).endswith("in customer_name")
    assert "in query_in_worker" in stack
    assert t.processor.watched_count() == 0


def test_counts_from_many_threads_at_once_add_up(tracing: Any) -> None:
    t = tracing()

    def calls(worker: int) -> None:
        for i in range(150):
            attributes = {"db.system.name": "postgresql", "db.query.text": f"SELECT {worker} FROM t{i}"}
            with t.tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes=attributes):
                pass
            with t.tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.method": "GET"}):
                pass

    with t.request():
        with ThreadPoolExecutor(max_workers=4) as pool:
            for job in [pool.submit(contextvars.copy_context().run, calls, w) for w in range(4)]:
                job.result()
    attributes = t.finished().attributes
    assert attributes["slowstack.db.count"] == attributes["slowstack.http.count"] == 600


def test_a_call_traced_twice_counts_once(tracing: Any) -> None:
    """An ORM span around the driver's span for the same statement: one call."""
    t = tracing(sqlite3_instrumentor())
    statement = "SELECT name FROM customers WHERE id = ?"
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with t.request():
        for customer_id in range(3):
            # what SQLAlchemy's instrumentation does: a sibling span, started
            # before and ended after the driver's, with the same statement
            orm = t.tracer.start_span("SELECT test", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite", "db.statement": statement})
            connection.cursor().execute(statement, (customer_id,))
            orm.end()
        with t.tracer.start_as_current_span("connect", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite"}):
            connection.cursor().execute("SELECT 1")  # a wrapper without a statement of its own
    span = t.finished()
    assert span.attributes["slowstack.db.count"] == 4


def test_spans_outside_a_watched_span_are_not_tracked(tracing: Any) -> None:
    t = tracing(sqlite3_instrumentor())
    with t.tracer.start_as_current_span("batch job", kind=SpanKind.INTERNAL) as job:
        connection = sqlite3.connect(":memory:")
        for _ in range(12):
            connection.cursor().execute("SELECT 1")
            assert t.processor.watched_count() == 0
    assert t.finished("batch job").attributes == job.attributes == {}
    assert repeat_events(t.finished("batch job")) == []


def test_memory_per_request_is_bounded(tracing: Any) -> None:
    t = tracing(sqlite3_instrumentor())
    connection = sqlite3.connect(":memory:")
    cursor = connection.cursor()
    distinct = sql.CACHE_SIZE + 500
    with t.request() as request:
        for _ in range(5):
            cursor.execute("SELECT 'known early'")
        for i in range(distinct):
            cursor.execute(f"SELECT {i} AS c_{i}")
        watched = t.watched(request)
        assert len(watched.calls.statements) == counters.MAX_STATEMENTS
        for _ in range(5):
            cursor.execute("SELECT 'known early'")  # tracked before the cap: still counted
        for _ in range(12):
            cursor.execute("SELECT 'too late'")  # new after the cap: not tracked
        assert len(watched.calls.statements) == counters.MAX_STATEMENTS
    assert sql.cache_size() <= sql.CACHE_SIZE
    span = t.finished()
    assert span.attributes["slowstack.db.count"] == distinct + 22
    assert [e["db.query.text"] for e in repeat_events(span)] == ["SELECT ?"]
    assert t.processor.watched_count() == 0


def test_n_plus_one_events_per_span_are_capped(tracing: Any) -> None:
    t = tracing(sqlite3_instrumentor(), n_plus_one=2)
    cursor = sqlite3.connect(":memory:").cursor()
    with t.request():
        for i in range(counters.MAX_REPEAT_EVENTS + 10):
            for _ in range(2):
                cursor.execute(f"SELECT 1 AS c_{i}")
    assert len(repeat_events(t.finished())) == counters.MAX_REPEAT_EVENTS


# -- the call in flight ------------------------------------------------------------


def test_in_flight_names_the_innermost_open_call(tracing: Any) -> None:
    t = tracing()
    with t.request() as request:
        watched = t.watched(request)
        assert sample.in_flight(watched, time.time_ns()) is None
        with t.tracer.start_as_current_span("checkout"):
            statement = "SELECT id, balance FROM accounts WHERE id = 42 AND owner = 'ann' FOR UPDATE"
            with t.tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql", "db.statement": statement}):
                time.sleep(0.02)
                flight = sample.in_flight(watched, time.time_ns())
        assert re.fullmatch(r"SELECT id, balance FROM accounts WHERE id = \? AND owner = \? FOR UPDATE \(\d+ ms\)", flight)
        assert int(flight.rsplit("(", 1)[1].split()[0]) >= 20
        with t.tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "url.full": "https://api.example.com/rates?token=s3cret"}):
            flight = sample.in_flight(watched, time.time_ns())
        assert re.fullmatch(r"GET api\.example\.com \(\d+ ms\)", flight)
        assert sample.in_flight(watched, time.time_ns()) is None


def test_in_flight_prefers_the_call_waited_on_longest(tracing: Any) -> None:
    t = tracing()
    started = threading.Event()
    release = threading.Event()

    def slow_call() -> None:
        with t.tracer.start_as_current_span("old call", kind=SpanKind.CLIENT):
            started.set()
            release.wait(10)

    with t.request() as request:
        with ThreadPoolExecutor(max_workers=1) as pool:
            job = pool.submit(contextvars.copy_context().run, slow_call)
            assert started.wait(10)
            with t.tracer.start_as_current_span("new call", kind=SpanKind.CLIENT):
                flight = sample.in_flight(t.watched(request), time.time_ns())
            release.set()
            job.result()
    assert flight.startswith("old call (")


# -- HTTP clients ----------------------------------------------------------------------


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rates"
    server.shutdown()
    server.server_close()


def test_http_client_calls_are_counted(tracing: Any, http_url: str) -> None:
    import httpx
    import requests
    import urllib3
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    t = tracing(RequestsInstrumentor, URLLib3Instrumentor, HTTPXClientInstrumentor)
    with t.request():
        assert requests.get(http_url, timeout=10).text == "ok"
        assert urllib3.PoolManager().request("GET", http_url).data == b"ok"
        with httpx.Client() as client:
            assert client.get(http_url).text == "ok"
    span = t.finished()
    http_spans = [s for s in t.children_of_trace(span) if call_kind(s) == conventions.HTTP]
    assert span.attributes["slowstack.http.count"] == len(http_spans) == 3
    assert 0 < span.attributes["slowstack.http.duration_ms"] <= (span.end_time - span.start_time) / 1e6
    assert "slowstack.db.count" not in span.attributes


# -- Redis ----------------------------------------------------------------------------


def test_redis_commands_are_database_calls(tracing: Any, redis_url: str) -> None:
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    t = tracing(RedisInstrumentor)
    client = redis.Redis.from_url(redis_url)
    keys = [unique("slowstack_test") for _ in range(12)]
    try:
        with t.request():
            for key in keys[:5]:
                client.set(key, "1", ex=60)
            for key in keys:
                client.get(key)
        span = t.finished()
        assert span.attributes["slowstack.db.count"] == 17
        (event,) = repeat_events(span)
        assert event["db.query.text"] == "GET ?"
        assert "in test_redis_commands_are_database_calls" in event["code.stacktrace"]
    finally:
        client.delete(*keys)
        client.close()


# -- PostgreSQL ---------------------------------------------------------------------


@contextmanager
def pg_table(dsn: str, columns: str, rows: str = "") -> Iterator[str]:
    import psycopg

    name = unique("slowstack_test")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {name} ({columns})")
        if rows:
            connection.execute(f"INSERT INTO {name} VALUES {rows}")
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {name}")


def test_postgres_calls_are_counted(tracing: Any, postgres_dsn: str) -> None:
    import psycopg

    t = tracing(psycopg_instrumentor())
    with pg_table(postgres_dsn, "id int PRIMARY KEY, total numeric") as table:
        with psycopg.connect(postgres_dsn) as connection:
            with t.request():
                with connection.cursor() as cursor:
                    for i in range(4):
                        cursor.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, i * 10))
                    cursor.execute(f"SELECT sum(total) FROM {table} WHERE id IN (1, 2, 3)")
                    assert cursor.fetchone()[0] == 60
                connection.commit()
    span = t.finished()
    assert span.attributes["slowstack.db.count"] == 5
    assert span.attributes["slowstack.db.duration_ms"] > 0
    assert repeat_events(span) == []


def test_sqlalchemy_lazy_loading_n_plus_one(tracing: Any, postgres_dsn: str) -> None:
    orders_by_customer, database_spans, span = run_lazy_loading(tracing(psycopg_instrumentor()), postgres_dsn)
    assert len(orders_by_customer) == 12
    assert span.attributes["slowstack.db.count"] == len(database_spans) >= 13
    (event,) = repeat_events(span)
    assert event["slowstack.repeat.count"] == 10
    assert re.fullmatch(r"SELECT \S+\.id, \S+\.name FROM \S+ WHERE \S+\.id = \?(::INTEGER)?", event["db.query.text"]), event
    stack = event["code.stacktrace"]
    assert "sqlalchemy" in stack  # the lazy loader, reached from ...
    assert "in customers_of" in stack  # ... the attribute access in the application's loop


def test_sqlalchemy_and_driver_instrumentation_together_count_each_call_once(tracing: Any, postgres_dsn: str) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    t = tracing(psycopg_instrumentor(), (SQLAlchemyInstrumentor, {"skip_dep_check": True}))
    _, database_spans, span = run_lazy_loading(t, postgres_dsn)
    driver_spans = [s for s in database_spans if s.instrumentation_scope.name.endswith("psycopg")]
    orm_spans = [s for s in database_spans if s.instrumentation_scope.name.endswith("sqlalchemy")]
    orm_statements = [s for s in orm_spans if conventions.statement_text(s.attributes)]
    assert orm_statements, "the SQLAlchemy instrumentation made no statement spans: the test proves nothing"
    # each statement counted once; SQLAlchemy's own "connect" (a pool checkout) is a call of its own
    assert span.attributes["slowstack.db.count"] == len(driver_spans) + len(orm_spans) - len(orm_statements)
    assert [e["slowstack.repeat.count"] for e in repeat_events(span)] == [10]


def customers_of(orders: list) -> list:
    """The classic N+1: each ``order.customer`` is one lazy SELECT."""
    return [(order.id, order.customer.name) for order in orders]


def run_lazy_loading(t: Tracing, dsn: str) -> tuple:
    from sqlalchemy import ForeignKey, Integer, String, create_engine, select
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, relationship

    suffix = uuid.uuid4().hex[:10]

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = f"slowstack_customers_{suffix}"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String, nullable=False)

    class Order(Base):
        __tablename__ = f"slowstack_orders_{suffix}"
        id = mapped_column(Integer, primary_key=True)
        customer_id = mapped_column(ForeignKey(Customer.id), nullable=False)
        customer = relationship(Customer, lazy="select")

    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            session.add_all([Customer(id=i, name=f"customer {i}") for i in range(12)])
            session.add_all([Order(id=i, customer_id=i) for i in range(12)])
            session.commit()
        with t.request():
            with Session(engine) as session:
                orders = session.scalars(select(Order).order_by(Order.id)).all()
                result = customers_of(orders)
        span = t.finished()
        database_spans = [s for s in t.children_of_trace(span) if call_kind(s) == conventions.DB]
        return result, database_spans, span
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def test_row_lock_wait_is_shown_in_flight(tracing: Any, postgres_dsn: str) -> None:
    import psycopg

    t = tracing(psycopg_instrumentor(), threshold=200, interval=200, max_samples=3)
    with pg_table(postgres_dsn, "id int PRIMARY KEY, balance int", "(1, 100)") as table:
        locked = threading.Event()
        holder_failed: list = []
        request_span: list = []

        def hold_the_row() -> None:
            """A second connection holds the row until the request has been sampled waiting on it."""
            try:
                with psycopg.connect(postgres_dsn) as other:
                    other.execute(f"SELECT balance FROM {table} WHERE id = 1 FOR UPDATE")
                    locked.set()
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        if request_span and samples(request_span[0]):
                            break
                        time.sleep(0.02)
                    other.commit()
            except Exception as exc:  # reported by the assertion below
                holder_failed.append(exc)
                locked.set()

        holder = threading.Thread(target=hold_the_row, daemon=True)
        holder.start()
        assert locked.wait(30) and not holder_failed, holder_failed
        with psycopg.connect(postgres_dsn) as connection:
            with t.request() as span:
                request_span.append(span)
                withdraw(connection, table)
        holder.join(30)
    assert not holder_failed, holder_failed
    span = t.finished()
    first = samples(span)[0]
    flight = first["slowstack.in_flight"]
    assert re.fullmatch(rf"SELECT balance FROM {table} WHERE id = \? FOR UPDATE \(\d+ ms\)", flight), flight
    assert first["slowstack.cpu_ratio"] < 0.2
    assert "psycopg" in first["code.stacktrace"]  # waiting in the driver ...
    assert "in withdraw" in first["code.stacktrace"]  # ... called from the application
    assert first["slowstack.db.count"] == 0  # the waiting call has not ended yet
    assert span.attributes["slowstack.db.count"] == 2


def withdraw(connection: Any, table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT balance FROM {table} WHERE id = 1 FOR UPDATE")
        cursor.execute(f"UPDATE {table} SET balance = balance - 10 WHERE id = 1")
    connection.commit()
