"""A bounded least-recently-used cache: memory that stays put, whatever the traffic.

Why not ``functools.lru_cache``: its keys are hashed by value, and hashing a
code object walks its constants and names (microseconds), where the caches
here key by identity (``id(code)``) and keep the object itself in the value,
so an id is never reused while its entry lives.

Touched by any thread (the watchdog samples, request threads count calls)
without a lock: each step is one dict operation, atomic under the GIL and
on free-threaded builds alike. Two threads racing on one key at worst both
compute the value; an entry evicted by one while another reads it is a miss.
"""

from __future__ import annotations

from typing import Any, Generic, Hashable, Optional, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """At most ``maxsize`` entries; ``get`` refreshes, ``put`` evicts the stalest."""

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self._data: dict = {}
        self.maxsize = maxsize

    def get(self, key: Hashable, default: Any = None) -> Optional[V]:
        data = self._data
        try:
            value = data.pop(key)
        except KeyError:
            return default
        data[key] = value  # back at the end: most recently used
        return value

    def put(self, key: Hashable, value: V) -> None:
        data = self._data
        data[key] = value
        while len(data) > self.maxsize:
            try:  # a dict iterates in insertion order: the first key is the stalest
                del data[next(iter(data))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
