"""``otel-slowstack report``: from many slow requests to the few hotspots.

Usage::

    otel-slowstack report traces.jsonl                       # OTLP JSON lines file
    otel-slowstack report http://localhost:16686 --service shop --since 1h   # Jaeger
    otel-slowstack report http://localhost:3200 --since 1h   # Grafana Tempo
    otel-slowstack report traces.jsonl --format html -o slow.html

The pipeline reads in one direction, one folder or module per stage::

    sources/ (file, Jaeger v3/v1, Tempo; each bounded and distrustful) -> SpanRecord
      -> samples.py (Sample, NPlusOne: plain data parsed from span events)
      -> aggregate.py (per-route counters, durations.py, killed requests; built incrementally)
      -> renderers/ (ranking.py shared cells; text, folded, speedscope, html; printable.py for safe text)

Nothing in the instrumentation imports this package: what only the command
needs (an HTTP client, a terminal library) is the ``report`` extra.
"""
