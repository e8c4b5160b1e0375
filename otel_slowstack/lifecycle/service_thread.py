"""A background OS thread that sleeps until woken, is rebuilt after fork, and stops with a join.

The watchdog and the snapshot flusher each run on such a thread, so the
skeleton lives here once: started on first use (never at import, never by a
constructor), woken through ``WakeUp``, ended by ``stop(timeout)`` (wake it,
then ``join``: no polling loop) or by its own body returning, and rebuilt in a
forked child, where the parent's thread does not exist (gunicorn and Celery
prefork workers, with or without ``--preload``). After a fork the child starts
a fresh thread on its next ``wake()``, as the SDK's batch processor does.

Everything is built on ``realthread``: under gevent's monkey-patching a
``threading.Event`` would belong to the hub, and a real thread waiting on it
could stall every greenlet.

Who touches what: any thread calls ``wake``, ``stop`` and ``join``; only the
service thread itself calls ``wait`` and ``end_if``; ``os.register_at_fork``
calls the reset, in the child, while it is the child's only thread.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable, Optional

from otel_slowstack import failures
from otel_slowstack.lifecycle import realthread

#: The longest single wait: ``_thread.lock.acquire`` refuses larger timeouts
#: on some platforms, and an hour is far beyond any deadline we keep.
MAX_WAIT_S = 3600.0


class WakeUp:
    """An auto-reset event for one waiter, on a real lock.

    ``set`` from any thread; ``wait`` on the waiting thread returns True when
    set, and consumes it, so each ``set`` wakes the waiter at most once. Sets
    that come while nobody waits are kept (once), so none is lost.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = realthread.allocate_lock()
        self._lock.acquire()  # held = not set

    def set(self) -> None:
        if self._lock.locked():
            try:
                self._lock.release()
            except RuntimeError:  # another thread set it first
                pass

    def is_set(self) -> bool:
        return not self._lock.locked()

    def clear(self) -> None:
        self._lock.acquire(False)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until set (consuming it) or ``timeout`` seconds pass; True if set."""
        if timeout is None:
            return self._lock.acquire()
        return self._lock.acquire(timeout=min(max(timeout, 0.0), MAX_WAIT_S))


class ServiceThread:
    """One daemon OS thread running ``body()``, started by the first ``wake``.

    ``body`` decides how long to sleep (``wait``) and when to end (by
    returning, or with ``end_if`` when ending must not race a ``wake``).
    ``after_fork`` runs in a forked child after the thread's own reset, for
    the owner to drop what the parent's thread was working on.
    """

    def __init__(self, name: str, body: Callable[[], None], after_fork: Optional[Callable[[], None]] = None) -> None:
        self.name = name
        self._body = body
        self._after_fork = after_fork
        self._reset()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _rebuild(ref))

    def _reset(self) -> None:
        """Fresh state; in a forked child the parent's thread does not exist."""
        self._mutex = realthread.allocate_lock()
        self.wakeup = WakeUp()
        #: Released when the latest thread has ended; None before the first start.
        self._done: Optional[Any] = None
        self._running = False
        self.stopping = False
        #: The running thread's identifier, for ``join`` from itself and for tests.
        self.ident: Optional[int] = None

    @property
    def running(self) -> bool:
        return self._running

    # -- any thread ---------------------------------------------------------

    def wake(self) -> None:
        """Start the thread if it is not running, and wake it."""
        if not self._running:
            self._start()
        self.wakeup.set()

    def stop(self, timeout_s: float) -> bool:
        """Have the body end (it sees ``stopping``), and wait for it at most
        ``timeout_s``; True if it has ended. It stays stopped until a fork."""
        with self._mutex:
            self.stopping = True
        self.wakeup.set()
        return self.join(timeout_s)

    def join(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` for the thread to end; True if it has (or never ran)."""
        done = self._done
        if done is None or self.ident == realthread.get_ident():
            return True
        if done.acquire(timeout=min(max(timeout_s, 0.0), MAX_WAIT_S)):
            done.release()
            return True
        return False

    def _start(self) -> None:
        with self._mutex:
            if self._running or self.stopping:
                return
            self._running = True
            done = self._done = realthread.allocate_lock()
            done.acquire()
        try:
            realthread.start_thread(lambda: self._main(done), self.name)
        except RuntimeError:  # interpreter shutting down: no new threads
            self._ended(done)

    # -- the service thread ---------------------------------------------------

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Sleep until woken (True) or ``timeout_s`` has passed (False)."""
        return self.wakeup.wait(timeout_s)

    def end_if(self, idle: Callable[[], bool]) -> bool:
        """End now if ``idle()`` holds, atomically with ``wake``: a wake-up that
        comes after this check starts a new thread instead of being lost."""
        with self._mutex:
            if not idle():
                return False
            self._running = False
            return True

    def _main(self, done: Any) -> None:
        self.ident = realthread.get_ident()
        try:
            self._body()
        except BaseException as exc:  # never let the process see us die silently
            failures.report(exc, f"the {self.name} thread stopped")
        finally:
            self._ended(done)

    def _ended(self, done: Any) -> None:
        with self._mutex:
            if self._done is done:  # not a newer thread's state
                self._running = False
                self.ident = None
        done.release()


def _rebuild(ref: "weakref.ref[ServiceThread]") -> None:
    thread = ref()
    if thread is None:
        return
    thread._reset()
    if thread._after_fork is not None:
        try:
            thread._after_fork()
        except Exception:
            failures.report_current(f"resetting {thread.name} after fork failed")


def serve_each_wakeup(name: str, work: Callable[[], None], after_fork: Optional[Callable[[], None]] = None) -> ServiceThread:
    """A ``ServiceThread`` that runs ``work()`` each time it is woken, until stopped.

    A wake-up that comes while ``work`` runs makes it run once more, so none
    is lost; ``work`` should look at ``thread.stopping`` in long loops.
    """

    def body() -> None:
        while True:
            thread.wait()
            if thread.stopping:
                return
            work()

    thread = ServiceThread(name, body, after_fork)
    return thread
