"""Shared shape, batching and rule helpers for the primitive blocks."""
from __future__ import annotations

import numpy as np

from ..core import ShapedArray
from ..errors import FungradTypeError
from ..tracing import Tracer, aval_of

__all__ = ["same_shape", "binary_shape", "elementwise_vmap", "coerce_scalars",
           "nondifferentiable", "is_float", "move_axis_to_front", "bdim_to_front"]


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



def move_axis_to_front(x, axis: int):
    """Move `axis` of x to position 0 (a transpose, or nothing)."""
    from . import shape as lax_shape
    if axis == 0:
        return x
    perm = (axis,) + tuple(i for i in range(np.ndim(x) if not isinstance(x, Tracer)
                                           else x.ndim) if i != axis)
    return lax_shape.transpose(x, perm)


def bdim_to_front(axis_size: int, x, dim):
    """x with its batch dimension first; unbatched x is broadcast to the batch."""
    from . import shape as lax_shape
    if dim is None:
        shape = aval_of(x).shape
        return lax_shape.broadcast_in_dim(x, (axis_size,) + shape,
                                          tuple(range(1, len(shape) + 1)))
    return move_axis_to_front(x, dim)


def elementwise_vmap(prim):
    """Batching rule for elementwise primitives (operands may be 0-d scalars)."""
    def rule(axis_size, args, dims, **params):
        ndims = [aval_of(a).ndim - (d is not None) for a, d in zip(args, dims)]
        full = max(ndims)
        moved = []
        for a, d, nd in zip(args, dims, ndims):
            if d is None and nd == 0:
                moved.append(a)          # an unbatched scalar applies to every element
            elif d is None:
                moved.append(bdim_to_front(axis_size, a, None))
            else:
                a = move_axis_to_front(a, d)
                if nd < full:            # a batched scalar against batched arrays
                    from . import shape as lax_shape
                    target = None
                    for b, dd, n2 in zip(args, dims, ndims):
                        if n2 == full:
                            target = aval_of(b).shape
                            if dd is not None:
                                target = target[:dd] + target[dd + 1:]
                            break
                    a = lax_shape.broadcast_in_dim(a, (axis_size,) + target, (0,))
                moved.append(a)
        return prim.bind(*moved, **params), 0
    return rule
