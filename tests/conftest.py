"""Shared fixtures: in-process SDKs, the OTLP receiver, the real services.

Helpers live in ``support/`` (importable as ``support.*``: pytest puts this
folder on ``sys.path``). Nothing heavy is imported here at collection: the
receiver needs ``opentelemetry-proto`` from the test extra, so its fixtures
import it when they run.

Pure unit tests: a module whose tests need only the package and pytest says
so with ``pytestmark = pytest.mark.unit``. ``pytest -m unit`` then does not
even import the other modules (they may import the test extra at their top),
so it runs where only ``pip install -e . pytest`` was done.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pytest

from support.services import POSTGRES_DSN, REDIS_URL, require_service

UNIT_MODULE = re.compile(r"^pytestmark = .*\bpytest\.mark\.unit\b", re.M)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.hasplugin("timeout"):
        # pyproject's `timeout` belongs to pytest-timeout (the test extra);
        # a pure run without it should not warn about it.
        parser.addini("timeout", "pytest-timeout's per-test limit, unused without it")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Optional[bool]:
    """Under ``-m unit``, skip test modules that are not unit modules, unimported."""
    if config.getoption("markexpr") != "unit" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix == ".py" and not UNIT_MODULE.search(collection_path.read_text(encoding="utf-8")):
        return True
    return None


@pytest.fixture
def make_sdk():
    """``make_sdk(**settings)`` -> a ``support.sdk.Sdk``; all of them shut down after the test."""
    from support.sdk import Sdk

    made: list = []

    def make(**settings) -> Sdk:
        made.append(Sdk(**settings))
        return made[-1]

    yield make
    for sdk in made:
        sdk.shutdown()


@pytest.fixture
def receiver():
    from support.otlp_receiver import Receiver

    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def receiver_for_module():
    """One receiver for a module whose tests share one server."""
    from support.otlp_receiver import Receiver

    with Receiver() as r:
        yield r


@pytest.fixture
def postgres_dsn() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL
