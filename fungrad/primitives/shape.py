"""Shape primitives: squeeze, slice, rev, concatenate, pad, iota (broadcast_in_dim,
reshape and transpose are in base.py).  All are linear, so each vjp is the
transposed map."""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradTypeError, FungradValueError
from ..tracing import aval_of
from ._util import affine, np_dtype, reshape_index
from ._static import at_call_site, static_dtype, static_int, static_ints
from .base import bdim_to_front, broadcast_in_dim, full, move_axis_to_front, reduce_sum, reshape
from .elementwise import select, sub

__all__ = ["squeeze", "slice", "rev", "concatenate", "pad", "iota", "squeeze_p", "slice_p",
           "rev_p", "concatenate_p", "pad_p", "iota_p"]

import builtins  # noqa: E402


# --- squeeze ------------------------------------------------------------------------

def _squeeze_shape(x, *, dimensions):
    for d in dimensions:
        if not 0 <= d < x.ndim or x.shape[d] != 1:
            raise FungradValueError(f"squeeze: cannot remove dimension {d} of {x}")
    return ShapedArray([s for i, s in enumerate(x.shape) if i not in dimensions], x.dtype)


def _squeeze_vmap(n, args, dims, *, dimensions):
    x = move_axis_to_front(args[0], dims[0])
    return squeeze(x, tuple(d + 1 for d in dimensions)), 0


squeeze_p = Primitive("squeeze", kind="shape", value_preserving=True, linear_in="all")
squeeze_p.def_impl(lambda x, *, dimensions: np.squeeze(x, axis=dimensions))
squeeze_p.def_shape(_squeeze_shape)
squeeze_p.def_jvp(lambda t, x, *, out, dimensions: squeeze(t, dimensions))
squeeze_p.def_vjp(lambda ct, x, *, out, dimensions: (reshape(ct, aval_of(x).shape),))
squeeze_p.def_vmap(_squeeze_vmap)
squeeze_p.def_loop(lambda at, idx, x, *, out, dimensions: at(
    0, reshape_index(x.shape, out.shape, idx)), relabels=True)


def squeeze(x, dimensions):
    nd = aval_of(x).ndim
    dimensions = static_ints(dimensions, "dimensions")
    if any(not -nd <= d < nd for d in dimensions):
        raise FungradValueError(at_call_site(
            f"squeeze: dimensions {dimensions} are out of range for {aval_of(x)}"))
    dimensions = tuple(sorted(d % nd for d in dimensions))
    if not dimensions:
        return x
    return squeeze_p.bind(x, dimensions=dimensions)


# --- slice --------------------------------------------------------------------------

def _slice_shape(x, *, start_indices, limit_indices, strides):
    if not (len(start_indices) == len(limit_indices) == len(strides) == x.ndim):
        raise FungradTypeError(f"slice: index lists must have {x.ndim} entries")
    shape = []
    for d, lo, hi, st in zip(x.shape, start_indices, limit_indices, strides):
        if not (0 <= lo <= hi <= d) or st < 1:
            raise FungradValueError(
                f"slice: [{lo}:{hi}:{st}] is out of bounds for a dimension of size {d} "
                f"of {x}")
        shape.append(builtins.max(0, -(-(hi - lo) // st)))
    return ShapedArray(shape, x.dtype)


def _slice_impl(x, *, start_indices, limit_indices, strides):
    index = tuple(builtins.slice(lo, hi, st)
                  for lo, hi, st in zip(start_indices, limit_indices, strides))
    return np.asarray(x)[index]


def _slice_vjp(ct, x, *, out, start_indices, limit_indices, strides):
    x_aval = aval_of(x)
    # pad the cotangent back into place: low = start, interior = stride - 1
    lows = list(start_indices)
    interiors = [s - 1 for s in strides]
    highs = []
    for d, lo, n, st in zip(x_aval.shape, start_indices, aval_of(ct).shape, strides):
        used = lo + (n - 1) * st + 1 if n > 0 else lo
        highs.append(d - used)
    zero = x_aval.dtype.type(0)
    return (pad(ct, zero, tuple(zip(lows, highs, interiors))),)


def _slice_vmap(n, args, dims, *, start_indices, limit_indices, strides):
    x = move_axis_to_front(args[0], dims[0])
    return slice(x, (0,) + tuple(start_indices), (n,) + tuple(limit_indices),
                 (1,) + tuple(strides)), 0


slice_p = Primitive("slice", kind="shape", value_preserving=True, linear_in="all")
slice_p.def_impl(_slice_impl)
slice_p.def_shape(_slice_shape)
slice_p.def_jvp(lambda t, x, *, out, **p: slice(t, **p))
slice_p.def_vjp(_slice_vjp)
slice_p.def_vmap(_slice_vmap)
slice_p.def_emit(lambda x, *, start_indices, limit_indices, strides: "{}[{}]".format(
    x, ", ".join(f"{lo}:{hi}:{st}" for lo, hi, st in zip(start_indices, limit_indices, strides))
    + ("," if len(strides) == 1 else "")))
slice_p.def_loop(lambda at, idx, x, *, out, start_indices, limit_indices, strides: at(
    0, [affine(lo, st, i) for lo, st, i in zip(start_indices, strides, idx, strict=True)]))


def slice(x, start_indices, limit_indices, strides=None):
    nd = aval_of(x).ndim
    strides = static_ints(strides, "strides", minimum=1) if strides is not None else (1,) * nd
    start_indices = static_ints(start_indices, "start_indices")
    limit_indices = static_ints(limit_indices, "limit_indices")
    if start_indices == (0,) * nd and limit_indices == aval_of(x).shape and strides == (1,) * nd:
        return x
    return slice_p.bind(x, start_indices=start_indices, limit_indices=limit_indices,
                        strides=strides)


# --- rev ----------------------------------------------------------------------------

def _rev_shape(x, *, dimensions):
    if any(not 0 <= d < x.ndim for d in dimensions):
        raise FungradValueError(f"rev: dimensions {dimensions} out of range for {x}")
    return x


rev_p = Primitive("rev", kind="shape", value_preserving=True, linear_in="all")
rev_p.def_impl(lambda x, *, dimensions: np.flip(x, dimensions) if dimensions else x)
rev_p.def_shape(_rev_shape)
rev_p.def_jvp(lambda t, x, *, out, dimensions: rev(t, dimensions))
rev_p.def_vjp(lambda ct, x, *, out, dimensions: (rev(ct, dimensions),))
rev_p.def_vmap(lambda n, args, dims, *, dimensions: (
    rev(move_axis_to_front(args[0], dims[0]), tuple(d + 1 for d in dimensions)), 0))
rev_p.def_emit(lambda x, *, dimensions: f"np.flip({x}, {tuple(dimensions)!r})")
rev_p.def_loop(lambda at, idx, x, *, out, dimensions: at(
    0, [f"({n - 1} - {i})" if d in dimensions else i
        for d, (n, i) in enumerate(zip(x.shape, idx, strict=True))]))


def rev(x, dimensions):
    dimensions = tuple(sorted(static_ints(dimensions, "dimensions")))
    if not dimensions:
        return x
    return rev_p.bind(x, dimensions=dimensions)


# --- concatenate --------------------------------------------------------------------

def _concat_shape(*xs, dimension):
    if not xs:
        raise FungradValueError("concatenate: needs at least one operand")
    first = xs[0]
    if not 0 <= dimension < first.ndim:
        raise FungradValueError(f"concatenate: dimension {dimension} out of range for {first}")
    for x in xs[1:]:
        if x.dtype != first.dtype or x.ndim != first.ndim or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != dimension):
            raise FungradTypeError(
                f"concatenate: operands must agree except along dimension {dimension}, got "
                + ", ".join(str(a) for a in xs))
    shape = list(first.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return ShapedArray(shape, first.dtype)


def _concat_vjp(ct, *xs, out, dimension):
    cts, start = [], 0
    ct_shape = aval_of(ct).shape
    for x in xs:
        size = aval_of(x).shape[dimension]
        lo = [0] * len(ct_shape)
        hi = list(ct_shape)
        lo[dimension], hi[dimension] = start, start + size
        cts.append(slice(ct, lo, hi))
        start += size
    return tuple(cts)


def _concat_vmap(n, args, dims, *, dimension):
    moved = [bdim_to_front(n, x, d) for x, d in zip(args, dims)]
    return concatenate(moved, dimension + 1), 0


def _concat_loop(at, idx, *xs, out, dimension):
    # the operand holding the element: a chain of conditional expressions
    d = dimension
    parts, off = [], 0
    for k, y in enumerate(xs):
        n = y.shape[d]
        index = list(idx)
        index[d] = f"({idx[d]} - {off})" if off else idx[d]
        parts.append((off + n, at(k, index)))
        off += n
    text = parts[-1][1]
    for end, expr in reversed(parts[:-1]):
        text = f"({expr} if {idx[d]} < {end} else {text})"
    return text


concatenate_p = Primitive("concatenate", kind="shape", linear_in="all")
concatenate_p.def_impl(lambda *xs, dimension: np.concatenate(xs, axis=dimension))
concatenate_p.def_shape(_concat_shape)
concatenate_p.def_jvp(lambda *args, out, dimension: concatenate(
    args[:len(args) // 2], dimension))
concatenate_p.def_vjp(_concat_vjp)
concatenate_p.def_vmap(_concat_vmap)
concatenate_p.def_emit(lambda *xs, dimension: f"np.concatenate(({', '.join(xs)},), {dimension})")
concatenate_p.def_loop(_concat_loop)


def concatenate(xs, dimension: int):
    if not isinstance(xs, (list, tuple)):
        raise FungradTypeError(at_call_site(
            f"concatenate: operands must be a list or tuple of arrays, got "
            f"{type(xs).__name__}"))
    xs = list(xs)
    dimension = static_int(dimension, "dimension")
    if len(xs) == 1:
        nd = aval_of(xs[0]).ndim
        if not 0 <= dimension < nd:
            raise FungradValueError(at_call_site(
                f"concatenate: dimension {dimension} out of range for {aval_of(xs[0])}"))
        return xs[0]
    return concatenate_p.bind(*xs, dimension=dimension)


# --- pad ----------------------------------------------------------------------------

def _pad_shape(x, padding_value, *, padding_config):
    if padding_value.shape != () or padding_value.dtype != x.dtype:
        raise FungradTypeError(f"pad: padding value must be a {x.dtype} scalar")
    if len(padding_config) != x.ndim:
        raise FungradTypeError(f"pad: padding_config needs {x.ndim} entries")
    shape = []
    for d, (lo, hi, interior) in zip(x.shape, padding_config):
        if interior < 0:
            raise FungradValueError("pad: interior padding must be >= 0")
        n = lo + hi + d + builtins.max(0, d - 1) * interior
        if n < 0:
            raise FungradValueError(f"pad: negative result size for {x} with {padding_config}")
        shape.append(n)
    return ShapedArray(shape, x.dtype)


def _pad_impl(x, padding_value, *, padding_config):
    x = np.asarray(x)
    shape = _pad_shape(ShapedArray.of(x), ShapedArray.of(x.dtype.type(padding_value)),
                       padding_config=padding_config).shape
    out = np.full(shape, padding_value, dtype=x.dtype)
    # place x with interior strides, then crop negative edge padding
    dst = []
    src = []
    for d, n, (lo, hi, interior) in zip(x.shape, shape, padding_config):
        step = interior + 1
        positions = lo + step * np.arange(d)
        keep = (positions >= 0) & (positions < n)
        idx = np.nonzero(keep)[0]
        if idx.size == 0:
            return out
        src.append(builtins.slice(idx[0], idx[-1] + 1))
        dst.append(builtins.slice(positions[idx[0]], positions[idx[-1]] + 1, step))
    out[tuple(dst)] = x[tuple(src)]
    return out


def _pad_vjp(ct, x, padding_value, *, out, padding_config):
    x_aval = aval_of(x)
    # undo: crop (negative pads become zero-padding back), then take every (interior+1)-th
    ct_shape = aval_of(ct).shape
    zero = x_aval.dtype.type(0)
    neg_cfg = tuple((builtins.max(0, -lo), builtins.max(0, -hi), 0) for lo, hi, _ in padding_config)
    if any(a or b for a, b, _ in neg_cfg):
        ct = pad(ct, zero, neg_cfg)
        ct_shape = aval_of(ct).shape
    starts = tuple(builtins.max(0, lo) for lo, _, _ in padding_config)
    limits = tuple(n - builtins.max(0, hi) for n, (_, hi, _) in zip(ct_shape, padding_config))
    strides = tuple(i + 1 for _, _, i in padding_config)
    ct_x = slice(ct, starts, limits, strides)
    total = reduce_sum(ct, tuple(range(len(ct_shape))))
    inner = reduce_sum(ct_x, tuple(range(x_aval.ndim)))
    return (ct_x, sub(total, inner))


def _pad_vmap(n, args, dims, *, padding_config):
    x, v = args
    dx, dv = dims
    if dv is not None:
        # a batched padding value: pad with zeros, then add the value where padding is
        x = move_axis_to_front(x, dx) if dx is not None else broadcast_in_dim(
            x, (n,) + aval_of(x).shape, tuple(range(1, aval_of(x).ndim + 1)))
        cfg = ((0, 0, 0),) + tuple(padding_config)
        zero = aval_of(x).dtype.type(0)
        padded = pad(x, zero, cfg)
        ones = full(aval_of(x).shape, True, np.bool_)
        mask = pad(ones, np.bool_(False), cfg)
        v_b = broadcast_in_dim(v, aval_of(padded).shape, (0,))
        return select(mask, padded, v_b), 0
    x = move_axis_to_front(x, dx)
    return pad(x, v, ((0, 0, 0),) + tuple(padding_config)), 0


def _pad_loop(at, idx, x, padding_value, *, out, padding_config):
    # the operand's element where the index lands on one, else the padding value
    v = at(1, [])
    conds, sub = [], []
    for (lo, hi, interior), n, i in zip(padding_config, x.shape, idx, strict=True):
        step = interior + 1
        j = f"({i} - {lo})" if lo else i
        if step == 1:
            conds.append(f"0 <= {j} < {n}" if lo else f"{i} < {n}")
            sub.append(j)
        else:
            conds.append(f"0 <= {j} and {j} % {step} == 0 and {j} // {step} < {n}")
            sub.append(f"{j} // {step}")
    if x.size == 0:
        return v
    if not conds:       # 0-d
        return at(0, [])
    return f"({at(0, sub)} if {' and '.join(conds)} else {v})"


pad_p = Primitive("pad", kind="shape", linear_in="all")
pad_p.def_impl(_pad_impl)
pad_p.def_shape(_pad_shape)
pad_p.def_jvp(lambda tx, tv, x, v, *, out, padding_config: pad(tx, tv, padding_config))
pad_p.def_vjp(_pad_vjp)
pad_p.def_vmap(_pad_vmap)
pad_p.def_loop(_pad_loop)


def pad(x, padding_value, padding_config):
    """lax.pad: padding_config is ((low, high, interior), ...) per dimension;
    negative low/high crop."""
    if not isinstance(padding_config, (tuple, list)) or not all(
            isinstance(c, (tuple, list)) and len(c) == 3 for c in padding_config):
        raise FungradTypeError(at_call_site(
            f"pad: padding_config must be a sequence of (low, high, interior) int triples, "
            f"one per dimension, got {padding_config!r:.60}"))
    cfg = tuple(static_ints(c, "padding_config") for c in padding_config)
    if any(i < 0 for _, _, i in cfg):
        raise FungradValueError(at_call_site(f"pad: interior padding must be >= 0, got {cfg}"))
    if isinstance(padding_value, (int, float, bool)):
        padding_value = aval_of(x).dtype.type(padding_value)
    return pad_p.bind(x, padding_value, padding_config=cfg)


# --- iota ---------------------------------------------------------------------------

def _iota_shape(*, dtype, shape, dimension):
    if not 0 <= dimension < len(shape):
        raise FungradValueError(f"iota: dimension {dimension} out of range for shape {shape}")
    return ShapedArray(shape, dtype)


def _iota_impl(*, dtype, shape, dimension):
    r = np.arange(shape[dimension], dtype=dtype)
    expanded = [1] * len(shape)
    expanded[dimension] = shape[dimension]
    return np.broadcast_to(r.reshape(expanded), shape)


iota_p = Primitive("iota", kind="shape")
iota_p.def_impl(_iota_impl)
iota_p.def_shape(_iota_shape)
iota_p.def_jvp(lambda *, out, **p: None)
iota_p.def_vjp(lambda ct, *, out, **p: ())
iota_p.def_vmap(lambda n, args, dims, **p: (iota(**p), None))
iota_p.def_loop(lambda at, idx, *, out, dtype, shape, dimension:
                f"{np_dtype(out.dtype)}({idx[dimension]})")


def iota(dtype, shape, dimension=0):
    """Integers 0..n-1 along `dimension`, broadcast to `shape`."""
    shape = ((static_int(shape, "shape", minimum=0),) if np.isscalar(shape)
             else static_ints(shape, "shape", minimum=0))
    return iota_p.bind(dtype=static_dtype(dtype), shape=shape,
                       dimension=static_int(dimension, "dimension"))
