"""The processor with the real SDK and an in-memory exporter."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
import threading
import time

from opentelemetry import context, trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_slowstack import SlowStackInstrumentor, SlowStackProcessor
from support.spans import samples

SAMPLE_KEYS = {
    "code.stacktrace", "thread.id", "thread.name", "slowstack.sample.index", "slowstack.elapsed_ms",
    "slowstack.trigger", "slowstack.cpu_ratio", "slowstack.db.count", "slowstack.db.duration_ms",
    "slowstack.http.count", "slowstack.http.duration_ms",
}
STACK_LINE = re.compile(r'^  (File "[^"]+", line \d+, in \S+|\[\.\.\. \d+ frames elided \.\.\.\])$')


def wait_for_sleeping_watchdog(processor) -> None:
    deadline = time.monotonic() + 5
    while processor._schedule.pending() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_fast_spans_get_nothing(make_sdk):
    sdk = make_sdk(threshold=300)
    for _ in range(20):
        with sdk.tracer.start_as_current_span("GET /fast", kind=SpanKind.SERVER):
            with sdk.tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
                time.sleep(0.001)
    time.sleep(0.4)
    for span in sdk.exporter.get_finished_spans():
        assert not span.events
        assert not any(k.startswith("slowstack.") for k in span.attributes)
    assert sdk.processor.watched_count() == 0


def wait_in_report(seconds: float) -> None:
    time.sleep(seconds)


def test_slow_span_gets_samples_at_threshold_and_interval(make_sdk):
    sdk = make_sdk(threshold=150, interval=150, max_samples=3)
    with sdk.tracer.start_as_current_span("GET /report", kind=SpanKind.SERVER):
        wait_in_report(1.0)
    span = sdk.finished("GET /report")
    found = samples(span)
    assert [s["slowstack.sample.index"] for s in found] == [1, 2, 3]
    assert [s["slowstack.trigger"] for s in found] == ["threshold", "interval", "interval"]
    assert span.attributes["slowstack.samples"] == 3
    for sample in found:
        assert SAMPLE_KEYS <= set(sample), SAMPLE_KEYS - set(sample)
        assert sample["thread.id"] == threading.get_ident()
        assert sample["thread.name"] == threading.current_thread().name
        assert 0.0 <= sample["slowstack.cpu_ratio"] < 0.5
        stack = sample["code.stacktrace"]
        assert all(STACK_LINE.match(line) for line in stack.split("\n")), stack
        innermost = stack.split("\n")[-1]
        assert "in wait_in_report" in innermost
        assert "test_slow_span_gets_samples" in stack
        assert "pytest" not in stack and "_pytest" not in stack  # callers outside the span are dropped
    elapsed = [s["slowstack.elapsed_ms"] for s in found]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 150


def spin(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def test_cpu_ratio_tells_computing_from_waiting(make_sdk):
    # The first sample's ratio covers the last tenth of the threshold: 50 ms
    # here, several scheduler slices even on a loaded machine.
    sdk = make_sdk(threshold=500, max_samples=1)
    with sdk.tracer.start_as_current_span("GET /cpu", kind=SpanKind.SERVER):
        spin(0.7)
    with sdk.tracer.start_as_current_span("GET /wait", kind=SpanKind.SERVER):
        time.sleep(0.7)
    computing = samples(sdk.finished("GET /cpu"))[0]["slowstack.cpu_ratio"]
    waiting = samples(sdk.finished("GET /wait"))[0]["slowstack.cpu_ratio"]
    # A sleeping thread burns next to nothing however busy the machine is; a
    # spinning one gets what the scheduler gives it (near 1 on an idle box).
    assert waiting < 0.05
    assert computing > 0.15 and computing > 5 * waiting


def start_and_leave(tracer, box: dict) -> None:
    box["span"] = tracer.start_span("GET /handed-off", kind=SpanKind.SERVER)


def other_work(seconds: float) -> None:
    time.sleep(seconds)


def test_thread_that_moved_on_yields_no_stack(make_sdk):
    sdk = make_sdk(threshold=100, interval=100, max_samples=5)
    box: dict = {}

    def worker():
        start_and_leave(sdk.tracer, box)  # returns: the span's code is no longer on this thread
        other_work(0.6)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    box["span"].end()
    span = sdk.finished("GET /handed-off")
    assert samples(span) == []
    assert sdk.processor.watched_count() == 0


def test_concurrent_spans_each_get_their_own_threads_stack(make_sdk):
    sdk = make_sdk(threshold=150, interval=150, max_samples=2)
    barrier = threading.Barrier(8)
    names = [f"handler_{i}" for i in range(8)]
    functions = {}
    for name in names:
        exec(f"def {name}(): time.sleep(0.5)", {"time": time}, functions)
    idents = {}

    def serve(name):
        barrier.wait()
        idents[name] = threading.get_ident()
        with sdk.tracer.start_as_current_span("GET /" + name, kind=SpanKind.SERVER):
            functions[name]()

    threads = [threading.Thread(target=serve, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        found = samples(sdk.finished("GET /" + name))
        assert len(found) == 2
        for sample in found:
            assert sample["thread.id"] == idents[name]
            assert f"in {name}" in sample["code.stacktrace"]
            others = [n for n in names if n != name and f"in {n}" in sample["code.stacktrace"]]
            assert others == []
    assert sdk.processor.watched_count() == 0


def test_registry_and_queues_are_empty_after_all_spans_end(make_sdk):
    sdk = make_sdk(threshold=100, interval=50, max_samples=2)

    def serve(i):
        with sdk.tracer.start_as_current_span(f"GET /{i}", kind=SpanKind.SERVER):
            with sdk.tracer.start_as_current_span("child", kind=SpanKind.INTERNAL):
                time.sleep(0.01 if i % 3 else 0.25)

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sdk.processor.watched_count() == 0
    wait_for_sleeping_watchdog(sdk.processor)
    assert sdk.processor._schedule.pending() == 0
    wakeups = sdk.processor._watchdog.wakeups
    time.sleep(0.5)
    assert sdk.processor._watchdog.wakeups == wakeups  # nothing in flight: no wake-ups


def test_only_local_roots_of_watched_kinds(make_sdk):
    sdk = make_sdk(threshold=100, max_samples=1)
    with sdk.tracer.start_as_current_span("job", kind=SpanKind.INTERNAL):
        with sdk.tracer.start_as_current_span("GET /inner", kind=SpanKind.SERVER):
            time.sleep(0.3)
    with sdk.tracer.start_as_current_span("outbound", kind=SpanKind.CLIENT):
        time.sleep(0.3)
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with sdk.tracer.start_as_current_span("GET /propagated", kind=SpanKind.SERVER):
            time.sleep(0.3)
    finally:
        context.detach(token)
    with sdk.tracer.start_as_current_span("orders process", kind=SpanKind.CONSUMER):
        time.sleep(0.3)
    assert samples(sdk.finished("job")) == []
    assert samples(sdk.finished("GET /inner")) == []
    assert samples(sdk.finished("outbound")) == []
    assert len(samples(sdk.finished("GET /propagated"))) == 1
    assert len(samples(sdk.finished("orders process"))) == 1


def test_routes_set_thresholds_and_off(make_sdk):
    sdk = make_sdk(threshold="10s", routes="/reports/*=100ms,/healthz=off,*slow*=150", max_samples=1)
    for path in ("/reports/42", "/healthz", "/other"):
        with sdk.tracer.start_as_current_span("GET " + path, kind=SpanKind.SERVER, attributes={"url.path": path}):
            time.sleep(0.3)
    with sdk.tracer.start_as_current_span("very slow job", kind=SpanKind.SERVER):
        time.sleep(0.3)
    assert len(samples(sdk.finished("GET /reports/42"))) == 1
    assert samples(sdk.finished("GET /healthz")) == []
    assert samples(sdk.finished("GET /other")) == []
    assert len(samples(sdk.finished("very slow job"))) == 1


def test_route_known_only_after_start_is_matched_at_the_deadline(make_sdk):
    sdk = make_sdk(threshold=100, routes="/exports/<id>=off", max_samples=1)
    with sdk.tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes={"url.path": "/exports/9"}) as span:
        span.set_attribute("http.route", "/exports/<id>")  # as Django's process_view does
        time.sleep(0.3)
    assert samples(sdk.finished("GET")) == []


def recurse(depth: int) -> None:
    if depth:
        recurse(depth - 1)
    else:
        time.sleep(0.35)


def test_deep_stacks_fit_the_limits_untruncated(make_sdk):
    sdk = make_sdk(span_limits=SpanLimits(max_attribute_length=700), threshold=100, max_samples=1, max_frames=30)
    with sdk.tracer.start_as_current_span("GET /deep", kind=SpanKind.SERVER):
        recurse(300)
    (sample,) = samples(sdk.finished("GET /deep"))
    stack = sample["code.stacktrace"]
    assert len(stack.encode()) <= 700
    lines = stack.split("\n")
    assert all(STACK_LINE.match(line) for line in lines), stack
    assert "in recurse" in lines[-1]
    assert any("frames elided" in line for line in lines)
    assert sum(1 for line in lines if line.startswith("  File")) <= 30


class Order:
    def __repr__(self) -> str:
        raise RuntimeError("a repr that raises must not matter")


def handler_with_secrets(password: str, order_id: int) -> None:
    api_token = "tok-123"  # noqa: F841
    order = Order()  # noqa: F841
    headers = {"Authorization": "Bearer abc", "Accept": "json"}  # noqa: F841
    time.sleep(0.3)


def test_locals_are_off_by_default_and_redacted_when_on(make_sdk):
    sdk = make_sdk(threshold=100, max_samples=1)
    with sdk.tracer.start_as_current_span("GET /off", kind=SpanKind.SERVER):
        handler_with_secrets("hunter2", 7)
    assert " = " not in samples(sdk.finished("GET /off"))[0]["code.stacktrace"]

    sdk = make_sdk(threshold=100, max_samples=1, capture_locals=True, max_stack_bytes=4096)
    with sdk.tracer.start_as_current_span("GET /on", kind=SpanKind.SERVER):
        handler_with_secrets("hunter2", 7)
    stack = samples(sdk.finished("GET /on"))[0]["code.stacktrace"]
    assert "    order_id = 7" in stack
    assert "    password = [REDACTED]" in stack and "hunter2" not in stack
    assert "    api_token = [REDACTED]" in stack and "tok-123" not in stack
    assert "    order = <test_processor.Order>" in stack
    assert "'Authorization': [REDACTED]" in stack and "Bearer abc" not in stack
    assert "'Accept': 'json'" in stack
    # Library frames never carry locals.
    assert not re.search(r'site-packages[^\n]*\n    \w+ = ', stack)


def test_shutdown_stops_the_thread_and_force_flush_answers(make_sdk):
    sdk = make_sdk(threshold=50)
    with sdk.tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
        time.sleep(0.1)
    assert sdk.processor._watchdog.thread_ident is not None
    assert sdk.processor.force_flush(1000) is True
    sdk.processor.shutdown()
    served = set(sdk.processor._watchdog._schedules)
    assert sdk.processor._schedule not in served
    if not served:  # the process's one watchdog ends with the last sdk.processor it serves
        assert sdk.processor._watchdog.thread_ident is None
    with sdk.tracer.start_as_current_span("GET /after", kind=SpanKind.SERVER):
        pass
    assert sdk.processor.watched_count() == 0


def test_instrumentor_adds_the_processor_by_hand():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SlowStackInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        processors = provider._active_span_processor._span_processors
        assert any(isinstance(p, SlowStackProcessor) for p in processors)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_without_an_sdk_provider_it_says_so_once_and_attaches_later():
    script = textwrap.dedent(
        """
        import logging, time
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        from otel_slowstack import SlowStackInstrumentor
        SlowStackInstrumentor().instrument()
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with trace.get_tracer("t").start_as_current_span("GET /late", kind=trace.SpanKind.SERVER):
            time.sleep(0.4)
        print("SAMPLES", sum(e.name == "slowstack.sample" for e in exporter.get_finished_spans()[0].events))
        """
    )
    env = {"OTEL_PYTHON_SLOWSTACK_THRESHOLD": "100", "OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES": "2", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("WARNING") and "otel-slowstack" in line]
    assert len(warnings) == 1 and "not an SDK TracerProvider" in warnings[0]
    assert "SAMPLES 2" in out.stdout


def test_malformed_settings_never_stop_the_application(make_sdk, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_slowstack"):
        sdk = make_sdk(threshold="soon", max_samples="x", routes="??", span_kinds="bogus")
    assert len([r for r in caplog.records if r.name == "otel_slowstack"]) == 4
    with sdk.tracer.start_as_current_span("GET /still-works", kind=SpanKind.SERVER):
        pass
    assert sdk.finished("GET /still-works")
