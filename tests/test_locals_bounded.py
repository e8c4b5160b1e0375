"""CAPTURE_LOCALS=true costs a few hundred bytes per value and runs no application code.

The samples are taken by the real watchdog through the real SDK; the
evidence is what the exporter receives and what tracemalloc saw.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest
from opentelemetry.trace import SpanKind

from otel_slowstack.capture.local_variables import MAX_VALUE_CHARS, local_lines
from otel_slowstack.settings import Settings
from support.spans import stacks

pytestmark = pytest.mark.unit


@pytest.fixture
def watched(make_sdk):
    """``watched(handler)`` runs ``handler`` under a SERVER span sampled once
    at 150 ms with locals on; returns that sample's ``code.stacktrace``."""

    def run(handler, **settings) -> str:
        sdk = make_sdk(threshold=150, max_samples=1, capture_locals=True, max_stack_bytes=16384, **settings)
        with sdk.tracer.start_as_current_span("GET /locals", kind=SpanKind.SERVER):
            handler()
        (stack,) = stacks(sdk.finished("GET /locals"))
        return stack

    return run


def local_value(stack: str, name: str) -> str:
    """The value of local ``name`` in the innermost frame that has one."""
    lines = [line for line in stack.splitlines() if line.startswith(f"    {name} = ")]
    assert lines, stack
    return lines[-1].split(" = ", 1)[1]


def upload(blob: bytes, text: str) -> None:
    time.sleep(0.8)


def test_a_150_mb_local_is_sliced_not_copied(watched):
    blob = bytes(150_000_000)  # allocated before tracing: only the sample's own allocations count
    text = "x" * 50_000_000
    tracemalloc.start()
    try:
        stack = watched(lambda: upload(blob, text))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert local_value(stack, "blob").endswith("... (150000000 bytes)")
    assert local_value(stack, "text").endswith("... (50000000 chars)")
    assert all(len(line.encode()) <= MAX_VALUE_CHARS + 40 for line in stack.splitlines())
    # A repr of the whole would be 600 MB; the SDK, the span and the sample need well under 4 MB.
    assert peak < 4_000_000, peak


def test_every_rendered_value_stays_within_a_few_hundred_bytes():
    release = threading.Event()
    frames = {}

    def holder() -> None:
        huge_int = 7 ** 100_000  # noqa: F841
        nested = [[["deep" * 1000] * 1000] * 1000]  # noqa: F841
        mapping = {i: "v" * 10_000 for i in range(100_000)}  # noqa: F841
        members = set(range(1_000_000))  # noqa: F841
        chars = bytearray(10_000_000)  # noqa: F841
        escaped = "\x00" * 1_000_000  # noqa: F841
        frames["holder"] = __import__("sys")._getframe()
        release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        while "holder" not in frames:
            time.sleep(0.01)
        tracemalloc.start()
        lines = local_lines(frames["holder"], Settings().redact)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        release.set()
        thread.join()
    sizes = {line.split(" = ")[0].strip(): len(line.encode()) for line in lines}
    assert set(sizes) >= {"huge_int", "nested", "mapping", "members", "chars", "escaped"}
    assert max(sizes.values()) <= MAX_VALUE_CHARS + 20, sizes
    assert peak < 200_000, peak
    print("bytes per rendered line:", sizes, "peak", peak)


class Spy:
    """Counts every call of the methods a careless renderer would make."""

    calls: list = []

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        Spy.calls.append("__repr__")
        return "Spy()"

    def __lt__(self, other) -> bool:
        Spy.calls.append("__lt__")
        return self.n < other.n

    def __eq__(self, other) -> bool:
        Spy.calls.append("__eq__")
        return self is other

    def __hash__(self) -> int:
        Spy.calls.append("__hash__")
        return self.n

    def __len__(self) -> int:
        Spy.calls.append("__len__")
        return 1

    @property
    def __class__(self):  # isinstance() reads this
        Spy.calls.append("__class__")
        return Spy


class SpyList(list):
    def __len__(self) -> int:
        Spy.calls.append("SpyList.__len__")
        return 0

    def __iter__(self):
        Spy.calls.append("SpyList.__iter__")
        return iter(())

    def __repr__(self) -> str:
        Spy.calls.append("SpyList.__repr__")
        return "[]"


class SpyStr(str):
    def __getitem__(self, item):
        Spy.calls.append("SpyStr.__getitem__")
        return str.__getitem__(self, item)

    def __repr__(self) -> str:
        Spy.calls.append("SpyStr.__repr__")
        return "''"

    def __len__(self) -> int:
        Spy.calls.append("SpyStr.__len__")
        return 0


class SpyDict(dict):
    def items(self):
        Spy.calls.append("SpyDict.items")
        return dict.items(self)

    def __iter__(self):
        Spy.calls.append("SpyDict.__iter__")
        return dict.__iter__(self)

    def __len__(self) -> int:
        Spy.calls.append("SpyDict.__len__")
        return 0


class SpyMeta(type):
    """Comparing or hashing the type itself (``type(x) in (...)``) runs these."""

    def __eq__(cls, other) -> bool:
        Spy.calls.append("SpyMeta.__eq__")
        return cls is other

    def __hash__(cls) -> int:
        Spy.calls.append("SpyMeta.__hash__")
        return id(cls)


class Record(metaclass=SpyMeta):
    pass


class Namespace(dict):
    """A class body's namespace that is the application's own mapping."""

    def items(self):
        Spy.calls.append("Namespace.items")
        return dict.items(self)


class Meta(type):
    @classmethod
    def __prepare__(mcs, name, bases):
        return Namespace()


def handler_full_of_spies() -> None:
    spies = {Spy(3), Spy(1), Spy(2)}  # noqa: F841  (sorting them runs __lt__)
    frozen = frozenset([Spy(5), Spy(4)])  # noqa: F841
    by_spy = {Spy(1): "one", Spy(2): "two"}  # noqa: F841  (looking keys up runs __hash__/__eq__)
    spy = Spy(0)  # noqa: F841
    in_tuple = (Spy(7), [Spy(8)])  # noqa: F841
    sub_list = SpyList([1, 2])  # noqa: F841
    sub_str = SpyStr("password=hunter2")  # noqa: F841
    sub_dict = SpyDict(a=1)  # noqa: F841
    by_word = {SpyStr("password"): "hunter2"}  # noqa: F841
    record = Record()  # noqa: F841
    Spy.calls.clear()  # building them ran __hash__; from here on, nothing may

    class Model(metaclass=Meta):
        time.sleep(0.8)


def test_no_application_code_runs(watched):
    stack = watched(handler_full_of_spies)
    assert Spy.calls == []
    assert local_value(stack, "spy") == "<test_locals_bounded.Spy>"
    assert local_value(stack, "spies").count("<test_locals_bounded.Spy>") == 3
    assert local_value(stack, "sub_list") == "<test_locals_bounded.SpyList>"
    assert local_value(stack, "sub_str") == "<test_locals_bounded.SpyStr>"
    assert local_value(stack, "by_word") == "{<test_locals_bounded.SpyStr>: [REDACTED]}"
    assert local_value(stack, "record") == "<test_locals_bounded.Record>"
    assert "hunter2" not in stack
    assert "in Model" in stack
