"""The stress workload run by tests/test_stress.py in a process of its own.

For STRESS_SECONDS it keeps otel-slowstack busy in every way that once hurt:
hundreds of short-lived threads and asyncio tasks whose spans end right at
their sample time (threshold 5 ms, spans of 2-9 ms), database child spans
counted under them, processors created and dropped (their providers with
them), and forks in between whose children do the same and check
themselves. It prints one JSON line of counts; the exit status says whether
the process (and every child) survived.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import sys
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from otel_slowstack import SlowStackProcessor

SECONDS = float(os.environ.get("STRESS_SECONDS", "30"))


class Counting(SpanExporter):
    """Counts what is exported, by span name prefix, holding nothing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.samples = 0

    def export(self, spans):
        with self.lock:
            for span in spans:
                if span.name.startswith("GET "):
                    self.requests += 1
                self.samples += sum(1 for e in span.events if e.name == "slowstack.sample")
        return SpanExportResult.SUCCESS


class Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}"[:300])


class Setup:
    def __init__(self, exporter: Counting) -> None:
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.processor = SlowStackProcessor(
            tracer_provider=self.provider, threshold=5, interval=3, max_samples=3, snapshot_after=6
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("stress")


def request(tracer, index: int) -> None:
    with tracer.start_as_current_span(f"GET /r/{index % 7}", kind=SpanKind.SERVER):
        if index % 3 == 0:
            with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={
                "db.system": "sqlite", "db.statement": f"SELECT * FROM t WHERE id = {index}"}):
                time.sleep(0.001)
        time.sleep(random.uniform(0.002, 0.009))


async def async_request(tracer, index: int) -> None:
    with tracer.start_as_current_span(f"GET /a/{index % 5}", kind=SpanKind.SERVER):
        await asyncio.sleep(random.uniform(0.002, 0.009))
        if index % 4 == 0:
            time.sleep(0.004)  # holds the loop a moment


def threads_round(setup: Setup, count: int) -> int:
    threads = [threading.Thread(target=request, args=(setup.tracer, i)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count


def tasks_round(setup: Setup, count: int) -> int:
    async def main() -> None:
        await asyncio.gather(*(async_request(setup.tracer, i) for i in range(count)))

    asyncio.run(main())
    return count


def child(exporter: Counting) -> int:
    """In a forked child: the same work with a fresh setup; 0 if all is well."""
    try:
        setup = Setup(exporter)
        threads_round(setup, 100)
        tasks_round(setup, 100)
        deadline = time.monotonic() + 5
        while setup.processor.watched_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        return 0 if setup.processor.watched_count() == 0 else 3
    except BaseException:
        return 4


def main() -> int:
    logged = Logged()
    logging.getLogger().addHandler(logged)
    exporter = Counting()
    alive: list = []
    made = 0
    started = 0
    forks = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        if not alive or random.random() < 0.3:
            alive.append(Setup(exporter))
            made += 1
        if len(alive) > 3:
            dropped = alive.pop(0)
            dropped.processor.shutdown() if random.random() < 0.5 else None
            del dropped
            gc.collect()
        setup = random.choice(alive)
        started += threads_round(setup, 300)
        started += tasks_round(setup, 300)
        if made % 3 == 0 and hasattr(os, "fork"):
            pid = os.fork()
            if pid == 0:
                os._exit(child(Counting()))
            forks += 1
            deadline = time.monotonic() + 30
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    print(json.dumps({"error": "a forked child hung"}))
                    return 1
                time.sleep(0.05)
            if status != 0:
                print(json.dumps({"error": f"a forked child ended with status {status}"}))
                return 1
            made += 1
    deadline = time.monotonic() + 10
    while any(s.processor.watched_count() for s in alive) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({
        "requests_started": started,
        "requests_exported": exporter.requests,
        "samples": exporter.samples,
        "processors_made": made,
        "forks": forks,
        "registry": sum(s.processor.watched_count() for s in alive),
        "logged": logged.messages[:20],
        "logged_count": len(logged.messages),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
