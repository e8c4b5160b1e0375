"""Celery end to end: a real worker under ``opentelemetry-instrument``, the real
Redis broker and result backend (database ``REDIS_DB``, flushed first), the
real OTLP exporter and receiver (issue 15).

One worker per pool serves a module's tests; each test looks only at spans
that started after it did. What must reach the backend: samples of a slow
task, with ``cpu_ratio`` telling a computing task from a waiting one; no
result-backend calls counted as the task's; a soft time limit ending the
span ERROR; and, for a task killed by its hard time limit (SIGTERM, then
SIGKILL 0.1 s later) or by ``kill -TERM`` of its pool process, the final
sample (trigger ``signal``) in a snapshot span named after the task. A warm
shutdown ends nothing early.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from support.services import require_service
from support.otlp_receiver import Receiver
from support.spans import samples
from support.servers import BIN, EXAMPLES, Process, otel_env, wait_until

pytestmark = pytest.mark.e2e

REDIS_DB = 13
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
SETTINGS = dict(
    OTEL_PYTHON_SLOWSTACK_THRESHOLD="300",
    OTEL_PYTHON_SLOWSTACK_INTERVAL="300",
    OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER="600",
)


class Worker(Process):
    """``opentelemetry-instrument celery -A celery_tasks worker`` with one pool; stopped cold (SIGQUIT)."""

    def __init__(self, endpoint: str, pool: str, concurrency: int = 1, queue: str = "celery") -> None:
        self.queue = queue
        env = otel_env(endpoint, CELERY_BROKER_URL=BROKER, OTEL_SERVICE_NAME="jobs", **SETTINGS)
        if os.environ.get("SLOWSTACK_TEST_WITHOUT"):  # a control run: the same worker without us
            env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "slowstack"
        # The gevent pool needs gevent's patching before the SDK starts: the
        # launcher in examples/ patches, then instruments, then runs Celery.
        start = (
            [sys.executable, str(EXAMPLES / "celery_gevent.py")] if pool == "gevent"
            else [str(BIN / "opentelemetry-instrument"), str(BIN / "celery")]
        )
        argv = [
            *start, "-A", "celery_tasks", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO", "--queues", queue,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        super().__init__(argv, env, EXAMPLES)
        if not self.wait_for_line(r"celery@\S+ ready\.", timeout=90):
            self.stop()
            raise AssertionError("the Celery worker did not start:\n" + self.log())

    def stop(self, timeout: float = 20.0, signum: int = signal.SIGQUIT) -> None:
        super().stop(timeout, signum)


@pytest.fixture(scope="module")
def client():
    require_service("Redis", "127.0.0.1", 6379)
    import redis
    from celery import Celery

    redis.Redis.from_url(BROKER).flushdb()
    app = Celery("client", broker=BROKER, backend=BROKER)
    yield app
    redis.Redis.from_url(BROKER).flushdb()


def _worker(pool: str, concurrency: int = 1, queue: str = "celery"):
    """A receiver and a worker of its own, on a queue of its own."""
    receiver = Receiver().__enter__()
    worker = Worker(receiver.endpoint, pool, concurrency, queue)
    return receiver, worker


@pytest.fixture(scope="module", params=["prefork", "threads", "gevent"])
def pool(request, client):
    receiver, worker = _worker(
        request.param, concurrency=1 if request.param == "prefork" else 2, queue=f"shared-{request.param}"
    )
    yield request.param, receiver, worker
    worker.stop()
    receiver.__exit__(None)


def _since(t0: int, predicate):
    return lambda s: s["start_ns"] >= t0 and predicate(s)


def _task_span(name: str):
    return lambda s: s["kind"] == "consumer" and s["name"] == f"run/celery_tasks.{name}"


def _snapshot(name: str, trigger: str):
    def match(s: dict) -> bool:
        return (
            s["name"] == "slowstack.snapshot"
            and s["attributes"].get("slowstack.subject") == f"run/celery_tasks.{name}"
            and samples(s)[0]["slowstack.trigger"] == trigger
        )

    return match


def _assert_named(snap: dict, name: str) -> None:
    attributes = snap["attributes"]
    assert attributes["slowstack.subject"] == f"run/celery_tasks.{name}"
    assert attributes["slowstack.subject.celery.task_name"] == f"celery_tasks.{name}"
    assert attributes["slowstack.subject.messaging.system"] == "celery"


def test_slow_task_samples_and_no_result_backend_calls_counted(pool, client):
    _, receiver, worker = pool
    t0 = time.time_ns()
    client.send_task("celery_tasks.reindex", kwargs={"seconds": 1.5}, queue=worker.queue).get(timeout=60)
    span = receiver.wait_for(_since(t0, _task_span("reindex")))[0]
    found = samples(span)
    assert len(found) >= 3, found
    for sample in found:
        assert "in wait_for_index" in sample["code.stacktrace"]
        assert sample["slowstack.cpu_ratio"] < 0.3
    # The task did no database work; Celery storing its result in Redis is not the task's.
    assert "slowstack.db.count" not in span["attributes"], span["attributes"]
    snap = receiver.wait_for(_since(t0, _snapshot("reindex", "snapshot")))[0]
    _assert_named(snap, "reindex")
    assert "slowstack.cpu_ratio" in samples(snap)[0]


def test_cpu_bound_task_cpu_ratio(pool, client):
    _, receiver, worker = pool
    t0 = time.time_ns()
    client.send_task("celery_tasks.crunch", kwargs={"seconds": 1.5}, queue=worker.queue).get(timeout=60)
    span = receiver.wait_for(_since(t0, _task_span("crunch")))[0]
    # (A sample due as the task returns shows Celery storing the result.)
    found = [s for s in samples(span) if "in compute_checksums" in s["code.stacktrace"]]
    assert len(found) >= 3, samples(span)
    # Computing, even on a loaded machine: well above a waiting task's near zero.
    assert max(s["slowstack.cpu_ratio"] for s in found) > 0.3, found


def test_soft_time_limit(pool, client):
    name, receiver, worker = pool
    if name != "prefork":
        pytest.skip("Celery's time limits need the prefork pool")
    t0 = time.time_ns()
    client.send_task("celery_tasks.stuck", kwargs={"seconds": 30}, soft_time_limit=1.2, queue=worker.queue)
    span = receiver.wait_for(_since(t0, _task_span("stuck")), timeout=60)[0]
    assert span["status"] == "error"
    found = samples(span)
    # The last sample may catch Celery formatting the SoftTimeLimitExceeded it raised.
    stacks = [s["code.stacktrace"] for s in found]
    assert len(found) >= 2 and all("in wait_for_lock" in stack for stack in stacks[:-1]), stacks


def test_hard_time_limit_kill_keeps_the_final_sample(pool, client):
    name, receiver, worker = pool
    if name != "prefork":
        pytest.skip("Celery's time limits need the prefork pool")
    t0 = time.time_ns()
    client.send_task("celery_tasks.stuck", kwargs={"seconds": 30}, time_limit=1.5, queue=worker.queue)
    # SIGTERM, SIGKILL 0.1 s later: the final sample left first, on its own.
    final = receiver.wait_for(_since(t0, _snapshot("stuck", "signal")), timeout=60)[0]
    _assert_named(final, "stuck")
    assert samples(final)[0]["code.stacktrace"].rstrip().endswith("in wait_for_lock")
    assert samples(final)[0]["slowstack.elapsed_ms"] >= 1400
    # The snapshots taken before the kill are there, named, too.
    earlier = receiver.wait_for(_since(t0, _snapshot("stuck", "snapshot")))
    _assert_named(earlier[0], "stuck")


def test_retry_group_and_chord_runs_are_spans_of_their_own(pool, client):
    from celery import chord, group

    _, receiver, worker = pool
    t0 = time.time_ns()
    client.send_task("celery_tasks.fetch_feed", kwargs={"seconds": 0.8}, queue=worker.queue).get(timeout=60)
    runs = receiver.wait_for(_since(t0, _task_span("fetch_feed")), count=2)
    t1 = time.time_ns()
    member = client.signature("celery_tasks.reindex", kwargs={"seconds": 0.8}, queue=worker.queue)
    job = group(member.clone() for _ in range(2))
    job.apply_async().get(timeout=60)
    members = receiver.wait_for(_since(t1, _task_span("reindex")), count=2)
    t2 = time.time_ns()
    callback = client.signature("celery_tasks.tally", queue=worker.queue)
    assert chord(member.clone() for _ in range(2))(callback).get(timeout=60) == 2
    members += receiver.wait_for(_since(t2, _task_span("reindex")), count=2)
    (tallied,) = receiver.wait_for(_since(t2, _task_span("tally")))
    assert not samples(tallied)  # the callback was quick: none of its members' samples
    for span in runs + members:
        found = samples(span)
        assert found, span
        duration_ms = (span["end_ns"] - span["start_ns"]) / 1e6
        # Each run's samples are its own: measured from its own start, in its own code.
        assert all(s["slowstack.elapsed_ms"] <= duration_ms for s in found)
        assert all("in wait_for_index" in s["code.stacktrace"] for s in found[:-1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT])
def test_kill_of_the_pool_process_mid_task(pool, client, signum):
    name, receiver, worker = pool
    if name != "prefork":
        pytest.skip("only the prefork pool runs tasks in pool processes")
    t0 = time.time_ns()
    client.send_task("celery_tasks.stuck", kwargs={"seconds": 30}, queue=worker.queue)
    receiver.wait_for(_since(t0, _snapshot("stuck", "snapshot")), timeout=60)  # in flight
    (child,) = worker.worker_pids()
    os.kill(child, signum)
    final = receiver.wait_for(_since(t0, _snapshot("stuck", "signal")))[0]
    _assert_named(final, "stuck")
    # The process lived long enough to end the task's span too.
    span = receiver.wait_for(_since(t0, _task_span("stuck")))[0]
    assert span["status"] == "error" and signal.Signals(signum).name in span["status_message"]
    assert samples(span)[-1]["slowstack.trigger"] == "signal"
    assert final["parent_span_id"] == span["span_id"]
    assert wait_until(lambda: len(worker.worker_pids()) == 1 and child not in worker.worker_pids(), timeout=30)


@pytest.mark.parametrize("pool_name", ["prefork", "threads"])
def test_warm_shutdown_mid_task_ends_nothing_early(client, pool_name):
    receiver, worker = _worker(pool_name, queue=f"warm-{pool_name}")
    try:
        client.send_task("celery_tasks.reindex", kwargs={"seconds": 3}, queue=worker.queue)
        receiver.wait_for(_snapshot("reindex", "snapshot"), timeout=60)  # in flight
        worker.process.send_signal(signal.SIGTERM)
        if pool_name == "threads":
            # The task runs in the process that got the signal: a snapshot at once.
            snap = receiver.wait_for(_snapshot("reindex", "signal"))[0]
            _assert_named(snap, "reindex")
        span = receiver.wait_for(_task_span("reindex"), timeout=60)[0]
        assert span["status"] != "error", span["status_message"]
        assert span["end_ns"] - span["start_ns"] >= 2.9e9  # it was let finish
        assert worker.process.wait(60) == 0, worker.log()
    finally:
        worker.stop()
        receiver.__exit__(None)


@pytest.mark.parametrize("pool_name", ["threads", "gevent"])
def test_cold_shutdown_mid_task(client, pool_name):
    receiver, worker = _worker(pool_name, concurrency=2, queue=f"cold-{pool_name}")
    try:
        client.send_task("celery_tasks.stuck", kwargs={"seconds": 20}, queue=worker.queue)
        receiver.wait_for(_snapshot("stuck", "snapshot"), timeout=60)  # in flight
        worker.process.send_signal(signal.SIGQUIT)
        final = receiver.wait_for(_snapshot("stuck", "signal"))[0]
        _assert_named(final, "stuck")
        span = receiver.wait_for(_task_span("stuck"))[0]
        assert span["status"] == "error" and "SIGQUIT" in span["status_message"]
    finally:
        worker.stop()
        receiver.__exit__(None)
