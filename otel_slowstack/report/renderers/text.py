"""The terminal report: first where the worker time goes (routes ranked by
time consumed) and the requests that did not finish, then per route the
verdict, the hottest frames, the hottest stacks and the N+1 statements.
Tables come from ``rich``; without a terminal (a pipe, a file) the same text
comes out without colours. Everything taken from spans goes through
``printable``: a route can carry an attacker's escape sequences."""

from __future__ import annotations

import io

from ..printable import one_line, printable
from ..stacks import Frame
from .ranking import HEADERS, coverage_line, duration, killed_summary, outcome_text, ranking_caption, ranking_rows


def stack_summary(stack: tuple) -> str:
    """``… › prices › count_price_collisions (examples/shop.py:61)``: the
    application's frames by name, runs of library frames as one ``…``, and
    the innermost frame in full."""
    parts: list = []
    for i, frame in enumerate(stack):
        innermost = i == len(stack) - 1
        if innermost:
            parts.append(printable(frame.label()))
        elif frame.is_app and not frame.is_elided:
            parts.append(printable(frame.function))
        elif not parts or parts[-1] != "…":
            parts.append("…")
    return " › ".join(parts) if parts else "[no stack recorded]"


def _frame_cells(frame: Frame) -> tuple:
    return ("app" if frame.is_app else "lib", printable(frame.location() or ""), printable(frame.function))


def render_text(report, color: bool = False, width: int = 120, top: int = 10) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = io.StringIO()
    console = Console(
        file=out, width=width, force_terminal=color, color_system="standard" if color else None,
        highlight=False, emoji=False, soft_wrap=False,
    )

    def line(text: str = "", style: str = "") -> None:
        console.print(Text(text, style=style), soft_wrap=True)

    line(f"otel-slowstack report: {printable(report.source)}", "bold")
    line(
        f"{report.requests} slow request{_s(report.requests)}, {report.samples} sample{_s(report.samples)}, "
        f"{len(report.routes)} route{_s(len(report.routes))} ({report.spans_read} spans read)"
        + (f", {report.killed} request{_s(report.killed)} that did not finish" if report.killed else "")
    )
    if report.coverage:
        line(printable(coverage_line(report)))
    if report.ranking:
        line()
        line("Where the worker time goes", "bold")
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
        for row in ranking_rows(report)[: max(top, 1) * 3]:
            table.add_row(*(Text(printable(cell)) for cell in row))
        console.print(table)
        line(ranking_caption(report), "dim")
        if len(report.ranking) > max(top, 1) * 3:
            line(f"({len(report.ranking) - max(top, 1) * 3} routes with less time left out of this table)", "dim")
    killed_routes = report.killed_routes()
    if killed_routes:
        line()
        line("Requests that did not finish (killed, aborted, cut short or interrupted)", "bold red")
        for route in killed_routes:
            line(f"  {printable(route.route)}: {killed_summary(route)}")
            for killed in route.killed_listed:
                at = f" at {duration(killed.elapsed_ms)}" if killed.elapsed_ms is not None else ""
                line(f"    trace {printable(killed.trace_id) or '?'}: {outcome_text(killed.outcome)}{at}; "
                     f"last stack: {stack_summary(killed.frames)}", "dim")
    for route in report.routes:
        line()
        line(f"━━ {printable(route.route)}", "bold cyan")
        line(f"{route.requests} slow request{_s(route.requests)}, {route.samples} sample{_s(route.samples)}"
             + (f", {route.killed_total} did not finish" if route.killed_total else "")
             + (f" (services: {printable(', '.join(sorted(route.services)))})" if len(route.services) > 1 else ""))
        line(f"verdict: {printable(route.verdict())}", "bold")
        if route.samples:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
            table.add_column("innermost", justify="right")
            table.add_column("on stack", justify="right")
            table.add_column("", no_wrap=True)
            table.add_column("file:line", overflow="fold")
            table.add_column("function", overflow="fold")
            for rank in route.hottest(top):
                kind, where, function = _frame_cells(rank.frame)
                style = "bold yellow" if rank.frame.is_app else ""
                table.add_row(
                    Text(f"{rank.innermost_share:.0%}"), Text(f"{rank.on_stack_share:.0%}"),
                    Text(kind, style=style), Text(where, style=style), Text(function, style=style),
                )
            console.print(table)
            line("hottest stacks:", "bold")
            for stack, count in route.top_stacks(3):
                line(f"  {count / route.samples:>4.0%} ({count})  {stack_summary(stack)}")
        if route.n_plus_one:
            line("N+1 statements:", "bold")
            for finding in route.n_plus_ones():
                where = finding.where()
                at = f"  at {where.label()}" if where is not None else ""
                line(f"  {finding.max_count}x in {finding.requests} request{_s(finding.requests)}: "
                     f"{one_line(finding.statement)}{printable(at)}")
        slowest = route.slowest_requests()
        if slowest:
            elapsed, trace_id, _span_id = slowest[0]
            line(f"longest sampled: {elapsed:.0f} ms into trace {printable(trace_id)}", "dim")
    for note in report.notes:
        line()
        line(f"note: {printable(note)}", "dim")
    return out.getvalue()


def _s(count: int) -> str:
    return "" if count == 1 else "s"
