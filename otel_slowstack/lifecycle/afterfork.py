"""Python's after-fork cleanup where uWSGI skips it, and whether other threads' frames can be read.

uWSGI forks its workers in C and, unless started with
``--py-call-osafterfork``, never calls ``PyOS_AfterFork_Child()``: a worker
keeps the thread states of the master's threads (the SDK's batch export
thread, started by ``opentelemetry-instrument`` in the master) although those
threads do not exist in it, and no ``os.register_at_fork`` hook runs (the SDK
does not restart its export thread). Those states point into stacks that the
C library reuses for the worker's own threads, so ``sys._current_frames()``,
which reads every state, then reads garbage: a segfault, or another thread's
stack cut short.

What this module does about it, with no setting to change:

- In the uWSGI master it puts a function first in ``uwsgi.post_fork_hook``,
  which uWSGI calls in each new worker on its main thread, before the worker
  loads a lazy app or starts a thread. There, if Python's own after-fork has
  not run, it runs it, as ``os.fork()`` and ``--py-call-osafterfork`` do: the
  stale thread states go, and every after-fork hook runs (the SDK's export
  thread comes back). A hook set later (``uwsgidecorators`` sets its own at
  import) is chained after it.
- ``opentelemetry-instrument`` imports otel-slowstack before uWSGI has
  created its ``uwsgi`` module (Python 3.11 and older). The hook is then set on
  an empty module put in ``sys.modules``, which uWSGI adopts and fills in
  (``PyImport_AddModule`` takes the one there).
- otel-slowstack first imported in a worker (an application that adds the
  processor itself, loaded with ``--lazy-apps``): the cleanup runs there and
  then if the worker has a single thread, as it has while loading the app.
- Where none of that could happen (first imported in a worker that already
  runs several threads), ``frames_readable()`` is False and the frames of
  other threads are not read at all: no stacks, and one warning saying to
  start uWSGI with ``--py-call-osafterfork``.

Outside uWSGI this module only records, through ``os.register_at_fork``,
that each forked child had its cleanup.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from typing import Any, Callable, Optional

_logger = logging.getLogger("otel_slowstack")

#: The pid whose thread states are known to be those of live threads: set at
#: import, and by Python's own after-fork in each child (``os.fork``, or the
#: cleanup run here). A uWSGI worker that had neither has another pid.
_readable_pid: Optional[int] = None
_warned_pid: Optional[int] = None
#: uWSGI options under which uWSGI itself runs Python's after-fork cleanup.
_UWSGI_OPTIONS_THAT_CLEAN = ("py-call-osafterfork", "py-call-uwsgi-fork-hooks")


def frames_readable() -> bool:
    """True when every thread state of this process belongs to a live thread."""
    return _readable_pid == os.getpid()


def warn_unreadable() -> None:
    """One warning per process: no stacks here, and the uWSGI option that fixes it."""
    global _warned_pid
    pid = os.getpid()
    if _warned_pid == pid:
        return
    _warned_pid = pid
    _logger.warning(
        "otel-slowstack: process %d was forked without Python's after-fork cleanup "
        "(a uWSGI worker started without --py-call-osafterfork, and otel-slowstack was "
        "not imported in the master), so other threads' stacks cannot be read safely; "
        "no stacks are sampled in it. Start uWSGI with --py-call-osafterfork.",
        pid,
    )


def _after_fork_in_child() -> None:
    global _readable_pid
    _readable_pid = os.getpid()


def _single_thread() -> bool:
    """The process runs one OS thread: no thread state but ours can be in use."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # not Linux: cannot tell, so never assume
        return False


def clean_up_after_c_fork() -> bool:
    """Run Python's after-fork cleanup in a child forked without it; True if states are now readable.

    Only in a single-threaded process: the cleanup deletes every thread state
    but the caller's, which must therefore belong to no live thread.
    """
    if frames_readable():
        return True
    if not _single_thread():
        return False
    try:
        import _imp
        import ctypes

        after_fork = ctypes.pythonapi.PyOS_AfterFork_Child
        after_fork.argtypes = []
        after_fork.restype = None
    except Exception as exc:  # no ctypes, an interpreter without the function
        _logger.debug("otel-slowstack: after-fork cleanup unavailable: %r", exc)
        return False
    # The cleanup gives back one level of the import lock, the one
    # PyOS_BeforeFork takes before os.fork(): take it as that would, so that
    # an import in progress (the app's, in a lazy worker) keeps its own.
    _imp.acquire_lock()
    after_fork()  # runs _after_fork_in_child among the at-fork hooks
    _after_fork_in_child()
    return True


def _post_fork() -> None:
    """In a new uWSGI worker, on its main thread, before it starts threads."""
    try:
        clean_up_after_c_fork()
    except Exception:  # the worker must start whatever happens here
        pass


def _ours_first(hook: Any) -> Callable[[], None]:
    """``hook`` preceded by our cleanup (once: a hook already ours is kept)."""
    if hook is None or getattr(hook, "_otel_slowstack", False):
        return hook if hook is not None else _post_fork

    def post_fork_hook() -> None:
        _post_fork()
        hook()

    post_fork_hook._otel_slowstack = True  # type: ignore[attr-defined]
    return post_fork_hook


_post_fork._otel_slowstack = True  # type: ignore[attr-defined]


class _KeepsOurHookFirst(types.ModuleType):
    """uWSGI's ``uwsgi`` module, whose ``post_fork_hook`` always begins with ours."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "post_fork_hook" and value is not None:
            value = _ours_first(value)
        super().__setattr__(name, value)


def _take_post_fork_hook(uwsgi: Any) -> None:
    try:
        uwsgi.post_fork_hook = _ours_first(getattr(uwsgi, "post_fork_hook", None))
        if type(uwsgi) is types.ModuleType:
            uwsgi.__class__ = _KeepsOurHookFirst
    except Exception as exc:  # an unusual uwsgi module: workers warn if they need it
        _logger.debug("otel-slowstack: could not set uwsgi.post_fork_hook: %r", exc)


def _uwsgi_module() -> Any:
    """uWSGI's ``uwsgi`` module once uWSGI has filled it in, else None."""
    module = sys.modules.get("uwsgi")
    return module if module is not None and hasattr(module, "worker_id") else None


def _uwsgi_module_to_be() -> Any:
    """The ``uwsgi`` module before uWSGI has filled it in: the one Python 3.12+
    registers at start (still empty), else an empty one that uWSGI will take."""
    module = sys.modules.get("uwsgi")
    if module is None and "uwsgi" in sys.builtin_module_names:
        import uwsgi as module  # type: ignore[import-not-found, no-redef]
    if module is None:
        module = sys.modules.setdefault("uwsgi", types.ModuleType("uwsgi"))
    return module


def _in_uwsgi() -> bool:
    executable = os.path.basename(getattr(sys, "executable", "") or "")
    return "uwsgi" in sys.modules or "uwsgi" in sys.builtin_module_names or executable.startswith("uwsgi")


def _install() -> None:
    global _readable_pid
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    if not _in_uwsgi():
        _readable_pid = os.getpid()
        return
    uwsgi = _uwsgi_module()
    if uwsgi is None:
        # uWSGI's master at interpreter start (opentelemetry-instrument's sitecustomize).
        _readable_pid = os.getpid()
        _take_post_fork_hook(_uwsgi_module_to_be())
        return
    try:
        worker = uwsgi.worker_id()
        options = getattr(uwsgi, "opt", None) or {}
    except Exception:
        worker, options = 0, {}
    if worker == 0 or (worker == 1 and "master" not in options):
        # The master, or without one the process that loaded Python: not forked.
        _readable_pid = os.getpid()
        _take_post_fork_hook(uwsgi)
    elif any(name in options for name in _UWSGI_OPTIONS_THAT_CLEAN):
        _readable_pid = os.getpid()  # uWSGI ran Python's cleanup itself
    else:
        clean_up_after_c_fork()


_install()
