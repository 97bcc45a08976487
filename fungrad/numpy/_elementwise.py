"""Elementwise (ufunc-like) functions: arithmetic, comparisons, bitwise and logical
operations, powers, exponentials and logarithms, trigonometry, rounding, `where`, `clip`.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from .. import lax
from ..errors import FungradTypeError, FungradValueError
from ..primitives import elementwise
from ..tracing import Tracer, aval_of
from ._checks import array_sequence
from ._promotion import _PY_SCALARS, _broadcast, _convert, _same_typed, _scalar, _shape, result_type
from ._coercion import _as_array, _as_operand, _promote
from ._creation import full, zeros_like

__all__ = ["add", "subtract", "multiply", "true_divide", "divide", "maximum", "minimum", "arctan2",
           "nextafter", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
           "bitwise_and", "bitwise_or", "bitwise_xor", "logical_and", "logical_or", "logical_xor",
           "logical_not", "invert", "bitwise_not", "floor_divide", "remainder", "mod", "fmod",
           "power", "pow", "negative", "positive", "absolute", "abs", "sign", "exp", "exp2",
           "expm1", "log", "log1p", "sqrt", "cbrt", "sin", "cos", "tan", "arcsin", "arccos",
           "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "asin", "acos",
           "atan", "asinh", "acosh", "atanh", "atan2", "log2", "log10", "square", "reciprocal",
           "floor", "ceil", "trunc", "fix", "round", "around", "rint", "isfinite", "isnan",
           "isinf", "where", "clip", "logaddexp", "logaddexp2", "hypot", "sinc", "fmax", "fmin",
           "signbit", "copysign", "deg2rad", "rad2deg", "radians", "degrees", "heaviside",
           "isclose", "nan_to_num", "divmod", "fabs", "float_power", "real", "imag", "conjugate",
           "conj", "select", "angle", "iscomplex", "isreal", "iscomplexobj", "isrealobj",
           "real_if_close", "frexp", "ldexp"]


def _binary(fn, to_inexact=False):
    prim = getattr(elementwise, fn.__name__ + "_p", None)
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
    if not isinstance(x, Tracer) and not isinstance(y, Tracer):
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
    if _is_complex_operand(x):
        return approx
    return _exact_at_powers(x, approx, lax.exp2)


@_unary_float
def log10(x):
    """Base-10 logarithm (exact at powers of ten).

    >>> fungrad.numpy.log10(1000.0)
    3.0
    """
    approx = lax.div(lax.log(x), _scalar(x, _LN10))
    if _is_complex_operand(x):
        return approx
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
    """Clip values to [a_min, a_max]; at a bound the gradient passes through (1).  A NaN
    (in `a` or in a bound) propagates as in NumPy and takes the derivative."""
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    out = _as_array(a)
    if lo is not None:
        out = where(_or_nan(less(out, lo), lo), lo, out)
    if hi is not None:
        out = where(_or_nan(greater(out, hi), hi), hi, out)
    return out


def _or_nan(pick_bound, bound):
    """`pick_bound`, or also where the bound is NaN (np.clip(1.0, nan, 2.0) is nan); a
    Python number that is not NaN costs nothing."""
    if isinstance(bound, (bool, int)) or (isinstance(bound, float) and bound == bound):
        return pick_bound
    b = _as_operand(bound)
    if not np.issubdtype(result_type(b), np.inexact):
        return pick_bound
    return logical_or(pick_bound, isnan(b))


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

    The gradient at (0, 0) is 0, not NaN; an infinite operand gives inf even with NaN;
    otherwise a NaN operand gives NaN (as NumPy), and a NaN gradient for that operand.
    """
    x, y = _broadcast(*_promote(x1, x2, to_inexact=True))
    # a NaN operand: |x| + |y| is NaN, and its derivative (sign) is NaN for that operand;
    # the formula below runs on NaN-free operands, so its unused derivative is no NaN
    either_nan = lax.bitwise_or(lax.ne(x, x), lax.ne(y, y))
    nan_out = lax.add(lax.abs(x), lax.abs(y))
    zeros = lax.full(aval_of(x).shape, 0, aval_of(x).dtype)
    a, b = lax.abs(lax.select(either_nan, zeros, x)), lax.abs(lax.select(either_nan, zeros, y))
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
    out = lax.select(either_nan, nan_out, out)
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


def _nan_ignoring(x1, x2, pick):
    """pick(x, y) elementwise, but the other operand where one of them is NaN."""
    x, y = _broadcast(*_promote(x1, x2))
    if not np.issubdtype(result_type(x), np.inexact):
        return pick(x, y)
    return lax.select(lax.ne(y, y), _full_as(x, y), lax.select(lax.ne(x, x), _full_as(y, x),
                                                                pick(x, y)))


def fmax(x1, x2):
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    return _nan_ignoring(x1, x2, lax.max)


def fmin(x1, x2):
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    return _nan_ignoring(x1, x2, lax.min)


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


def _is_complex_operand(x) -> bool:
    return result_type(x).kind == "c"


def real(val):
    """The real part (a real array is returned as it is)."""
    x = _as_array(val)
    return lax.real(x) if _is_complex_operand(x) else x


def imag(val):
    """The imaginary part (zeros of the same dtype for a real array)."""
    x = _as_array(val)
    return lax.imag(x) if _is_complex_operand(x) else zeros_like(x)


def conjugate(x):
    """Complex conjugate, elementwise (a real array is returned as it is)."""
    x = _as_array(x)
    return lax.conj(x) if _is_complex_operand(x) else x


conj = conjugate


def angle(z, deg=False):
    """The argument of complex z, arctan2(imag(z), real(z)), in radians (degrees with
    `deg=True`); real inputs give 0 or pi.  Integers give float64."""
    z = _as_array(z)
    if not np.issubdtype(result_type(z), np.inexact):
        z = _convert(z, np.float64)
    if _is_complex_operand(z):
        out = lax.atan2(lax.imag(z), lax.real(z))
    else:
        out = lax.atan2(zeros_like(z), z)
    return rad2deg(out) if deg else out


def iscomplex(x):
    """True where the element has a nonzero imaginary part (bool array)."""
    x = _as_array(x)
    if not _is_complex_operand(x):
        return full(aval_of(x).shape, False, np.bool_)
    return not_equal(lax.imag(x), 0)


def isreal(x):
    """True where the element has a zero imaginary part (bool array)."""
    return logical_not(iscomplex(x))


def iscomplexobj(x) -> bool:
    """Whether x has a complex dtype (a Python bool, decided from the dtype alone)."""
    return _is_complex_operand(_as_operand(x))


def isrealobj(x) -> bool:
    """Whether x does not have a complex dtype (a Python bool)."""
    return not iscomplexobj(x)


def real_if_close(a, tol=100):
    """The real part of complex `a` when every imaginary part is within `tol` machine
    epsilons of 0 (tol <= 1: an absolute tolerance), else `a` itself.  The decision
    needs the values: under `jit` it raises a concretization error, as in JAX."""
    x = _as_array(a)
    if not _is_complex_operand(x):
        return x
    eps = np.finfo(result_type(x)).eps
    limit = tol * eps if tol > 1 else tol
    small = less(absolute(lax.imag(x)), limit)
    close = lax.reduce_and(small, tuple(range(aval_of(x).ndim))) if aval_of(x).ndim else small
    return lax.real(x) if bool(close) else x


def select(condlist, choicelist, default=0):
    """Per element, the choice of the first true condition (else `default`)."""
    condlist = array_sequence(condlist, "condlist")
    choicelist = array_sequence(choicelist, "choicelist")
    if len(condlist) != len(choicelist):
        raise FungradValueError("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist, strict=True))):
        out = where(cond, choice, out)
    return out


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


def _times_power_of_two(x, e):
    """x * 2**e for integer-valued float e, in two steps so that 2**e itself cannot
    overflow or underflow where the product does not (subnormal x, huge e)."""
    half = lax.floor(lax.mul(e, _scalar(e, 0.5)))
    return lax.mul(lax.mul(x, lax.exp2(half)), lax.exp2(lax.sub(e, half)))


def frexp(x):
    """(mantissa, exponent) with x = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    (0, inf and nan give exponent 0 and themselves).  The exponent is int32; the
    mantissa's derivative is 2**-exponent."""
    x = _as_array(x)
    if not isinstance(x, Tracer):
        return np.frexp(x)
    if not np.issubdtype(result_type(x), np.floating):
        x = _convert(x, np.float64)
    ax = lax.abs(x)
    regular = lax.bitwise_and(lax.is_finite(x), lax.ne(x, _scalar(x, 0)))
    safe = lax.select(regular, ax, lax.full(aval_of(x).shape, 1, result_type(x)))
    e = lax.stop_gradient(lax.add(lax.floor(log2(safe)), _scalar(x, 1)))
    m = _times_power_of_two(x, lax.neg(e))
    # log2 may round across a power of two: one step of correction either way
    am = lax.abs(m)
    too_big = lax.ge(am, _scalar(x, 1))
    too_small = lax.lt(am, _scalar(x, 0.5))
    e = lax.select(too_big, lax.add(e, _scalar(e, 1)),
                   lax.select(too_small, lax.sub(e, _scalar(e, 1)), e))
    m = lax.select(too_big, lax.mul(m, _scalar(m, 0.5)),
                   lax.select(too_small, lax.mul(m, _scalar(m, 2)), m))
    m = lax.select(regular, m, x)
    e = lax.select(regular, e, lax.full(aval_of(e).shape, 0, aval_of(e).dtype))
    return m, lax.convert_element_type(e, np.int32)


def ldexp(x1, x2):
    """x1 * 2**x2 with integer x2 (float32 x1 stays float32; integer x1 gives
    float64); differentiable in x1."""
    x1 = _as_array(x1)
    x2 = _as_array(x2)
    if not np.issubdtype(result_type(x2), np.integer) and result_type(x2) != np.bool_:
        raise FungradTypeError(f"ldexp: the exponent must be an integer array, got "
                               f"{result_type(x2)}")
    if not isinstance(x1, Tracer) and not isinstance(x2, Tracer):
        return np.ldexp(x1, x2)
    dt = result_type(x1)
    if not np.issubdtype(dt, np.floating):
        dt = np.dtype(np.float64)
    x, e = _broadcast(_convert(x1, dt), _convert(x2, dt))
    return _times_power_of_two(x, e)
