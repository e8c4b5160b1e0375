"""Instructions and cache misses a span costs, counted by valgrind: figures a loaded machine cannot move.

On a shared machine the CPU-time figures of ``hot_path.py`` wander by more
than what one change to the hot path saves. This counts machine instructions
instead, and cache misses (``valgrind --tool=cachegrind --cache-sim=yes``:
simulated, so load does not move them either), for the same cases and a
whole Flask request, over an SDK with no other processor (no batch thread,
whose share would vary): each case runs twice, with 0 and with N operations
after the same warm-up, and the difference is divided by N. Counts are not
time, but they say why a whole request pays a larger share than a span pair
run in a tight loop: in the loop everything stays in the second-level cache,
in a request the hot path's code and data have been evicted from it by the
application's since the last request. Slow: about 10 s of valgrind per case
and variant (a minute for Flask), two at a time.

    python benchmarks/instructions.py [--quick] [CASE ...]   # pair cur db http int unw flask

The table goes to standard error; the last line of standard output is the
JSON that ``run.py`` reads.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys

from common import emit

CASES = ("pair", "cur", "db", "http", "int", "unw", "flask")
OPERATIONS = {"pair": 300, "cur": 300, "unw": 300, "db": 40, "http": 40, "int": 40, "flask": 100}
VARIANTS = ("sdk", "noop", "ours")


def _child(variant: str, case: str, n: int) -> None:
    """Runs inside valgrind: one variant, one case, ``n`` operations."""
    import gc
    import random
    import time

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from common import NoopProcessor
    from hot_path import DB_ATTRS, HTTP_ATTRS, THRESHOLD, current_span, flask_request, span_pair, unwatched, with_children
    from otel_slowstack import SlowStackProcessor

    tp = TracerProvider(shutdown_on_exit=False)
    if variant == "ours":
        tp.add_span_processor(SlowStackProcessor(threshold=THRESHOLD))
    elif variant == "noop":
        tp.add_span_processor(NoopProcessor())
    tracer = tp.get_tracer("bench")
    make = {
        "pair": span_pair, "cur": current_span, "unw": unwatched,
        "db": lambda t: with_children(t, SpanKind.CLIENT, "SELECT", DB_ATTRS),
        "http": lambda t: with_children(t, SpanKind.CLIENT, "GET", [HTTP_ATTRS]),
        "int": lambda t: with_children(t, SpanKind.INTERNAL, "render", [{}]),
        "flask": lambda t: flask_request(tp, "bench"),  # a name made of no address
    }[case]
    run = make(tracer)
    gc.disable()
    random.seed(0)  # span ids: the same dictionary layouts in every run
    for _ in range(100):
        run()
    # The watchdog, woken by the first span, settles on its next deadline: until
    # it does, every span start wakes it again (a few times, at a thread switch).
    time.sleep(0.5)
    for _ in range(n):
        run()
    os._exit(0)  # no interpreter teardown in the count


#: What is counted: instructions, misses of the first-level instruction and
#: data caches (32 KiB each), and misses of a 512 KiB second-level cache
#: (simulated as cachegrind's last level: these machines' L2 per core).
EVENTS = ("instructions", "l1_misses", "l2_misses")
L2 = "--LL=524288,8,64"
_SUMMARY = {"I   refs": "instructions", "I1  misses": "i1", "D1  misses": "d1", "LL misses": "l2"}


def _fixed_addresses() -> list:
    """``setarch -R`` where the machine allows it: without address randomisation,
    dictionaries keyed by objects (hashed by address) lay out alike in every run."""
    command = ["setarch", platform.machine(), "-R"]
    try:
        subprocess.run(command + ["true"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return command


def _count(variant: str, case: str, n: int, fixed: list) -> dict:
    out = subprocess.run(
        fixed + ["valgrind", "--tool=cachegrind", "--cache-sim=yes", L2, "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--child", variant, case, str(n)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True,
    )
    found = {key: int(m.group(1).replace(",", "")) for label, key in _SUMMARY.items()
             for m in [re.search(label + r":\s+([\d,]+)", out.stderr)] if m}
    return {"instructions": found["instructions"], "l1_misses": found["i1"] + found["d1"], "l2_misses": found["l2"]}


def per_operation(counts: dict, variant: str, case: str) -> dict:
    n = OPERATIONS[case]
    many, none = counts[(variant, case, n)], counts[(variant, case, 0)]
    return {event: (many[event] - none[event]) / n for event in EVENTS}


#: Labels of the cases, as RESULTS.md shows them.
LABELS = {
    "pair": "SERVER span pair", "cur": "the same through `start_as_current_span`",
    "db": "per database CLIENT child", "http": "per HTTP CLIENT child",
    "int": "per INTERNAL child under a watched span", "unw": "span under no watched span",
    "flask": "whole Flask request, in process",
}


def measure(cases: list) -> dict:
    """``case -> {"sdk", "noop", "ours"}``, each ``{event: count}`` per
    operation: the SDK's own, and what each processor adds (per child for
    the child cases: the request with children minus the bare request, over
    the children)."""
    from concurrent.futures import ThreadPoolExecutor

    from hot_path import CHILDREN

    runs = [(v, c, n) for c in set(cases) | {"pair"} for v in VARIANTS for n in (0, OPERATIONS[c])]
    fixed = _fixed_addresses()
    with ThreadPoolExecutor(max_workers=2) as pool:  # simulated counts: running two at once moves none
        counts = dict(zip(runs, pool.map(lambda run: _count(*run, fixed), runs)))
    per = {(v, c): per_operation(counts, v, c) for v, c, _ in runs}
    result = {}
    for case in cases:
        sdk = per[("sdk", case)]
        row = {v: {e: per[(v, case)][e] - sdk[e] for e in EVENTS} for v in ("noop", "ours")}
        if case in ("db", "http", "int"):
            pair = {v: {e: per[(v, "pair")][e] - per[("sdk", "pair")][e] for e in EVENTS} for v in row}
            row = {v: {e: (r[e] - pair[v][e]) / CHILDREN for e in EVENTS} for v, r in row.items()}
            sdk = {e: (sdk[e] - per[("sdk", "pair")][e]) / CHILDREN for e in EVENTS}
        result[case] = {"sdk": sdk, **row}
    return result


def main() -> None:
    args = sys.argv[1:]
    quick = "--quick" in args
    cases = [c for c in args if c in CASES] or (["pair", "unw"] if quick else list(CASES))
    if shutil.which("valgrind") is None:
        emit({"instructions": {"unavailable": "valgrind is not installed"}})
        return
    result = measure(cases)
    print(f"{'case':6} {'SDK':>9} {'+ no-op':>9} {'+ ours':>9}   per operation (added over the SDK)", file=sys.stderr)
    for case, r in result.items():
        for event in EVENTS:
            print(f"{case:6} {r['sdk'][event]:9.0f} {r['noop'][event]:+9.0f} {r['ours'][event]:+9.0f}   {event}",
                  file=sys.stderr)
    emit({"instructions": result})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
