"""Per-route thresholds: ``OTEL_PYTHON_SLOWSTACK_ROUTES=/reports/*=30s,/healthz=off``.

A pattern is matched against the span's ``http.route``, else its URL path,
else its name; ``*`` matches any run of characters, ``/`` included. The
first matching rule wins. Everything here is pure, so it is tested without
spans or threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

#: Route keys are cached after their first match; URL paths are unbounded,
#: so the cache is cleared when it reaches this size.
_CACHE_SIZE = 2048


@dataclass(frozen=True)
class RouteRule:
    """One ``PATTERN=DURATION`` entry; ``threshold_ns`` None means ``off``."""

    pattern: str
    threshold_ns: Optional[int]
    regex: "re.Pattern[str]" = field(compare=False, repr=False)

    @classmethod
    def of(cls, pattern: str, threshold_ns: Optional[int]) -> "RouteRule":
        body = ".*".join(re.escape(part) for part in pattern.split("*"))
        return cls(pattern, threshold_ns, re.compile(body + r"\Z", re.DOTALL))


def route_key(attributes: Optional[Mapping[str, Any]], name: str) -> str:
    """What a route pattern is matched against, per the contract's order."""
    if attributes:
        route = attributes.get("http.route")
        if isinstance(route, str) and route:
            return route
        path = attributes.get("url.path")
        if isinstance(path, str) and path:
            return path
        target = attributes.get("http.target")
        if isinstance(target, str) and target:
            return target.split("?", 1)[0]
        url = attributes.get("url.full") or attributes.get("http.url")
        if isinstance(url, str) and "://" in url:
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            return rest[slash:].split("?", 1)[0] if slash >= 0 else "/"
    return name


class RouteTable:
    """Matches route keys to thresholds, caching each key's answer."""

    __slots__ = ("rules", "_cache")

    _NO_MATCH = object()

    def __init__(self, rules: tuple[RouteRule, ...]) -> None:
        self.rules = rules
        self._cache: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def lookup(self, key: str) -> Optional[RouteRule]:
        """The first rule matching ``key``, or None."""
        hit = self._cache.get(key, None)
        if hit is None:
            hit = self._NO_MATCH
            for rule in self.rules:
                if rule.regex.match(key):
                    hit = rule
                    break
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = hit
        return None if hit is self._NO_MATCH else hit
