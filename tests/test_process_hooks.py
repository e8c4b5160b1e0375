"""Hooks into the process: installed once, explicitly, with an opt-out; taken back by
``uninstrument()``. Each test runs in a fresh interpreter: the hooks are process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """
import atexit, logging, signal, sys

registered = []  # what is registered with atexit now (its own count never shrinks)
_register, _unregister = atexit.register, atexit.unregister
def register(function, *args, **kwargs):
    registered.append(function)
    return _register(function, *args, **kwargs)
def unregister(function):
    registered[:] = [f for f in registered if f != function]
    return _unregister(function)
atexit.register, atexit.unregister = register, unregister

from opentelemetry.sdk.trace import TracerProvider
from otel_slowstack import SlowStackInstrumentor, SlowStackProcessor
from otel_slowstack.lifecycle import process_hooks
from otel_slowstack.lifecycle.signals import ChainedHandler

SIGNALS = (signal.SIGABRT, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)

def mine(signum, frame):
    pass

def state():
    sdk_filters = logging.getLogger("opentelemetry.sdk.trace").filters
    return {
        "handlers": {s: signal.getsignal(s) for s in SIGNALS},
        "atexit": list(registered),
        "filters": list(sdk_filters),
    }

def provider():
    return TracerProvider(shutdown_on_exit=False)

signal.signal(signal.SIGTERM, mine)  # the application's own, to be chained and given back
signal.signal(signal.SIGQUIT, signal.SIG_IGN)  # ignored stays ignored
"""


def run(body: str) -> str:
    script = PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_installed_once_however_many_processors():
    run(
        """
        before = state()
        processors = [SlowStackProcessor() for _ in range(5)]
        after = state()
        assert process_hooks.installed()
        assert len(after["atexit"]) == len(before["atexit"]) + 1
        assert len(after["filters"]) == len(before["filters"]) + 1
        for s in (signal.SIGABRT, signal.SIGINT, signal.SIGTERM):
            handler = after["handlers"][s]
            assert isinstance(handler, ChainedHandler), s
            assert handler.previous is before["handlers"][s]  # chained once, not five times
        assert after["handlers"][signal.SIGQUIT] == signal.SIG_IGN
        """
    )


def test_uninstrument_restores_what_instrument_changed():
    run(
        """
        import gunicorn.workers.base, uvicorn.server
        from opentelemetry import trace
        originals = {
            "init_signals": vars(gunicorn.workers.base.Worker)["init_signals"],
            "handle_exit": vars(uvicorn.server.Server)["handle_exit"],
            "set_tracer_provider": trace.set_tracer_provider,
        }
        before = state()
        instrumentor = SlowStackInstrumentor()
        instrumentor.instrument()  # no SDK provider yet: it also waits for one
        assert trace.set_tracer_provider is not originals["set_tracer_provider"]
        assert vars(gunicorn.workers.base.Worker)["init_signals"] is not originals["init_signals"]
        assert vars(uvicorn.server.Server)["handle_exit"] is not originals["handle_exit"]
        assert isinstance(signal.getsignal(signal.SIGTERM), ChainedHandler)

        instrumentor.uninstrument()
        assert state() == before
        assert not process_hooks.installed()
        assert vars(gunicorn.workers.base.Worker)["init_signals"] is originals["init_signals"]
        assert vars(uvicorn.server.Server)["handle_exit"] is originals["handle_exit"]
        assert trace.set_tracer_provider is originals["set_tracer_provider"]

        # Instrumented again, it installs again, once.
        instrumentor.instrument(tracer_provider=provider())
        assert isinstance(signal.getsignal(signal.SIGTERM), ChainedHandler)
        assert signal.getsignal(signal.SIGTERM).previous is mine
        assert vars(uvicorn.server.Server)["handle_exit"] is not originals["handle_exit"]
        instrumentor.uninstrument()
        assert state() == before
        assert vars(uvicorn.server.Server)["handle_exit"] is originals["handle_exit"]
        print("OK")
        """
    )


def test_a_module_imported_after_uninstrument_is_not_patched():
    run(
        """
        instrumentor = SlowStackInstrumentor()
        instrumentor.instrument(tracer_provider=provider())
        instrumentor.uninstrument()
        assert "uvicorn.server" not in sys.modules
        import uvicorn.server
        assert type(vars(uvicorn.server.Server)["handle_exit"]).__name__ == "function"
        """
    )


def test_a_handler_chained_under_a_server_s_own_passes_straight_through():
    run(
        """
        calls = []
        instrumentor = SlowStackInstrumentor()
        instrumentor.instrument(tracer_provider=provider())
        ours = signal.getsignal(signal.SIGTERM)
        def servers(signum, frame):  # set after ours, chaining to it
            calls.append("server")
            ours(signum, frame)
        signal.signal(signal.SIGTERM, servers)
        instrumentor.uninstrument()
        assert signal.getsignal(signal.SIGTERM) is servers  # not ours to take out
        assert ours.active is False
        import otel_slowstack.lifecycle.shutdown as shutdown
        shutdown.on_signal = lambda *a: calls.append("ours")  # would show if it still ran
        ours(signal.SIGTERM, None)
        assert calls == []
        """
    )


def test_a_processor_made_by_hand_keeps_the_hooks_past_uninstrument():
    run(
        """
        instrumentor = SlowStackInstrumentor()
        instrumentor.instrument(tracer_provider=provider())
        by_hand = SlowStackProcessor()
        instrumentor.uninstrument()
        assert process_hooks.installed()
        assert isinstance(signal.getsignal(signal.SIGTERM), ChainedHandler)
        by_hand.shutdown()
        assert process_hooks.uninstall(by_hand)  # nobody else holds them now
        assert signal.getsignal(signal.SIGTERM) is mine
        """
    )


def test_opting_out_installs_nothing():
    run(
        """
        import gunicorn.workers.base
        init_signals = vars(gunicorn.workers.base.Worker)["init_signals"]
        before = state()
        SlowStackProcessor(process_hooks=False)
        instrumentor = SlowStackInstrumentor()
        instrumentor.instrument(tracer_provider=provider(), process_hooks=False)
        assert state() == before
        assert not process_hooks.installed()
        assert vars(gunicorn.workers.base.Worker)["init_signals"] is init_signals
        instrumentor.uninstrument()
        assert state() == before
        """
    )


def test_a_processor_made_by_hand_still_ends_its_spans_at_exit():
    out = run(
        """
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
        from opentelemetry.trace import SpanKind

        class Print(SpanExporter):
            def export(self, spans):
                for span in spans:
                    print("ENDED", span.name, span.status.status_code.name, flush=True)
                return SpanExportResult.SUCCESS

        p = provider()
        p.add_span_processor(SimpleSpanProcessor(Print()))
        p.add_span_processor(SlowStackProcessor(threshold="60s"))
        p.get_tracer("t").start_span("GET /open", kind=SpanKind.SERVER)  # never ended by the app
        """
    )
    assert "ENDED GET /open ERROR" in out
