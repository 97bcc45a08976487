"""Turning values into operands: `array`, `asarray`, `astype` and the coercion every
function starts with (`_as_operand`, `_as_array`, `_promote`).

`array` of a list holding traced values stacks them, and stacking coerces and
promotes its inputs in turn; so `reshape`, `ravel`, `expand_dims`, `concatenate`
and `stack` live here too, in the one module that this recursion needs.
"""
from __future__ import annotations

import numpy as np

from .. import lax
from ..errors import FungradTypeError, FungradValueError, int_overflow_error
from ..tracing import Tracer, aval_of, current_trace
from ._checks import (array_sequence, axis_index, axis_tuple_unsorted, call_site,
                      check_numeric, dtype_value)
from ._promotion import _PY_SCALARS, _convert, result_type

__all__ = ["array", "asarray", "astype", "reshape", "ravel", "expand_dims", "concatenate", "stack"]


def _as_operand(x):
    """A Tracer stays; anything else becomes an ndarray (lists stacked)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (list, tuple)):
        return array(x)
    if isinstance(x, _PY_SCALARS):
        if type(x) is int and not -2 ** 63 <= x < 2 ** 63:
            raise int_overflow_error(x)
        return x
    return check_numeric(np.asarray(x))


def _promote(*args, to_inexact=False):
    args = [_as_operand(a) for a in args]
    dt = result_type(*args)
    if to_inexact and not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    return [_convert(a, dt) for a in args]


def _as_array(x):
    x = _as_operand(x)
    return np.asarray(x) if isinstance(x, _PY_SCALARS) else x


def _record_constant(value: np.ndarray):
    """A constant made inside a trace, as a traced value (so `out[0] = ...` works)."""
    if value.size and np.all(value == value.flat[0]):
        return lax.full(value.shape, value.flat[0], value.dtype)
    return current_trace().constant_tracer(value)


def array(object, dtype=None, copy=True, ndmin=0):
    """An array from data; lists/tuples containing traced values are stacked."""
    if isinstance(object, Tracer):
        out = object if dtype is None else _convert(object, dtype)
    elif isinstance(object, (list, tuple)) and _contains_tracer(object):
        items = [array(o) for o in object]
        dt = np.dtype(dtype) if dtype is not None else result_type(*items)
        out = stack([_convert(i, dt) for i in items]) if items else np.zeros((0,), dt)
    else:
        value = np.array(object, dtype=dtype)
        # (`object` is NumPy's name for the argument, so the dtype check reads the kind)
        if value.dtype.kind not in "biufc":
            raise FungradTypeError(
                f"array: could not convert a {type(object).__name__} to a numeric array "
                f"(NumPy made dtype {value.dtype}); fungrad arrays hold bool, integer, "
                "float or complex numbers")
        out = value if current_trace() is None else _record_constant(value)
    while ndmin and aval_of(out).ndim < ndmin:
        out = expand_dims(out, 0)
    return out


def _contains_tracer(seq) -> bool:
    for o in seq:
        if isinstance(o, Tracer):
            return True
        if isinstance(o, (list, tuple)) and _contains_tracer(o):
            return True
    return False


def asarray(a, dtype=None, copy=None):
    """`a` as an array: tracers stay tracers; other values become NumPy arrays."""
    if isinstance(a, Tracer):
        return a if dtype is None else _convert(a, dtype)
    if isinstance(a, (list, tuple)) and _contains_tracer(a):
        return array(a, dtype)
    value = np.asarray(a, dtype=dtype)
    if value.dtype.kind not in "biufc":
        check_numeric(value, f"asarray's argument ({type(a).__name__})")
    return value


def astype(x, dtype):
    """x converted to `dtype`."""
    return _convert(_as_array(x), dtype_value(dtype))


def reshape(a, newshape=None, order="C", *, shape=None):
    """a with a new shape (one dimension may be -1); C order only."""
    if order != "C":
        raise FungradValueError("reshape: only order='C' is supported")
    newshape = shape if newshape is None else newshape
    x = _as_array(a)
    aval = aval_of(x)
    if isinstance(newshape, (int, np.integer)):
        newshape = (newshape,)
    newshape = [int(d) for d in newshape]
    if newshape.count(-1) > 1:
        raise FungradValueError("reshape: can only specify one unknown dimension")
    if -1 in newshape:
        known = int(np.prod([d for d in newshape if d != -1], dtype=np.int64))
        if known == 0 or aval.size % known:
            raise FungradValueError(f"cannot reshape array of size {aval.size} into shape "
                                    f"{tuple(newshape)}")
        newshape[newshape.index(-1)] = aval.size // known
    if int(np.prod(newshape, dtype=np.int64)) != aval.size:
        raise FungradValueError(f"cannot reshape array of size {aval.size} into shape "
                                f"{tuple(newshape)}")
    return lax.reshape(x, newshape)


def ravel(a, order="C"):
    """a flattened to 1-D (C order)."""
    return reshape(a, (-1,), order)


def expand_dims(a, axis):
    """a with new length-1 axes at the positions `axis`."""
    x = _as_array(a)
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = axis_tuple_unsorted(axis, aval_of(x).ndim + n_new)
    return lax.expand_dims(x, list(axes))


def concatenate(arrays, axis=0, dtype=None):
    """Join arrays along an existing axis (flattened when axis is None)."""
    arrays = [_as_array(a) for a in array_sequence(arrays)]
    if not arrays:
        raise FungradValueError("need at least one array to concatenate")
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    arrays = _promote(*arrays) if dtype is None else [_convert(a, dtype) for a in arrays]
    nd = aval_of(arrays[0]).ndim
    if nd == 0:
        raise FungradValueError("zero-dimensional arrays cannot be concatenated")
    ax = axis_index(axis, nd)
    shapes = [aval_of(a).shape for a in arrays]
    for sh in shapes[1:]:
        if len(sh) != nd or sh[:ax] + sh[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]:
            name, where = call_site()
            raise FungradValueError(
                f"{name}: all the input arrays must have the same shape except along axis "
                f"{ax}, got shapes {shapes}, at {where}")
    return lax.concatenate(arrays, ax)


def stack(arrays, axis=0, dtype=None):
    """Join same-shaped arrays along a new axis."""
    arrays = [_as_array(a) for a in array_sequence(arrays)]
    if not arrays:
        raise FungradValueError("need at least one array to stack")
    shapes = {aval_of(a).shape for a in arrays}
    if len(shapes) != 1:
        raise FungradValueError("all input arrays must have the same shape")
    ax = axis_index(axis, aval_of(arrays[0]).ndim + 1)
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax, dtype=dtype)
