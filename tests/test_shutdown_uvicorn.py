"""uvicorn's graceful stop, plain and under gunicorn's ``UvicornWorker`` (issue 10, item 10).

uvicorn replaces the SIGTERM handler while it serves and waits for the
requests in flight: the request stuck in ``/stuck`` must get a snapshot span
at the signal (trigger ``signal``), named after its route, while it runs on.
"""

from __future__ import annotations

import os
import signal

import pytest

from support.spans import samples
from support.servers import gunicorn, uvicorn, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = dict(OTEL_PYTHON_SLOWSTACK_THRESHOLD="300", OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="300")


def _snapshot(trigger: str):
    return lambda s: s["name"] == "slowstack.snapshot" and samples(s)[0]["slowstack.trigger"] == trigger


def _assert_graceful_snapshot(receiver, send_sigterm) -> None:
    receiver.wait_for(_snapshot("snapshot"), timeout=45)  # the request is in flight
    send_sigterm()
    snap = receiver.wait_for(_snapshot("signal"), timeout=30)[0]
    assert samples(snap)[0]["code.stacktrace"].rstrip().endswith("in wait_for_lock")
    attributes = snap["attributes"]
    assert attributes["slowstack.subject"] == "GET /stuck"
    assert attributes["slowstack.subject.http.route"] == "/stuck"
    assert attributes["slowstack.subject.http.request.method"] == "GET"
    assert "http.route" not in attributes
    # Graceful: the request itself was not ended.
    assert not [s for s in receiver.spans if s["kind"] == "server" and s["name"] == "GET /stuck"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_plain_uvicorn_graceful_stop(receiver, signum):
    with uvicorn(receiver.endpoint, **SETTINGS) as server:
        server.get_in_background("/stuck?seconds=60")
        _assert_graceful_snapshot(receiver, lambda: server.signal(signum))
        server.stop(timeout=2)  # uvicorn would wait the minute out


def test_gunicorn_uvicorn_worker_sigterm(receiver):
    with gunicorn(receiver.endpoint, app="async_shop:app", worker_class="uvicorn_worker.UvicornWorker", **SETTINGS) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1 and "Booting worker" in server.log()), server.log()
        (pid,) = server.worker_pids()
        server.get_in_background("/stuck?seconds=60")
        _assert_graceful_snapshot(receiver, lambda: os.kill(pid, signal.SIGTERM))
        server.stop(timeout=2)
