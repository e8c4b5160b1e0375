"""The main thread's blocked calls are broken: gunicorn's sync worker over real HTTP.

``INTERRUPT_AFTER=2s`` with gunicorn's ``--timeout 30``: a view stuck in
``time.sleep(60)``, in a socket read from a partner that never answers, or on
a PostgreSQL row lock answers 500 within seconds, the worker serves on, the
span is ERROR with the ``SlowRequestInterrupted`` exception event, and the
database transaction is rolled back.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from opentelemetry.trace import SpanKind

from otel_slowstack import SlowRequestInterrupted
from otel_slowstack.lifecycle import interrupt_signal
from support.sdk import Sdk
from support.spans import samples
from support.servers import APPS, gunicorn, wait_until

SETTINGS = dict(
    OTEL_PYTHON_SLOWSTACK_THRESHOLD="500",
    OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="off",
    OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER="2s",
)


@pytest.fixture(scope="module")
def sync_worker(receiver_for_module):
    with gunicorn(
        receiver_for_module.endpoint,
        app="interrupt_app:app",
        extra_args=["--pythonpath", str(APPS), "--timeout", "30"],
        **SETTINGS,
    ) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1)
        yield server


def interrupted(server, receiver, path: str) -> dict:
    """GET ``path``: a 500 long before gunicorn's timeout, then a 200 from the same worker.
    Returns the request's span as the backend got it."""
    workers = server.worker_pids()
    began = time.monotonic()
    status, _ = server.get(path, timeout=60)
    took = time.monotonic() - began
    assert status == 500, server.log()
    assert took < 10, took  # 2 s and the watchdog's wake-up; generous for a loaded machine
    assert server.get("/") == (200, "ok\n")
    assert server.worker_pids() == workers  # the same worker, alive
    assert "WORKER TIMEOUT" not in server.log()
    route = path.split("?")[0]
    span = receiver.wait_for(lambda s: s["kind"] == "server" and s["name"] == f"GET {route}" and s["status"] == "error")[0]
    assert samples(span)[-1]["slowstack.trigger"] == "interrupt"
    (raised,) = [e["attributes"] for e in span["events"] if e["name"] == "exception"]
    assert raised["exception.type"].endswith("SlowRequestInterrupted")
    return raised


@pytest.mark.e2e
def test_time_sleep_is_broken(sync_worker, receiver_for_module):
    raised = interrupted(sync_worker, receiver_for_module, "/sleep?seconds=60")
    assert 'time.sleep(float(request.args["seconds"]))' in raised["exception.stacktrace"]


@pytest.mark.e2e
def test_a_socket_read_from_a_partner_that_never_answers_is_broken(sync_worker, receiver_for_module):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        raised = interrupted(sync_worker, receiver_for_module, f"/socket?port={silent.getsockname()[1]}")
    assert "connection.recv(1)" in raised["exception.stacktrace"]


@pytest.mark.e2e
def test_a_postgresql_row_lock_wait_is_broken_and_rolled_back(sync_worker, receiver_for_module, postgres_dsn):
    psycopg = pytest.importorskip("psycopg")
    table = f"interrupt_accounts_{os.getpid()}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, balance int NOT NULL)")
        admin.execute(f"INSERT INTO {table} VALUES (1, 1000), (2, 1000)")
        try:
            with psycopg.connect(postgres_dsn) as holder:  # another session holds row 1
                holder.execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
                raised = interrupted(sync_worker, receiver_for_module, f"/pg?table={table}")
                # The request's UPDATE of row 2 was rolled back: the row is free and unchanged.
                with psycopg.connect(postgres_dsn) as probe:
                    row = probe.execute(f"SELECT balance FROM {table} WHERE id = 2 FOR UPDATE NOWAIT").fetchone()
                assert row == (1000,)
                holder.rollback()
        finally:
            admin.execute(f"DROP TABLE IF EXISTS {table}")
    assert "in pay" in raised["exception.stacktrace"]


# -- in process, on pytest's own main thread -----------------------------------


def test_the_handler_chains_the_previous_one_and_never_raises_outside_a_span():
    previous_calls: list = []
    interrupt_signal._after_fork()  # as in a fresh process: earlier tests may have installed it
    before = signal.signal(interrupt_signal.SIGNAL, lambda signum, frame: previous_calls.append(signum))
    sdk = Sdk(threshold=100, snapshot_after="off", interrupt_after=200)
    tracer = sdk.tracer
    try:
        began = time.monotonic()
        with pytest.raises(SlowRequestInterrupted):
            with tracer.start_as_current_span("GET /stuck", kind=SpanKind.SERVER):
                time.sleep(30)  # broken at once by the signal, on the main thread
        assert time.monotonic() - began < 10
        assert signal.getsignal(interrupt_signal.SIGNAL) is not None
        with tracer.start_as_current_span("GET /fast", kind=SpanKind.SERVER):
            pass
        os.kill(os.getpid(), interrupt_signal.SIGNAL)  # a stray one, outside any span: not ours
        time.sleep(0.2)
        assert previous_calls == [interrupt_signal.SIGNAL]
    finally:
        sdk.shutdown()
        signal.signal(interrupt_signal.SIGNAL, before)
        interrupt_signal._after_fork()  # as new: the next test installs again


def test_an_event_loop_on_the_main_thread_blocked_in_a_sync_call_is_broken():
    import asyncio

    interrupt_signal._after_fork()  # as in a fresh process
    sdk = Sdk(threshold=100, snapshot_after="off", interrupt_after=200)
    tracer = sdk.tracer

    async def handler() -> None:
        with tracer.start_as_current_span("GET /legacy", kind=SpanKind.SERVER):
            time.sleep(30)  # a sync call inside async code: the whole loop waits

    began = time.monotonic()
    try:
        with pytest.raises(SlowRequestInterrupted):
            asyncio.run(handler())
    finally:
        sdk.shutdown()
    assert time.monotonic() - began < 10
