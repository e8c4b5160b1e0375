"""Instructions a span costs, counted by valgrind: a figure a loaded machine cannot move.

On a shared machine the CPU-time figures of ``hot_path.py`` wander by more
than what one change to the hot path saves. This counts machine instructions
instead (``valgrind --tool=callgrind``, whose count does not depend on load),
for the same cases, over an SDK with no other processor (no batch thread,
whose share would vary): each case runs twice, with 0 and with N operations
after the same warm-up, and the difference is divided by N. Instructions are
not time (cache misses are not counted), but they rank variants of Python
code reliably. Slow: about 10 s of valgrind per case and variant.

    python benchmarks/instructions.py [--quick] [CASE ...]   # pair cur db http int unw

The table goes to standard error; the last line of standard output is the
JSON that ``run.py`` reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from common import emit

CASES = ("pair", "cur", "db", "http", "int", "unw")
OPERATIONS = {"pair": 300, "cur": 300, "unw": 300, "db": 40, "http": 40, "int": 40}
VARIANTS = ("sdk", "noop", "ours")


def _child(variant: str, case: str, n: int) -> None:
    """Runs inside valgrind: one variant, one case, ``n`` operations."""
    import gc

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from common import NoopProcessor
    from hot_path import DB_ATTRS, HTTP_ATTRS, THRESHOLD, current_span, span_pair, unwatched, with_children
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
    }[case]
    run = make(tracer)
    gc.disable()
    for _ in range(100 + n):
        run()
    os._exit(0)  # no interpreter teardown in the count


def _count(variant: str, case: str, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--child", variant, case, str(n)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True,
    )
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def per_operation(variant: str, case: str) -> float:
    n = OPERATIONS[case]
    return (_count(variant, case, n) - _count(variant, case, 0)) / n


#: Labels of the cases, as RESULTS.md shows them.
LABELS = {
    "pair": "SERVER span pair", "cur": "the same through `start_as_current_span`",
    "db": "per database CLIENT child", "http": "per HTTP CLIENT child",
    "int": "per INTERNAL child under a watched span", "unw": "span under no watched span",
}


def measure(cases: list) -> dict:
    """``case -> {"sdk", "noop", "ours"}``: the SDK's instructions per
    operation, and what each processor adds (per child for the child cases:
    the request with children minus the bare request, over the children)."""
    from hot_path import CHILDREN

    counts = {(v, c): per_operation(v, c) for c in set(cases) | {"pair"} for v in VARIANTS}
    result = {}
    for case in cases:
        sdk = counts[("sdk", case)]
        row = {v: counts[(v, case)] - sdk for v in ("noop", "ours")}
        if case in ("db", "http", "int"):
            row = {v: (r - (counts[(v, "pair")] - counts[("sdk", "pair")])) / CHILDREN for v, r in row.items()}
            sdk = (sdk - counts[("sdk", "pair")]) / CHILDREN
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
    print(f"{'case':6} {'SDK':>9} {'+ no-op':>9} {'+ ours':>9}   instructions per operation (added over the SDK)",
          file=sys.stderr)
    for case, r in result.items():
        print(f"{case:6} {r['sdk']:9.0f} {r['noop']:+9.0f} {r['ours']:+9.0f}", file=sys.stderr)
    emit({"instructions": result})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
