"""Special-function primitives, one block each (impl through scipy.special, imported on
first use so `import fungrad` stays light; derivatives in fungrad operations).

Each is a primitive for accuracy: `log_ndtr` deep in the lower tail (log(ndtr(x))
underflows to -inf below x = -38), `ndtri` for tiny probabilities (sqrt(2) erfinv(2p - 1)
rounds 2p - 1 to -1), the exponentially scaled Bessel functions, and the regularized
incomplete gamma and beta functions.  None has a kernel emit rule: a program using one
runs in the interpreter (numba has no such functions), with the backend's usual warning.

The incomplete gamma and beta functions are differentiable in `x` only; asking for the
derivative in a shape parameter raises (a silent zero would be a wrong gradient).
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive
from ..errors import FungradNotImplementedError, FungradTypeError
from ..tracing import Tracer
from ._util import binary_shape, coerce_scalars, is_float, same_shape
from .base import elementwise_vmap, full
from .elementwise import (_aval, _special, _sum_to, add, div, eq, exp, lgamma, log, lt, mul,
                          neg, safe_mul, select, sign, sub)

__all__ = ["erfcx", "log_ndtr", "ndtri", "bessel_i0e", "bessel_i1e", "igamma", "igammac", "betainc"]

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _float_shape(name):
    def shape(x, **params):
        if not is_float(x.dtype) or np.dtype(x.dtype).kind == "c":
            raise FungradTypeError(f"{name}: needs a real floating-point operand, got {x}")
        return x
    return shape


def _typed(fn):
    """A scipy ufunc keeping the input's float dtype (0-d in, NumPy scalar out)."""
    def impl(*xs):
        dtype = np.result_type(*xs)
        out = np.asarray(fn()(*xs)).astype(dtype, copy=False)
        return out if out.ndim else out[()]
    return impl


def _unary(name, scipy_name, jvp):
    p = Primitive(name, kind="elementwise")
    p.def_impl(_typed(lambda: _special(scipy_name)))
    p.def_shape(_float_shape(name))
    p.def_vmap(elementwise_vmap(p))
    p.def_jvp(lambda t, x, *, out: jvp(t, x, out))
    p.def_vjp(lambda ct, x, *, out: (jvp(ct, x, out),))
    return p


def _c(x, v):
    return _aval(x).dtype.type(v)


# erfcx(x) = exp(x^2) erfc(x):  d erfcx = (2 x erfcx(x) - 2 / sqrt(pi)) dx
erfcx_p = _unary("erfcx", "erfcx", lambda t, x, out: mul(t, sub(mul(mul(_c(x, 2), x), out),
                                                                _c(x, 2 / np.sqrt(np.pi)))))
# d log_ndtr(x) = phi(x) / Phi(x) dx = sqrt(2/pi) / erfcx(-x / sqrt 2) dx: no underflow or
# cancellation anywhere (erfcx(-x/sqrt 2) ~ -sqrt(2/pi)/x in the lower tail; it overflows
# to inf, giving 0, in the upper tail)
log_ndtr_p = _unary("log_ndtr", "log_ndtr", lambda t, x, out: mul(t, div(
    _c(x, np.sqrt(2 / np.pi)), erfcx(mul(x, _c(x, -np.sqrt(0.5)))))))
# d ndtri(p) = sqrt(2 pi) exp(ndtri(p)^2 / 2) dp  (infinite at p = 0, 1: a zero wins)
ndtri_p = _unary("ndtri", "ndtri", lambda t, x, out: safe_mul(t, exp(add(
    mul(_c(x, 0.5), mul(out, out)), _c(x, _LOG_SQRT_2PI)))))
# i0e(x) = exp(-|x|) I0(x):  d i0e = (i1e(x) - sign(x) i0e(x)) dx
bessel_i0e_p = _unary("bessel_i0e", "i0e", lambda t, x, out: mul(
    t, sub(bessel_i1e(x), mul(sign(x), out))))


# i1e(x) = exp(-|x|) I1(x):  d i1e = (i0e(x) - i1e(x) (sign(x) + 1/x)) dx, 1/2 at x = 0
def _i1e_deriv(x, out):
    is_zero = _eq(x, _c(x, 0))
    safe_x = _select(is_zero, _ones(x), x)
    general = sub(bessel_i0e(x), mul(out, add(sign(x), div(_c(x, 1), safe_x))))
    return _select(is_zero, _full_like(x, 0.5), general)


bessel_i1e_p = _unary("bessel_i1e", "i1e", lambda t, x, out: mul(t, _i1e_deriv(x, out)))


def erfcx(x):
    """The scaled complementary error function exp(x^2) erfc(x) (primitive `erfcx`)."""
    return erfcx_p.bind(x)


def log_ndtr(x):
    """log of the standard normal CDF, accurate for every x (primitive `log_ndtr`)."""
    return log_ndtr_p.bind(x)


def ndtri(p):
    """The inverse of the standard normal CDF (primitive `ndtri`)."""
    return ndtri_p.bind(p)


def bessel_i0e(x):
    """exp(-|x|) I0(x), the exponentially scaled modified Bessel function of order 0."""
    return bessel_i0e_p.bind(x)


def bessel_i1e(x):
    """exp(-|x|) I1(x), the exponentially scaled modified Bessel function of order 1."""
    return bessel_i1e_p.bind(x)


# --- regularized incomplete gamma and beta functions ------------------------------------

def _is_symbolic_zero(t) -> bool:
    """A symbolic Zero tangent (the transforms' class lives above this layer)."""
    return not isinstance(t, (Tracer, np.ndarray, np.generic, float, int))


def _shape_param_error(name, which):
    return FungradNotImplementedError(
        f"{name}: the derivative with respect to the shape parameter `{which}` is not "
        f"implemented (only the derivative in x is).  Wrap `{which}` in "
        "fungrad.lax.stop_gradient if it is a constant of your model.")


def _igamma_dx(a, x):
    # d/dx P(a, x) = x^(a-1) e^(-x) / Gamma(a) = exp((a-1) log x - x - lgamma(a))
    one = _c(x, 1)
    safe_x = _select(_eq(x, _c(x, 0)), _ones(x), x)
    dens = exp(sub(sub(mul(sub(a, one), log(safe_x)), x), lgamma(a)))
    # at x = 0 the limit of the density: 1 for a == 1, inf for a < 1, 0 for a > 1
    at_zero = _select(_eq(a, one), _full_like(x, 1.0), _select(
        _lt(a, one), _full_like(x, np.inf), _full_like(x, 0.0)))
    return _select(_eq(x, _c(x, 0)), at_zero, dens)


def _binary_special(name, scipy_name, dx, sign_dx=1):
    p = Primitive(name, kind="elementwise")
    p.def_impl(_typed(lambda: _special(scipy_name)))
    shape = binary_shape(name)

    def float_shape(a, x, **params):
        if not is_float(a.dtype) or np.dtype(a.dtype).kind == "c":
            raise FungradTypeError(f"{name}: needs real floating-point operands, got {a}")
        return shape(a, x)
    p.def_shape(float_shape)
    p.def_vmap(elementwise_vmap(p))

    def jvp(ta, tx, a, x, *, out):
        if not _is_symbolic_zero(ta):
            raise _shape_param_error(name, "a")
        if _is_symbolic_zero(tx):
            return _zeros(out)
        d = dx(a, x)
        return safe_mul(tx, d if sign_dx > 0 else neg(d))

    def vjp(ct, a, x, *, out, active=(True, True)):
        if active[0]:
            raise _shape_param_error(name, "a")
        d = dx(a, x)
        return None, _sum_to(safe_mul(ct, d if sign_dx > 0 else neg(d)), _aval(x))
    p.def_jvp(jvp, symbolic_zeros=True)
    p.def_vjp(vjp, wants_active=True)
    return p


igamma_p = _binary_special("igamma", "gammainc", _igamma_dx)
igammac_p = _binary_special("igammac", "gammaincc", _igamma_dx, sign_dx=-1)


def igamma(a, x):
    """The regularized lower incomplete gamma function P(a, x) (scipy's gammainc)."""
    return igamma_p.bind(*coerce_scalars(a, x))


def igammac(a, x):
    """The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x)."""
    return igammac_p.bind(*coerce_scalars(a, x))


def _betainc_impl(a, b, x):
    dtype = np.result_type(a, b, x)
    out = np.asarray(_special("betainc")(a, b, x)).astype(dtype, copy=False)
    return out if out.ndim else out[()]


def _betainc_shape(a, b, x, **params):
    rule = binary_shape("betainc")
    return rule(rule(a, b), x)


def _betainc_dx(a, b, x):
    # d/dx I_x(a, b) = x^(a-1) (1-x)^(b-1) / B(a, b)
    one = _c(x, 1)
    inside = _select(_eq(x, _c(x, 0)), _full_like(x, 0.5),
                     _select(_eq(x, one), _full_like(x, 0.5), x))
    log_beta = sub(add(lgamma(a), lgamma(b)), lgamma(add(a, b)))
    dens = exp(sub(add(mul(sub(a, one), log(inside)), mul(sub(b, one), log(sub(one, inside)))),
                   log_beta))
    # at the ends: the limit of the density (a == 1 or b == 1 give 1/B, else 0 or inf)
    edge_a = _select(_eq(a, one), div(one, exp(log_beta)), _select(
        _lt(a, one), _full_like(x, np.inf), _full_like(x, 0.0)))
    edge_b = _select(_eq(b, one), div(one, exp(log_beta)), _select(
        _lt(b, one), _full_like(x, np.inf), _full_like(x, 0.0)))
    return _select(_eq(x, _c(x, 0)), edge_a, _select(_eq(x, one), edge_b, dens))


def _betainc_jvp(ta, tb, tx, a, b, x, *, out):
    if not _is_symbolic_zero(ta):
        raise _shape_param_error("betainc", "a")
    if not _is_symbolic_zero(tb):
        raise _shape_param_error("betainc", "b")
    if _is_symbolic_zero(tx):
        return _zeros(out)
    return safe_mul(tx, _betainc_dx(a, b, x))


def _betainc_vjp(ct, a, b, x, *, out, active=(True, True, True)):
    if active[0]:
        raise _shape_param_error("betainc", "a")
    if active[1]:
        raise _shape_param_error("betainc", "b")
    return None, None, _sum_to(safe_mul(ct, _betainc_dx(a, b, x)), _aval(x))


betainc_p = Primitive("betainc", kind="elementwise")
betainc_p.def_impl(_betainc_impl)
betainc_p.def_shape(_betainc_shape)
betainc_p.def_vmap(elementwise_vmap(betainc_p))
betainc_p.def_jvp(_betainc_jvp, symbolic_zeros=True)
betainc_p.def_vjp(_betainc_vjp, wants_active=True)


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b) (scipy's betainc)."""
    return betainc_p.bind(*coerce_scalars(a, b, x))


# --- small helpers (0-d operands broadcast against the others) --------------------------

_eq, _lt, _select = eq, lt, select


def _ones(x):
    a = _aval(x)
    return full(a.shape, 1, a.dtype)


def _zeros(x):
    a = _aval(x)
    return full(a.shape, 0, a.dtype)


def _full_like(x, v):
    a = _aval(x)
    return full(a.shape, v, a.dtype)
