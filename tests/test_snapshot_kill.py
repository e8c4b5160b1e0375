"""SIGKILL leaves no time for anything: the snapshot must already be at the backend.

The batch processor waits a minute between exports here, so a snapshot the
receiver has was flushed by otel-slowstack the moment it was taken.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from support.spans import samples, server_span
from support.servers import gunicorn, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = dict(
    OTEL_PYTHON_SLOWSTACK_THRESHOLD="300",
    OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="500",
    OTEL_BSP_SCHEDULE_DELAY="60000",
)


def snapshots_of_stuck(receiver) -> list:
    """The snapshot spans of the stuck request, each checked for its stack."""
    found = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot", timeout=30)
    for snap in found:
        sample = samples(snap)[0]
        assert sample["slowstack.trigger"] == "snapshot"
        assert sample["code.stacktrace"].rstrip().endswith("in wait_for_lock")
    return found


def test_sigkill_after_the_snapshot_point(receiver):
    with gunicorn(receiver.endpoint, extra_args=["--timeout", "60"], **SETTINGS) as server:
        assert wait_until(lambda: len(server.worker_pids()) == 1 and "Booting worker" in server.log())
        (pid,) = server.worker_pids()
        server.get_in_background("/stuck?seconds=120")
        time.sleep(2)  # well past the 500 ms snapshot point; no peeking at the receiver
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: pid not in server.worker_pids())
        snapshots = snapshots_of_stuck(receiver)
    assert not [s for s in receiver.spans if server_span("/stuck")(s)]  # the request's own span died with it
    assert len({s["trace_id"] for s in snapshots}) == 1
