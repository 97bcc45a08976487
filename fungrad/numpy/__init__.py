"""`fungrad.numpy`: NumPy's API on top of the primitives.

Broadcasting and dtype promotion happen here (primitives are strict): NumPy 2's
rules, with Python scalars weak (`float32_array * 2.0` stays float32) and float64
the default float.  On concrete inputs outside any trace the functions simply
compute and return NumPy arrays.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from .. import lax
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
        return x._var.aval.dtype
    if isinstance(x, _PY_SCALARS):
        return None
    return np.result_type(x)


def result_type(*args) -> np.dtype:
    """NumPy 2 promotion; Python scalars are weak (they adopt the array's kind)."""
    typed = []
    for a in args:
        if isinstance(a, Tracer):
            typed.append(a._var.aval.dtype)
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
    for a, s in zip(args, shapes, strict=True):
        if s == out_shape or (allow_scalars and s == ()):
            res.append(a)
        else:
            res.append(lax.broadcast_to(a, out_shape))
    return res


def _same_typed(a: ShapedArray, b) -> bool:
    """Can a strict binary primitive take a and b (an aval or ndarray) as they are?"""
    return a.dtype == b.dtype and (a.shape == b.shape or not b.shape or not a.shape)


def _binary(fn, to_inexact=False):
    prim = getattr(lax.elementwise, fn.__name__ + "_p", None)
    _F64 = np.dtype(np.float64)
    _I64 = np.dtype(np.int64)

    def op(x, y):
        # fast paths (the common cases while tracing): no promotion or broadcast needed
        tx, ty = type(x), type(y)
        if tx is Tracer and prim is not None:
            ax = x._var.aval
            if to_inexact and ax.dtype.kind not in "fc":
                pass
            elif ty is Tracer:
                if _same_typed(ax, y._var.aval):
                    return prim.bind(x, y)
            elif ty is np.ndarray:
                if _same_typed(ax, y):
                    return prim.bind(x, y)
            elif (ty is float and ax.dtype.kind in "fc") or (ty is int and (
                    ax.dtype.kind in "fc" or ax.dtype == _I64)):
                return prim.bind(x, ax.dtype.type(y))
        elif ty is Tracer and prim is not None:
            ay = y._var.aval
            if to_inexact and ay.dtype.kind not in "fc":
                pass
            elif tx is np.ndarray:
                if _same_typed(ay, x):
                    return prim.bind(x, y)
            elif (tx is float and ay.dtype.kind in "fc") or (tx is int and (
                    ay.dtype.kind in "fc" or ay.dtype == _I64)):
                return prim.bind(ay.dtype.type(x), y)
        x, y = _promote(x, y, to_inexact=to_inexact)
        x, y = _broadcast(x, y)
        return fn(x, y)
    return op


def _unary_float(fn):
    """An elementwise function on inexact values (ints are promoted to float64)."""
    @functools.wraps(fn)
    def op(x):
        if type(x) is Tracer and x._var.aval.dtype.kind in "fc":
            return fn(x)
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
        return lax.select(fix, lax.sub(q, _scalar(q, 1)), q)
    # NumPy's float floor division goes through fmod, so 1.0 // 0.1 == 9.0 (not
    # floor(1.0 / 0.1) == 10.0): div = (x - fmod(x, y)) / y, corrected to the floor
    mod = lax.rem(x, y)
    div = lax.div(lax.sub(x, mod), y)
    zero, one = _scalar(div, 0), _scalar(div, 1)
    sign_fix = lax.bitwise_and(lax.ne(mod, zero), lax.ne(lax.lt(y, zero), lax.lt(mod, zero)))
    div = lax.select(sign_fix, lax.sub(div, one), div)
    floor_div = lax.floor(div)
    floor_div = lax.select(lax.gt(lax.sub(div, floor_div), _scalar(div, 0.5)),
                           lax.add(floor_div, one), floor_div)
    # y == 0 gives x / y (inf or nan) like NumPy
    return lax.select(lax.eq(y, zero), lax.div(x, y), floor_div)


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
        if not np.issubdtype(result_type(x), np.inexact) and y < 0:
            raise FungradValueError("Integers to negative integer powers are not allowed.")
        return lax.integer_pow(_convert(x, result_type(x, y)), int(y))  # bool -> int64
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


_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046


def _exact_at_powers(x, approx, base_pow):
    """approx (log(x) / log(base)), snapped to the integer k where base**k == x exactly
    (log(1000) / log(10) is 2.9999999999999996); the gradient is approx's."""
    zeros = lax.full(aval_of(x).shape, 0, aval_of(x).dtype)
    finite = lax.is_finite(approx)
    approx_finite = lax.select(finite, approx, zeros)  # no inf - inf below
    k = lax.round(approx_finite)
    exact = lax.bitwise_and(finite, lax.eq(base_pow(k), x))
    fix = lax.select(exact, lax.sub(k, approx_finite), zeros)
    return lax.add(approx, lax.stop_gradient(fix))


@_unary_float
def log2(x):
    """Base-2 logarithm (exact at powers of two).

    >>> fungrad.numpy.log2(8.0)
    3.0
    """
    approx = lax.div(lax.log(x), _scalar(x, _LN2))
    return _exact_at_powers(x, approx, lax.exp2)


@_unary_float
def log10(x):
    """Base-10 logarithm (exact at powers of ten).

    >>> fungrad.numpy.log10(1000.0)
    3.0
    """
    approx = lax.div(lax.log(x), _scalar(x, _LN10))
    return _exact_at_powers(x, approx, lambda k: lax.pow(_scalar(k, 10), k))


def square(x):
    """x * x, elementwise (same dtype as x)."""
    x = _as_array(x)
    if result_type(x) == np.bool_:
        x = _convert(x, np.int8)  # like NumPy's square of bool
    return lax.integer_pow(x, 2)


def reciprocal(x):
    """1 / x elementwise; integer inputs give float64 (NumPy would truncate to 0)."""
    x = _as_array(x)
    if not np.issubdtype(result_type(x), np.inexact):
        x = _convert(x, np.float64)
    return lax.div(_scalar(x, 1), x)


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
    """Round toward zero (integers are returned unchanged)."""
    x = _as_array(x)
    if not np.issubdtype(result_type(x), np.inexact):
        return x
    return lax.select(lax.lt(x, _scalar(x, 0)), lax.ceil(x), lax.floor(x))


fix = trunc


def _scalar(x, value):
    """`value` as a NumPy scalar of x's dtype (a literal that primitives accept)."""
    return aval_of(x).dtype.type(value)


def _rint(x_in):
    """Round half to even, exactly: floor, then fix up the remainder."""
    finite_in = lax.is_finite(x_in)
    x = lax.select(finite_in, x_in, _scalar(x_in, 0))  # inf/nan: no inf - inf below
    f = lax.floor(x)
    rest = lax.sub(x, f)  # exact: f <= x < f + 1
    one, half = _scalar(x, 1), _scalar(x, 0.5)
    f_is_odd = lax.ne(lax.sub(f, lax.mul(lax.floor(lax.mul(f, half)), _scalar(x, 2))),
                      _scalar(x, 0))
    up = lax.bitwise_or(lax.gt(rest, half), lax.bitwise_and(lax.eq(rest, half), f_is_odd))
    r = lax.select(up, lax.add(f, one), f)
    # keep -0.0 where NumPy does (round(-0.3) is -0.0), and inf/nan unchanged
    r = lax.select(lax.eq(r, _scalar(x, 0)), lax.mul(x, _scalar(x, 0)), r)
    return lax.select(finite_in, r, x_in)


def round(a, decimals: int = 0, out=None):
    """Round to `decimals` decimals, halves to even like NumPy.

    >>> fungrad.numpy.round(np.array([0.5, 1.5, 2.5, -0.5]))
    array([ 0.,  2.,  2., -0.])
    """
    if out is not None:
        raise FungradTypeError("round: out= is not supported (arrays are immutable)")
    x = _as_array(a)
    if not np.issubdtype(result_type(x), np.inexact):
        if decimals >= 0:
            return x
        # NumPy rounds integers to tens/hundreds through floating point, too
        return _convert(round(_convert(x, np.float64), decimals), result_type(x))
    if decimals == 0:
        return _rint(x)
    if decimals > 0:
        scale = _scalar(x, 10.0 ** decimals)
        return lax.div(_rint(lax.mul(x, scale)), scale)
    scale = _scalar(x, 10.0 ** -decimals)
    return lax.mul(_rint(lax.div(x, scale)), scale)


around = round


def rint(x):
    """Round to the nearest integer, halves to even (float result)."""
    x = _as_array(x)
    if not np.issubdtype(result_type(x), np.inexact):
        x = _convert(x, np.float64)
    return _rint(x)


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


def _softplus_branches(x1, x2, exp_fn, scale):
    """base + log1p(exp(t)) * scale with t = -|x - y| <= 0 and base = max(x, y), written
    with selects instead of max/abs so every derivative order is right at ties."""
    x, y = _broadcast(*_promote(x1, x2, to_inexact=True))
    x_wins = lax.gt(x, y)
    # equal infinities: compare 0 with 0 instead of computing inf - inf
    inf_tie = lax.bitwise_and(lax.eq(x, y), _isinf(x))
    zeros = _zeros_of(x, y)
    xs, ys = lax.select(inf_tie, zeros, x), lax.select(inf_tie, zeros, y)
    t = lax.select(x_wins, lax.sub(ys, xs), lax.sub(xs, ys))
    base = lax.select(x_wins, _full_as(x, y), _full_as(y, x))
    tail = lax.log1p(exp_fn(t))
    return lax.add(base, tail if scale is None else lax.div(tail, _scalar(tail, scale)))


def logaddexp(x1, x2):
    """log(exp(x1) + exp(x2)) without overflow: max(x1, x2) + log1p(exp(-|x1 - x2|)).

    Equal infinite inputs give that infinity; the gradient at ties is 0.5 / 0.5 and
    higher derivatives are those of the smooth function.

    >>> fungrad.numpy.logaddexp(1000.0, 1000.0)
    1000.6931471805599
    """
    return _softplus_branches(x1, x2, lax.exp, None)


def logaddexp2(x1, x2):
    """log2(2**x1 + 2**x2) without overflow."""
    return _softplus_branches(x1, x2, lax.exp2, _LN2)


def _zeros_of(x, y):
    """Zeros with the broadcast shape and dtype of x and y."""
    shape = np.broadcast_shapes(aval_of(x).shape, aval_of(y).shape)
    return lax.full(shape, 0, aval_of(x).dtype)


def hypot(x1, x2):
    """sqrt(x1**2 + x2**2) without overflow or underflow (max * sqrt(1 + (min/max)**2)).

    The gradient at (0, 0) is 0, not NaN; an infinite operand gives inf even with NaN.
    """
    x, y = _broadcast(*_promote(x1, x2, to_inexact=True))
    a, b = lax.abs(x), lax.abs(y)
    # selects, not max/min: at |x| == |y| every derivative order stays that of sqrt(a²+b²)
    a_wins = lax.ge(a, b)
    big = lax.select(a_wins, _full_as(a, b), _full_as(b, a))
    small = lax.select(a_wins, _full_as(b, a), _full_as(a, b))
    zero, one = _scalar(x, 0), _scalar(x, 1)
    # big == 0 or inf: divide by 1 instead (no 0/0 or inf/inf); the selects below fix those
    degenerate = lax.bitwise_or(lax.eq(big, zero), lax.eq(big, _scalar(x, np.inf)))
    ones = lax.full(aval_of(big).shape, 1, aval_of(big).dtype)
    safe_big = lax.select(degenerate, ones, big)
    ratio = lax.select(lax.eq(big, zero), lax.full(aval_of(big).shape, 0, aval_of(big).dtype),
                       lax.div(small, safe_big))
    out = lax.mul(big, lax.sqrt(lax.add(one, lax.mul(ratio, ratio))))
    either_inf = lax.bitwise_or(_isinf(x), _isinf(y))
    return lax.select(either_inf, lax.full(aval_of(out).shape, np.inf, aval_of(out).dtype), out)


def _isinf(x):
    return lax.eq(lax.abs(x), _scalar(x, np.inf))


def sinc(x):
    """sin(pi x) / (pi x), with sinc(0) = 1; a Taylor series near 0 keeps it smooth
    (sinc'(0) = 0, sinc''(0) = -pi**2 / 3) and free of 0/0."""
    x = _as_array(x)
    if not np.issubdtype(result_type(x), np.inexact):
        x = _convert(x, np.float64)
    pix = lax.mul(x, _scalar(x, np.pi))
    small = lax.lt(lax.abs(pix), _scalar(x, 1e-2 if aval_of(x).dtype == np.float64 else 0.1))
    one = _scalar(x, 1)
    safe = lax.select(small, lax.full(aval_of(x).shape, 1, aval_of(x).dtype), pix)
    p2 = lax.mul(pix, pix)
    # 1 - z^2/6 + z^4/120 - z^6/5040 (error < 1e-17 for |z| < 1e-2, < 3e-12 for |z| < 0.1)
    taylor = lax.add(one, lax.mul(p2, lax.add(_scalar(x, -1 / 6), lax.mul(p2, lax.add(
        _scalar(x, 1 / 120), lax.mul(p2, _scalar(x, -1 / 5040)))))))
    return lax.select(small, taylor, lax.div(lax.sin(safe), safe))


def fmax(x1, x2):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    x, y = _broadcast(*_promote(x1, x2))
    if not np.issubdtype(result_type(x), np.inexact):
        return lax.max(x, y)
    return lax.select(lax.ne(y, y), _full_as(x, y), lax.select(lax.ne(x, x), _full_as(y, x),
                                                                lax.max(x, y)))


def fmin(x1, x2):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    x, y = _broadcast(*_promote(x1, x2))
    if not np.issubdtype(result_type(x), np.inexact):
        return lax.min(x, y)
    return lax.select(lax.ne(y, y), _full_as(x, y), lax.select(lax.ne(x, x), _full_as(y, x),
                                                                lax.min(x, y)))


def _full_as(x, other):
    """x broadcast to the broadcast shape of x and other (a select operand)."""
    shape = np.broadcast_shapes(aval_of(x).shape, aval_of(other).shape)
    return x if aval_of(x).shape == shape else lax.broadcast_to(x, shape)


def signbit(x):
    """True where the sign is negative, -0.0 included (NaN counts as positive)."""
    x = _as_array(x)
    dt = result_type(x)
    if not np.issubdtype(dt, np.inexact):
        return less(x, 0) if np.issubdtype(dt, np.signedinteger) else full(
            _shape(x), False, np.bool_)
    zero = _scalar(x, 0)
    # atan2(-0.0, -1) = -pi, atan2(0.0, -1) = pi: tells the zeros apart without 1/0
    negative_zero = lax.bitwise_and(lax.eq(x, zero), lax.lt(
        lax.atan2(x, lax.full(aval_of(x).shape, -1, aval_of(x).dtype)), zero))
    return lax.bitwise_or(lax.lt(x, zero), negative_zero)


def copysign(x1, x2):
    """|x1| with the sign of x2 (float result)."""
    x, y = _broadcast(*_promote(x1, x2, to_inexact=True))
    magnitude = lax.abs(x)
    return lax.select(signbit(_full_as(y, x)), lax.neg(_full_as(magnitude, y)),
                      _full_as(magnitude, y))


def deg2rad(x):
    """Degrees to radians: x * pi / 180."""
    x = _unary_float(lambda v: v)(x)
    return lax.mul(x, _scalar(x, np.pi / 180))


def rad2deg(x):
    """Radians to degrees: x * 180 / pi."""
    x = _unary_float(lambda v: v)(x)
    return lax.mul(x, _scalar(x, 180 / np.pi))


radians, degrees = deg2rad, rad2deg


def heaviside(x1, x2):
    """0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0."""
    x, h0 = _broadcast(*_promote(x1, x2), allow_scalars=False)
    zero = _scalar(x, 0)
    ones, zeros = lax.full(aval_of(x).shape, 1, aval_of(x).dtype), lax.full(
        aval_of(x).shape, 0, aval_of(x).dtype)
    step = lax.select(lax.lt(x, zero), zeros, lax.select(lax.gt(x, zero), ones, h0))
    return lax.select(lax.ne(x, x), x, step)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| elementwise; infinities are close only to themselves."""
    x, y = _broadcast(*_promote(a, b, to_inexact=True), allow_scalars=False)
    rtol, atol = _scalar(x, rtol), _scalar(x, atol)
    close = lax.le(lax.abs(lax.sub(x, y)), lax.add(atol, lax.mul(rtol, lax.abs(y))))
    finite = lax.bitwise_and(lax.is_finite(x), lax.is_finite(y))
    out = lax.select(finite, close, lax.eq(x, y))
    if equal_nan:
        out = lax.bitwise_or(out, lax.bitwise_and(lax.ne(x, x), lax.ne(y, y)))
    return out


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


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN -> `nan`, +inf -> `posinf` (default: the largest float), -inf -> `neginf`."""
    x = _as_array(x)
    dt = result_type(x)
    if not np.issubdtype(dt, np.inexact):
        return x
    info = np.finfo(dt)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    x = lax.select(lax.ne(x, x), lax.full(aval_of(x).shape, nan, dt), x)
    x = lax.select(lax.eq(x, _scalar(x, np.inf)), lax.full(aval_of(x).shape, posinf, dt), x)
    return lax.select(lax.eq(x, _scalar(x, -np.inf)), lax.full(aval_of(x).shape, neginf, dt), x)


def divmod(x1, x2):  # noqa: A001 (NumPy's name)
    """(floor_divide(x1, x2), remainder(x1, x2))."""
    return floor_divide(x1, x2), remainder(x1, x2)


def fabs(x):
    """Absolute value as a float (integers become float64)."""
    return absolute(_unary_float(lambda v: v)(x))


def float_power(x1, x2):
    """x1 ** x2 computed in float64 (or wider), like NumPy's float_power."""
    x, y = _promote(x1, x2, to_inexact=True)
    if result_type(x) == np.float32:
        x, y = _convert(x, np.float64), _convert(y, np.float64)
    return power(x, y)


def real(val):
    """The real part (fungrad arrays are real, so the value itself)."""
    return _as_array(val)


def imag(val):
    """The imaginary part: zeros (fungrad arrays are real)."""
    return zeros_like(val)


def conjugate(x):
    """Complex conjugate: the value itself for real arrays."""
    return _as_array(x)


conj = conjugate


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


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum of the elements along `axis` (all of them when None).

    bool and small integers are summed in int64, like NumPy.

    >>> fungrad.numpy.sum(np.array([[1., 2.], [3., 4.]]), axis=0)
    array([4., 6.])
    """
    _no_out("sum", out)
    x = _as_array(a)
    x = _convert(x, _accumulator_dtype(aval_of(x).dtype, dtype))
    if where is not None:
        x = globals()["where"](where, x, _scalar(x, 0))
    axes = _axes(axis, aval_of(x).ndim)
    res = lax.reduce_sum(x, axes)
    if initial is not None:
        res = add(res, _convert(initial, aval_of(x).dtype))
    return _keepdims(res, aval_of(x).shape, axes) if keepdims else res


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Arithmetic mean along `axis`; integers and bool give float64.

    >>> fungrad.numpy.mean(np.array([1, 2, 3, 4]))
    2.5
    """
    _no_out("mean", out)
    if (type(a) is Tracer and axis is None and dtype is None and where is None
            and not keepdims and a._var.aval.dtype.kind in "fc" and a._var.aval.size):
        # fast path: the mean of every element of a float traced array
        aval = a._var.aval
        total = lax.reduce_sum(a, tuple(range(aval.ndim)))
        return lax.div(total, aval.dtype.type(aval.size))
    x = _as_array(a)
    dt = np.dtype(dtype) if dtype is not None else result_type(x)
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
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
            x = globals()["where"](where, x, _convert(initial, aval.dtype))
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
            x = globals()["where"](where, x, np.bool_(identity))
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
    _no_out("prod", out)
    x = _as_array(a)
    x = _convert(x, _accumulator_dtype(aval_of(x).dtype, dtype))
    if where is not None:
        x = globals()["where"](where, x, _scalar(x, 1))
    axes = _axes(axis, aval_of(x).ndim)
    res = lax.reduce_prod(x, axes) if axes else x
    if initial is not None:
        res = multiply(res, _convert(initial, aval_of(x).dtype))
    return _keepdims(res, aval_of(x).shape, axes) if keepdims else res


def _nan_reduction(name, reduce_fn, fill):
    def reduction(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        x = _as_array(a)
        if not np.issubdtype(result_type(x), np.inexact):
            return reduce_fn(x, axis, out, keepdims, initial, where)
        nan_mask = isnan(x)
        res = reduce_fn(globals()["where"](nan_mask, _scalar(x, fill), x), axis, out, keepdims,
                        initial, where)
        all_nan = all(nan_mask, axis=axis, keepdims=keepdims)
        return globals()["where"](all_nan, _scalar(x, np.nan), res)
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
        x = globals()["where"](isnan(x), _scalar(x, 0), x)
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
    for d, s in sorted(zip(dst, src, strict=True)):
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
    return concatenate([atleast_3d(a) for a in tup], axis=2, dtype=dtype)


def column_stack(tup):
    """Stack 1-D arrays as columns (2-D arrays are kept) into a 2-D array."""
    cols = [_as_array(a) for a in tup]
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
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise FungradValueError("number sections must be larger than 0.")
        each, extra = builtins.divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
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
    shifts = (shift,) if np.isscalar(shift) else tuple(shift)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
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
    reps = (int(reps),) if np.isscalar(reps) else tuple(int(r) for r in reps)
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
    counts = np.asarray(repeats, dtype=np.int64)
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


def kron(a, b):
    """Kronecker product: blocks a[i, j] * b."""
    a, b = _promote(_as_array(a), _as_array(b))
    nd = builtins.max(ndim(a), ndim(b))
    a = reshape(a, (1,) * (nd - ndim(a)) + shape(a))
    b = reshape(b, (1,) * (nd - ndim(b)) + shape(b))
    # a[..., i, None] * b[None, ..., j] interleaved, then merged pairwise
    a_e = lax.reshape(a, tuple(v for d in shape(a) for v in (d, 1)))
    b_e = lax.reshape(b, tuple(v for d in shape(b) for v in (1, d)))
    prod = multiply(a_e, b_e)
    return lax.reshape(prod, tuple(da * db for da, db in zip(shape(a), shape(b), strict=True)))


def select(condlist, choicelist, default=0):
    """Per element, the choice of the first true condition (else `default`)."""
    if len(condlist) != len(choicelist):
        raise FungradValueError("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist, strict=True))):
        out = where(cond, choice, out)
    return out


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """base ** linspace(start, stop, num)."""
    exponents = linspace(start, stop, num, endpoint=endpoint, axis=axis)
    out = power(base, exponents)
    return out if dtype is None else astype(out, dtype)


def _bitonic_sort_last(columns):
    """Sort the rows of `columns` (arrays of one shape, a power-of-two last axis) along
    the last axis, lexicographically by the columns in order: a bitonic network of
    slices, compares and selects.

    O(n log^2 n) work in log2(n)(log2(n)+1)/2 vectorised stages; every stage is made of
    primitives with gradients (select), so sort is differentiable."""
    *lead, m = aval_of(columns[0]).shape
    nl = len(lead)

    def less(a, b):
        """Lexicographic a < b over the columns."""
        out = None
        for ka, kb in zip(reversed(a), reversed(b), strict=True):
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
        key = lax.select(nan, _scalar(x, 0), x)
        rank = _convert(nan, np.int8)  # NaN sorts after every number, like NumPy
        rank_p = pad_to_m(rank, np.int8(2))
        rank_s, key_s, order = _bitonic_sort_last(
            [rank_p, pad_to_m(key, _scalar(x, 0)), index_p])
        values = lax.select(lax.eq(rank_s, np.int8(1)), _scalar(x, np.nan), key_s)
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


def meshgrid(*xi, indexing="xy", sparse=False, copy=True):
    """Coordinate matrices from coordinate vectors (`indexing` 'xy' or 'ij')."""
    xs = [ravel(x) for x in xi]
    nd = len(xs)
    out = []
    for i, x in enumerate(xs):
        shape = [1] * nd
        shape[i] = size(x)
        out.append(reshape(x, shape))
    if indexing == "xy" and nd > 1:
        out = [swapaxes(o, 0, 1) for o in out]
    if not sparse:
        out = broadcast_arrays(*out)
    return list(out)


# ---------------------------------------------------------------------------
# linear algebra
# ---------------------------------------------------------------------------

def matmul(a, b):
    """NumPy matmul: vectors are promoted, leading dimensions broadcast."""
    ta, tb = type(a), type(b)
    if (ta is Tracer or tb is Tracer) and (ta is Tracer or ta is np.ndarray) and (
            tb is Tracer or tb is np.ndarray):
        # fast path: 1-d/2-d operands of one dtype (the common case while tracing)
        sa = a._var.aval if ta is Tracer else a
        sb = b._var.aval if tb is Tracer else b
        na, nb = len(sa.shape), len(sb.shape)
        if sa.dtype == sb.dtype and 1 <= na <= 2 and 1 <= nb <= 2 and \
                sa.shape[-1] == sb.shape[0 if nb == 1 else -2]:
            return lax.dot_general_p.bind(a, b, dimension_numbers=(
                ((na - 1,), (0 if nb == 1 else nb - 2,)), ((), ())))
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
    M = N if M is None else M
    dt = np.dtype(dtype) if dtype is not None else np.dtype(np.float64)
    if current_trace() is None:
        return np.tri(N, M, k, dtype=dt)
    return lax.convert_element_type(_tri_mask(N, M, k, lower=True), dt)


# --- einsum ---------------------------------------------------------------------------

_ELLIPSIS_LABELS = [chr(0x3b1 + i) for i in range(24)]  # greek letters, never user labels


def _einsum_parse(subscripts, operands):
    """Labels per operand and for the output, with '...' expanded to private labels."""
    subscripts = subscripts.replace(" ", "")
    inputs, arrow, output = subscripts.partition("->")
    in_specs = inputs.split(",")
    if len(in_specs) != len(operands):
        raise FungradValueError(f"einsum: {len(in_specs)} operand subscripts for "
                                f"{len(operands)} operands in {subscripts!r}")
    n_ellipsis = 0
    labels_in = []
    for spec, op in zip(in_specs, operands, strict=True):
        nd = aval_of(op).ndim
        if "..." in spec:
            head, _, tail = spec.partition("...")
            k = nd - len(head) - len(tail)
            if k < 0 or "." in head + tail:
                raise FungradValueError(f"einsum: bad subscripts {spec!r} for an operand "
                                        f"with {nd} dimensions")
            n_ellipsis = builtins.max(n_ellipsis, k)
            labels = list(head) + _ELLIPSIS_LABELS[24 - k:] + list(tail) if k else \
                list(head) + list(tail)
        else:
            labels = list(spec)
        if len(labels) != nd or not builtins.all(c.isalpha() for c in labels):
            raise FungradValueError(f"einsum: subscripts {spec!r} do not match an operand "
                                    f"with {nd} dimensions")
        labels_in.append(labels)
    ell = _ELLIPSIS_LABELS[24 - n_ellipsis:]
    if arrow:
        if "..." in output:
            head, _, tail = output.partition("...")
            labels_out = list(head) + ell + list(tail)
        else:
            labels_out = list(output)
        if len(set(labels_out)) != len(labels_out):
            raise FungradValueError(f"einsum: output subscript {output!r} repeats a label")
        seen = {c for labels in labels_in for c in labels}
        for c in labels_out:
            if c not in seen:
                raise FungradValueError(f"einsum: output label {c!r} appears in no operand")
    else:
        counts = {}
        for labels in labels_in:
            for c in labels:
                counts[c] = counts.get(c, 0) + 1
        labels_out = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    return labels_in, labels_out


def _einsum_diagonal(x, labels):
    """Take the diagonal over each label repeated within one operand."""
    labels = list(labels)
    while len(set(labels)) != len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i = labels.index(c)
        j = labels.index(c, i + 1)
        x = diagonal(x, 0, i, j)
        labels = [lab for n, lab in enumerate(labels) if n not in (i, j)] + [c]
    return x, labels


def einsum(subscripts, *operands, out=None, optimize=None, precision=None, dtype=None):
    """Einstein summation: 'ij,jk->ik' style subscripts, with '...' and implicit output.

    Lowered to diagonal/reduce_sum per operand, then a chain of dot_general (batch =
    labels shared and still needed, contract = labels shared and not needed), then a
    transpose to the output order.

    >>> fungrad.numpy.einsum("ij,j->i", np.eye(2), np.array([1., 2.]))
    array([1., 2.])
    """
    _no_out("einsum", out)
    if not isinstance(subscripts, str):
        raise FungradTypeError("einsum: only the string form of the subscripts is supported")
    operands = [_as_array(o) for o in operands]
    if not operands:
        raise FungradValueError("einsum: at least one operand is needed")
    operands = _promote(*operands) if dtype is None else [_convert(o, dtype) for o in operands]
    labels_in, labels_out = _einsum_parse(subscripts, operands)
    # sizes per label; size-1 dimensions broadcast against the others
    sizes = {}
    for op, labels in zip(operands, labels_in, strict=True):
        for c, d in zip(labels, aval_of(op).shape, strict=True):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = d
            elif d not in (1, prev):
                raise FungradValueError(
                    f"einsum: label {c!r} has sizes {prev} and {d} in {subscripts!r}")
    terms = []
    for op, labels in zip(operands, labels_in, strict=True):
        op, labels = _einsum_diagonal(op, labels)
        target = tuple(sizes[c] for c in labels)
        if aval_of(op).shape != target:
            op = lax.broadcast_to(op, target)
        terms.append((op, labels))

    def needed(skip):
        """Labels used by the output or by any term not in `skip`."""
        keep = set(labels_out)
        for n, (_, labels) in enumerate(terms):
            if n not in skip:
                keep.update(labels)
        return keep

    # sum out labels that only one term has and the output does not
    for n, (op, labels) in enumerate(terms):
        keep = needed({n})
        axes = [i for i, c in enumerate(labels) if c not in keep]
        if axes:
            op = lax.reduce_sum(op, axes)
            labels = [c for c in labels if c in keep]
        terms[n] = (op, labels)
    acc, acc_labels = terms[0]
    for n in range(1, len(terms)):
        op, labels = terms[n]
        keep = needed(set(range(n + 1)))
        shared = [c for c in acc_labels if c in labels]
        batch = [c for c in shared if c in keep]
        contract = [c for c in shared if c not in keep]
        dims = (([acc_labels.index(c) for c in contract], [labels.index(c) for c in contract]),
                ([acc_labels.index(c) for c in batch], [labels.index(c) for c in batch]))
        acc = lax.dot_general(acc, op, (tuple(map(tuple, dims[0])), tuple(map(tuple, dims[1]))))
        acc_labels = batch + [c for c in acc_labels if c not in shared] + \
            [c for c in labels if c not in shared]
    extra = [i for i, c in enumerate(acc_labels) if c not in labels_out]
    if extra:
        acc = lax.reduce_sum(acc, extra)
        acc_labels = [c for c in acc_labels if c in labels_out]
    return lax.transpose(acc, [acc_labels.index(c) for c in labels_out])


# ---------------------------------------------------------------------------
# docstrings of the functions made by helpers or written without one
# ---------------------------------------------------------------------------

_BROADCAST = " Operands broadcast and promote like NumPy's (Python scalars are weak)."
_FLOAT = " Integer and bool inputs give float64."
_DOCS = {
    "add": "x + y elementwise." + _BROADCAST,
    "subtract": "x - y elementwise." + _BROADCAST,
    "multiply": "x * y elementwise." + _BROADCAST,
    "divide": "x / y elementwise (true division; integers give float64)." + _BROADCAST,
    "maximum": "Elementwise maximum (NaN propagates; ties split the gradient)." + _BROADCAST,
    "minimum": "Elementwise minimum (NaN propagates; ties split the gradient)." + _BROADCAST,
    "arctan2": "Elementwise arctan(x1 / x2) in the quadrant of (x2, x1)." + _BROADCAST,
    "nextafter": "The next float after x1 toward x2." + _BROADCAST,
    "equal": "x == y elementwise (bool)." + _BROADCAST,
    "not_equal": "x != y elementwise (bool)." + _BROADCAST,
    "less": "x < y elementwise (bool)." + _BROADCAST,
    "less_equal": "x <= y elementwise (bool)." + _BROADCAST,
    "greater": "x > y elementwise (bool)." + _BROADCAST,
    "greater_equal": "x >= y elementwise (bool)." + _BROADCAST,
    "bitwise_and": "x & y elementwise (integers and bool)." + _BROADCAST,
    "bitwise_or": "x | y elementwise (integers and bool)." + _BROADCAST,
    "bitwise_xor": "x ^ y elementwise (integers and bool)." + _BROADCAST,
    "logical_and": "Truth of x and y elementwise (bool)." + _BROADCAST,
    "logical_or": "Truth of x or y elementwise (bool)." + _BROADCAST,
    "logical_xor": "Truth of x xor y elementwise (bool)." + _BROADCAST,
    "logical_not": "Truth of not x elementwise (bool).",
    "invert": "~x: bitwise not of integers, logical not of bool.",
    "floor_divide": "x // y elementwise, NumPy's floor division (1.0 // 0.1 == 9.0)."
                    + _BROADCAST,
    "fmod": "C remainder of x / y elementwise (the sign of x)." + _BROADCAST,
    "negative": "-x elementwise.",
    "positive": "+x elementwise (the value itself).",
    "absolute": "|x| elementwise (gradient sign(x), 0 at 0).",
    "sign": "-1, 0 or 1 elementwise, in x's dtype (NaN stays NaN).",
    "floor": "Largest integer <= x, elementwise (integers are returned unchanged).",
    "ceil": "Smallest integer >= x, elementwise (integers are returned unchanged).",
    "isfinite": "True where x is neither infinite nor NaN.",
    "isnan": "True where x is NaN.",
    "isinf": "True where x is +inf or -inf.",
    "full": "An array of `shape` filled with `fill_value` (traced inside a trace).",
    "zeros": "An array of zeros (float64 unless `dtype` is given).",
    "ones": "An array of ones (float64 unless `dtype` is given).",
    "empty": "Like zeros (fungrad arrays are never uninitialised).",
    "full_like": "An array of a's shape and dtype (or the given ones) filled with a value.",
    "zeros_like": "Zeros with a's shape and dtype.",
    "ones_like": "Ones with a's shape and dtype.",
    "empty_like": "Like zeros_like.",
    "eye": "A 2-D array with ones on the k-th diagonal and zeros elsewhere.",
    "identity": "The n x n identity matrix.",
    "arange": "Evenly spaced values in [start, stop) (the bounds must be concrete).",
    "linspace": "`num` evenly spaced values from start to stop (traced bounds are allowed).",
    "astype": "x converted to `dtype`.",
    "shape": "The shape of a (a tuple of ints, also for traced values).",
    "ndim": "The number of dimensions of a.",
    "size": "The number of elements of a (along `axis` when given).",
    "reshape": "a with a new shape (one dimension may be -1); C order only.",
    "ravel": "a flattened to 1-D (C order).",
    "transpose": "a with its axes permuted (reversed when `axes` is None).",
    "moveaxis": "a with axes `source` moved to positions `destination`.",
    "swapaxes": "a with axes axis1 and axis2 interchanged.",
    "expand_dims": "a with new length-1 axes at the positions `axis`.",
    "squeeze": "a without its length-1 axes (only those in `axis` when given).",
    "broadcast_to": "a broadcast to `shape` (NumPy's rules).",
    "broadcast_arrays": "The arguments broadcast against each other, as a list.",
    "atleast_1d": "Arrays with at least one dimension.",
    "atleast_2d": "Arrays with at least two dimensions ((n,) becomes (1, n)).",
    "concatenate": "Join arrays along an existing axis (flattened when axis is None).",
    "stack": "Join same-shaped arrays along a new axis.",
    "vstack": "Stack arrays vertically (row-wise), after atleast_2d.",
    "hstack": "Stack arrays horizontally (column-wise); 1-D arrays are joined.",
    "dot": "NumPy's dot: inner product of vectors, matrix product, or sum over the last "
           "axis of a and the second-to-last of b.",
    "vdot": "Dot product of the flattened arrays.",
    "inner": "Sum product over the last axes of a and b.",
    "outer": "Outer product of the flattened arrays: out[i, j] = a[i] * b[j].",
    "tensordot": "Sum products over the given axes (an int n: a's last n with b's first n).",
}
_FLOAT_DOCS = {
    "exp": "e**x", "exp2": "2**x", "expm1": "exp(x) - 1, accurate near 0",
    "log": "Natural logarithm", "log1p": "log(1 + x), accurate near 0", "sqrt": "Square root",
    "cbrt": "Cube root", "sin": "Sine", "cos": "Cosine", "tan": "Tangent",
    "arcsin": "Inverse sine", "arccos": "Inverse cosine", "arctan": "Inverse tangent",
    "sinh": "Hyperbolic sine", "cosh": "Hyperbolic cosine", "tanh": "Hyperbolic tangent",
    "arcsinh": "Inverse hyperbolic sine", "arccosh": "Inverse hyperbolic cosine",
    "arctanh": "Inverse hyperbolic tangent",
}
for _name, _doc in [*_DOCS.items(),
                    *((n, f"{d}, elementwise." + _FLOAT) for n, d in _FLOAT_DOCS.items())]:
    _fn = globals()[_name]
    _fn.__doc__ = _doc
    if _fn.__name__ in ("op", _name) or _name in _FLOAT_DOCS:
        _fn.__name__ = _fn.__qualname__ = _name
        _fn.__module__ = __name__
del _name, _doc, _fn


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
    T.imag = property(lambda s: zeros_like(s))
    for name in ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "cumsum", "cumprod",
                 "var", "std", "all", "any", "clip", "round", "trace", "diagonal", "repeat",
                 "ptp", "nonzero", "flatten", "take", "sort", "argsort"):
        if name in globals() and name not in T.__dict__:
            setattr(T, name, _method(name))
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function


def _method(name):
    def method(self, *args, **kwargs):
        return globals()[name](self, *args, **kwargs)
    method.__name__ = name
    return method


_UFUNC_NAMES = {"true_divide": "divide", "conjugate": "positive", "conj": "positive"}
# ufunc methods with a fungrad.numpy equivalent: (ufunc, method) -> function name
_UFUNC_METHODS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
                  ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
                  ("logical_and", "reduce"): "all", ("logical_or", "reduce"): "any",
                  ("add", "accumulate"): "cumsum", ("multiply", "accumulate"): "cumprod",
                  ("multiply", "outer"): "outer"}


_NOT_API = {"aval_of", "current_trace", "getitem"}


def _own_function(name):
    """fungrad.numpy's public function called `name`, or None."""
    fn = globals().get(name)
    if name.startswith("_") or name in _NOT_API or not callable(fn) or isinstance(fn, type) \
            or not (getattr(fn, "__module__", None) or "").startswith("fungrad"):
        return None
    return fn


def _unsupported(what, suggestion):
    from ..errors import TracerArrayConversionError, format_location, user_location
    return TracerArrayConversionError(
        f"{what} was called on a traced value at {format_location(user_location(3))}; NumPy "
        f"cannot trace or differentiate it. {suggestion}")


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NumPy ufuncs on traced values (np.sin(x), np.add.reduce(x)) run fungrad.numpy's."""
    name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
    out = kwargs.pop("out", None)
    if out is not None and builtins.any(o is not None for o in (
            out if isinstance(out, tuple) else (out,))):
        raise _unsupported(f"numpy.{ufunc.__name__} with out=",
                           f"Arrays are immutable: use y = fungrad.numpy.{name}(...) instead.")
    if method == "__call__":
        fn = _own_function(name)
        dtype = kwargs.pop("dtype", None)
        if fn is None or kwargs:
            raise _unsupported(
                f"numpy.{ufunc.__name__}" + (f" with {', '.join(kwargs)}=" if kwargs else ""),
                f"Use fungrad.numpy.{name} instead." if fn is not None else
                f"fungrad.numpy has no {name}; write it with fungrad.numpy operations.")
        res = fn(*inputs)
        return res if dtype is None else astype(res, dtype)
    target = _UFUNC_METHODS.get((name, method))
    if target is None:
        raise _unsupported(
            f"numpy.{ufunc.__name__}.{method}",
            "fungrad.numpy supports add/multiply/maximum/minimum/logical_and/logical_or "
            ".reduce, add/multiply .accumulate and multiply.outer; write it with "
            "fungrad.numpy operations.")
    if method == "reduce":
        kwargs.setdefault("axis", 0)
    if method == "accumulate":
        kwargs.setdefault("axis", 0)
    return globals()[target](*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    """NumPy functions (np.sum, np.stack, ...) on traced values run fungrad.numpy's."""
    name = func.__name__
    module = getattr(func, "__module__", "") or ""
    fn = None
    if module.startswith("numpy.linalg"):
        try:
            from . import linalg as _linalg
        except ImportError:
            _linalg = None
        fn = getattr(_linalg, name, None)
    else:
        fn = _own_function(name)
    if fn is None:
        parts = module.split(".")
        public = (module if len(parts) > 1 and not parts[1].startswith("_") else "numpy") + \
            "." + name
        raise _unsupported(public, f"fungrad.{public} does not exist; write it with "
                                   "fungrad.numpy operations.")
    return fn(*args, **kwargs)


_install_tracer_methods()
from . import linalg  # noqa: E402,F401  (fungrad.numpy.linalg)
from . import _indexing  # noqa: E402,F401  (advanced indexing, x.at[...], item assignment)
