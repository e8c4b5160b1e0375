"""Background jobs: Celery tasks watched like requests, killed ones included.

Run a worker under OpenTelemetry, unchanged (Redis as broker and result
backend; the ``prefork`` pool, the default, or ``--pool threads``)::

    OTEL_PYTHON_SLOWSTACK_THRESHOLD=500 \\
    opentelemetry-instrument --traces_exporter console \\
        celery --workdir examples -A celery_tasks worker --loglevel INFO

and send it work from anywhere::

    from celery import Celery
    Celery(broker="redis://127.0.0.1:6379/0").send_task("celery_tasks.reindex", kwargs={"seconds": 3})

Tasks:

- ``reindex(seconds)``      waits on I/O: samples with ``cpu_ratio`` near 0
- ``crunch(seconds)``       computes: ``cpu_ratio`` near 1
- ``fetch_feed(seconds)``   waits, then retries once: each run is a span
- ``stuck(seconds)``        waits far longer than any time limit; send it with
                            ``time_limit=2`` (killed by the pool) or
                            ``soft_time_limit=1`` (``SoftTimeLimitExceeded``)
"""

from __future__ import annotations

import os
import time

from celery import Celery

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

app = Celery("celery_tasks", broker=BROKER, backend=os.environ.get("CELERY_RESULT_BACKEND", BROKER))
app.conf.update(
    worker_prefetch_multiplier=1,  # one slow task must not hold others back
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def reindex(seconds: float = 3.0) -> int:
    return wait_for_index(seconds)


def wait_for_index(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        rounds += 1
    return rounds


@app.task
def crunch(seconds: float = 2.0) -> int:
    return compute_checksums(seconds)


def compute_checksums(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        for i in range(10_000):
            total = (total * 31 + i) % 1_000_003
    return total


@app.task(bind=True, max_retries=1)
def fetch_feed(self, seconds: float = 1.0) -> str:
    wait_for_index(seconds)
    if self.request.retries == 0:
        raise self.retry(countdown=1)
    return "fetched"


@app.task
def tally(results: list) -> int:
    """A chord's callback: how many of its header's runs returned."""
    return len(results)


@app.task
def stuck(seconds: float = 60.0) -> str:
    wait_for_lock(seconds)
    return "finally"


def wait_for_lock(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
