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

from collections import OrderedDict
from typing import Any, Generic, Hashable, Optional, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """At most ``maxsize`` entries; ``get`` refreshes, ``put`` evicts the stalest."""

    __slots__ = ("data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        #: Stalest first. A caller in a hot loop may use ``data.get`` and
        #: ``data.move_to_end`` (both C) directly, as ``get`` does.
        self.data: OrderedDict = OrderedDict()
        self.maxsize = maxsize

    def get(self, key: Hashable, default: Any = None) -> Optional[V]:
        data = self.data
        value = data.get(key, default)
        if value is not default:
            try:
                data.move_to_end(key)  # most recently used
            except KeyError:  # evicted by another thread meanwhile
                pass
        return value

    def put(self, key: Hashable, value: V) -> None:
        data = self.data
        data[key] = value
        data.move_to_end(key)
        while len(data) > self.maxsize:
            try:
                data.popitem(last=False)
            except KeyError:  # another thread emptied it first
                break

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)
