"""Settings: every variable, good and bad values, one warning per bad value."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from opentelemetry.trace import SpanKind

from otel_slowstack import environment_variables as ev
from otel_slowstack.settings import MS, Settings, parse_duration

pytestmark = pytest.mark.unit

P = "OTEL_PYTHON_SLOWSTACK_"


def settings(caplog, **env: str) -> Settings:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_slowstack"):
        return Settings.from_env({P + k: v for k, v in env.items()})


def warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_defaults_match_the_contract(caplog):
    s = settings(caplog)
    assert s.threshold_ns == 1000 * MS
    assert s.interval_ns == 1000 * MS
    assert s.max_samples == 10
    assert s.span_kinds == {SpanKind.SERVER, SpanKind.CONSUMER}
    assert not s.routes
    assert s.max_frames == 64
    assert s.max_stack_bytes == 2048
    assert s.capture_locals is False
    for name in ("password", "SECRET", "api_token", "apikey", "Authorization", "cookie", "sessionid", "credentials"):
        assert s.redact.search(name), name
    assert not s.redact.search("order_id")
    assert s.n_plus_one == 10
    assert s.snapshot_after_ns == 10_000 * MS
    assert s.interrupt_after_ns is None
    assert warnings(caplog) == []


@pytest.mark.parametrize(
    "text, expected",
    [("1500", 1500 * MS), ("1500ms", 1500 * MS), ("2s", 2000 * MS), ("1m", 60_000 * MS),
     ("0.5s", 500 * MS), (" 250 ", 250 * MS), ("2S", 2000 * MS), ("off", None), ("OFF", None), ("0", 0)],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["soon", "-5", "5h", "1e3", "ms", "2 s s", "1,5s"])
def test_malformed_duration_warns_once_and_falls_back(caplog, bad):
    s = settings(caplog, THRESHOLD=bad)
    assert s.threshold_ns == 1000 * MS
    (message,) = warnings(caplog)
    assert ev.OTEL_PYTHON_SLOWSTACK_THRESHOLD in message
    assert repr(bad) in message
    assert "1000 ms" in message


def test_interval_defaults_to_threshold_and_can_be_off(caplog):
    assert settings(caplog, THRESHOLD="3s").interval_ns == 3000 * MS
    assert settings(caplog, THRESHOLD="3s", INTERVAL="500").interval_ns == 500 * MS
    assert settings(caplog, INTERVAL="off").interval_ns is None


def test_zero_interval_is_refused(caplog):
    s = settings(caplog, THRESHOLD="2s", INTERVAL="0")
    assert s.interval_ns == 2000 * MS
    assert ev.OTEL_PYTHON_SLOWSTACK_INTERVAL in warnings(caplog)[0]


def test_threshold_off(caplog):
    assert settings(caplog, THRESHOLD="off").threshold_ns is None


@pytest.mark.parametrize(
    "name, good, attribute, value, bad, default",
    [
        ("MAX_SAMPLES", "3", "max_samples", 3, "0", 10),
        ("MAX_SAMPLES", "3", "max_samples", 3, "many", 10),
        ("MAX_FRAMES", "20", "max_frames", 20, "-1", 64),
        ("MAX_STACK_BYTES", "4096", "max_stack_bytes", 4096, "100", 2048),
        ("MAX_STACK_BYTES", "4096", "max_stack_bytes", 4096, "2k", 2048),
        ("CAPTURE_LOCALS", "true", "capture_locals", True, "maybe", False),
        ("CAPTURE_LOCALS", "1", "capture_locals", True, "2", False),
        ("N_PLUS_ONE", "5", "n_plus_one", 5, "1", 10),
        ("N_PLUS_ONE", "off", "n_plus_one", None, "lots", 10),
        ("SNAPSHOT_AFTER", "30s", "snapshot_after_ns", 30_000 * MS, "later", 10_000 * MS),
        ("SNAPSHOT_AFTER", "off", "snapshot_after_ns", None, "-1", 10_000 * MS),
        ("INTERRUPT_AFTER", "25s", "interrupt_after_ns", 25_000 * MS, "never", None),
    ],
)
def test_each_variable_good_and_bad(caplog, name, good, attribute, value, bad, default):
    assert getattr(settings(caplog, **{name: good}), attribute) == value
    assert warnings(caplog) == []
    assert getattr(settings(caplog, **{name: bad}), attribute) == default
    (message,) = warnings(caplog)
    assert P + name in message and repr(bad) in message and "default" in message


def test_span_kinds(caplog):
    assert settings(caplog, SPAN_KINDS="server").span_kinds == {SpanKind.SERVER}
    assert settings(caplog, SPAN_KINDS=" Server , internal ").span_kinds == {SpanKind.SERVER, SpanKind.INTERNAL}
    s = settings(caplog, SPAN_KINDS="server,webhook")
    assert s.span_kinds == {SpanKind.SERVER, SpanKind.CONSUMER}
    assert P + "SPAN_KINDS" in warnings(caplog)[0]


def test_redact(caplog):
    assert settings(caplog, REDACT="^ssn$").redact.search("SSN")
    s = settings(caplog, REDACT="(unclosed")
    assert s.redact.search("password")
    assert P + "REDACT" in warnings(caplog)[0]


def test_routes(caplog):
    s = settings(caplog, ROUTES="/reports/*=30s, /healthz=off,/api/*/export=5000")
    assert [(r.pattern, r.threshold_ns) for r in s.routes.rules] == [
        ("/reports/*", 30_000 * MS), ("/healthz", None), ("/api/*/export", 5000 * MS)]
    assert warnings(caplog) == []
    bad = settings(caplog, ROUTES="/reports/*=30s,/oops")
    assert not bad.routes
    (message,) = warnings(caplog)
    assert P + "ROUTES" in message and "/oops" in message


def test_empty_values_mean_unset(caplog):
    s = settings(caplog, THRESHOLD="", ROUTES=" ", CAPTURE_LOCALS="")
    assert s.threshold_ns == 1000 * MS and not s.routes and s.capture_locals is False
    assert warnings(caplog) == []


def test_stack_bytes_never_above_the_sdk_attribute_limit(caplog):
    s = Settings.from_env({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "1000"})
    assert s.max_stack_bytes == 1000
    s = Settings.from_env({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "9000", P + "MAX_STACK_BYTES": "4096"})
    assert s.max_stack_bytes == 4096


def test_keyword_overrides_win(caplog):
    env = {P + "THRESHOLD": "5s", P + "MAX_SAMPLES": "2"}
    s = Settings.from_env(env, threshold=250, max_samples=4, interrupt_after=timedelta(seconds=3),
                          span_kinds=[SpanKind.SERVER], routes={"/a/*": "2s", "/b": None},
                          redact=re.compile("pin"), capture_locals=True, snapshot_after=None)
    assert s.threshold_ns == 250 * MS and s.interval_ns == 250 * MS
    assert s.max_samples == 4
    assert s.interrupt_after_ns == 3000 * MS
    assert s.span_kinds == {SpanKind.SERVER}
    assert [(r.pattern, r.threshold_ns) for r in s.routes.rules] == [("/a/*", 2000 * MS), ("/b", None)]
    assert s.redact.pattern == "pin" and s.capture_locals and s.snapshot_after_ns is None


def test_bad_keyword_value_warns_and_unknown_keyword_raises(caplog):
    with caplog.at_level(logging.WARNING, logger="otel_slowstack"):
        s = Settings.from_env({}, threshold=-3)
    assert s.threshold_ns == 1000 * MS
    assert "threshold=-3" in warnings(caplog)[0]
    with pytest.raises(TypeError):
        Settings.from_env({}, thresold=3)


#: Variables the project added where the contract is silent (each in the README's table).
BEYOND_THE_CONTRACT = {"OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL"}


def test_every_contract_variable_is_an_instrument_flag():
    contract = re.findall(r"`(OTEL_PYTHON_SLOWSTACK_[A-Z_]+)`", _contract())
    names = {n for n in dir(ev) if n.startswith("OTEL_")}
    assert set(contract) | BEYOND_THE_CONTRACT == names
    assert all(getattr(ev, n) == n for n in names)


def _contract() -> str:
    from pathlib import Path

    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "CONTRACT.md"
        if candidate.exists():
            return candidate.read_text()
    # Outside this workplace the README's table is the contract's copy.
    return (Path(__file__).resolve().parent.parent / "README.md").read_text()
