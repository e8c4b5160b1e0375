"""One sample of a watched span: its stack and what surrounds it, as event attributes.

Runs on the watchdog thread (or on a dying process's signal path). Frames are
turned into plain data first; only then is the span checked to be still open,
so a thread that finished the span and moved on during the capture is never
reported as if it were still serving it.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from . import cpu
from .frames import current_frames
from .settings import Settings
from .stacktrace import format_stack
from .watched import Watched

EVENT_NAME = "slowstack.sample"


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
    """The oldest innermost child span still open, as ``NAME (N ms)``."""
    children = list(watched.open_children.values())
    if not children:
        return None
    parents = {child.parent.span_id for child in children if child.parent is not None}
    leaves = [c for c in children if c.context.span_id not in parents and c.start_time]
    if not leaves:
        return None
    oldest = min(leaves, key=lambda c: c.start_time)
    age_ms = max(0, now_wall_ns - oldest.start_time) // 1_000_000
    return f"{oldest.name} ({age_ms} ms)"


def sample_attributes(
    watched: Watched,
    trigger: str,
    index: int,
    now_ns: int,
    settings: Settings,
    frames_by_thread: Optional[dict] = None,
    advance: bool = True,
) -> Optional[dict]:
    """Every attribute of a ``slowstack.sample`` event, or None if there is no honest stack."""
    owner = watched.owner
    stack = capture_stack(watched, settings, frames_by_thread)
    if stack is None or owner is None:
        return None
    ident = owner.thread_ident
    name, native_id = cpu.thread_info(ident)
    cpu_now = cpu.thread_cpu_ns(ident, native_id)
    attributes: dict = {
        "code.stacktrace": stack,
        "thread.id": ident,
        "thread.name": name,
        "slowstack.sample.index": index,
        "slowstack.elapsed_ms": (now_ns - watched.start_ns) / 1e6,
        "slowstack.trigger": trigger,
        "slowstack.db.count": watched.db_count,
        "slowstack.db.duration_ms": watched.db_ns / 1e6,
        "slowstack.http.count": watched.http_count,
        "slowstack.http.duration_ms": watched.http_ns / 1e6,
    }
    if cpu_now is not None and watched.last_cpu_ns is not None:
        value = cpu.ratio(cpu_now - watched.last_cpu_ns, now_ns - watched.last_sample_ns)
        if value is not None:
            attributes["slowstack.cpu_ratio"] = value
    if advance:
        watched.last_cpu_ns = cpu_now
        watched.last_sample_ns = now_ns
    flight = in_flight(watched, time.time_ns())
    if flight:
        attributes["slowstack.in_flight"] = flight
    return attributes
