"""Celery: our signal handlers in force in the worker and its pool children,
and the result backend's calls kept apart from the task's own.

Nothing to configure: once ``process_hooks`` is installed, the hooks are set
as soon as the modules concerned are imported (or at once, if they already
are); ``uninstall`` takes them out again. The methods patched are named in
``seams.py``, with the versions they were checked against.

Signals. A Celery worker sets its own handlers when it starts
(``Worker.install_platform_tweaks``): SIGTERM is a warm shutdown (running
tasks finish: snapshots only, nothing ended), SIGQUIT and SIGINT a cold one
(running tasks are cancelled: final samples, spans ended). Ours are chained
in front again right after. Each prefork child is forked by billiard, whose
``reset_signals`` replaces SIGTERM and SIGQUIT with ``_shutdown_cleanup``,
which exits the child: that SIGTERM is a task's hard time limit (SIGKILL
follows 0.1 s later) or ``kill -TERM`` of the child, so there it means "die
now". billiard 4.3 resets them in ``Worker.after_fork`` *after* running the
pool's initializer, which is what sends Celery's ``worker_process_init``; so
ours are chained again when ``after_fork`` returns, and also on
``worker_process_init`` (for a billiard that resets first). Only a handler
that is billiard's ``_shutdown_cleanup`` gets the "die now" meaning: the solo
pool sends ``worker_process_init`` in the worker itself, whose SIGTERM keeps
its warm meaning.

Result backend. opentelemetry-instrumentation-celery's ``run/<task>`` span
also covers storing the task's outcome (``mark_as_done`` and friends: a
Redis ``SET`` and ``PUBLISH``, a chord's counter), after the task function
returned. Client spans that end inside those calls are not counted in the
task's ``slowstack.db.*``/``slowstack.http.*`` nor in its N+1 detection
(see ``counters.not_counted``); they stay in the trace as they are.

Which thread: the signal re-chaining runs on the worker's (or child's) main
thread, where Celery and billiard set theirs; the backend wrapper on the
thread that stores the outcome.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from otel_slowstack import failures, seams
from otel_slowstack.lifecycle import signals
from otel_slowstack.lifecycle.import_hooks import patch_when_imported, when_imported, wrap_once

_logger = logging.getLogger("otel_slowstack")

#: Our receiver's id on Celery's ``worker_process_init`` (connected once).
_DISPATCH_UID = "otel_slowstack"


def install() -> None:
    """Hook Celery and billiard once they are imported; harmless where they never are."""
    patch_when_imported(seams.CELERY_PLATFORM_TWEAKS, _after_platform_tweaks)
    patch_when_imported(seams.BILLIARD_AFTER_FORK, _after_fork)
    when_imported(seams.CELERY_SIGNALS, _connect_pool_process_init)
    when_imported(seams.CELERY_BACKEND, _hook_backend)


def uninstall() -> None:
    """Disconnect from Celery's signal (the wrapped methods are ``import_hooks``' to unwrap)."""
    module = sys.modules.get(seams.CELERY_SIGNALS)
    if module is not None:
        try:
            module.worker_process_init.disconnect(dispatch_uid=_DISPATCH_UID)
        except Exception:
            failures.report_current("could not disconnect from worker_process_init")


def _connect_pool_process_init(module: Any) -> None:
    # weak=False: a module-level function; dispatch_uid: connected once.
    module.worker_process_init.connect(_in_pool_process, weak=False, dispatch_uid=_DISPATCH_UID)


def _hook_backend(module: Any) -> None:
    for name in seams.CELERY_BACKEND_METHODS:
        wrap_once(module, name, _not_the_tasks)


def _after_fork(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    _in_pool_process()
    return result


def _after_platform_tweaks(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        # Celery's own switch: SIGTERM as a cold shutdown.
        cold_term = os.environ.get("REMAP_SIGTERM", "").upper() in ("SIGQUIT", "QUIT")
        signals.chain_in_front({signal.SIGTERM: not cold_term})
    except Exception:
        failures.report_current("could not chain the signal handlers in the Celery worker")
    return result


def _in_pool_process(*args: Any, **kwargs: Any) -> None:
    try:
        meanings = {}
        for name in ("SIGTERM", "SIGQUIT"):
            signum = getattr(signal, name, None)
            if signum is not None and seams.is_billiard_exit(signal.getsignal(signum)):
                meanings[signum] = False  # the child's way to die
        signals.chain_in_front(meanings)
    except Exception:
        failures.report_current("could not chain the signal handlers in a Celery pool process")


def _not_the_tasks(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    from otel_slowstack import counters  # counters imports this package: not at import time

    token = counters.not_counted.set(True)
    try:
        return wrapped(*args, **kwargs)
    finally:
        counters.not_counted.reset(token)
