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

import pytest

from otlp_receiver import samples

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
    else:
        threading.Thread(target=serve, daemon=True).start()
        started.wait()
        time.sleep(0.4)  # past the threshold
        print("ready", flush=True)
        if mode == "exit":
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
    final = samples(span)[-1]
    assert final["slowstack.trigger"] == "signal"
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_signal_to_a_request_in_the_main_thread_samples_the_request(receiver, tmp_path, signum):
    process = _start(tmp_path, receiver, "main-thread")
    process.send_signal(signum)
    out, _ = process.communicate(timeout=30)
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in out, out  # Python's own handler ran after ours
    else:
        assert process.returncode == -signal.SIGQUIT, out
    span = _invoice(receiver)
    assert span["status"] == "error"
    final = samples(span)[-1]
    assert final["slowstack.trigger"] == "signal"
    stack = final["code.stacktrace"]
    # Where the request was when the signal came, not the handler on top of it.
    assert stack.rstrip().splitlines()[-1].endswith("in generate_invoice")
    assert "shutdown.py" not in stack
