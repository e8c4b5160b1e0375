"""Who runs a watched span's code: the ``Owner`` protocol, and choosing one.

An owner is recorded in ``on_start`` for the price of a few attribute reads
(``task_or_greenlet_owner``; a plain thread's later, by ``Watched.owner``),
and asked for its stack only when a sample is due. Three kinds, one per way
Python servers run a request, each in a module of its own:

- ``ThreadOwner`` (``thread_owner.py``): one OS thread from start to end
  (WSGI, Celery);
- ``TaskOwner`` (``task_owner.py``): an asyncio task (ASGI);
- ``GreenletOwner`` (``greenlet_owner.py``): a greenlet (gevent).

Every one has every member of ``Owner``, so callers (the sample, the
watchdog, interrupts, snapshots) never ask which kind they hold.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Callable, Optional, Pattern, Protocol, runtime_checkable

from otel_slowstack.capture.greenlet_owner import GreenletOwner
from otel_slowstack.capture.task_owner import TaskOwner
from otel_slowstack.capture.thread_owner import ThreadOwner
from otel_slowstack.lifecycle.realthread import get_ident
from otel_slowstack.seams import current_task_of, get_running_loop

__all__ = ["Owner", "ThreadOwner", "TaskOwner", "GreenletOwner", "task_or_greenlet_owner"]

_modules = sys.modules


@runtime_checkable
class Owner(Protocol):
    """What the rest of otel-slowstack may ask of whoever runs a span's code."""

    #: The OS thread it started on (a task's loop thread, a greenlet's thread).
    ident: int
    #: The frame that started the span, until ``release``.
    starter: Optional[FrameType]

    @property
    def thread_ident(self) -> int:
        """The OS thread whose frames end the last capture (``thread.id``, the CPU clock)."""
        ...

    @property
    def loop_blocked_by(self) -> Optional[str]:
        """asyncio: the span whose task held the loop at the last capture; else None."""
        ...

    def capture(self, frames_by_thread: dict, redact: Optional[Pattern[str]]) -> Optional[list]:
        """Its frames from the span's entry inwards as ``FrameLine`` data (with
        locals where ``redact`` is given), or None when it no longer serves the span."""
        ...

    def working_thread(self, frames_by_thread: dict) -> Optional[int]:
        """The OS thread doing the span's work now (whose CPU clock to read), or None."""
        ...

    def scoped(self) -> bool:
        """Whether the span's code is delimited on its stack, so an interrupt may land in it."""
        ...

    def interrupt(self, exc_type: type, safe: Optional[Callable] = None) -> Optional[bool]:
        """Make ``exc_type`` raise inside it where ``safe(frames, entry)`` allows
        (``interrupt.landing_is_safe``). True: sent; None: try again; False: gone."""
        ...

    def withdraw(self) -> None:
        """On its own thread: take back an exception ``interrupt`` sent that has not landed."""
        ...

    def hub(self) -> Any:
        """The gevent hub it runs under (snapshot spans end there), or None."""
        ...

    def release(self) -> None:
        """Drop references to frames and tasks once the span has ended."""
        ...


def task_or_greenlet_owner(starter: Optional[FrameType], registry: Optional[dict]) -> Optional[Owner]:
    """The owner of a span starting now if it is an asyncio task or a greenlet;
    None for a plain thread, whose owner is made later, only if needed.

    A few C calls: the running loop (and its current task) only exist under
    asyncio; a greenlet is only asked for when greenlet is imported, and is
    the owner only when it is not its thread's main greenlet.
    """
    loop = get_running_loop()
    if loop is not None:
        task = current_task_of(loop)
        if task is not None:
            return TaskOwner(task, loop, get_ident(), starter, registry)
    greenlets = _modules.get("greenlet")
    if greenlets is not None:
        current = greenlets.getcurrent()
        if current.parent is not None:
            return GreenletOwner(current, get_ident(), starter)
    return None
