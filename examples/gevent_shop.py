"""The shop under gevent: many requests, each a greenlet, on one OS thread.

Run it under OpenTelemetry with gunicorn's gevent worker, which
monkey-patches the standard library before the app is loaded::

    OTEL_PYTHON_SLOWSTACK_THRESHOLD=500 \\
    opentelemetry-instrument --traces_exporter console \\
        gunicorn --chdir examples -k gevent gevent_shop:app

Pages:

- ``/``                       fast
- ``/report?seconds=3``       waits on a slow upstream call (a patched sleep:
                              the greenlet yields, others run)
- ``/inventory?seconds=3``    waits on another one
- ``/prices?seconds=2``       burns CPU without yielding: every other greenlet
                              waits, and only a real watchdog thread can see it
- ``/stuck?seconds=60``       stuck far longer than any server timeout
"""

from __future__ import annotations

import time

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "ok\n"


@app.get("/report")
def report() -> str:
    rates = fetch_exchange_rates(float(request.args.get("seconds", "3")))
    return f"report ready ({rates} rates)\n"


def fetch_exchange_rates(seconds: float) -> int:
    """Stands for a slow upstream call: the greenlet waits, the hub runs others."""
    time.sleep(seconds)
    return 42


@app.get("/inventory")
def inventory() -> str:
    return f"{count_stock(float(request.args.get('seconds', '3')))} items\n"


def count_stock(seconds: float) -> int:
    time.sleep(seconds)
    return 7


@app.get("/prices")
def prices() -> str:
    return f"{count_price_collisions(float(request.args.get('seconds', '2')))} collisions\n"


def count_price_collisions(seconds: float) -> int:
    """CPU work that never yields to the hub: the whole worker is stuck in it."""
    deadline = time.monotonic() + seconds
    collisions = n = 0
    while time.monotonic() < deadline:
        n += 1
        if (n * 7919) % 10007 == 0:
            collisions += 1
    return collisions


@app.get("/stuck")
def stuck() -> str:
    wait_for_lock(float(request.args.get("seconds", "60")))
    return "finally\n"


def wait_for_lock(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
