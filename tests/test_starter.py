"""The frame a watched span's samples start from, for every way a span is started.

``on_start`` walks from ``Tracer.start_span`` outwards itself and remembers
the last starter's code (a server starts every span from the same place);
these check that the walk and that memory never pick the wrong frame,
including when the same process starts spans in several ways in turn.
"""

from __future__ import annotations

import _thread
import re
import threading

import pytest
from opentelemetry.sdk.trace import _Span as Span  # the SDK makes its spans as this class
from opentelemetry.trace import SpanKind

from otel_slowstack import sample

pytestmark = pytest.mark.unit

#: The first frame line of a formatted stack: its function's name.
FRAME = re.compile(r'^  File "[^"]*", line \d+, in (\S+)$', re.M)


@pytest.fixture
def sdk(make_sdk):
    return make_sdk(threshold="600s")


def starter_of_open_span(sdk) -> str:
    """The function a sample of the open span starts from, taken now on this
    thread through the sampling path: the outermost frame of the
    ``code.stacktrace`` a backend would show."""
    (watched,) = sdk.processor.open_roots()
    stack = sample.capture_stack(watched, sdk.processor.settings)
    assert stack, "no stack: the span's entry is not on this thread's stack"
    return FRAME.search(stack).group(1)


def with_start_span(sdk) -> str:
    span = sdk.tracer.start_span("GET /a", kind=SpanKind.SERVER)
    name = starter_of_open_span(sdk)
    span.end()
    return name


def with_start_as_current_span(sdk) -> str:
    with sdk.tracer.start_as_current_span("GET /b", kind=SpanKind.SERVER):
        return starter_of_open_span(sdk)


def with_span_start(sdk) -> str:
    """``Span.start()`` called directly, on a span the tracer made unstarted."""
    made = sdk.tracer.start_span("GET /c", kind=SpanKind.SERVER)
    made.end()
    span = Span(
        "GET /c", made.context, kind=SpanKind.SERVER, span_processor=sdk.provider._active_span_processor,
        resource=made.resource, instrumentation_scope=made.instrumentation_scope,
    )
    span.start()
    name = starter_of_open_span(sdk)
    span.end()
    return name


def with_a_decorator(sdk) -> str:
    @sdk.tracer.start_as_current_span("GET /d", kind=SpanKind.SERVER)
    def handler() -> str:
        return starter_of_open_span(sdk)

    return handler()


#: Each way's starter is the way's own function: the code that started the
#: span; for a decorated function, the code that called it (its body is the
#: span's work).
WAYS = [with_start_span, with_start_as_current_span, with_span_start, with_a_decorator]


@pytest.mark.parametrize("way", WAYS, ids=lambda w: w.__name__)
def test_the_starter_is_the_code_that_started_the_span(sdk, way):
    assert way(sdk) == way.__name__
    assert way(sdk) == way.__name__  # again: the remembered starter code serves this time


def test_ways_taken_in_turn_never_reuse_a_wrong_starter(sdk):
    for _ in range(3):
        for way in WAYS + WAYS[::-1]:
            assert way(sdk) == way.__name__, way.__name__


def test_a_span_started_at_the_bottom_of_a_stack_is_watched(sdk):
    """``on_start`` as the only frame of a thread: no starter, no failure."""
    made = sdk.tracer.start_span("GET /e", kind=SpanKind.SERVER)
    made.end()
    span = Span("GET /e", made.context, kind=SpanKind.SERVER, resource=made.resource)
    done = threading.Event()
    _thread.start_new_thread(lambda: (sdk.processor.on_start(span), done.set()), ())
    assert done.wait(10)
    (watched,) = sdk.processor.open_roots()
    assert watched.span is span
    assert watched.starter.f_code.co_name == "<lambda>"  # the thread's only frame above on_start
    sdk.processor._span_ended(span)
    assert sdk.processor.open_roots() == []
