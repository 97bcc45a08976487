"""`fungrad.numpy`: NumPy's API on top of the primitives.

Broadcasting and dtype promotion happen here (primitives are strict): NumPy 2's
rules, with Python scalars weak (`float32_array * 2.0` stays float32) and float64
the default float.  On concrete inputs outside any trace the functions simply
compute and return NumPy arrays.
"""
from __future__ import annotations

import builtins
import functools
from typing import Any, Sequence

import numpy as np

from .. import lax
from ..core import ShapedArray
from ..errors import FungradIndexError, FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of, current_trace

# dtypes and constants, as in numpy
from numpy import (bool_, complex64, complex128, dtype, e, euler_gamma, finfo, float16,  # noqa: F401
                   float32, float64, iinfo, inf, int8, int16, int32, int64, issubdtype, nan,
                   ndarray, newaxis, pi, uint8, uint32, uint64, inexact, floating, integer,
                   number, signedinteger, unsignedinteger, complexfloating, generic)

float_ = float64
int_ = int64

_PY_SCALARS = (int, float, bool, complex)


# ---------------------------------------------------------------------------
# promotion and broadcasting
# ---------------------------------------------------------------------------

def _dtype_of(x):
    if isinstance(x, Tracer):
        return x.var.aval.dtype
    if isinstance(x, _PY_SCALARS):
        return None
    return np.result_type(x)


def result_type(*args) -> np.dtype:
    """NumPy 2 promotion; Python scalars are weak (they adopt the array's kind)."""
    typed = []
    for a in args:
        if isinstance(a, Tracer):
            typed.append(a.var.aval.dtype)
        elif isinstance(a, (np.dtype, type)) and not isinstance(a, _PY_SCALARS):
            typed.append(np.dtype(a))
        else:
            typed.append(a if isinstance(a, _PY_SCALARS) else np.result_type(a))
    return np.result_type(*typed)


def _as_operand(x):
    """A Tracer stays; anything else becomes an ndarray (lists stacked)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (list, tuple)):
        return array(x)
    if isinstance(x, _PY_SCALARS):
        return x
    return np.asarray(x)


def _convert(x, dtype):
    """x with dtype `dtype` (Python scalars become NumPy scalars of that dtype)."""
    if isinstance(x, _PY_SCALARS):
        return np.dtype(dtype).type(x)
    if isinstance(x, Tracer):
        return lax.convert_element_type(x, dtype) if x.dtype != dtype else x
    x = np.asarray(x)
    if x.dtype != dtype:
        if current_trace() is not None:
            return lax.convert_element_type(x, dtype)
        return x.astype(dtype)
    return x


def _shape(x):
    if isinstance(x, _PY_SCALARS):
        return ()
    return aval_of(x).shape


def _promote(*args, to_inexact=False):
    args = [_as_operand(a) for a in args]
    dt = result_type(*args)
    if to_inexact and not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    return [_convert(a, dt) for a in args]


def _broadcast(*args, allow_scalars=True):
    """Broadcast operands to a common shape; 0-d operands stay 0-d when allowed
    (binary primitives apply a scalar to every element)."""
    shapes = [_shape(a) for a in args]
    try:
        out_shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise FungradValueError(
            "operands could not be broadcast together with shapes "
            + " ".join(str(s) for s in shapes)) from None
    res = []
    for a, s in zip(args, shapes):
        if s == out_shape or (allow_scalars and s == ()):
            res.append(a)
        else:
            res.append(lax.broadcast_to(a, out_shape))
    return res


def _binary(fn, to_inexact=False):
    def op(x, y):
        x, y = _promote(x, y, to_inexact=to_inexact)
        x, y = _broadcast(x, y)
        return fn(x, y)
    return op


def _unary_float(fn):
    """An elementwise function on inexact values (ints are promoted to float64)."""
    @functools.wraps(fn)
    def op(x):
        x = _as_operand(x)
        dt = result_type(x)
        if not np.issubdtype(dt, np.inexact):
            x = _convert(x, np.float64)
        elif isinstance(x, _PY_SCALARS):
            x = _convert(x, dt)
        return fn(x)
    return op


# ---------------------------------------------------------------------------
# elementwise
# ---------------------------------------------------------------------------

add = _binary(lax.add)
subtract = _binary(lax.sub)
multiply = _binary(lax.mul)
true_divide = divide = _binary(lax.div, to_inexact=True)
maximum = _binary(lax.max)
minimum = _binary(lax.min)
arctan2 = _binary(lax.atan2, to_inexact=True)
nextafter = _binary(lax.nextafter, to_inexact=True)
equal = _binary(lax.eq)
not_equal = _binary(lax.ne)
less = _binary(lax.lt)
less_equal = _binary(lax.le)
greater = _binary(lax.gt)
greater_equal = _binary(lax.ge)
bitwise_and = _binary(lax.bitwise_and)
bitwise_or = _binary(lax.bitwise_or)
bitwise_xor = _binary(lax.bitwise_xor)


def logical_and(x, y):
    return bitwise_and(_to_bool(x), _to_bool(y))


def logical_or(x, y):
    return bitwise_or(_to_bool(x), _to_bool(y))


def logical_xor(x, y):
    return bitwise_xor(_to_bool(x), _to_bool(y))


def logical_not(x):
    return lax.bitwise_not(_to_bool(x))


def invert(x):
    return lax.bitwise_not(_as_operand(x))


bitwise_not = invert


def _to_bool(x):
    x = _as_operand(x)
    if result_type(x) == np.bool_:
        return _convert(x, np.bool_)
    return not_equal(x, 0)


def floor_divide(x, y):
    x, y = _promote(x, y)
    x, y = _broadcast(x, y)
    if np.issubdtype(result_type(x), np.integer):
        q = lax.div(x, y)
        # truncation -> floor: subtract one where the signs differ and there is a remainder
        r = lax.rem(x, y)
        fix = lax.bitwise_and(lax.ne(r, 0), lax.ne(lax.lt(r, 0), lax.lt(y, 0)))
        return lax.select(fix, lax.sub(q, 1), q)
    return lax.floor(lax.div(x, y))


def remainder(x, y):
    """Python/NumPy modulo: the result has the sign of the divisor."""
    x, y = _promote(x, y)
    x, y = _broadcast(x, y)
    r = lax.rem(x, y)
    fix = lax.bitwise_and(lax.ne(r, 0), lax.ne(lax.lt(r, 0), lax.lt(y, 0)))
    return lax.select(fix, lax.add(r, y), r)


mod = remainder


def fmod(x, y):
    x, y = _promote(x, y)
    x, y = _broadcast(x, y)
    return lax.rem(x, y)


def power(x, y):
    """x ** y; integer exponents known at trace time use integer_pow."""
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
        x = _as_operand(x)
        if isinstance(x, _PY_SCALARS):
            x = np.asarray(x)
        if np.issubdtype(result_type(x), np.integer) and y < 0:
            raise FungradValueError("Integers to negative integer powers are not allowed.")
        return lax.integer_pow(x, int(y))
    if isinstance(y, float) and float(y).is_integer() and builtins.abs(y) <= 64:
        x = _as_operand(x)
        if np.issubdtype(result_type(x, y), np.inexact):
            return lax.integer_pow(_convert(x, result_type(x, y)), int(y))
    x, y = _promote(x, y)
    x, y = _broadcast(x, y)
    if np.issubdtype(result_type(x), np.integer):
        return _int_power(x, y)
    return lax.pow(x, y)


def _int_power(x, y):
    from ..tracing import Tracer as _T
    if not isinstance(x, _T) and not isinstance(y, _T):
        return np.power(x, y)
    raise FungradTypeError("power: integer arrays to traced integer powers are not supported; "
                           "convert to float first")


pow = power


def negative(x):
    return lax.neg(_as_operand(x))


def positive(x):
    return _as_operand(x)


def absolute(x):
    x = _as_operand(x)
    if result_type(x) == np.bool_:
        return x
    return lax.abs(x)


abs = absolute


def sign(x):
    return lax.sign(_as_operand(x))


exp = _unary_float(lax.exp)
exp2 = _unary_float(lax.exp2)
expm1 = _unary_float(lax.expm1)
log = _unary_float(lax.log)
log1p = _unary_float(lax.log1p)
sqrt = _unary_float(lax.sqrt)
cbrt = _unary_float(lax.cbrt)
sin = _unary_float(lax.sin)
cos = _unary_float(lax.cos)
tan = _unary_float(lax.tan)
arcsin = _unary_float(lax.asin)
arccos = _unary_float(lax.acos)
arctan = _unary_float(lax.atan)
sinh = _unary_float(lax.sinh)
cosh = _unary_float(lax.cosh)
tanh = _unary_float(lax.tanh)
arcsinh = _unary_float(lax.asinh)
arccosh = _unary_float(lax.acosh)
arctanh = _unary_float(lax.atanh)
asin, acos, atan, asinh, acosh, atanh = arcsin, arccos, arctan, arcsinh, arccosh, arctanh
atan2 = arctan2


@_unary_float
def log2(x):
    return lax.div(lax.log(x), x.dtype.type(np.log(2)) if not isinstance(x, Tracer)
                   else aval_of(x).dtype.type(np.log(2)))


@_unary_float
def log10(x):
    return lax.div(lax.log(x), aval_of(x).dtype.type(np.log(10)))


def square(x):
    return lax.integer_pow(_as_array(x), 2)


def reciprocal(x):
    x = _as_array(x)
    return lax.div(aval_of(x).dtype.type(1), x)


def _as_array(x):
    x = _as_operand(x)
    return np.asarray(x) if isinstance(x, _PY_SCALARS) else x


def floor(x):
    x = _as_array(x)
    return x if np.issubdtype(result_type(x), np.integer) else lax.floor(x)


def ceil(x):
    x = _as_array(x)
    return x if np.issubdtype(result_type(x), np.integer) else lax.ceil(x)


def trunc(x):
    x = _as_array(x)
    if np.issubdtype(result_type(x), np.integer):
        return x
    return lax.select(lax.lt(x, 0), lax.ceil(x), lax.floor(x))


fix = trunc


def round(x, decimals: int = 0):
    """Round half to even, like NumPy (lax.round rounds half away from zero)."""
    x = _as_array(x)
    if np.issubdtype(result_type(x), np.integer):
        return x
    if decimals:
        scale = aval_of(x).dtype.type(10.0 ** decimals)
        return lax.div(round(lax.mul(x, scale)), scale)
    r = lax.round(x)
    half = lax.eq(lax.abs(lax.sub(x, lax.trunc(x) if hasattr(lax, "trunc") else trunc(x))),
                  aval_of(x).dtype.type(0.5))
    # ties: round to the even neighbour
    even = lax.mul(lax.round(lax.mul(x, aval_of(x).dtype.type(0.5))), aval_of(x).dtype.type(2))
    return lax.select(half, even, r)


around = round
rint = round


def isfinite(x):
    x = _as_array(x)
    if not np.issubdtype(result_type(x), np.inexact):
        return full(_shape(x), True, np.bool_)
    return lax.is_finite(x)


def isnan(x):
    x = _as_array(x)
    return not_equal(x, x)


def isinf(x):
    x = _as_array(x)
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


def where(condition, x=None, y=None):
    """Elementwise `x if condition else y` (broadcasting all three)."""
    if x is None and y is None:
        raise FungradValueError("where(condition) with one argument (nonzero) has a "
                                "data-dependent shape; use where(condition, x, y)")
    cond = _to_bool(condition)
    x, y = _promote(x, y)
    cond, x, y = _broadcast(cond, x, y)
    return lax.select(cond, x, y)


def clip(a, a_min=None, a_max=None, *, min=None, max=None):
    """Clip values to [a_min, a_max]; at a bound the gradient passes through (1)."""
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    out = _as_array(a)
    if lo is not None:
        out = where(less(out, lo), lo, out)
    if hi is not None:
        out = where(greater(out, hi), hi, out)
    return out


# ---------------------------------------------------------------------------
# constructors
# ---------------------------------------------------------------------------

def _default_dtype(dtype, value=None):
    if dtype is not None:
        return np.dtype(dtype)
    if value is None:
        return np.dtype(np.float64)
    return result_type(value) if not isinstance(value, float) else np.dtype(np.float64)


def _record_constant(value: np.ndarray):
    """A constant made inside a trace, as a traced value (so `out[0] = ...` works)."""
    if value.size and np.all(value == value.flat[0]):
        return lax.full(value.shape, value.flat[0], value.dtype)
    return current_trace().constant_tracer(value)


def full(shape, fill_value, dtype=None):
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if isinstance(fill_value, Tracer):
        dt = np.dtype(dtype) if dtype is not None else fill_value.dtype
        return broadcast_to(_convert(fill_value, dt), shape)
    dt = np.dtype(dtype) if dtype is not None else (
        np.dtype(np.float64) if isinstance(fill_value, float) else result_type(fill_value))
    if current_trace() is None:
        return np.full(shape, fill_value, dtype=dt)
    fv = np.asarray(fill_value, dtype=dt)
    if fv.ndim:
        return broadcast_to(_record_constant(fv), shape)
    return lax.full(shape, fv[()], dt)


def zeros(shape, dtype=None):
    return full(shape, 0, dtype if dtype is not None else np.float64)


def ones(shape, dtype=None):
    return full(shape, 1, dtype if dtype is not None else np.float64)


def empty(shape, dtype=None):
    return zeros(shape, dtype)


def full_like(a, fill_value, dtype=None, shape=None):
    aval = aval_of(_as_array(a))
    return full(aval.shape if shape is None else shape, fill_value,
                aval.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, shape=None):
    return full_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, shape=None):
    return full_like(a, 1, dtype, shape)


def empty_like(a, dtype=None, shape=None):
    return zeros_like(a, dtype, shape)


def eye(N, M=None, k=0, dtype=None):
    value = np.eye(N, M, k, dtype=dtype if dtype is not None else np.float64)
    return value if current_trace() is None else _record_constant(value)


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def arange(start, stop=None, step=None, dtype=None):
    for v in (start, stop, step):
        if isinstance(v, Tracer):
            raise FungradTypeError(
                "arange: the bounds must be concrete (they decide the shape); got a traced "
                "value. Use a static argument or compute the bounds outside the function.")
    value = np.arange(start, stop, step, dtype=dtype) if stop is not None or step is not None \
        else np.arange(start, dtype=dtype)
    if current_trace() is None:
        return value
    if np.issubdtype(value.dtype, np.integer) and value.size and value[0] == 0 and (
            step in (None, 1)):
        return lax.iota(value.dtype, value.shape, 0)
    return _record_constant(value)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if isinstance(start, Tracer) or isinstance(stop, Tracer):
        dt = np.dtype(dtype) if dtype is not None else result_type(start, stop, 1.0)
        div = (num - 1) if endpoint else num
        steps = np.arange(num, dtype=dt) / builtins.max(div, 1)
        start_, stop_ = _as_array(start), _as_array(stop)
        out = add(multiply(subtract(stop_, start_), steps), start_) if num else zeros((0,), dt)
        if endpoint and num > 1:
            out = concatenate([out[:-1], reshape(_convert(stop_, dt), (1,))])
        return (out, (stop_ - start_) / div) if retstep else out
    value = np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype,
                        axis=axis)
    if retstep:
        value, step = value
    res = value if current_trace() is None else _record_constant(value)
    return (res, step) if retstep else res


def array(object, dtype=None, copy=True, ndmin=0):
    """An array from data; lists/tuples containing traced values are stacked."""
    if isinstance(object, Tracer):
        out = object if dtype is None else _convert(object, dtype)
    elif isinstance(object, (list, tuple)) and _contains_tracer(object):
        items = [array(o) for o in object]
        dt = np.dtype(dtype) if dtype is not None else result_type(*items)
        out = stack([_convert(i, dt) for i in items]) if items else np.zeros((0,), dt)
    else:
        value = np.array(object, dtype=dtype)
        if value.dtype == object:
            raise FungradTypeError("array: could not convert the input to a numeric array")
        out = value if current_trace() is None else _record_constant(value)
    while ndmin and aval_of(out).ndim < ndmin:
        out = expand_dims(out, 0)
    return out


def _contains_tracer(seq) -> bool:
    for o in seq:
        if isinstance(o, Tracer):
            return True
        if isinstance(o, (list, tuple)) and _contains_tracer(o):
            return True
    return False


def asarray(a, dtype=None, copy=None):
    """`a` as an array: tracers stay tracers; other values become NumPy arrays."""
    if isinstance(a, Tracer):
        return a if dtype is None else _convert(a, dtype)
    if isinstance(a, (list, tuple)) and _contains_tracer(a):
        return array(a, dtype)
    return np.asarray(a, dtype=dtype)


def astype(x, dtype):
    return _convert(_as_array(x), np.dtype(dtype))


# ---------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------

def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise np.exceptions.AxisError(f"axis {a} is out of bounds for array of dimension "
                                          f"{ndim}")
        out.append(int(a) % builtins.max(ndim, 1))
    return tuple(sorted(set(out))) if ndim else ()


def _keepdims(out, x_shape, axes):
    shape = tuple(1 if i in axes else d for i, d in enumerate(x_shape))
    return lax.reshape(out, shape)


def sum(a, axis=None, dtype=None, keepdims=False, initial=None, where=None):
    x = _as_array(a)
    dt = aval_of(x).dtype
    if dtype is not None:
        x = _convert(x, dtype)
    elif dt == np.bool_ or (np.issubdtype(dt, np.integer) and dt.itemsize < 8):
        x = _convert(x, np.int64 if np.issubdtype(dt, np.signedinteger) or dt == np.bool_
                     else np.uint64)
    if where is not None:
        x = globals()["where"](where, x, 0)
    axes = _axes(axis, aval_of(x).ndim)
    out = lax.reduce_sum(x, axes)
    if initial is not None:
        out = add(out, initial)
    return _keepdims(out, aval_of(x).shape, axes) if keepdims else out


def mean(a, axis=None, dtype=None, keepdims=False, where=None):
    x = _as_array(a)
    dt = np.dtype(dtype) if dtype is not None else result_type(x)
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    x = _convert(x, dt)
    axes = _axes(axis, aval_of(x).ndim)
    if where is not None:
        mask = broadcast_to(_to_bool(where), aval_of(x).shape)
        total = sum(globals()["where"](mask, x, 0), axis=axis, keepdims=keepdims)
        count = sum(mask, axis=axis, keepdims=keepdims)
        return divide(total, _convert(count, dt))
    n = int(np.prod([aval_of(x).shape[i] for i in axes], dtype=np.int64))
    total = sum(x, axis=axis, keepdims=keepdims)
    return lax.div(total, dt.type(n)) if n else multiply(total, dt.type(np.nan))


def _reduction(prim_fn, name, identity_ok=False):
    def reduce(a, axis=None, keepdims=False, **kwargs):
        if kwargs.get("out") is not None:
            raise FungradTypeError(f"{name}: out= is not supported (arrays are immutable)")
        x = _as_array(a)
        axes = _axes(axis, aval_of(x).ndim)
        for ax in axes:
            if aval_of(x).shape[ax] == 0 and not identity_ok:
                raise FungradValueError(
                    f"zero-size array to reduction operation {name} which has no identity")
        out = prim_fn(x, axes)
        return _keepdims(out, aval_of(x).shape, axes) if keepdims else out
    reduce.__name__ = name
    return reduce


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

def shape(a):
    return aval_of(_as_array(a)).shape


def ndim(a):
    return aval_of(_as_array(a)).ndim


def size(a, axis=None):
    s = aval_of(_as_array(a)).shape
    return int(np.prod(s, dtype=np.int64)) if axis is None else s[axis]


def reshape(a, newshape=None, order="C", *, shape=None):
    if order != "C":
        raise FungradValueError("reshape: only order='C' is supported")
    newshape = shape if newshape is None else newshape
    x = _as_array(a)
    aval = aval_of(x)
    if isinstance(newshape, (int, np.integer)):
        newshape = (newshape,)
    newshape = [int(d) for d in newshape]
    if newshape.count(-1) > 1:
        raise FungradValueError("reshape: can only specify one unknown dimension")
    if -1 in newshape:
        known = int(np.prod([d for d in newshape if d != -1], dtype=np.int64))
        if known == 0 or aval.size % known:
            raise FungradValueError(f"cannot reshape array of size {aval.size} into shape "
                                    f"{tuple(newshape)}")
        newshape[newshape.index(-1)] = aval.size // known
    if int(np.prod(newshape, dtype=np.int64)) != aval.size:
        raise FungradValueError(f"cannot reshape array of size {aval.size} into shape "
                                f"{tuple(newshape)}")
    return lax.reshape(x, newshape)


def ravel(a, order="C"):
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    x = _as_array(a)
    nd = aval_of(x).ndim
    perm = tuple(reversed(range(nd))) if axes is None else tuple(int(p) % nd for p in axes)
    return lax.transpose(x, perm)


def moveaxis(a, source, destination):
    x = _as_array(a)
    nd = aval_of(x).ndim
    src = [s % nd for s in ((source,) if np.isscalar(source) else source)]
    dst = [d % nd for d in ((destination,) if np.isscalar(destination) else destination)]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return lax.transpose(x, order)


def swapaxes(a, axis1, axis2):
    x = _as_array(a)
    nd = aval_of(x).ndim
    perm = list(range(nd))
    perm[axis1 % nd], perm[axis2 % nd] = perm[axis2 % nd], perm[axis1 % nd]
    return lax.transpose(x, perm)


def expand_dims(a, axis):
    x = _as_array(a)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    nd = aval_of(x).ndim + len(axes)
    for ax in axes:
        if not -nd <= ax < nd:
            raise np.exceptions.AxisError(f"axis {ax} is out of bounds for array of "
                                          f"dimension {nd}")
    return lax.expand_dims(x, [ax % nd for ax in axes])


def squeeze(a, axis=None):
    x = _as_array(a)
    s = aval_of(x).shape
    if axis is None:
        dims = [i for i, d in enumerate(s) if d == 1]
    else:
        dims = [ax % len(s) for ax in ((axis,) if np.isscalar(axis) else axis)]
        for d in dims:
            if s[d] != 1:
                raise FungradValueError("cannot select an axis to squeeze out which has size "
                                        "not equal to one")
    return lax.squeeze(x, dims)


def broadcast_to(a, shape):
    x = _as_array(a)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    try:
        if np.broadcast_shapes(aval_of(x).shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise FungradValueError(f"cannot broadcast an array of shape {aval_of(x).shape} to "
                                f"{shape}") from None
    return lax.broadcast_to(x, shape)


def broadcast_arrays(*args):
    args = [_as_array(a) for a in args]
    return _broadcast(*args, allow_scalars=False)


def atleast_1d(*arys):
    res = [reshape(a, (1,)) if ndim(a) == 0 else _as_array(a) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = []
    for a in arys:
        a = _as_array(a)
        res.append(reshape(a, (1, 1)) if ndim(a) == 0 else expand_dims(a, 0) if ndim(a) == 1
                   else a)
    return res[0] if len(res) == 1 else res


def concatenate(arrays, axis=0, dtype=None):
    arrays = [_as_array(a) for a in arrays]
    if not arrays:
        raise FungradValueError("need at least one array to concatenate")
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    arrays = _promote(*arrays) if dtype is None else [_convert(a, dtype) for a in arrays]
    nd = aval_of(arrays[0]).ndim
    if nd == 0:
        raise FungradValueError("zero-dimensional arrays cannot be concatenated")
    return lax.concatenate(arrays, int(axis) % nd)


def stack(arrays, axis=0, dtype=None):
    arrays = [_as_array(a) for a in arrays]
    if not arrays:
        raise FungradValueError("need at least one array to stack")
    shapes = {aval_of(a).shape for a in arrays}
    if len(shapes) != 1:
        raise FungradValueError("all input arrays must have the same shape")
    nd = aval_of(arrays[0]).ndim + 1
    ax = int(axis) % nd
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax, dtype=dtype)


def vstack(tup, dtype=None):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


def hstack(tup, dtype=None):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if ndim(arrs[0]) == 1 else 1, dtype=dtype)


# ---------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------

def matmul(a, b):
    """NumPy matmul: vectors are promoted, leading dimensions broadcast."""
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        raise FungradValueError("matmul: Input operand does not have enough dimensions")
    if na <= 2 and nb <= 2:
        ka, kb = aval_of(a).shape[-1], aval_of(b).shape[0 if nb == 1 else -2]
        if ka != kb:
            raise FungradValueError(
                f"matmul: Input operand 1 has a mismatch in its core dimension 0, with "
                f"gufunc signature (n?,k),(k,m?)->(n?,m?) (size {kb} is different from {ka})")
        return lax.dot_general(a, b, (((na - 1,), (0 if nb == 1 else nb - 2,)), ((), ())))
    # batched: broadcast leading dims, then a batched dot_general
    a2 = a if na > 1 else expand_dims(a, 0)
    b2 = b if nb > 1 else expand_dims(b, -1)
    batch = np.broadcast_shapes(aval_of(a2).shape[:-2], aval_of(b2).shape[:-2])
    a2 = broadcast_to(a2, batch + aval_of(a2).shape[-2:])
    b2 = broadcast_to(b2, batch + aval_of(b2).shape[-2:])
    nbatch = len(batch)
    if aval_of(a2).shape[-1] != aval_of(b2).shape[-2]:
        raise FungradValueError(f"matmul: shapes {aval_of(a).shape} and {aval_of(b).shape} "
                                "do not align")
    out = lax.dot_general(a2, b2, (((nbatch + 1,), (nbatch,)),
                                   (tuple(range(nbatch)), tuple(range(nbatch)))))
    if na == 1:
        out = squeeze(out, -2)
    if nb == 1:
        out = squeeze(out, -1)
    return out


def dot(a, b):
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    if nb == 1 or nb == 2 and na <= 2:
        return matmul(a, b)
    # N-d: contract a's last axis with b's second-to-last
    return lax.dot_general(a, b, (((na - 1,), (nb - 2,)), ((), ())))


def vdot(a, b):
    return dot(ravel(a), ravel(b))


def inner(a, b):
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    return lax.dot_general(a, b, (((na - 1,), (nb - 1,)), ((), ())))


def outer(a, b):
    a, b = _promote(ravel(a), ravel(b))
    return lax.dot_general(a, b, (((), ()), ((), ())))


def tensordot(a, b, axes=2):
    a, b = _promote(_as_array(a), _as_array(b))
    na, nb = aval_of(a).ndim, aval_of(b).ndim
    if isinstance(axes, (int, np.integer)):
        ca, cb = tuple(range(na - axes, na)), tuple(range(axes))
    else:
        ca, cb = axes
        ca = (ca,) if np.isscalar(ca) else tuple(ca)
        cb = (cb,) if np.isscalar(cb) else tuple(cb)
        ca = tuple(c % na for c in ca)
        cb = tuple(c % nb for c in cb)
    return lax.dot_general(a, b, ((ca, cb), ((), ())))


# ---------------------------------------------------------------------------
# Tracer methods and operators
# ---------------------------------------------------------------------------

def _normalize_index(idx, shape):
    """Split a basic index into per-dimension slices/ints, plus None positions."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_ellipsis = builtins.sum(1 for i in idx if i is Ellipsis)
    if n_ellipsis > 1:
        raise FungradIndexError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(1 for i in idx if i is not None and i is not Ellipsis)
    if n_real > len(shape):
        raise FungradIndexError(f"too many indices for array: array is {len(shape)}-"
                                f"dimensional, but {n_real} were indexed")
    expanded = []
    for i in idx:
        if i is Ellipsis:
            expanded.extend([builtins.slice(None)] * (len(shape) - n_real))
        else:
            expanded.append(i)
    if n_ellipsis == 0:
        expanded.extend([builtins.slice(None)] * (len(shape) - n_real))
    return expanded


def _is_basic(i):
    return i is None or i is Ellipsis or isinstance(i, (builtins.slice, int, np.integer)) \
        and not isinstance(i, bool)


def getitem(x, idx):
    """NumPy indexing: basic (ints, slices, None, ...) as slice/rev/reshape;
    integer-array and boolean indices as gather (see fungrad.numpy._indexing)."""
    x = _as_array(x)
    items = idx if isinstance(idx, tuple) else (idx,)
    if not builtins.all(_is_basic(i) for i in items):
        from . import _indexing
        return _indexing.advanced_getitem(x, idx)
    shape = aval_of(x).shape
    expanded = _normalize_index(idx, shape)
    starts, limits, strides, flips, out_shape = [], [], [], [], []
    dim = 0
    for i in expanded:
        if i is None:
            out_shape.append(1)
            continue
        size_d = shape[dim]
        if isinstance(i, builtins.slice):
            lo, hi, st = i.indices(size_d)
            if st > 0:
                n = builtins.max(0, -(-(hi - lo) // st))
                starts.append(lo)
                limits.append(lo + (n - 1) * st + 1 if n else lo)
                strides.append(st)
            else:
                n = builtins.max(0, -(-(lo - hi) // -st))
                last = lo + (n - 1) * st if n else lo
                starts.append(last if n else 0)
                limits.append(lo + 1 if n else 0)
                strides.append(-st)
                flips.append(dim)
            out_shape.append(n)
        else:
            k = int(i)
            if not -size_d <= k < size_d:
                raise FungradIndexError(
                    f"index {k} is out of bounds for axis {dim} with size {size_d}")
            k %= size_d
            starts.append(k)
            limits.append(k + 1)
            strides.append(1)
        dim += 1
    out = lax.slice(x, starts, limits, strides)
    if flips:
        out = lax.rev(out, flips)
    return lax.reshape(out, out_shape)


def _reverse(fn):
    return lambda self, other: fn(other, self)


def _install_tracer_methods():
    T = Tracer
    T.__add__ = lambda s, o: add(s, o)
    T.__radd__ = _reverse(add)
    T.__sub__ = lambda s, o: subtract(s, o)
    T.__rsub__ = _reverse(subtract)
    T.__mul__ = lambda s, o: multiply(s, o)
    T.__rmul__ = _reverse(multiply)
    T.__truediv__ = lambda s, o: true_divide(s, o)
    T.__rtruediv__ = _reverse(true_divide)
    T.__floordiv__ = lambda s, o: floor_divide(s, o)
    T.__rfloordiv__ = _reverse(floor_divide)
    T.__mod__ = lambda s, o: remainder(s, o)
    T.__rmod__ = _reverse(remainder)
    T.__divmod__ = lambda s, o: (floor_divide(s, o), remainder(s, o))
    T.__pow__ = lambda s, o: power(s, o)
    T.__rpow__ = _reverse(power)
    T.__matmul__ = lambda s, o: matmul(s, o)
    T.__rmatmul__ = _reverse(matmul)
    T.__neg__ = lambda s: negative(s)
    T.__pos__ = lambda s: s
    T.__abs__ = lambda s: absolute(s)
    T.__invert__ = lambda s: invert(s)
    T.__and__ = lambda s, o: bitwise_and(s, o)
    T.__rand__ = _reverse(bitwise_and)
    T.__or__ = lambda s, o: bitwise_or(s, o)
    T.__ror__ = _reverse(bitwise_or)
    T.__xor__ = lambda s, o: bitwise_xor(s, o)
    T.__rxor__ = _reverse(bitwise_xor)
    T.__eq__ = lambda s, o: equal(s, o)
    T.__ne__ = lambda s, o: not_equal(s, o)
    T.__lt__ = lambda s, o: less(s, o)
    T.__le__ = lambda s, o: less_equal(s, o)
    T.__gt__ = lambda s, o: greater(s, o)
    T.__ge__ = lambda s, o: greater_equal(s, o)
    T.__getitem__ = getitem
    T.T = property(lambda s: transpose(s))
    T.mT = property(lambda s: swapaxes(s, -1, -2))
    T.sum = lambda s, axis=None, dtype=None, keepdims=False, **kw: sum(s, axis, dtype, keepdims,
                                                                         **kw)
    T.mean = lambda s, axis=None, dtype=None, keepdims=False, **kw: mean(s, axis, dtype,
                                                                           keepdims, **kw)
    T.reshape = lambda s, *shape, order="C": reshape(
        s, shape[0] if len(shape) == 1 and not np.isscalar(shape[0]) else shape, order)
    T.transpose = lambda s, *axes: transpose(
        s, None if not axes else axes[0] if len(axes) == 1 and not np.isscalar(axes[0])
        else axes)
    T.astype = lambda s, dtype, **kw: astype(s, dtype)
    T.squeeze = lambda s, axis=None: squeeze(s, axis)
    T.ravel = lambda s, order="C": ravel(s, order)
    T.flatten = lambda s, order="C": ravel(s, order)
    T.dot = lambda s, other: dot(s, other)
    T.swapaxes = lambda s, a, b: swapaxes(s, a, b)
    T.copy = lambda s: s
    T.conj = T.conjugate = lambda s: s
    T.real = property(lambda s: s)
    for name in ("max", "min", "prod", "argmax", "argmin", "cumsum", "cumprod", "var", "std",
                 "all", "any", "clip", "round", "trace", "diagonal", "repeat"):
        T.__dict__.get(name) or setattr(T, name, _method(name))
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function


def _method(name):
    def method(self, *args, **kwargs):
        return globals()[name](self, *args, **kwargs)
    method.__name__ = name
    return method


_UFUNC_NAMES = {"true_divide": "divide", "conjugate": "positive", "absolute": "absolute"}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NumPy ufuncs on traced values dispatch to fungrad.numpy's function."""
    name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
    fn = globals().get(name)
    if method != "__call__" or fn is None or kwargs.get("out") is not None:
        from ..errors import TracerArrayConversionError, format_location, user_location
        raise TracerArrayConversionError(
            f"numpy.{ufunc.__name__}{'.' + method if method != '__call__' else ''} was called "
            f"on a traced value at {format_location(user_location(2))}; NumPy cannot "
            f"differentiate through it. Use fungrad.numpy.{name} instead"
            + ("" if fn is not None else " (if it exists), or write it with fungrad.numpy "
               "operations") + ".")
    return fn(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    """NumPy functions (np.sum, np.stack, ...) on traced values dispatch to ours."""
    fn = globals().get(func.__name__)
    module = getattr(func, "__module__", "") or ""
    if fn is None and module.startswith("numpy.linalg"):
        from . import linalg as _linalg
        fn = getattr(_linalg, func.__name__, None)
    if fn is None or not callable(fn):
        from ..errors import TracerArrayConversionError, format_location, user_location
        raise TracerArrayConversionError(
            f"numpy.{func.__name__} was called on a traced value at "
            f"{format_location(user_location(2))}; NumPy cannot differentiate through it. "
            f"fungrad.numpy has no {func.__name__}: write it with fungrad.numpy operations.")
    return fn(*args, **kwargs)


_install_tracer_methods()
