"""Reductions: reduce_sum (more to come: max, min, prod, argmax, argmin, cumulative)."""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradValueError
from ..tracing import aval_of
from ._util import move_axis_to_front
from .shape import broadcast_in_dim

__all__ = ["reduce_sum", "reduce_sum_p"]


def _reduce_shape(x, *, axes):
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise FungradValueError(f"reduce: axes {axes} are invalid for {x}")
    return ShapedArray([d for i, d in enumerate(x.shape) if i not in axes], x.dtype)


def _sum_impl(x, *, axes):
    x = np.asarray(x)
    return np.sum(x, axis=axes, dtype=x.dtype) if axes else x


def _kept_dims(x_aval, axes):
    return tuple(i for i in range(x_aval.ndim) if i not in axes)


reduce_sum_p = Primitive("reduce_sum")
reduce_sum_p.def_impl(_sum_impl)
reduce_sum_p.def_shape(_reduce_shape)
reduce_sum_p.def_jvp(lambda t, x, *, out, axes: reduce_sum(t, axes))
# the cotangent of a sum is the cotangent broadcast back over the summed axes
reduce_sum_p.def_vjp(lambda ct, x, *, out, axes: (
    broadcast_in_dim(ct, aval_of(x).shape, _kept_dims(aval_of(x), axes)),))
reduce_sum_p.def_vmap(lambda n, args, dims, *, axes: (
    reduce_sum(move_axis_to_front(args[0], dims[0]), tuple(a + 1 for a in axes)), 0))
reduce_sum_p.def_emit(lambda x, *, axes: f"np.sum({x})" if axes == (0,) else
                      f"_sum_axes({x}, {tuple(axes)!r})")


def reduce_sum(x, axes):
    nd = aval_of(x).ndim
    axes = tuple(sorted(int(a) % nd for a in axes)) if nd else ()
    if not axes:
        return x
    return reduce_sum_p.bind(x, axes=axes)
