"""uWSGI set-ups beyond ``opentelemetry-instrument`` alone (issue 10, item 1).

- ``uwsgidecorators.postfork`` starting a thread in each worker: the module
  replaces ``uwsgi.post_fork_hook`` at import, yet the after-fork cleanup runs
  in every worker, and before that thread.
- Tracing set up by the application itself, loaded in each worker
  (``--lazy-apps``), with a Python thread in the master: otel-slowstack is first
  imported in a worker. While that worker has a single thread the cleanup runs
  there and stacks are complete; once the app has started a thread first, no
  stack is read at all (no crash), and one warning per worker says what to do.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from support.spans import innermost, server_span, stacks
from support.servers import BIN, EXAMPLES, UWSGI_APPS, Server, otel_env, wait_until
from test_uwsgi import _free_port, uwsgi_binary

pytestmark = pytest.mark.e2e

UWSGI = Path(BIN) / "uwsgi"  # checked by uwsgi_binary() in each test
WARNING = "after-fork cleanup"


def _serve(receiver, argv: list, **env: str) -> tuple:
    """Two concurrent 2 s requests to ``/stuck``: ``(their server spans, the uWSGI log)``."""
    uwsgi_binary()
    argv = argv + [
        "--http", f"127.0.0.1:{_free_port()}", "--master", "--processes", "2", "--threads", "2",
        "--die-on-term", "--pythonpath", str(EXAMPLES),
    ]  # fmt: skip
    environment = otel_env(receiver.endpoint, OTEL_PYTHON_SLOWSTACK_THRESHOLD="500", **env)
    with Server(argv, environment, cwd=UWSGI_APPS, ready=r"uWSGI http bound on [\d.]+:(\d+)") as server:
        try:
            assert wait_until(lambda: server.log().count("spawned uWSGI worker") == 2, timeout=60), server.log()
            requests = [server.get_in_background(f"/stuck?seconds=2&i={i}") for i in range(2)]
            for request in requests:
                request.join(90)
            answers = [r.result.get("answer", (None,))[0] for r in requests]
            assert answers == [200, 200], ([r.result for r in requests], server.log())
            spans = receiver.wait_for(server_span("/stuck"), timeout=60, count=2)
            log = server.log()
        finally:
            # uWSGI's own stop may wait on the SDK's 30 s batch-processor join: not under test.
            os.killpg(server.process.pid, signal.SIGKILL)
    assert "killed by signal" not in log, log
    return spans, log


def _assert_complete_stacks(spans: list) -> None:
    for span in spans:
        assert stacks(span), span
        for stack in stacks(span):
            assert " in stuck\n" in stack and innermost(stack) == ["wait_for_lock"], stack


def test_uwsgidecorators_postfork_thread(receiver):
    argv = [str(BIN / "opentelemetry-instrument"), str(UWSGI), "--module", "postfork_thread:app"]
    spans, log = _serve(receiver, argv)
    _assert_complete_stacks(spans)
    assert WARNING not in log, log


def test_lazy_app_with_its_own_tracing(receiver):
    argv = [str(UWSGI), "--lazy-apps", "--shared-import", "master_thread", "--module", "handmade:app"]
    spans, log = _serve(receiver, argv)
    _assert_complete_stacks(spans)
    assert WARNING not in log, log


def test_lazy_app_that_starts_a_thread_before_importing_otel_slowstack(receiver):
    argv = [str(UWSGI), "--lazy-apps", "--shared-import", "master_thread", "--module", "handmade:app"]
    spans, log = _serve(receiver, argv, HANDMADE_THREAD_FIRST="1")
    assert not [stacks(span) for span in spans if stacks(span)]  # nothing read, nothing made up
    warnings = re.findall(r"otel-slowstack: process (\d+) was forked without", log)
    assert warnings and len(warnings) == len(set(warnings)) <= 2, log  # once per worker
