"""Reductions and accumulations: `sum`, `mean`, `var`, `max`, `argmax`, `cumsum`, the
NaN-ignoring forms, `all`/`any` and the comparisons built on them, and `diff`.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import lax
from ..errors import FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of, current_trace
from ._checks import axis_tuple_unsorted
from ._promotion import _convert, _scalar, _shape, result_type
from ._coercion import _as_array, _promote, ravel, reshape
from ._shape import _axes, _slice_axis, broadcast_to, ndim, shape, size
from ._creation import full, full_like
from ._elementwise import (_to_bool, add, divide, equal, isclose, isnan, logical_and, logical_not,
                           logical_or, maximum, minimum, multiply, not_equal, sqrt, subtract,
                           where as _where)

__all__ = ["sum", "mean", "all", "any", "max", "amax", "min", "amin", "prod", "nanmax", "nanmin",
           "ptp", "argmax", "argmin", "cumsum", "cumprod", "var", "std", "nansum", "nanmean",
           "count_nonzero", "average", "allclose", "array_equal", "diff", "gradient"]


def _keepdims(out, x_shape, axes):
    shape = tuple(1 if i in axes else d for i, d in enumerate(x_shape))
    return lax.reshape(out, shape)


def _accumulate(name, a, axis, dtype, out, keepdims, initial, where, identity, reduce, combine):
    """sum and prod: accumulate in NumPy's dtype, masked elements count as `identity`,
    `initial` joins the result with `combine`."""
    _no_out(name, out)
    x = _as_array(a)
    x = _convert(x, _accumulator_dtype(aval_of(x).dtype, dtype))
    if where is not None:
        x = _where(where, x, _scalar(x, identity))
    axes = _axes(axis, aval_of(x).ndim)
    res = reduce(x, axes)
    if initial is not None:
        res = combine(res, _convert(initial, aval_of(x).dtype))
    return _keepdims(res, aval_of(x).shape, axes) if keepdims else res


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum of the elements along `axis` (all of them when None).

    bool and small integers are summed in int64, like NumPy.

    >>> fungrad.numpy.sum(np.array([[1., 2.], [3., 4.]]), axis=0)
    array([4., 6.])
    """
    return _accumulate("sum", a, axis, dtype, out, keepdims, initial, where, 0,
                       lax.reduce_sum, add)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Arithmetic mean along `axis`; integers and bool give float64.

    >>> fungrad.numpy.mean(np.array([1, 2, 3, 4]))
    2.5
    """
    _no_out("mean", out)
    if (type(a) is Tracer and axis is None and dtype is None and where is None
            and not keepdims and a._var.aval.dtype.kind in "fc" and a._var.aval.size
            and a._var.aval.dtype != np.float16):
        # fast path: the mean of every element of a float traced array
        aval = a._var.aval
        total = lax.reduce_sum(a, tuple(range(aval.ndim)))
        return lax.div(total, aval.dtype.type(aval.size))
    x = _as_array(a)
    dt = np.dtype(dtype) if dtype is not None else result_type(x)
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    if dt == np.float16:
        # as NumPy and JAX: the sum and the division in float32, rounded once to float16
        wide = mean(_convert(x, np.float32), axis=axis, keepdims=keepdims, where=where)
        out16 = _convert(wide, np.float16)
        return out16[()] if type(out16) is np.ndarray else out16
    x = _convert(x, dt)
    axes = _axes(axis, aval_of(x).ndim)
    if where is not None:
        mask = broadcast_to(_to_bool(where), aval_of(x).shape)
        total = sum(x, axis=axis, keepdims=keepdims, where=mask)
        count = sum(mask, axis=axis, keepdims=keepdims)
        return divide(total, _convert(count, dt))
    n = int(np.prod([aval_of(x).shape[i] for i in axes], dtype=np.int64))
    total = sum(x, axis=axis, keepdims=keepdims)
    return lax.div(total, _scalar(total, n)) if n else multiply(total, _scalar(total, np.nan))


def _no_out(name, out):
    if out is not None:
        raise FungradTypeError(f"{name}: out= is not supported (arrays are immutable); "
                               "use the returned value")


def _accumulator_dtype(dt, dtype=None):
    """The dtype NumPy sums/products in: small ints and bool widen to 64 bits."""
    if dtype is not None:
        return np.dtype(dtype)
    if dt == np.bool_ or (np.issubdtype(dt, np.signedinteger) and dt.itemsize < 8):
        return np.dtype(np.int64)
    if np.issubdtype(dt, np.unsignedinteger) and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


def _maxmin(name, reduce_fn, pick, bool_reduce):
    def reduction(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(name, out)
        x = _as_array(a)
        aval = aval_of(x)
        axes = _axes(axis, aval.ndim)
        if where is not None:
            if initial is None:
                raise FungradValueError(f"reduction operation '{name}' does not have an "
                                        "identity, so to use a where mask one has to specify "
                                        "'initial'")
            x = _where(where, x, _convert(initial, aval.dtype))
        empty = builtins.any(aval.shape[ax] == 0 for ax in axes)
        if empty:
            if initial is None:
                raise FungradValueError(f"zero-size array to reduction operation {name} which "
                                        "has no identity")
            kept = tuple(1 if i in axes else d for i, d in enumerate(aval.shape))
            res = full(kept, initial, aval.dtype)
            return res if keepdims else reshape(res, [d for i, d in enumerate(aval.shape)
                                                      if i not in axes])
        if aval.dtype == np.bool_:
            res = bool_reduce(x, axis=axes)
        else:
            res = reduce_fn(x, axes) if axes else x
        if initial is not None:
            res = pick(res, _convert(initial, aval.dtype))
        return _keepdims(res, aval.shape, axes) if keepdims else res
    reduction.__name__ = name
    return reduction


def _logical_reduction(name, lax_fn):
    def reduction(a, axis=None, out=None, keepdims=False, *, where=None):
        _no_out(name, out)
        x = _to_bool(a)
        if where is not None:
            identity = name == "all"
            x = _where(where, x, np.bool_(identity))
        axes = _axes(axis, aval_of(x).ndim)
        res = lax_fn(x, axes)
        return _keepdims(res, aval_of(x).shape, axes) if keepdims else res
    reduction.__name__ = name
    return reduction


all = _logical_reduction("all", lambda x, axes: lax.reduce_and(x, axes))
any = _logical_reduction("any", lambda x, axes: lax.reduce_or(x, axes))
all.__doc__ = """True where every element along `axis` is nonzero (bool result).

    >>> fungrad.numpy.all(np.array([[1, 0], [1, 1]]), axis=1)
    array([False,  True])
    """
any.__doc__ = """True where some element along `axis` is nonzero (bool result)."""


max = amax = _maxmin("max", lambda x, axes: lax.reduce_max(x, axes), lambda a, b: maximum(a, b),
                     any)
min = amin = _maxmin("min", lambda x, axes: lax.reduce_min(x, axes), lambda a, b: minimum(a, b),
                     all)
max.__doc__ = """Largest element along `axis` (NumPy's `max`/`amax`); the gradient goes to
the maximal elements (ties share it). `initial` and `where` as in NumPy."""
min.__doc__ = """Smallest element along `axis` (NumPy's `min`/`amin`)."""


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product of the elements along `axis`; small ints and bool multiply in int64.

    >>> fungrad.numpy.prod(np.array([[1., 2.], [3., 4.]]), axis=0)
    array([3., 8.])
    """
    return _accumulate("prod", a, axis, dtype, out, keepdims, initial, where, 1,
                       lambda x, axes: lax.reduce_prod(x, axes) if axes else x, multiply)


def _nan_reduction(name, reduce_fn, fill):
    def reduction(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        x = _as_array(a)
        if not np.issubdtype(result_type(x), np.inexact):
            return reduce_fn(x, axis, out, keepdims, initial, where)
        nan_mask = isnan(x)
        res = reduce_fn(_where(nan_mask, _scalar(x, fill), x), axis, out, keepdims,
                        initial, where)
        all_nan = all(nan_mask, axis=axis, keepdims=keepdims)
        return _where(all_nan, _scalar(x, np.nan), res)
    reduction.__name__ = name
    reduction.__doc__ = f"{name[3:]} that ignores NaN (NaN where a slice is all NaN)."
    return reduction


nanmax = _nan_reduction("nanmax", lambda *a: max(*a), -np.inf)
nanmin = _nan_reduction("nanmin", lambda *a: min(*a), np.inf)


def ptp(a, axis=None, out=None, keepdims=False):
    """max - min along `axis` (peak to peak)."""
    return subtract(max(a, axis, out, keepdims), min(a, axis, out, keepdims))


def _arg_reduce(name, lax_fn):
    def arg_reduce(a, axis=None, out=None, *, keepdims=False):
        _no_out(name, out)
        x = _as_array(a)
        shape0 = aval_of(x).shape
        if axis is None:
            x = ravel(x)
            ax = 0
        else:
            ax = _axes(axis, aval_of(x).ndim)
            if not ax:
                raise np.exceptions.AxisError(f"axis {axis} is out of bounds for array of "
                                              "dimension 0")
            ax = ax[0]
        if aval_of(x).shape[ax] == 0:
            raise FungradValueError(f"attempt to get {name} of an empty sequence")
        if aval_of(x).dtype == np.bool_:
            x = _convert(x, np.int8)
        res = lax_fn(x, ax, np.dtype(np.int64))
        if keepdims:
            kept = tuple(1 if axis is None or i == ax else d for i, d in enumerate(shape0))
            return lax.reshape(res, kept)
        return res
    arg_reduce.__name__ = name
    arg_reduce.__doc__ = (f"Index (int64) of the {name[3:]}imum along `axis` (of the "
                          "flattened array when `axis` is None); the first one on ties.")
    return arg_reduce


argmax = _arg_reduce("argmax", lambda x, ax, dt: lax.argmax(x, ax, dt))
argmin = _arg_reduce("argmin", lambda x, ax, dt: lax.argmin(x, ax, dt))


def _cumulative(name, lax_name):
    def cumulative(a, axis=None, dtype=None, out=None):
        _no_out(name, out)
        x = _as_array(a)
        if axis is None:
            x, axis = ravel(x), 0
        (ax,) = _axes(axis, aval_of(x).ndim) or (0,)
        if aval_of(x).ndim == 0:
            raise np.exceptions.AxisError(f"axis {axis} is out of bounds for array of "
                                          "dimension 0")
        x = _convert(x, _accumulator_dtype(aval_of(x).dtype, dtype))
        return getattr(lax, lax_name)(x, ax)
    cumulative.__name__ = name
    return cumulative


cumsum = _cumulative("cumsum", "cumsum")
cumprod = _cumulative("cumprod", "cumprod")
cumsum.__doc__ = """Running sum along `axis` (of the flattened array when `axis` is None).

    >>> fungrad.numpy.cumsum(np.array([1, 2, 3]))
    array([1, 3, 6])
    """
cumprod.__doc__ = """Running product along `axis` (of the flattened array when None)."""


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance: mean(|x - mean(x)|**2) * n / (n - ddof); integers give float64.

    >>> fungrad.numpy.var(np.array([1., 2., 3., 4.]), ddof=1)
    1.6666666666666667
    """
    _no_out("var", out)
    if correction is not None:
        ddof = correction
    x = _as_array(a)
    dt = np.dtype(dtype) if dtype is not None else result_type(x)
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    x = _convert(x, dt)
    if mean is None:
        mean = globals()["mean"](x, axis=axis, keepdims=True, where=where)
    centered = subtract(x, mean)
    squared = multiply(centered, centered)
    if where is not None:
        mask = broadcast_to(_to_bool(where), aval_of(x).shape)
        count = sum(mask, axis=axis, keepdims=keepdims)
        total = sum(squared, axis=axis, keepdims=keepdims, where=mask)
        return divide(total, _convert(maximum(subtract(count, ddof), 0), dt))
    axes = _axes(axis, aval_of(x).ndim)
    n = int(np.prod([aval_of(x).shape[i] for i in axes], dtype=np.int64))
    total = sum(squared, axis=axis, keepdims=keepdims)
    return lax.div(total, _scalar(total, builtins.max(n - ddof, 0)))


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation: sqrt(var(...)) with the same arguments."""
    return sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                    correction=correction))


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """sum that treats NaN as 0."""
    x = _as_array(a)
    if np.issubdtype(result_type(x), np.inexact):
        x = _where(isnan(x), _scalar(x, 0), x)
    return sum(x, axis, dtype, out, keepdims, initial, where)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """mean over the non-NaN elements."""
    _no_out("nanmean", out)
    x = _as_array(a)
    if not np.issubdtype(result_type(x), np.inexact):
        return mean(x, axis, dtype, keepdims=keepdims, where=where)
    valid = logical_not(isnan(x))
    if where is not None:
        valid = logical_and(valid, where)
    return mean(x, axis, dtype, keepdims=keepdims, where=valid)


def count_nonzero(a, axis=None, *, keepdims=False):
    """Number of nonzero elements along `axis` (int64)."""
    return sum(_to_bool(a), axis=axis, keepdims=keepdims)


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Weighted mean along `axis` (weights of a's shape, or 1-D along one axis)."""
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        n = size(a) if axis is None else int(np.prod(
            [shape(a)[ax] for ax in _axes(axis, ndim(a))], dtype=np.int64))
        return (avg, full_like(avg, n)) if returned else avg
    x, w = _promote(a, weights, to_inexact=True)
    if _shape(w) != _shape(x):
        if axis is None or ndim(w) != 1:
            raise FungradTypeError("average: 1-D weights need an axis; otherwise weights "
                                   "must have a's shape")
        ax = _axes(axis, ndim(x))[0]
        w = lax.broadcast_in_dim(w, _shape(x), (ax,))
    total_w = sum(w, axis, keepdims=keepdims)
    avg = divide(sum(multiply(x, w), axis, keepdims=keepdims), total_w)
    return (avg, total_w) if returned else avg


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """all(isclose(a, b)), a 0-d bool (a traced one inside a trace)."""
    return all(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a1, a2, equal_nan=False):
    """True when shapes match and all elements are equal."""
    if _shape(_as_array(a1)) != _shape(_as_array(a2)):
        return np.bool_(False) if current_trace() is None else full((), False, np.bool_)
    eq = equal(a1, a2)
    if equal_nan:
        eq = logical_or(eq, logical_and(isnan(a1), isnan(a2)))
    return all(eq)


def diff(a, n=1, axis=-1):
    """n-th discrete difference along `axis`: a[1:] - a[:-1], n times."""
    x = _as_array(a)
    (ax,) = _axes(axis, aval_of(x).ndim)
    for _ in range(n):
        length = aval_of(x).shape[ax]
        hi = _slice_axis(x, ax, builtins.min(1, length), length)
        lo = _slice_axis(x, ax, 0, builtins.max(length - 1, 0))
        x = not_equal(hi, lo) if aval_of(x).dtype == np.bool_ else subtract(hi, lo)
    return x


def _gradient_axis(f, ax: int, spacing, edge_order: int):
    """NumPy's gradient along one axis: second-order central differences inside,
    one-sided differences of order `edge_order` at both ends; `spacing` is a scalar
    step or the coordinates along the axis."""
    n = aval_of(f).shape[ax]
    if n < edge_order + 1:
        raise FungradValueError("Shape of array too small to calculate a numerical gradient, "
                                "at least (edge_order + 1) elements are required.")
    nd = aval_of(f).ndim

    def along(v):
        """A 1-d array of the axis' length, shaped to broadcast along `ax`."""
        return reshape(v, tuple(-1 if d == ax else 1 for d in range(nd)))

    def part(start, stop):
        return _slice_axis(f, ax, start, stop)

    if np.ndim(spacing) == 0 and not (isinstance(spacing, Tracer) and spacing.ndim):
        uniform = True
        h = spacing
    else:
        coords = _as_array(spacing)
        if aval_of(coords).shape != (n,):
            raise FungradValueError("when 1d, distances must match the length of the "
                                    "corresponding dimension")
        coords = _convert(coords, result_type(f, coords))
        dx_all = subtract(_slice_axis(coords, 0, 1, n), _slice_axis(coords, 0, 0, n - 1))
        uniform = False
    if uniform:
        if edge_order == 1:
            first = divide(subtract(part(1, 2), part(0, 1)), h)
            last = divide(subtract(part(n - 1, n), part(n - 2, n - 1)), h)
        else:
            first = divide(add(add(multiply(part(0, 1), -1.5), multiply(part(1, 2), 2.0)),
                               multiply(part(2, 3), -0.5)), h)
            last = divide(add(add(multiply(part(n - 3, n - 2), 0.5),
                                  multiply(part(n - 2, n - 1), -2.0)),
                              multiply(part(n - 1, n), 1.5)), h)
        if n > 2:
            middle = divide(subtract(part(2, n), part(0, n - 2)), multiply(h, 2.0))
    else:
        d = lambda i: _slice_axis(dx_all, 0, i, i + 1)  # noqa: E731
        if edge_order == 1:
            first = divide(subtract(part(1, 2), part(0, 1)), along(d(0)))
            last = divide(subtract(part(n - 1, n), part(n - 2, n - 1)), along(d(n - 2)))
        else:
            d1, d2 = d(0), d(1)
            a = divide(_negative(add(multiply(d1, 2.0), d2)), multiply(d1, add(d1, d2)))
            b = divide(add(d1, d2), multiply(d1, d2))
            c = divide(_negative(d1), multiply(d2, add(d1, d2)))
            first = add(add(multiply(along(a), part(0, 1)), multiply(along(b), part(1, 2))),
                        multiply(along(c), part(2, 3)))
            d1, d2 = d(n - 3), d(n - 2)
            a = divide(d2, multiply(d1, add(d1, d2)))
            b = divide(_negative(add(d2, d1)), multiply(d1, d2))
            c = divide(add(multiply(d2, 2.0), d1), multiply(d2, add(d1, d2)))
            last = add(add(multiply(along(a), part(n - 3, n - 2)),
                           multiply(along(b), part(n - 2, n - 1))),
                       multiply(along(c), part(n - 1, n)))
        if n > 2:
            d1 = _slice_axis(dx_all, 0, 0, n - 2)
            d2 = _slice_axis(dx_all, 0, 1, n - 1)
            a = divide(_negative(d2), multiply(d1, add(d1, d2)))
            b = divide(subtract(d2, d1), multiply(d1, d2))
            c = divide(d1, multiply(d2, add(d1, d2)))
            middle = add(add(multiply(along(a), part(0, n - 2)),
                             multiply(along(b), part(1, n - 1))),
                         multiply(along(c), part(2, n)))
    pieces = [first] + ([middle] if n > 2 else []) + [last]
    return lax.concatenate(_promote(*pieces), ax)


def _negative(x):
    return lax.neg(x) if isinstance(x, Tracer) else np.negative(x)


def gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's numerical gradient: second-order central differences in the interior and
    one-sided differences of order `edge_order` (1 or 2) at the boundaries, along each
    of `axis` (default: all).  `varargs`: one spacing for all axes, or one per axis,
    each a scalar step or the coordinates along that axis.  Returns one array for one
    axis, else a list.  Integer inputs give float64.  Differentiable in f and in the
    spacings."""
    x = _as_array(f)
    if not np.issubdtype(result_type(x), np.inexact):
        x = _convert(x, np.float64)
    nd = aval_of(x).ndim
    axes = tuple(range(nd)) if axis is None else axis_tuple_unsorted(axis, nd)
    if edge_order not in (1, 2):
        raise FungradValueError("'edge_order' greater than 2 not supported")
    if not varargs:
        spacings = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacings = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise FungradTypeError("invalid number of arguments")
    out = [_gradient_axis(x, ax, h, edge_order) for ax, h in zip(axes, spacings, strict=True)]
    return out[0] if len(out) == 1 else out
