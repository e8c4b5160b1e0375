"""Spans for the report tests, made with the real OpenTelemetry SDK.

``shop_spans()`` records a small, known scenario (waiting, computing, N+1,
snapshots, a request killed before it ended) as real SDK spans carrying the
contract's events. They are written to a file by the real
``otlp_json_file`` exporter, and turned into Jaeger's JSON model and
Tempo's OTLP JSON answers for the fake backends in ``report_backends``.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Iterable, Optional

import pytest
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id, set_span_in_context

APP = "/srv/shop/app/views.py"
APP_DB = "/srv/shop/app/repository.py"
FLASK = "/opt/venv/lib/python3.12/site-packages/flask/app.py"
SOCKET = "/usr/lib/python3.12/socket.py"
SQLITE = "/usr/lib/python3.12/sqlite3/dbapi2.py"

MS = 1_000_000


def stack(*frames: tuple) -> str:
    """Frames as (path, line, name), outermost first; ("...", n) is an elision marker."""
    lines = []
    for frame in frames:
        if frame[0] == "...":
            lines.append(f"  [... {frame[1]} frames elided ...]")
        else:
            lines.append(f'  File "{frame[0]}", line {frame[1]}, in {frame[2]}')
    return "\n".join(lines)


REPORT_STACK = stack(
    (FLASK, 917, "full_dispatch_request"), (FLASK, 902, "dispatch_request"),
    (APP, 40, "report"), (APP, 52, "fetch_rates"), (SOCKET, 720, "readinto"),
)
PRICES_STACK = stack(
    (FLASK, 917, "full_dispatch_request"), (FLASK, 902, "dispatch_request"),
    (APP, 60, "prices"), (APP, 71, "count_collisions"),
)
ORDERS_STACK = stack(
    (FLASK, 917, "full_dispatch_request"), ("...", 3), (APP, 90, "orders"), (APP_DB, 12, "customer_name"),
)
N_PLUS_ONE_STACK = stack((APP, 90, "orders"), (APP_DB, 12, "customer_name"))
N_PLUS_ONE_SQL = "SELECT name FROM customers WHERE id = ?"


def sample(stack_text: str, index: int, cpu: Optional[float], trigger: str = "interval", in_flight: Optional[str] = None, elapsed_ms: float = 0.0) -> dict:
    attributes = {
        "code.stacktrace": stack_text,
        "thread.id": 140000000000001,
        "thread.name": "ThreadPoolExecutor-0_0",
        "slowstack.sample.index": index,
        "slowstack.elapsed_ms": elapsed_ms or 500.0 * index,
        "slowstack.trigger": trigger,
        "slowstack.db.count": 0,
        "slowstack.db.duration_ms": 0.0,
        "slowstack.http.count": 0,
        "slowstack.http.duration_ms": 0.0,
    }
    if cpu is not None:
        attributes["slowstack.cpu_ratio"] = cpu
    if in_flight:
        attributes["slowstack.in_flight"] = in_flight
    return attributes


class Recorder:
    """A TracerProvider whose finished spans are kept in memory, with explicit clocks."""

    def __init__(self, service: str = "shop") -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("report-tests")

    def request(self, start_ns: int, route: str, samples: Iterable[dict], duration_ms: float = 2000.0,
                n_plus_one: Iterable[dict] = (), snapshots: Iterable[dict] = (), end: bool = True):
        method, path = route.split(" ", 1)
        span = self.tracer.start_span(
            route, kind=SpanKind.SERVER, start_time=start_ns,
            attributes={"http.method": method, "http.route": path, "http.target": path + "?x=1"},
        )
        context = set_span_in_context(span)
        for i, attributes in enumerate(snapshots):
            at = start_ns + int((i + 1) * 10_000 * MS)
            child = self.tracer.start_span("slowstack.snapshot", context=context, start_time=at)
            child.add_event("slowstack.sample", attributes, timestamp=at)
            child.end(end_time=at)
        for i, attributes in enumerate(samples):
            span.add_event("slowstack.sample", attributes, timestamp=start_ns + int((i + 1) * 500 * MS))
        for attributes in n_plus_one:
            span.add_event("slowstack.n_plus_one", attributes, timestamp=start_ns + int(duration_ms * MS) - 1)
        if samples:
            span.set_attribute("slowstack.samples", len(list(samples)))
        if end:
            span.end(end_time=start_ns + int(duration_ms * MS))
        return span

    def spans(self) -> list:
        return list(self.exporter.get_finished_spans())


def shop_spans(now_ns: Optional[int] = None, service: str = "shop") -> list:
    """The scenario: 3 waiting /report requests (one with a snapshot), 2 computing
    /prices requests, 1 /orders request with an N+1, 2 fast requests, and a
    snapshot whose request never ended. Requests start 5 s apart, oldest first."""
    now_ns = now_ns or time.time_ns()
    recorder = Recorder(service)
    start = now_ns - 600 * 1_000_000_000
    step = 5 * 1_000_000_000
    flight = "GET api.rates.example ({} ms)"
    for r in range(3):
        recorder.request(
            start, "GET /report",
            [sample(REPORT_STACK, i + 1, 0.02, "threshold" if i == 0 else "interval", flight.format(500 * (i + 1))) for i in range(3)],
            snapshots=[sample(REPORT_STACK, 0, 0.01, "snapshot", flight.format(10000), 10000.0)] if r == 0 else (),
            duration_ms=12000 if r == 0 else 2000,
        )
        start += step
    for _ in range(2):
        recorder.request(start, "GET /prices", [sample(PRICES_STACK, i + 1, 0.95) for i in range(2)])
        start += step
    recorder.request(
        start, "GET /orders", [sample(ORDERS_STACK, 1, 0.4, "threshold", "SELECT customers (3 ms)")],
        n_plus_one=[{"db.query.text": N_PLUS_ONE_SQL, "slowstack.repeat.count": 50, "code.stacktrace": N_PLUS_ONE_STACK}],
    )
    start += step
    recorder.request(start, "GET /", [], duration_ms=3)
    start += step
    recorder.request(start, "GET /", [], duration_ms=3)
    start += step
    # A request killed (SIGKILL) after its snapshot: only the snapshot span was exported.
    recorder.request(start, "GET /stuck", [], snapshots=[sample(REPORT_STACK, 0, 0.0, "snapshot", None, 10000.0)], end=False)
    return recorder.spans()


def write_otlp_file(path: Path, spans: list, batch: int = 3) -> Path:
    """The real ``otlp_json_file`` exporter, a few spans per export (one line each)."""
    exporter = FileSpanExporter(path)
    for i in range(0, len(spans), batch):
        exporter.export(spans[i : i + batch])
    exporter.shutdown()
    return path


# -- the backends' formats ---------------------------------------------------


def otlp_document(spans: list) -> dict:
    """What the OTLP JSON encoder makes of these spans: ``{"resourceSpans": [...]}``."""
    return encode_spans(spans).to_dict()


def tempo_document(spans: list, style: str = "batches") -> dict:
    """Tempo's ``/api/traces/<id>`` answer: protobuf JSON, so ids in base64 and
    kinds as enum names, under ``batches`` (or, ``style="resourceSpans"``, hex ids)."""
    document = otlp_document(spans)
    if style == "resourceSpans":
        return document
    for resource_spans in document["resourceSpans"]:
        for scope in resource_spans.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                span["kind"] = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
                                "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"][int(span.get("kind", 0))]
    return {"batches": document["resourceSpans"]}


def _jaeger_tag(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    return {"key": key, "type": "string", "value": str(value)}


def jaeger_trace(spans: list) -> dict:
    """One trace in Jaeger's JSON model (``/api/traces`` ``data`` entries): span
    logs carry events, the ``event`` field holding the event's name."""
    trace_id = format_trace_id(spans[0].context.trace_id)
    processes = {"p1": {"serviceName": spans[0].resource.attributes.get("service.name"),
                        "tags": [_jaeger_tag("telemetry.sdk.language", "python")]}}
    out = []
    for span in spans:
        tags = [_jaeger_tag(k, v) for k, v in span.attributes.items()]
        tags.append(_jaeger_tag("span.kind", span.kind.name.lower()))
        tags.append(_jaeger_tag("otel.scope.name", "report-tests"))
        references = []
        if span.parent is not None:
            references.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": format_span_id(span.parent.span_id)})
        logs = [
            {"timestamp": event.timestamp // 1000,
             "fields": [_jaeger_tag("event", event.name)] + [_jaeger_tag(k, v) for k, v in event.attributes.items()]}
            for event in span.events
        ]
        end = span.end_time or span.start_time
        out.append({
            "traceID": trace_id, "spanID": format_span_id(span.context.span_id), "operationName": span.name,
            "references": references, "startTime": span.start_time // 1000, "duration": (end - span.start_time) // 1000,
            "tags": tags, "logs": logs, "processID": "p1", "warnings": None, "flags": 1,
        })
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}


def by_trace(spans: list) -> dict:
    """trace id (hex) -> that trace's spans, in start order."""
    traces: dict = {}
    for span in sorted(spans, key=lambda s: s.start_time):
        traces.setdefault(format_trace_id(span.context.trace_id), []).append(span)
    return traces


# -- fixtures shared by the backend tests (import them by name) ----------------


@pytest.fixture(scope="module")
def spans() -> list:
    """The shop scenario, recorded once per test module."""
    return shop_spans()


@pytest.fixture(scope="module")
def expected_folded(spans, tmp_path_factory) -> str:
    """What the report of the scenario's file says in folded form: every backend must say the same."""
    from otel_slowstack.report.command import build_report
    from otel_slowstack.report.renderers import render
    from otel_slowstack.report.sources import Query

    path = write_otlp_file(tmp_path_factory.mktemp("file") / "traces.jsonl", spans)
    return render(build_report(str(path), Query()), "folded")
