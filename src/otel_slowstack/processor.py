"""``SlowStackProcessor``: stacks of spans that run too long, as span events.

Usage, without auto-instrumentation::

    from opentelemetry.sdk.trace import TracerProvider
    from otel_slowstack import SlowStackProcessor

    provider = TracerProvider()
    provider.add_span_processor(SlowStackProcessor())       # reads OTEL_PYTHON_SLOWSTACK_*
    provider.add_span_processor(SlowStackProcessor(threshold="2s"))  # or keyword overrides

With ``opentelemetry-instrument`` the ``slowstack`` instrumentor adds it for
you. Local root spans of the watched kinds (SERVER and CONSUMER by default)
still running after the threshold get ``slowstack.sample`` events carrying
their thread's stack; see the README for every attribute.

The hot path is ``on_start``/``on_end`` of spans that never become slow: a
few attribute reads, one dict insert and one deque append, no lock. All the
work of sampling happens on one watchdog thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status, StatusCode

from . import counters, interrupt, quiet, shutdown, snapshot
from .entry import starter_of_span_being_started
from .interrupt import SlowRequestInterrupted
from .owners import current_owner
from .routes import route_key
from .sampler import EVENT_NAME, sample_attributes
from .settings import Settings
from .watched import INTERRUPT, SAMPLE, SNAPSHOT, Watched, first_due
from .watchdog import Watchdog

_logger = logging.getLogger("otel_slowstack")

#: Watched spans plus their open descendants at most. Only an application
#: that starts spans and never ends them gets near it; past it new spans are
#: not watched, so memory stays bounded.
MAX_TRACKED = 100_000
_UNKNOWN = object()


class SlowStackProcessor(SpanProcessor):
    """An SDK ``SpanProcessor`` that samples the stacks of slow spans.

    Keyword arguments override the ``OTEL_PYTHON_SLOWSTACK_*`` variables;
    their names are the variables' without the prefix, in lower case
    (``threshold``, ``interval``, ``max_samples``, ``span_kinds``, ``routes``,
    ``max_frames``, ``max_stack_bytes``, ``capture_locals``, ``redact``,
    ``n_plus_one``, ``snapshot_after``, ``interrupt_after``). Durations take a
    string (``"2s"``), milliseconds, a ``timedelta``, or None for ``off``.
    """

    def __init__(self, *, tracer_provider: Any = None, **settings: Any) -> None:
        self.settings = Settings.from_env(**settings)
        self._kinds = self.settings.span_kinds
        self._threshold = self.settings.threshold_ns
        self._routes = self.settings.routes
        #: span_id -> Watched, for watched spans and their open descendants.
        self._spans: dict[int, Watched] = {}
        #: threshold -> offset of a span's first deadline (thresholds are few).
        self._first_due: dict = {}
        self._tracer_provider = tracer_provider
        self._watchdog = Watchdog(self._on_due, self._spans.get)
        self._shut_down = False
        self._failures: set = set()
        self._tracers = snapshot.Tracers()
        self._flusher = snapshot.Flusher()
        quiet.install()
        shutdown.register(self)

    # -- hot path ------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        try:
            parent = span.parent
            if parent is not None and not parent.is_remote:
                watched = self._spans.get(parent.span_id)
                if watched is not None:
                    span_id = span.context.span_id
                    watched.open_children[span_id] = span
                    self._spans[span_id] = watched
                return
            if span.kind not in self._kinds or self._shut_down:
                return
            if len(self._spans) >= MAX_TRACKED:
                self._failed("registry full")  # spans started but never ended
                return
            threshold = self._threshold
            if self._routes:
                rule = self._routes.lookup(route_key(span.attributes, span.name))
                if rule is not None:
                    if rule.threshold_ns is None:
                        return
                    threshold = rule.threshold_ns
            span_id = span.context.span_id
            watched = Watched(
                span,
                span_id,
                current_owner(starter_of_span_being_started(), self._spans),
                time.monotonic_ns(),
                time.thread_time_ns(),
                threshold,
            )
            self._spans[span_id] = watched
            offset = self._first_due.get(threshold, _UNKNOWN)
            if offset is _UNKNOWN:
                offset = self._first_due[threshold] = first_due(self.settings, threshold)
            if offset is not None:
                self._watchdog.enqueue(watched.start_ns, span_id, offset)
        except Exception:
            self._failed("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            span_id = span.context.span_id
            watched = self._spans.pop(span_id, None)
            if watched is None:
                return
            if watched.span_id == span_id:
                self._root_ended(watched)
            else:
                watched.open_children.pop(span_id, None)
                counters.child_ended(watched, span, self.settings)
        except SlowRequestInterrupted:
            self._ended_while_interrupted(span)
        except Exception:
            self._failed("on_end")

    def _root_ended(self, watched: Watched) -> None:
        watched.ended = True
        if watched.interrupt_state:
            interrupt.settle(watched)  # no interrupt may outlive the span
        if watched.open_children:
            for child_id in list(watched.open_children):
                self._spans.pop(child_id, None)
        if watched.fired:
            # A slow span's record sits in the watchdog's heap until its next
            # deadline: drop what it holds, and let the watchdog drop it now
            # rather than wake for it later. Any other record is garbage now.
            owner = watched.owner
            watched.span = watched.owner = None
            watched.open_children = {}
            watched.statements = watched.db_last = None
            if owner is not None:
                owner.release()
            self._watchdog.wake()

    # -- the watchdog thread -----------------------------------------------

    def _on_due(self, watched: Watched, now_ns: int) -> None:
        span = watched.span
        if span is None or watched.ended:
            return
        if not watched.armed:
            watched.arm(self.settings)
            if self._routes and self._retarget(watched, span, now_ns):
                return
        due = watched.take_due(now_ns, self.settings)
        if SAMPLE in due:
            trigger = "threshold" if watched.samples == 1 else "interval"
            self._record(watched, span, trigger, watched.samples, now_ns)
        if SNAPSHOT in due:
            self._snapshot(watched, span, "snapshot", watched.snapshots, now_ns)  # flushed once ended
        if INTERRUPT in due:
            index = watched.samples + 1
            if self._record(watched, span, "interrupt", index, now_ns):  # False: ended or moved on
                watched.samples = index
                interrupt.interrupt(watched, span)

    def _record(
        self, watched: Watched, span: Any, trigger: str, index: int, now_ns: int,
        frames_by_thread: Optional[dict] = None,
    ) -> bool:
        attributes = sample_attributes(watched, trigger, index, now_ns, self.settings, frames_by_thread)
        if attributes is None:
            return False
        with quiet.quietly():
            span.add_event(EVENT_NAME, attributes)
            span.set_attribute("slowstack.samples", index)
        return True

    def _snapshot(
        self, watched: Watched, span: Any, trigger: str, index: int, now_ns: int,
        frames_by_thread: Optional[dict] = None, inline: bool = False,
    ) -> Any:
        """A fresh sample as a ``slowstack.snapshot`` span; returns the provider to flush.

        The span is ended on the flusher thread (ending may export), unless
        ``inline``: on the way down, where the caller is a helper thread.
        """
        provider = snapshot.provider_for(span, self._tracer_provider)
        if provider is None:
            self._failed("no tracer provider")
            return None
        attributes = sample_attributes(
            watched, trigger, index, now_ns, self.settings, frames_by_thread, advance=False
        )
        if attributes is None:
            return None
        if inline:
            with quiet.quietly():
                snapshot.emit(self._tracers.get(provider), span, attributes, time.time_ns())
        else:
            self._flusher.emit(self._tracers.get(provider), span, attributes, time.time_ns(), provider)
        return provider

    def _retarget(self, watched: Watched, span: Any, now_ns: int) -> bool:
        """Routes known only after start (Django sets ``http.route`` late): re-match once."""
        rule = self._routes.lookup(route_key(span.attributes, span.name))
        threshold = self._threshold if rule is None else rule.threshold_ns
        if threshold == watched.threshold_ns:
            return False
        watched.threshold_ns = threshold
        watched.arm(self.settings)
        if rule is not None and threshold is None:
            watched.interrupt_at = None  # ``off``: not watched at all
        due = watched.next_due()
        return due is None or due > now_ns

    # -- lifecycle -----------------------------------------------------------

    def shutdown(self) -> None:
        self._shut_down = True
        shutdown.unregister(self)
        self._watchdog.shutdown()
        self._flusher.stop()

    # -- the way down (called by shutdown.py, never on a request) -----------

    def open_roots(self) -> list:
        """Watched spans still open."""
        spans = self._spans.copy()
        return [w for k, w in spans.items() if w.span_id == k and not w.ended and w.span is not None]

    def end_open_spans(
        self, trigger: str, description: str, frames_by_thread: dict,
        first: Optional[Callable[[Any, list], None]] = None,
    ) -> list:
        """Final sample, status ERROR and ``end()`` for every watched span still open.

        The final samples are all taken first, and handed to ``first(provider,
        [(span, attributes, wall_ns), ...])`` before any span is ended (it
        exports them at once). Open descendants are ended too, innermost
        first, so the call the request was waiting on shows in the trace.
        Returns what to flush.
        """
        flush: list = []
        taken: list = []
        now_ns, wall_ns = time.monotonic_ns(), time.time_ns()
        for watched in self.open_roots():
            span = watched.span
            if span is None:
                continue
            try:
                index = watched.samples + 1
                attributes = sample_attributes(watched, trigger, index, now_ns, self.settings, frames_by_thread)
                if attributes is not None:
                    with quiet.quietly():
                        span.add_event(EVENT_NAME, attributes)
                        span.set_attribute("slowstack.samples", index)
                    watched.samples = index
                taken.append((watched, span, attributes))
            except Exception:
                self._failed("final sample")
        provider = snapshot.provider_for(taken[0][1], self._tracer_provider) if taken else None
        if first is not None and provider is not None:
            try:
                first(provider, [(span, a, wall_ns) for _, span, a in taken if a is not None])
            except Exception:
                self._failed("final snapshot")
        for watched, span, _ in taken:
            try:
                target = snapshot.provider_for(span, self._tracer_provider) or getattr(
                    span, "_span_processor", None
                )
                for child in reversed(list(watched.open_children.values())):
                    _end_with_error(child, description)
                _end_with_error(span, description)
                if target is not None and all(target is not t for t in flush):
                    flush.append(target)
            except Exception:
                self._failed("final sample")
        return flush

    def snapshot_open(self, trigger: str, frames_by_thread: dict) -> list:
        """A snapshot span for each open watched span already past its threshold."""
        flush: list = []
        now_ns = time.monotonic_ns()
        for watched in self.open_roots():
            span, threshold = watched.span, watched.threshold_ns
            if span is None or threshold is None or now_ns - watched.start_ns < threshold:
                continue
            try:
                watched.snapshots += 1
                provider = self._snapshot(
                    watched, span, trigger, watched.snapshots, now_ns, frames_by_thread, inline=True
                )
                if provider is not None and all(provider is not p for p in flush):
                    flush.append(provider)
            except Exception:
                self._failed("snapshot")
        return flush

    def _ended_while_interrupted(self, span: ReadableSpan) -> None:
        """Our interrupt landed inside ``on_end`` itself: finish the bookkeeping, drop it."""
        try:
            span_id = span.context.span_id
            watched = self._spans.pop(span_id, None)
            if watched is not None and watched.span_id == span_id:
                self._root_ended(watched)
            elif watched is not None:
                watched.open_children.pop(span_id, None)
        except SlowRequestInterrupted:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def watched_count(self) -> int:
        """Spans (watched roots and their open descendants) in the registry."""
        return len(self._spans)

    def _failed(self, where: str) -> None:
        """Log once per kind of failure; the span goes unwatched, the app goes on."""
        if where in self._failures:
            return
        self._failures.add(where)
        if where == "no tracer provider":
            _logger.warning(
                "otel-slowstack: no SDK tracer provider for snapshot spans; pass "
                "SlowStackProcessor(tracer_provider=provider) when the provider is not the "
                "global one. Snapshots are skipped; samples on the span go on."
            )
        elif where == "registry full":
            _logger.warning(
                "otel-slowstack: %d spans in flight (spans started and never ended?); "
                "new spans are not watched until some end", MAX_TRACKED,
            )
        else:
            _logger.exception("otel-slowstack: %s failed; the span is not watched", where)


def _end_with_error(span: Any, description: str) -> None:
    with quiet.quietly():
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
