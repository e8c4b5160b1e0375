"""Operating-system threads and locks, even under gevent's monkey patching.

After ``gevent.monkey.patch_all()`` a ``threading.Thread`` is a greenlet and
a ``threading.Lock`` blocks the hub. The watchdog must stay a real thread, so
that a greenlet hogging the CPU is still caught, and its wake-up must work
across real threads. Everything here comes from ``_thread`` as it was before
patching.
"""

from __future__ import annotations

import _thread
import sys
import threading
from typing import Any, Callable


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    try:
        return monkey is not None and bool(monkey.is_module_patched("threading"))
    except Exception:
        return False


def _original(name: str) -> Any:
    if _patched():
        return sys.modules["gevent.monkey"].get_original("_thread", name)
    return getattr(_thread, name)


def allocate_lock() -> Any:
    """A real ``_thread.lock``."""
    return _original("allocate_lock")()


#: The calling OS thread's identifier (not a greenlet's). Bound once: taken
#: before patching it is the interpreter's own function, and stays so after.
get_ident: Callable[[], int] = _original("get_ident")


def start_thread(target: Callable[[], None], name: str) -> None:
    """Start ``target`` on a new daemon OS thread."""
    if _patched():
        _original("start_new_thread")(target, ())
    else:
        threading.Thread(target=target, name=name, daemon=True).start()
