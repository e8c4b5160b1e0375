"""What tests read from finished spans: samples, stacks, and predicates.

Every helper takes a span in either form a test holds: an SDK
``ReadableSpan`` (in-process tests, ``support.sdk``) or the dict the OTLP
receiver decoded (``support.otlp_receiver``: what a backend saw). Pure: no
import beyond the standard library, so unit tests can use it without the
test extra.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator


def _events(span: Any) -> Iterator[tuple]:
    if isinstance(span, dict):
        return ((e["name"], e["attributes"]) for e in span["events"])
    return ((e.name, e.attributes) for e in span.events)


def samples(span: Any, name: str = "slowstack.sample") -> list:
    """The attributes of each ``name`` event of ``span`` (by default its samples), as dicts."""
    return [dict(attributes) for event, attributes in _events(span) if event == name]


def stacks(span: Any) -> list:
    """The ``code.stacktrace`` of each sample of ``span``."""
    return [sample["code.stacktrace"] for sample in samples(span)]


def innermost(stack: str, count: int = 1) -> list:
    """The names of the ``count`` innermost frames, innermost last."""
    return [line.rsplit(" in ", 1)[1] for line in stack.splitlines() if line.startswith("  File ")][-count:]


def server_span(path: str) -> Callable[[dict], bool]:
    """Predicate on received spans: the SERVER span of a request to ``path``."""

    def match(span: dict) -> bool:
        attrs = span["attributes"]
        target = attrs.get("http.target") or attrs.get("url.path") or attrs.get("http.route") or ""
        return span["kind"] == "server" and (target.split("?")[0] == path or span["name"].endswith(" " + path))

    return match


def request_to(target: str) -> Callable[[dict], bool]:
    """Predicate on received spans: the SERVER span of the request to ``target`` (path and query)."""

    def match(span: dict) -> bool:
        attributes = span["attributes"]
        url = attributes.get("http.url") or attributes.get("url.full") or ""
        return span["kind"] == "server" and (url.endswith(target) or attributes.get("http.target") == target)

    return match


def assert_interrupted(span: dict, where: list) -> None:
    """``span`` (as received) was ended by ``SlowRequestInterrupted``, its last sample taken in ``where``."""
    assert span["status"] == "error"
    last = samples(span)[-1]
    assert last["slowstack.trigger"] == "interrupt"
    assert innermost(last["code.stacktrace"], len(where)) == where
    raised = samples(span, "exception")
    assert raised and raised[0]["exception.type"].endswith("SlowRequestInterrupted"), span["events"]
