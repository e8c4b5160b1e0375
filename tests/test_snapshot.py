"""Snapshot spans: a sample exported at once, while the slow span is still open.

The batch processor here waits a minute between exports, so anything the
receiver gets while the span runs was flushed by otel-slowstack itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import Optional

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from otel_slowstack import SlowStackProcessor
from support.spans import samples


def stuck_in_report(release: threading.Event) -> None:
    release.wait(30)


def stuck_request(provider: TracerProvider, name: str, attributes: Optional[dict] = None) -> tuple:
    """A SERVER span ``name`` in a thread of its own, stuck until ``release`` is set; ``(thread, release)``."""
    tracer = provider.get_tracer("test")
    release = threading.Event()

    def request() -> None:
        with tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=attributes):
            stuck_in_report(release)

    thread = threading.Thread(target=request)
    thread.start()
    return thread, release


def _provider(receiver, **settings) -> TracerProvider:
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    provider.add_span_processor(SlowStackProcessor(tracer_provider=provider, **settings))
    return provider


def test_snapshots_reach_the_backend_while_the_span_is_still_open(receiver):
    provider = _provider(receiver, threshold=100, snapshot_after=150, max_samples=2)
    thread, release = stuck_request(provider, "GET /report")
    try:
        # 150 ms, 300 ms, 600 ms: three snapshots while the request waits.
        snapshots = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot", count=3)
        assert not [s for s in receiver.spans if s["name"] == "GET /report"]
    finally:
        release.set()
        thread.join()
    provider.force_flush()
    server = receiver.wait_for(lambda s: s["name"] == "GET /report")[0]
    for snap in snapshots:
        assert snap["parent_span_id"] == server["span_id"]
        assert snap["trace_id"] == server["trace_id"]
        assert snap["kind"] == "internal"
        assert snap["start_ns"] == snap["end_ns"]
        (event,) = snap["events"]
        assert event["name"] == "slowstack.sample"
        assert event["time_ns"] == snap["start_ns"]
        sample = event["attributes"]
        assert sample["slowstack.trigger"] == "snapshot"
        assert "in stuck_in_report" in sample["code.stacktrace"]
        assert sample["slowstack.elapsed_ms"] >= 150
    indexes = sorted(s["events"][0]["attributes"]["slowstack.sample.index"] for s in snapshots)
    assert indexes[:3] == [1, 2, 3]
    # Snapshots do not count against MAX_SAMPLES: the span kept its own two.
    assert [a["slowstack.trigger"] for a in samples(server)] == ["threshold", "interval"]
    assert server["attributes"]["slowstack.samples"] == 2
    provider.shutdown()


def test_snapshot_off_exports_nothing_early(receiver):
    provider = _provider(receiver, threshold=100, snapshot_after="off")
    thread, release = stuck_request(provider, "GET /quiet")
    time.sleep(0.6)
    release.set()
    thread.join()
    provider.force_flush()
    server = receiver.wait_for(lambda s: s["name"] == "GET /quiet")[0]
    assert samples(server), "the span itself was still sampled"
    assert not [s for s in receiver.spans if s["name"] == "slowstack.snapshot"]
    provider.shutdown()


BY_HAND = textwrap.dedent(
    """
    import sys, threading
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from otel_slowstack import SlowStackProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces"), schedule_delay_millis=60_000))
    provider.add_span_processor(SlowStackProcessor(threshold=100, snapshot_after=150))  # no tracer_provider=
    trace.set_tracer_provider(provider)
    release = threading.Event()

    def waits_for_the_test():
        release.wait(30)

    def serve():
        with trace.get_tracer("app").start_as_current_span("GET /by-hand", kind=trace.SpanKind.SERVER):
            waits_for_the_test()

    threading.Thread(target=serve, daemon=True).start()
    sys.stdin.readline()
    release.set()
    """
)


def test_processor_added_by_hand_uses_the_global_provider(receiver, tmp_path):
    script = tmp_path / "by_hand.py"
    script.write_text(BY_HAND)
    process = subprocess.Popen(
        [sys.executable, str(script), receiver.endpoint], stdin=subprocess.PIPE, text=True
    )
    try:
        snap = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
        assert "in waits_for_the_test" in snap["events"][0]["attributes"]["code.stacktrace"]
    finally:
        process.communicate("\n", timeout=30)


def _one_snapshot_of(receiver, provider, name: str, attributes: dict, **settings) -> tuple:
    """Run a span named ``name`` until its first snapshot arrives; ``(snapshot, span)``."""
    thread, release = stuck_request(provider, name, attributes)
    try:
        snap = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
    finally:
        release.set()
        thread.join()
    provider.force_flush()
    span = receiver.wait_for(lambda s: s["name"] == name)[0]
    provider.shutdown()
    return snap, span


def test_a_snapshot_names_its_subject(receiver):
    provider = _provider(receiver, threshold=100, snapshot_after=150)
    attributes = {"http.route": "/orders/{id}", "http.request.method": "GET", "url.path": "/orders/7"}
    snap, _ = _one_snapshot_of(receiver, provider, "GET /orders/{id}", attributes)
    assert snap["attributes"] == {
        "slowstack.subject": "GET /orders/{id}",
        "slowstack.subject.http.route": "/orders/{id}",
        "slowstack.subject.http.request.method": "GET",
    }  # no url.path where there is a route, and never the bare ``http.route``


def test_a_snapshot_without_a_route_names_the_path_without_its_query(receiver):
    provider = _provider(receiver, threshold=100, snapshot_after=150)
    attributes = {"http.method": "POST", "http.target": "/upload?token=abc"}
    snap, _ = _one_snapshot_of(receiver, provider, "POST", attributes)
    assert snap["attributes"] == {
        "slowstack.subject": "POST",
        "slowstack.subject.http.request.method": "POST",
        "slowstack.subject.url.path": "/upload",
    }


def test_a_snapshot_due_with_a_sample_still_has_its_cpu_ratio(receiver):
    # Samples at 100 ms and 200 ms; the snapshot at 200 ms is due at the same moment.
    provider = _provider(receiver, threshold=100, interval=100, max_samples=2, snapshot_after=200)
    snap, span = _one_snapshot_of(receiver, provider, "GET /due", {})
    sample = samples(snap)[0]
    assert sample["slowstack.elapsed_ms"] >= 200
    assert 0.0 <= sample["slowstack.cpu_ratio"] < 0.5  # waiting on an Event
    # ... and the span's own samples kept theirs, measured from one to the next.
    assert [s["slowstack.trigger"] for s in samples(span)] == ["threshold", "interval"]
    assert all("slowstack.cpu_ratio" in s for s in samples(span))
