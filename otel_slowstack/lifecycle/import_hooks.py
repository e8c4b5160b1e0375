"""Patching a library when, and only when, the application imports it.

The servers whose signal handling we chain into (gunicorn, uvicorn, Celery
and billiard) are patched the moment their module is imported, or at once if
it already is, through wrapt's post-import hooks (wrapt comes with
opentelemetry-instrumentation). Where a library is never imported nothing
happens; each method is wrapped once per process (``shutdown.register``
installs the hooks once, too), and a failure to patch is logged, never raised
into the application.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from otel_slowstack import failures

_logger = logging.getLogger("otel_slowstack")
_wrapped: set = set()


def when_imported(module_name: str, patch: Callable[[Any], None]) -> None:
    """Call ``patch(module)`` once ``module_name`` is imported."""
    try:
        from wrapt import register_post_import_hook
    except ImportError:
        return
    register_post_import_hook(_guarded(patch, module_name), module_name)


def wrap_once(module: Any, name: str, wrapper: Callable[..., Any]) -> bool:
    """Wrap ``module.name`` (``"Class.method"``) with a wrapt ``wrapper``, once;
    False where it does not exist (another version of the library)."""
    key = (module.__name__, name)
    if key in _wrapped:
        return False
    owner: Any = module
    for part in name.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            return False
    from wrapt import wrap_function_wrapper

    wrap_function_wrapper(module, name, wrapper)
    _wrapped.add(key)
    return True


def _guarded(patch: Callable[[Any], None], module_name: str) -> Callable[[Any], None]:
    def run(module: Any) -> None:
        try:
            patch(module)
        except Exception:
            failures.report_current("could not hook %s" % (module_name,))

    return run
