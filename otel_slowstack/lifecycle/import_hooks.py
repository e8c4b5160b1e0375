"""Patching a library when, and only when, the application imports it; and unpatching it.

The servers whose signal handling we chain into (gunicorn, uvicorn, Celery
and billiard) are patched the moment their module is imported, or at once if
it already is, through wrapt's post-import hooks (wrapt comes with
opentelemetry-instrumentation). Where a library is never imported nothing
happens; each method is wrapped once per process, and a failure to patch is
logged, never raised into the application.

Only ``process_hooks`` turns this on (``enable``) and off (``disable``).
Disabling puts every wrapped method back where nobody wrapped it after us,
and turns the rest into plain pass-throughs. wrapt cannot forget a post-import
hook, so a hook whose module was not imported yet stays registered with it,
and does nothing once disabled; enabling again reuses it rather than
registering a second one.

Which thread: ``enable``/``disable`` run where ``process_hooks`` is called;
a patch runs on whichever thread imports the module (under Python's import
lock); a wrapper runs on the thread calling the wrapped method.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, NamedTuple

from otel_slowstack import failures

_logger = logging.getLogger("otel_slowstack")
_MISSING = object()

_enabled = False
#: (module name, key) -> the patch registered with wrapt for it, guarded.
_registered: dict = {}


class _Patched(NamedTuple):
    """One method we wrapped: where, our wrapper, and what was there before."""

    owner: Any
    attribute: str
    wrapper: Any
    #: The owner's own attribute before (``_MISSING`` if inherited).
    before: Any


#: (module name, "Class.method") -> _Patched
_patched: dict = {}


def enabled() -> bool:
    return _enabled


def enable() -> None:
    """Let the patches apply: now for modules already imported, later for the rest."""
    global _enabled
    _enabled = True
    for (module_name, _), guarded in list(_registered.items()):
        module = sys.modules.get(module_name)
        if module is not None:
            guarded(module)


def disable() -> None:
    """Unwrap what can be unwrapped; whatever cannot, passes calls straight through."""
    global _enabled
    _enabled = False
    for key, patched in list(_patched.items()):
        try:
            if vars(patched.owner).get(patched.attribute) is patched.wrapper:
                if patched.before is _MISSING:
                    delattr(patched.owner, patched.attribute)
                else:
                    setattr(patched.owner, patched.attribute, patched.before)
                del _patched[key]
            # else: wrapped again by someone after us; ours stays, inert.
        except Exception:
            failures.report_current("could not unwrap %s" % (key[1],))


def when_imported(module_name: str, patch: Callable[[Any], None], key: Any = None) -> None:
    """Call ``patch(module)`` once ``module_name`` is imported (at once if it is),
    while enabled. Registered once per ``key`` (default: ``patch`` itself)."""
    try:
        from wrapt import register_post_import_hook
    except ImportError:
        return
    registered_as = (module_name, patch if key is None else key)
    if registered_as in _registered:
        return  # registered before: ``enable`` applied it to an imported module
    guarded = _registered[registered_as] = _guarded(patch, module_name)
    register_post_import_hook(guarded, module_name)


def patch_when_imported(seam: tuple, wrapper: Callable[..., Any]) -> None:
    """Wrap ``seam`` (``(module name, "Class.method")``, from ``seams``) with a wrapt
    ``wrapper`` once its module is imported."""
    module_name, name = seam
    when_imported(module_name, lambda module: wrap_once(module, name, wrapper), key=(name, wrapper))


def wrap_once(module: Any, name: str, wrapper: Callable[..., Any]) -> bool:
    """Wrap ``module.name`` (``"Class.method"``) with a wrapt ``wrapper``, once;
    False where it does not exist (another version of the library)."""
    key = (module.__name__, name)
    if key in _patched:
        return False
    path = name.split(".")
    owner: Any = module
    for part in path[:-1]:
        owner = getattr(owner, part, None)
        if owner is None:
            return False
    attribute = path[-1]
    if getattr(owner, attribute, None) is None:
        return False
    from wrapt import wrap_function_wrapper

    before = vars(owner).get(attribute, _MISSING)
    wrap_function_wrapper(owner, attribute, _while_enabled(wrapper))
    _patched[key] = _Patched(owner, attribute, vars(owner).get(attribute), before)
    return True


def _while_enabled(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` while enabled; the bare call once disabled (a wrapper that
    could not be taken out, because another was put over it)."""

    def run(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not _enabled:
            return wrapped(*args, **kwargs)
        return wrapper(wrapped, instance, args, kwargs)

    return run


def _guarded(patch: Callable[[Any], None], module_name: str) -> Callable[[Any], None]:
    def run(module: Any) -> None:
        if not _enabled:
            return
        try:
            patch(module)
        except Exception:
            failures.report_current("could not hook %s" % (module_name,))

    return run
