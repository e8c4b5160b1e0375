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
ends. Neither happens on the watchdog thread: with the SDK's
``SimpleSpanProcessor`` ending a span exports it, synchronously, on the
thread that ends it, and a backend that does not answer would hold the
watchdog (and every other span's samples and interrupts) for the exporter's
whole timeout. The watchdog takes the sample and hands it to the
``Flusher``: one thread ends snapshot spans, another flushes (a flush
blocks for as long as an export takes, and snapshots taken meanwhile must
not wait behind it). Both are ``lifecycle.service_thread`` threads, started
on the first snapshot, woken by an event and rebuilt after fork; neither the
watchdog nor any request ever waits for them, and flush requests arriving
while a flush runs are folded into the next one.

Which tracer provider? The one given as ``SlowStackProcessor(tracer_provider=
...)`` (the instrumentor always passes it); otherwise the global provider,
provided it is an SDK provider and the watched span came from it. A
processor added by hand to a provider that is not the global one needs
``tracer_provider=`` for snapshots; without it they are skipped, with one
warning.

Every snapshot span names its subject, since after a kill its parent never
arrives: ``slowstack.subject`` is the watched span's name (``GET /orders/{id}``,
``run/tasks.reindex``), and the attributes a user groups requests and tasks
by are copied under the prefix ``slowstack.subject.``: ``http.route``,
``http.request.method``, ``url.path`` (only where there is no route),
``messaging.system``, ``messaging.destination.name`` and Celery's
``celery.task_name``. Prefixed, so that span metrics and queries by
``http.route`` never count a snapshot as a request. Which attributes, and
how the report reads them back, is ``conventions.py``'s to say
(``subject_attributes``, ``subject_route``).

A process about to be killed (a Celery task past its hard time limit gets
SIGKILL 0.1 s after SIGTERM) cannot wait for a batch flush: ``export_at_once``
sends the final samples as snapshot spans in one small export of their own,
straight to the exporters, before anything else is done.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from typing import Any, Iterable, Optional

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind

from otel_slowstack import failures, seams
from otel_slowstack.conventions import SAMPLE_EVENT, SNAPSHOT_SPAN, subject_attributes
from otel_slowstack.lifecycle import realthread
from otel_slowstack.lifecycle.service_thread import serve_each_wakeup
from otel_slowstack.version import __version__

_logger = logging.getLogger("otel_slowstack")

#: Longest a flush may take, passed on to ``force_flush``; an exporter that
#: ignores it holds up only the flusher thread.
FLUSH_TIMEOUT_MS = 5000
#: Snapshots waiting for the flusher thread at most; past it (a backend that
#: hangs while spans keep getting slow) the oldest waiting one is dropped.
MAX_QUEUED = 256


def is_sdk_provider(provider: Any) -> bool:
    return hasattr(provider, "add_span_processor") and hasattr(provider, "force_flush")


def provider_for(span: Any, given: Any) -> Optional[Any]:
    """The tracer provider snapshot spans of ``span`` go through, or None."""
    if given is not None:
        return given
    provider = trace.get_tracer_provider()
    if not is_sdk_provider(provider):
        return None
    # Both private (seams), read defensively: if either is missing, trust the global one.
    mine = seams.span_processor_of(span)
    theirs = seams.active_span_processor(provider)
    if mine is not None and theirs is not None and mine is not theirs:
        return None
    return provider


def subject(span: Any) -> dict:
    """What a snapshot of ``span`` is a snapshot of, as ``slowstack.subject*`` attributes."""
    scope = getattr(span, "instrumentation_scope", None)
    return subject_attributes(span.name, span.attributes, getattr(scope, "name", None))


def emit(tracer: Any, parent: Any, attributes: dict, wall_ns: int) -> None:
    """One ``slowstack.snapshot`` span under ``parent``, begun and ended at ``wall_ns``.

    Ending it may export it on the calling thread: never call this on the
    watchdog thread or a request's thread (``Flusher.emit`` is for them).
    """
    span = tracer.start_span(
        SNAPSHOT_SPAN,
        context=trace.set_span_in_context(parent),
        kind=SpanKind.INTERNAL,
        attributes=subject(parent),
        start_time=wall_ns,
        record_exception=False,
        set_status_on_exception=False,
    )
    span.add_event(SAMPLE_EVENT, attributes, timestamp=wall_ns)
    span.end(end_time=wall_ns)


class _Collect(SpanProcessor):
    """A span processor that keeps what ends, for ``export_at_once``."""

    def __init__(self) -> None:
        self.ended: list = []

    def on_end(self, span: Any) -> None:
        self.ended.append(span)


def export_at_once(provider: Any, samples: Iterable[tuple], timeout_s: float) -> bool:
    """Send ``(parent, attributes, wall_ns)`` samples as snapshot spans, in one export
    per exporter, bypassing the batch queue; wait for it at most ``timeout_s``.

    For a process with a fraction of a second left. The spans are built by a
    private provider with the real one's resource and handed straight to the
    real exporters, so they do not queue behind the batch. Returns True when
    every exporter answered in time. Called on the way down only, on a
    helper thread of ``shutdown``.
    """
    collect = _Collect()
    private = TracerProvider(resource=provider.resource, shutdown_on_exit=False)
    private.add_span_processor(collect)
    tracer = private.get_tracer("otel_slowstack", __version__)
    for parent, attributes, wall_ns in samples:
        emit(tracer, parent, attributes, wall_ns)
    spans = tuple(collect.ended)
    exporters = seams.exporters_of(provider)
    if not spans or not exporters:
        return True
    waits: list = []
    for exporter in exporters:
        done = realthread.allocate_lock()
        done.acquire()

        def run(exporter: Any = exporter, done: Any = done) -> None:
            try:
                exporter.export(spans)
            except Exception:
                failures.report_current("exporting the final samples failed")
            finally:
                done.release()

        realthread.start_thread(run, "otel-slowstack-final-export")
        waits.append(done)
    deadline = time.monotonic() + timeout_s
    return all(w.acquire(timeout=max(0.0, deadline - time.monotonic())) for w in waits)


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
    """Ends snapshot spans, and flushes tracer providers, off the watchdog.

    Two threads, so that neither waits for the other: ending a snapshot
    span is quick with a batch processor (it is queued), while a flush to a
    slow backend can take seconds, and snapshots taken meanwhile must not
    queue behind it. With a ``SimpleSpanProcessor`` ending a span is the
    export itself; then only the snapshot thread waits. ``emit`` and
    ``request`` never block: they note the work and wake a thread. A
    provider is flushed after the snapshots handed over before it.
    """

    def __init__(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
        self.timeout_ms = timeout_ms
        self.flushes = 0
        self._pending: dict = {}
        self._snapshots: deque = deque(maxlen=MAX_QUEUED)  # the oldest go first when full
        # After a fork each thread forgets the parent's work (the child is single-threaded then).
        self._ender = serve_each_wakeup("otel-slowstack-snapshots", self._end_snapshots, self._snapshots.clear)
        self._flusher = serve_each_wakeup("otel-slowstack-flusher", self._flush_pending, self._pending.clear)

    def emit(self, tracer: Any, parent: Any, attributes: dict, wall_ns: int, provider: Any) -> None:
        """Have a snapshot span ended off this thread, then ``provider`` flushed."""
        if self._ender.stopping:
            return
        self._snapshots.append((tracer, parent, attributes, wall_ns, provider))  # deque: thread-safe
        self._ender.wake()

    def emit_in_hub(self, hub: Any, tracer: Any, parent: Any, attributes: dict, wall_ns: int, provider: Any) -> None:
        """``emit`` for a span served by a gevent greenlet: ended and flushed in a
        greenlet of that hub. After monkey-patching, the SDK's locks, events and
        conditions belong to the hub: taken from one of our OS threads they
        can leave the batch processor's greenlet waiting for good."""
        if self._ender.stopping:
            return
        work = (tracer, parent, attributes, wall_ns, provider, self.timeout_ms)
        try:
            hub.loop.run_callback_threadsafe(_spawn_in_hub, work)
        except Exception:
            failures.report_current("handing a snapshot to the gevent hub failed")

    def request(self, provider: Any) -> None:
        """Have ``provider`` flushed; snapshots handed to ``emit`` ask for it themselves."""
        if self._flusher.stopping:
            return
        self._pending[id(provider)] = provider
        self._flusher.wake()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Drop what is queued and end both threads, waiting at most ``timeout_s``
        for them (a flush in progress is not cut short); True if both ended."""
        self._pending.clear()
        self._snapshots.clear()
        deadline = time.monotonic() + timeout_s
        ender = self._ender.stop(timeout_s)
        return self._flusher.stop(max(0.0, deadline - time.monotonic())) and ender

    def _end_snapshots(self) -> None:
        snapshots = self._snapshots
        while snapshots and not self._ender.stopping:
            tracer, parent, attributes, wall_ns, provider = snapshots.popleft()
            try:
                emit(tracer, parent, attributes, wall_ns)
            except Exception:
                failures.report_current("ending a snapshot span failed")
            self.request(provider)

    def _flush_pending(self) -> None:
        while self._pending and not self._flusher.stopping:
            _, provider = self._pending.popitem()
            try:
                provider.force_flush(self.timeout_ms)
            except Exception:
                failures.report_current("flushing a snapshot failed")
            self.flushes += 1


def _spawn_in_hub(work: tuple) -> None:
    """In the hub (a callback must not block): a greenlet of its own does the work."""
    gevent = sys.modules.get("gevent")
    if gevent is not None:
        gevent.spawn(_end_and_flush, work)


def _end_and_flush(work: tuple) -> None:
    tracer, parent, attributes, wall_ns, provider, timeout_ms = work
    try:
        emit(tracer, parent, attributes, wall_ns)
        provider.force_flush(timeout_ms)
    except Exception:
        failures.report_current("ending a snapshot span in the gevent hub failed")


_flusher = Flusher()


def flusher() -> Flusher:
    """The process's one flusher (its threads start on first use), shared by
    every processor like the watchdog."""
    return _flusher
