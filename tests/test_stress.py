"""Try to break it: thousands of short-lived threads and tasks, spans ending at
their sample time, forks, processors created and dropped — for 30 s.

The workload (tests/support/stress_workload.py) runs in a process of its own
so that a crash is an exit status here, not a dead test run. What a user
would see: the process survives, every request span is exported once,
nothing is logged (no "sampling failed", no "Failed to detach context"), and
no watched span is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKLOAD = Path(__file__).resolve().parent / "support" / "stress_workload.py"


def test_thirty_seconds_of_threads_tasks_forks_and_dropped_processors():
    seconds = os.environ.get("STRESS_SECONDS", "30")
    done = subprocess.run(
        [sys.executable, str(WORKLOAD)],
        env={**os.environ, "STRESS_SECONDS": seconds},
        capture_output=True, text=True, timeout=float(seconds) + 240,
    )
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-4000:])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["requests_started"] > 1000
    assert report["requests_exported"] == report["requests_started"]  # each exactly once
    assert report["samples"] > 0  # it did sample them
    assert report["forks"] > 0
    assert report["registry"] == 0
    assert report["logged_count"] == 0, report["logged"]
