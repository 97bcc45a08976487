"""Elementwise primitives, one block each: impl, shape, jvp, vjp, vmap, emit.

Binary primitives are strict (one dtype; equal shapes, or a 0-d operand that
applies to every element).  Rules are written with fungrad operations so they
can be differentiated again.  Singular derivatives follow "a zero cotangent
wins" (DESIGN.md): where the incoming tangent/cotangent is 0 the result is 0,
even where the local derivative is inf or nan.

`emit` gives a NumPy expression that numba compiles both on whole arrays and
on scalars inside fused loops.
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradTypeError
from ..pytree import tree_map
from ..tracing import Tracer, aval_of
from ._static import static_dtype, static_int
from ._util import (binary_shape, bool_shape, coerce_scalars, complex_dtype, is_complex, is_float,
                    nondifferentiable, np_dtype, real_dtype, same_shape)
from .base import (broadcast_in_dim, convert_element_type, elementwise_vmap, full, reduce_sum,
                   zeros_like_aval)

__all__ = [
    "neg", "add", "sub", "mul", "div", "rem", "pow", "integer_pow", "max", "min", "abs",
    "sign", "exp", "exp2", "expm1", "log", "log1p", "sqrt", "rsqrt", "cbrt", "sin", "cos",
    "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
    "logistic", "erf", "erfc", "erf_inv", "lgamma", "digamma", "polygamma", "floor", "ceil", "round",
    "is_finite", "eq", "ne", "lt", "le", "gt", "ge", "bitwise_and", "bitwise_or",
    "bitwise_not", "bitwise_xor", "shift_left", "shift_right_logical",
    "shift_right_arithmetic", "bitcast_convert_type", "select", "square", "real", "imag", "conj",
    "complex", "safe_mul", "weighted", "nextafter", "bce_with_logits", "softplus",
]

# NOTE: `max`, `min`, `abs`, `pow`, `round`, `complex` shadow builtins inside this module on
# purpose (they are the lax names); use the builtins through `builtins.` here.
import builtins  # noqa: E402

from ._vecnames import scalar_call  # noqa: E402

_SCIPY = {}


def _special(name):
    """scipy.special function, imported on first use (keeps `import fungrad` light)."""
    fn = _SCIPY.get(name)
    if fn is None:
        import scipy.special
        fn = _SCIPY[name] = getattr(scipy.special, name)
    return fn


def safe_mul(t, deriv):
    """t * deriv, but 0 where t == 0 (a zero cotangent wins over inf/nan)."""
    # Only a non-finite `deriv` is masked, and only where t == 0.  The product stays
    # `t * m` with m == deriv wherever deriv is finite, so d/dt is still `deriv` at
    # t == 0: `select(t == 0, 0, t * deriv)` would make every higher derivative
    # through t vanish there (jacfwd(jacfwd(lambda x: log(x*x + 1)))(0.) gave 0).
    finite = select(is_finite(deriv), deriv, _zero(deriv))
    return mul(t, select(eq(t, _zero(t)), finite, deriv))


def _zero(x):
    return aval_of(x).dtype.type(0)


def weighted(t, w):
    """t * w for a piecewise-constant local derivative w (a sign, a 0/1 mask, a tie
    share): 0 wherever w == 0, even where t is inf or nan.  "A zero local derivative
    wins" is the reverse-mode twin of "a zero tangent wins" (`safe_mul`): with both,
    a kink feeding a singular derivative (sqrt(abs(x)) at 0) gives the same number,
    0, in forward and reverse mode."""
    w = broadcast_in_dim(w, aval_of(t).shape, ()) if aval_of(w).shape == () and \
        aval_of(t).shape != () else w
    # and, as safe_mul, a zero t wins over a NaN w (the NaN of a NaN operand stays in
    # its own row and column of a Jacobian, in both modes)
    return select(eq(w, _zero(w)), zeros_like_aval(aval_of(t)), safe_mul(t, w))


def _zero_array(x):
    return zeros_like_aval(aval_of(x))


def _unary(name, impl, emit, *, jvp=None, float_only=True, real_only=False):
    """Declare an elementwise unary primitive with `jvp(t, x, out)`; its vjp is the
    same linear map applied to the cotangent (elementwise => self-adjoint).  For a
    complex operand the jvp is multiplication by the complex derivative f'(x)
    (the primitive is holomorphic), and its transpose is the same multiplication:
    vjp is the transpose, not the conjugate transpose (JAX's convention).
    `real_only=True`: NumPy defines the function on real operands only."""
    p = Primitive(name, kind="elementwise")
    p.def_impl(impl)

    def shape(x, **params):
        if float_only and not is_float(x.dtype):
            raise FungradTypeError(f"{name}: needs a floating-point operand, got {x}")
        if real_only and is_complex(x.dtype):
            raise FungradTypeError(f"{name}: is defined on real operands only, got {x}")
        return x
    p.def_shape(shape)
    p.def_vmap(elementwise_vmap(p))
    p.def_emit(lambda x: emit.format(x))
    if jvp is not None:
        p.def_jvp(lambda t, x, *, out: jvp(t, x, out))
        p.def_vjp(lambda ct, x, *, out: (jvp(ct, x, out),))
    return p


def _real_binary_shape(name):
    rule = binary_shape(name)

    def shape(x, y, **params):
        if is_complex(x.dtype) or is_complex(y.dtype):
            raise FungradTypeError(f"{name}: is defined on real operands only, got {x} and {y}")
        return rule(x, y)
    return shape


def _binary(name, impl, emit, *, jvp, vjp, real_only=False, **props):
    """Declare a strict binary elementwise primitive (a 0-d operand applies to every
    element): its impl, emit text, and jvp/vjp rules; shape and vmap are shared.
    `props` are Primitive's declared properties (commutative=, linear_in=)."""
    p = Primitive(name, kind="elementwise", **props)
    p.def_impl(impl)
    p.def_shape(_real_binary_shape(name) if real_only else binary_shape(name))
    p.def_vmap(elementwise_vmap(p))
    p.def_emit(emit)
    p.def_jvp(jvp)
    p.def_vjp(vjp)
    return p


# --- arithmetic --------------------------------------------------------------

neg_p = Primitive("neg", kind="elementwise", linear_in="all")
neg_p.def_impl(np.negative)
neg_p.def_shape(same_shape)
neg_p.def_vmap(elementwise_vmap(neg_p))
neg_p.def_emit(lambda x: f"(-{x})")
neg_p.def_jvp(lambda t, x, *, out: neg(t))
neg_p.def_vjp(lambda ct, x, *, out: (neg(ct),))


def neg(x):
    return neg_p.bind(x)


def _sum_to(ct, aval):
    """Undo the implicit scalar broadcast of a 0-d operand."""
    if aval.shape == () and aval_of(ct).shape != ():
        return reduce_sum(ct, tuple(range(aval_of(ct).ndim)))
    return ct


def _aval(x):
    return aval_of(x)


# d(x + y) = dx + dy
add_p = _binary("add", np.add, lambda x, y: f"({x} + {y})", commutative=True, linear_in="all",
                jvp=lambda tx, ty, x, y, *, out: add(tx, ty),
                vjp=lambda ct, x, y, *, out: (_sum_to(ct, _aval(x)), _sum_to(ct, _aval(y))))


def add(x, y):
    return add_p.bind(*coerce_scalars(x, y))


sub_p = _binary("sub", np.subtract, lambda x, y: f"({x} - {y})", linear_in="all",
                jvp=lambda tx, ty, x, y, *, out: sub(tx, ty),
                vjp=lambda ct, x, y, *, out: (_sum_to(ct, _aval(x)), _sum_to(neg(ct), _aval(y))))


def sub(x, y):
    return sub_p.bind(*coerce_scalars(x, y))


# d(x y) = dx y + x dy
def _times_factor(t, y):
    """t * y for the tangent or cotangent t through one factor of a product and the other
    factor y: where y is a constant that is exactly 0, the product is 0 even if t is inf
    or NaN ("a zero factor wins").  So `0.0 * log(x)` and `sqrt(x * 0.0)` at 0 give the
    same derivative, 0, in forward and reverse mode.  A traced y is not masked (that would
    cost every derivative program a select): see docs/sharp-bits.md."""
    if isinstance(y, Tracer):
        return mul(t, y)
    zero = np.asarray(y) == 0
    if not zero.any() or _aval(t).dtype.kind != "f":
        return mul(t, y)
    keep = bitwise_or(is_finite(t), bitwise_not(zero if zero.ndim else np.bool_(zero)))
    return mul(select(keep, t, _zero(t)), y)


mul_p = _binary("mul", np.multiply, lambda x, y: f"({x} * {y})", commutative=True,
                linear_in="each",
                jvp=lambda tx, ty, x, y, *, out: add(_times_factor(tx, y),
                                                     _times_factor(ty, x)),
                vjp=lambda ct, x, y, *, out: (_sum_to(_times_factor(ct, y), _aval(x)),
                    _sum_to(_times_factor(ct, x), _aval(y))))


def mul(x, y):
    return mul_p.bind(*coerce_scalars(x, y))


def _div_impl(x, y):
    if np.issubdtype(np.result_type(x), np.integer):
        # C-style truncation toward zero, like lax.div
        q = np.floor_divide(x, y)
        fix = (np.remainder(x, y) != 0) & ((x < 0) != (y < 0))
        return np.where(fix, q + 1, q).astype(np.result_type(x))
    return np.true_divide(x, y)


# d(x / y) = dx / y - (x / y) dy / y
div_p = _binary("div", _div_impl, lambda x, y: f"({x} / {y})", linear_in=(0,),
                jvp=lambda tx, ty, x, y, *, out: sub(div(tx, y), safe_mul(ty, div(out, y))),
                vjp=lambda ct, x, y, *, out: (
                    _sum_to(div(ct, y), _aval(x)),
                    _sum_to(neg(safe_mul(ct, div(out, y))), _aval(y))))


def _div_scalar_emit(x, y, *, out, in_avals):
    # signed integers truncate toward zero (a kernel helper that also gives NumPy's
    # x / 0 == 0 and MIN / -1 == MIN); unsigned ones floor, which is the same
    if np.issubdtype(out.dtype, np.signedinteger):
        return f"_idiv({x}, {y})"
    if np.issubdtype(out.dtype, np.unsignedinteger):
        return f"({x} // {y})"
    return None


div_p.def_scalar_emit(_div_scalar_emit)


def div(x, y):
    return div_p.bind(*coerce_scalars(x, y))


def _rem_impl(x, y):
    return np.fmod(x, y)  # sign of the dividend, like C and lax.rem


# rem(x, y) = x - y trunc(x / y): d = dx - trunc(x / y) dy
rem_p = _binary("rem", _rem_impl, lambda x, y: f"np.fmod({x}, {y})", real_only=True,
                jvp=lambda tx, ty, x, y, *, out: sub(tx, mul(ty, round(div(sub(x, out), y)))),
                vjp=lambda ct, x, y, *, out: (
                    _sum_to(ct, _aval(x)), _sum_to(neg(mul(ct, round(div(sub(x, out), y)))), _aval(y))))


def _rem_scalar_emit(x, y, *, out, in_avals):
    # numba's fmod of integers takes the sign of the divisor; a helper takes the dividend's
    if np.issubdtype(out.dtype, np.signedinteger):
        return f"_irem({x}, {y})"
    if np.issubdtype(out.dtype, np.unsignedinteger):
        return f"({x} % {y})"
    return None


rem_p.def_scalar_emit(_rem_scalar_emit)


def rem(x, y):
    return rem_p.bind(*coerce_scalars(x, y))


def _pow_jvp_x(t, x, y, out):
    # d x**y / dx = y x**(y-1); 0 where y == 0 (so d/dx x**0 at 0 is 0)
    y_full = y
    deriv = select(eq(y_full, _zero(y)), _zero_array(out),
                   mul(y, pow(x, sub(y, _one(y)))))
    return safe_mul(t, deriv)


def _pow_jvp_y(t, x, y, out):
    # d x**y / dy = log(x) x**y; 0 where x == 0 (the one-sided limit for y > 0)
    logx = log(select(eq(x, _zero(x)), _ones_array(x), x))
    return safe_mul(t, mul(out, logx))


def _one(x):
    return _aval(x).dtype.type(1)


def _ones_array(x):
    a = _aval(x)
    return full(a.shape, 1, a.dtype)


pow_p = Primitive("pow", kind="elementwise")
pow_p.def_impl(np.power)
pow_p.def_shape(binary_shape("pow"))
pow_p.def_vmap(elementwise_vmap(pow_p))
pow_p.def_emit(lambda x, y: f"np.power({x}, {y})")
pow_p.def_jvp(lambda tx, ty, x, y, *, out: add(_pow_jvp_x(tx, x, y, out),
                                               _pow_jvp_y(ty, x, y, out)))
pow_p.def_vjp(lambda ct, x, y, *, out: (
    _sum_to(_pow_jvp_x(ct, x, y, out), _aval(x)),
    _sum_to(_pow_jvp_y(ct, x, y, out), _aval(y))))


# integers: exact powers that wrap like NumPy's (numba's integer ** goes through
# floats for large exponents); a negative exponent raises, as in NumPy
pow_p.def_scalar_emit(lambda x, y, *, out, in_avals: (
    f"_powi({x}, {y}, {_typed_one(out.dtype)})" if np.issubdtype(out.dtype, np.integer)
    else None))


def _typed_one(dtype) -> str:
    return f"np.{np.dtype(dtype).name}(1)"


def pow(x, y):
    return pow_p.bind(*coerce_scalars(x, y))


def _integer_pow_impl(x, *, y):
    if y == 0:
        return np.ones_like(x)
    if y == 1:
        return np.array(x, copy=True) if isinstance(x, np.ndarray) else x
    if y == 2:
        return np.multiply(x, x)
    if y < 0 and not is_float(np.result_type(x)):
        raise FungradTypeError("integer_pow: negative powers need a float operand")
    return np.power(x, x.dtype.type(y) if hasattr(x, "dtype") else y)


def _integer_pow_emit(x, *, y):
    # the whole-array form (0-d operands are scalars in a kernel)
    return f"np.power({x}, {y})" if y >= 0 else f"np.power({x}, {float(y)!r})"


def _integer_pow_scalar_emit(x, *, out, in_avals, y):
    # as the impl: x * x for y == 2, else NumPy's power (libm pow for floats; integers
    # by the exact, wrapping `_powi` helper)
    one = _typed_one(out.dtype)
    if y == 0:
        return one
    if y == 1:
        return x
    if y == 2:
        return f"({x} * {x})"
    if np.issubdtype(out.dtype, np.integer):
        return f"_powi({x}, {y}, {one})"
    return f"np.power({x}, {np_dtype(out.dtype)}({float(y)!r}))"


def _integer_pow_deriv(x, y):
    if y == 0:
        return _zero_array(x)
    if y == 1:
        return _ones_array(x)
    if y == 2:
        return mul(x, _aval(x).dtype.type(2))
    return mul(integer_pow(x, y - 1), _aval(x).dtype.type(y))


integer_pow_p = Primitive("integer_pow", kind="elementwise")
integer_pow_p.def_impl(_integer_pow_impl)
integer_pow_p.def_shape(same_shape)
integer_pow_p.def_vmap(elementwise_vmap(integer_pow_p))
integer_pow_p.def_emit(_integer_pow_emit)
integer_pow_p.def_scalar_emit(_integer_pow_scalar_emit)
# d x**n = n x**(n-1) dx  (n x**(n-1) is singular at 0 only for n < 1)
integer_pow_p.def_jvp(lambda t, x, *, out, y: (
    safe_mul(t, _integer_pow_deriv(x, y)) if y < 1 else mul(t, _integer_pow_deriv(x, y))))
integer_pow_p.def_vjp(lambda ct, x, *, out, y: (
    safe_mul(ct, _integer_pow_deriv(x, y)) if y < 1 else mul(ct, _integer_pow_deriv(x, y)),))


def integer_pow(x, y: int):
    return integer_pow_p.bind(x, y=static_int(y, "y"))


def square(x):
    return integer_pow(x, 2)


def _minmax_rule(pick_x):
    """jvp of max/min: the selected operand's tangent; ties split 0.5 / 0.5.  A NaN
    operand is the selected one (np.maximum returns it), so it takes the derivative;
    two NaNs tie."""
    def weights(x, y):
        half = _aval(x).dtype.type(0.5)
        one = _aval(x).dtype.type(1)
        x_nan, y_nan = ne(x, x), ne(y, y)
        wins = bitwise_or(pick_x(x, y), bitwise_and(x_nan, bitwise_not(y_nan)))
        tie = bitwise_or(eq(x, y), bitwise_and(x_nan, y_nan))
        w_x = select(tie, _full_like(x, y, half), select(wins, _full_like(x, y, one),
                                                         _full_like(x, y, 0)))
        return w_x, sub(_full_like(x, y, one), w_x)
    return weights


def _full_like(x, y, value):
    ax, ay = _aval(x), _aval(y)
    shape = ax.shape if ax.shape else ay.shape
    return full(shape, value, ax.dtype)


def _bcast(x, like_shape):
    """A 0-d operand broadcast to the shape of the other operand (for tangents)."""
    if _aval(x).shape == () and like_shape != ():
        return broadcast_in_dim(x, like_shape, ())
    return x


_max_weights = _minmax_rule(lambda x, y: gt(x, y))
_min_weights = _minmax_rule(lambda x, y: lt(x, y))


def _minmax_jvp(weights):
    def jvp(tx, ty, x, y, *, out):
        w_x, w_y = weights(x, y)
        return add(weighted(_bcast(tx, _aval(out).shape), w_x),
                   weighted(_bcast(ty, _aval(out).shape), w_y))
    return jvp


def _minmax_vjp(weights):
    def vjp(ct, x, y, *, out):
        w_x, w_y = weights(x, y)
        return (_sum_to(weighted(ct, w_x), _aval(x)), _sum_to(weighted(ct, w_y), _aval(y)))
    return vjp


max_p = _binary("max", np.maximum, lambda x, y: f"np.maximum({x}, {y})", commutative=True,
                jvp=_minmax_jvp(_max_weights),
                vjp=_minmax_vjp(_max_weights))


# NumPy's maximum: a NaN in either operand wins; of equal values (0.0 and -0.0) y
max_p.def_scalar_emit(lambda x, y, *, out, in_avals: (
    f"({x} if ({x} > {y} or {x} != {x}) else {y})"))


def max(x, y):
    return max_p.bind(*coerce_scalars(x, y))


min_p = _binary("min", np.minimum, lambda x, y: f"np.minimum({x}, {y})", commutative=True,
                jvp=_minmax_jvp(_min_weights),
                vjp=_minmax_vjp(_min_weights))


min_p.def_scalar_emit(lambda x, y, *, out, in_avals: (
    f"({x} if ({x} < {y} or {x} != {x}) else {y})"))


def min(x, y):
    return min_p.bind(*coerce_scalars(x, y))


nextafter_p = _binary("nextafter", np.nextafter, lambda x, y: f"np.nextafter({x}, {y})",
                      real_only=True,
                      jvp=nondifferentiable,
                      vjp=nondifferentiable)


def nextafter(x, y):
    return nextafter_p.bind(*coerce_scalars(x, y))


def _abs_unit(x, out):
    """conj(x) / |x| for complex x, 0 where x == 0 (written with differentiable
    operations: unlike a real sign, it varies with x)."""
    mag = convert_element_type(out, _aval(x).dtype)
    at_zero = eq(out, _zero(out))
    safe = select(at_zero, _ones_array(mag), mag)
    return select(at_zero, _zero_array(x), div(conj(x), safe))


# real x: d|x| = sign(x) dx, and 0 at x == 0.
# complex z: d|z| = Re(conj(z) dz) / |z|; transposed (the pairing is Re(u v), as in JAX),
# a real cotangent c gives c conj(z) / |z|; 0 at z == 0 (a zero wins, like JAX)
abs_p = Primitive("abs", kind="elementwise")
abs_p.def_impl(np.abs)
abs_p.def_shape(lambda x: x.update(dtype=real_dtype(x.dtype)))
abs_p.def_vmap(elementwise_vmap(abs_p))
abs_p.def_emit(lambda x: f"np.abs({x})")
# d|x| = sign(x) dx, 0 at x == 0 (the least-norm subgradient), winning over inf/nan;
# complex x: Re(conj(x)/|x| dx) (JAX's convention)
abs_p.def_jvp(lambda t, x, *, out: (real(mul(t, _abs_unit(x, out))) if is_complex(_aval(x).dtype)
                                    else weighted(t, sign(x))))
abs_p.def_vjp(lambda ct, x, *, out: ((
    mul(convert_element_type(ct, _aval(x).dtype), _abs_unit(x, out))
    if is_complex(_aval(x).dtype) else weighted(ct, sign(x))),))


def abs(x):
    return abs_p.bind(x)


# sign(z) = z / |z| for complex z (NumPy 2); treated as constant by derivatives (as JAX)
sign_p = Primitive("sign", kind="elementwise")
sign_p.def_impl(np.sign)
sign_p.def_shape(same_shape)
sign_p.def_vmap(elementwise_vmap(sign_p))
sign_p.def_emit(lambda x: f"np.sign({x})")
sign_p.def_jvp(nondifferentiable)
sign_p.def_vjp(nondifferentiable)


def _sign_scalar_emit(x, *, out, in_avals):
    # NumPy: sign(-0.0) is 0.0 and sign(nan) is nan; unsigned values are 0 or 1
    dt = np.dtype(out.dtype)
    t = np_dtype(dt)
    if dt == np.bool_:
        return x
    if np.issubdtype(dt, np.unsignedinteger):
        return f"({t}(1) if {x} > 0 else {t}(0))"
    if np.issubdtype(dt, np.integer):
        return f"({t}(1) if {x} > 0 else ({t}(-1) if {x} < 0 else {t}(0)))"
    if np.issubdtype(dt, np.floating):
        return (f"({t}(1) if {x} > 0 else ({t}(-1) if {x} < 0 else "
                f"({t}(0) if {x} == 0 else {x})))")
    return None


sign_p.def_scalar_emit(_sign_scalar_emit)


def sign(x):
    return sign_p.bind(x)


# --- complex parts ----------------------------------------------------------------
# The derivative rules follow JAX: a jvp is the R-linear map of tangents, and a vjp is
# its transpose for the real pairing <u, v> = Re(sum u v) (no conjugation), so
# transpose(real) = complex(ct, 0), transpose(imag) = complex(0, -ct), transpose(conj) = conj.

def _complex_shape(name):
    def shape(x, **params):
        if not is_complex(x.dtype):
            raise FungradTypeError(f"{name}: needs a complex operand, got {x}")
        return x.update(dtype=real_dtype(x.dtype))
    return shape


def _as_complex(x, dtype):
    return convert_element_type(x, dtype)


real_p = Primitive("real", kind="elementwise", linear_in="all")
real_p.def_impl(np.real)
real_p.def_shape(_complex_shape("real"))
real_p.def_vmap(elementwise_vmap(real_p))
real_p.def_emit(lambda x: f"({x}).real")
real_p.def_jvp(lambda t, x, *, out: real(t))
real_p.def_vjp(lambda ct, x, *, out: (_as_complex(ct, _aval(x).dtype),))


def real(x):
    """The real part of complex x (primitive `real`)."""
    return real_p.bind(x)


imag_p = Primitive("imag", kind="elementwise", linear_in="all")
imag_p.def_impl(np.imag)
imag_p.def_shape(_complex_shape("imag"))
imag_p.def_vmap(elementwise_vmap(imag_p))
imag_p.def_emit(lambda x: f"({x}).imag")
imag_p.def_jvp(lambda t, x, *, out: imag(t))
imag_p.def_vjp(lambda ct, x, *, out: (
    mul(_as_complex(ct, _aval(x).dtype), _aval(x).dtype.type(-1j)),))


def imag(x):
    """The imaginary part of complex x (primitive `imag`)."""
    return imag_p.bind(x)


def _conj_shape(x, **params):
    if not is_complex(x.dtype):
        raise FungradTypeError(f"conj: needs a complex operand, got {x}")
    return x


conj_p = Primitive("conj", kind="elementwise", linear_in="all")
conj_p.def_impl(np.conjugate)
conj_p.def_shape(_conj_shape)
conj_p.def_vmap(elementwise_vmap(conj_p))
conj_p.def_emit(lambda x: f"np.conj({x})")
conj_p.def_jvp(lambda t, x, *, out: conj(t))
conj_p.def_vjp(lambda ct, x, *, out: (conj(ct),))


def conj(x):
    """The complex conjugate of complex x (primitive `conj`)."""
    return conj_p.bind(x)


def _complex_impl(x, y):
    dtype = complex_dtype(np.result_type(x))
    x, y = np.asarray(x), np.asarray(y)
    out = np.broadcast_to(x, np.broadcast_shapes(x.shape, y.shape)).astype(dtype)
    out.imag = y
    return out if out.ndim else out[()]


def _make_complex_shape(x, y, **params):
    if x.dtype.kind != "f":
        raise FungradTypeError(f"complex: needs real floating-point operands, got {x} and {y}")
    return binary_shape("complex")(x, y).update(dtype=complex_dtype(x.dtype))


# complex(x, y) = x + i y: d = dx + i dy; transposed: (Re ct, -Im ct)
complex_p = Primitive("complex", kind="elementwise", linear_in="all")
complex_p.def_impl(_complex_impl)
complex_p.def_shape(_make_complex_shape)
complex_p.def_vmap(elementwise_vmap(complex_p))
complex_p.def_emit(lambda x, y: f"({x} + 1j * {y})")
complex_p.def_jvp(lambda tx, ty, x, y, *, out: complex(tx, ty))
complex_p.def_vjp(lambda ct, x, y, *, out: (_sum_to(real(ct), _aval(x)),
                                            _sum_to(neg(imag(ct)), _aval(y))))


def complex(x, y):  # noqa: A001 (lax's name)
    """x + i y from real x and y of one dtype (primitive `complex`)."""
    return complex_p.bind(*coerce_scalars(x, y))


# --- transcendental -------------------------------------------------------------

def _c(x, v):
    """A constant of x's dtype."""
    return _aval(x).dtype.type(v)


exp_p = _unary("exp", np.exp, "np.exp({})", jvp=lambda t, x, out: mul(t, out))
exp2_p = _unary("exp2", np.exp2, "np.exp2({})",
                jvp=lambda t, x, out: mul(t, mul(out, _c(x, np.log(2.0)))))
expm1_p = _unary("expm1", np.expm1, "np.expm1({})",
                 jvp=lambda t, x, out: mul(t, add(out, _c(x, 1))))
# d log x = dx / x  (singular at 0: a zero cotangent wins)
log_p = _unary("log", np.log, "np.log({})", jvp=lambda t, x, out: safe_mul(t, div(_c(x, 1), x)))
log1p_p = _unary("log1p", np.log1p, "np.log1p({})",
                 jvp=lambda t, x, out: safe_mul(t, div(_c(x, 1), add(x, _c(x, 1)))))


def _vector_math(name):
    """scalar_emit rule: in kernels, float32/float64 values use the inline, vectorisable
    implementation of backend/vecmath.py (<= 2 ulp; config.vector_math), anything
    else the emit rule's NumPy/libm call."""
    def rule(x, *, out, in_avals):
        return scalar_call(name, x, out.dtype)
    return rule


def _log1p_exp_neg_abs(x, dtype):
    """Vector-math text for log1p(exp(-|x|)) (softplus, bce_with_logits), or None."""
    e = scalar_call("exp", f"(-abs({x}))", dtype)
    return None if e is None else scalar_call("log1p", e, dtype)


for _p, _name in ((exp_p, "exp"), (expm1_p, "expm1"), (log_p, "log"), (log1p_p, "log1p")):
    _p.def_scalar_emit(_vector_math(_name))

# d sqrt x = dx / (2 sqrt x)
sqrt_p = _unary("sqrt", np.sqrt, "np.sqrt({})",
                jvp=lambda t, x, out: safe_mul(t, div(_c(x, 0.5), out)))
# d x^(-1/2) = -x^(-3/2) / 2 dx
rsqrt_p = _unary("rsqrt", lambda x: 1.0 / np.sqrt(x) if np.ndim(x) else
                 np.result_type(x).type(1) / np.sqrt(x), "(1.0 / np.sqrt({}))",
                 jvp=lambda t, x, out: safe_mul(t, mul(_c(x, -0.5), div(out, x))))
cbrt_p = _unary("cbrt", np.cbrt, "np.cbrt({})", real_only=True,
                jvp=lambda t, x, out: safe_mul(t, div(_c(x, 1 / 3), mul(out, out))))
sin_p = _unary("sin", np.sin, "np.sin({})", jvp=lambda t, x, out: mul(t, cos(x)))
cos_p = _unary("cos", np.cos, "np.cos({})", jvp=lambda t, x, out: neg(mul(t, sin(x))))
# d tan x = (1 + tan^2 x) dx
tan_p = _unary("tan", np.tan, "np.tan({})",
               jvp=lambda t, x, out: mul(t, add(_c(x, 1), mul(out, out))))
asin_p = _unary("asin", np.arcsin, "np.arcsin({})",
                jvp=lambda t, x, out: safe_mul(t, rsqrt(sub(_c(x, 1), mul(x, x)))))
acos_p = _unary("acos", np.arccos, "np.arccos({})",
                jvp=lambda t, x, out: safe_mul(t, neg(rsqrt(sub(_c(x, 1), mul(x, x))))))
atan_p = _unary("atan", np.arctan, "np.arctan({})",
                jvp=lambda t, x, out: div(t, add(_c(x, 1), mul(x, x))))
sinh_p = _unary("sinh", np.sinh, "np.sinh({})", jvp=lambda t, x, out: mul(t, cosh(x)))
cosh_p = _unary("cosh", np.cosh, "np.cosh({})", jvp=lambda t, x, out: mul(t, sinh(x)))
# d tanh x = (1 - tanh^2 x) dx, reusing the output
tanh_p = _unary("tanh", np.tanh, "np.tanh({})",
                jvp=lambda t, x, out: mul(t, sub(_c(x, 1), mul(out, out))))
asinh_p = _unary("asinh", np.arcsinh, "np.arcsinh({})",
                 jvp=lambda t, x, out: mul(t, rsqrt(add(mul(x, x), _c(x, 1)))))
# d acosh z = dz / (sqrt(z - 1) sqrt(z + 1)): for complex z that is the principal
# branch's derivative (1 / sqrt(z^2 - 1) has the wrong sign where Re z < 0)
acosh_p = _unary("acosh", np.arccosh, "np.arccosh({})",
                 jvp=lambda t, x, out: safe_mul(t, div(_c(x, 1), mul(
                     sqrt(sub(x, _c(x, 1))), sqrt(add(x, _c(x, 1)))))))
atanh_p = _unary("atanh", np.arctanh, "np.arctanh({})",
                 jvp=lambda t, x, out: safe_mul(t, div(_c(x, 1), sub(_c(x, 1), mul(x, x)))))


def _logistic_impl(x):
    # stable in NumPy alone (scipy.special.expit would cost ~0.35 s of import on the
    # first gradient of a process): exp(-|x|) never overflows
    x = np.asarray(x)
    one = x.dtype.type(1)
    if x.dtype.kind == "c":
        out = one / (one + np.exp(-x))
        return out if out.ndim else out[()]
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, one / (one + e), e / (one + e))
    return out if out.ndim else out[()]


# d sigmoid x = sigmoid x (1 - sigmoid x) dx
logistic_p = _unary("logistic", _logistic_impl, "(1.0 / (1.0 + np.exp(-{})))",
                    jvp=lambda t, x, out: mul(t, mul(out, sub(_c(x, 1), out))))
logistic_p.def_scalar_emit(_vector_math("logistic"))
tanh_p.def_scalar_emit(_vector_math("tanh"))
# d erf x = 2/sqrt(pi) exp(-x^2) dx
erf_p = _unary("erf", lambda x: _special("erf")(x), "math.erf({})", real_only=True,
               jvp=lambda t, x, out: mul(t, mul(_c(x, 2 / np.sqrt(np.pi)),
                                                exp(neg(mul(x, x))))))
erfc_p = _unary("erfc", lambda x: _special("erfc")(x), "math.erfc({})", real_only=True,
                jvp=lambda t, x, out: mul(t, mul(_c(x, -2 / np.sqrt(np.pi)),
                                                 exp(neg(mul(x, x))))))
# d erfinv y = sqrt(pi)/2 exp(erfinv(y)^2) dy
erf_inv_p = _unary("erf_inv", lambda x: _special("erfinv")(x), "_erfinv({})", real_only=True,
                   jvp=lambda t, x, out: safe_mul(t, mul(_c(x, np.sqrt(np.pi) / 2),
                                                         exp(mul(out, out)))))
lgamma_p = _unary("lgamma", lambda x: _special("gammaln")(x), "math.lgamma({})", real_only=True,
                  jvp=lambda t, x, out: mul(t, digamma(x)))

# polygamma(n, x) = d^(n+1) lgamma(x) / dx^(n+1); digamma is n = 0
polygamma_p = Primitive("polygamma", kind="elementwise")
polygamma_p.def_impl(lambda x, *, n: _special("polygamma")(n, x).astype(np.result_type(x)))
polygamma_p.def_shape(lambda x, *, n: _real_unary_shape("polygamma", x))
polygamma_p.def_vmap(elementwise_vmap(polygamma_p))
polygamma_p.def_jvp(lambda t, x, *, out, n: mul(t, polygamma(n + 1, x)))
polygamma_p.def_vjp(lambda ct, x, *, out, n: (mul(ct, polygamma(n + 1, x)),))


def _special_operand(x):
    """lgamma / digamma / polygamma of integers or bools: float64, as
    jax.scipy.special does (their natural arguments, like lgamma(n + 1), are integers)."""
    given = type(x).__name__
    x = x if isinstance(x, Tracer) else np.asarray(x)
    if aval_of(x).dtype.kind not in "biufc":
        raise FungradTypeError(f"expected a numeric array, got a value of type {given} "
                               f"(dtype {aval_of(x).dtype})")
    if aval_of(x).dtype.kind in "biu":
        return convert_element_type(x, np.float64)
    return x


def polygamma(n: int, x):
    """Elementwise polygamma function of order n (integer x is promoted to float64)."""
    return polygamma_p.bind(_special_operand(x), n=static_int(n, "n", minimum=0))


def digamma(x):
    return polygamma(0, x)


exp = lambda x: exp_p.bind(x)  # noqa: E731
exp2 = lambda x: exp2_p.bind(x)  # noqa: E731
expm1 = lambda x: expm1_p.bind(x)  # noqa: E731
log = lambda x: log_p.bind(x)  # noqa: E731
log1p = lambda x: log1p_p.bind(x)  # noqa: E731
sqrt = lambda x: sqrt_p.bind(x)  # noqa: E731
rsqrt = lambda x: rsqrt_p.bind(x)  # noqa: E731
cbrt = lambda x: cbrt_p.bind(x)  # noqa: E731
sin = lambda x: sin_p.bind(x)  # noqa: E731
cos = lambda x: cos_p.bind(x)  # noqa: E731
tan = lambda x: tan_p.bind(x)  # noqa: E731
asin = lambda x: asin_p.bind(x)  # noqa: E731
acos = lambda x: acos_p.bind(x)  # noqa: E731
atan = lambda x: atan_p.bind(x)  # noqa: E731
sinh = lambda x: sinh_p.bind(x)  # noqa: E731
cosh = lambda x: cosh_p.bind(x)  # noqa: E731
tanh = lambda x: tanh_p.bind(x)  # noqa: E731
asinh = lambda x: asinh_p.bind(x)  # noqa: E731
acosh = lambda x: acosh_p.bind(x)  # noqa: E731
atanh = lambda x: atanh_p.bind(x)  # noqa: E731
logistic = lambda x: logistic_p.bind(x)  # noqa: E731
erf = lambda x: erf_p.bind(x)  # noqa: E731
erfc = lambda x: erfc_p.bind(x)  # noqa: E731
erf_inv = lambda x: erf_inv_p.bind(x)  # noqa: E731
lgamma = lambda x: lgamma_p.bind(_special_operand(x))  # noqa: E731
for _name in ("exp", "exp2", "expm1", "log", "log1p", "sqrt", "rsqrt", "cbrt", "sin", "cos",
              "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
              "logistic", "erf", "erfc", "erf_inv", "lgamma"):
    globals()[_name].__name__ = _name
    globals()[_name].__qualname__ = _name
    globals()[_name].__doc__ = f"Elementwise {_name} (primitive `{_name}`)."


def _atan2_partials(x, y):
    """(d/dx, d/dy) of atan2(x, y) = (y, -x) / (x^2 + y^2); at the origin, where the
    limit depends on the direction, both are 0 (finite, as the NaN-safety convention
    promises, and the same in every mode)."""
    denom = add(mul(x, x), mul(y, y))
    origin = eq(denom, _zero(denom))
    safe_denom = select(origin, full(_aval(denom).shape, 1, _aval(denom).dtype), denom)
    zeros = zeros_like_aval(_aval(denom))
    return (select(origin, zeros, div(y, safe_denom)),
            select(origin, zeros, div(neg(x), safe_denom)))


def _atan2_jvp(tx, ty, x, y):
    d_x, d_y = _atan2_partials(x, y)
    return add(weighted(_bcast(tx, _aval(d_x).shape), d_x),
               weighted(_bcast(ty, _aval(d_y).shape), d_y))


def _atan2_vjp(ct, x, y):
    d_x, d_y = _atan2_partials(x, y)
    return (_sum_to(weighted(ct, d_x), _aval(x)), _sum_to(weighted(ct, d_y), _aval(y)))


atan2_p = Primitive("atan2", kind="elementwise")
atan2_p.def_impl(np.arctan2)
atan2_p.def_shape(_real_binary_shape("atan2"))
atan2_p.def_vmap(elementwise_vmap(atan2_p))
atan2_p.def_emit(lambda x, y: f"np.arctan2({x}, {y})")
atan2_p.def_jvp(lambda tx, ty, x, y, *, out: _atan2_jvp(tx, ty, x, y))
atan2_p.def_vjp(lambda ct, x, y, *, out: _atan2_vjp(ct, x, y))


def atan2(x, y):
    return atan2_p.bind(*coerce_scalars(x, y))


# --- rounding and predicates (piecewise constant) -------------------------------

def _piecewise_constant(name, impl, emit, shape=same_shape, **props):
    p = Primitive(name, kind="elementwise", **props)
    p.def_impl(impl)
    p.def_shape(shape)
    p.def_vmap(elementwise_vmap(p))
    p.def_emit(emit)
    p.def_jvp(nondifferentiable)
    p.def_vjp(nondifferentiable)
    return p


def _real_unary_shape(name, x, **params):
    if is_complex(x.dtype):
        raise FungradTypeError(f"{name}: is defined on real operands only, got {x}")
    return x


floor_p = _piecewise_constant("floor", np.floor, lambda x: f"np.floor({x})",
                              shape=lambda x: _real_unary_shape("floor", x))
ceil_p = _piecewise_constant("ceil", np.ceil, lambda x: f"np.ceil({x})",
                             shape=lambda x: _real_unary_shape("ceil", x))
def _round_half_away(x):
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


# round half away from zero (lax.round's default), not NumPy's half-to-even
round_p = _piecewise_constant("round", _round_half_away,
                              lambda x: f"np.copysign(np.floor(np.abs({x}) + 0.5), {x})",
                              shape=lambda x: _real_unary_shape("round", x))
is_finite_p = _piecewise_constant("is_finite", np.isfinite, lambda x: f"np.isfinite({x})",
                                  shape=lambda x: x.update(dtype=np.bool_))


def floor(x):
    return floor_p.bind(x)


def ceil(x):
    return ceil_p.bind(x)


def _round_scalar_emit(x, *, out, in_avals):
    # the constant 0.5 in the operand's dtype (a float64 0.5 would round float32 sums
    # once, not twice as the interpreter does)
    half = f"{np_dtype(out.dtype)}(0.5)"
    return f"np.copysign(np.floor(np.abs({x}) + {half}), {x})"


round_p.def_scalar_emit(_round_scalar_emit)


def round(x):
    """Round half away from zero (lax.round); fungrad.numpy.round rounds half to even."""
    return round_p.bind(x)


def is_finite(x):
    return is_finite_p.bind(x)


def _comparison(name, impl, op, **props):
    return _piecewise_constant(name, impl, lambda x, y: f"({x} {op} {y})",
                               shape=bool_shape(binary_shape(name)), **props)


eq_p = _comparison("eq", np.equal, "==", commutative=True)
ne_p = _comparison("ne", np.not_equal, "!=", commutative=True)
lt_p = _comparison("lt", np.less, "<")
le_p = _comparison("le", np.less_equal, "<=")
gt_p = _comparison("gt", np.greater, ">")
ge_p = _comparison("ge", np.greater_equal, ">=")


def eq(x, y):
    return eq_p.bind(*coerce_scalars(x, y))


def ne(x, y):
    return ne_p.bind(*coerce_scalars(x, y))


def lt(x, y):
    return lt_p.bind(*coerce_scalars(x, y))


def le(x, y):
    return le_p.bind(*coerce_scalars(x, y))


def gt(x, y):
    return gt_p.bind(*coerce_scalars(x, y))


def ge(x, y):
    return ge_p.bind(*coerce_scalars(x, y))


def _bitwise_shape(name):
    rule = binary_shape(name)

    def shape(x, y, **params):
        if np.issubdtype(x.dtype, np.inexact):
            raise FungradTypeError(f"{name}: needs bool or integer operands, got {x}")
        return rule(x, y)
    return shape


bitwise_and_p = _piecewise_constant("and", np.bitwise_and, lambda x, y: f"({x} & {y})",
                                    shape=_bitwise_shape("and"), commutative=True)
bitwise_or_p = _piecewise_constant("or", np.bitwise_or, lambda x, y: f"({x} | {y})",
                                   shape=_bitwise_shape("or"), commutative=True)
bitwise_xor_p = _piecewise_constant("xor", np.bitwise_xor, lambda x, y: f"({x} ^ {y})",
                                    shape=_bitwise_shape("xor"), commutative=True)


def _not_shape(x, **params):
    if np.issubdtype(x.dtype, np.inexact):
        raise FungradTypeError(f"not: needs a bool or integer operand, got {x}")
    return x


bitwise_not_p = _piecewise_constant("not", np.invert, lambda x: f"(~{x})", shape=_not_shape)
# a bool scalar in a loop is a Python bool: ~True is -2
bitwise_not_p.def_scalar_emit(lambda x, *, out, in_avals: f"(not {x})"
                              if out.dtype == np.bool_ else None)


def bitwise_and(x, y):
    return bitwise_and_p.bind(*coerce_scalars(x, y))


def bitwise_or(x, y):
    return bitwise_or_p.bind(*coerce_scalars(x, y))


def bitwise_xor(x, y):
    return bitwise_xor_p.bind(*coerce_scalars(x, y))


def bitwise_not(x):
    return bitwise_not_p.bind(x)


# --- shifts (lax semantics: a shift by the bit width or more gives 0, or the sign
# for an arithmetic right shift; negative amounts count as huge) ------------------

def _bits(dtype) -> int:
    return np.dtype(dtype).itemsize * 8


def _unsigned(dtype):
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def _signed(dtype):
    return np.dtype(f"i{np.dtype(dtype).itemsize}")


def _shift_impl(kind):
    def impl(x, y):
        x, y = np.asarray(x), np.asarray(y)
        dtype = x.dtype
        nbits = _bits(dtype)
        amount = y.astype(_unsigned(dtype))          # negative -> huge, as in XLA
        big = amount >= nbits
        safe = np.where(big, 0, amount).astype(dtype)
        if kind == "left":
            out = np.left_shift(x, safe)
            out = np.where(big, dtype.type(0), out)
        elif kind == "logical":
            u = x.view(_unsigned(dtype)) if x.ndim else x.astype(_unsigned(dtype))
            out = np.right_shift(u, safe.astype(_unsigned(dtype)))
            out = np.where(big, 0, out).astype(_unsigned(dtype))
            out = out.view(dtype) if out.ndim else out.astype(dtype)
        else:
            s = x.view(_signed(dtype)) if x.ndim else x.astype(_signed(dtype))
            out = np.right_shift(s, np.minimum(amount, nbits - 1).astype(_signed(dtype)))
            out = out.view(dtype) if out.ndim else out.astype(dtype)
        out = np.asarray(out, dtype)
        return out if out.ndim else out[()]
    return impl


def _shift_emit(kind):
    """Scalar text (numba widens narrow integers; codegen casts the result back)."""
    def emit(x, y, *, out, in_avals):
        dtype = np.dtype(out.dtype)
        nbits = _bits(dtype)
        name, uname, sname = np_dtype(dtype), np_dtype(_unsigned(dtype)), np_dtype(_signed(dtype))
        amount = f"{uname}({y})"
        if kind == "left":
            return f"({name}(0) if {amount} >= {nbits} else {name}({x}) << {amount})"
        if kind == "logical":
            return (f"({name}(0) if {amount} >= {nbits} else "
                    f"{name}({uname}({x}) >> {amount}))")
        return f"{name}({sname}({x}) >> {sname}(min({amount}, {uname}({nbits - 1}))))"
    return emit


def _shift(name, kind, op):
    # kernels use the scalar rule (shifts are elementwise, so always fused); the plain
    # emit is right for amounts below the bit width only
    p = _piecewise_constant(name, _shift_impl(kind), lambda x, y: f"({x} {op} {y})",
                            shape=_bitwise_shape(name))
    p.def_scalar_emit(_shift_emit(kind))
    return p


shift_left_p = _shift("shift_left", "left", "<<")
shift_right_logical_p = _shift("shift_right_logical", "logical", ">>")
shift_right_arithmetic_p = _shift("shift_right_arithmetic", "arithmetic", ">>")


def shift_left(x, y):
    """x << y elementwise; 0 where y is at least the bit width (lax.shift_left)."""
    return shift_left_p.bind(*coerce_scalars(x, y))


def shift_right_logical(x, y):
    """x >> y filling with zeros (unsigned shift, also for signed x); 0 where y is at
    least the bit width (lax.shift_right_logical)."""
    return shift_right_logical_p.bind(*coerce_scalars(x, y))


def shift_right_arithmetic(x, y):
    """x >> y filling with the sign bit; shifts past the width give 0 or -1
    (lax.shift_right_arithmetic)."""
    return shift_right_arithmetic_p.bind(*coerce_scalars(x, y))


# --- bitcast: reinterpret the bits of each element as another dtype of the same width --

def _bitcast_shape(x, *, new_dtype):
    if np.dtype(new_dtype).itemsize != x.dtype.itemsize or x.dtype == np.bool_ or \
            np.dtype(new_dtype) == np.bool_:
        raise FungradTypeError(
            f"bitcast_convert_type: {x.dtype} and {np.dtype(new_dtype)} must be numeric "
            "dtypes of the same width (bitcasts that change the width are not supported)")
    return x.update(dtype=np.dtype(new_dtype))


def _bitcast_impl(x, *, new_dtype):
    x = np.asarray(x)
    out = (x if x.flags.c_contiguous else x.copy()).view(new_dtype)
    return out if out.ndim else out[()]


def _bitcast_lower(gen, inputs, outputs, *, new_dtype):
    (x,), (out,) = inputs, outputs
    dt = np_dtype(new_dtype)
    if x.aval.shape == ():
        text = f"np.array([{gen.name(x)}]).view({dt})[0]"
    else:
        text = f"np.ascontiguousarray({gen.arr(x)}).view({dt})"
    gen.assign(outputs, text)


bitcast_convert_type_p = Primitive("bitcast_convert_type")
bitcast_convert_type_p.def_impl(_bitcast_impl)
bitcast_convert_type_p.def_shape(_bitcast_shape)
bitcast_convert_type_p.def_vmap(elementwise_vmap(bitcast_convert_type_p))
bitcast_convert_type_p.def_jvp(nondifferentiable)
bitcast_convert_type_p.def_vjp(nondifferentiable)
bitcast_convert_type_p.def_lower(_bitcast_lower)


def bitcast_convert_type(x, new_dtype):
    """The bits of each element of `x` read as `new_dtype` (same width), like
    lax.bitcast_convert_type: >>> bitcast_convert_type(np.float32(1), np.uint32) == 0x3F800000"""
    return bitcast_convert_type_p.bind(x, new_dtype=static_dtype(new_dtype, "new_dtype"))


# --- select and convert ------------------------------------------------------------

def _select_shape(pred, on_true, on_false, **params):
    if pred.dtype != np.bool_:
        raise FungradTypeError(f"select: the predicate must be bool, got {pred}")
    if on_true.dtype != on_false.dtype:
        raise FungradTypeError(f"select: branch dtypes must match, got {on_true} and {on_false}")
    shapes = {s for s in (pred.shape, on_true.shape, on_false.shape) if s != ()}
    if len(shapes) > 1:
        raise FungradTypeError(
            f"select: shapes must match (or be 0-d), got {pred}, {on_true} and {on_false}")
    return ShapedArray(shapes.pop() if shapes else (), on_true.dtype)


def _select_vjp(ct, pred, on_true, on_false, *, out):
    zeros = zeros_like_aval(_aval(ct))
    return (None, _sum_to(select(pred, ct, zeros), _aval(on_true)),
            _sum_to(select(pred, zeros, ct), _aval(on_false)))


select_p = Primitive("select", kind="elementwise", linear_in=(1, 2))
select_p.def_impl(np.where)
select_p.def_shape(_select_shape)
select_p.def_vmap(elementwise_vmap(select_p))
select_p.def_emit(lambda p, x, y: f"np.where({p}, {x}, {y})")
select_p.def_jvp(lambda tp, tx, ty, p, x, y, *, out: select(
    p, _bcast(tx, _aval(out).shape), _bcast(ty, _aval(out).shape)))
select_p.def_vjp(_select_vjp)
select_p.def_scalar_emit(lambda p, x, y, *, out, in_avals: f"({x} if {p} else {y})")


def select(pred, on_true, on_false):
    """Elementwise `on_true if pred else on_false` (`where`)."""
    on_true, on_false = coerce_scalars(on_true, on_false)
    return select_p.bind(pred, on_true, on_false)


# --- stop_gradient ---------------------------------------------------------------------

def _identity_impl(x):
    return x


stop_gradient_p = Primitive("stop_gradient", kind="elementwise", value_preserving=True,
                            linear_in="all")
stop_gradient_p.def_impl(_identity_impl)
stop_gradient_p.def_shape(same_shape)
stop_gradient_p.def_vmap(lambda n, args, dims: (stop_gradient(args[0]), dims[0]))
stop_gradient_p.def_emit(lambda x: x)
# blocks every mode: no tangent flows forward, no cotangent flows back
stop_gradient_p.def_jvp(nondifferentiable)
stop_gradient_p.def_vjp(nondifferentiable)


def stop_gradient(x):
    """The value of `x`, treated as a constant by every derivative (forward and reverse).

    Applies leafwise to pytrees.  >>> grad(lambda x: x * stop_gradient(x))(3.0) == 3.0
    """

    def one(leaf):
        if isinstance(leaf, Tracer):
            return stop_gradient_p.bind(leaf)
        return leaf
    return tree_map(one, x)


# --- binary cross-entropy on logits -------------------------------------------------------
# A primitive for speed and stability: one fused equation instead of ~18, exact at
# z = +-inf with y in {0, 1} (where softplus(z) - z*y is inf - inf), and a derivative
# that is literally sigmoid(z) - y.  Value: softplus(z) - z y, computed as
# (1-y) max(z,0) - y min(z,0) + log1p(exp(-|z|)) with 0 * inf taken as 0.

def _bce_logits_impl(z, y):
    with np.errstate(invalid="ignore", over="ignore"):
        w = 1 - y
        pos = np.where(w == 0, 0, w * np.maximum(z, 0))
        neg = np.where(y == 0, 0, y * np.minimum(z, 0))
        out = pos - neg + np.log1p(np.exp(-np.abs(z)))
    dtype = np.result_type(z)
    return out.astype(dtype) if isinstance(out, np.ndarray) else dtype.type(out)


def _bce_logits_emit(z, y):
    return (f"((0.0 if (1.0 - {y}) == 0.0 else (1.0 - {y}) * max({z}, 0.0)) - "
            f"(0.0 if {y} == 0.0 else {y} * min({z}, 0.0)) + np.log1p(np.exp(-abs({z}))))")


bce_with_logits_p = Primitive("bce_with_logits", kind="elementwise")
bce_with_logits_p.def_impl(_bce_logits_impl)
bce_with_logits_p.def_shape(_real_binary_shape("bce_with_logits"))
bce_with_logits_p.def_vmap(elementwise_vmap(bce_with_logits_p))
bce_with_logits_p.def_emit(_bce_logits_emit)


def _bce_logits_scalar_emit(z, y, *, out, in_avals):
    tail = _log1p_exp_neg_abs(z, out.dtype)
    if tail is None:
        return None
    return _bce_logits_emit(z, y).replace(f"np.log1p(np.exp(-abs({z})))", tail)


bce_with_logits_p.def_scalar_emit(_bce_logits_scalar_emit)
# d/dz = sigmoid(z) - y;  d/dy = -z (infinite at z = +-inf: a zero tangent wins)
bce_with_logits_p.def_jvp(lambda tz, ty, z, y, *, out: add(
    mul(tz, sub(logistic(z), y)), safe_mul(ty, neg(z))))
bce_with_logits_p.def_vjp(lambda ct, z, y, *, out: (
    _sum_to(mul(ct, sub(logistic(z), y)), _aval(z)),
    _sum_to(safe_mul(ct, neg(z)), _aval(y))))


def bce_with_logits(z, y):
    """Elementwise binary cross-entropy of logits z against targets y:
    softplus(z) - z * y, stable for every z (primitive `bce_with_logits`)."""
    return bce_with_logits_p.bind(*coerce_scalars(z, y))


# --- softplus --------------------------------------------------------------------------------
# A primitive for stability and smoothness: log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|))
# has kinks whose second derivatives vanish (softplus''(0) would be 0, not 1/4); as one
# primitive its derivative is logistic(x), smooth at every order.

def _softplus_impl(x):
    x = np.asarray(x) if not isinstance(x, (np.ndarray, np.generic)) else x
    return np.logaddexp(x.dtype.type(0), x)


softplus_p = _unary("softplus", _softplus_impl,
                    "(max({0}, 0.0) + np.log1p(np.exp(-abs({0}))))", real_only=True,
                    jvp=lambda t, x, out: mul(t, logistic(x)))


def _softplus_scalar_emit(x, *, out, in_avals):
    tail = _log1p_exp_neg_abs(x, out.dtype)
    return None if tail is None else f"(max({x}, 0.0) + {tail})"


softplus_p.def_scalar_emit(_softplus_scalar_emit)


def softplus(x):
    """log(1 + exp(x)), elementwise and stable (primitive `softplus`)."""
    return softplus_p.bind(x)
