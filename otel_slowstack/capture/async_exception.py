"""Raising an exception in another thread, only where it was checked to land.

``PyThreadState_SetAsyncExc`` makes a thread raise at its next bytecode, or
right after the C call it is blocked in. The one way every owner interrupts
a thread (``ThreadOwner``, a task holding its loop, a greenlet hogging its
thread, a pool thread working for a task) is ``send_parked``: the target's
innermost frame is checked by the caller's ``safe_here`` while the target
cannot move, then the exception is sent. ``withdraw_from`` takes back one
sent and not yet raised.

Runs on the watchdog thread (``send_parked``) and on the target thread itself
(``withdraw_from``, as its span ends).
"""

from __future__ import annotations

import ctypes
import gc
import sys
import time
from types import FrameType
from typing import Callable, Optional

from otel_slowstack.seams import current_frames, set_async_exc

#: Checks of a parked thread in one ``send_parked`` while the OS keeps preempting the watchdog.
PARK_TRIES = 3
_modules = sys.modules
_clock = time.perf_counter
_switch_interval = sys.getswitchinterval


def send_parked(ident: int, exc_type: type, safe_here: Callable[[FrameType], bool]) -> Optional[bool]:
    """``PyThreadState_SetAsyncExc`` to thread ``ident``, only while it is
    parked at a frame where ``safe_here`` allows the exception to land.

    The exception lands where the thread next checks for it: at once if it
    waits for the GIL at a bytecode boundary, right after the C call it is
    blocked in otherwise; either way in the innermost frame seen here,
    provided the thread does not run between the check and the send. It
    cannot: this thread first gives up the GIL and takes it back
    (``time.sleep(0)``), and CPython lets a waiting thread ask for the GIL only
    after a whole switch interval (5 ms) of waiting, counted from that take;
    the check and the send take microseconds, with the garbage collector
    (whose finalizers could release the GIL) held off. The target's frame and
    instruction are read again after the send: had it moved all the same, the
    exception is taken back and not sent again.

    A caller that does not care where it lands passes a ``safe_here`` that
    only checks the target still serves it (the task still holds the loop).
    True: sent; None: not at a safe point now; False: gone or moved.
    """
    # The walk that decides can be long (a recursion 20,000 frames deep): do
    # it first, outside the window. Inside it, a thread still in that same
    # innermost frame object is still on that same stack: the exception lands
    # in that frame, which the walk found safe.
    checked = current_frames().get(ident)
    if checked is None:
        return False
    if not safe_here(checked):
        return None
    enabled = gc.isenabled()
    gc.disable()
    try:
        sleep = _real_sleep()
        for _ in range(PARK_TRIES):
            sleep(0)  # a fresh hold of the GIL
            began = _clock()
            innermost = current_frames().get(ident)
            if innermost is None:
                return False
            if innermost is not checked and not safe_here(innermost):
                return None
            if _clock() - began < _switch_interval() / 2:
                break
            # The OS took this thread away meanwhile: another thread may be
            # asking for the GIL by now. Check again on a fresh hold.
            checked = innermost
        else:
            return None
        thread = ctypes.c_ulong(ident)
        done = set_async_exc(thread, ctypes.py_object(exc_type))
        if done != 1:
            if done:
                set_async_exc(thread, None)
            return False
        if current_frames().get(ident) is not innermost:
            set_async_exc(thread, None)  # it ran into another frame meanwhile: never a second try
            return False
        return True
    finally:
        if enabled:
            gc.enable()


def withdraw_from(ident: int) -> None:
    """Take back an exception sent to thread ``ident`` and not yet raised (a no-op if none)."""
    set_async_exc(ctypes.c_ulong(ident), None)


def _real_sleep() -> Callable[[float], None]:
    """``time.sleep`` as it was before gevent patched it (this is a real thread)."""
    monkey = _modules.get("gevent.monkey")
    if monkey is not None:
        try:
            if monkey.is_module_patched("time"):
                return monkey.get_original("time", "sleep")
        except Exception:
            pass
    return time.sleep
