"""How late ``SlowRequestInterrupted`` lands after ``INTERRUPT_AFTER``.

For each case, requests (SERVER spans) that would run far longer are started
one after another; the lateness of one is the time from its deadline (start +
INTERRUPT_AFTER) to the moment its code catches the exception. Cases:

- main thread, blocked in ``time.sleep`` (the signal breaks the call);
- worker thread, in a pure-Python loop (``PyThreadState_SetAsyncExc``);
- worker thread, waiting in short sleeps (lands when one returns);

each idle and with 2 threads burning CPU in pure Python (they compete for
the GIL, which the watchdog and the interrupted thread both need).

    python benchmarks/interrupt_latency.py [requests]
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time

import opentelemetry.sdk.version
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from common import emit, percentile
from otel_slowstack import SlowRequestInterrupted, SlowStackProcessor

INTERRUPT_AFTER_MS = 50


def busy(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def blocked(seconds: float) -> None:
    time.sleep(seconds)


def computing(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def waiting_in_steps(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.001)


def run_requests(tracer, body, requests: int) -> list:
    late = []
    for _ in range(requests):
        began = time.monotonic()
        try:
            with tracer.start_as_current_span("GET /stuck", kind=SpanKind.SERVER):
                body(10.0)
        except SlowRequestInterrupted:
            late.append((time.monotonic() - began) * 1000 - INTERRUPT_AFTER_MS)
    return late


def case(body, on_main_thread: bool, busy_threads: int, requests: int) -> dict:
    provider = TracerProvider()
    provider.add_span_processor(
        SlowStackProcessor(threshold=INTERRUPT_AFTER_MS, max_samples=1, snapshot_after="off", interrupt_after=INTERRUPT_AFTER_MS)
    )
    tracer = provider.get_tracer("bench")
    stop = threading.Event()
    burners = [threading.Thread(target=busy, args=(stop,), daemon=True) for _ in range(busy_threads)]
    for burner in burners:
        burner.start()
    try:
        if on_main_thread:
            late = run_requests(tracer, body, requests)
        else:
            result: list = []
            worker = threading.Thread(target=lambda: result.extend(run_requests(tracer, body, requests)))
            worker.start()
            worker.join()
            late = result
    finally:
        stop.set()
        for burner in burners:
            burner.join()
        provider.shutdown()
    return {
        "interrupted": len(late),
        "requests": requests,
        "p50_ms": round(percentile(late, 50), 2),
        "p99_ms": round(percentile(late, 99), 2),
        "max_ms": round(max(late), 2) if late else None,
    }


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}, "
        f"opentelemetry-sdk {opentelemetry.sdk.version.__version__}; switch interval "
        f"{sys.getswitchinterval() * 1000:.0f} ms; INTERRUPT_AFTER={INTERRUPT_AFTER_MS} ms, {requests} requests per case"
    )
    results = {}
    for name, body, main_thread in (
        ("main thread, time.sleep", blocked, True),
        ("worker thread, Python loop", computing, False),
        ("worker thread, 1 ms sleeps", waiting_in_steps, False),
    ):
        for busy_threads in (0, 2):
            key = f"{name}, {'idle' if busy_threads == 0 else f'{busy_threads} CPU burners'}"
            results[key] = case(body, main_thread, busy_threads, requests)
            r = results[key]
            print(f"{key:<48} lateness p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  ({r['interrupted']}/{r['requests']} interrupted)")
    emit({"interrupt_latency": results})


if __name__ == "__main__":
    main()
