"""Snapshot spans: a sample exported at once, so it survives a ``SIGKILL``.

Events on the watched span only leave the process when the span ends. A
worker killed by uWSGI's ``harakiri``, the OOM killer or ``kill -9`` never
ends it, so at ``OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER`` and at each doubling
of the span's age the watchdog also takes a sample into a span of its own:
``slowstack.snapshot``, a child of the watched span, started and ended at the
moment of the sample, carrying one ``slowstack.sample`` event. It is an
ordinary span, so every exporter and backend shows it nested in the slow
request's trace.

"At once" means the exporters are flushed right after the snapshot span
ends. A flush blocks for as long as an export takes, so it runs on one
``Flusher`` thread of its own, started on the first snapshot and woken by a
lock: neither the watchdog nor any request ever waits for it, and requests
arriving while a flush runs are folded into the next one.

Which tracer provider? The one given as ``SlowStackProcessor(tracer_provider=
...)`` (the instrumentor always passes it); otherwise the global provider,
provided it is an SDK provider and the watched span came from it. A
processor added by hand to a provider that is not the global one needs
``tracer_provider=`` for snapshots; without it they are skipped, with one
warning.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Optional

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from . import realthread
from .sampler import EVENT_NAME
from .version import __version__

_logger = logging.getLogger("otel_slowstack")

SPAN_NAME = "slowstack.snapshot"
#: Longest a flush may take, passed on to ``force_flush``; an exporter that
#: ignores it holds up only the flusher thread.
FLUSH_TIMEOUT_MS = 5000


def is_sdk_provider(provider: Any) -> bool:
    return hasattr(provider, "add_span_processor") and hasattr(provider, "force_flush")


def provider_for(span: Any, given: Any) -> Optional[Any]:
    """The tracer provider snapshot spans of ``span`` go through, or None."""
    if given is not None:
        return given
    provider = trace.get_tracer_provider()
    if not is_sdk_provider(provider):
        return None
    # Both private, read defensively: if either is missing, trust the global one.
    mine = getattr(span, "_span_processor", None)
    theirs = getattr(provider, "_active_span_processor", None)
    if mine is not None and theirs is not None and mine is not theirs:
        return None
    return provider


def emit(tracer: Any, parent: Any, attributes: dict, wall_ns: int) -> None:
    """One ``slowstack.snapshot`` span under ``parent``, begun and ended at ``wall_ns``."""
    span = tracer.start_span(
        SPAN_NAME,
        context=trace.set_span_in_context(parent),
        kind=SpanKind.INTERNAL,
        start_time=wall_ns,
        record_exception=False,
        set_status_on_exception=False,
    )
    span.add_event(EVENT_NAME, attributes, timestamp=wall_ns)
    span.end(end_time=wall_ns)


class Tracers:
    """A tracer per provider, made once; providers are few."""

    def __init__(self) -> None:
        self._by_provider: dict = {}

    def get(self, provider: Any) -> Any:
        key = id(provider)
        found = self._by_provider.get(key)
        if found is None or found[0] is not provider:
            found = (provider, provider.get_tracer("otel_slowstack", __version__))
            self._by_provider[key] = found
        return found[1]


class Flusher:
    """Flushes tracer providers on a thread of its own, when asked.

    ``request`` never blocks: it notes the provider and wakes the thread.
    """

    def __init__(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
        self.timeout_ms = timeout_ms
        self.flushes = 0
        self._reset()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (ref() or (lambda: None))())

    def _reset(self) -> None:
        """Fresh state; in a forked child the parent's thread does not exist."""
        self._pending: dict = {}
        self._mutex = realthread.allocate_lock()
        self._wake = realthread.allocate_lock()
        self._wake.acquire()
        self._started = False
        self._stopped = False

    def request(self, provider: Any) -> None:
        if self._stopped:
            return
        self._pending[id(provider)] = provider
        if not self._started:
            with self._mutex:
                start = not self._started
                self._started = True
            if start:
                realthread.start_thread(self._run, "otel-slowstack-flusher")
        if self._wake.locked():
            try:
                self._wake.release()
            except RuntimeError:  # released by another thread meanwhile
                pass

    def stop(self) -> None:
        self._stopped = True
        self._pending.clear()
        if self._wake.locked():
            try:
                self._wake.release()
            except RuntimeError:
                pass

    def _run(self) -> None:
        wake = self._wake
        try:
            while True:
                wake.acquire()
                if self._stopped:
                    return
                while self._pending:
                    _, provider = self._pending.popitem()
                    try:
                        provider.force_flush(self.timeout_ms)
                    except Exception:
                        _logger.exception("otel-slowstack: flushing a snapshot failed")
                    self.flushes += 1
        finally:
            self._started = False
