"""Sorting: `sort`, `argsort` and `median`, on a bitonic network of compares and selects."""
from __future__ import annotations

import numpy as np

from .. import lax
from ..errors import FungradTypeError
from ..tracing import aval_of
from ._promotion import _convert, _scalar, result_type
from ._coercion import _as_array, ravel, reshape
from ._shape import _axes, _slice_axis, moveaxis, squeeze
from ._elementwise import isnan
from ._reductions import _no_out, mean

__all__ = ["sort", "argsort", "median"]


def _bitonic_sort_last(columns, n_keys=None):
    """Sort the rows of `columns` (arrays of one shape, a power-of-two last axis) along
    the last axis, lexicographically by the first `n_keys` columns (all by default;
    the rest are carried along): a bitonic network of slices, compares and selects.

    O(n log^2 n) work in log2(n)(log2(n)+1)/2 vectorised stages; every stage is made of
    primitives with gradients (select), so sort is differentiable."""
    *lead, m = aval_of(columns[0]).shape
    nl = len(lead)

    def less(a, b):
        """Lexicographic a < b over the columns."""
        out = None
        for ka, kb in zip(reversed(a[:n_keys]), reversed(b[:n_keys]), strict=True):
            lt = lax.lt(ka, kb)
            out = lt if out is None else lax.bitwise_or(lt, lax.bitwise_and(lax.eq(ka, kb), out))
        return out

    k = 2
    while k <= m:
        j = k // 2
        while j >= 1:
            blocks = m // (2 * j)
            split_shape = tuple(lead) + (blocks, 2, j)
            parts = [lax.reshape(c, split_shape) for c in columns]
            upper_start = [0] * (nl + 3)
            upper_start[nl + 1] = 1
            lower_limit = list(split_shape)
            lower_limit[nl + 1] = 1
            lower = [lax.slice(p, [0] * (nl + 3), lower_limit) for p in parts]
            upper = [lax.slice(p, upper_start, split_shape) for p in parts]
            # blocks whose index has bit `k` clear sort ascending, the others descending
            block_start = lax.mul(lax.iota(np.int64, (blocks,), 0), np.int64(2 * j))
            ascending = lax.eq(lax.bitwise_and(block_start, np.int64(k)), np.int64(0))
            ascending = lax.broadcast_in_dim(ascending, aval_of(lower[0]).shape, (nl,))
            swap = lax.select(ascending, less(upper, lower), less(lower, upper))
            columns = [lax.reshape(lax.concatenate([lax.select(swap, hi, lo),
                                                    lax.select(swap, lo, hi)], nl + 1),
                                   tuple(lead) + (m,))
                       for lo, hi in zip(lower, upper, strict=True)]
            j //= 2
        k *= 2
    return columns


def _sort_along(a, axis):
    """(sorted values, int64 argsort) along `axis` (flattened when None)."""
    x = _as_array(a)
    if axis is None:
        x, axis = ravel(x), -1
    nd = aval_of(x).ndim
    if nd == 0:
        raise np.exceptions.AxisError(f"axis {axis} is out of bounds for array of dimension 0")
    (ax,) = _axes(axis, nd)
    x = moveaxis(x, ax, -1)
    *lead, n = aval_of(x).shape
    index = lax.iota(np.int64, tuple(lead) + (n,), len(lead))
    if n <= 1:
        return moveaxis(x, -1, ax), moveaxis(index, -1, ax)
    m = 1 << (n - 1).bit_length()
    def pad_to_m(column, value):
        return column if m == n else lax.pad(column, value, [(0, 0, 0)] * len(lead) +
                                             [(0, m - n, 0)])
    dt = aval_of(x).dtype
    # padding sorts last: it has the largest index, and the largest key or rank
    index_p = pad_to_m(index, np.int64(m))
    if np.issubdtype(dt, np.inexact):
        nan = isnan(x)
        # the keys only order the rows; x itself rides along as the values, so every
        # element, NaN included, takes its gradient to its sorted position (a NaN key
        # replaced by a constant cut the NaN entry's gradient)
        key = lax.stop_gradient(lax.select(nan, _scalar(x, 0), x))
        rank = _convert(nan, np.int8)  # NaN sorts after every number, like NumPy
        rank_p = pad_to_m(rank, np.int8(2))
        _, _, order, values = _bitonic_sort_last(
            [rank_p, pad_to_m(key, _scalar(x, 0)), index_p, pad_to_m(x, _scalar(x, 0))],
            n_keys=3)
    else:
        key = _convert(x, np.int8) if dt == np.bool_ else x
        top = np.iinfo(aval_of(key).dtype).max
        key_s, order = _bitonic_sort_last([pad_to_m(key, _scalar(key, top)), index_p])
        values = _convert(key_s, dt)
    start, limit = [0] * (len(lead) + 1), tuple(lead) + (n,)
    values, order = lax.slice(values, start, limit), lax.slice(order, start, limit)
    return moveaxis(values, -1, ax), moveaxis(order, -1, ax)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted copy along `axis` (flattened when None); NaN sorts last, like NumPy.

    A bitonic sorting network of compares and selects (no sort primitive), so the
    gradient flows to each element's sorted position.

    >>> fungrad.numpy.sort(np.array([3., 1., 2.]))
    array([1., 2., 3.])
    """
    if order is not None:
        raise FungradTypeError("sort: order= (structured arrays) is not supported")
    return _sort_along(a, axis)[0]


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices (int64) that sort `a` along `axis`; ties keep their order (stable)."""
    if order is not None:
        raise FungradTypeError("argsort: order= (structured arrays) is not supported")
    return _sort_along(a, axis)[1]


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """Median along `axis` (of the flattened array when None), via sort; NaN gives NaN."""
    _no_out("median", out)
    x = _as_array(a)
    if not np.issubdtype(result_type(x), np.inexact):
        x = _convert(x, np.float64)
    shape0 = aval_of(x).shape
    if axis is None:
        x, ax = ravel(x), 0
    else:
        (ax,) = _axes(axis, aval_of(x).ndim)
    n = aval_of(x).shape[ax]
    if n == 0:
        res = mean(x, axis=ax)
    else:
        s = sort(x, axis=ax)
        lo = _slice_axis(s, ax, (n - 1) // 2, (n - 1) // 2 + 1)
        hi = _slice_axis(s, ax, n // 2, n // 2 + 1)
        res = squeeze(lax.mul(lax.add(lo, hi), _scalar(lo, 0.5)), ax)
        # NumPy: a NaN anywhere in the slice makes the median NaN (sort puts it last)
        last = squeeze(_slice_axis(s, ax, n - 1, n), ax)
        res = lax.select(lax.ne(last, last), last, res)
    if keepdims:
        kept = tuple(1 if axis is None or i == ax else d for i, d in enumerate(shape0))
        return reshape(res, kept)
    return res
