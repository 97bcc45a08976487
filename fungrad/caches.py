"""One registry of every in-process cache, with one eviction policy.

Each cache is a `Cache`: a dict bounded by `maxsize` whose `put` drops the
oldest entry (insertion order) when it is full, so a hit stays one dict lookup
on the hot paths (avals of arrays, the frames of fungrad's own code, kernels by
program structure).  A cache that is not a dict (a weak map, an `lru_cache`)
registers the function that clears it.  `clear_caches()` (also
`fungrad.clear_caches`) empties them all; the on-disk kernel cache stays.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Cache", "new_cache", "register", "clear_caches", "cache_sizes"]


class Cache(dict):
    """A bounded dict: `put` evicts the oldest entry once `maxsize` are held."""
    __slots__ = ("name", "maxsize")

    def __init__(self, name: str, maxsize: int):
        super().__init__()
        self.name, self.maxsize = name, maxsize

    def put(self, key: Any, value: Any) -> Any:
        """Store `value` under `key` (evicting the oldest entry when full); returns it."""
        if len(self) >= self.maxsize and key not in self:
            del self[next(iter(self))]
        self[key] = value
        return value

    def __repr__(self) -> str:
        return f"Cache({self.name!r}, {len(self)}/{self.maxsize})"


_clearers: dict[str, Callable[[], None]] = {}
_sizes: dict[str, Callable[[], int]] = {}


def new_cache(name: str, maxsize: int) -> Cache:
    """A new `Cache`, registered under `name` (one name, one cache)."""
    cache = Cache(name, maxsize)
    register(name, cache.clear, cache.__len__)
    return cache


def register(name: str, clear: Callable[[], None],
             size: Callable[[], int] | None = None) -> None:
    """Register a cache that is not a `Cache` by the function that empties it."""
    if name in _clearers:
        raise ValueError(f"a cache named {name!r} is registered already")
    _clearers[name] = clear
    if size is not None:
        _sizes[name] = size


def clear_caches() -> None:
    """Empty every in-process cache of fungrad: interned avals, rewrites, traces of
    jitted functions' helpers, call counts and compiled kernels (the on-disk kernel
    cache stays; delete FUNGRAD_CACHE_DIR for that)."""
    for clear in _clearers.values():
        clear()


def cache_sizes() -> dict[str, int]:
    """How many entries each registered cache holds (for tests and inspection)."""
    return {name: size() for name, size in _sizes.items()}
