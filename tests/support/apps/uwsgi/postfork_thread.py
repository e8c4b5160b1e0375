"""The shop, with a ``uwsgidecorators.postfork`` function that starts a thread in each worker.

``uwsgidecorators`` replaces ``uwsgi.post_fork_hook`` with its own chain when
imported; otel-slowstack's after-fork cleanup must still run in each worker,
and before that thread starts (the cleanup would delete its state).
"""

import threading
import time

import uwsgidecorators

from shop import app  # noqa: F401  (served: --module postfork_thread:app)


def _housekeeping() -> None:
    while True:
        time.sleep(0.2)


@uwsgidecorators.postfork
def start_housekeeping() -> None:
    threading.Thread(target=_housekeeping, name="housekeeping", daemon=True).start()
