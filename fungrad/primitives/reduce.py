"""Reductions, one block each: reduce_sum, reduce_max, reduce_min, reduce_prod,
reduce_and, reduce_or, argmax, argmin, and the cumulative scans cumsum,
cumprod, cummax, cummin.

Conventions (tested in tests/primitives/test_reduce.py):
- max/min reductions (and cummax/cummin) split the gradient evenly among ties;
- reduce_prod and cumprod derivatives are exact with zeros: no division by x,
  they are built from exclusive prefix/suffix products and a log-depth linear
  scan made of slice/pad/mul/add, so they differentiate again;
- argmax/argmin are non-differentiable and return integers;
- max/min of an empty axis give the dtype's lowest/highest value (-inf/inf for
  floats), as in lax.
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import CodegenError, FungradTypeError, FungradValueError
from ..tracing import aval_of
from ._static import at_call_site, static_dtype, static_int
from ._util import is_float, nondifferentiable, np_dtype
from .base import (WIDE_ACCUMULATOR, _expand_to, _kept_dims, _normalize_axes, _reduce_shape,
                   _reduce_vmap, convert_element_type, full, move_axis_to_front,
                   narrow_accumulate, reduce_sum, reshape, transpose)
from .elementwise import add, bitwise_and, bitwise_or, div, eq, mul, ne, weighted
from .elementwise import max as lax_max
from .shape import pad, slice

__all__ = ["reduce_max", "reduce_min", "reduce_prod", "reduce_and",
           "reduce_or", "argmax", "argmin", "cumsum", "cumprod", "cummax", "cummin",
           "reduce_max_p", "reduce_min_p", "reduce_prod_p", "reduce_and_p",
           "reduce_or_p", "argmax_p", "argmin_p", "cumsum_p", "cumprod_p", "cummax_p",
           "cummin_p"]


# --- reduce_max / reduce_min ------------------------------------------------------

def _lowest(dtype):
    if dtype == np.bool_:
        return False
    if is_float(dtype):
        return -np.inf
    return np.iinfo(dtype).min


def _highest(dtype):
    if dtype == np.bool_:
        return True
    if is_float(dtype):
        return np.inf
    return np.iinfo(dtype).max


def _max_impl(x, *, axes):
    x = np.asarray(x)
    return np.max(x, axis=axes, initial=_lowest(x.dtype)) if axes else x


def _min_impl(x, *, axes):
    x = np.asarray(x)
    return np.min(x, axis=axes, initial=_highest(x.dtype)) if axes else x


def _tie_weights(x, out, axes):
    """1/count where x attains the reduced value, 0 elsewhere (ties split evenly).
    A NaN result came from the NaN entries: they share the derivative."""
    x_aval = aval_of(x)
    out_x = _expand_to(out, x_aval, axes)
    attains = bitwise_or(eq(x, out_x), bitwise_and(ne(out_x, out_x), ne(x, x)))
    hits = convert_element_type(attains, x_aval.dtype)
    count = lax_max(reduce_sum(hits, axes), x_aval.dtype.type(1))  # 1 for an empty slice
    return div(hits, _expand_to(count, x_aval, axes))


def _extremum_jvp(t, x, *, out, axes):
    return reduce_sum(weighted(t, _tie_weights(x, out, axes)), axes)


def _extremum_vjp(ct, x, *, out, axes):
    weights = _tie_weights(x, out, axes)
    return (weighted(_expand_to(ct, aval_of(x), axes), weights),)


def _max_update(acc, v, dtype):
    # np.max folds np.maximum(acc, v): a NaN wins and stays, and of equal values
    # (0.0 and -0.0) the later one is kept
    if np.issubdtype(dtype, np.floating):
        return f"if {v} >= {acc} or {v} != {v}: {acc} = {v}"
    return f"if {v} > {acc}: {acc} = {v}"


def _min_update(acc, v, dtype):
    if np.issubdtype(dtype, np.floating):
        return f"if {v} <= {acc} or {v} != {v}: {acc} = {v}"
    return f"if {v} < {acc}: {acc} = {v}"


reduce_max_p = Primitive("reduce_max", kind="reduction")
reduce_max_p.def_impl(_max_impl)
reduce_max_p.def_shape(_reduce_shape("reduce_max"))
reduce_max_p.def_jvp(_extremum_jvp)
reduce_max_p.def_vjp(_extremum_vjp)
reduce_max_p.def_vmap(_reduce_vmap(reduce_max_p))
reduce_max_p.def_accumulate(_max_update, identity=_lowest, reads_twice=True)


def reduce_max(x, axes):
    """Maximum of `x` over `axes`; ties share the gradient evenly.

    >>> reduce_max(np.array([[1., 5.], [7., 2.]]), (1,))   # array([5., 7.])
    """
    axes = _normalize_axes("reduce_max", x, axes)
    if not axes:
        return x
    return reduce_max_p.bind(x, axes=axes)


reduce_min_p = Primitive("reduce_min", kind="reduction")
reduce_min_p.def_impl(_min_impl)
reduce_min_p.def_shape(_reduce_shape("reduce_min"))
reduce_min_p.def_jvp(_extremum_jvp)
reduce_min_p.def_vjp(_extremum_vjp)
reduce_min_p.def_vmap(_reduce_vmap(reduce_min_p))
reduce_min_p.def_accumulate(_min_update, identity=_highest, reads_twice=True)


def reduce_min(x, axes):
    """Minimum of `x` over `axes`; ties share the gradient evenly."""
    axes = _normalize_axes("reduce_min", x, axes)
    if not axes:
        return x
    return reduce_min_p.bind(x, axes=axes)


# --- reduce_and / reduce_or (all / any) ---------------------------------------------

def _bool_reduce_shape(name):
    def shape(x, *, axes):
        if x.dtype != np.bool_:
            raise FungradTypeError(f"{name}: needs a bool operand, got {x}")
        return _reduce_shape(name)(x, axes=axes)
    return shape


reduce_and_p = Primitive("reduce_and", kind="reduction")
reduce_and_p.def_impl(lambda x, *, axes: np.all(x, axis=axes))
reduce_and_p.def_shape(_bool_reduce_shape("reduce_and"))
reduce_and_p.def_jvp(nondifferentiable)
reduce_and_p.def_vjp(nondifferentiable)
reduce_and_p.def_vmap(_reduce_vmap(reduce_and_p))
reduce_and_p.def_accumulate(lambda acc, v, dtype: f"{acc} = {acc} and {v}",
                            identity=lambda dtype: True)


def reduce_and(x, axes):
    """Logical AND (`all`) of a bool array over `axes`."""
    axes = _normalize_axes("reduce_and", x, axes)
    if not axes:
        return x
    return reduce_and_p.bind(x, axes=axes)


reduce_or_p = Primitive("reduce_or", kind="reduction")
reduce_or_p.def_impl(lambda x, *, axes: np.any(x, axis=axes))
reduce_or_p.def_shape(_bool_reduce_shape("reduce_or"))
reduce_or_p.def_jvp(nondifferentiable)
reduce_or_p.def_vjp(nondifferentiable)
reduce_or_p.def_vmap(_reduce_vmap(reduce_or_p))
reduce_or_p.def_accumulate(lambda acc, v, dtype: f"{acc} = {acc} or {v}",
                           identity=lambda dtype: False)


def reduce_or(x, axes):
    """Logical OR (`any`) of a bool array over `axes`."""
    axes = _normalize_axes("reduce_or", x, axes)
    if not axes:
        return x
    return reduce_or_p.bind(x, axes=axes)


# --- shifts and scans (helpers of the product and cumulative rules) ------------------

def _shift(x, s, axis, fill, toward_end=True):
    """x moved by s positions along `axis` (toward higher indices if toward_end),
    the vacated positions filled with `fill`."""
    x_aval = aval_of(x)
    n = x_aval.shape[axis]
    s = int(np.minimum(s, n))
    lo, hi = [0] * x_aval.ndim, list(x_aval.shape)
    config = [(0, 0, 0)] * x_aval.ndim
    if toward_end:
        hi[axis] = n - s
        config[axis] = (s, 0, 0)
    else:
        lo[axis] = s
        config[axis] = (0, s, 0)
    return pad(slice(x, lo, hi), x_aval.dtype.type(fill), config)


def _linear_scan(a, b, axis, toward_end=True):
    """h with h_k = a_k h_(k-1) + b_k (h_(-1) = 0) along `axis`, or h_k = a_k h_(k+1) + b_k
    when not toward_end; a log-depth (Hillis-Steele) scan of muls and adds, so it is
    exact with zeros and differentiable again."""
    n = aval_of(a).shape[axis]
    step = 1
    while step < n:
        a_prev = _shift(a, step, axis, 1, toward_end)
        b_prev = _shift(b, step, axis, 0, toward_end)
        # compose (a_prev, b_prev) then (a, b): h -> a (a_prev h + b_prev) + b
        b = add(mul(a, b_prev), b)
        a = mul(a, a_prev)
        step *= 2
    return b


def _cum_shape(name, allow_bool=False):
    def shape(x, *, axis, reverse):
        if not 0 <= axis < x.ndim:
            raise FungradValueError(f"{name}: axis {axis} is out of range for {x}")
        if x.dtype == np.bool_ and not allow_bool:
            raise FungradTypeError(f"{name}: needs a numeric operand, got {x}; "
                                   "convert it with convert_element_type first")
        return x
    return shape


def _cum_impl(fn):
    def impl(x, *, axis, reverse):
        x = np.asarray(x)
        if reverse:
            return np.flip(fn(np.flip(x, axis), axis), axis)
        return fn(x, axis)
    return impl


def _cum_vmap(prim):
    def rule(axis_size, args, dims, *, axis, reverse):
        x = move_axis_to_front(args[0], dims[0])
        return prim.bind(x, axis=axis + 1, reverse=reverse), 0
    return rule


def _cum_lower(update):
    """The kernel lines of a cumulative op: loops over the other dimensions, then one
    running value along `axis` folded by the statement `update(acc, v, dtype)`
    (np.cumsum with an axis takes numba seconds to compile; numba has no cumprod,
    accumulate or flip with an axis)."""
    def lower(gen, inputs, outputs, *, axis, reverse):
        (x,), (out,) = inputs, outputs
        aval = out.aval
        if aval.dtype.kind == "c" and update in (_max_update, _min_update):
            raise CodegenError(f"a running extremum of {aval} is not compiled",
                               "cumulative extremum")
        o, lines = gen.name(out), gen.lines
        n = aval.shape[axis]
        lines.append(f"    {o} = np.empty({aval.shape!r}, {np_dtype(aval.dtype)})")
        indent = "    "
        idx = []
        for d, size in enumerate(aval.shape):
            if d == axis:
                idx.append("_j")
                continue
            lines.append(f"{indent}for _i{d} in range({size}):")
            indent += "    "
            idx.append(f"_i{d}")
        at = f"[{', '.join(idx)}]"
        start = "False" if aval.dtype == np.bool_ else f"{np_dtype(aval.dtype)}(0)"
        inner = indent + "    "
        lines += [f"{indent}{o}_a = {start}",
                  f"{indent}for _k in range({n}):",
                  f"{inner}_j = {n - 1} - _k" if reverse else f"{inner}_j = _k",
                  f"{inner}{o}_v = {gen.at(x, idx) if x.aval.shape else gen.name(x)}",
                  f"{inner}if _k == 0:",
                  f"{inner}    {o}_a = {o}_v",
                  f"{inner}else:",
                  f"{inner}    {update(f'{o}_a', f'{o}_v', aval.dtype)}",
                  f"{inner}{o}{at} = {o}_a"]
        gen.fresh.add(out)
    return lower


def _running(op):
    """`acc = acc op v` in the operand's dtype (numba computes small integers in int64)."""
    def update(acc, v, dtype):
        text = f"{acc} {op} {v}"
        if dtype.kind in "iu" and dtype not in (np.int64, np.uint64):
            text = f"{np_dtype(dtype)}({text})"
        return f"{acc} = {text}"
    return update


def _normalize_axis(name, x, axis):
    axis = static_int(axis, "axis")
    nd = aval_of(x).ndim
    if not -nd <= axis < nd:
        raise FungradValueError(f"{name}: axis {axis} is out of range for {aval_of(x)}")
    return axis % nd


# --- cumsum -----------------------------------------------------------------------

cumsum_p = Primitive("cumsum", kind="cumulative", linear_in="all")
cumsum_p.def_impl(_cum_impl(lambda x, axis: np.cumsum(x, axis, dtype=x.dtype)))
cumsum_p.def_shape(_cum_shape("cumsum"))
cumsum_p.def_jvp(lambda t, x, *, out, axis, reverse: cumsum(t, axis, reverse))
# the transpose of a prefix sum is a suffix sum
cumsum_p.def_vjp(lambda ct, x, *, out, axis, reverse: (cumsum(ct, axis, not reverse),))
cumsum_p.def_vmap(_cum_vmap(cumsum_p))
cumsum_p.def_lower(_cum_lower(_running("+")))


def cumsum(x, axis: int, reverse: bool = False):
    """Inclusive cumulative sum along `axis` (from the end if `reverse`)."""
    return cumsum_p.bind(x, axis=_normalize_axis("cumsum", x, axis), reverse=bool(reverse))


# --- cumprod ----------------------------------------------------------------------

def _cumprod_jvp(t, x, *, out, axis, reverse):
    # dy_k = x_k dy_(k-1) + t_k y_(k-1): a linear recurrence, exact when x has zeros
    y_before = _shift(out, 1, axis, 1, not reverse)
    return _linear_scan(x, mul(t, y_before), axis, not reverse)


def _cumprod_vjp(ct, x, *, out, axis, reverse):
    # x_bar_i = (prod_(j<i) x_j) R_i with R_i = ct_i + x_(i+1) R_(i+1): no division by x
    y_before = _shift(out, 1, axis, 1, not reverse)
    x_next = _shift(x, 1, axis, 0, reverse)
    suffix = _linear_scan(x_next, ct, axis, reverse)
    return (mul(y_before, suffix),)


cumprod_p = Primitive("cumprod", kind="cumulative")
cumprod_p.def_impl(_cum_impl(lambda x, axis: np.cumprod(x, axis, dtype=x.dtype)))
cumprod_p.def_shape(_cum_shape("cumprod"))
cumprod_p.def_jvp(_cumprod_jvp)
cumprod_p.def_vjp(_cumprod_vjp)
cumprod_p.def_vmap(_cum_vmap(cumprod_p))
cumprod_p.def_lower(_cum_lower(_running("*")))


def cumprod(x, axis: int, reverse: bool = False):
    """Inclusive cumulative product along `axis`; its derivatives are exact with zeros."""
    return cumprod_p.bind(x, axis=_normalize_axis("cumprod", x, axis), reverse=bool(reverse))


# --- cummax / cummin --------------------------------------------------------------

def _cum_tie_weights(x, out, axis, reverse):
    """(hits, same, count) for the even tie split of cummax/cummin, in O(n log n).

    y_k's prefix positions i with x_i == y_k are exactly the `hits` (x_i == y_i) of the
    run of equal outputs that ends at k (y is monotone), so "sum over the tied
    positions" is a cumulative sum that restarts where y changes: `same` is 1 where
    y equals its predecessor, and count_k = that restarting sum of hits."""
    x_aval = aval_of(x)
    dtype = x_aval.dtype
    forward = not reverse
    hits = convert_element_type(eq(x, out), dtype)
    has_prev = _shift(_ones(x_aval), 1, axis, 0, forward)
    same = mul(convert_element_type(eq(out, _shift(out, 1, axis, 0, forward)), dtype),
                  has_prev)
    count = lax_max(_linear_scan(same, hits, axis, forward), dtype.type(1))  # 1 if x holds NaN
    return hits, same, count


def _ones(aval):
    return full(aval.shape, 1, aval.dtype)


def _cum_extremum_jvp(t, x, *, out, axis, reverse):
    # dy_k = (sum of t_i over the positions tied with y_k in its prefix) / their count
    hits, same, count = _cum_tie_weights(x, out, axis, reverse)
    return div(_linear_scan(same, mul(hits, t), axis, not reverse), count)


def _cum_extremum_vjp(ct, x, *, out, axis, reverse):
    # the transpose: x_bar_i = hit_i * sum of ct_k / count_k over the k whose run holds i
    hits, same, count = _cum_tie_weights(x, out, axis, reverse)
    same_next = _shift(same, 1, axis, 0, reverse)
    return (mul(hits, _linear_scan(same_next, div(ct, count), axis, reverse)),)


cummax_p = Primitive("cummax", kind="cumulative")
cummax_p.def_impl(_cum_impl(lambda x, axis: np.maximum.accumulate(x, axis)))
cummax_p.def_shape(_cum_shape("cummax", allow_bool=True))
cummax_p.def_jvp(_cum_extremum_jvp)
cummax_p.def_vjp(_cum_extremum_vjp)
cummax_p.def_vmap(_cum_vmap(cummax_p))
cummax_p.def_lower(_cum_lower(_max_update))


def cummax(x, axis: int, reverse: bool = False):
    """Running maximum along `axis`; ties within a prefix share the gradient evenly."""
    return cummax_p.bind(x, axis=_normalize_axis("cummax", x, axis), reverse=bool(reverse))


cummin_p = Primitive("cummin", kind="cumulative")
cummin_p.def_impl(_cum_impl(lambda x, axis: np.minimum.accumulate(x, axis)))
cummin_p.def_shape(_cum_shape("cummin", allow_bool=True))
cummin_p.def_jvp(_cum_extremum_jvp)
cummin_p.def_vjp(_cum_extremum_vjp)
cummin_p.def_vmap(_cum_vmap(cummin_p))
cummin_p.def_lower(_cum_lower(_min_update))


def cummin(x, axis: int, reverse: bool = False):
    """Running minimum along `axis`; ties within a prefix share the gradient evenly."""
    return cummin_p.bind(x, axis=_normalize_axis("cummin", x, axis), reverse=bool(reverse))


# --- reduce_prod --------------------------------------------------------------------

def _prod_impl(x, *, axes):
    x = np.asarray(x)
    if not axes:
        return x
    wide = WIDE_ACCUMULATOR.get(x.dtype)
    if wide is None:
        return np.prod(x, axis=axes, dtype=x.dtype)
    # float16/float32 products accumulate in float64 and round once (kernels too)
    return np.asarray(np.prod(x, axis=axes, dtype=wide)).astype(x.dtype)[()]


def _prod_partials(x, axes):
    """d prod / d x_i = (product of the others), from exclusive prefix and suffix
    products over the reduced elements: exact when x has zeros."""
    x_aval = aval_of(x)
    kept = _kept_dims(x_aval, axes)
    perm = kept + tuple(axes)
    moved = transpose(x, perm)
    moved_shape = aval_of(moved).shape
    n = int(np.prod([x_aval.shape[a] for a in axes], dtype=np.int64))
    flat = reshape(moved, moved_shape[:len(kept)] + (n,))
    last = len(kept)
    before = _shift(cumprod(flat, last), 1, last, 1, True)
    after = _shift(cumprod(flat, last, reverse=True), 1, last, 1, False)
    partials = reshape(mul(before, after), moved_shape)
    return transpose(partials, tuple(np.argsort(perm).tolist()))


reduce_prod_p = Primitive("reduce_prod", kind="reduction")
reduce_prod_p.def_impl(_prod_impl)
reduce_prod_p.def_shape(_reduce_shape("reduce_prod"))
reduce_prod_p.def_jvp(lambda t, x, *, out, axes: reduce_sum(
    mul(t, _prod_partials(x, axes)), axes))
reduce_prod_p.def_vjp(lambda ct, x, *, out, axes: (
    mul(_expand_to(ct, aval_of(x), axes), _prod_partials(x, axes)),))
reduce_prod_p.def_vmap(_reduce_vmap(reduce_prod_p))
reduce_prod_p.def_accumulate(narrow_accumulate("*"), identity=lambda dtype: 1, wide=True)


def reduce_prod(x, axes):
    """Product of `x` over `axes`; derivatives are exact when x has zeros.

    >>> reduce_prod(np.array([2., 0., 3.]), (0,))   # 0.0, gradient [0., 6., 0.]
    """
    axes = _normalize_axes("reduce_prod", x, axes)
    if not axes:
        return x
    return reduce_prod_p.bind(x, axes=axes)


# --- argmax / argmin --------------------------------------------------------------

def _arg_shape(name):
    def shape(x, *, axis, index_dtype):
        if not 0 <= axis < x.ndim:
            raise FungradValueError(f"{name}: axis {axis} is out of range for {x}")
        if x.shape[axis] == 0:
            raise FungradValueError(f"{name}: attempt to get {name} of an empty axis of {x}")
        if not np.issubdtype(index_dtype, np.integer):
            raise FungradTypeError(f"{name}: index_dtype must be an integer type, "
                                   f"got {np.dtype(index_dtype)}")
        return ShapedArray([d for i, d in enumerate(x.shape) if i != axis], index_dtype)
    return shape


def _arg_impl(fn):
    def impl(x, *, axis, index_dtype):
        x = np.asarray(x)
        if x.shape[axis] == 0:
            raise FungradValueError(f"{fn.__name__}: attempt to get {fn.__name__} of an empty "
                                    f"axis of {ShapedArray.of(x)}")
        return np.asarray(fn(x, axis=axis)).astype(index_dtype)[()]
    return impl


def _arg_vmap(prim):
    def rule(axis_size, args, dims, *, axis, index_dtype):
        x = move_axis_to_front(args[0], dims[0])
        return prim.bind(x, axis=axis + 1, index_dtype=index_dtype), 0
    return rule


def _arg_emit(fn, x, axis, index_dtype):
    text = f"{fn}({x}, axis={axis})"   # numba's result is int64 (scalar for 1-D input)
    return text if np.dtype(index_dtype) == np.int64 else f"{text}.astype(np.{index_dtype.name})"


argmax_p = Primitive("argmax", kind="reduction")
argmax_p.def_impl(_arg_impl(np.argmax))
argmax_p.def_shape(_arg_shape("argmax"))
argmax_p.def_jvp(nondifferentiable)
argmax_p.def_vjp(nondifferentiable)
argmax_p.def_vmap(_arg_vmap(argmax_p))
argmax_p.def_emit(lambda x, *, axis, index_dtype: _arg_emit("np.argmax", x, axis, index_dtype))


def _index_dtype(index_dtype) -> np.dtype:
    dtype = static_dtype(index_dtype, "index_dtype")
    if dtype.kind not in "iu":
        raise FungradTypeError(at_call_site(
            f"argmax/argmin: index_dtype must be an integer dtype, got {dtype}"))
    return dtype


def argmax(x, axis: int, index_dtype=np.int64):
    """Index of the first maximum along `axis` (a NaN counts as the maximum)."""
    return argmax_p.bind(x, axis=_normalize_axis("argmax", x, axis),
                         index_dtype=_index_dtype(index_dtype))


argmin_p = Primitive("argmin", kind="reduction")
argmin_p.def_impl(_arg_impl(np.argmin))
argmin_p.def_shape(_arg_shape("argmin"))
argmin_p.def_jvp(nondifferentiable)
argmin_p.def_vjp(nondifferentiable)
argmin_p.def_vmap(_arg_vmap(argmin_p))
argmin_p.def_emit(lambda x, *, axis, index_dtype: _arg_emit("np.argmin", x, axis, index_dtype))


def argmin(x, axis: int, index_dtype=np.int64):
    """Index of the first minimum along `axis` (a NaN counts as the minimum)."""
    return argmin_p.bind(x, axis=_normalize_axis("argmin", x, axis),
                         index_dtype=_index_dtype(index_dtype))
