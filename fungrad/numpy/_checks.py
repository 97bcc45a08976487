"""Argument checks at the boundary of fungrad.numpy: axes, permutations, operands.

A bad argument raises one of fungrad's errors (which derive from the builtin, or
from NumPy's `AxisError`, that NumPy itself raises) naming the function, the
argument, the user's line and the fix; it never reaches a primitive or NumPy's
internals, and is never silently reinterpreted (an axis taken modulo ndim, a
repeated axis dropped).
"""
from __future__ import annotations

import operator

import numpy as np

from ..errors import FungradError, FungradTypeError, FungradValueError
from ..primitives._static import api_call_site

__all__ = ["FungradAxisError", "call_site", "axis_index", "axis_tuple", "permutation", "axis_tuple_unsorted",
           "int_value", "shape_tuple", "dtype_value", "array_sequence", "int_sequence",
           "check_numeric"]


class FungradAxisError(FungradError, np.exceptions.AxisError):
    """An axis out of range: NumPy's AxisError (a ValueError and an IndexError)."""

    def __init__(self, msg: str):
        # AxisError(msg) with one argument keeps msg as the message
        np.exceptions.AxisError.__init__(self, msg)


def call_site() -> tuple[str, str]:
    """(name of the fungrad function the user called, "file:line (in f)" of the call)."""
    return api_call_site(2, "fungrad.numpy")


def _int_arg(value, what: str) -> int:
    """`value` as a Python int, or a type error naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not _is_integer_like(value):
        name, where = call_site()
        raise FungradTypeError(
            f"{name}: {what} must be an int (or a tuple of ints), got {value!r} of type "
            f"{type(value).__name__}, at {where}.\n  Pass an integer such as 0 or -1.")
    return operator.index(value)


def _is_integer_like(value) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def axis_index(axis, ndim: int, what: str = "axis") -> int:
    """One axis in [-ndim, ndim) as a non-negative int."""
    a = _int_arg(axis, what)
    if not -ndim <= a < ndim:
        name, where = call_site()
        raise FungradAxisError(
            f"{name}: {what} {a} is out of bounds for an array of dimension {ndim}, at "
            f"{where}.\n  Valid axes are {-ndim}..{ndim - 1}." if ndim else
            f"{name}: {what} {a} is out of bounds for a 0-d array, at {where}.")
    return a % ndim


def axis_tuple(axis, ndim: int, what: str = "axis") -> tuple[int, ...]:
    """None (every axis), one axis or a sequence of distinct axes, as sorted ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = [axis_index(a, ndim, what) for a in axis]
    else:
        axes = [axis_index(axis, ndim, what)]
    if len(set(axes)) != len(axes):
        name, where = call_site()
        raise FungradValueError(
            f"{name}: duplicate value in '{what}': {axis!r}, at {where}.\n  Name each axis "
            "once.")
    return tuple(sorted(axes))


def axis_tuple_unsorted(axis, ndim: int, what: str = "axis") -> tuple[int, ...]:
    """One axis or a sequence of distinct axes, in the order given (moveaxis)."""
    axes = [axis_index(a, ndim, what) for a in
            (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        name, where = call_site()
        raise FungradValueError(f"{name}: duplicate value in '{what}': {axis!r}, at {where}")
    return tuple(axes)


def permutation(axes, ndim: int, what: str = "axes") -> tuple[int, ...]:
    """A permutation of range(ndim) (negative entries allowed), e.g. transpose's axes."""
    if not isinstance(axes, (tuple, list)):
        name, where = call_site()
        raise FungradTypeError(f"{name}: {what} must be a tuple of ints, got {axes!r}, at "
                               f"{where}")
    perm = tuple(axis_index(a, ndim, what) for a in axes)
    if sorted(perm) != list(range(ndim)):
        name, where = call_site()
        raise FungradValueError(
            f"{name}: {what}={tuple(axes)!r} is not a permutation of the {ndim} axes of the "
            f"array, at {where}.\n  Give each of 0..{ndim - 1} exactly once.")
    return perm


def check_numeric(x, what: str = "an argument"):
    """Refuse strings, objects and other values that are not numeric arrays."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "biufc":
        name, where = call_site()
        raise FungradTypeError(
            f"{name}: {what} has dtype {dtype}, which is not numeric, at {where}.\n  "
            "fungrad arrays hold bool, integer, float or complex numbers.")
    return x


def int_value(value, what: str, minimum: int | None = None) -> int:
    """A Python int argument (a count, a size, a diagonal offset)."""
    v = _int_arg(value, what)
    if v >= 2 ** 63:
        name, where = call_site()
        raise FungradValueError(f"{name}: {what} {v} is too large (beyond int64), at {where}.")
    if minimum is not None and v < minimum:
        name, where = call_site()
        raise FungradValueError(f"{name}: {what} must be >= {minimum}, got {v}, at {where}.")
    return v


def shape_tuple(shape, what: str = "shape") -> tuple[int, ...]:
    """An int or a sequence of ints >= 0, as a tuple (NumPy's `shape` argument)."""
    if isinstance(shape, (tuple, list)):
        dims = tuple(_int_arg(s, what) for s in shape)
    elif isinstance(shape, np.ndarray) and shape.ndim == 1 and shape.dtype.kind in "iu":
        dims = tuple(shape.tolist())
    else:
        dims = (_int_arg(shape, what),)
    if any(d >= 2 ** 63 for d in dims):
        name, where = call_site()
        raise FungradValueError(f"{name}: {what} {dims} has a dimension beyond int64, at "
                                f"{where}.")
    if any(d < 0 for d in dims):
        name, where = call_site()
        raise FungradValueError(f"{name}: negative dimensions are not allowed in {what} "
                                f"{dims}, at {where}.")
    return dims


def dtype_value(dtype, what: str = "dtype") -> np.dtype:
    """A numeric dtype from a dtype, a scalar type or a name."""
    if not isinstance(dtype, np.ndarray) and dtype is not None:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            dt = None
        if dt is not None and dt.kind in "biufc":
            return dt
    name, where = call_site()
    raise FungradTypeError(
        f"{name}: {what} must be a numeric dtype, got {dtype!r:.40} of type "
        f"{type(dtype).__name__}, at {where}.\n  Pass e.g. fungrad.numpy.float32 or 'int64'.")


def array_sequence(arrays, what: str = "arrays") -> list:
    """A list or tuple of arrays (concatenate, stack, select's lists)."""
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    if isinstance(arrays, np.ndarray) and arrays.ndim >= 1 and arrays.dtype.kind in "biufc":
        return list(arrays)
    name, where = call_site()
    raise FungradTypeError(
        f"{name}: {what} must be a sequence (list or tuple) of arrays, got "
        f"{type(arrays).__name__}, at {where}.")


def int_sequence(value, what: str) -> tuple[int, ...]:
    """One int or a sequence (or 1-d integer array) of ints, as a tuple."""
    if isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "iub":
        out = tuple(int(v) for v in value.reshape(-1).tolist())
    elif isinstance(value, (tuple, list)):
        out = tuple(_int_arg(v, what) for v in value)
    else:
        out = (_int_arg(value, what),)
    if any(not -2 ** 63 <= v < 2 ** 63 for v in out):
        name, where = call_site()
        raise FungradValueError(f"{name}: {what} {out} has an entry beyond int64, at {where}.")
    return out
