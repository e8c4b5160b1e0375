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

The hot path is the start and end of spans that never become slow, on the
application's threads, without a lock: for a watched span, a walk to its
starter frame, one ``Watched`` record (``watched.py``), one registry insert
and one append to the schedule (``schedule.py``); for a span under it, one
registry insert and the link to its watched span, and at its end, for a
client call, a count in the ending thread's own record (``counters.py``).
The totals go on the watched span once, as it ends. All the work of
sampling happens on one watchdog thread (``watchdog.py``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import Span, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_slowstack import counters, failures, seams, snapshot
from otel_slowstack.capture.entry import find_starter
from otel_slowstack.capture.machinery import SPAN_MACHINERY, module_flags
from otel_slowstack.capture.owners import task_or_greenlet_owner
from otel_slowstack.conventions import (
    INTERRUPT_WITHHELD,
    SAMPLE_EVENT,
    SAMPLES,
    TRIGGER_INTERRUPT,
    TRIGGER_INTERVAL,
    TRIGGER_SNAPSHOT,
    TRIGGER_THRESHOLD,
    route_key,
)
from otel_slowstack.lifecycle import interrupt, interrupt_signal, quiet, shutdown
from otel_slowstack.lifecycle.interrupt import SlowRequestInterrupted
from otel_slowstack.lifecycle.process_hooks import install as install_process_hooks
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.sample import cpu_baseline, sample_attributes
from otel_slowstack.schedule import BASELINE, INTERRUPT, SAMPLE, SNAPSHOT, Schedule, Timeline, first_due
from otel_slowstack.seams import SDK_CALLS_ON_ENDING as ON_ENDING
from otel_slowstack.seams import get_running_loop as _get_running_loop
from otel_slowstack.settings import Settings
from otel_slowstack.watchdog import watchdog
from otel_slowstack.watched import Watched

_logger = logging.getLogger("otel_slowstack")

#: Watched spans plus their open descendants at most. Only an application
#: that starts spans and never ends them gets near it; past it new spans are
#: not watched, so memory stays bounded.
MAX_TRACKED = 100_000
_UNKNOWN = object()
_CLIENT = SpanKind.CLIENT
_START_SPAN = seams.start_span_code()
_get_frame = seams.get_frame
monotonic_ns = time.monotonic_ns
_modules = sys.modules


class SlowStackProcessor(SpanProcessor):
    """An SDK ``SpanProcessor`` that samples the stacks of slow spans.

    Keyword arguments override the ``OTEL_PYTHON_SLOWSTACK_*`` variables;
    their names are the variables' without the prefix, in lower case
    (``threshold``, ``interval``, ``max_samples``, ``span_kinds``, ``routes``,
    ``max_frames``, ``max_stack_bytes``, ``capture_locals``, ``redact``,
    ``n_plus_one``, ``snapshot_after``, ``interrupt_after``). Durations take a
    string (``"2s"``), milliseconds, a ``timedelta``, or None for ``off``.
    ``process_hooks=False``: install no exit hook, signal handler or patch
    into the process (``lifecycle/process_hooks.py``).
    """

    def __init__(self, *, tracer_provider: Any = None, process_hooks: bool = True, **settings: Any) -> None:
        self.settings = Settings.from_env(**settings)
        # A tuple: ``in`` compares enum members by identity, never through Enum's Python-level hash.
        self._kinds = tuple(self.settings.span_kinds)
        self._threshold = self.settings.threshold_ns
        self._routes = self.settings.routes
        #: Plain bool: ``RouteTable.__bool__`` is a Python call, on every span.
        self._has_routes = bool(self._routes)
        #: span_id -> Watched, for watched spans and their open descendants.
        self._spans: dict[int, Watched] = {}
        #: threshold -> the schedule's lane for it, or None (thresholds are few).
        self._lanes: dict = {}
        self._tracer_provider = tracer_provider
        self._interrupting = self.settings.interrupt_after_ns is not None
        if self._interrupting:
            interrupt_signal.configure(self.settings.interrupt_signal)
        self._watchdog = watchdog()
        self._schedule = Schedule(self._on_due, self._spans.get, self._watchdog)
        self._watchdog.add(self._schedule)
        self._lane = self._lane_for(self._threshold)
        #: The code of the last span starter found outside the span machinery: a
        #: server starts every request's span from the same place.
        self._starter_code: Any = None
        self._shut_down = not (seams.SPAN_CONTEXT_IS_A_TUPLE and seams.SPAN_FIELDS_READABLE)
        if self._shut_down:
            self._kinds = ()
            _logger.warning("otel-slowstack: this OpenTelemetry SDK's spans are not supported; nothing is watched")
        self._failures: set = set()
        self._tracers = snapshot.Tracers()
        self._flusher = snapshot.flusher()
        shutdown.register(self)  # a weak registry: nothing installed
        if process_hooks:  # exit and signal hooks, once per process (README: "Hooks into the process")
            install_process_hooks(self)

    # -- hot path ------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        # The SDK span's fields, read directly (checked once: ``seams.SPAN_FIELDS_READABLE``): its
        # properties are Python calls, several on every span. ``SpanContext``
        # is a tuple (trace_id, span_id, is_remote, ...).
        try:
            parent = span._parent
            if parent is not None and not parent[2]:
                spans = self._spans
                watched = spans.get(parent[1])
                if watched is not None:  # a descendant of a watched span: link it, nothing more
                    span_id = span._context[1]
                    children = watched.children
                    if children is None:
                        children = watched.open_children()
                    children[span_id] = span
                    spans[span_id] = watched
                return
            if span._kind not in self._kinds:  # empty once shut down
                return
            # A local root of a watched kind: its record and its first deadline.
            # Inline, not a method: the walk to the starter counts frames from here.
            spans = self._spans
            if len(spans) >= MAX_TRACKED:
                self._failed("registry full")  # spans started but never ended
                return
            lane = self._lane
            threshold = self._threshold
            if self._has_routes:
                rule = self._routes.lookup(route_key(span.attributes, span.name))
                if rule is not None:
                    if rule.threshold_ns is None:
                        return
                    threshold = rule.threshold_ns
                    lane = self._lane_for(threshold)
            # Its starter: the first frame outwards that is not span-creation
            # machinery (``entry.find_starter``, its first step inlined). On the
            # SDK's usual path (``Tracer.start_span`` -> ``Span.start`` -> the
            # multi-processor -> here) the walk begins right above start_span.
            try:
                frame = _get_frame(3)
            except ValueError:  # fewer frames above: on_start called by hand
                frame = None
            if frame is not None and frame.f_code is _START_SPAN:
                starter = frame.f_back
                if starter.f_code is not self._starter_code:  # the same caller as last time: not machinery
                    try:
                        if module_flags(starter.f_globals.get("__name__")) & SPAN_MACHINERY:
                            starter = find_starter(starter.f_back)  # start_as_current_span, a decorator
                        else:
                            self._starter_code = starter.f_code
                    except TypeError:  # a ``__name__`` that cannot be hashed: not machinery
                        pass
            else:  # ``Span.start()`` called directly, another SDK's layout
                starter = find_starter(_get_frame(0).f_back)
            span_id = span._context[1]
            start_ns = monotonic_ns()
            watched = spans[span_id] = Watched(span, span_id, start_ns, threshold, get_ident(), starter)
            if _get_running_loop() is not None or "greenlet" in _modules:
                watched._owner = task_or_greenlet_owner(starter, spans)
            if self._interrupting:
                if starter is not None:
                    watched.start_lasti = starter.f_lasti
                interrupt_signal.install()  # a no-op but on the main thread, and there once
            if lane is not None:
                self._schedule.enqueue(lane, start_ns, span_id)
        except Exception:
            self._failed("on_start")

    def _lane_for(self, threshold: Optional[int]) -> Any:
        """The schedule's lane for spans of this threshold (None: never due)."""
        lane = self._lanes.get(threshold, _UNKNOWN)
        if lane is _UNKNOWN:
            due = first_due(self.settings, threshold)
            lane = self._lanes[threshold] = None if due is None else self._schedule.lane(due)
        return lane

    def _span_ended(self, span: Any, again: bool = False) -> None:
        """A span ends: the one end-of-span path, as ``_on_ending`` where the
        SDK calls it (1.45: before any ``on_end``, the last moment attributes
        can still go on the span), else as ``on_end``."""
        try:
            spans = self._spans
            if not spans:  # nothing watched in flight
                return
            span_id = span._context[1]
            watched = spans.pop(span_id, None)
            if watched is None:
                return
            if watched.span_id != span_id:  # a descendant
                children = watched.children
                if children is not None:  # None: its watched span ended first
                    children.pop(span_id, None)
                if span._kind is _CLIENT:
                    counters.child_ended(watched, span, self.settings)
                    if not ON_ENDING:  # no hook at the end: the totals go on as calls end
                        self._write_totals(watched)
                return
            watched.ended = True  # first: every reader checks it
            # Most spans had neither. Client calls come only with children, an
            # interrupt or a sample only after the watchdog fired the span.
            if watched.children is not None or watched.fired:
                self._root_ended(watched, span)
        except SlowRequestInterrupted:
            if not again:  # our interrupt landed in here: finish the bookkeeping
                self._span_ended(span, True)
        except Exception:
            self._failed("on_end")

    if ON_ENDING:
        # ``on_end`` stays the base class's empty method. (``staticmethod(id)``
        # looks cheaper and is not: CPython 3.11 runs a Python no-op inline,
        # while the static method's lookup is not specialised, 48 ns against 37.)
        _on_ending = _span_ended
    else:
        on_end = _span_ended  # type: ignore[assignment]

    def _root_ended(self, watched: Watched, span: Any) -> None:
        """The rest of a watched span's end, for one that had children (and so
        perhaps calls) or was due once (and so perhaps samples or an interrupt)."""
        if watched.interrupt_state:
            interrupt.settle(watched)  # no interrupt may outlive the span
        children = watched.children
        if children:
            for child_id in list(children):
                self._spans.pop(child_id, None)
        if ON_ENDING and watched.calls is not None:
            seams.set_attributes_while_ending(span, counters.total_attributes(watched.calls.totals()))
        if watched.fired:
            # A slow span's record sits in the watchdog's heap: drop what it
            # holds now, and let the watchdog drop the record at its next pass
            # rather than at the span's next deadline (one wake-up per pass,
            # however many slow spans end meanwhile). Any other record is
            # garbage now.
            watched.release()
            if self._schedule.forget():
                self._watchdog.wake()

    def _write_totals(self, watched: Watched) -> None:
        """Without ``_on_ending`` (an SDK without the hook), totals are rewritten as each call ends."""
        root = watched.span
        if root is not None and not watched.ended:
            with quiet.quietly():
                root.set_attributes(counters.total_attributes(watched.calls.totals()))

    # -- the watchdog thread -----------------------------------------------

    def _on_due(self, watched: Watched, now_ns: int, batch: Any) -> None:
        span = watched.span
        if span is None or watched.ended:
            return
        timeline = watched.timeline
        if timeline is None:
            timeline = watched.timeline = Timeline(watched.start_ns, watched.threshold_ns, self.settings)
            if self._has_routes and self._retarget(watched, timeline, span, now_ns):
                return
        due = timeline.take_due(now_ns, self.settings)
        if not due:
            return
        frames = batch.frames()
        if BASELINE in due:
            cpu_baseline(watched, timeline, now_ns, frames)
        if SAMPLE in due:
            self._sample(watched, span, TRIGGER_THRESHOLD if timeline.slots == 1 else TRIGGER_INTERVAL, now_ns, frames)
        if SNAPSHOT in due:
            self._snapshot(watched, span, TRIGGER_SNAPSHOT, timeline.snapshots, now_ns, frames)  # flushed once ended
        if INTERRUPT in due:
            self._interrupt(watched, span, now_ns, frames)

    def _interrupt(self, watched: Watched, span: Any, now_ns: int, frames: dict) -> None:
        """The ``interrupt`` sample once, then ``SlowRequestInterrupted`` at a safe point (see interrupt.py)."""
        timeline = watched.timeline
        if not timeline.interrupt_sampled:
            withheld = interrupt.decide(watched)
            extra = None if withheld is None else {INTERRUPT_WITHHELD: withheld}
            if self._sample(watched, span, TRIGGER_INTERRUPT, now_ns, frames, extra=extra) is None:
                interrupt.retry(watched, now_ns)  # not in the span's code now (a hook, the response)
                return
            timeline.interrupt_sampled = True
            if withheld is not None:
                return
            timeline.sample_at = None  # the interrupt sample stays the last one
        outcome = interrupt.deliver(watched, span)
        if outcome == interrupt.LATER:
            interrupt.retry(watched, now_ns)

    def _sample(
        self, watched: Watched, span: Any, trigger: str, now_ns: int,
        frames_by_thread: Optional[dict] = None, extra: Optional[dict] = None,
    ) -> Optional[dict]:
        """A ``slowstack.sample`` event on the span, its attributes returned; None
        when there is no honest stack (the thread moved on): that takes no index."""
        timeline = watched.timeline
        index = timeline.samples + 1
        attributes = sample_attributes(watched, trigger, index, now_ns, self.settings, frames_by_thread)
        if attributes is None:
            return None
        if extra:
            attributes.update(extra)
        with quiet.quietly():
            span.add_event(SAMPLE_EVENT, attributes)
            span.set_attribute(SAMPLES, index)
        timeline.sample_taken()
        return attributes

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
            tracer = self._tracers.get(provider)
            owner = watched._owner
            hub = owner.hub() if owner is not None else None
            if hub is not None:  # gevent: the SDK's locks are the hub's; end it there
                self._flusher.emit_in_hub(hub, tracer, span, attributes, time.time_ns(), provider)
            else:
                self._flusher.emit(tracer, span, attributes, time.time_ns(), provider)
        return provider

    def _retarget(self, watched: Watched, timeline: Timeline, span: Any, now_ns: int) -> bool:
        """Routes known only after start (Django sets ``http.route`` late): re-match once."""
        rule = self._routes.lookup(route_key(span.attributes, span.name))
        threshold = self._threshold if rule is None else rule.threshold_ns
        if threshold == watched.threshold_ns:
            return False
        watched.threshold_ns = threshold
        timeline.lay_out(threshold, self.settings, now_ns)
        if rule is not None and threshold is None:
            timeline.interrupt_at = None  # ``off``: not watched at all
        due = timeline.next_due()
        return due is None or due > now_ns

    # -- lifecycle -----------------------------------------------------------

    def shutdown(self) -> None:
        self._shut_down = True
        self._kinds = ()  # no span is watched from now on
        shutdown.unregister(self)
        self._watchdog.remove(self._schedule)
        self._watchdog.join(2.0)

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
                timeline = watched.timeline
                if timeline is None:
                    timeline = watched.timeline = Timeline(watched.start_ns, watched.threshold_ns, self.settings)
                timeline.stop()  # the final sample stays the last
                attributes = self._sample(watched, span, trigger, now_ns, frames_by_thread)
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
                for child in reversed(list((watched.children or {}).values())):
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
                timeline = watched.timeline
                if timeline is None:
                    timeline = watched.timeline = Timeline(watched.start_ns, threshold, self.settings)
                timeline.snapshots += 1
                provider = self._snapshot(
                    watched, span, trigger, timeline.snapshots, now_ns, frames_by_thread, inline=True
                )
                if provider is not None and all(provider is not p for p in flush):
                    flush.append(provider)
            except Exception:
                self._failed("snapshot")
        return flush

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def watched_count(self) -> int:
        """Spans (watched roots and their open descendants) in the registry."""
        return len(self._spans)

    def _failed(self, where: str) -> None:
        """Log once per kind of failure; the span goes unwatched, the app goes on."""
        exc = sys.exc_info()[1]
        if exc is not None:
            failures.report(exc, f"{where} failed; the span is not watched")
            return
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


def _end_with_error(span: Any, description: str) -> None:
    with quiet.quietly():
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
