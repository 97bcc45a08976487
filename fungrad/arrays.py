"""`fungrad.Array`: the arrays fungrad returns.

JAX code calls methods NumPy arrays lack: `x.at[i].set(v)` (a functional
update) and `x.block_until_ready()`.  fungrad's results are NumPy arrays, so
they are returned as `Array`, a subclass of `numpy.ndarray` that adds exactly
those methods and is a NumPy array in every other respect: NumPy functions
accept it and keep it (`np.sin(x)`, `x + 1` and `x[1:]` are `Array`s too),
`isinstance(x, np.ndarray)` holds, and it prints like a NumPy array.

Wrapping a result is a view (`ndarray.view(Array)`): no copy, one view per
output leaf (docs/from-jax.md gives the measured cost).  numba's dispatcher types
an ndarray subclass as a plain array; `__numba_array_subtype_dispatch__ = False`
tells it so up front (without it, each call looks the attribute up and fails,
which doubles numba's dispatch time for an `Array` argument).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["Array", "as_array", "plain"]

# set by fungrad.numpy (a face above this layer): x -> the JAX `x.at` helper
_at_helper: list[Callable[[Any], Any]] = []


class Array(np.ndarray):
    """A NumPy array with JAX's `.at[...]` updates and `.block_until_ready()`.

    >>> y = fungrad.jit(lambda x: 2 * x)(np.zeros(3))
    >>> y.at[1].set(5.0)             # Array([0., 5., 0.]); y is unchanged
    >>> y.block_until_ready() is y   # True: fungrad computes synchronously
    """
    __slots__ = ()
    __numba_array_subtype_dispatch__ = False

    @property
    def at(self):
        """JAX's functional index updates: `x.at[idx].set(v)` (also add, subtract,
        multiply, divide, power, min, max, apply, get) returns a new array."""
        return _at_helper[0](self)

    def block_until_ready(self) -> "Array":
        """Returns the array itself: fungrad computes synchronously."""
        return self

    def copy_to_host_async(self) -> None:
        """Nothing to do: the array is already in host memory."""

    def __repr__(self) -> str:
        return np.ndarray.__repr__(self.view(np.ndarray))

    def __str__(self) -> str:
        return np.ndarray.__str__(self.view(np.ndarray))


_ARRAY = np.ndarray


def as_array(x: Any) -> Any:
    """A result leaf as an `Array` (a view of the same memory); non-arrays (Python
    scalars, None, tracers) are returned unchanged, NumPy scalars become 0-d Arrays."""
    t = type(x)
    if t is _ARRAY:
        return x.view(Array)
    if t is Array:
        return x
    if isinstance(x, np.generic):
        return np.asarray(x).view(Array)
    if isinstance(x, np.ndarray):
        return x.view(Array)
    return x


def plain(x: Any) -> Any:
    """`x` as a plain ndarray view when it is an `Array` (for numba), else `x`."""
    return x.view(_ARRAY) if type(x) is Array else x
