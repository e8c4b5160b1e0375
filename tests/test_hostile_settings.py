"""Whatever a user types, the application keeps running and stays watched.

Every setting, from the environment, an ``opentelemetry-instrument`` flag or
a keyword, is valid or one warning and a fallback: no ``OverflowError``, no
non-ASCII digits read as numbers, durations at most a day (so the
watchdog's timed wait cannot overflow), ``None`` never compiled as a regex,
``INTERRUPT_AFTER`` of 0 meaning off.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_slowstack import SlowRequestInterrupted
from otel_slowstack.settings import _FIELDS, MS, Settings
from support.spans import samples
from support.servers import BIN, otel_env

P = "OTEL_PYTHON_SLOWSTACK_"
HUGE = "9" * 400
MAX_DURATION_NS = 86_400_000 * MS  # one day, as the README documents


def read(caplog, environ=None, **keywords) -> tuple:
    """(settings, warnings) for one reading."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_slowstack"):
        settings = Settings.from_env(environ or {}, **keywords)
    return settings, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "value", [HUGE, "99999999999999999999", "86400001", "1441m", "9" * 5000 + "s"], ids=lambda v: v[:24]
)
def test_a_duration_too_long_for_the_watchdog_is_one_day_with_one_warning(caplog, value):
    settings, (message,) = read(caplog, {P + "THRESHOLD": value})
    assert settings.threshold_ns == MAX_DURATION_NS
    assert P + "THRESHOLD" in message and "one day" in message and value[:40] in message
    assert len(message) < 300  # a 5000-digit value is cut short in the log


@pytest.mark.parametrize(
    "value",
    [float("inf"), 1e308, timedelta.max, 10**400, Decimal("Infinity"), Decimal("1e400"), Fraction(10**500, 3)],
    ids=lambda v: repr(v)[:30],
)
def test_a_huge_keyword_duration_is_one_day_with_one_warning(caplog, value):
    settings, warnings = read(caplog, threshold=value)
    assert settings.threshold_ns == MAX_DURATION_NS
    (message,) = warnings
    assert message.startswith("otel-slowstack: threshold=") and "one day" in message


@pytest.mark.parametrize(
    "value",
    ["٣", "١٠٠٠", "３", "inf", "nan", "1e308", "-1", "0x10", "1_000", float("nan"), float("-inf"), -0.5,
     timedelta(seconds=-1), True, b"500", [500], object()],
    ids=lambda v: "object()" if type(v) is object else repr(v)[:30],  # stable across processes
)
def test_a_malformed_duration_is_the_default_with_one_warning(caplog, value):
    if isinstance(value, str):
        settings, warnings = read(caplog, {P + "THRESHOLD": value})
        where = P + "THRESHOLD"
    else:
        settings, warnings = read(caplog, threshold=value)
        where = "threshold="
    assert settings.threshold_ns == 1000 * MS
    (message,) = warnings
    assert where in message and "the default, 1000 ms" in message


@pytest.mark.parametrize("name", ["MAX_SAMPLES", "MAX_FRAMES", "MAX_STACK_BYTES", "N_PLUS_ONE"])
def test_whole_numbers_take_ascii_digits_only_and_have_a_ceiling(caplog, name):
    attribute = name.lower()
    default = getattr(Settings, attribute)
    for bad in ("٣٠٠", "３００", "1_000", "3.0", "0x10"):
        settings, (message,) = read(caplog, {P + name: bad})
        assert getattr(settings, attribute) == default and "the default" in message, bad
    for bad in (True, 3.0, "lots", b"300"):
        settings, (message,) = read(caplog, **{attribute: bad})
        assert getattr(settings, attribute) == default and f"{attribute}=" in message, bad
    settings, (message,) = read(caplog, {P + name: HUGE})
    ceiling = getattr(settings, attribute)
    assert ceiling > default and "maximum" in message
    assert getattr(read(caplog, **{attribute: 10**400})[0], attribute) == ceiling


@pytest.mark.parametrize("name", ["max_samples", "span_kinds", "routes", "capture_locals", "max_frames", "redact"])
def test_none_means_not_given_for_settings_without_off(caplog, name):
    settings, warnings = read(caplog, **{name: None})
    assert warnings == []
    assert _plain(settings) == _plain(Settings.from_env({}))
    # Not given: the environment applies, as with the SDK's own processors.
    assert read(caplog, {P + "MAX_SAMPLES": "3"}, max_samples=None)[0].max_samples == 3


def _plain(settings: Settings) -> dict:
    fields = dict(vars(settings))
    fields["routes"] = settings.routes.rules
    fields["redact"] = settings.redact.pattern
    return fields


def test_none_is_off_where_off_exists(caplog):
    settings, warnings = read(caplog, threshold=None, snapshot_after=None, n_plus_one=None, interval=None)
    assert warnings == []
    assert (settings.threshold_ns, settings.snapshot_after_ns, settings.n_plus_one, settings.interval_ns) == (
        None, None, None, None)


def test_redact_none_or_empty_keeps_the_built_in_pattern(caplog):
    for value in (None, "", "  "):
        settings, warnings = read(caplog, {P + "REDACT": ""}, redact=value)
        assert warnings == [], value
        assert settings.redact.search("password") and not settings.redact.search("None")


@pytest.mark.parametrize("value", [5, True, b"pin", re.compile(b"pin"), ["pin"], "(unclosed", "(" * 5000 + ")" * 5000])
def test_a_redact_that_is_not_a_str_regex_is_refused(caplog, value):
    settings, (message,) = read(caplog, redact=value)
    assert settings.redact.search("api_token") and "redact=" in message and "built-in pattern" in message


@pytest.mark.parametrize("value", ["0", "off", "OFF", "", "  ", 0, 0.0, timedelta(0), None])
def test_interrupt_after_zero_off_or_empty_is_off_without_a_word(caplog, value):
    if isinstance(value, str):
        settings, warnings = read(caplog, {P + "INTERRUPT_AFTER": value})
    else:
        settings, warnings = read(caplog, {P + "INTERRUPT_AFTER": "5s"}, interrupt_after=value)
    assert settings.interrupt_after_ns is None
    assert warnings == []


def test_interrupt_after_below_the_threshold_is_kept_with_one_warning(caplog):
    settings, (message,) = read(caplog, {P + "INTERRUPT_AFTER": "500", P + "THRESHOLD": "2s"})
    assert settings.interrupt_after_ns == 500 * MS
    assert P + "INTERRUPT_AFTER" in message and "below the threshold" in message
    assert read(caplog, {P + "INTERRUPT_AFTER": "3s", P + "THRESHOLD": "2s"})[1] == []


def test_a_route_longer_than_a_day_is_a_day(caplog):
    settings, (message,) = read(caplog, {P + "ROUTES": f"/reports/*={HUGE},/api/*=2s"})
    assert [(r.pattern, r.threshold_ns) for r in settings.routes.rules] == [
        ("/reports/*", MAX_DURATION_NS), ("/api/*", 2000 * MS)]
    assert P + "ROUTES" in message and "/reports/*" in message
    settings, _ = read(caplog, routes={"/a": timedelta.max, "/b": float("inf"), "/c": None})
    assert [r.threshold_ns for r in settings.routes.rules] == [MAX_DURATION_NS, MAX_DURATION_NS, None]


def test_the_sdk_attribute_limit_in_non_ascii_digits_is_ignored(caplog):
    assert Settings.from_env({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "٣٠٠"}).max_stack_bytes == 2048
    assert Settings.from_env({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": HUGE}).max_stack_bytes == 2048


HOSTILE = [HUGE, "9" * 5000, "٣", "-1", "nan", "inf", "off", "0", "\x00", "\udcff", "=,=,", "*", "(", "1e308",
           " " * 3 + "7" + " " * 3, "true", "server,server", "a" * 100_000]
HOSTILE_KEYWORDS = [float("inf"), float("nan"), -1, 0, 1e308, 10**400, timedelta.max, timedelta.min, True, None,
                    b"x", 5, [], {}, {"a": "b"}, object(), Decimal("NaN"), re.compile(b"x")]


def test_no_value_of_any_setting_raises_or_warns_twice(caplog):
    for name, (variable, _parser, _default) in _FIELDS.items():
        for value in HOSTILE:
            _settings, warnings = read(caplog, {variable: value})
            assert len(warnings) <= 1, (variable, value[:20], warnings)
        for value in HOSTILE_KEYWORDS:
            _settings, warnings = read(caplog, **{name: value})
            assert len(warnings) <= 1, (name, value, warnings)


# -- the outcome in a running process ----------------------------------------------


@pytest.mark.parametrize("how", ["environment", "keyword"])
def test_a_huge_threshold_never_stops_the_watchdog(make_sdk, caplog, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv(P + "THRESHOLD", "99999999999999999999")
        settings = {}
    else:
        settings = {"threshold": timedelta.max}
    sdk = make_sdk(routes={"GET /quick": 200}, snapshot_after="off", **settings)
    with caplog.at_level(logging.WARNING, logger="otel_slowstack"):
        forever = sdk.tracer.start_span("GET /forever", kind=SpanKind.SERVER)  # the watchdog sleeps towards it
        time.sleep(0.3)
        for _ in range(2):
            with sdk.tracer.start_as_current_span("GET /quick", kind=SpanKind.SERVER):
                time.sleep(0.8)
        forever.end()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []  # "the watchdog stopped" (OverflowError in its timed wait) before
    assert all(s.events for s in sdk.exporter.get_finished_spans() if s.name == "GET /quick")
    assert samples(sdk.finished("GET /forever")) == []


def test_interrupt_after_zero_interrupts_nothing(make_sdk, monkeypatch):
    monkeypatch.setenv(P + "INTERRUPT_AFTER", "0")
    sdk = make_sdk(threshold=100, max_samples=1)
    interrupted = []
    try:
        with sdk.tracer.start_as_current_span("GET /work", kind=SpanKind.SERVER):
            deadline = time.monotonic() + 0.8
            while time.monotonic() < deadline:  # pure Python: where an interrupt lands at once
                sum(range(100))
    except SlowRequestInterrupted as exc:
        interrupted.append(exc)
    assert interrupted == []
    (span,) = sdk.exporter.get_finished_spans()
    assert span.status.status_code is not StatusCode.ERROR
    assert [s["slowstack.trigger"] for s in samples(sdk.finished("GET /work"))] == ["threshold"]


SCRIPT = """
import time
from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("hostile")
with tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER):
    time.sleep(2.5)
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    "flags, env, first_sample_after_ms",
    [
        # A 400-digit threshold (a day): still instrumented, as the route rule shows.
        ([], {P + "THRESHOLD": HUGE, P + "ROUTES": "GET /slow=300"}, 300),
        # Arabic-Indic 3 as a flag: not 3 ms but the default, 1000 ms.
        (["--slowstack_threshold", "٣"], {}, 1000),
    ],
    ids=["huge-threshold-env", "arabic-digit-flag"],
)
def test_a_hostile_threshold_under_opentelemetry_instrument_keeps_the_app_watched(
    receiver, tmp_path, flags, env, first_sample_after_ms
):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), *flags, sys.executable, str(script)],
        env=otel_env(receiver.endpoint, **env), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    (span,) = receiver.wait_for(lambda s: s["name"] == "GET /slow")
    found = samples(span)
    assert found, run.stderr
    assert found[0]["slowstack.elapsed_ms"] >= first_sample_after_ms
    assert "could not instrument" not in run.stderr
    assert run.stderr.count(P + "THRESHOLD") + run.stderr.count("slowstack_threshold") <= 1
    assert run.stderr.count("otel-slowstack:") == 1, run.stderr  # the one warning


def test_an_interval_too_short_for_the_watchdog_is_raised_to_1_ms(caplog):
    # At 1 ns apart, a watchdog 50 ms late would step 50 million intervals holding the GIL.
    settings, (message,) = read(caplog, {P + "INTERVAL": "0.000001"})
    assert settings.interval_ns == 1 * MS and P + "INTERVAL" in message and "1 ms" in message
    settings, (message,) = read(caplog, interval=timedelta(microseconds=1))
    assert settings.interval_ns == 1 * MS and message.startswith("otel-slowstack: interval=")
    settings, warnings = read(caplog, {P + "THRESHOLD": "0.01"})  # a short threshold: no word, 1 ms apart
    assert settings.threshold_ns == MS // 100 and settings.interval_ns == 1 * MS and warnings == []
    assert read(caplog, {P + "INTERVAL": "1ms"})[1] == []


@pytest.mark.parametrize("raw, expected", [
    ("SIGRTMIN+5", "rtmin+5"), ("rtmin", "rtmin+0"), ("off", None), ("", "default"),
    ("SIGTERM", "default"), ("9", "default"), ("SIGRTMIN+99", "default"), ("٣٥", "default"),
])
def test_interrupt_signal_is_a_real_time_signal_or_off(raw, expected, caplog):
    import signal as signals

    s = Settings.from_env({"OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL": raw})
    wanted = {"default": int(signals.SIGRTMIN) + 3, None: None}.get(expected)
    if isinstance(expected, str) and expected.startswith("rtmin+"):
        wanted = int(signals.SIGRTMIN) + int(expected[6:])
    assert s.interrupt_signal == wanted
    if expected == "default" and raw:
        assert "OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL" in caplog.text
