"""The shop as an async (ASGI) app: FastAPI, with the hotspots asyncio adds.

Run it under OpenTelemetry, unchanged, with uvicorn or gunicorn's uvicorn
worker (the ``uvicorn-worker`` package)::

    OTEL_PYTHON_SLOWSTACK_THRESHOLD=500 \\
    opentelemetry-instrument --traces_exporter console \\
        uvicorn --app-dir examples async_shop:app

    opentelemetry-instrument gunicorn --chdir examples \\
        -k uvicorn_worker.UvicornWorker async_shop:app

Pages:

- ``/``                       fast
- ``/report?seconds=3``       awaits a slow upstream call: the sample is this
                              request's await chain
- ``/inventory?seconds=3``    awaits several slow calls at once (``gather``)
- ``/prices?seconds=2``       blocks the event loop with sync CPU work: every
                              other request waits, and its samples say who
                              holds the loop (``slowstack.loop_blocked_by``)
- ``/export?seconds=3``       a sync endpoint: FastAPI runs it in its thread
                              pool, and the sample shows that pool thread
- ``/convert?seconds=3``      hands sync work to ``asyncio.to_thread``
- ``/legacy?seconds=3``       hands sync work to asgiref's ``sync_to_async``
                              (Django's way)
- ``/stuck?seconds=60``       a sync endpoint stuck far longer than any
                              server timeout
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index() -> str:
    return "ok"


@app.get("/report")
async def report(seconds: float = 3.0) -> str:
    rates = await fetch_exchange_rates(seconds)
    return f"report ready ({rates} rates)"


async def fetch_exchange_rates(seconds: float) -> int:
    """Stands for a slow upstream call made with an async client."""
    await asyncio.sleep(seconds)
    return 42


@app.get("/inventory")
async def inventory(seconds: float = 3.0) -> str:
    counts = await asyncio.gather(count_stock("north", seconds), count_stock("south", seconds / 2))
    return f"{sum(counts)} items"


async def count_stock(warehouse: str, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return len(warehouse)


@app.get("/prices")
async def prices(seconds: float = 2.0) -> str:
    return f"{count_price_collisions(seconds)} collisions"


def count_price_collisions(seconds: float) -> int:
    """Sync CPU work inside ``async def``: nothing else runs on the loop meanwhile."""
    deadline = time.monotonic() + seconds
    collisions = n = 0
    while time.monotonic() < deadline:
        n += 1
        if (n * 7919) % 10007 == 0:
            collisions += 1
    return collisions


@app.get("/export")
def export(seconds: float = 3.0) -> str:
    return render_export(seconds)


def render_export(seconds: float) -> str:
    """Blocking work in a plain ``def`` endpoint: fine, it runs in the pool."""
    time.sleep(seconds)
    return "export.csv"


@app.get("/convert")
async def convert(seconds: float = 3.0) -> str:
    total = await asyncio.to_thread(convert_currencies, seconds)
    return f"{total} converted"


def convert_currencies(seconds: float) -> int:
    time.sleep(seconds)
    return 7


@app.get("/legacy")
async def legacy(seconds: float = 3.0) -> str:
    from asgiref.sync import sync_to_async  # ships with Django

    rows = await sync_to_async(load_legacy_report)(seconds)
    return f"{rows} rows"


def load_legacy_report(seconds: float) -> int:
    time.sleep(seconds)
    return 3


@app.get("/stuck")
def stuck(seconds: float = 60.0) -> str:
    wait_for_lock(seconds)
    return "finally"


def wait_for_lock(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
