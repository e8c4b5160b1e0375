"""Run every benchmark on this machine and write RESULTS.md from that run alone.

    python benchmarks/run.py                 # the full run (6 to 8 minutes)
    python benchmarks/run.py --quick         # a smoke run (under 2 minutes)
    python benchmarks/run.py --only hot_path,sample_cost   # some of them
    python benchmarks/run.py --report        # rewrite RESULTS.md from results.json

Each benchmark runs in its own process and prints one JSON line; this
script gathers them into results.json, states the machine and versions,
and writes RESULTS.md, whose every figure and every verdict (met / missed
against issue 12's targets) is computed here from that run's data. It also
writes readme_costs.md, the README's cost bullets with this run's figures,
for the README to copy. A benchmark that fails is reported as failed in
RESULTS.md; the others still are.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

from instructions import LABELS as INSTRUCTION_CASES

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "hot_path", "django_compare", "peers", "sample_cost", "watchdog_cost", "many_threads", "promptness", "memory",
    "instructions",
]
PACKAGES = [
    "otel-slowstack", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-flask", "opentelemetry-instrumentation-django", "flask", "django",
    "dogslow", "sentry-sdk", "pyinstrument",
]


def run(name: str, quick: bool) -> tuple:
    """(result or None, seconds, error text or None)."""
    argv = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        out = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started, "timed out after 1800 s"
    seconds = time.monotonic() - started
    print(f"{name}: {seconds:.0f} s", file=sys.stderr)
    if out.returncode != 0:
        return None, seconds, "\n".join(out.stderr.strip().splitlines()[-6:])
    return json.loads(out.stdout.strip().splitlines()[-1])[name], seconds, None


# -- formatting ---------------------------------------------------------------


def us(x: float) -> str:
    return f"{x:.2f} µs" if abs(x) < 10 else f"{x:.1f} µs" if abs(x) < 100 else f"{x:.0f} µs"


def plus(x: float) -> str:
    return ("+" if x >= 0 else "−") + us(abs(x))


def iqr(r: dict) -> str:
    return f"{plus(r['added_q1_us'])} … {plus(r['added_q3_us'])}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


class Checks:
    """Every target of issue 12 checked in this run, for the summary."""

    def __init__(self) -> None:
        self.rows: list = []

    def check(self, what: str, target: str, ok: bool, noisy: bool = False) -> str:
        """Judged on the median; ``noisy`` when the quartiles fall on both sides of the target."""
        self.rows.append((what, target, ok, noisy))
        return verdict(ok) + (" (IQR crosses the target)" if noisy else "")


# -- sections -------------------------------------------------------------------


def machine(durations: dict, quick: bool) -> list:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    total = sum(durations.values())
    return [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"load average at the end of the run {load}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Packages: {', '.join(versions)}",
        f"- This run: {'--quick (a smoke run: few rounds, wide spread)' if quick else 'full'}, "
        f"{total:.0f} s in all ({', '.join(f'{k} {v:.0f} s' for k, v in durations.items())})",
    ]


def hot_path(h: dict, django: Optional[dict], c: Checks) -> list:
    lines = [
        "Base: the SDK with one `BatchSpanProcessor` and a no-op exporter. Added: what `SlowStackProcessor` "
        "(threshold 600 s: nothing is sampled) adds over that same base, in µs per operation of process CPU "
        "time; median of per-round differences, variants alternating, with the quartiles of those differences.",
        "",
        "| case | base | added | IQR of added | added % | target | |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, r: dict, target: str = "", limit: Optional[float] = None, pct: bool = False) -> None:
        v = ""
        if limit is not None:
            limit_us = limit / 100 * r["base_us"] if pct else limit
            v = c.check(label, target, r["added_us"] <= limit_us, r["added_q1_us"] <= limit_us < r["added_q3_us"])
        lines.append(f"| {label} | {us(r['base_us'])} | {plus(r['added_us'])} | {iqr(r)} | "
                     f"{r['added_pct']:+.1f} % | {target} | {v} |")

    if "a_a" in h:
        row("A/A: the SDK against an identical SDK (nothing added)", h["a_a"])
    for n, r in h["span_pair"].items():
        row(f"SERVER span pair, {int(n):,} in flight", r, "≤ +1.5 µs", 1.5)
    for n, r in h["current_span"].items():
        row(f"`start_as_current_span`, {int(n):,} in flight", r, "≤ +2 µs", 2.0)
    row("per database CLIENT child", h["child_db"], "≤ +1 µs", 1.0)
    row("per HTTP CLIENT child", h["child_http"], "≤ +1 µs", 1.0)
    row("per INTERNAL child under a watched span", h["child_internal"], "≤ +0.5 µs", 0.5)
    kids = h["children"]
    row(f"SERVER span + {kids} database children (whole)", h["root_with_children_db"])
    u = h["unwatched"]
    row("span under no watched span: a processor that does nothing", u["noop"])
    diff = u["ours_minus_noop"]
    noop_ok = diff["added_us"] <= 0
    noop_noisy = diff["added_q1_us"] <= 0 < diff["added_q3_us"]
    lines.append(f"| span under no watched span: otel-slowstack | {us(u['ours']['base_us'])} | "
                 f"{plus(u['ours']['added_us'])} | {iqr(u['ours'])} | {u['ours']['added_pct']:+.1f} % | "
                 f"≤ the no-op processor | {c.check('span under no watched span', '≤ a no-op processor', noop_ok, noop_noisy)} |")
    row("whole Flask request, in process", h["flask_request"], "≤ +2 %", 2.0, pct=True)
    if django:
        row("whole Django request, in process (1 in flight)", django["1"]["ours_over_otel"], "≤ +2 %", 2.0, pct=True)
    pair = h["span_pair"]
    flat = pair["10000"]["added_q1_us"] <= pair["0"]["added_q3_us"]
    c.check("SERVER span pair flat from 0 to 10,000 in flight", "quartiles at 10,000 and at 0 overlap", flat)
    aa = h.get("a_a")
    lines += [
        "",
        ("What this run shows: comparing the SDK with an identical SDK reads "
         f"{plus(aa['added_us'])} (IQR {iqr(aa)}), the resolution of this run's method; " if aa else
         "What this run shows: ") + "a SERVER span pair costs the SDK alone "
        f"{us(pair['0']['base_us'])}; otel-slowstack adds {plus(pair['0']['added_us'])} with nothing else in flight "
        f"and {plus(pair['10000']['added_us'])} with 10,000 in flight (flat, i.e. the lower quartile at 10,000, "
        f"{plus(pair['10000']['added_q1_us'])}, no higher than the upper quartile at 0, "
        f"{plus(pair['0']['added_q3_us'])}: {verdict(flat)}). "
        f"Per child under a watched span: database {plus(h['child_db']['added_us'])}, HTTP "
        f"{plus(h['child_http']['added_us'])}, other {plus(h['child_internal']['added_us'])} (each the {kids}-child "
        f"request minus the bare request, divided by {kids}, round by round). A span under no watched span: "
        f"{plus(u['ours']['added_us'])}, against {plus(u['noop']['added_us'])} for a processor that does nothing "
        f"(difference round by round {plus(diff['added_us'])}, IQR {iqr(diff)}; met when not above zero). A whole Flask request: {plus(h['flask_request']['added_us'])} over "
        f"{us(h['flask_request']['base_us'])} ({h['flask_request']['added_pct']:+.1f} %).",
    ]
    return lines


def django_section(d: dict, c: Checks) -> list:
    lines = [
        "Every variant as µs added per request over the same bare request (the app alone), measured in the same "
        "rounds. What each tool adds by itself is compared over the same base, the OTel-instrumented app: "
        "otel-slowstack's processor against Dogslow's middleware added to it, and their difference round by "
        "round (below zero: otel-slowstack lower). Dogslow over the bare app is shown too.",
        "",
        "| in flight | bare | + Dogslow | + OTel | + OTel + otel-slowstack | + OTel + Dogslow | "
        "otel-slowstack over OTel | Dogslow over OTel | difference (IQR) | ours lower |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    shows = []
    for n, r in d.items():
        ours, dog, diff = r["ours_over_otel"], r["dogslow_over_otel"], r["ours_minus_dogslow"]
        lower = diff["added_us"] < 0
        noisy = diff["added_q1_us"] < 0 <= diff["added_q3_us"]
        lines.append(
            f"| {int(n):,} | {us(r['dogslow_over_bare']['base_us'])} | {plus(r['dogslow_over_bare']['added_us'])} | "
            f"{plus(r['otel_over_bare']['added_us'])} | {plus(r['otel_ours_over_bare']['added_us'])} | "
            f"{plus(r['otel_dogslow_over_bare']['added_us'])} | {plus(ours['added_us'])} | {plus(dog['added_us'])} | "
            f"{plus(diff['added_us'])} ({iqr(diff)}) | "
            f"{c.check(f'lower than Dogslow, {int(n):,} in flight', 'µs added over the same base', lower, noisy)} |")
        shows.append(f"{int(n):,} in flight: {plus(ours['added_us'])} for otel-slowstack against "
                     f"{plus(dog['added_us'])} for Dogslow (Dogslow over the bare app: "
                     f"{plus(r['dogslow_over_bare']['added_us'])})")
    lines += ["", "What this run shows: per request, over the OTel-instrumented app, " + "; ".join(shows) +
              ". The OpenTelemetry instrumentation itself adds "
              f"{plus(d['1']['otel_over_bare']['added_us'])} to the bare request "
              f"({us(d['1']['otel_over_bare']['base_us'])})."]
    return lines


def peers_section(p: dict, django: Optional[dict]) -> list:
    lines = ["| tool, what it does | its base | added per request | IQR |", "|---|---|---|---|"]
    labels = {
        "sentry": "Sentry SDK, Django integration with performance tracing (every request a transaction)",
        "pyinstrument": "pyinstrument's profiler middleware, profiling every request (JSON report per request)",
    }
    names = {"sentry": "Sentry's performance tracing", "pyinstrument": "pyinstrument's profiler middleware"}
    bases = {"sentry": "same app, Sentry's client off", "pyinstrument": "bare app"}
    shows = []
    for key, label in labels.items():
        r = p.get(key)
        if r is None or "unavailable" in r:
            lines.append(f"| {label} | | not installed | |")
            continue
        lines.append(f"| {label} | {bases[key]}, {us(r['base_us'])} | {plus(r['added_us'])} | {iqr(r)} |")
        shows.append(f"{names[key]} {plus(r['added_us'])}")
    if django:
        ours = django["1"]["ours_over_otel"]
        lines.append(f"| otel-slowstack, from django_compare (1 in flight) | OTel-instrumented app, {us(ours['base_us'])} | "
                     f"{plus(ours['added_us'])} | {iqr(ours)} |")
        shows.append(f"otel-slowstack {plus(ours['added_us'])}")
    lines += ["", "What this run shows: µs added per request on the same Django app, " + ", ".join(shows) +
              ". These tools do more than otel-slowstack (a transaction or a profile of every request): the "
              "figures say what each costs, not which is better."]
    return lines


def sample_section(s: dict, c: Checks) -> list:
    new, same = s["new_span_capture"], s["same_stack_capture"]
    lines = [
        f"A request parked {s['frames']} frames deep (from the span's entry inwards), sampled {s['repeats']:,} times "
        "through the processor's own sampling path, timed with the sampling thread's CPU clock. The stack as "
        f"formatted with default settings: {s['stack_lines']} lines, {s['stack_bytes']:,} bytes.",
        "",
        "| sample | p50 | p99 | target | |", "|---|---|---|---|---|",
        f"| new span, capture to formatted string | {us(new['p50_us'])} | {us(new['p99_us'])} | p50 ≤ 25 µs | "
        f"{c.check('52-frame sample, capture to string', 'p50 ≤ 25 µs', new['p50_us'] <= 25)} |",
        f"| new span, all the event's attributes | {us(s['new_span_attributes']['p50_us'])} | "
        f"{us(s['new_span_attributes']['p99_us'])} | | |",
        f"| stuck thread sampled again, unchanged stack, capture to string | {us(same['p50_us'])} | {us(same['p99_us'])} "
        f"| ≤ 10 µs | {c.check('stuck thread sampled again', 'p50 ≤ 10 µs', same['p50_us'] <= 10)} |",
        f"| stuck thread sampled again, all the event's attributes | {us(s['same_stack_attributes']['p50_us'])} | "
        f"{us(s['same_stack_attributes']['p99_us'])} | | |",
        "",
        f"What this run shows: a {s['frames']}-frame sample costs {us(new['p50_us'])} at the median "
        f"({us(new['p99_us'])} p99) from capture to formatted string, {us(same['p50_us'])} when the same stuck "
        f"thread is sampled again; the first sample of the process (cold caches) took "
        f"{us(s['cold_first_capture_us'])}. What a sample costs the sampled thread itself is not reported: "
        "measured from a spinning thread's throughput it is below what these machines can resolve.",
    ]
    return lines


def watchdog_section(w: dict, c: Checks) -> list:
    t, idle, none_due = w["traffic"], w["idle"], w["none_due"]
    return [
        "| situation | measured | target | |", "|---|---|---|---|",
        f"| {t['requests_per_s']:.0f} requests/s that never become slow, {t['seconds']:.0f} s, default settings "
        f"(threshold {t['threshold_s']:g} s) | {t['wakeups_per_threshold']:.2f} wake-ups per threshold interval "
        f"({t['wakeups']:,} in all) | ≤ 1 | {c.check('watchdog wake-ups under traffic', '≤ 1 per threshold', t['wakeups_per_threshold'] <= 1)} |",
        f"| the same, watchdog thread's CPU | {t['cpu_pct_of_core']:.3f} % of one core | < 0.5 % | "
        f"{c.check('watchdog CPU under traffic', '< 0.5 % of a core', t['cpu_pct_of_core'] < 0.5)} |",
        f"| nothing in flight, {idle['seconds']:.0f} s | {idle['wakeups']} wake-ups, {idle['cpu_ms']:.1f} ms CPU | 0 | "
        f"{c.check('zero wake-ups with nothing in flight', '0', idle['wakeups'] == 0)} |",
        f"| {none_due['in_flight']:,} spans in flight, none due, {none_due['seconds']:.0f} s | {none_due['wakeups']} wake-ups | | |",
        "",
        f"What this run shows: under {t['requests_per_s']:.0f} requests a second the watchdog woke "
        f"{t['wakeups_per_threshold']:.2f} times per threshold interval and used {t['cpu_pct_of_core']:.3f} % of one "
        f"core; with nothing in flight it woke {idle['wakeups']} times in {idle['seconds']:.0f} s.",
    ]


def many_section(m: dict, c: Checks) -> list:
    ok = m["kept_pct"] >= 85
    noisy = m["kept_q1_pct"] < 85 <= m["kept_q3_pct"]
    return [
        f"{m['threads']:,} threads each hold a SERVER span (threshold and interval 100 ms) while one application "
        f"thread counts its work; {m['pairs']} pairs of {m['round_s']:g} s rounds, alternating without and with "
        f"otel-slowstack; the watchdog woke {m['watchdog_wakeups']:,} times.",
        "",
        f"What this run shows: the application kept {m['kept_pct']:.0f} % of its progress (quartiles "
        f"{m['kept_q1_pct']:.0f} … {m['kept_q3_pct']:.0f} %, lowest pair {m['kept_min_pct']:.0f} %); "
        f"the reliability test's floor is 85 %: "
        f"{c.check('progress kept with 3,000 slow threads', '≥ 85 % (tests/test_reliability_many_threads.py)', ok, noisy)}.",
    ]


def promptness_section(ps: list) -> list:
    lines = [
        "Lateness of samples after their deadlines (threshold 50 ms, 8 request threads) with threads burning CPU "
        "in pure Python, and, side by side under the same load, a bare Python thread waking from a timed wait: "
        "the floor the GIL sets for any Python-level watchdog. Wall-clock by nature.", "",
        "| busy threads | samples | p50 | p99 | max | bare thread p50 / p99 |", "|---|---|---|---|---|---|",
    ]
    for p in ps:
        mx = f"{p['max_ms']:.1f} ms" if p["max_ms"] is not None else "–"
        lines.append(f"| {p['busy_threads']} | {p['samples']} | {p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {mx} | "
                     f"{p['bare_p50_ms']:.1f} / {p['bare_p99_ms']:.1f} ms |")
    two = next((p for p in ps if p["busy_threads"] == 2), ps[0])
    lines += ["", f"What this run shows: with {two['busy_threads']} threads burning CPU, samples landed "
              f"{two['p99_ms']:.1f} ms late at p99 against {two['bare_p99_ms']:.1f} ms for a bare thread waking "
              "under the same load (no target in issue 12)."]
    return lines


def memory_section(mem: dict, c: Checks) -> list:
    lines = [f"{mem['spans']:,} spans on 20 threads, 5 % of them slow and sampled twice, in {mem['seconds']:.0f} s.", "",
             "| spans done | RSS | watched registry | watchdog queue |", "|---|---|---|---|"]
    for cp in mem["checkpoints"]:
        lines.append(f"| {cp['spans']:,} | {cp['rss_mb']:.1f} MiB | {cp['registry']} | {cp['queued']} |")
    rss = [cp["rss_mb"] for cp in mem["checkpoints"]]
    last = mem["checkpoints"][-1]
    empty = last["registry"] == 0 and last["queued"] == 0
    label = f"registry and queue empty after {mem['spans']:,} spans"
    lines += ["", f"What this run shows: RSS from the first checkpoint to the last {rss[-1] - rss[0]:+.1f} MiB; "
              f"registry and queue empty at the end: {c.check(label, 'empty', empty)}."]
    return lines


SECTIONS: list = [
    ("hot_path", "1. Hot path: spans that never become slow", lambda r, c: hot_path(r["hot_path"], r.get("django_compare"), c)),
    ("django_compare", "2. One Django app four ways, and Dogslow", lambda r, c: django_section(r["django_compare"], c)),
    ("peers", "3. Other per-request tools, same app, same method", lambda r, c: peers_section(r["peers"], r.get("django_compare"))),
    ("sample_cost", "4. What one sample costs the watchdog", lambda r, c: sample_section(r["sample_cost"], c)),
    ("watchdog_cost", "5. The watchdog's own cost", lambda r, c: watchdog_section(r["watchdog_cost"], c)),
    ("many_threads", "6. 3,000 slow requests at once", lambda r, c: many_section(r["many_threads"], c)),
    ("promptness", "7. Promptness", lambda r, c: promptness_section(r["promptness"])),
    ("memory", "8. Memory", lambda r, c: memory_section(r["memory"], c)),
    ("instructions", "9. The hot path in instructions and cache misses", lambda r, c: instructions_section(r["instructions"])),
]


def report(results: dict, errors: dict, about: list, quick: bool) -> tuple:
    checks = Checks()
    body: list = []
    for name, title, render in SECTIONS:
        if name not in results and name not in errors:
            continue
        body += ["", f"## {title}", ""]
        if name in errors:
            body += ["**Failed** in this run:", "", "```", errors[name], "```"]
            continue
        try:
            body += render(results, checks)
        except Exception as exc:  # a changed result shape: say so, keep the rest
            body += [f"**Could not be reported**: {type(exc).__name__}: {exc}"]
    met = sum(1 for _, _, ok, _ in checks.rows if ok)
    noisy = sum(1 for *_, n in checks.rows if n)
    head = ["# Benchmark results", "",
            "Produced by `python benchmarks/run.py`" + (" --quick" if quick else "") +
            "; every figure and verdict below is computed by that script from this run's data "
            "(`results.json`). Targets are issue 12's.", ""]
    head += about
    head += ["", "## Summary", "",
             f"{met} of {len(checks.rows)} targets met in this run, judged on medians; for {noisy} of them the "
             "quartiles fall on both sides of the target, so another run may judge them otherwise."
             + (" A --quick run has few rounds: its verdicts are indicative only." if quick else ""), "",
             "| target | | |", "|---|---|---|"]
    head += [f"| {what} | {target} | {verdict(ok)}{' (IQR crosses the target)' if n else ''} |"
             for what, target, ok, n in checks.rows]
    if errors:
        head += ["", "Failed benchmarks: " + ", ".join(sorted(errors)) + "."]
    return "\n".join(head + body) + "\n", readme_costs(results, quick)


def instructions_section(ins: dict) -> list:
    if "unavailable" in ins:
        return [f"Not measured: {ins['unavailable']}."]
    lines = [
        "The hot path's cases again, and a whole Flask request, counted by valgrind (`benchmarks/instructions.py`, "
        "cachegrind): machine instructions, and cache misses, simulated: of the first-level caches (32 KiB of "
        "instructions, 32 KiB of data) and of a 512 KiB second-level cache (these machines' per core). Counts "
        "that the machine's load does not move, unlike the CPU times above. The SDK with no other processor; "
        "each variant runs with and without the operations after the same warm-up, and the difference is "
        "divided by their number. Counts are not time, so there is no verdict here; they show where a change "
        "to the hot path moves the cost, and why a request pays a larger share than a span pair run in a loop.",
        "",
        "| case | SDK alone | + a processor that does nothing | + otel-slowstack | otel-slowstack, % of the SDK "
        "| L1 misses: SDK, + otel-slowstack | L2 misses: SDK, + otel-slowstack |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, r in ins.items():
        sdk, noop, ours = r["sdk"], r["noop"], r["ours"]
        lines.append(
            f"| {INSTRUCTION_CASES[case]} | {sdk['instructions']:,.0f} | {noop['instructions']:+,.0f} | "
            f"{ours['instructions']:+,.0f} | {100 * ours['instructions'] / sdk['instructions']:+.1f} % | "
            f"{sdk['l1_misses']:,.0f}, {ours['l1_misses']:+,.0f} | {sdk['l2_misses']:,.0f}, {ours['l2_misses']:+,.0f} |")
    pair, flask = ins.get("pair"), ins.get("flask")
    if pair and flask:
        lines += ["", (
            f"What this run shows: otel-slowstack adds {pair['ours']['instructions']:+,.0f} instructions and "
            f"{pair['ours']['l2_misses']:+,.0f} second-level cache misses to a span pair run in a loop, and "
            f"{flask['ours']['instructions']:+,.0f} instructions "
            f"({100 * flask['ours']['instructions'] / flask['sdk']['instructions']:+.1f} % of the request's) and "
            f"{flask['ours']['l2_misses']:+,.0f} second-level misses to a whole Flask request: between two "
            "requests the application's own code and data evict the hot path's from that cache, which a loop of "
            "span pairs never does. A second-level miss that hits the third level costs tens of cycles on these "
            "machines, so those misses come to microseconds per request: the order of the gap between a whole "
            "request's added time in section 1 and the share its added instructions would suggest."
        )]
    return lines


def readme_costs(r: dict, quick: bool) -> str:
    """The README's cost bullets, quoting only this run's figures."""
    out = [f"<!-- generated by benchmarks/run.py{' --quick' if quick else ''}; copy into the README -->"]

    def bullet(key: str, make: Callable[[dict], str]) -> None:
        try:
            if key in r:
                out.append(make(r))
        except Exception:
            pass

    bullet("hot_path", lambda r: (
        f"- A request span (SERVER span start and end through the SDK, {us(r['hot_path']['span_pair']['0']['base_us'])} "
        f"alone): {plus(r['hot_path']['span_pair']['0']['added_us'])}, and "
        f"{plus(r['hot_path']['span_pair']['10000']['added_us'])} with 10,000 others in flight. Per database call "
        f"under it: {plus(r['hot_path']['child_db']['added_us'])}; per HTTP call: "
        f"{plus(r['hot_path']['child_http']['added_us'])}; a span under no request: "
        f"{plus(r['hot_path']['unwatched']['ours']['added_us'])} (a processor that does nothing: "
        f"{plus(r['hot_path']['unwatched']['noop']['added_us'])}). A whole Flask request through its instrumentation: "
        f"{r['hot_path']['flask_request']['added_pct']:+.1f} %" + (
            f"; a whole Django request: {r['django_compare']['1']['ours_over_otel']['added_pct']:+.1f} %."
            if "django_compare" in r else ".")))
    bullet("django_compare", lambda r: (
        "- Against Dogslow on the same OpenTelemetry-instrumented Django app, µs added per request by each tool "
        "itself: " + "; ".join(
            f"{int(n):,} in flight, otel-slowstack {plus(v['ours_over_otel']['added_us'])}, "
            f"Dogslow {plus(v['dogslow_over_otel']['added_us'])}"
            for n, v in r["django_compare"].items()) + "."))
    bullet("sample_cost", lambda r: (
        f"- One sample of a {r['sample_cost']['frames']}-frame stack, on the watchdog thread: "
        f"{us(r['sample_cost']['new_span_capture']['p50_us'])} at the median from capture to formatted string; "
        f"{us(r['sample_cost']['same_stack_capture']['p50_us'])} for a stuck thread sampled again."))
    bullet("watchdog_cost", lambda r: (
        f"- The watchdog under {r['watchdog_cost']['traffic']['requests_per_s']:.0f} requests a second that never become "
        f"slow: {r['watchdog_cost']['traffic']['wakeups_per_threshold']:.2f} wake-ups per threshold interval, "
        f"{r['watchdog_cost']['traffic']['cpu_pct_of_core']:.3f} % of one core; "
        f"{r['watchdog_cost']['idle']['wakeups']} wake-ups with nothing in flight."))
    bullet("many_threads", lambda r: (
        f"- With {r['many_threads']['threads']:,} requests stuck at once, the application kept "
        f"{r['many_threads']['kept_pct']:.0f} % of its progress."))
    bullet("memory", lambda r: (
        f"- Memory over {r['memory']['spans']:,} spans: "
        f"{r['memory']['checkpoints'][-1]['rss_mb'] - r['memory']['checkpoints'][0]['rss_mb']:+.1f} MiB RSS from the "
        "first checkpoint to the last."))
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks; write results.json, RESULTS.md and readme_costs.md.")
    parser.add_argument("--quick", action="store_true", help="a smoke run (under 2 minutes): verdicts indicative only")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated benchmarks: " + ",".join(BENCHMARKS))
    parser.add_argument("--report", action="store_true", help="rewrite RESULTS.md from results.json, running nothing")
    options = parser.parse_args()
    quick = options.quick
    names = options.only.split(",") if options.only else BENCHMARKS
    results, errors, durations = {}, {}, {}
    if options.report:
        saved = json.loads((HERE / "results.json").read_text())
        quick, results, errors, about = saved["quick"], saved["results"], saved["errors"], saved["machine"]
        names = []
    for name in names:
        result, seconds, error = run(name, quick)
        durations[name] = seconds
        if error is None:
            results[name] = result
        else:
            errors[name] = error
    if names:
        about = machine(durations, quick)  # as the run ends: its date, load and durations
        (HERE / "results.json").write_text(json.dumps({"quick": quick, "machine": about, "results": results,
                                                       "errors": errors, "seconds": durations}, indent=1))
    text, costs = report(results, errors, about, quick)
    (HERE / "RESULTS.md").write_text(text)
    (HERE / "readme_costs.md").write_text(costs)
    print(text)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
