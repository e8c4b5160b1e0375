"""1. Hot path: what a span that never becomes slow pays for otel-slowstack.

Base: the SDK with one BatchSpanProcessor and a no-op exporter. Variant: the
same plus ``SlowStackProcessor`` (threshold 600 s, so nothing is ever
sampled: only the bookkeeping of spans that end in time is measured).

- a SERVER span pair (``start_span`` + ``end``) with 0, 100 and 10,000 other
  watched spans in flight, and the same through ``start_as_current_span``;
- per child under a watched SERVER span: a database CLIENT child, an HTTP
  CLIENT child, an INTERNAL child (a root with 20 children, minus the root
  alone, divided by 20, round by round);
- a span under no watched span, against a processor that does nothing;
- an A/A check: the SDK against an identical SDK, the method's resolution;
- a whole Flask request through its OpenTelemetry instrumentation, in process
  (base: the same instrumented app without otel-slowstack).
"""

from __future__ import annotations

import io

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from common import NoopExporter, NoopProcessor, added, alternate, delta_summary, emit, quick_run
from otel_slowstack import SlowStackProcessor

SERVER_ATTRS = {"http.request.method": "GET", "url.path": "/orders/7", "url.scheme": "http", "server.port": 8000}
# Five statements, each run 4 times per request: below the N+1 threshold (10).
DB_ATTRS = [
    {"db.system": "postgresql", "db.statement": statement, "db.name": "shop"}
    for statement in (
        "SELECT * FROM orders WHERE id = %s", "SELECT * FROM customers WHERE id = %s",
        "SELECT * FROM order_lines WHERE order_id = %s", "UPDATE stock SET reserved = reserved + %s WHERE item_id = %s",
        "INSERT INTO audit (order_id, action) VALUES (%s, %s)",
    )
]
HTTP_ATTRS = {"http.request.method": "GET", "url.full": "http://stock.internal/items/7", "server.address": "stock.internal"}
CHILDREN = 20  # many, so that the root's own share of the noise is divided down
THRESHOLD = "600s"


def provider(extra=None) -> TracerProvider:
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=1 << 16, max_export_batch_size=4096))
    if extra is not None:
        tp.add_span_processor(extra)
    return tp


def span_pair(tracer):
    def run():
        tracer.start_span("GET /orders/<id>", kind=SpanKind.SERVER, attributes=SERVER_ATTRS).end()
    return run


def current_span(tracer):
    def run():
        with tracer.start_as_current_span("GET /orders/<id>", kind=SpanKind.SERVER, attributes=SERVER_ATTRS):
            pass
    return run


def with_children(tracer, kind, name, attributes):
    """A SERVER span with CHILDREN children, their attributes taken in turn from ``attributes``."""
    each = [attributes[i % len(attributes)] for i in range(CHILDREN)]

    def run():
        root = tracer.start_span("GET /orders/<id>", kind=SpanKind.SERVER, attributes=SERVER_ATTRS)
        ctx = set_span_in_context(root)
        for attrs in each:
            tracer.start_span(name, context=ctx, kind=kind, attributes=attrs).end()
        root.end()
    return run


def unwatched(tracer):
    def run():
        tracer.start_span("render invoice", kind=SpanKind.INTERNAL).end()
    return run


def flask_request(tp: TracerProvider, name: str = ""):
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from werkzeug.test import EnvironBuilder

    app = Flask(name or f"bench{id(tp)}")

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return f"order {order_id}"

    FlaskInstrumentor.instrument_app(app, tracer_provider=tp)
    environ = EnvironBuilder(path="/orders/7", method="GET").get_environ()

    def start_response(status, headers, exc_info=None):
        return None

    def run():
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO()
        for _ in app(env, start_response):
            pass
    return run


def main() -> None:
    quick = quick_run(__doc__)
    # Many short rounds: the two halves of a pair run close together in time,
    # so a burst of load on a shared machine hits both alike.
    rounds = 24 if quick else 120
    scale = 0.1 if quick else 0.33

    def n(count: int) -> int:
        return max(25, int(count * scale))

    results: dict = {}
    sdk, ours = provider(), provider(SlowStackProcessor(threshold=THRESHOLD))
    t_sdk, t_ours = sdk.get_tracer("bench"), ours.get_tracer("bench")

    # A/A: the SDK against an identical second provider, measured the same
    # way: what "added" reads when nothing is added (the method's resolution).
    again = provider()
    r = alternate({"sdk": span_pair(t_sdk), "again": span_pair(again.get_tracer("bench"))}, n(4000), rounds)
    results["a_a"] = added(r, "sdk", "again")

    held: list = []
    results["span_pair"], results["current_span"] = {}, {}
    for in_flight in (0, 100, 10_000):
        while len(held) < 2 * in_flight:  # the same open spans on both sides
            held.append(t_sdk.start_span("GET /held", kind=SpanKind.SERVER))
            held.append(t_ours.start_span("GET /held", kind=SpanKind.SERVER))
        r = alternate({"sdk": span_pair(t_sdk), "ours": span_pair(t_ours)}, n(4000), rounds)
        results["span_pair"][str(in_flight)] = added(r, "sdk", "ours")
        r = alternate({"sdk": current_span(t_sdk), "ours": current_span(t_ours)}, n(3000), rounds)
        results["current_span"][str(in_flight)] = added(r, "sdk", "ours")
    for span in held:
        span.end()

    variants = {"sdk root": span_pair(t_sdk), "ours root": span_pair(t_ours)}
    kinds = {
        "db": (SpanKind.CLIENT, "SELECT shop", DB_ATTRS),
        "http": (SpanKind.CLIENT, "GET", [HTTP_ATTRS]),
        "internal": (SpanKind.INTERNAL, "render", [{}]),
    }
    for key, (kind, name, attributes) in kinds.items():
        variants[f"sdk {key}"] = with_children(t_sdk, kind, name, attributes)
        variants[f"ours {key}"] = with_children(t_ours, kind, name, attributes)
    r = alternate(variants, n(250), rounds)
    root_added = [o - s for o, s in zip(r["ours root"], r["sdk root"])]
    for key in kinds:
        per_child = [
            ((o - s) - ra) / CHILDREN / 1000
            for o, s, ra in zip(r[f"ours {key}"], r[f"sdk {key}"], root_added)
        ]
        base = sorted((s - b) / CHILDREN / 1000 for s, b in zip(r[f"sdk {key}"], r["sdk root"]))
        results[f"child_{key}"] = delta_summary(per_child, base[len(base) // 2])
        results[f"root_with_children_{key}"] = added(r, f"sdk {key}", f"ours {key}")
    results["children"] = CHILDREN

    noop = provider(NoopProcessor())
    t_noop = noop.get_tracer("bench")
    r = alternate({"sdk": unwatched(t_sdk), "noop": unwatched(t_noop), "ours": unwatched(t_ours)}, n(5000), rounds)
    results["unwatched"] = {
        "noop": added(r, "sdk", "noop"),
        "ours": added(r, "sdk", "ours"),
        "ours_minus_noop": added(r, "noop", "ours"),
    }

    flask_sdk, flask_ours = provider(), provider(SlowStackProcessor(threshold=THRESHOLD))
    r = alternate({"sdk": flask_request(flask_sdk), "ours": flask_request(flask_ours)}, n(800), rounds)
    results["flask_request"] = added(r, "sdk", "ours")

    for tp in (sdk, again, ours, noop, flask_sdk, flask_ours):
        tp.shutdown()
    emit({"hot_path": results})


if __name__ == "__main__":
    main()
