"""Stacks parse the same whatever wrote them; paths are classified on their text."""

from __future__ import annotations

import sys
import traceback

import pytest

from otel_slowstack.report.paths import is_app_path, short_path
from otel_slowstack.report.stacks import ELIDED_NAME, parse_stack

pytestmark = pytest.mark.unit

PROCESSOR_FORM = """\
  File "/opt/venv/lib/python3.12/site-packages/flask/app.py", line 917, in full_dispatch_request
  [... 3 frames elided ...]
  File "/srv/shop/views.py", line 40, in report
    user_id = 42
  File "/srv/shop/views.py", line 52, in fetch_rates"""

PY310_FORM = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.12/site-packages/flask/app.py", line 917, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/shop/views.py", line 40, in report
    rates = fetch_rates(seconds)
  File "/srv/shop/views.py", line 52, in fetch_rates
    return client.get(url).json()
TimeoutError: timed out
"""

PY311_FORM = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.12/site-packages/flask/app.py", line 917, in full_dispatch_request
    rv = self.dispatch_request()
         ^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/views.py", line 40, in report
    rates = fetch_rates(seconds)
            ^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/views.py", line 52, in fetch_rates
    return client.get(url).json()
           ~~~~~~~~~~^^^^^
TimeoutError: timed out
"""

CHAINED = """\
Traceback (most recent call last):
  File "/srv/shop/old.py", line 1, in gone
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
""" + PY311_FORM.split("\n", 1)[1]


def _names(frames) -> list:
    return [(f.function, f.line, f.is_app) for f in frames if not f.is_elided]


def test_processor_form_keeps_elision_markers_in_place() -> None:
    frames = parse_stack(PROCESSOR_FORM)
    assert [f.function for f in frames] == ["full_dispatch_request", ELIDED_NAME, "report", "fetch_rates"]
    assert frames[1].elided == 3 and frames[1].is_elided
    assert frames[2].file == "/srv/shop/views.py" and frames[2].is_app
    assert not frames[0].is_app


@pytest.mark.parametrize("text", [PY310_FORM, PY311_FORM, PY311_FORM.replace("\n", "\r\n"), CHAINED])
def test_tracebacks_of_every_python_version_parse_the_same(text: str) -> None:
    assert _names(parse_stack(text)) == [
        ("full_dispatch_request", 917, False),
        ("report", 40, True),
        ("fetch_rates", 52, True),
    ]


def test_a_traceback_from_this_interpreter_parses() -> None:
    def inner() -> str:
        try:
            raise ValueError("boom")
        except ValueError:
            return traceback.format_exc()

    frames = parse_stack(inner())
    assert frames[-1].function == "inner"
    assert frames[-1].file == __file__


def test_recursion_marker_and_exception_group_bars() -> None:
    text = (
        '  |   File "/srv/app/tree.py", line 5, in walk\n'
        "  |     return walk(node.left)\n"
        "  |   [Previous line repeated 996 more times]\n"
        '  |   File "/srv/app/tree.py", line 3, in walk\n'
    )
    frames = parse_stack(text)
    assert [f.function for f in frames] == ["walk", ELIDED_NAME, "walk"]
    assert frames[1].elided == 996


def test_elided_counts_do_not_split_stacks() -> None:
    a = parse_stack('  File "/a.py", line 1, in f\n  [... 3 frames elided ...]')
    b = parse_stack('  File "/a.py", line 1, in f\n  [... 7 frames elided ...]')
    assert a == b


def test_no_stack() -> None:
    assert parse_stack("") == () and parse_stack(None) == ()
    assert parse_stack("KeyError: 'x'") == ()


@pytest.mark.parametrize(
    "path, app, short",
    [
        ("/srv/shop/app/views.py", True, "app/views.py"),
        ("/home/me/lib/project/models.py", True, "project/models.py"),
        ("/opt/venv/lib/python3.12/site-packages/flask/app.py", False, "flask/app.py"),
        ("/usr/lib/python3/dist-packages/requests/api.py", False, "requests/api.py"),
        ("/usr/lib/python3.11/threading.py", False, "threading.py"),
        ("/usr/local/lib/python3.13t/asyncio/base_events.py", False, "asyncio/base_events.py"),
        ("/root/.pyenv/versions/3.12.1/lib/python3.12/socket.py", False, "socket.py"),
        ("/usr/lib/pypy3.10/json/decoder.py", False, "json/decoder.py"),
        ("C:\\Python311\\Lib\\json\\decoder.py", False, "json/decoder.py"),
        ("C:\\app\\venv\\Lib\\site-packages\\django\\db\\models.py", False, "django/db/models.py"),
        ("C:\\work\\shop\\views.py", True, "shop/views.py"),
        ("<frozen importlib._bootstrap>", False, "<frozen importlib._bootstrap>"),
        ("<string>", False, "<string>"),
    ],
)
def test_app_or_library_from_the_path_text(path: str, app: bool, short: str) -> None:
    assert is_app_path(path) is app
    assert short_path(path) == short


def test_this_interpreters_own_stdlib_is_library() -> None:
    assert not is_app_path(traceback.__file__)
    assert sys.modules[__name__].__file__ and is_app_path(__file__)
