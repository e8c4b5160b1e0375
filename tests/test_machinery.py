"""One filter for OpenTelemetry's own frames, used by the entry, the N+1 stack
and interrupts alike, behind real LRU caches (issue 14)."""

from __future__ import annotations

import sys

import pytest

from otel_slowstack import counters
from otel_slowstack.capture import entry, machinery
from otel_slowstack.lifecycle import interrupt

pytestmark = pytest.mark.unit


def frame_in(module: str, function: str = "f", filename: str = "/srv/app/views.py"):
    """A live frame of code that claims to be ``module``'s ``function`` in ``filename``."""
    namespace = {"__name__": module, "sys": sys}
    exec(compile(f"def {function}():\n    return sys._getframe()\n", filename, "exec"), namespace)
    return namespace[function]()


def test_each_question_has_its_answer():
    sdk = frame_in("opentelemetry.sdk.trace")
    helper = frame_in("contextlib", "inner", "/usr/lib/python3.11/contextlib.py")
    instrumentation = frame_in("opentelemetry.instrumentation.wsgi")
    wrapper = frame_in("wrapt.wrappers")
    server = frame_in("gunicorn.workers.sync")
    app = frame_in("shop.views")
    assert machinery.is_span_machinery(sdk) and machinery.is_span_machinery(helper)
    assert not machinery.is_span_machinery(instrumentation) and not machinery.is_span_machinery(app)
    assert all(machinery.is_carrier(f) for f in (sdk, helper, instrumentation, wrapper))
    assert not machinery.is_carrier(server) and not machinery.is_carrier(app)
    assert machinery.landing_kind(sdk) == machinery.NEVER
    assert machinery.landing_kind(helper) == machinery.STDLIB  # ``ContextDecorator``'s body
    assert machinery.landing_kind(instrumentation) == machinery.INSTRUMENTATION
    assert machinery.landing_kind(server) == machinery.NEVER
    assert machinery.landing_kind(app) == machinery.CODE


def test_the_three_callers_share_the_one_filter():
    assert counters._is_carrier is machinery.is_carrier
    assert interrupt._kind is machinery.landing_kind
    app = frame_in("shop.views")
    assert entry.find_starter(app) is app
    assert entry.find_starter(frame_in("opentelemetry.trace")).f_code.co_name == "frame_in"  # its caller
    assert machinery.flags_of(frame_in("opentelemetry.instrumentation.flask")) & machinery.OPENTELEMETRY


def test_a_name_that_is_not_a_string_is_not_machinery():
    odd = frame_in("shop.views")
    odd.f_globals["__name__"] = ["not", "hashable"]
    assert machinery.flags_of(odd) == 0
    assert entry.find_starter(odd) is odd
    assert machinery.landing_kind(odd) == machinery.CODE


def test_module_flags_are_a_real_lru_cache():
    cached = machinery.module_flags
    assert cached.cache_info().maxsize == machinery.MAX_MODULES
    cached.cache_clear()
    cached("kept.in.use")
    for n in range(machinery.MAX_MODULES + 10):
        cached(f"module{n}")
        if n % 100 == 0:
            cached("kept.in.use")  # used again: stays, however many come after
    info = cached.cache_info()
    assert info.currsize == machinery.MAX_MODULES
    hits = info.hits
    cached("kept.in.use")
    assert cached.cache_info().hits == hits + 1
    cached("module0")  # the stalest: evicted, not cleared with everything else
    assert cached.cache_info().hits == hits + 1
    cached(f"module{machinery.MAX_MODULES + 9}")
    assert cached.cache_info().hits == hits + 2


def test_landing_kinds_are_a_real_lru_cache():
    cached = machinery.code_kind
    assert cached.cache_info().maxsize == machinery.MAX_CODES
    cached.cache_clear()
    for n in range(machinery.MAX_CODES + 5):
        cached("shop.views", f"view{n}", "/srv/app/views.py")
    assert cached.cache_info().currsize == machinery.MAX_CODES
    misses = cached.cache_info().misses
    assert cached("shop.views", f"view{machinery.MAX_CODES + 4}", "/srv/app/views.py") == machinery.CODE
    assert cached.cache_info().misses == misses
