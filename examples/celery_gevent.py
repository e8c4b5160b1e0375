"""Celery's gevent pool under OpenTelemetry: monkey-patch first, then instrument.

``opentelemetry-instrument celery ... --pool gevent`` patches too late: the
SDK's threads and locks already exist when Celery patches, and the pool never
runs a task. Start the worker through this file instead, with the same
``OTEL_*`` variables::

    python celery_gevent.py -A tasks worker --pool gevent --concurrency 100

otel-slowstack then watches each task's greenlet as it does with the other
pools; its watchdog stays a real OS thread after the patching.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from opentelemetry.instrumentation.auto_instrumentation import initialize  # noqa: E402

initialize()  # what opentelemetry-instrument does, after the patching

from celery.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
