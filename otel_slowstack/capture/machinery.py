"""Which frames are OpenTelemetry's, otel-slowstack's or a server's own machinery.

One home for the lists of those modules, each frame's answer worked out once
and cached, for the three questions asked of a frame:

- ``entry.find_starter`` (every watched span's ``on_start``): does this frame
  only create or activate spans (the SDK, the API, ``contextlib``, this
  package)? The first frame outwards that does not started the span;
- ``counters.issuing_stack`` (an N+1 event): does it only carry a span
  (any OpenTelemetry package, an instrumentation's ``wrapt`` wrapper)?
- ``lifecycle.interrupt`` (where an exception may land): is it the request's
  own code, the standard library, an instrumentation wrapping a call, or code
  that must never see the exception (span and context bookkeeping, servers)?

Two real LRU caches (``functools.lru_cache``, C code: a hit costs what a
dict lookup did), touched without a lock by request threads (span starts,
N+1 events) and the watchdog (interrupts) alike: module names, for the
per-span questions, which depend on the module only; and (module, function
name, file name), for the landing kind. Never keyed by the code object
itself: hashing one hashes its constants and names (about 0.3 µs).
"""

from __future__ import annotations

import sysconfig
from functools import lru_cache
from types import FrameType
from typing import Any

#: Landing kinds (``landing_kind``), as ``lifecycle.interrupt`` names them.
CODE, STDLIB, INSTRUMENTATION, NEVER = 0, 1, 2, 3
#: Flag: the frame only creates or activates spans (``find_starter`` skips it).
SPAN_MACHINERY = 4
#: Flag: the frame only carries a span (``issuing_stack`` skips it).
CARRIER = 8
#: Flag: any OpenTelemetry package (an instrumentation's hook may start a span
#: before the request's work begins: ``entry.entry_candidates``).
OPENTELEMETRY = 16

#: Modules whose frames only create or activate spans.
_SPAN_MACHINERY = (
    "opentelemetry.sdk",
    "opentelemetry.trace",
    "opentelemetry.context",
    "opentelemetry.util",
    "opentelemetry.attributes",
    "contextlib",
    "otel_slowstack",
)
#: Modules whose frames only carry a span: instrumentation, the SDK, this package.
_CARRIERS = ("otel_slowstack", "opentelemetry.", "contextlib", "wrapt")
_OPENTELEMETRY = "opentelemetry."
_INSTRUMENTATION = "opentelemetry.instrumentation."
#: Code that must never see an interrupt: span and context bookkeeping, and
#: servers (their loop, ``start_response``, the response iterator's close).
_NEVER = (
    "otel_slowstack",
    "contextlib",
    "gunicorn",
    "uvicorn",
    "uvicorn_worker",
    "werkzeug.serving",
    "wsgiref",
    "socketserver",
    "http.server",
    "gevent.pywsgi",
    "gevent.baseserver",
    "gevent.server",
    "waitress",
    "hypercorn",
    "daphne",
    "asyncio.base_events",
    "asyncio.events",
    "asyncio.runners",
)
#: ``ContextDecorator``'s wrapper (``@transaction.atomic``, a function decorated
#: with ``@tracer.start_as_current_span(...)``) runs the decorated function
#: inside its ``with``: the request's own code. OpenTelemetry's own wrapper
#: for coroutine functions does the same.
CONTEXTLIB_BODIES = frozenset({"inner"})
_OPENTELEMETRY_WRAPPERS = frozenset({("opentelemetry.util._decorator", "async_wrapper")})
#: Modules and functions remembered at most (a process has a few thousand).
MAX_MODULES = 1024
MAX_CODES = 4096


def _stdlib_roots() -> tuple:
    roots = set()
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path.rstrip("/") + "/")
    return tuple(roots)


_STDLIB = _stdlib_roots()


@lru_cache(maxsize=MAX_MODULES)
def module_flags(module: Any) -> int:
    """``SPAN_MACHINERY``, ``CARRIER`` and ``OPENTELEMETRY`` of a module's code,
    by its ``__name__`` (0 for a name that is not a string)."""
    if not isinstance(module, str):
        return 0
    flags = 0
    if module.startswith(_SPAN_MACHINERY):
        flags |= SPAN_MACHINERY
    if module.startswith(_CARRIERS):
        flags |= CARRIER
    if module.startswith(_OPENTELEMETRY):
        flags |= OPENTELEMETRY
    return flags


@lru_cache(maxsize=MAX_CODES)
def code_kind(module: str, name: str, filename: str) -> int:
    """The landing kind of a function ``name`` of ``module`` in ``filename``."""
    if module.startswith(_INSTRUMENTATION) or (module, name) in _OPENTELEMETRY_WRAPPERS:
        return INSTRUMENTATION
    if module.startswith(_OPENTELEMETRY) or module.startswith(_NEVER):
        return STDLIB if module == "contextlib" and name in CONTEXTLIB_BODIES else NEVER
    if filename.startswith("<frozen") or (filename.startswith(_STDLIB) and "-packages" not in filename):
        return STDLIB
    return CODE


def flags_of(frame: FrameType) -> int:
    """``module_flags`` of the frame's module."""
    try:
        return module_flags(frame.f_globals.get("__name__"))
    except TypeError:  # a ``__name__`` that cannot be hashed
        return 0


def is_span_machinery(frame: FrameType) -> bool:
    """The frame only creates or activates spans (``entry.find_starter``)."""
    return bool(flags_of(frame) & SPAN_MACHINERY)


def is_carrier(frame: FrameType) -> bool:
    """The frame only carries a span (``counters.issuing_stack``)."""
    return bool(flags_of(frame) & CARRIER)


def landing_kind(frame: FrameType) -> int:
    """``CODE``, ``STDLIB``, ``INSTRUMENTATION`` or ``NEVER`` (``lifecycle.interrupt``)."""
    name = frame.f_globals.get("__name__")
    code = frame.f_code
    return code_kind(name if isinstance(name, str) else "", code.co_name, code.co_filename)
