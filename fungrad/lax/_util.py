"""Shape and rule helpers for the primitive blocks that need no primitive (the batching
helpers, which do, are in base.py)."""
from __future__ import annotations

import numpy as np

from ..core import ShapedArray
from ..errors import FungradTypeError
from ..tracing import Tracer, aval_of

__all__ = ["same_shape", "binary_shape", "bool_shape", "coerce_scalars", "nondifferentiable",
           "is_float"]


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind in "fc"


def same_shape(x: ShapedArray, **params) -> ShapedArray:
    return x


def binary_shape(name: str):
    """Shape rule of a strict binary elementwise primitive: one dtype, equal shapes,
    or one operand 0-d (a scalar applies to every element)."""
    def rule(x: ShapedArray, y: ShapedArray, **params) -> ShapedArray:
        if x.dtype != y.dtype:
            raise FungradTypeError(f"{name}: dtypes must match, got {x} and {y}")
        if x.shape == y.shape or not y.shape:
            return x
        if not x.shape:
            return y
        raise FungradTypeError(f"{name}: shapes must match, got {x} and {y}")
    return rule


def bool_shape(rule):
    """Wrap a binary shape rule so the result is bool (comparisons)."""
    def shape(x, y, **params):
        return rule(x, y).update(dtype=np.bool_)
    return shape


def coerce_scalars(*args):
    """Give Python scalars the dtype of the array operands (weak typing at lax level)."""
    dtype = None
    for a in args:
        if isinstance(a, (Tracer, np.ndarray, np.generic)):
            dtype = aval_of(a).dtype
            break
    if dtype is None:
        return tuple(np.asarray(a) for a in args)
    return tuple(dtype.type(a) if isinstance(a, (int, float, bool, complex)) else a
                 for a in args)


def nondifferentiable(*args, **params):
    """vjp/jvp rule of a primitive whose output is piecewise constant."""
    return None


nondifferentiable.nondiff = True
