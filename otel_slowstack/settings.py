"""Settings, parsed once into a frozen dataclass.

This is the only module that reads ``os.environ``. It runs once, on the
thread that builds the processor (at ``opentelemetry-instrument`` start-up,
or wherever the application builds it), and whatever it is given it never
raises into that thread: a malformed value logs one warning naming the
variable (or keyword), the value and the fallback, and the default applies.
A value outside its range is brought to the nearest one allowed, with one
warning: durations are at most a day (longer ones would overflow the
watchdog's timed wait), counts have a ceiling that keeps memory bounded.

Only ASCII digits are numbers (``int()`` would read ``"٣"`` as 3). For
keyword arguments, ``None`` means ``off`` for the settings that have an
``off`` (durations and ``n_plus_one``) and "not given" for every other one
(the environment, else the default), as the SDK's own processors read None.
"""

from __future__ import annotations

import logging
import numbers
import operator
import os
import re
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Optional

from opentelemetry.trace import SpanKind

from otel_slowstack import environment_variables as ev
from otel_slowstack.routes import RouteRule, RouteTable

_logger = logging.getLogger("otel_slowstack")

MS = 1_000_000
#: The longest duration any setting takes: one day. Longer values are
#: brought down to it (a threshold of a day already means "never" for a
#: request, and it keeps every timed wait far below ``threading.TIMEOUT_MAX``).
MAX_DURATION_NS = 86_400_000 * MS
#: The shortest time between two samples of one span: each costs the
#: watchdog a stack walk, and a late watchdog catches up interval by interval.
MIN_INTERVAL_NS = 1 * MS
_UNITS = {"ms": MS, "s": 1000 * MS, "m": 60_000 * MS, "": MS}
# [0-9], not \d: \d also matches Arabic-Indic, Devanagari ... digits.
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|)\s*\Z", re.IGNORECASE)
_WHOLE = re.compile(r"\s*\+?([0-9]+)\s*\Z")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_KINDS = {
    "server": SpanKind.SERVER,
    "consumer": SpanKind.CONSUMER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "internal": SpanKind.INTERNAL,
}

DEFAULT_REDACT = r"pass|secret|token|key|auth|cookie|session|credential"

#: (least, most) for each whole-number setting. The ceilings bound memory
#: (samples are span events kept until the span ends) and work per sample.
MAX_SAMPLES_RANGE = (1, 1000)
MAX_FRAMES_RANGE = (1, 4096)
MAX_STACK_BYTES_RANGE = (256, 1 << 20)
N_PLUS_ONE_RANGE = (2, 1_000_000)


class Adjusted(ValueError):
    """A value outside its range: ``value`` is the nearest one allowed."""

    def __init__(self, reason: str, value: Any, shown: str) -> None:
        super().__init__(reason)
        self.value = value
        self.shown = shown


_A_DAY = "86400000 ms (one day, the maximum)"


def _at_most_a_day(ns: int) -> int:
    if ns > MAX_DURATION_NS:
        raise Adjusted("is longer than one day", MAX_DURATION_NS, _A_DAY)
    return ns


def parse_duration(text: str) -> Optional[int]:
    """``"1500"``, ``"1500ms"``, ``"2s"``, ``"1m"`` → nanoseconds; ``"off"`` → None.

    Raises ``Adjusted`` (carrying one day) above one day, ``ValueError`` when malformed.
    """
    if text.strip().lower() == "off":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError("expected milliseconds, a number with ms/s/m, or off")
    number, unit = match.groups()
    if len(number.split(".")[0].lstrip("0")) > 12:  # > 30 years whatever the unit
        raise Adjusted("is longer than one day", MAX_DURATION_NS, _A_DAY)
    return _at_most_a_day(int(Fraction(number) * _UNITS[unit.lower()]))


def duration_of(raw: Any) -> Optional[int]:
    """A duration keyword: a string as in the environment, milliseconds
    (any real number), a ``timedelta``, or None for off → nanoseconds."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return parse_duration(raw)
    if isinstance(raw, timedelta):
        if raw < timedelta(0):
            raise ValueError("a duration cannot be negative")
        return _at_most_a_day(raw // timedelta(microseconds=1) * 1000)
    if isinstance(raw, bool) or not isinstance(raw, (numbers.Real, Decimal)):
        raise ValueError("expected milliseconds, a duration string, a timedelta, or None")
    try:
        ms = Fraction(raw)  # exact for int, float, Decimal; no overflow on the way
    except OverflowError:  # an infinity
        if raw < 0:
            raise ValueError("a duration cannot be negative") from None
        raise Adjusted("is longer than one day", MAX_DURATION_NS, _A_DAY) from None
    except (ValueError, TypeError):
        raise ValueError("not a number") from None
    if ms < 0:
        raise ValueError("a duration cannot be negative")
    if ms > MAX_DURATION_NS // MS:
        raise Adjusted("is longer than one day", MAX_DURATION_NS, _A_DAY)
    return int(ms * MS)


def whole_number(raw: Any, least: int, most: int) -> int:
    """A whole number in ``[least, most]``: above ``most`` is ``Adjusted`` to it."""
    if isinstance(raw, bool):
        raise ValueError("expected a whole number, not a bool")
    if isinstance(raw, str):
        match = _WHOLE.match(raw)
        if not match:
            raise ValueError(f"expected a whole number of at least {least}")
        digits = match.group(1).lstrip("0") or "0"
        value = most + 1 if len(digits) > 18 else int(digits)
    else:
        try:
            value = operator.index(raw)  # int, numpy integers; not 3.0
        except TypeError:
            raise ValueError(f"expected a whole number of at least {least}") from None
    if value < least:
        raise ValueError(f"expected a whole number of at least {least}")
    if value > most:
        raise Adjusted(f"is above the maximum, {most}", most, f"{most} (the maximum)")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_count_or_off(text: str) -> Optional[int]:
    """For N+1: ``off`` → None, else a whole number of at least 2."""
    if text.strip().lower() == "off":
        return None
    return whole_number(text, *N_PLUS_ONE_RANGE)


def parse_stack_bytes(text: str) -> int:
    return whole_number(text, *MAX_STACK_BYTES_RANGE)


def parse_kinds(text: str) -> frozenset[SpanKind]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in _KINDS]
    if unknown or not names:
        raise ValueError(
            "expected a comma-separated list of " + ", ".join(_KINDS)
        )
    return frozenset(_KINDS[n] for n in names)


def parse_regex(text: str) -> "re.Pattern[str]":
    try:
        return re.compile(text, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def parse_routes(text: str) -> tuple[RouteRule, ...]:
    """``PATTERN=DURATION,...``; raises on the first malformed entry."""
    entries = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        pattern, sep, duration = entry.rpartition("=")
        if not sep or not pattern.strip():
            raise ValueError(f"entry {_shown(entry.strip())} is not PATTERN=DURATION")
        entries.append((pattern.strip(), duration))
    return _route_rules(entries)


def _route_rules(entries: Iterable[tuple[Any, Any]]) -> tuple[RouteRule, ...]:
    rules, longest = [], []
    for pattern, duration in entries:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError(f"route pattern {_shown(pattern)} is not a non-empty string")
        try:
            threshold = duration_of(duration)
        except Adjusted as adjusted:
            threshold = adjusted.value
            longest.append(pattern)
        except ValueError:
            raise ValueError(f"entry {_shown(pattern)}={_shown(duration)} has no valid duration") from None
        rules.append(RouteRule.of(pattern.strip(), threshold))
    if longest:
        raise Adjusted(
            "has thresholds longer than one day", tuple(rules),
            f"one day for {', '.join(longest)} (the maximum)",
        )
    return tuple(rules)


def _coerce(name: str, raw: Any) -> Any:
    """A keyword's (or a variable's) value, as the setting ``name`` holds it."""
    if name in _DURATIONS:
        return duration_of(raw)
    if raw is None:  # only the settings that have an off get here with None
        return None
    if isinstance(raw, str):
        return _FIELDS[name][1](raw)
    if name in _WHOLE_NUMBERS:
        return whole_number(raw, *_WHOLE_NUMBERS[name])
    if name == "capture_locals":
        if isinstance(raw, bool):
            return raw
        if type(raw) is int:
            return parse_bool(str(raw))
        raise ValueError("expected true or false")
    if name == "redact":
        if isinstance(raw, re.Pattern) and isinstance(raw.pattern, str):
            return raw
        raise ValueError("expected a regular expression (a str, or re.compile of a str)")
    if name == "span_kinds":
        return parse_kinds(",".join(k.name if isinstance(k, SpanKind) else _text(k) for k in raw))
    if name == "interrupt_signal":
        if type(raw) is int or isinstance(raw, signal.Signals):
            return parse_signal(str(int(raw)))
        raise ValueError("expected a real-time signal: SIGRTMIN+N, its number, or off")
    if name == "routes":
        if isinstance(raw, Mapping):
            return _route_rules(raw.items())
        raise ValueError("expected PATTERN=DURATION,... or a mapping of pattern to duration")
    raise ValueError(f"unexpected {type(raw).__name__}")


def default_interrupt_signal() -> Optional[int]:
    """``SIGRTMIN+3``: no server, Celery or the standard library uses it; None
    where the platform has no real-time signals."""
    if hasattr(signal, "SIGRTMIN") and hasattr(signal, "pthread_kill"):
        return int(signal.SIGRTMIN) + 3
    return None


_SIGNAL = re.compile(r"\s*(?:SIG)?RTMIN\s*(?:\+\s*([0-9]{1,2}))?\s*\Z", re.IGNORECASE)


def parse_signal(text: str) -> Optional[int]:
    """``SIGRTMIN+N``, ``RTMIN+N`` or a number between SIGRTMIN and SIGRTMAX; ``off``.

    Only real-time signals: every other one means something to a server
    (gunicorn uses QUIT, TERM, INT, USR1, USR2, WINCH, ABRT, CHLD and HUP).
    """
    if text.strip().lower() == "off":
        return None
    if not hasattr(signal, "SIGRTMIN") or not hasattr(signal, "pthread_kill"):
        raise ValueError("this platform has no real-time signals")
    low, high = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    match = _SIGNAL.match(text)
    if match:
        number = low + int(match.group(1) or 0)
    elif _WHOLE.match(text) and len(text.strip()) <= 3:
        number = int(text.strip())
    else:
        raise ValueError("expected SIGRTMIN+N, a signal number, or off")
    if not low <= number <= high:
        raise ValueError(f"expected a real-time signal, {low} to {high}")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not a span kind")
    return value


_UNSET = object()


@dataclass(frozen=True)
class Settings:
    """Everything the processor needs, in nanoseconds where it is a duration."""

    threshold_ns: Optional[int] = 1000 * MS
    interval_ns: Optional[int] = 1000 * MS
    max_samples: int = 10
    span_kinds: frozenset = frozenset({SpanKind.SERVER, SpanKind.CONSUMER})
    routes: RouteTable = field(default_factory=lambda: RouteTable(()))
    max_frames: int = 64
    max_stack_bytes: int = 2048
    capture_locals: bool = False
    redact: "re.Pattern[str]" = field(
        default_factory=lambda: re.compile(DEFAULT_REDACT, re.IGNORECASE)
    )
    n_plus_one: Optional[int] = 10
    snapshot_after_ns: Optional[int] = 10_000 * MS
    interrupt_after_ns: Optional[int] = None
    interrupt_signal: Optional[int] = field(default_factory=lambda: default_interrupt_signal())

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> "Settings":
        """Read ``OTEL_PYTHON_SLOWSTACK_*``; keyword arguments win over the environment.

        Keyword names are the variable names without the prefix, lower case
        (``threshold=``, ``span_kinds=`` ...). A duration keyword takes a
        string as the variable does, a number of milliseconds, a
        ``timedelta``, or None for ``off``. An empty string, and None for a
        setting that has no ``off``, are as if the keyword were not given.
        A misspelt keyword raises ``TypeError``, as any Python call does.
        """
        environ = os.environ if environ is None else environ
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        given: dict[str, str] = {}  # name -> how the warning names it: "VARIABLE='x'" or "keyword=x"
        for name, (variable, _parser, shown) in _FIELDS.items():
            raw, where = overrides.get(name, _UNSET), name
            if (raw is None and name not in _NONE_IS_OFF) or (isinstance(raw, str) and not raw.strip()):
                raw = _UNSET
            if raw is _UNSET:
                raw, where = environ.get(variable, ""), variable
                if not isinstance(raw, str) or not raw.strip():
                    continue
            given[name] = f"{where}={_shown(raw)}"
            try:
                values[name] = _coerce(name, raw)
            except Adjusted as adjusted:
                values[name] = adjusted.value
                _warn("%s=%s %s; using %s", where, _shown(raw), adjusted, adjusted.shown)
            except Exception as exc:  # whatever it was, the default applies
                _warn("%s=%s is not valid (%s); using the default, %s", where, _shown(raw), exc, shown)
        threshold = values.get("threshold", cls.threshold_ns)
        interval = values.get("interval", threshold)
        if interval == 0:
            if "interval" in values:
                _warn("%s would sample without pause; using the threshold", given["interval"])
            interval = threshold or None
        if interval is not None and interval < MIN_INTERVAL_NS:
            if "interval" in values:  # a short threshold's interval is raised without a word
                _warn("%s is below the minimum; using %d ms", given["interval"], MIN_INTERVAL_NS // MS)
            interval = MIN_INTERVAL_NS
        interrupt = values.get("interrupt_after", cls.interrupt_after_ns) or None  # 0 is off
        if interrupt is not None and threshold and interrupt < threshold:
            _warn(
                "%s is below the threshold (%d ms): requests are interrupted before "
                "their first sample shows where they were slow; kept as given",
                given["interrupt_after"], threshold // MS,
            )
        return cls(
            threshold_ns=threshold,
            interval_ns=interval,
            max_samples=values.get("max_samples", cls.max_samples),
            span_kinds=values.get("span_kinds", cls.span_kinds),
            routes=RouteTable(values.get("routes", ())),
            max_frames=values.get("max_frames", cls.max_frames),
            max_stack_bytes=_stack_budget(
                values.get("max_stack_bytes", cls.max_stack_bytes), environ
            ),
            capture_locals=values.get("capture_locals", cls.capture_locals),
            redact=values.get("redact") or re.compile(DEFAULT_REDACT, re.IGNORECASE),
            n_plus_one=values.get("n_plus_one", cls.n_plus_one),
            snapshot_after_ns=values.get("snapshot_after", cls.snapshot_after_ns) or None,
            interrupt_after_ns=interrupt,
            interrupt_signal=values.get("interrupt_signal", default_interrupt_signal()),
        )


def _warn(message: str, *args: Any) -> None:
    _logger.warning("otel-slowstack: " + message, *args)


def _shown(raw: Any) -> str:
    """The value as the warning shows it: its repr, cut short (a value can be huge)."""
    try:
        text = repr(raw)
    except Exception:
        text = f"<{type(raw).__name__}>"
    return text if len(text) <= 80 else text[:60] + f"...({len(text)} characters)"


def _stack_budget(requested: int, environ: Mapping[str, str]) -> int:
    """Never above the SDK's attribute length limit, which applies to events too."""
    limit = environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "")
    match = _WHOLE.match(limit) if isinstance(limit, str) else None
    if match and 0 < len(match.group(1)) <= 18 and int(match.group(1)) > 0:
        return min(requested, int(match.group(1)))
    return requested


_FIELDS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "threshold": (ev.OTEL_PYTHON_SLOWSTACK_THRESHOLD, parse_duration, "1000 ms"),
    "interval": (ev.OTEL_PYTHON_SLOWSTACK_INTERVAL, parse_duration, "(the threshold)"),
    "max_samples": (ev.OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES, lambda t: whole_number(t, *MAX_SAMPLES_RANGE), "10"),
    "span_kinds": (ev.OTEL_PYTHON_SLOWSTACK_SPAN_KINDS, parse_kinds, "server,consumer"),
    "routes": (ev.OTEL_PYTHON_SLOWSTACK_ROUTES, parse_routes, "(no per-route thresholds)"),
    "max_frames": (ev.OTEL_PYTHON_SLOWSTACK_MAX_FRAMES, lambda t: whole_number(t, *MAX_FRAMES_RANGE), "64"),
    "max_stack_bytes": (ev.OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES, parse_stack_bytes, "2048"),
    "capture_locals": (ev.OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS, parse_bool, "false"),
    "redact": (ev.OTEL_PYTHON_SLOWSTACK_REDACT, parse_regex, "the built-in pattern"),
    "n_plus_one": (ev.OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE, parse_count_or_off, "10"),
    "snapshot_after": (ev.OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER, parse_duration, "10000 ms"),
    "interrupt_after": (ev.OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER, parse_duration, "off"),
    "interrupt_signal": (ev.OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL, parse_signal, "SIGRTMIN+3"),
}
_DURATIONS = frozenset({"threshold", "interval", "snapshot_after", "interrupt_after"})
_NONE_IS_OFF = _DURATIONS | {"n_plus_one", "interrupt_signal"}
_WHOLE_NUMBERS = {
    "max_samples": MAX_SAMPLES_RANGE,
    "max_frames": MAX_FRAMES_RANGE,
    "max_stack_bytes": MAX_STACK_BYTES_RANGE,
    "n_plus_one": N_PLUS_ONE_RANGE,
}
