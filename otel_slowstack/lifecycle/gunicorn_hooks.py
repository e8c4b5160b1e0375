"""gunicorn: our signal handlers in force in every worker, with nothing to configure.

Each gunicorn worker resets every signal and installs its own handlers right
after the fork (``Worker.init_signals``): SIGABRT for the ``--timeout``
abort, SIGTERM for a graceful stop, SIGQUIT and SIGINT for a quick one.
Handlers chained in the master, where ``opentelemetry-instrument`` loads us,
are gone by then. So, as soon as ``gunicorn.workers.base`` is imported (or at
once, if it already is), ``Worker.init_signals`` is wrapped to chain ours in
front of gunicorn's each time it has run; gunicorn's handlers still run,
after ours. This holds whether the processor was made in the master before
the fork (``--preload``, the instrumentor) or in the worker.

gunicorn asks that SIGTERM not interrupt system calls; re-installing a
handler from Python would lose that, so it is asked for again.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from otel_slowstack import failures
from otel_slowstack.lifecycle.import_hooks import wrap_once, when_imported

_logger = logging.getLogger("otel_slowstack")


def install() -> None:
    """Hook gunicorn's worker once it is imported; harmless where it never is."""
    when_imported("gunicorn.workers.base", lambda m: wrap_once(m, "Worker.init_signals", _after_init_signals))


def _after_init_signals(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        from otel_slowstack.lifecycle import shutdown

        if shutdown.install_signal_handlers() and hasattr(signal, "siginterrupt"):
            signal.siginterrupt(signal.SIGTERM, False)
    except Exception:
        failures.report_current("could not chain the signal handlers in the gunicorn worker")
    return result
