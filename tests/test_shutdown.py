"""The way down, in a plain process: signals and interpreter exit with spans open.

Each case runs a small script in a subprocess. Its batch processor waits a
minute between exports, so whatever reaches the receiver was flushed on the
way down by otel-slowstack.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap


from support.spans import samples

SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading, time
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    endpoint, mode = sys.argv[1], sys.argv[2]
    finish = threading.Event()
    if mode == "app-handler":
        def app_handler(signum, frame):
            print("app handler ran", flush=True)
            finish.set()
        signal.signal(signal.SIGTERM, app_handler)

    from otel_slowstack import SlowStackProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint + "/v1/traces"), schedule_delay_millis=60_000))
    provider.add_span_processor(
        SlowStackProcessor(tracer_provider=provider, threshold=100, snapshot_after="off"))
    tracer = provider.get_tracer("app")
    started = threading.Event()

    def generate_invoice():
        started.set()
        while not finish.is_set():
            time.sleep(0.05)

    def serve():
        with tracer.start_as_current_span("GET /invoice", kind=SpanKind.SERVER):
            generate_invoice()

    if mode == "main-thread":
        threading.Timer(0.5, lambda: print("ready", flush=True)).start()
        serve()
    elif mode == "catches-sigint":
        # A span of its own on a thread, and a main thread that shrugs off Ctrl-C.
        def report():
            with tracer.start_as_current_span("GET /report", kind=SpanKind.SERVER) as span:
                time.sleep(1.0)
                span.set_attribute("report.rows", 42)  # written after the SIGINT
        worker = threading.Thread(target=lambda: (report(), finish.set()))
        worker.start()
        time.sleep(0.3)
        ready = False
        while not finish.is_set():
            try:  # "ready" inside: the signal can only come while the try is in force
                if not ready:
                    ready = True
                    print("ready", flush=True)
                while not finish.is_set():
                    time.sleep(0.05)
            except KeyboardInterrupt:
                print("carrying on", flush=True)
        worker.join()
        provider.force_flush()
        print("finished", flush=True)
    else:
        threading.Thread(target=serve, daemon=True).start()
        started.wait()
        time.sleep(0.4)  # past the threshold
        print("ready", flush=True)
        if mode == "exit":
            sys.exit(0)
        if mode == "shut-down-then-exit":
            provider.shutdown()  # the application is done with tracing
            sys.exit(0)
        finish.wait(30)
        time.sleep(0.2)
        provider.force_flush()
        print("finished", flush=True)
    """
)


def _start(tmp_path, receiver, mode: str) -> subprocess.Popen:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), receiver.endpoint, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", line + process.stdout.read()
    return process


def _invoice(receiver) -> dict:
    return receiver.wait_for(lambda s: s["name"] == "GET /invoice")[0]


def test_sigterm_with_no_handler_ends_the_span_and_still_terminates(receiver, tmp_path):
    process = _start(tmp_path, receiver, "no-handler")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM, out  # the default action still happened
    span = _invoice(receiver)
    assert span["status"] == "error"
    assert "SIGTERM" in span["status_message"]
    # The final sample (a sample the watchdog was taking at that very moment may land after it).
    (final,) = [s for s in samples(span) if s["slowstack.trigger"] == "signal"]
    assert "in generate_invoice" in final["code.stacktrace"]


def test_sigterm_handled_by_the_app_is_graceful(receiver, tmp_path):
    process = _start(tmp_path, receiver, "app-handler")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert "app handler ran" in out and "finished" in out, out
    snapshot = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
    sample = snapshot["events"][0]["attributes"]
    assert sample["slowstack.trigger"] == "signal"
    assert "in generate_invoice" in sample["code.stacktrace"]
    span = _invoice(receiver)  # the request finished normally, after the signal
    assert span["status"] != "error"
    assert snapshot["parent_span_id"] == span["span_id"]
    assert all(s["slowstack.trigger"] != "signal" for s in samples(span))


def test_interpreter_exit_ends_open_spans(receiver, tmp_path):
    process = _start(tmp_path, receiver, "exit")
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    span = _invoice(receiver)
    assert span["status"] == "error"
    final = samples(span)[-1]
    assert final["slowstack.trigger"] == "shutdown"
    assert "in generate_invoice" in final["code.stacktrace"]


def _assert_stuck_in_generate_invoice(sample: dict) -> None:
    assert sample["slowstack.trigger"] == "signal"
    stack = sample["code.stacktrace"]
    # Where the request was when the signal came, not the handler on top of it.
    assert stack.rstrip().splitlines()[-1].endswith("in generate_invoice")
    assert "shutdown.py" not in stack


def test_sigquit_to_a_request_in_the_main_thread_samples_the_request(receiver, tmp_path):
    process = _start(tmp_path, receiver, "main-thread")
    process.send_signal(signal.SIGQUIT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGQUIT, out
    span = _invoice(receiver)
    assert span["status"] == "error"
    _assert_stuck_in_generate_invoice(samples(span)[-1])
    # The final sample also left at once, on its own, as a snapshot span.
    final = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
    assert final["parent_span_id"] == span["span_id"]
    _assert_stuck_in_generate_invoice(samples(final)[0])


def test_sigint_to_a_request_in_the_main_thread_snapshots_it_and_lets_python_decide(receiver, tmp_path):
    process = _start(tmp_path, receiver, "main-thread")
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert "KeyboardInterrupt" in out, out  # Python's own handler ran after ours
    snap = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
    _assert_stuck_in_generate_invoice(samples(snap)[0])
    # Ended by the KeyboardInterrupt going through it (the SDK leaves the status
    # unset for a BaseException), not by us: the snapshot is the evidence.
    span = _invoice(receiver)
    assert snap["parent_span_id"] == span["span_id"]
    assert all(s["slowstack.trigger"] != "signal" for s in samples(span))


def test_sigint_the_application_catches_ends_nothing_early(receiver, tmp_path):
    process = _start(tmp_path, receiver, "catches-sigint")
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert "carrying on" in out and "finished" in out, out
    span = receiver.wait_for(lambda s: s["name"] == "GET /report")[0]
    assert span["status"] != "error", span["status_message"]
    assert span["attributes"]["report.rows"] == 42
    assert (span["end_ns"] - span["start_ns"]) / 1e9 >= 0.95
    snap = receiver.wait_for(lambda s: s["name"] == "slowstack.snapshot")[0]
    assert samples(snap)[0]["slowstack.trigger"] == "signal"


def test_exit_after_the_provider_was_shut_down_ends_nothing(receiver, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT.replace("BatchSpanProcessor(", "SimpleSpanProcessor(").replace(
        ", schedule_delay_millis=60_000", "").replace(
        "import BatchSpanProcessor", "import SimpleSpanProcessor"))
    process = subprocess.run(
        [sys.executable, str(script), receiver.endpoint, "shut-down-then-exit"],
        capture_output=True, text=True, timeout=60,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "already shutdown" not in process.stderr, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
