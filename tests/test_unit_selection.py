"""``pytest -m unit`` runs where only the package and pytest are installed.

The README promises it; a unit module that imports the test extra at its top
would break it without failing anything in the full environment. So this
runs the unit selection in a subprocess that cannot import any module of a
distribution only the extras bring (flask, opentelemetry-proto, the OTLP
exporters, pytest-xdist ...), as in a venv made with ``pip install -e .
pytest``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TESTS = Path(__file__).resolve().parent

# Raises on every module of the hidden distributions, as if they were not installed.
HIDE = r"""
import json, sys
hidden = frozenset(json.loads(sys.argv[1]))

class Hidden:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: not a base dependency)", name=name)
        return None

sys.meta_path.insert(0, Hidden)
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


def _closure(requirements: list) -> set:
    """Installed distributions these requirements bring, with their extras, recursively."""
    seen: set = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(requirement.name).requires or []
        except metadata.PackageNotFoundError:
            continue  # optional on this platform (uWSGI elsewhere than Linux)
        for text in requires:
            wanted = Requirement(text)
            extras = requirement.extras or {""}
            if wanted.marker is None or any(wanted.marker.evaluate({"extra": e}) for e in extras):
                todo.append(wanted)
    return {name for name, _ in seen}


def _modules(distribution: str) -> set:
    """Dotted names of the packages and modules a distribution installed."""
    names = set()
    for file in metadata.distribution(distribution).files or []:
        parts = file.parts
        if not parts or parts[0] == ".." or any(p.endswith(".dist-info") or p == "__pycache__" for p in parts):
            continue
        last = parts[-1]
        if last == "__init__.py":
            names.add(".".join(parts[:-1]))
        elif last.endswith(".py"):
            names.add(".".join(parts[:-1] + (last[:-3],)))
        elif last.endswith((".so", ".pyd")):
            names.add(".".join(parts[:-1] + (last.split(".")[0],)))
    return names


def test_the_unit_selection_needs_no_test_extra() -> None:
    base = _closure([Requirement("otel-slowstack"), Requirement("pytest")])
    hidden_distributions = _closure([Requirement("otel-slowstack[test]")]) - base
    assert {"flask", "opentelemetry-proto", "pytest-xdist"} <= hidden_distributions
    kept = set().union(*(_modules(d) for d in base))
    hidden = sorted(set().union(*(_modules(d) for d in hidden_distributions)) - kept)
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")  # xdist, pytest-timeout: not installed there
    done = subprocess.run(
        [sys.executable, "-c", HIDE, json.dumps(hidden), "-m", "unit", "-q", "-p", "no:cacheprovider", str(TESTS)],
        cwd=str(TESTS.parent), env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout, done.stdout[-4000:]
