"""CPU time of another thread, for ``slowstack.cpu_ratio``.

The owning thread reads its own CPU clock once in ``on_start``
(``time.thread_time_ns``); the watchdog later reads the same clock of that
thread from outside. On Linux the clock is addressed by the thread's kernel
id, which fails cleanly (``OSError``) once the thread is gone, unlike
``pthread_getcpuclockid`` on a stale handle.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

from . import realthread

_LINUX = sys.platform.startswith("linux")

#: The main thread's real identifier, taken at import (under
#: ``opentelemetry-instrument``, before gevent can patch ``threading``, whose
#: ``enumerate()`` then lists greenlets instead).
_MAIN_IDENT = realthread.get_ident() if threading.current_thread() is threading.main_thread() else None


def thread_info(ident: int) -> tuple:
    """``(name, native_id)`` of a live thread, or ``("", None)``."""
    for thread in threading.enumerate():
        if thread.ident == ident:
            if thread is threading.main_thread():
                # In a forked child (a gunicorn worker) the main thread keeps
                # the parent's native_id on some Pythons; its kernel id is our pid.
                return thread.name, os.getpid()
            return thread.name, getattr(thread, "native_id", None)
    if ident == _MAIN_IDENT:
        return "MainThread", os.getpid()
    return "", None


def thread_cpu_ns(ident: int, native_id: Optional[int]) -> Optional[int]:
    """CPU nanoseconds the thread has used so far, or None where unknown."""
    try:
        if _LINUX and native_id:
            # The kernel's per-thread CPU clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
            return time.clock_gettime_ns((~native_id << 3) | 6)
        return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError, OverflowError, ValueError):
        return None


def ratio(cpu_delta: Optional[int], wall_delta: int) -> Optional[float]:
    """CPU over wall time, clamped to [0, 1] against clock skew."""
    if cpu_delta is None or wall_delta <= 0:
        return None
    return max(0.0, min(1.0, cpu_delta / wall_delta))
