"""Shape manipulation: transposes, squeezes, broadcasts, joins, splits, flips, rolls,
tiles and repeats (`reshape`, `concatenate` and `stack` are in `_coercion`).
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import lax
from ..errors import FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of
from ._promotion import _broadcast
from ._checks import (array_sequence, axis_index, axis_tuple, axis_tuple_unsorted, int_sequence,
                      int_value, permutation, shape_tuple)
from ._coercion import _as_array, concatenate, expand_dims, ravel, reshape

__all__ = ["shape", "ndim", "size", "transpose", "moveaxis", "swapaxes", "squeeze", "broadcast_to",
           "broadcast_arrays", "atleast_1d", "atleast_2d", "vstack", "hstack", "atleast_3d",
           "dstack", "column_stack", "row_stack", "array_split", "split", "flip", "fliplr",
           "flipud", "roll", "tile", "repeat", "rot90", "append"]


def _axes(axis, ndim):
    """`axis` (None, an int, or distinct ints) as sorted non-negative ints; checked."""
    if ndim == 0 and axis is not None:   # a 0-d array accepts axis 0 or -1, as a no-op
        for a in (axis if isinstance(axis, (tuple, list)) else (axis,)):
            axis_index(a, 1)
        return ()
    return axis_tuple(axis, ndim)


def shape(a):
    """The shape of a (a tuple of ints, also for traced values)."""
    return aval_of(_as_array(a)).shape


def ndim(a):
    """The number of dimensions of a."""
    return aval_of(_as_array(a)).ndim


def size(a, axis=None):
    """The number of elements of a (along `axis` when given)."""
    s = aval_of(_as_array(a)).shape
    return int(np.prod(s, dtype=np.int64)) if axis is None else s[axis_index(axis, len(s))]


def transpose(a, axes=None):
    """a with its axes permuted (reversed when `axes` is None)."""
    x = _as_array(a)
    nd = aval_of(x).ndim
    perm = tuple(reversed(range(nd))) if axes is None else permutation(axes, nd)
    return lax.transpose(x, perm)


def moveaxis(a, source, destination):
    """a with axes `source` moved to positions `destination`."""
    x = _as_array(a)
    nd = aval_of(x).ndim
    src = list(axis_tuple_unsorted(source, nd, "source"))
    dst = list(axis_tuple_unsorted(destination, nd, "destination"))
    if len(src) != len(dst):
        raise FungradValueError(
            f"moveaxis: source {source!r} and destination {destination!r} must have the same "
            "number of elements")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return lax.transpose(x, order)


def swapaxes(a, axis1, axis2):
    """a with axes axis1 and axis2 interchanged."""
    x = _as_array(a)
    nd = aval_of(x).ndim
    perm = list(range(nd))
    axis1, axis2 = axis_index(axis1, nd, "axis1"), axis_index(axis2, nd, "axis2")
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return lax.transpose(x, perm)


def squeeze(a, axis=None):
    """a without its length-1 axes (only those in `axis` when given)."""
    x = _as_array(a)
    s = aval_of(x).shape
    if axis is None:
        dims = [i for i, d in enumerate(s) if d == 1]
    else:
        dims = list(axis_tuple(axis, len(s)))
        for d in dims:
            if s[d] != 1:
                raise FungradValueError("cannot select an axis to squeeze out which has size "
                                        "not equal to one")
    return lax.squeeze(x, dims)


def broadcast_to(a, shape):
    """a broadcast to `shape` (NumPy's rules)."""
    x = _as_array(a)
    shape = shape_tuple(shape)
    try:
        if np.broadcast_shapes(aval_of(x).shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise FungradValueError(f"cannot broadcast an array of shape {aval_of(x).shape} to "
                                f"{shape}") from None
    return lax.broadcast_to(x, shape)


def broadcast_arrays(*args):
    """The arguments broadcast against each other, as a list."""
    args = [_as_array(a) for a in args]
    return _broadcast(*args, allow_scalars=False)


def atleast_1d(*arys):
    """Arrays with at least one dimension."""
    res = [reshape(a, (1,)) if ndim(a) == 0 else _as_array(a) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    """Arrays with at least two dimensions ((n,) becomes (1, n))."""
    res = []
    for a in arys:
        a = _as_array(a)
        res.append(reshape(a, (1, 1)) if ndim(a) == 0 else expand_dims(a, 0) if ndim(a) == 1
                   else a)
    return res[0] if len(res) == 1 else res


def vstack(tup, dtype=None):
    """Stack arrays vertically (row-wise), after atleast_2d."""
    return concatenate([atleast_2d(a) for a in array_sequence(tup, "tup")], axis=0,
                       dtype=dtype)


def hstack(tup, dtype=None):
    """Stack arrays horizontally (column-wise); 1-D arrays are joined."""
    arrs = [atleast_1d(a) for a in array_sequence(tup, "tup")]
    return concatenate(arrs, axis=0 if ndim(arrs[0]) == 1 else 1, dtype=dtype)


def atleast_3d(*arys):
    """Views with at least three dimensions: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    res = []
    for a in arys:
        a = _as_array(a)
        nd = ndim(a)
        res.append(reshape(a, (1, 1, 1)) if nd == 0 else reshape(a, (1, size(a), 1)) if nd == 1
                   else expand_dims(a, -1) if nd == 2 else a)
    return res[0] if len(res) == 1 else res


def dstack(tup, dtype=None):
    """Stack along the third axis (after atleast_3d)."""
    return concatenate([atleast_3d(a) for a in array_sequence(tup, "tup")], axis=2,
                       dtype=dtype)


def column_stack(tup):
    """Stack 1-D arrays as columns (2-D arrays are kept) into a 2-D array."""
    cols = [_as_array(a) for a in array_sequence(tup, "tup")]
    cols = [reshape(c, (-1, 1)) if ndim(c) < 2 else c for c in cols]
    return concatenate(cols, axis=1)


row_stack = vstack


def _slice_axis(x, axis, start, stop, step=1):
    """x[..., start:stop:step, ...] on one axis (bounds already in range)."""
    aval = aval_of(x)
    starts = [0] * aval.ndim
    limits = list(aval.shape)
    strides = [1] * aval.ndim
    starts[axis], limits[axis], strides[axis] = start, stop, step
    return lax.slice(x, starts, limits, strides)


def array_split(ary, indices_or_sections, axis=0):
    """Split into pieces along `axis`: N nearly equal sections (the first ones one longer),
    or at the given indices."""
    x = _as_array(ary)
    (ax,) = _axes(axis, aval_of(x).ndim)
    n = aval_of(x).shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(
            indices_or_sections, bool):
        sections = int_value(indices_or_sections, "indices_or_sections")
        if sections <= 0:
            raise FungradValueError("number sections must be larger than 0.")
        each, extra = builtins.divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    else:
        if not isinstance(indices_or_sections, (tuple, list, np.ndarray)):
            int_value(indices_or_sections, "indices_or_sections")   # raises: not an int
        bounds = [0] + list(int_sequence(indices_or_sections, "indices_or_sections")) + [n]
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        lo_c, hi_c = (builtins.min(builtins.max(v if v >= 0 else v + n, 0), n) for v in (lo, hi))
        pieces.append(_slice_axis(x, ax, lo_c, builtins.max(lo_c, hi_c)))
    return pieces


def split(ary, indices_or_sections, axis=0):
    """Split into equal sections (an error if they are not) or at the given indices.

    >>> [p.tolist() for p in fungrad.numpy.split(np.arange(6), 3)]
    [[0, 1], [2, 3], [4, 5]]
    """
    if isinstance(indices_or_sections, (int, np.integer)):
        x = _as_array(ary)
        (ax,) = _axes(axis, aval_of(x).ndim)
        if indices_or_sections <= 0 or aval_of(x).shape[ax] % int(indices_or_sections):
            raise FungradValueError("array split does not result in an equal division")
    return array_split(ary, indices_or_sections, axis)


def flip(m, axis=None):
    """Reverse the order of elements along `axis` (all axes when None)."""
    x = _as_array(m)
    axes = _axes(axis, aval_of(x).ndim)
    return lax.rev(x, axes)


def fliplr(m):
    """Reverse along axis 1 (left/right)."""
    if ndim(m) < 2:
        raise FungradValueError("fliplr: input must be >= 2-d.")
    return flip(m, 1)


def flipud(m):
    """Reverse along axis 0 (up/down)."""
    if ndim(m) < 1:
        raise FungradValueError("flipud: input must be >= 1-d.")
    return flip(m, 0)


def roll(a, shift, axis=None):
    """Shift elements along `axis` cyclically (static shifts; the flattened array when None).

    >>> fungrad.numpy.roll(np.arange(5), 2)
    array([3, 4, 0, 1, 2])
    """
    x = _as_array(a)
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), aval_of(x).shape)
    shifts = int_sequence(shift, "shift")
    axes = tuple(axis_index(a, aval_of(x).ndim) for a in (
        axis if isinstance(axis, (tuple, list)) else (axis,)))   # repeats roll again
    if len(shifts) != len(axes) and 1 not in (len(shifts), len(axes)):
        raise FungradValueError(f"roll: shift {shift!r} and axis {axis!r} must have the same "
                                "length (or one of them a single value)")
    shifts, axes = np.broadcast_arrays(np.asarray(shifts, dtype=np.int64), np.asarray(axes))
    for sh, ax in zip(shifts.tolist(), axes.tolist(), strict=True):
        (ax,) = _axes(ax, aval_of(x).ndim)
        n = aval_of(x).shape[ax]
        if n == 0 or sh % n == 0:
            continue
        sh %= n
        x = lax.concatenate([_slice_axis(x, ax, n - sh, n), _slice_axis(x, ax, 0, n - sh)], ax)
    return x


def tile(A, reps):
    """Repeat the whole array `reps` times along each axis.

    >>> fungrad.numpy.tile(np.array([1, 2]), (2, 2))
    array([[1, 2, 1, 2],
           [1, 2, 1, 2]])
    """
    x = _as_array(A)
    reps = int_sequence(reps, "reps")
    if any(r < 0 for r in reps):
        raise FungradValueError(f"tile: reps must be >= 0, got {reps}")
    shape = aval_of(x).shape
    d = builtins.max(len(shape), len(reps))
    shape = (1,) * (d - len(shape)) + tuple(shape)
    reps = (1,) * (d - len(reps)) + reps
    x = lax.reshape(x, shape)
    interleaved = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    x = lax.broadcast_in_dim(x, interleaved, tuple(range(1, 2 * d, 2)))
    return lax.reshape(x, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a, repeats, axis=None):
    """Repeat each element `repeats` times along `axis` (flattened when None); repeats is a
    static int or a static sequence with one count per element.

    >>> fungrad.numpy.repeat(np.array([1, 2]), 2)
    array([1, 1, 2, 2])
    """
    x = _as_array(a)
    if isinstance(repeats, Tracer):
        raise FungradTypeError("repeat: the repeat counts decide the output shape and must be "
                               "concrete; got a traced value")
    if axis is None:
        x, axis = ravel(x), 0
    (ax,) = _axes(axis, aval_of(x).ndim)
    shape = aval_of(x).shape
    counts = np.asarray(int_sequence(repeats, "repeats") if not isinstance(repeats, (
        int, np.integer)) or isinstance(repeats, bool) else int_value(repeats, "repeats"),
        dtype=np.int64)
    if counts.ndim == 1 and counts.size == 1:
        counts = counts.reshape(())
    if np.any(counts < 0):
        raise FungradValueError("repeat: negative dimensions are not allowed")
    if counts.ndim == 0:
        r = int(counts)
        expanded = shape[:ax + 1] + (r,) + shape[ax + 1:]
        dims = tuple(i if i <= ax else i + 1 for i in range(len(shape)))
        x = lax.broadcast_in_dim(x, expanded, dims)
        return lax.reshape(x, shape[:ax] + (shape[ax] * r,) + shape[ax + 1:])
    if counts.shape != (shape[ax],):
        raise FungradValueError(f"repeat: operands could not be broadcast together with shape "
                                f"({shape[ax]},) ({counts.size},)")
    # one slice per element, broadcast to its count (no gather needed for static counts)
    pieces = []
    for i, r in enumerate(counts.tolist()):
        if r:
            piece = _slice_axis(x, ax, i, i + 1)
            pieces.append(broadcast_to(piece, shape[:ax] + (r,) + shape[ax + 1:]))
    if not pieces:
        return _slice_axis(x, ax, 0, 0)
    return lax.concatenate(pieces, ax)


def rot90(m, k=1, axes=(0, 1)):
    """Rotate by 90 degrees k times in the plane of `axes` (from the first toward the
    second axis)."""
    x = _as_array(m)
    ax0, ax1 = (_axes(a, aval_of(x).ndim)[0] for a in axes)
    k %= 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, ax0), ax1)
    perm = list(range(aval_of(x).ndim))
    perm[ax0], perm[ax1] = perm[ax1], perm[ax0]
    return lax.transpose(flip(x, ax1), perm) if k == 1 else flip(lax.transpose(x, perm), ax1)


def append(arr, values, axis=None):
    """`values` appended to `arr`: both flattened when axis is None, else joined along
    `axis` (the shapes must match elsewhere).  Dtypes promote as in concatenate."""
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([_as_array(arr), _as_array(values)], axis=axis)
