"""The ``OTEL_PYTHON_SLOWSTACK_*`` variables.

Registered under the ``opentelemetry_environment_variables`` entry point, so
``opentelemetry-instrument`` also accepts each one as a flag:
``OTEL_PYTHON_SLOWSTACK_THRESHOLD`` becomes ``--slowstack_threshold``.
Defaults and meanings are in the README's configuration table.

Durations are milliseconds, or a number with ``ms``, ``s`` or ``m``, or
``off``; at most one day (a longer one counts as a day). Numbers are ASCII
digits only. A malformed value logs one warning naming the variable, the
value and the fallback, and the default applies: no value stops the
application.
"""

OTEL_PYTHON_SLOWSTACK_THRESHOLD = "OTEL_PYTHON_SLOWSTACK_THRESHOLD"
"""A watched span still running after this long gets its first sample (default ``1000`` ms; ``off``)."""

OTEL_PYTHON_SLOWSTACK_INTERVAL = "OTEL_PYTHON_SLOWSTACK_INTERVAL"
"""Time between further samples of the same span (default: the threshold; at least ``1`` ms; ``off``)."""

OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES = "OTEL_PYTHON_SLOWSTACK_MAX_SAMPLES"
"""Samples per span at most (default ``10``, at most ``1000``)."""

OTEL_PYTHON_SLOWSTACK_SPAN_KINDS = "OTEL_PYTHON_SLOWSTACK_SPAN_KINDS"
"""Which span kinds are watched, as local roots (default ``server,consumer``)."""

OTEL_PYTHON_SLOWSTACK_ROUTES = "OTEL_PYTHON_SLOWSTACK_ROUTES"
"""Per-route thresholds, e.g. ``/reports/*=30s,/healthz=off``."""

OTEL_PYTHON_SLOWSTACK_MAX_FRAMES = "OTEL_PYTHON_SLOWSTACK_MAX_FRAMES"
"""Frames kept per stack (default ``64``, at most ``4096``)."""

OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES = "OTEL_PYTHON_SLOWSTACK_MAX_STACK_BYTES"
"""Size of one ``code.stacktrace`` value at most (default ``2048``, from ``256`` to ``1048576``)."""

OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS = "OTEL_PYTHON_SLOWSTACK_CAPTURE_LOCALS"
"""Add local variables of application frames to samples (default ``false``)."""

OTEL_PYTHON_SLOWSTACK_REDACT = "OTEL_PYTHON_SLOWSTACK_REDACT"
"""Regex of more local variable names and dictionary keys whose values are replaced by
``[REDACTED]``, in addition to the built-in ones (``pass|secret|token|key|auth|cookie|session|credential``,
which always apply). Credentials recognised in values are redacted whatever the name."""

OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE = "OTEL_PYTHON_SLOWSTACK_N_PLUS_ONE"
"""Repeats of one normalised statement under one span that raise an N+1 event (default ``10``; ``off``)."""

OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER = "OTEL_PYTHON_SLOWSTACK_SNAPSHOT_AFTER"
"""Age at which a sample is exported at once as a snapshot span, and again at each doubling
(default ``10000`` ms; ``0`` or ``off`` disables)."""

OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER = "OTEL_PYTHON_SLOWSTACK_INTERRUPT_AFTER"
"""Raise ``SlowRequestInterrupted`` in the span's thread or task after this long (default ``off``;
``0``, ``off`` or empty mean off, as gunicorn's ``--timeout 0``; a value below the threshold is
kept, with one warning)."""

OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL = "OTEL_PYTHON_SLOWSTACK_INTERRUPT_SIGNAL"
"""The real-time signal that interrupts a request on the main thread (default ``SIGRTMIN+3``; ``off``: none)."""
