"""speedscope's JSON file format: one sampled profile per route.

Frames are shared between profiles; each distinct stack is one sample whose
weight is the number of samples that had it (unit ``none``: these are
counts of samples, not durations).
"""

from __future__ import annotations

import json

from otel_slowstack.version import __version__

from ..stacks import Frame
from .ranking import killed_summary

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def speedscope_document(report) -> dict:
    frames: list = []
    index: dict = {}

    def frame_index(frame: Frame) -> int:
        found = index.get(frame)
        if found is None:
            entry: dict = {"name": frame.function}
            if not frame.is_elided and frame.file:
                entry["file"] = frame.file
                entry["line"] = frame.line
            found = index[frame] = len(frames)
            frames.append(entry)
        return found

    profiles = []
    for route in report.routes:
        samples, weights = [], []
        for stack, count in route.stacks.most_common():
            samples.append([frame_index(f) for f in stack])
            weights.append(count)
        profiles.append(
            {
                "type": "sampled",
                "name": f"{route.route} ({route.requests} slow requests, {route.samples} samples"
                + (f", {route.killed_total} did not finish: {killed_summary(route)}" if route.killed_total else "")
                + ")",
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": f"otel-slowstack report: {report.source}",
        "activeProfileIndex": 0,
        "exporter": f"otel-slowstack {__version__}",
    }


def render_speedscope(report) -> str:
    return json.dumps(speedscope_document(report), separators=(",", ":")) + "\n"
