"""The two lists every format shows first, as plain cells.

"Where the worker time goes": routes ranked by the time their requests held
a worker. "Requests that did not finish": killed, aborted, cut short or
interrupted requests per route, with trace ids and last stacks. Text and
HTML lay out the same cells; nothing here knows about either.
"""

from __future__ import annotations

from typing import Optional

from ..aggregate import OUTCOMES

HEADERS = ("route", "requests", "time", "share", "p50", "p95", "p99", "slow", "slow %", "CPU", "DB", "killed")


def duration(ms: Optional[float]) -> str:
    """``850 ms``, ``2.4 s``, ``3.1 min``; ``-`` when unknown."""
    if ms is None or ms != ms:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def percent(value: Optional[float]) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.0%}"


def ranking_rows(report) -> list:
    """One tuple of cells per route, in ``HEADERS`` order, most worker time first."""
    total = report.total_ms
    rows = []
    for route in report.ranking:
        count, total_ms, p50, p95, p99 = route.figures()
        rows.append((
            route.route,
            str(count),
            duration(total_ms),
            percent(total_ms / total if total > 0 else None),
            duration(p50),
            duration(p95),
            duration(p99),
            str(route.requests),
            percent(min(route.requests / count, 1.0) if count else None),
            percent(route.cpu_mean),
            percent(route.share_of(route.db_ms) if route.db_ms else (0.0 if route.durations.count else None)),
            str(route.killed_total) if route.killed_total else "",
        ))
    return rows


def ranking_caption(report) -> str:
    return (
        f"{report.calls} request{'s' if report.calls != 1 else ''}, {duration(report.total_ms)} of worker time"
        + ". slow: requests sampled by otel-slowstack; CPU: share of their sampled time on CPU; "
        "DB: share of the route's time in database calls; killed: requests that did not finish."
    )


def outcome_text(outcome: str) -> str:
    return OUTCOMES.get(outcome, outcome)


def killed_summary(route) -> str:
    """``2 killed, its span never arrived; 1 aborted by a signal``."""
    order = list(OUTCOMES)
    ranked = sorted(route.killed.items(), key=lambda item: (-item[1], order.index(item[0]) if item[0] in order else 99))
    return "; ".join(f"{count} {outcome_text(outcome)}" for outcome, count in ranked)


def coverage_line(report) -> str:
    """What the request counts and times cover, for the report's header."""
    return f"figures cover {report.coverage}" if report.coverage else ""
