"""Settings, parsed once into a frozen dataclass.

This is the only module that reads ``os.environ``. A malformed value never
stops the application: it logs one warning naming the variable, the value
and the fallback, and the default applies.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Mapping, Optional

from opentelemetry.trace import SpanKind

from . import environment_variables as ev
from .routes import RouteRule, RouteTable

_logger = logging.getLogger("otel_slowstack")

MS = 1_000_000
_UNITS = {"ms": MS, "s": 1000 * MS, "m": 60_000 * MS, "": MS}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|)\s*\Z", re.IGNORECASE)
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


def parse_duration(text: str) -> Optional[int]:
    """``"1500"``, ``"1500ms"``, ``"2s"``, ``"1m"`` → nanoseconds; ``"off"`` → None."""
    if text.strip().lower() == "off":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError("expected milliseconds, a number with ms/s/m, or off")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def parse_count_or_off(text: str) -> Optional[int]:
    """For N+1: ``off`` → None, else a whole number of at least 2."""
    if text.strip().lower() == "off":
        return None
    value = int(text.strip())
    if value < 2:
        raise ValueError("expected a whole number of at least 2, or off")
    return value


def parse_stack_bytes(text: str) -> int:
    value = int(text.strip())
    if value < 256:
        raise ValueError("expected a whole number of at least 256")
    return value


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
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def parse_routes(text: str) -> tuple[RouteRule, ...]:
    """``PATTERN=DURATION,...``; raises on the first malformed entry."""
    rules = []
    for entry in text.split(","):
        if not entry.strip():
            continue
        pattern, sep, duration = entry.rpartition("=")
        if not sep or not pattern.strip():
            raise ValueError(f"entry {entry.strip()!r} is not PATTERN=DURATION")
        try:
            threshold = parse_duration(duration)
        except ValueError:
            raise ValueError(
                f"entry {entry.strip()!r} has no valid duration"
            ) from None
        rules.append(RouteRule.of(pattern.strip(), threshold))
    return tuple(rules)


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

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> "Settings":
        """Read ``OTEL_PYTHON_SLOWSTACK_*``; keyword arguments win over the environment.

        Keyword names are the variable names without the prefix, lower case
        (``threshold=``, ``span_kinds=`` ...). A duration keyword takes a
        string as the variable does, a number of milliseconds, a
        ``timedelta``, or None for ``off``.
        """
        environ = os.environ if environ is None else environ
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, (variable, parser, shown) in _FIELDS.items():
            if name in overrides:
                raw, where = overrides[name], name
            elif environ.get(variable, "").strip():
                raw, where = environ[variable], variable
            else:
                continue
            try:
                values[name] = _coerce(raw, parser)
            except (ValueError, TypeError) as exc:
                _logger.warning(
                    "otel-slowstack: %s=%r is not valid (%s); using the default, %s",
                    where,
                    raw,
                    exc,
                    shown,
                )
        threshold = values.get("threshold", cls.threshold_ns)
        interval = values.get("interval", threshold)
        if interval == 0:
            _logger.warning(
                "otel-slowstack: %s=0 would sample without pause; using the threshold",
                ev.OTEL_PYTHON_SLOWSTACK_INTERVAL,
            )
            interval = threshold or None
        routes = values.get("routes", ())
        return cls(
            threshold_ns=threshold,
            interval_ns=interval,
            max_samples=values.get("max_samples", cls.max_samples),
            span_kinds=values.get("span_kinds", cls.span_kinds),
            routes=RouteTable(routes),
            max_frames=values.get("max_frames", cls.max_frames),
            max_stack_bytes=_stack_budget(
                values.get("max_stack_bytes", cls.max_stack_bytes), environ
            ),
            capture_locals=values.get("capture_locals", cls.capture_locals),
            redact=values.get("redact") or re.compile(DEFAULT_REDACT, re.IGNORECASE),
            n_plus_one=values.get("n_plus_one", cls.n_plus_one),
            snapshot_after_ns=values.get("snapshot_after", cls.snapshot_after_ns),
            interrupt_after_ns=values.get("interrupt_after", cls.interrupt_after_ns),
        )


def _coerce(raw: Any, parser: Callable[[str], Any]) -> Any:
    if isinstance(raw, str):
        return parser(raw)
    if parser is parse_duration:
        if raw is None:
            return None
        if isinstance(raw, timedelta):
            raw = raw.total_seconds() * 1000
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw >= 0:
            return int(raw * MS)
        raise ValueError("expected milliseconds, a duration string, or None")
    if parser is parse_bool and isinstance(raw, bool):
        return raw
    if parser is parse_regex and isinstance(raw, re.Pattern):
        return raw
    if parser is parse_kinds and not isinstance(raw, str):
        return parse_kinds(",".join(k.name if isinstance(k, SpanKind) else str(k) for k in raw))
    if parser is parse_routes and isinstance(raw, Mapping):
        return parse_routes(",".join(f"{k}={_ms(v)}" for k, v in raw.items()))
    if parser is parse_count_or_off and raw is None:
        return None
    return parser(str(raw))


def _ms(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, timedelta):
        return f"{value.total_seconds() * 1000}ms"
    return str(value)


def _stack_budget(requested: int, environ: Mapping[str, str]) -> int:
    """Never above the SDK's attribute length limit, which applies to events too."""
    limit = environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "").strip()
    if limit.isdigit() and int(limit) > 0:
        return min(requested, int(limit))
    return requested


_FIELDS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "threshold": (ev.OTEL_PYTHON_SLOWSTACK_THRESHOLD, parse_duration, "1000 ms"),
    "interval": (ev.OTEL_PYTHON_SLOWSTACK_INTERVAL, parse_duration, "(the threshold)"),
    "max_samples": (ev.OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES, parse_positive_int, "10"),
    "span_kinds": (ev.OTEL_PYTHON_SLOWSTACK_SPAN_KINDS, parse_kinds, "server,consumer"),
    "routes": (ev.OTEL_PYTHON_SLOWSTACK_ROUTES, parse_routes, "(no per-route thresholds)"),
    "max_frames": (ev.OTEL_PYTHON_SLOWSTACK_MAX_FRAMES, parse_positive_int, "64"),
    "max_stack_bytes": (ev.OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES, parse_stack_bytes, "2048"),
    "capture_locals": (ev.OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS, parse_bool, "false"),
    "redact": (ev.OTEL_PYTHON_SLOWSTACK_REDACT, parse_regex, "the built-in pattern"),
    "n_plus_one": (ev.OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE, parse_count_or_off, "10"),
    "snapshot_after": (ev.OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER, parse_duration, "10000 ms"),
    "interrupt_after": (ev.OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER, parse_duration, "off"),
}
