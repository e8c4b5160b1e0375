"""The CPU clock of a thread that has exited: never a crash (issue 10, item 2).

A ``pthread_t`` of a finished thread points into a freed stack; handing it to
``pthread_getcpuclockid`` killed the process with SIGSEGV. Each case runs in a
subprocess and asserts its exit status: a crash cannot hide as a skipped line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread CPU clocks by TID are Linux's")


def _run(script: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout
    )


def test_clock_of_exited_threads_is_none_not_a_crash():
    done = _run(
        """
        import threading
        from otel_slowstack.capture import cpu

        live = cpu.thread_cpu_ns(threading.get_ident(), threading.get_native_id())
        assert live is not None and live > 0, live

        idents = []
        together = threading.Barrier(300)  # 300 stacks mapped at once: most are unmapped at exit

        def run():
            idents.append(threading.get_ident())
            together.wait()

        threads = [threading.Thread(target=run) for _ in range(300)]
        for t in threads: t.start()
        for t in threads: t.join()
        readings = [cpu.thread_cpu_ns(i, cpu.thread_info(i)[1]) for i in idents for _ in range(3)]
        print("readings", sum(r is not None for r in readings), len(readings))
        """
    )
    assert done.returncode == 0, done.stderr
    assert "readings 0 900" in done.stdout, done.stdout + done.stderr


def test_spans_ending_at_their_sample_time_on_exiting_threads():
    """Threads whose slow spans end as they are sampled, then exit: the
    watchdog reads the clocks of threads on their way out."""
    done = _run(
        """
        import random, threading, time
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.trace import SpanKind
        from otel_slowstack import SlowStackProcessor

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(SlowStackProcessor(threshold=20, interval=5, max_samples=20))
        tracer = provider.get_tracer("load")

        def serve(seed):
            with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
                time.sleep(0.02 + random.Random(seed).random() * 0.03)

        for batch in range(8):
            threads = [threading.Thread(target=serve, args=(batch * 1000 + i,)) for i in range(150)]
            for t in threads: t.start()
            for t in threads: t.join()
        spans = exporter.get_finished_spans()
        sampled = sum(1 for s in spans if any(e.name == "slowstack.sample" for e in s.events))
        print("spans", len(spans), "sampled", sampled)
        """
    )
    assert done.returncode == 0, done.stderr
    _, spans, _, sampled = done.stdout.split()
    assert int(spans) == 1200 and int(sampled) > 0, done.stdout
    assert "sampling failed" not in done.stderr, done.stderr
