"""The ``OTEL_PYTHON_SLOWSTACK_*`` variables.

Registered under the ``opentelemetry_environment_variables`` entry point, so
``opentelemetry-instrument`` also accepts each one as a flag:
``OTEL_PYTHON_SLOWSTACK_THRESHOLD`` becomes ``--slowstack_threshold``.
Defaults and meanings are in the README's configuration table.
"""

OTEL_PYTHON_SLOWSTACK_THRESHOLD = "OTEL_PYTHON_SLOWSTACK_THRESHOLD"
"""A watched span still running after this long gets its first sample (default ``1000`` ms)."""

OTEL_PYTHON_SLOWSTACK_INTERVAL = "OTEL_PYTHON_SLOWSTACK_INTERVAL"
"""Time between further samples of the same span (default: the threshold)."""

OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES = "OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES"
"""Samples per span at most (default ``10``)."""

OTEL_PYTHON_SLOWSTACK_SPAN_KINDS = "OTEL_PYTHON_SLOWSTACK_SPAN_KINDS"
"""Which span kinds are watched, as local roots (default ``server,consumer``)."""

OTEL_PYTHON_SLOWSTACK_ROUTES = "OTEL_PYTHON_SLOWSTACK_ROUTES"
"""Per-route thresholds, e.g. ``/reports/*=30s,/healthz=off``."""

OTEL_PYTHON_SLOWSTACK_MAX_FRAMES = "OTEL_PYTHON_SLOWSTACK_MAX_FRAMES"
"""Frames kept per stack (default ``64``)."""

OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES = "OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES"
"""Size of one ``code.stacktrace`` value at most (default ``2048``)."""

OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS = "OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS"
"""Add local variables of application frames to samples (default ``false``)."""

OTEL_PYTHON_SLOWSTACK_REDACT = "OTEL_PYTHON_SLOWSTACK_REDACT"
"""Regex of local variable names whose values are replaced by ``[REDACTED]``."""

OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE = "OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE"
"""Repeats of one normalised statement under one span that raise an N+1 event (default ``10``)."""

OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER = "OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER"
"""Age at which a sample is exported at once as a snapshot span, and again at each doubling (default ``10000`` ms)."""

OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER = "OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER"
"""Raise ``SlowRequestInterrupted`` in the span's thread or task after this long (default ``off``)."""
