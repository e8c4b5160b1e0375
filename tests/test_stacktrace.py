"""Formatting and eliding stacks: pure functions, no threads."""

from __future__ import annotations

import re

import pytest

from otel_slowstack.stacktrace import FrameLine, elision_line, format_stack

LINE = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>\S+)$')
ELIDED = re.compile(r"^  \[\.\.\. (\d+) frames elided \.\.\.\]$")


def lib(i: int) -> FrameLine:
    return FrameLine(f"/venv/lib/python3.11/site-packages/framework/layer{i}.py", 100 + i, f"layer{i}", False)


def app(i: int, local_lines: tuple = ()) -> FrameLine:
    return FrameLine(f"/srv/shop/views{i}.py", 10 + i, f"view{i}", True, local_lines)


def parse(text: str) -> list:
    """Back to (name or elided count) per line, checking every line's form."""
    out = []
    for line in text.split("\n"):
        if m := LINE.match(line):
            out.append(m["name"])
        elif m := ELIDED.match(line):
            out.append(int(m[1]))
        elif line.startswith("    "):
            out.append(("local", line.strip()))
        else:
            raise AssertionError(f"not traceback form: {line!r}")
    return out


def test_small_stack_is_plain_traceback_form():
    frames = [lib(0), app(1), app(2)]
    text = format_stack(frames, 64, 2048)
    assert text == (
        '  File "/venv/lib/python3.11/site-packages/framework/layer0.py", line 100, in layer0\n'
        '  File "/srv/shop/views1.py", line 11, in view1\n'
        '  File "/srv/shop/views2.py", line 12, in view2'
    )


def test_empty():
    assert format_stack([], 64, 2048) == ""


def test_max_frames_keeps_innermost_then_app_then_entry():
    frames = [lib(i) for i in range(10)] + [app(10)] + [lib(i) for i in range(11, 20)] + [app(20)] + [lib(21)]
    names = parse(format_stack(frames, 4, 10_000))
    kept = [n for n in names if isinstance(n, str)]
    assert kept == ["layer0", "view10", "view20", "layer21"]
    # Every dropped frame is accounted for, in order.
    assert sum(n for n in names if isinstance(n, int)) == len(frames) - 4
    assert names == ["layer0", 9, "view10", 9, "view20", "layer21"]


@pytest.mark.parametrize("budget", [256, 300, 512, 700, 1024, 2048])
def test_byte_budget_is_never_exceeded_and_innermost_survives(budget):
    frames = [lib(i) for i in range(60)] + [app(60), app(61)] + [lib(i) for i in range(62, 100)]
    text = format_stack(frames, 64, budget)
    assert len(text.encode()) <= budget
    names = parse(text)
    assert names[-1] == "layer99"
    total = sum(1 for n in names if isinstance(n, str)) + sum(n for n in names if isinstance(n, int))
    assert total == len(frames)
    if budget >= 512:
        assert "view60" in names and "view61" in names


def test_app_frames_come_before_library_frames():
    frames = [lib(i) for i in range(30)] + [app(30)] + [lib(i) for i in range(31, 40)]
    names = parse(format_stack(frames, 5, 10_000))
    assert "view30" in names and "layer39" in names and "layer0" in names


def test_one_huge_line_is_squeezed_not_dropped():
    frames = [FrameLine("/x/" + "deep/" * 200 + "f.py", 1, "f", True)]
    text = format_stack(frames, 64, 256)
    assert len(text.encode()) <= 256
    assert text.endswith('f.py", line 1, in f')


def test_non_ascii_paths_count_in_bytes():
    frames = [FrameLine(f"/srv/ünïcödé/{i}/v.py", i, "vüe", True) for i in range(40)]
    text = format_stack(frames, 64, 512)
    assert len(text.encode("utf-8")) <= 512
    parse(text)


def test_locals_fill_remaining_room_innermost_first():
    frames = [app(0, ("    a = 1",)), lib(1), app(2, ("    order_id = 7", "    password = [REDACTED]"))]
    text = format_stack(frames, 64, 2048)
    assert "    order_id = 7" in text and "    a = 1" in text
    # Locals never push frames out.
    small = format_stack(frames, 64, 200)
    assert "view2" in small and len(small.encode()) <= 200


def test_elision_marker_form():
    assert elision_line(7) == "  [... 7 frames elided ...]"
