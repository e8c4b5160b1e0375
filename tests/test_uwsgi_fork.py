"""uWSGI forks its workers in C (issue 10, item 1): no crash, and the whole stack.

Without Python's after-fork cleanup a worker inherits the thread states of
the master's threads (the SDK's export thread, started by
``opentelemetry-instrument``), and reading every thread's frame then walked
freed stacks: SIGSEGV in most runs, and a stack cut at Flask's
``dispatch_request`` in the others. The command is the issue's own, in each
of uWSGI's usual modes; each mode serves two rounds of stuck requests, each
round ended by harakiri (a SIGKILL), so each round runs in freshly forked
workers. What must hold, as seen from outside: no worker died of any signal
but harakiri's SIGKILL, and for every request a snapshot reached the receiver
with the view and the function it is stuck in.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from support.spans import innermost, samples, server_span
from support.servers import BIN, EXAMPLES, Server, otel_env, wait_until
from test_uwsgi import _free_port, uwsgi_binary

pytestmark = pytest.mark.e2e

UWSGI = Path(BIN) / "uwsgi"  # checked by uwsgi_binary() in each test
SETTINGS = dict(
    OTEL_PYTHON_SLOWSTACK_THRESHOLD="500",
    OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="1500",
    OTEL_BSP_SCHEDULE_DELAY="60000",  # only otel-slowstack's own flush gets a snapshot out before the kill
)
ROUNDS = 2
REQUESTS_PER_ROUND = 2

MODES = {
    "default": [],
    "lazy-apps": ["--lazy-apps"],
    "threads": ["--threads", "2"],  # the command, which crashed
    "threads-lazy-apps": ["--threads", "2", "--lazy-apps"],  # crashed too
    "enable-threads": ["--enable-threads"],
}


def _snapshot_traces(receiver) -> dict:
    """trace id -> the stacks of its snapshot spans."""
    found: dict = {}
    for span in list(receiver.spans):
        if span["name"] == "slowstack.snapshot":
            found.setdefault(span["trace_id"], []).extend(s["code.stacktrace"] for s in samples(span))
    return found


@pytest.mark.parametrize("mode", list(MODES))
def test_stuck_requests_in_forked_workers(receiver, mode):
    uwsgi_binary()
    argv = [
        str(BIN / "opentelemetry-instrument"), str(UWSGI),
        "--http", f"127.0.0.1:{_free_port()}", "--master", "--processes", "2", *MODES[mode],
        "--harakiri", "5", "--die-on-term", "--module", "shop:app",
    ]  # fmt: skip
    with Server(argv, otel_env(receiver.endpoint, **SETTINGS), cwd=EXAMPLES, ready=r"uWSGI http bound on [\d.]+:(\d+)") as server:
        try:
            assert wait_until(lambda: server.log().count("spawned uWSGI worker") == 2, timeout=60), server.log()
            for round_ in range(ROUNDS):
                requests = [server.get_in_background(f"/stuck?seconds=60&r={round_}-{i}") for i in range(REQUESTS_PER_ROUND)]
                expected = (round_ + 1) * REQUESTS_PER_ROUND
                wait_until(lambda: len(_snapshot_traces(receiver)) >= expected, timeout=60)
                # This round's harakiri, before the next round (on a loaded machine
                # the requests may otherwise still be queued behind a respawn).
                wait_until(lambda: server.log().count("HARAKIRI ON WORKER") > round_, timeout=60)
                for request in requests:
                    request.join(60)  # answered (502) once harakiri has killed its worker
                killed = server.log().count("killed by signal")
                assert wait_until(lambda: server.log().count("Respawned uWSGI worker") >= killed, timeout=60), server.log()
            log = server.log()
        finally:
            # uWSGI's own stop may wait on the SDK's 30 s batch-processor join: not under test.
            os.killpg(server.process.pid, signal.SIGKILL)
    signals = re.findall(r"killed by signal (\d+)", log)
    assert signals and set(signals) == {str(int(signal.SIGKILL))}, log
    assert log.count("HARAKIRI ON WORKER") >= ROUNDS, log
    assert "after-fork cleanup" not in log, log  # no worker fell back to "no stacks"
    traces = _snapshot_traces(receiver)
    assert len(traces) == ROUNDS * REQUESTS_PER_ROUND, (sorted(traces), log)
    for stacks in traces.values():
        assert stacks
        for stack in stacks:
            assert " in stuck\n" in stack and innermost(stack) == ["wait_for_lock"], stack
    assert not [s for s in receiver.spans if server_span("/stuck")(s)]  # harakiri took every one
