"""Diagonals and triangles of matrices: `diagonal`, `diag`, `trace`, `tril`, `triu`, `tri`."""
from __future__ import annotations

import builtins

import numpy as np

from .. import lax
from ..errors import FungradValueError
from ..tracing import aval_of, current_trace
from ._checks import dtype_value, int_value
from ._promotion import _scalar
from ._coercion import _as_array
from ._shape import _axes, broadcast_to
from ._creation import full
from ._reductions import _no_out, sum

__all__ = ["diagonal", "diag", "trace", "tril", "triu", "tri"]


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The `offset` diagonal of the (axis1, axis2) planes, as a new last axis.

    Built from slice + reshape + strided slice (no gather): the diagonal of an L x L
    block is every (L+1)-th element of its flattening.

    >>> fungrad.numpy.diagonal(np.arange(9.).reshape(3, 3), 1)
    array([1., 5.])
    """
    x = _as_array(a)
    nd = aval_of(x).ndim
    if nd < 2:
        raise FungradValueError("diag requires an array of at least two dimensions")
    ax1, ax2 = _axes(axis1, nd)[0], _axes(axis2, nd)[0]
    if ax1 == ax2:
        raise FungradValueError("axis1 and axis2 cannot be the same")
    rest = [i for i in range(nd) if i not in (ax1, ax2)]
    x = lax.transpose(x, rest + [ax1, ax2])
    *lead, n, m = aval_of(x).shape
    offset = int(offset)
    length = builtins.max(0, builtins.min(n, m - offset) if offset >= 0
                          else builtins.min(n + offset, m))
    row0, col0 = (0, offset) if offset >= 0 else (-offset, 0)
    if length == 0:
        return full(tuple(lead) + (0,), 0, aval_of(x).dtype)
    k = len(lead)
    block = lax.slice(x, [0] * k + [row0, col0], list(lead) + [row0 + length, col0 + length])
    flat = lax.reshape(block, tuple(lead) + (length * length,))
    return lax.slice(flat, [0] * (k + 1), list(lead) + [length * length],
                     [1] * k + [length + 1])


def diag(v, k=0):
    """The k-th diagonal of a 2-D array, or a 2-D array with 1-D `v` on its k-th diagonal.

    >>> fungrad.numpy.diag(np.array([1., 2.]))
    array([[1., 0.],
           [0., 2.]])
    """
    x = _as_array(v)
    nd = aval_of(x).ndim
    if nd == 2:
        return diagonal(x, k)
    if nd != 1:
        raise FungradValueError("Input must be 1- or 2-d.")
    length, k = aval_of(x).shape[0], int(k)
    n = length + builtins.abs(k)
    if length == 0:
        return full((n, n), 0, aval_of(x).dtype)
    # v's elements land every (n + 1) apart in the flattened n x n result
    first = k if k >= 0 else -k * n
    last = first + (length - 1) * (n + 1)
    flat = lax.pad(x, _scalar(x, 0), [(first, n * n - last - 1, n)])
    return lax.reshape(flat, (n, n))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal: sum(diagonal(a, offset, axis1, axis2), -1)."""
    _no_out("trace", out)
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


def _tri_mask(n, m, k, lower):
    rows = lax.iota(np.int64, (n, m), 0)
    cols = lax.iota(np.int64, (n, m), 1)
    shifted = lax.add(rows, np.int64(k)) if k else rows
    return lax.le(cols, shifted) if lower else lax.ge(cols, shifted)


def _tri_select(m, k, lower):
    x = _as_array(m)
    if aval_of(x).ndim < 2:
        x = broadcast_to(x, (aval_of(x).shape[-1],) * 2 if aval_of(x).ndim else (1, 1))
    shape = aval_of(x).shape
    mask = _tri_mask(shape[-2], shape[-1], int(k), lower)
    mask = lax.broadcast_in_dim(mask, shape, (len(shape) - 2, len(shape) - 1))
    return lax.select(mask, x, _scalar(x, 0))


def tril(m, k=0):
    """Zero the elements above the k-th diagonal (of the last two axes)."""
    return _tri_select(m, k, lower=True)


def triu(m, k=0):
    """Zero the elements below the k-th diagonal (of the last two axes)."""
    return _tri_select(m, k, lower=False)


def tri(N, M=None, k=0, dtype=None):
    """Ones at and below the k-th diagonal, zeros elsewhere."""
    N = int_value(N, "N", minimum=0)
    M = N if M is None else int_value(M, "M", minimum=0)
    k = int_value(k, "k")
    dt = dtype_value(dtype) if dtype is not None else np.dtype(np.float64)
    if current_trace() is None:
        return np.tri(N, M, k, dtype=dt)
    return lax.convert_element_type(_tri_mask(N, M, k, lower=True), dt)
