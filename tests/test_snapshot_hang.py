"""A backend that never answers must not hold up the watchdog (issue 10, item 8).

With the SDK's ``SimpleSpanProcessor`` ending a span exports it on the thread
that ends it. If that were the watchdog, a snapshot span's export to a
collector that accepts connections and never answers would freeze every
later sample and interrupt for the exporter's whole timeout.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind
    from otel_slowstack import SlowStackProcessor, SlowRequestInterrupted

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces", timeout=60)))
    provider.add_span_processor(SlowStackProcessor(
        tracer_provider=provider, threshold=100, snapshot_after=200, interrupt_after=1000))
    tracer = provider.get_tracer("app")
    start = time.monotonic()
    import os
    with tracer.start_as_current_span("GET /hang", kind=SpanKind.SERVER):
        try:
            while time.monotonic() - start < 50:
                time.sleep(0.01)
        except SlowRequestInterrupted:
            print(f"interrupted after {time.monotonic() - start:.2f}", flush=True)
        sys.stdout.flush()
        os._exit(0)  # the span's own export would wait on the silent collector
    """
)


def test_a_silent_collector_does_not_delay_the_interrupt(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (the kernel does) and never answers
    script = tmp_path / "hang.py"
    script.write_text(SCRIPT)
    try:
        process = subprocess.run(
            [sys.executable, str(script), f"http://127.0.0.1:{silent.getsockname()[1]}"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        silent.close()
    lines = [line for line in process.stdout.splitlines() if line.startswith("interrupted after")]
    assert lines, process.stdout + process.stderr
    # Due at 1 s; the exporter would hold a blocked watchdog for 60 s.
    assert float(lines[0].split()[-1]) < 30, process.stdout
