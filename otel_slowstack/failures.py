"""Failures inside otel-slowstack: contained, and logged once per kind, in one line.

Whatever goes wrong in our own code, the application goes on and the span goes
unwatched. The log line names the exception and where it was raised, and
never carries a formatted traceback: on Python 3.11 formatting one runs
``ast.parse`` (for its ``^^^`` markers), which can collide with an ``ast.parse``
on another thread and crash the process (CPython issue 106905); and a log
handler formatting ``exc_info`` would do the same on our thread.
"""

from __future__ import annotations

import logging
import os
import sys

_logger = logging.getLogger("otel_slowstack")
#: Kinds of failure logged so far; past this many, only at DEBUG level.
MAX_KINDS = 100
_seen: set = set()


def describe(exc: BaseException) -> str:
    """``ValueError: message (at file.py:12 in func)``, without formatting a traceback."""
    where = ""
    tb = exc.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code
        where = f" (at {os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name})"
    try:
        message = str(exc)[:200]
    except Exception:  # an exception whose __str__ fails
        message = "<unprintable>"
    return f"{type(exc).__name__}: {message}{where}"


def report(exc: BaseException, what: str) -> None:
    """Log ``otel-slowstack: WHAT: <exception>`` once per kind of failure."""
    line = describe(exc)
    kind = (what, type(exc), line)
    if kind in _seen or len(_seen) >= MAX_KINDS:
        _logger.debug("otel-slowstack: %s: %s", what, line)
        return
    _seen.add(kind)
    _logger.warning("otel-slowstack: %s: %s", what, line)


def report_current(what: str) -> None:
    """``report`` for the exception being handled (inside an ``except`` block)."""
    exc = sys.exc_info()[1]
    if exc is not None:
        report(exc, what)
