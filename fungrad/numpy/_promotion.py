"""dtypes, weak Python scalars, promotion and broadcasting (NumPy 2's rules).

Python scalars are weak (`float32_array * 2.0` stays float32) and float64 is the
default float. Primitives are strict, so the functions here insert explicit
`convert_element_type` and `broadcast_to` equations.
"""
from __future__ import annotations

import numpy as np

# dtypes and constants, as in numpy
from numpy import (bool_, complex64, complex128, dtype, e, euler_gamma, finfo, float16,
                   float32, float64, iinfo, inf, int8, int16, int32, int64, issubdtype, nan,
                   ndarray, newaxis, pi, uint8, uint32, uint64, inexact, floating, integer,
                   number, signedinteger, unsignedinteger, complexfloating, generic)

from .. import lax
from ..core import ShapedArray
from ..errors import FungradValueError
from ..tracing import Tracer, aval_of, current_trace

__all__ = ["bool_", "complex64", "complex128", "dtype", "e", "euler_gamma", "finfo", "float16",
           "float32", "float64", "iinfo", "inf", "int8", "int16", "int32", "int64", "issubdtype",
           "nan", "ndarray", "newaxis", "pi", "uint8", "uint32", "uint64", "inexact", "floating",
           "integer", "number", "signedinteger", "unsignedinteger", "complexfloating", "generic",
           "float_", "int_", "result_type"]

float_ = float64
int_ = int64

_PY_SCALARS = (int, float, bool, complex)
_WEAK_STANDINS = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}


def _dtype_of(x):
    if isinstance(x, Tracer):
        return x._var.aval.dtype
    if isinstance(x, _PY_SCALARS):
        return None
    return np.result_type(x)


def result_type(*args) -> np.dtype:
    """NumPy 2 promotion; Python scalars are weak (they adopt the array's kind)."""
    typed = []
    for a in args:
        if isinstance(a, Tracer):
            aval = a._var.aval
            # a Python scalar argument of jit promotes like the Python scalar
            typed.append(_WEAK_STANDINS[aval.dtype.kind] if aval.weak_type else aval.dtype)
        elif isinstance(a, (np.dtype, type)) and not isinstance(a, _PY_SCALARS):
            typed.append(np.dtype(a))
        else:
            typed.append(a if isinstance(a, _PY_SCALARS) else np.result_type(a))
    return np.result_type(*typed)


def _convert(x, dtype):
    """x with dtype `dtype` (Python scalars become NumPy scalars of that dtype)."""
    if isinstance(x, _PY_SCALARS):
        return np.dtype(dtype).type(x)
    if isinstance(x, Tracer):
        return lax.convert_element_type(x, dtype) if x.dtype != dtype else x
    x = np.asarray(x)
    if x.dtype != dtype:
        if current_trace() is not None:
            return lax.convert_element_type(x, dtype)
        return x.astype(dtype)
    return x


def _shape(x):
    if isinstance(x, _PY_SCALARS):
        return ()
    return aval_of(x).shape


def _broadcast(*args, allow_scalars=True):
    """Broadcast operands to a common shape; 0-d operands stay 0-d when allowed
    (binary primitives apply a scalar to every element)."""
    shapes = [_shape(a) for a in args]
    try:
        out_shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise FungradValueError(
            "operands could not be broadcast together with shapes "
            + " ".join(str(s) for s in shapes)) from None
    res = []
    for a, s in zip(args, shapes, strict=True):
        if s == out_shape or (allow_scalars and s == ()):
            res.append(a)
        else:
            res.append(lax.broadcast_to(a, out_shape))
    return res


def _same_typed(a: ShapedArray, b) -> bool:
    """Can a strict binary primitive take a and b (an aval or ndarray) as they are?"""
    return a.dtype == b.dtype and (a.shape == b.shape or not b.shape or not a.shape)


def _scalar(x, value):
    """`value` as a NumPy scalar of x's dtype (a literal that primitives accept)."""
    return aval_of(x).dtype.type(value)
