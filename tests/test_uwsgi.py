"""uWSGI's harakiri: the master SIGKILLs a worker stuck past ``--harakiri``.

Nothing runs in the worker at that point, so the evidence must already be at
the backend: the snapshot spans taken at ``SNAPSHOT_AFTER`` and each doubling.
The batch processor waits a minute between exports here, so the receiver has
them only because otel-slowstack flushed each one as it was taken.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from support.spans import server_span
from support.servers import BIN, EXAMPLES, Server, otel_env, wait_until
from test_snapshot_kill import SETTINGS, snapshots_of_stuck

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uwsgi_binary() -> Path:
    """The venv's uWSGI; skip without it (fail under CI=true, where the test extra installs it)."""
    uwsgi = Path(BIN) / "uwsgi"
    if not uwsgi.exists():
        message = "uWSGI is not installed: `pip install otel-slowstack[uwsgi]` builds it from source (needs gcc)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the test extra installs it)")
        pytest.skip(message)
    return uwsgi


def test_uwsgi_harakiri(receiver):
    uwsgi = uwsgi_binary()
    port = _free_port()
    argv = [
        str(BIN / "opentelemetry-instrument"), str(uwsgi),
        "--http", f"127.0.0.1:{port}", "--master", "--workers", "1",
        "--enable-threads", "--lazy-apps", "--die-on-term",
        "--harakiri", "3",
        "--wsgi-file", "shop.py", "--callable", "app",
    ]
    env = otel_env(receiver.endpoint, **SETTINGS)
    with Server(argv, env, cwd=EXAMPLES, ready=r"uWSGI http bound on [\d.]+:(\d+)") as server:
        assert wait_until(lambda: "ready in" in server.log(), timeout=30), server.log()
        server.get_in_background("/stuck?seconds=120")
        assert wait_until(lambda: "HARAKIRI ON WORKER" in server.log(), timeout=30), server.log()
        assert wait_until(lambda: "killed by signal 9" in server.log(), timeout=30), server.log()
        snapshots_of_stuck(receiver)
        # What uWSGI does at its own stop is not under test, and a respawned
        # worker sometimes takes the SDK's 30 s batch-processor join there.
        os.killpg(server.process.pid, signal.SIGKILL)
    assert not [s for s in receiver.spans if server_span("/stuck")(s)]
