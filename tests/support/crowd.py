"""Thousands of threads each holding a SERVER span: the shape of "every request
is stuck at once", shared by tests/test_reliability_many_threads.py and
benchmarks/many_threads.py."""

from __future__ import annotations

import threading
import time

from opentelemetry.trace import SpanKind

THREADS = 3000


class Crowd:
    """THREADS threads that each hold one SERVER span of the round's tracer."""

    def __init__(self) -> None:
        self.tracer = None
        self.go = threading.Event()
        self.stop = threading.Event()
        self.opened = threading.Semaphore(0)
        self.closed = threading.Semaphore(0)
        self.quit = False
        size = threading.stack_size()
        threading.stack_size(256 * 1024)
        try:
            self.threads = [threading.Thread(target=self._hold, daemon=True) for _ in range(THREADS)]
            for t in self.threads:
                t.start()
        finally:
            threading.stack_size(size)

    def _hold(self) -> None:
        while True:
            self.go.wait()
            if self.quit:
                return
            with self.tracer.start_as_current_span("GET /stuck", kind=SpanKind.SERVER):
                self.opened.release()
                self.stop.wait()
            self.closed.release()

    def round(self, tracer, seconds: float) -> float:
        """Open every span, count the application's progress per second, close them."""
        self.tracer = tracer
        self.stop.clear()
        self.go.set()
        for _ in range(THREADS):
            self.opened.acquire()
        self.go.clear()
        done = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:  # the application's own work
            for _ in range(1000):
                done += 1
        rate = done / (time.monotonic() - start)
        self.stop.set()
        for _ in range(THREADS):
            self.closed.acquire()
        return rate

    def close(self) -> None:
        self.quit = True
        self.go.set()
        for t in self.threads:
            t.join(5)
