"""Every name otel-slowstack writes or reads on spans, and how it reads OpenTelemetry's.

Why one module: the writer (``sample.py``, ``counters.py``, ``snapshot.py``,
``processor.py``, ``lifecycle/``) and the report (``report/``) are two ends
of one wire format. Dashboards and queries rely on the ``slowstack.*`` names
(CONTRACT.md fixes them), and the report can only read what the writer
wrote; when both spell a name from here they cannot drift apart.

Three groups:

- ``slowstack.*`` event, span and attribute names, and the values of
  ``slowstack.trigger``;
- the OpenTelemetry semantic-convention keys we read or write, each newer
  key beside the older one it replaced (instrumentations in the wild emit
  either, and some both);
- small pure lookups over those keys: what kind of client call a span is
  (``call_kind``), the statement a database span ran, the method and host
  of an HTTP call, the name a request goes by (``route_key``,
  ``route_label``), and the ``slowstack.subject*`` attributes a snapshot
  span carries (written by ``subject_attributes``, read back by
  ``subject_route``).

Everything here is constants and pure functions of plain mappings: no
state, no thread, nothing imported but the standard library, so the report
command and the hot path can both import it for nothing.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

# -- what otel-slowstack writes ------------------------------------------------

#: The event on a watched span (and on a snapshot span), one per sample.
SAMPLE_EVENT = "slowstack.sample"
#: The event on a watched span that ran one statement too many times.
N_PLUS_ONE_EVENT = "slowstack.n_plus_one"
#: The span a snapshot sample travels in, a child of the watched span.
SNAPSHOT_SPAN = "slowstack.snapshot"

# Attributes of a ``slowstack.sample`` event.
SAMPLE_INDEX = "slowstack.sample.index"
ELAPSED_MS = "slowstack.elapsed_ms"
TRIGGER = "slowstack.trigger"
CPU_RATIO = "slowstack.cpu_ratio"
IN_FLIGHT = "slowstack.in_flight"
LOOP_BLOCKED_BY = "slowstack.loop_blocked_by"
#: On an ``interrupt`` sample whose interrupt was not sent: why not.
INTERRUPT_WITHHELD = "slowstack.interrupt.withheld"

# Client calls counted under a watched span: on its samples, and on the span
# itself as it ends.
DB_COUNT = "slowstack.db.count"
DB_DURATION_MS = "slowstack.db.duration_ms"
HTTP_COUNT = "slowstack.http.count"
HTTP_DURATION_MS = "slowstack.http.duration_ms"

#: On a watched span that was sampled: how many samples it got.
SAMPLES = "slowstack.samples"
#: On a ``slowstack.n_plus_one`` event: the run of the statement that raised it.
REPEAT_COUNT = "slowstack.repeat.count"

#: On a snapshot span: the name of the span it sampled; the attributes that
#: span is grouped by follow, under ``SUBJECT_PREFIX``.
SUBJECT = "slowstack.subject"
SUBJECT_PREFIX = SUBJECT + "."

# The values of ``slowstack.trigger``: why a sample was taken.
TRIGGER_THRESHOLD = "threshold"
TRIGGER_INTERVAL = "interval"
TRIGGER_SNAPSHOT = "snapshot"
TRIGGER_SIGNAL = "signal"
TRIGGER_INTERRUPT = "interrupt"
TRIGGER_SHUTDOWN = "shutdown"
TRIGGERS = (TRIGGER_THRESHOLD, TRIGGER_INTERVAL, TRIGGER_SNAPSHOT, TRIGGER_SIGNAL, TRIGGER_INTERRUPT, TRIGGER_SHUTDOWN)

#: The value of ``slowstack.interrupt.withheld``: the span was started with
#: ``start_span`` outside a ``with`` block on its thread, so nothing tells
#: where its code ends (a hand-off to another thread).
WITHHELD_UNSCOPED = "unscoped"

# -- OpenTelemetry semantic conventions ------------------------------------------
# Where a key was renamed, the older name follows the newer one.

#: A resource attribute: the report names each span's service by it.
SERVICE_NAME = "service.name"
CODE_STACKTRACE = "code.stacktrace"
THREAD_ID = "thread.id"
THREAD_NAME = "thread.name"

DB_SYSTEM_NAME = "db.system.name"
DB_SYSTEM = "db.system"
DB_QUERY_TEXT = "db.query.text"
DB_STATEMENT = "db.statement"

HTTP_REQUEST_METHOD = "http.request.method"
HTTP_METHOD = "http.method"
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
HTTP_TARGET = "http.target"
URL_FULL = "url.full"
HTTP_URL = "http.url"
SERVER_ADDRESS = "server.address"
NET_PEER_NAME = "net.peer.name"

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_DESTINATION = "messaging.destination"

#: Set by opentelemetry-instrumentation-celery, once the task is over.
CELERY_TASK_NAME = "celery.task_name"
#: That instrumentation's scope, and the prefix of its task spans' names
#: (``run/<task name>``), which name the task while it still runs.
CELERY_SCOPE = "opentelemetry.instrumentation.celery"
CELERY_RUN_PREFIX = "run/"

# -- what kind of client call a span is ---------------------------------------------

#: ``call_kind`` answers: a database client call, an HTTP client call.
DB = "db"
HTTP = "http"


def call_kind(attributes: Optional[Mapping[str, Any]]) -> Optional[str]:
    """``DB``, ``HTTP`` or None: what a CLIENT span with these attributes calls.

    A database span names its system (``db.system.name``, formerly
    ``db.system``); an HTTP client span its method (``http.request.method``,
    formerly ``http.method``). The database test comes first: a span that
    carries both is a database call made over HTTP. Only CLIENT spans are
    calls; the caller checks the kind (the hot path has it at hand already).

    ``counters.child_ended`` spells out these same four ``in`` tests instead
    of calling this: it runs for every client span a request ends.
    ``tests/test_conventions.py`` holds the two to the same answers.
    """
    if not attributes:
        return None
    if DB_SYSTEM_NAME in attributes or DB_SYSTEM in attributes:
        return DB
    if HTTP_REQUEST_METHOD in attributes or HTTP_METHOD in attributes:
        return HTTP
    return None


def statement_text(attributes: Mapping[str, Any]) -> Optional[str]:
    """The statement a database span ran, under either convention's key; None if none."""
    text = attributes.get(DB_QUERY_TEXT) or attributes.get(DB_STATEMENT)
    return text if isinstance(text, str) and text else None


def request_method(attributes: Mapping[str, Any]) -> Optional[str]:
    """The HTTP method of a request or call (``GET``), under either key; None if none."""
    for key in (HTTP_REQUEST_METHOD, HTTP_METHOD):
        value = attributes.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else None
    return None


def peer_host(attributes: Mapping[str, Any]) -> Optional[str]:
    """The host an HTTP client call went to: ``server.address``, else the URL's."""
    host = attributes.get(SERVER_ADDRESS) or attributes.get(NET_PEER_NAME)
    if host:
        return str(host)
    url = attributes.get(URL_FULL) or attributes.get(HTTP_URL)
    return urlsplit(url).hostname if isinstance(url, str) else None


# -- the name a request goes by -------------------------------------------------------


def route_key(attributes: Optional[Mapping[str, Any]], name: str) -> str:
    """What a request is grouped and matched by: ``http.route``, else the URL
    path (never a query string), else the span's name.

    Per-route thresholds (``OTEL_PYTHON_SLOWSTACK_ROUTES``) match it, and the
    report groups requests by it: the contract names this order.
    """
    if attributes:
        route = attributes.get(HTTP_ROUTE)
        if isinstance(route, str) and route:
            return route
        path = attributes.get(URL_PATH)
        if isinstance(path, str) and path:
            return path
        target = attributes.get(HTTP_TARGET)
        if isinstance(target, str) and target:
            return target.split("?", 1)[0]
        url = attributes.get(URL_FULL) or attributes.get(HTTP_URL)
        if isinstance(url, str) and "://" in url:
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            return rest[slash:].split("?", 1)[0] if slash >= 0 else "/"
    return name


def route_label(attributes: Optional[Mapping[str, Any]], name: str) -> str:
    """``GET /orders/{id}``: the method before ``route_key``, unless the key is the span's name."""
    key = route_key(attributes, name)
    if key == name or not attributes:
        return key
    method = request_method(attributes)
    if method and not key.startswith(method + " "):
        return f"{method} {key}"
    return key


#: What a snapshot span copies from the span it sampled (under
#: ``SUBJECT_PREFIX``), each with the older keys it is also read from: what a
#: user groups requests and tasks by, after a kill has lost the span itself.
SUBJECT_KEYS = (
    (HTTP_ROUTE, ()),
    (HTTP_REQUEST_METHOD, (HTTP_METHOD,)),
    (URL_PATH, (HTTP_TARGET,)),
    (MESSAGING_SYSTEM, ()),
    (MESSAGING_DESTINATION_NAME, (MESSAGING_DESTINATION,)),
    (CELERY_TASK_NAME, ()),
)


def subject_attributes(name: str, attributes: Optional[Mapping[str, Any]], scope: Optional[str] = None) -> dict:
    """The ``slowstack.subject*`` attributes of a snapshot of the span ``name``.

    ``scope`` is the name of the span's instrumentation scope: a Celery task
    span is named after its task before ``celery.task_name`` is set.
    Prefixed, so that span metrics and queries by ``http.route`` never count
    a snapshot as a request.
    """
    found: dict = {SUBJECT: name}
    attributes = attributes or {}
    for key, older in SUBJECT_KEYS:
        value = attributes.get(key)
        for alias in older:
            if value is not None:
                break
            value = attributes.get(alias)
        if value is None:
            continue
        if key == URL_PATH:
            if HTTP_ROUTE in attributes:
                continue  # the route says it, without ids in it
            value = str(value).split("?", 1)[0]  # never a query string
        found[SUBJECT_PREFIX + key] = value
    task_key = SUBJECT_PREFIX + CELERY_TASK_NAME
    if task_key not in found and scope == CELERY_SCOPE and name.startswith(CELERY_RUN_PREFIX):
        found[task_key] = name[len(CELERY_RUN_PREFIX):]
        found.setdefault(SUBJECT_PREFIX + MESSAGING_SYSTEM, "celery")
    return found


def subject_route(attributes: Mapping[str, Any]) -> Optional[str]:
    """The route of the request a snapshot span sampled, read back from its
    ``slowstack.subject*`` attributes; None when it does not say (older data).

    A Celery task goes by its task name, a request by ``route_label``, a
    message by its destination.
    """
    subject = {
        key[len(SUBJECT_PREFIX):]: value
        for key, value in attributes.items()
        if key.startswith(SUBJECT_PREFIX) and isinstance(value, str) and value
    }
    name = attributes.get(SUBJECT)
    name = name if isinstance(name, str) and name else None
    task = subject.get(CELERY_TASK_NAME)
    if task and HTTP_ROUTE not in subject and URL_PATH not in subject:
        return task
    if not subject and not name:
        return None
    route = route_label(subject, name or "")
    if route:
        return route
    return subject.get(MESSAGING_DESTINATION_NAME) or None
