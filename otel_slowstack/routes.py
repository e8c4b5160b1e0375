"""Per-route thresholds: ``OTEL_PYTHON_SLOWSTACK_ROUTES=/reports/*=30s,/healthz=off``.

A pattern is matched against the span's ``http.route``, else its URL path,
else its name (``conventions.route_key``, which the report groups requests
by too); ``*`` matches any run of characters, ``/`` included. The first
matching rule wins. Everything here is pure, so it is tested without spans
or threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from otel_slowstack.lru import LRU

#: Route keys are cached after their first match; URL paths are unbounded,
#: so the cache is cleared when it reaches this size.
_CACHE_SIZE = 2048


@dataclass(frozen=True)
class RouteRule:
    """One ``PATTERN=DURATION`` entry; ``threshold_ns`` None means ``off``."""

    pattern: str
    threshold_ns: Optional[int]
    parts: tuple = field(compare=False, repr=False)

    @classmethod
    def of(cls, pattern: str, threshold_ns: Optional[int]) -> "RouteRule":
        return cls(pattern, threshold_ns, tuple(pattern.split("*")))

    def matches(self, key: str) -> bool:
        """Glob match in linear time, whatever the pattern and the key.

        No regular expression: ``.*`` runs backtrack, and a pattern such as
        ``/*a*a*a*a*b`` against a 400-character path (which an attacker
        chooses) took 45 s. With only ``*`` as a wildcard, taking each middle
        part at its leftmost place is always right.
        """
        parts = self.parts
        if len(parts) == 1:
            return key == parts[0]
        first, last = parts[0], parts[-1]
        if len(key) < len(first) + len(last) or not key.startswith(first) or not key.endswith(last):
            return False
        at, end = len(first), len(key) - len(last)
        for part in parts[1:-1]:
            found = key.find(part, at, end)
            if found < 0:
                return False
            at = found + len(part)
        return True


class RouteTable:
    """Matches route keys to thresholds, caching each key's answer."""

    __slots__ = ("rules", "_cache")

    _NO_MATCH = object()

    def __init__(self, rules: tuple[RouteRule, ...]) -> None:
        self.rules = rules
        #: Route keys are as many as the application has routes, or (unrouted
        #: URL paths) as many as attackers invent: bounded, stalest out first.
        self._cache: LRU[Any] = LRU(_CACHE_SIZE)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def lookup(self, key: str) -> Optional[RouteRule]:
        """The first rule matching ``key``, or None."""
        hit = self._cache.get(key, None)
        if hit is None:
            hit = self._NO_MATCH
            for rule in self.rules:
                if rule.matches(key):
                    hit = rule
                    break
            self._cache.put(key, hit)
        return None if hit is self._NO_MATCH else hit
