"""Shared fixtures: the OTLP receiver, in-process SDK setups, real services.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379)
are used when they answer. Tests needing them skip with the reason when they
do not, except under ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from otlp_receiver import Receiver  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_DSN = os.environ.get("SLOWSTACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SLOWSTACK_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when a service does not answer."""
    if _answers(host, port):
        return
    message = f"{name} is not answering on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def receiver_for_module():
    """One receiver for a module whose tests share one server."""
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
