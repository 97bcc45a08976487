"""Constructors: `full`, `zeros`, `ones`, `empty`, their `*_like` forms, `eye`, `identity`.

Inside a trace a constant becomes a traced value (so `out[0] = ...` works).
"""
from __future__ import annotations

import numpy as np

from .. import lax
from ..tracing import Tracer, aval_of, current_trace
from ._checks import dtype_value, int_value, shape_tuple
from ._promotion import _convert, result_type
from ._coercion import _as_array, _record_constant
from ._shape import broadcast_to

__all__ = ["full", "zeros", "ones", "empty", "full_like", "zeros_like", "ones_like", "empty_like",
           "eye", "identity"]


def _default_dtype(dtype, value=None):
    if dtype is not None:
        return np.dtype(dtype)
    if value is None:
        return np.dtype(np.float64)
    return result_type(value) if not isinstance(value, float) else np.dtype(np.float64)


def full(shape, fill_value, dtype=None):
    """An array of `shape` filled with `fill_value` (traced inside a trace)."""
    shape = shape_tuple(shape)
    dtype = None if dtype is None else dtype_value(dtype)
    if not isinstance(fill_value, Tracer):
        aval_of(fill_value)      # refuses a string, None, an object, an int beyond int64
    if isinstance(fill_value, Tracer):
        dt = np.dtype(dtype) if dtype is not None else fill_value.dtype
        return broadcast_to(_convert(fill_value, dt), shape)
    dt = np.dtype(dtype) if dtype is not None else (
        np.dtype(np.float64) if isinstance(fill_value, float) else result_type(fill_value))
    if current_trace() is None:
        return np.full(shape, fill_value, dtype=dt)
    fv = np.asarray(fill_value, dtype=dt)
    if fv.ndim:
        return broadcast_to(_record_constant(fv), shape)
    return lax.full(shape, fv[()], dt)


def zeros(shape, dtype=None):
    """An array of zeros (float64 unless `dtype` is given)."""
    return full(shape, 0, dtype if dtype is not None else np.float64)


def ones(shape, dtype=None):
    """An array of ones (float64 unless `dtype` is given)."""
    return full(shape, 1, dtype if dtype is not None else np.float64)


def empty(shape, dtype=None):
    """Like zeros (fungrad arrays are never uninitialised)."""
    return zeros(shape, dtype)


def full_like(a, fill_value, dtype=None, shape=None):
    """An array of a's shape and dtype (or the given ones) filled with a value."""
    aval = aval_of(_as_array(a))
    return full(aval.shape if shape is None else shape, fill_value,
                aval.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, shape=None):
    """Zeros with a's shape and dtype."""
    return full_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, shape=None):
    """Ones with a's shape and dtype."""
    return full_like(a, 1, dtype, shape)


def empty_like(a, dtype=None, shape=None):
    """Like zeros_like."""
    return zeros_like(a, dtype, shape)


def eye(N, M=None, k=0, dtype=None):
    """A 2-D array with ones on the k-th diagonal and zeros elsewhere."""
    N = int_value(N, "N", minimum=0)
    M = None if M is None else int_value(M, "M", minimum=0)
    k = int_value(k, "k")
    value = np.eye(N, M, k, dtype=dtype_value(dtype) if dtype is not None else np.float64)
    return value if current_trace() is None else _record_constant(value)


def identity(n, dtype=None):
    """The n x n identity matrix."""
    return eye(n, dtype=dtype)
