"""Run every benchmark side by side on this machine and write RESULTS.md.

    python benchmarks/run.py            # the full run (under 10 minutes)
    python benchmarks/run.py --quick    # a fast smoke run

Each benchmark runs in its own process and prints one JSON line; this script
gathers them, states the machine and versions, and checks each figure
against its target. Figures are ratios or distributions measured in the same
run as their baselines.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["hot_path", "dogslow_compare", "sample_cost", "promptness", "idle", "memory"]
PACKAGES = ["otel-slowstack", "opentelemetry-sdk", "opentelemetry-instrumentation", "opentelemetry-instrumentation-flask",
            "opentelemetry-instrumentation-django", "flask", "django", "dogslow"]


def run(name: str, quick: bool) -> dict:
    argv = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    out = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return result


def machine() -> list:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return [
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Packages: {', '.join(versions)}",
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def pct(r: dict) -> str:
    return f"{r['overhead_pct']:+.1f} % (IQR {100 * (r['ratio_q1'] - 1):+.1f} … {100 * (r['ratio_q3'] - 1):+.1f} %)"


def report(results: dict, quick: bool) -> str:
    lines = ["# Benchmark results", "", "Produced by `python benchmarks/run.py`" + (" --quick (smoke run: fewer rounds)" if quick else "") + ".", ""]
    lines += machine() + [""]
    hot = results["hot_path"]
    lines += [
        "## 1. Hot path (spans that never become slow)", "",
        "Same SDK, no-op exporter behind a BatchSpanProcessor, with and without `SlowStackProcessor`; "
        "rounds alternate, the figure is the median of per-round ratios.", "",
        "| case | without | with | overhead | target |", "|---|---|---|---|---|",
        f"| SERVER span pair | {hot['span_pair']['baseline_ns'] / 1000:.1f} µs | {hot['span_pair']['candidate_ns'] / 1000:.1f} µs | {pct(hot['span_pair'])} | ≤ +5 %: {verdict(hot['span_pair']['overhead_pct'] <= 5)} |",
        f"| SERVER span + 5 DB child spans | {hot['span_with_5_db_children']['baseline_ns'] / 1000:.1f} µs | {hot['span_with_5_db_children']['candidate_ns'] / 1000:.1f} µs | {pct(hot['span_with_5_db_children'])} | |",
        f"| whole Flask request (in process) | {hot['flask_request']['baseline_ns'] / 1000:.1f} µs | {hot['flask_request']['candidate_ns'] / 1000:.1f} µs | {pct(hot['flask_request'])} | ≤ +2 %: {verdict(hot['flask_request']['overhead_pct'] <= 2)} |",
        "",
    ]
    dog = results["dogslow_compare"]
    lines += [
        "## 2. Against Dogslow (same Django app, same requests)", "",
        "Dogslow: its middleware over the bare app. otel-slowstack: the processor over the same app already "
        "instrumented by OpenTelemetry. With other requests in flight (Dogslow: jobs in its timer; "
        "otel-slowstack: watched spans open).", "",
        "| requests in flight | Dogslow overhead | otel-slowstack overhead | ours lower |", "|---|---|---|---|",
    ]
    for n in ("1", "100", "10000"):
        d, s = dog["dogslow"][n], dog["slowstack"][n]
        lines.append(f"| {int(n):,} | {pct(d)} ({(d['candidate_ns'] - d['baseline_ns']) / 1000:+.0f} µs) | "
                     f"{pct(s)} ({(s['candidate_ns'] - s['baseline_ns']) / 1000:+.0f} µs) | {verdict(s['overhead_pct'] < d['overhead_pct'])} |")
    cost = results["sample_cost"]
    lines += [
        "", "## 3. Cost of one sample", "",
        "Capture another thread's stack and format it (the watchdog's path).", "",
        "| stack depth | p50 | p99 | target |", "|---|---|---|---|",
    ]
    for d in (20, 50, 100):
        c = cost[f"frames_{d}"]
        target = f"< 200 µs: {verdict(c['p50_us'] < 200)}" if d == 50 else ""
        lines.append(f"| {c['frames']} frames | {c['p50_us']:.0f} µs | {c['p99_us']:.0f} µs | {target} |")
    inflicted = cost["inflicted"]
    delay = inflicted["delay_per_sample_us"]
    lines += ["", f"Sampled {inflicted['samples_per_second']} times a second, a spinning 50-frame-deep thread kept "
              f"{100 * inflicted['throughput_ratio']:.1f} % of its throughput: about "
              f"{delay:.0f} µs lost per sample (the GIL held while its stack is read and formatted)." if delay is not None else ""]
    lines += ["", "## 4. Promptness", "",
              "Lateness of samples after their deadlines (threshold 50 ms, 8 request threads), with threads burning CPU "
              "in pure Python. Side by side, under the same load, a bare Python thread waking from a timed wait: the "
              "floor the GIL sets for any Python-level watchdog.", "",
              "| busy threads | samples | p50 | p99 | max | bare thread p50 / p99 | target |", "|---|---|---|---|---|---|---|"]
    for p in results["promptness"]:
        target = f"p99 < 20 ms: {verdict(p['p99_ms'] < 20)}" if p["busy_threads"] == 2 else ""
        lines.append(f"| {p['busy_threads']} | {p['samples']} | {p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {p['max_ms']:.1f} ms | "
                     f"{p['bare_p50_ms']:.1f} / {p['bare_p99_ms']:.1f} ms | {target} |")
    idle = results["idle"]
    lines += ["", "## 5. Idle cost", "", "| situation | watchdog wake-ups per second | target |", "|---|---|---|",
              f"| nothing in flight | {idle['nothing_in_flight_per_s']:.2f} | 0: {verdict(idle['nothing_in_flight_per_s'] == 0)} |",
              f"| 1,000 watched spans in flight, none due | {idle['1000_in_flight_none_due_per_s']:.2f} | 0: {verdict(idle['1000_in_flight_none_due_per_s'] == 0)} |"]
    mem = results["memory"]
    lines += ["", "## 6. Memory", "", f"{mem['spans']:,} spans on {20} threads, 5 % of them slow and sampled twice, in {mem['seconds']:.0f} s.", "",
              "| spans done | RSS | watched registry | watchdog queue |", "|---|---|---|---|"]
    for c in mem["checkpoints"]:
        lines.append(f"| {c['spans']:,} | {c['rss_mb']:.1f} MiB | {c['registry']} | {c['queued']} |")
    rss = [c["rss_mb"] for c in mem["checkpoints"]]
    lines += ["", f"RSS from the first checkpoint to the last: {rss[-1] - rss[0]:+.1f} MiB; registry and queue empty at the end: "
              f"{verdict(mem['checkpoints'][-1]['registry'] == 0)}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    quick = "--quick" in sys.argv
    results = {}
    for name in BENCHMARKS:
        results.update(run(name, quick))
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results, quick)
    (HERE / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
