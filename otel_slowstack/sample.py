"""One sample of a watched span: its stack and what surrounds it, as event attributes.

Runs on the watchdog thread (or on a dying process's signal path). Frames are
turned into plain data first; only then is the span checked to be still open,
so a thread that finished the span and moved on during the capture is never
reported as if it were still serving it.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from otel_slowstack import conventions, sql
from otel_slowstack.capture import cpu
from otel_slowstack.capture.frames import current_frames
from otel_slowstack.capture.stacktrace import format_stack
from otel_slowstack.settings import Settings
from otel_slowstack.watched import Watched

#: A snapshot taken this soon after a sample (both due at the same moment,
#: as at 10 s with the defaults) measures from the sample before, not from
#: a few microseconds ago.
MIN_RATIO_WINDOW_NS = 50_000_000


def stack_budget(span: Any, settings: Settings) -> int:
    """``max_stack_bytes``, never above the span's own attribute length limit."""
    limits = getattr(span, "_limits", None)
    limit = getattr(limits, "max_attribute_length", None)
    if isinstance(limit, int) and limit > 0:
        return min(settings.max_stack_bytes, limit)
    return settings.max_stack_bytes


def capture_stack(watched: Watched, settings: Settings, frames_by_thread: Optional[dict] = None) -> Optional[str]:
    """The owner's stack from the span's entry inwards, formatted; None if it moved on."""
    owner = watched.owner  # read once: on_end may clear it meanwhile
    span = watched.span
    if owner is None or span is None:
        return None
    frames = current_frames() if frames_by_thread is None else frames_by_thread
    lines = owner.capture(frames, settings.redact if settings.capture_locals else None)
    del frames
    if lines is None or watched.ended:
        return None
    return format_stack(lines, settings.max_frames, stack_budget(span, settings))


def in_flight(watched: Watched, now_wall_ns: int) -> Optional[str]:
    """The innermost child span still open, as ``LABEL (N ms)``; None when there is none.

    Innermost: an open child with no open child of its own. When several
    threads each have one, the oldest is the one the request has waited on
    longest. A database call is labelled by its normalised statement
    (``SELECT ... FOR UPDATE``), an HTTP call by its name and host.
    """
    try:
        children = list((watched.children or {}).values())
    except RuntimeError:  # resized while being read (free-threaded builds)
        return None
    if not children:
        return None
    parents = {child.parent.span_id for child in children if child.parent is not None}
    leaves = [
        c for c in children if c.context.span_id not in parents and c.start_time and c.end_time is None
    ]
    if not leaves:
        return None
    oldest = min(leaves, key=lambda c: c.start_time)
    age_ms = max(0, now_wall_ns - oldest.start_time) // 1_000_000
    return f"{_call_label(oldest)} ({age_ms} ms)"


def _call_label(span: Any) -> str:
    """What a reader needs to recognise a call: never a literal, a query string or a password."""
    attributes = span.attributes or {}
    text = conventions.statement_text(attributes)
    if text is not None:
        return sql.abbreviate(sql.normalized(text))
    if conventions.request_method(attributes) is not None:
        host = conventions.peer_host(attributes)
        if host and host not in span.name:
            return f"{span.name} {host}"
    return span.name


def sample_attributes(
    watched: Watched,
    trigger: str,
    index: int,
    now_ns: int,
    settings: Settings,
    frames_by_thread: Optional[dict] = None,
    advance: bool = True,
) -> Optional[dict]:
    """Every attribute of a ``slowstack.sample`` event, or None if there is no honest stack.

    ``advance=False`` (snapshots) leaves the samples' CPU baseline where it is.
    """
    owner = watched.owner
    stack = capture_stack(watched, settings, frames_by_thread)
    if stack is None or owner is None:
        return None
    ident = owner.thread_ident
    name, native_id = cpu.thread_info(ident)
    cpu_now = cpu.thread_cpu_ns(ident, native_id)
    calls = watched.calls
    db_count, db_ns, http_count, http_ns = (0, 0, 0, 0) if calls is None else calls.totals()
    attributes: dict = {
        conventions.CODE_STACKTRACE: stack,
        conventions.THREAD_ID: ident,
        conventions.THREAD_NAME: name,
        conventions.SAMPLE_INDEX: index,
        conventions.ELAPSED_MS: (now_ns - watched.start_ns) / 1e6,
        conventions.TRIGGER: trigger,
        conventions.DB_COUNT: db_count,
        conventions.DB_DURATION_MS: db_ns / 1e6,
        conventions.HTTP_COUNT: http_count,
        conventions.HTTP_DURATION_MS: http_ns / 1e6,
    }
    timeline = watched.timeline
    if timeline is not None:
        base = (timeline.cpu_ns, timeline.cpu_at, timeline.cpu_thread)
        if not advance and timeline.previous_cpu is not None and now_ns - (timeline.cpu_at or 0) < MIN_RATIO_WINDOW_NS:
            base = timeline.previous_cpu  # a snapshot right after a sample: measure from before it
        base_cpu_ns, base_at, base_thread = base
        # Compare one thread's clock with itself only: a task's work may move
        # between the loop thread and a pool thread.
        if cpu_now is not None and base_cpu_ns is not None and base_thread == ident:
            value = cpu.ratio(cpu_now - base_cpu_ns, now_ns - base_at)
            if value is not None:
                attributes[conventions.CPU_RATIO] = value
        if advance:
            timeline.previous_cpu = (timeline.cpu_ns, timeline.cpu_at, timeline.cpu_thread)
            timeline.cpu_ns, timeline.cpu_at, timeline.cpu_thread = cpu_now, now_ns, ident
    flight = in_flight(watched, time.time_ns())
    if flight:
        attributes[conventions.IN_FLIGHT] = flight
    blocked_by = owner.loop_blocked_by  # asyncio: another span holds the loop
    if blocked_by:
        attributes[conventions.LOOP_BLOCKED_BY] = blocked_by
    return attributes


def cpu_baseline(watched: Watched, timeline: Any, now_ns: int, frames_by_thread: dict) -> None:
    """Shortly before the threshold, on the watchdog: read the CPU clock of the
    thread doing the span's work, so the first sample has a ``cpu_ratio``.

    The request's own thread never reads a clock for it. Which thread does
    the work: a plain thread's own unless it waits on a future, a greenlet's
    thread; otherwise a capture (its lines thrown away) says (a pool thread,
    for a task).
    """
    owner = watched.owner
    if owner is None:
        return
    ident = owner.working_thread(frames_by_thread)
    if ident is None:
        return
    _, native_id = cpu.thread_info(ident)
    timeline.cpu_ns = cpu.thread_cpu_ns(ident, native_id)
    timeline.cpu_at = now_ns
    timeline.cpu_thread = ident
