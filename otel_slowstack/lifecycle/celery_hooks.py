"""Celery: our signal handlers in force in the worker and its pool children,
and the result backend's calls kept apart from the task's own.

Nothing to configure: the hooks are set as soon as the modules concerned are
imported (or at once, if they already are), wherever otel-slowstack runs.

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
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from otel_slowstack import failures
from otel_slowstack.lifecycle.import_hooks import wrap_once, when_imported

_logger = logging.getLogger("otel_slowstack")

#: ``Backend`` methods that store a task's outcome after the task returned.
BACKEND_METHODS = ("mark_as_done", "mark_as_failure", "mark_as_retry", "mark_as_revoked")


def install() -> None:
    """Hook Celery and billiard once they are imported; harmless where they never are."""
    when_imported(
        "celery.apps.worker", lambda m: wrap_once(m, "Worker.install_platform_tweaks", _after_platform_tweaks)
    )
    when_imported("celery.signals", _connect_pool_process_init)
    when_imported("billiard.pool", lambda m: wrap_once(m, "Worker.after_fork", _after_fork))
    when_imported("celery.backends.base", _hook_backend)


def _connect_pool_process_init(module: Any) -> None:
    # weak=False: a module-level function; dispatch_uid: connected once.
    module.worker_process_init.connect(_in_pool_process, weak=False, dispatch_uid="otel_slowstack")


def _hook_backend(module: Any) -> None:
    for name in BACKEND_METHODS:
        wrap_once(module, f"Backend.{name}", _not_the_tasks)


def _after_fork(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    _in_pool_process()
    return result


def _after_platform_tweaks(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        import os

        from otel_slowstack.lifecycle import shutdown

        # Celery's own switch: SIGTERM as a cold shutdown.
        cold_term = os.environ.get("REMAP_SIGTERM", "").upper() in ("SIGQUIT", "QUIT")
        shutdown.install_signal_handlers({signal.SIGTERM: not cold_term})
    except Exception:
        failures.report_current("could not chain the signal handlers in the Celery worker")
    return result


def _in_pool_process(*args: Any, **kwargs: Any) -> None:
    try:
        from otel_slowstack.lifecycle import shutdown

        meanings = {}
        for name in ("SIGTERM", "SIGQUIT"):
            signum = getattr(signal, name, None)
            if signum is not None and _is_billiard_exit(signal.getsignal(signum)):
                meanings[signum] = False  # the child's way to die
        shutdown.install_signal_handlers(meanings)
    except Exception:
        failures.report_current("could not chain the signal handlers in a Celery pool process")


def _is_billiard_exit(handler: Any) -> bool:
    return getattr(handler, "__name__", "") == "_shutdown_cleanup" and "billiard" in str(
        getattr(handler, "__module__", "")
    )


def _not_the_tasks(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    from otel_slowstack import counters

    token = counters.not_counted.set(True)
    try:
        return wrapped(*args, **kwargs)
    finally:
        counters.not_counted.reset(token)
