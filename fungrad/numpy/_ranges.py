"""Numerical ranges: `arange`, `linspace`, `logspace`, `meshgrid`."""
from __future__ import annotations

import builtins

import numpy as np

from .. import lax
from ..errors import FungradTypeError
from ..tracing import Tracer, aval_of, current_trace
from ._checks import dtype_value, int_value
from ._promotion import _convert, result_type
from ._coercion import _as_array, _record_constant, astype, concatenate, ravel, reshape
from ._shape import broadcast_arrays, size, swapaxes
from ._creation import zeros
from ._elementwise import add, multiply, power, subtract

__all__ = ["arange", "linspace", "logspace", "meshgrid"]


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in [start, stop) (the bounds must be concrete)."""
    for v in (start, stop, step):
        if isinstance(v, Tracer):
            raise FungradTypeError(
                "arange: the bounds must be concrete (they decide the shape); got a traced "
                "value. Use a static argument or compute the bounds outside the function.")
        if v is not None and (aval_of(v).shape != () or aval_of(v).dtype.kind not in "biuf"):
            raise FungradTypeError(f"arange: start, stop and step must be real scalars, got "
                                   f"{v!r:.40}")
    if start is None:
        raise FungradTypeError("arange: start (or stop, when given alone) is required, got None")
    dtype = None if dtype is None else dtype_value(dtype)
    value = np.arange(start, stop, step, dtype=dtype) if stop is not None or step is not None \
        else np.arange(start, dtype=dtype)
    if current_trace() is None:
        return value
    if np.issubdtype(value.dtype, np.integer) and value.size and value[0] == 0 and (
            step in (None, 1)):
        return lax.iota(value.dtype, value.shape, 0)
    return _record_constant(value)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`num` evenly spaced values from start to stop (traced bounds are allowed)."""
    aval_of(start), aval_of(stop)      # refuse strings, None, objects
    num = int_value(num, "num", minimum=0)
    axis = int_value(axis, "axis")
    dtype = None if dtype is None else dtype_value(dtype)
    if isinstance(start, Tracer) or isinstance(stop, Tracer):
        dt = np.dtype(dtype) if dtype is not None else result_type(start, stop, 1.0)
        div = (num - 1) if endpoint else num
        steps = np.arange(num, dtype=dt) / builtins.max(div, 1)
        start_, stop_ = _as_array(start), _as_array(stop)
        out = add(multiply(subtract(stop_, start_), steps), start_) if num else zeros((0,), dt)
        if endpoint and num > 1:
            out = concatenate([out[:-1], reshape(_convert(stop_, dt), (1,))])
        return (out, (stop_ - start_) / div) if retstep else out
    value = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype,
                        axis=axis)
    if retstep:
        value, step = value
    res = value if current_trace() is None else _record_constant(value)
    return (res, step) if retstep else res


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """base ** linspace(start, stop, num)."""
    exponents = linspace(start, stop, num, endpoint=endpoint, axis=axis)
    out = power(base, exponents)
    return out if dtype is None else astype(out, dtype)


def meshgrid(*xi, indexing="xy", sparse=False, copy=True):
    """Coordinate matrices from coordinate vectors (`indexing` 'xy' or 'ij')."""
    xs = [ravel(x) for x in xi]
    nd = len(xs)
    out = []
    for i, x in enumerate(xs):
        shape = [1] * nd
        shape[i] = size(x)
        out.append(reshape(x, shape))
    if indexing == "xy" and nd > 1:
        out = [swapaxes(o, 0, 1) for o in out]
    if not sparse:
        out = broadcast_arrays(*out)
    return list(out)
