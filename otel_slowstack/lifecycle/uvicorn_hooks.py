"""uvicorn: a graceful stop snapshots the requests still running.

uvicorn does not chain signal handlers: while it serves, SIGINT and SIGTERM
go to ``Server.handle_exit`` alone, set by ``signal.signal`` over whatever was
there (ours included), and put back when it stops. Both mean a graceful
stop: uvicorn stops accepting and waits for the requests in flight (a second
SIGINT forces the exit). So ``handle_exit`` is wrapped, as soon as
``uvicorn.server`` is imported, to take a snapshot of every span past its
threshold before uvicorn's own handling; nothing is ended early. This covers
plain ``uvicorn`` and gunicorn's ``UvicornWorker`` alike, which runs the same
``Server``. When uvicorn is done it raises the signal again, and our chained
handler, in force once more, ends whatever is still open.
"""

from __future__ import annotations

import logging
from typing import Any

from otel_slowstack import failures
from otel_slowstack.lifecycle.import_hooks import wrap_once, when_imported

_logger = logging.getLogger("otel_slowstack")


def install() -> None:
    """Hook uvicorn's server once it is imported; harmless where it never is."""
    when_imported("uvicorn.server", lambda m: wrap_once(m, "Server.handle_exit", _handle_exit))


def _handle_exit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        from otel_slowstack.lifecycle import shutdown

        signum = args[0] if args else kwargs.get("sig")
        frame = args[1] if len(args) > 1 else kwargs.get("frame")
        if isinstance(signum, int):
            shutdown.on_signal(signum, frame, graceful=True)
    except Exception:
        failures.report_current("snapshotting on uvicorn's stop failed")
    return wrapped(*args, **kwargs)
