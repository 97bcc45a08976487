"""dot_general: batched tensor contraction; matmul, dot, tensordot and the common
einsum forms are all written with it.  Output dimensions are ordered
(batch..., lhs free..., rhs free...), as in lax.dot_general."""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradTypeError
from ..tracing import aval_of
from ._util import move_axis_to_front
from .elementwise import add
from .shape import transpose

__all__ = ["dot_general", "dot_general_p"]


def _free(ndim, contract, batch):
    return tuple(i for i in range(ndim) if i not in contract and i not in batch)


def _dot_shape(x, y, *, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    if x.dtype != y.dtype:
        raise FungradTypeError(f"dot_general: dtypes must match, got {x} and {y}")
    if len(cx) != len(cy) or len(bx) != len(by):
        raise FungradTypeError(f"dot_general: unbalanced dimension_numbers {dimension_numbers}")
    for a, b in zip(cx + bx, cy + by):
        if not (0 <= a < x.ndim and 0 <= b < y.ndim) or x.shape[a] != y.shape[b]:
            raise FungradTypeError(
                f"dot_general: cannot contract {x} with {y} using dimension_numbers="
                f"{dimension_numbers}")
    shape = ([x.shape[i] for i in bx] + [x.shape[i] for i in _free(x.ndim, cx, bx)]
             + [y.shape[i] for i in _free(y.ndim, cy, by)])
    return ShapedArray(shape, x.dtype)


def _dot_impl(x, y, *, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    x, y = np.asarray(x), np.asarray(y)
    if not bx:
        if x.ndim <= 2 and y.ndim <= 2 and cx == ((x.ndim - 1,) if x.ndim else ()) and cy == (
                (0,) if y.ndim else ()) and x.ndim and y.ndim:
            return np.dot(x, y)              # the matmul / matvec / vecmat / inner case
        if not cx:
            return np.multiply.outer(x, y)   # outer product
        return np.tensordot(x, y, axes=(cx, cy))
    fx, fy = _free(x.ndim, cx, bx), _free(y.ndim, cy, by)
    xt = x.transpose(bx + fx + cx)
    yt = y.transpose(by + cy + fy)
    nb = int(np.prod([x.shape[i] for i in bx], dtype=np.int64))
    m = int(np.prod([x.shape[i] for i in fx], dtype=np.int64))
    k = int(np.prod([x.shape[i] for i in cx], dtype=np.int64))
    n = int(np.prod([y.shape[i] for i in fy], dtype=np.int64))
    out = np.matmul(xt.reshape(nb, m, k), yt.reshape(nb, k, n))
    return out.reshape([x.shape[i] for i in bx] + [x.shape[i] for i in fx]
                       + [y.shape[i] for i in fy])


def _ranks(values):
    return tuple(np.argsort(values).tolist())


def _dot_transpose_lhs(ct, x_aval, y, dimension_numbers):
    """Cotangent of x in dot_general(x, y): contract ct with y over y's free dims."""
    (cx, cy), (bx, by) = dimension_numbers
    y_aval = aval_of(y)
    nb = len(bx)
    fx, fy = _free(x_aval.ndim, cx, bx), _free(y_aval.ndim, cy, by)
    ct_yfree = tuple(range(nb + len(fx), nb + len(fx) + len(fy)))
    res = dot_general(ct, y, ((ct_yfree, fy), (tuple(range(nb)), by)))
    # res dims: batch, x free, then y's contracting dims in increasing y order
    order = sorted(range(len(cy)), key=lambda j: cy[j])
    res_as_x = list(bx) + list(fx) + [cx[j] for j in order]
    return transpose(res, _ranks(res_as_x))


def _dot_transpose_rhs(ct, x, y_aval, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    x_aval = aval_of(x)
    nb = len(bx)
    fx, fy = _free(x_aval.ndim, cx, bx), _free(y_aval.ndim, cy, by)
    ct_xfree = tuple(range(nb, nb + len(fx)))
    res = dot_general(ct, x, ((ct_xfree, fx), (tuple(range(nb)), bx)))
    # res dims: batch, y free, then x's contracting dims in increasing x order
    order = sorted(range(len(cx)), key=lambda j: cx[j])
    res_as_y = list(by) + list(fy) + [cy[j] for j in order]
    return transpose(res, _ranks(res_as_y))


def _dot_vmap(axis_size, args, dims, *, dimension_numbers):
    (x, y), (dx, dy) = args, dims
    (cx, cy), (bx, by) = dimension_numbers
    shift = lambda t: tuple(i + 1 for i in t)  # noqa: E731
    if dx is not None and dy is not None:
        x, y = move_axis_to_front(x, dx), move_axis_to_front(y, dy)
        dn = ((shift(cx), shift(cy)), ((0,) + shift(bx), (0,) + shift(by)))
        return dot_general(x, y, dn), 0
    if dx is not None:
        x = move_axis_to_front(x, dx)
        dn = ((shift(cx), cy), (shift(bx), by))
        return dot_general(x, y, dn), len(bx)  # the batch dim is x's first free dim
    y = move_axis_to_front(y, dy)
    x_aval = aval_of(x)
    dn = ((cx, shift(cy)), (bx, shift(by)))
    return dot_general(x, y, dn), len(bx) + len(_free(x_aval.ndim, cx, bx))


dot_general_p = Primitive("dot_general")
dot_general_p.def_impl(_dot_impl)
dot_general_p.def_shape(_dot_shape)
# bilinear: d(x . y) = dx . y + x . dy
dot_general_p.def_jvp(lambda tx, ty, x, y, *, out, dimension_numbers: add(
    dot_general(tx, y, dimension_numbers), dot_general(x, ty, dimension_numbers)))
dot_general_p.def_vjp(lambda ct, x, y, *, out, dimension_numbers: (
    _dot_transpose_lhs(ct, aval_of(x), y, dimension_numbers),
    _dot_transpose_rhs(ct, x, aval_of(y), dimension_numbers)))
dot_general_p.def_vmap(_dot_vmap)


def dot_general(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    """lax.dot_general: dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))."""
    (cx, cy), (bx, by) = dimension_numbers
    dn = ((tuple(map(int, cx)), tuple(map(int, cy))), (tuple(map(int, bx)), tuple(map(int, by))))
    return dot_general_p.bind(x, y, dimension_numbers=dn)
