"""A runaway recursion, however deep, is sampled and can be interrupted.

Seen: past about 4096 frames the span's entry frame was never found, the span
was taken as "moved on", and the recursion got no sample and no interrupt.
The sample keeps the entry and the innermost frames and says how many were
elided in between.
"""

from __future__ import annotations

import re
import sys
import threading
import time

from opentelemetry.trace import SpanKind, StatusCode
from support.sdk import Sdk
from support.spans import samples

from otel_slowstack import SlowRequestInterrupted

DEPTH = 20_000


def recurse(n: int, give_up_at: float) -> None:
    if n == 0:
        while time.monotonic() < give_up_at:  # the runaway work at the bottom
            pass
        return
    recurse(n - 1, give_up_at)


def test_a_recursion_twenty_thousand_frames_deep_is_sampled_and_interrupted():
    sdk = Sdk(threshold=200, interval=200, max_samples=2, interrupt_after=1200, snapshot_after="off")
    outcome: list = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(DEPTH + 1000)

    def request() -> None:
        try:
            with sdk.tracer.start_as_current_span("GET /deep", kind=SpanKind.SERVER):
                recurse(DEPTH, time.monotonic() + 20)
            outcome.append("ran to the end")
        except SlowRequestInterrupted:
            outcome.append("interrupted")

    try:
        thread = threading.Thread(target=request)
        thread.start()
        thread.join(30)
    finally:
        sys.setrecursionlimit(limit)
    assert outcome == ["interrupted"]
    span = sdk.finished("GET /deep")
    assert span.status.status_code is StatusCode.ERROR
    taken = samples(span)
    triggers = [s["slowstack.trigger"] for s in taken]
    assert triggers[0] == "threshold" and "interrupt" in triggers, triggers
    for sample in taken:
        stack = sample["code.stacktrace"].splitlines()
        assert "in request" in stack[0]  # the span's entry, outermost
        assert "in recurse" in stack[-1]  # the innermost frame, where the time goes
        elided = [int(m.group(1)) for m in map(re.compile(r"  \[\.\.\. (\d+) frames elided").match, stack) if m]
        assert sum(elided) + sum(1 for line in stack if line.startswith("  File")) == DEPTH + 2
    sdk.shutdown()
