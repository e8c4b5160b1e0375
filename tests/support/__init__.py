"""Helpers shared by the tests, imported as ``support.*`` (pytest puts ``tests/`` on ``sys.path``).

- ``sdk``: an in-process SDK with our processor (tests take one from the
  ``make_sdk`` fixture); ``spans``: samples, stacks and predicates of finished
  spans, SDK or received; ``services``: PostgreSQL and Redis, a skip (a
  failure under ``CI=true``) when absent.
- ``otlp_receiver``: a real OTLP/HTTP receiver; ``servers``: gunicorn,
  uvicorn, uWSGI and Celery processes on the package's own harness
  (``otel_slowstack.server_process``).
- ``report_spans``, ``report_backends``, ``report_chromium``: the report's
  inputs, fake Jaeger and Tempo backends, headless Chromium.
- ``crowd``, ``stress_workload``: load for the reliability tests and the
  benchmarks.
- ``apps/``: applications servers load by path, not modules of this package
  (``apps/interrupt_app.py`` through ``--pythonpath``, ``apps/uwsgi/`` as
  uWSGI's working directory).

Only ``otlp_receiver``, ``report_spans`` and ``report_backends`` import the
test extra; ``-m unit`` modules use the others, or import these inside a test.
"""
