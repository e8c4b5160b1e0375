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
import sys
import time
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import counters, quiet
from .entry import find_starter
from .owners import current_owner
from .routes import route_key
from .sampler import EVENT_NAME, sample_attributes
from .settings import Settings
from .watched import INTERRUPT, SAMPLE, SNAPSHOT, Watched, first_snapshot
from .watchdog import Watchdog

_logger = logging.getLogger("otel_slowstack")

#: Watched spans plus their open descendants at most. Only an application
#: that starts spans and never ends them gets near it; past it new spans are
#: not watched, so memory stays bounded.
MAX_TRACKED = 100_000


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
        self._tracer_provider = tracer_provider
        self._watchdog = Watchdog(self._on_due)
        self._shut_down = False
        self._failures: set = set()
        quiet.install()

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
                current_owner(find_starter(sys._getframe(1))),
                time.monotonic_ns(),
                time.thread_time_ns(),
                threshold,
                self.settings,
            )
            self._spans[span_id] = watched
            due = watched.next_due()
            if due is not None:
                self._watchdog.enqueue(watched, due - watched.start_ns)
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
                counters.child_ended(watched, span)
        except Exception:
            self._failed("on_end")

    def _root_ended(self, watched: Watched) -> None:
        watched.ended = True
        children = watched.open_children
        watched.open_children = {}
        for child_id in children:
            self._spans.pop(child_id, None)
        # The lane keeps this record until the watchdog passes it; keep it small.
        owner = watched.owner
        watched.span = watched.owner = None
        if owner is not None:
            owner.release()
        if watched.fired:
            # A slow span sits in the watchdog's heap until its next deadline;
            # let the watchdog drop it now rather than wake for it later.
            self._watchdog.wake()

    # -- the watchdog thread -----------------------------------------------

    def _on_due(self, watched: Watched, now_ns: int) -> None:
        span = watched.span
        if span is None or watched.ended:
            return
        if self._routes and watched.samples == 0 and self._retarget(watched, span, now_ns):
            return
        due = watched.take_due(now_ns, self.settings)
        if SAMPLE in due:
            trigger = "threshold" if watched.samples == 1 else "interval"
            self._record(watched, span, trigger, watched.samples, now_ns)
        if SNAPSHOT in due:
            pass  # exported snapshot spans arrive with the kill-survival work
        if INTERRUPT in due:
            pass

    def _record(self, watched: Watched, span: Any, trigger: str, index: int, now_ns: int) -> bool:
        attributes = sample_attributes(watched, trigger, index, now_ns, self.settings)
        if attributes is None:
            return False
        with quiet.quietly():
            span.add_event(EVENT_NAME, attributes)
            span.set_attribute("slowstack.samples", index)
        return True

    def _retarget(self, watched: Watched, span: Any, now_ns: int) -> bool:
        """Routes known only after start (Django sets ``http.route`` late): re-match once."""
        rule = self._routes.lookup(route_key(span.attributes, span.name))
        threshold = self._threshold if rule is None else rule.threshold_ns
        if threshold == watched.threshold_ns:
            return False
        watched.threshold_ns = threshold
        start = watched.start_ns
        watched.sample_at = start + threshold if threshold is not None else None
        snapshot = first_snapshot(self.settings, threshold)
        watched.snapshot_at = start + snapshot if snapshot is not None else None
        if rule is not None and threshold is None:
            watched.interrupt_at = None  # ``off``: not watched at all
        due = watched.next_due()
        return due is None or due > now_ns

    # -- lifecycle -----------------------------------------------------------

    def shutdown(self) -> None:
        self._shut_down = True
        self._watchdog.shutdown()

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
        if where == "registry full":
            _logger.warning(
                "otel-slowstack: %d spans in flight (spans started and never ended?); "
                "new spans are not watched until some end", MAX_TRACKED,
            )
        else:
            _logger.exception("otel-slowstack: %s failed; the span is not watched", where)
