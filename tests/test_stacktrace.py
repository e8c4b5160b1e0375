"""Formatting and eliding stacks: pure functions, no threads."""

from __future__ import annotations

import re

import pytest

from otel_slowstack.capture.stacktrace import FrameLine, elision_line, format_stack

pytestmark = pytest.mark.unit

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


# -- the same text as before the formatter was made fast (issue 12) ------------


def _reference_format(frames, max_frames: int, max_bytes: int) -> str:
    """The formatter as it was before issue 12 (commit bfe1ee8), kept as the
    oracle: the report parses this text, so a faster formatter must not
    change one byte of it."""
    from bisect import bisect_left

    def size(line):
        return len(line.encode("utf-8", "surrogatepass")) + 1

    def gap(count):
        return 27 + len(str(count)) if count > 0 else 0

    if not frames:
        return ""
    positions, position = [], -1
    for frame in frames:
        position += frame.elided_before + 1
        positions.append(position)
    n = position + 1
    texts = [frame.text() for frame in frames]
    sizes = [size(text) for text in texts]
    budget = max_bytes + 1
    if n <= max_frames and sum(sizes) <= budget and not any(f.local_lines for f in frames):
        return "\n".join(texts)
    last = len(frames) - 1
    order = [last] + ([0] if last > 0 else [])
    order += [i for i in range(last - 1, 0, -1) if frames[i].is_app]
    order += [i for i in range(last - 1, 0, -1) if i not in set(order)]
    smallest, kept, used = min(sizes), [], gap(n)
    for index in order:
        if len(kept) >= max_frames or used + smallest > budget:
            break
        pos = bisect_left(kept, index)
        before = positions[kept[pos - 1]] if pos else -1
        after = positions[kept[pos]] if pos < len(kept) else n
        at = positions[index]
        cost = sizes[index] + gap(at - before - 1) + gap(after - at - 1) - gap(after - before - 1)
        if used + cost <= budget:
            kept.insert(pos, index)
            used += cost
    if not kept:
        from otel_slowstack.capture.stacktrace import _squeeze

        return _squeeze(texts[-1], n - 1, max_bytes)
    room, with_locals = budget - used, {}
    for index in reversed(kept):
        for line in frames[index].local_lines:
            if size(line) > room:
                break
            with_locals.setdefault(index, []).append(line)
            room -= size(line)
        else:
            continue
        break
    lines, previous = [], -1
    for index in kept:
        at = positions[index]
        if at - previous > 1:
            lines.append(elision_line(at - previous - 1))
        lines.append(texts[index])
        lines.extend(with_locals.get(index, ()))
        previous = at
    if n - 1 - previous > 0:
        lines.append(elision_line(n - 1 - previous))
    return "\n".join(lines)


def _random_stack(rng) -> list:
    frames = []
    for i in range(rng.choice([1, 2, 3, 20, 52, 54, 80, 200, 600])):
        roll = rng.random()
        path = rng.choice(["/srv/shop/", "/venv/lib/python3.11/site-packages/django/", "/srv/ünï/", "<frozen "])
        local = (f"    order_id = {i}", "    password = [REDACTED]") if roll < 0.05 else ()
        elided = rng.choice([0] * 30 + [1, 9, 10, 99, 100, 5000])
        frames.append(FrameLine(path + "m" * rng.randrange(60) + ".py", rng.randrange(1, 20000), f"f{i}", roll < 0.5, local, elided))
    return frames


def test_output_is_byte_identical_to_the_formatter_before_issue_12():
    import random

    rng = random.Random(12)
    for _ in range(600):
        frames = _random_stack(rng)
        max_frames, max_bytes = rng.choice([1, 2, 5, 64, 10_000]), rng.choice([40, 100, 256, 512, 2048, 8192, 65536])
        expected = _reference_format(frames, max_frames, max_bytes)
        assert format_stack(frames, max_frames, max_bytes) == expected
        assert format_stack(tuple(frames), max_frames, max_bytes) == expected  # cached by now, or not cacheable
        assert format_stack(list(frames), max_frames, max_bytes) == expected


def test_a_cached_text_is_never_served_for_other_lines_with_the_same_ends():
    """The whole-stack cache is bucketed by the outermost and innermost lines:
    a stack that differs only in its middle gets its own text."""
    outer, inner = app(0), lib(99)
    first = [outer] + [lib(i) for i in range(1, 40)] + [inner]
    second = [outer] + [app(i) for i in range(1, 40)] + [inner]
    assert format_stack(first, 64, 2048) == _reference_format(first, 64, 2048)
    assert format_stack(second, 64, 2048) == _reference_format(second, 64, 2048)
    assert format_stack(first, 64, 2048) != format_stack(second, 64, 2048)
    assert format_stack(first, 64, 1024) == _reference_format(first, 64, 1024)  # limits are part of the key
