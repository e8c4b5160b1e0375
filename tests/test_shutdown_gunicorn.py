"""Real gunicorn killing or stopping a worker in the middle of a stuck request.

What the backend must get: the request's span, ended with status ERROR, its
last ``slowstack.sample`` (trigger ``signal``) showing where the request was
stuck; on a graceful SIGTERM, first a snapshot span taken at the signal.
gunicorn's own handlers must still run after ours.
"""

from __future__ import annotations

import os
import signal

import pytest

from support.spans import samples, server_span
from support.servers import gunicorn, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = dict(OTEL_PYTHON_SLOWSTACK_THRESHOLD="300", OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="off")


def _worker(server) -> int:
    """The pid of the one worker, once it has booted."""
    assert wait_until(lambda: len(server.worker_pids()) == 1 and "Booting worker" in server.log()), server.log()
    return server.worker_pids()[0]


def _stuck_span(receiver, server) -> dict:
    """The one server span of ``/stuck``, when it arrives."""
    found = receiver.wait_for(server_span("/stuck"), timeout=45)
    assert len(found) == 1, found
    return found[0]


def _assert_final(span: dict, signal_name: str) -> None:
    assert span["status"] == "error"
    assert signal_name in span["status_message"]
    final = samples(span)[-1]
    assert final["slowstack.trigger"] == "signal"
    assert final["code.stacktrace"].rstrip().splitlines()[-1].endswith("in wait_for_lock")
    assert "shutdown.py" not in final["code.stacktrace"]


def test_sync_worker_timeout_abort(receiver):
    with gunicorn(receiver.endpoint, extra_args=["--timeout", "2", "--graceful-timeout", "1"], **SETTINGS) as server:
        pid = _worker(server)
        server.get_in_background("/stuck?seconds=120")
        span = _stuck_span(receiver, server)
        _assert_final(span, "SIGABRT")
        # gunicorn's abort handler ran after ours: the worker left through sys.exit.
        assert wait_until(lambda: f"Worker exiting (pid: {pid})" in server.log()), server.log()
        assert "WORKER TIMEOUT" in server.log()


@pytest.mark.parametrize("worker_class, threads", [("sync", 1), ("gthread", 2)])
def test_sigterm_mid_request(receiver, worker_class, threads):
    settings = dict(SETTINGS, OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="300")
    args = ["--timeout", "3", "--graceful-timeout", "1"]
    with gunicorn(receiver.endpoint, worker_class=worker_class, threads=threads, extra_args=args, **settings) as server:
        pid = _worker(server)
        server.get_in_background("/stuck?seconds=120")

        def snapshot(trigger):
            return lambda s: s["name"] == "slowstack.snapshot" and samples(s)[0]["slowstack.trigger"] == trigger

        receiver.wait_for(snapshot("snapshot"))  # the request is in flight, past its threshold
        os.kill(pid, signal.SIGTERM)
        graceful = receiver.wait_for(snapshot("signal"))[0]
        assert samples(graceful)[0]["code.stacktrace"].rstrip().endswith("in wait_for_lock")
        # The request was not ended early; when the worker is finally aborted, it is.
        span = _stuck_span(receiver, server)
        assert graceful["parent_span_id"] == span["span_id"]
        # Named after its subject, so it can be found and grouped without its parent.
        assert graceful["attributes"]["slowstack.subject"] == span["name"]
        assert graceful["attributes"]["slowstack.subject.http.route"] == "/stuck"
        assert graceful["attributes"]["slowstack.subject.http.request.method"] == "GET"
        assert span["end_ns"] > graceful["end_ns"]
        _assert_final(span, "SIGABRT")
        # gunicorn's log is read by a thread: under load it can trail the receiver.
        assert wait_until(lambda: "WORKER TIMEOUT" in server.log()), server.log()


def test_gthread_quick_shutdown(receiver):
    settings = dict(SETTINGS, OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="300")
    args = ["--graceful-timeout", "1"]
    with gunicorn(receiver.endpoint, worker_class="gthread", threads=2, extra_args=args, **settings) as server:
        pid = _worker(server)
        server.get_in_background("/stuck?seconds=120")
        receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")  # in flight
        os.kill(pid, signal.SIGQUIT)
        _assert_final(_stuck_span(receiver, server), "SIGQUIT")
