"""Everything otel-slowstack changes in the process, installed once and taken back.

Building a processor changes nothing outside it (as the SDK's processors do);
the "When the process stops" behaviour needs hooks into the process, and this
is the one place that installs them:

- ``atexit``: ``shutdown.at_exit`` ends the spans still open at interpreter exit;
- signal handlers for SIGABRT, SIGINT, SIGQUIT and SIGTERM, chained in front
  of the ones there (``signals.py``), and chained again where gunicorn,
  Celery and billiard reset them, with uvicorn's ``Server.handle_exit``
  wrapped; the servers' methods are patched only once their module is
  imported (``import_hooks``), the Celery result backend's too
  (``celery_hooks``);
- a filter on the SDK's ``opentelemetry.sdk.trace`` logger that drops the
  "ended span" warnings of our own racing writes (``quiet``).

``install(owner)`` is called by ``SlowStackInstrumentor.instrument()``, and
by ``SlowStackProcessor()`` itself (a processor added by hand still gets the
way down), unless told not to with ``process_hooks=False``. The hooks go in
once per process however many owners ask; a forked child inherits them.
``uninstall(owner)`` withdraws that owner's claim and, once no owner still
alive and not shut down holds one, restores what ``install`` changed: the
previous signal handlers (a handler of ours that a server has chained under
its own since cannot be taken out, so it passes straight through), the
``atexit`` registration, the patched methods, Celery's signal receiver, the
log filter, and the interrupt's signal handler if ``INTERRUPT_AFTER`` had
installed it (``interrupt_signal``).

Which thread: ``install`` and ``uninstall`` change signal handlers only when
called on the main thread (Python allows no other); elsewhere the handlers
are chained the next time a server resets them, or not at all. Both are
guarded by a lock.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

from otel_slowstack import failures
from otel_slowstack.lifecycle import celery_hooks, import_hooks, interrupt_signal, quiet, realthread, shutdown, signals

_lock = realthread.allocate_lock()
_installed = False
#: Who asked for the hooks: the instrumentor, processors made with ``process_hooks=True``.
_owners: "weakref.WeakSet[Any]" = weakref.WeakSet()


def installed() -> bool:
    return _installed


def install(owner: Any) -> bool:
    """Install the process hooks on behalf of ``owner``, unless they are; True if this call did."""
    global _installed
    with _lock:
        _owners.add(owner)
        if _installed:
            return False
        _installed = True
        try:
            quiet.install()
            atexit.register(shutdown.at_exit)
            import_hooks.enable()
            signals.install(shutdown.on_signal)
            celery_hooks.install()
        except Exception:
            failures.report_current("could not install the process hooks")
        return True


def uninstall(owner: Any) -> bool:
    """``owner`` needs the hooks no more; restore what ``install`` changed once
    nobody else does. True if they were restored."""
    global _installed
    with _lock:
        _owners.discard(owner)
        if not _installed or any(not getattr(o, "_shut_down", False) for o in list(_owners)):
            return False
        _owners.clear()
        _installed = False
        for step in (
            signals.uninstall,
            interrupt_signal.uninstall,
            lambda: atexit.unregister(shutdown.at_exit),
            celery_hooks.uninstall,
            import_hooks.disable,
            quiet.uninstall,
        ):
            try:
                step()
            except Exception:
                failures.report_current("could not restore a process hook")
        return True
