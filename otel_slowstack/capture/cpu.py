"""CPU time of another thread, for ``slowstack.cpu_ratio``.

The owning thread reads its own CPU clock once in ``on_start``
(``time.thread_time_ns``); the watchdog later reads the same clock of that
thread from outside. The clock is addressed by the thread's kernel id (its
TID), which fails cleanly (``EINVAL``) once the thread is gone. A
``pthread_t`` is never handed to libc here: for a thread that has exited it is
a dangling pointer into a freed stack, and ``pthread_getcpuclockid`` on it
reads freed memory (a segfault, seen under load). Where the TID is unknown,
or the platform has no per-TID clock, there is no CPU figure at all.

Runs on the watchdog thread; ``thread_info`` is a dictionary lookup, not a
walk over every thread, so a sample costs the same with 3 or 3000 threads.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

from otel_slowstack.lifecycle import realthread
from otel_slowstack.seams import live_threads

_LINUX = sys.platform.startswith("linux")

#: The main thread's real identifier, taken at import (under
#: ``opentelemetry-instrument``, before gevent can patch ``threading``, whose
#: registry then holds greenlets instead).
_MAIN_IDENT = realthread.get_ident() if threading.current_thread() is threading.main_thread() else None



def thread_info(ident: int) -> tuple:
    """``(name, native_id)`` of a live thread, or ``("", None)``."""
    thread = live_threads().get(ident)
    if thread is not None:
        if thread is threading.main_thread():
            # A forked child's main thread (a gunicorn or uWSGI worker) may
            # keep the parent's native_id; its kernel id is our pid.
            return thread.name, os.getpid()
        return thread.name, getattr(thread, "native_id", None)
    if ident == _MAIN_IDENT:
        return "MainThread", os.getpid()
    return "", None


def thread_cpu_ns(ident: int, native_id: Optional[int]) -> Optional[int]:
    """CPU nanoseconds the thread has used so far, or None where unknown.

    ``ident`` is not used to find the clock (see the module's docstring); it
    stays in the signature for callers that have only it to pass.
    """
    if not (_LINUX and native_id and native_id > 0):
        return None
    try:
        # The kernel's per-thread CPU clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
        return time.clock_gettime_ns((~native_id << 3) | 6)
    except (AttributeError, OSError, OverflowError, ValueError):
        return None


def ratio(cpu_delta: Optional[int], wall_delta: int) -> Optional[float]:
    """CPU over wall time, clamped to [0, 1] against clock skew."""
    if cpu_delta is None or wall_delta <= 0:
        return None
    return max(0.0, min(1.0, cpu_delta / wall_delta))
