"""The caches that make a sample cheap never change what a sample says.

Lines are cached per (code object, instruction offset), whole stacks per
their codes and offsets, formatted text per lines and limits (issue 12);
all are bounded LRU caches (issue 14). Real frames of real threads here.
"""

from __future__ import annotations

import re
import sys
import threading

import pytest

from otel_slowstack.capture import frames, stacktrace
from otel_slowstack.capture.frames import frame_lines, lines_of
from otel_slowstack.lru import LRU
from otel_slowstack.capture.stacktrace import FrameLine, format_stack

pytestmark = pytest.mark.unit


def uncached(frame_list: list) -> list:
    """What a frame shows, read straight from the frames (no cache involved)."""
    return [
        FrameLine(f.f_code.co_filename, frames._lineno(f), f.f_code.co_name, frames.is_app_file(f.f_code.co_filename))
        for f in frame_list
    ]


def stack_of(frame) -> list:
    out = []
    while frame is not None:
        out.append(frame)
        frame = frame.f_back
    return out[::-1]


def test_a_stack_read_again_is_the_same_as_read_fresh_and_follows_the_thread():
    at_first, go_on, at_second, done = (threading.Event() for _ in range(4))

    def dive(n: int) -> None:
        if n:
            return dive(n - 1)
        at_first.set()
        go_on.wait(30)
        at_second.set()
        done.wait(30)  # the same stack, one line further down

    thread = threading.Thread(target=dive, args=(40,))
    thread.start()
    try:
        assert at_first.wait(30)
        first = stack_of(sys._current_frames()[thread.ident])
        assert len(first) > 40
        seen = lines_of(first)
        assert seen == uncached(first)
        assert lines_of(first) == seen  # a stuck thread, sampled again: from the caches
        go_on.set()
        assert at_second.wait(30)
        moved = stack_of(sys._current_frames()[thread.ident])
        while moved[-1].f_code.co_name != "wait" or len(moved) != len(first):
            moved = stack_of(sys._current_frames()[thread.ident])  # until it sits in the second wait
        again = lines_of(moved)
        assert again == uncached(moved)
        innermost_dive = max(i for i, line in enumerate(seen) if line.name == "dive")
        assert again[innermost_dive].lineno == seen[innermost_dive].lineno + 2  # the same frames, a line further
    finally:
        go_on.set()
        done.set()
        thread.join(30)


def test_locals_are_read_at_every_sample_even_at_the_same_offset():
    redact = re.compile("password")

    def handler(value):
        order_total = value
        return lines_of([sys._getframe()], redact)

    first, second = handler(1), handler(2)
    assert "    order_total = 1" in first[0].local_lines
    assert "    order_total = 2" in second[0].local_lines
    assert first[0]._replace(local_lines=()) == second[0]._replace(local_lines=())


def test_a_code_object_freed_and_its_id_reused_never_yields_its_old_line(monkeypatch):
    """Tiny caches, so entries are evicted and the freed code objects' ids
    come back for new code objects from other files at other lines."""
    monkeypatch.setattr(frames, "_frame_lines", LRU(2))
    monkeypatch.setattr(frames, "_stacks", LRU(2))
    monkeypatch.setattr(stacktrace, "_formatted", LRU(2))
    seen_ids: set = set()
    reused = 0
    for i in range(300):
        namespace: dict = {}
        source = "\n" * (i % 7) + "def where():\n    import sys\n    return sys._getframe()\n"
        exec(compile(source, f"/srv/generated/module{i}.py", "exec"), namespace)
        frame = namespace["where"]()
        code_id = id(frame.f_code)
        reused += code_id in seen_ids
        seen_ids.add(code_id)
        (line,) = lines_of([frame])
        assert (line.filename, line.lineno) == (f"/srv/generated/module{i}.py", 3 + i % 7)
        assert format_stack([line], 64, 2048) == f'  File "/srv/generated/module{i}.py", line {3 + i % 7}, in where'
        del frame, namespace
    assert reused, "no id was reused: the test proved nothing"


def test_frame_lines_from_a_frame_matches_lines_of_its_walk():
    def inner():
        return sys._getframe()

    frame = inner()
    assert frame_lines(frame) == lines_of(stack_of(frame)) == uncached(stack_of(frame))


def test_caches_stay_bounded_whatever_the_stacks():
    def make(i):
        exec(compile("def f():\n    import sys\n    return sys._getframe()\n", f"/srv/many/m{i}.py", "exec"), ns := {})
        return ns["f"]()

    for i in range(frames._frame_lines.maxsize + 500):
        frame = make(i)
        format_stack(lines_of([frame, frame]), 64, 2048)
    assert len(frames._frame_lines) <= frames._frame_lines.maxsize
    assert len(frames._stacks) <= frames._stacks.maxsize
    assert len(stacktrace._formatted) <= stacktrace._formatted.maxsize


def test_lru_evicts_the_least_recently_used():
    cache: LRU[int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2
