"""`fungrad.scipy.special`: SciPy's special functions (JAX's `jax.scipy.special`), with
derivatives that stay finite wherever the function is smooth and finite.

Primitives where accuracy needs them (`log_ndtr`, `ndtri`, `i0e`, `i1e`, `gammainc`,
`gammaincc`, `betainc`, and lax's `erf`, `erfinv`, `lgamma`, `polygamma`); the rest
are compositions.  `gammainc`, `gammaincc` and `betainc` are differentiable in x only.

    >>> float(log_ndtr(-40.0))          # log(ndtr(-40.)) would be -inf
    -804.6084420137538
"""
from __future__ import annotations

import numpy as np

from .. import lax
from .. import nn
from .. import numpy as fnp
from ..errors import FungradTypeError
from ..hop import custom_jvp
from ..tracing import aval_of

__all__ = [
    "logsumexp", "expit", "logit", "log_expit", "xlogy", "xlog1py", "gammaln", "gamma",
    "digamma", "polygamma", "erf", "erfc", "erfcx", "erfinv", "ndtr", "ndtri", "log_ndtr", "betaln",
    "beta", "entr", "rel_entr", "kl_div", "i0", "i0e", "i1", "i1e", "gammainc", "gammaincc",
    "betainc", "multigammaln", "softmax", "log_softmax", "sinc", "logaddexp",
]


def _float(x):
    x = fnp.asarray(x)
    if aval_of(x).dtype.kind not in "fc":
        x = fnp.asarray(x, np.float64)
    return x


def _floats(*xs):
    xs = [fnp.asarray(x) for x in xs]
    dtype = np.result_type(*[aval_of(x).dtype for x in xs], np.float16)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return fnp.broadcast_arrays(*[fnp.asarray(x, dtype) for x in xs])


def logsumexp(a, axis=None, b=None, keepdims: bool = False, return_sign: bool = False):
    """log(sum(b * exp(a))) along `axis`, stable; with return_sign, (log|sum|, sign).
    All -inf inputs give -inf with a zero gradient."""
    return nn.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) along `axis` (all axes by default, as SciPy)."""
    return nn.softmax(x, axis=axis)


def log_softmax(x, axis=None):
    """x - logsumexp(x) along `axis` (all axes by default, as SciPy)."""
    return nn.log_softmax(x, axis=axis)


def logaddexp(x1, x2):
    return fnp.logaddexp(x1, x2)


def expit(x):
    """The logistic sigmoid 1 / (1 + exp(-x)), stable for every x."""
    return lax.logistic(_float(x))


def log_expit(x):
    """log(expit(x)) = -softplus(-x), stable for every x."""
    return fnp.negative(lax.softplus(fnp.negative(_float(x))))


def logit(p):
    """log(p / (1 - p)), the inverse of expit."""
    p = _float(p)
    return fnp.subtract(fnp.log(p), fnp.log1p(fnp.negative(p)))


def _xlog(log_fn, name):
    @custom_jvp
    def f(x, y):
        zero = fnp.equal(x, 0)
        safe_y = fnp.where(zero, fnp.ones_like(y), y)
        return fnp.where(zero, fnp.zeros_like(x), fnp.multiply(x, log_fn(safe_y)))

    # d = log(y) dx + x / y' dy, the y term 0 where x == 0 (the value is 0 for every y)
    @f.defjvp
    def f_jvp(primals, tangents):
        x, y = primals
        tx, ty = tangents
        out = f(x, y)
        zero = fnp.equal(x, 0)
        denom = y if log_fn is fnp.log else fnp.add(1.0, y)
        safe = fnp.where(zero, fnp.ones_like(denom), denom)
        dy = fnp.where(zero, fnp.zeros_like(x), fnp.divide(x, safe))
        return out, fnp.add(fnp.multiply(tx, log_fn(y)), fnp.multiply(ty, dy))
    f.__name__ = name
    return f


_xlogy = _xlog(fnp.log, "xlogy")
_xlog1py = _xlog(fnp.log1p, "xlog1py")


def xlogy(x, y):
    """x * log(y), 0 where x == 0 (also at y == 0); gradient log(y) in x, x / y in y."""
    return _xlogy(*_floats(x, y))


def xlog1py(x, y):
    """x * log1p(y), 0 where x == 0."""
    return _xlog1py(*_floats(x, y))


def gammaln(x):
    """log|Gamma(x)|."""
    return lax.lgamma(_float(x))


def gamma(x):
    """Gamma(x) = sign * exp(gammaln(x)), signed for negative non-integer x."""
    x = _float(x)
    negative_odd = fnp.logical_and(fnp.less(x, 0), fnp.equal(fnp.remainder(fnp.floor(x), 2), 1))
    sign = fnp.where(negative_odd, -1.0, 1.0).astype(aval_of(x).dtype)
    return fnp.multiply(sign, fnp.exp(lax.lgamma(x)))


def digamma(x):
    """d/dx gammaln(x)."""
    return lax.digamma(_float(x))


def polygamma(n, x):
    """The n-th derivative of digamma (n a non-negative Python int)."""
    if isinstance(n, (np.ndarray, list)) or not float(n).is_integer() or int(n) < 0:
        raise FungradTypeError(f"polygamma: n must be a non-negative integer, got {n!r}")
    return lax.polygamma(int(n), _float(x))


def erf(x):
    return lax.erf(_float(x))


def erfc(x):
    return lax.erfc(_float(x))


def erfinv(x):
    return lax.erf_inv(_float(x))


def erfcx(x):
    """exp(x^2) erfc(x), without overflow for large x."""
    return lax.erfcx(_float(x))


def ndtr(x):
    """The standard normal CDF, 0.5 erfc(-x / sqrt 2) (accurate in the lower tail)."""
    x = _float(x)
    dt = aval_of(x).dtype
    return fnp.multiply(dt.type(0.5), lax.erfc(fnp.multiply(x, dt.type(-np.sqrt(0.5)))))


def ndtri(p):
    """The inverse of ndtr."""
    return lax.ndtri(_float(p))


def log_ndtr(x):
    """log(ndtr(x)), accurate in both tails, with a stable derivative phi(x) / ndtr(x)."""
    return lax.log_ndtr(_float(x))


def betaln(a, b):
    """log|B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b)."""
    a, b = _floats(a, b)
    return fnp.subtract(fnp.add(lax.lgamma(a), lax.lgamma(b)), lax.lgamma(fnp.add(a, b)))


def beta(a, b):
    a, b = _floats(a, b)
    return fnp.exp(betaln(a, b))


def entr(x):
    """-x log(x) for x > 0, 0 at 0, -inf for x < 0."""
    x = _float(x)
    return fnp.where(fnp.less(x, 0), -np.inf, fnp.negative(xlogy(x, x)))


def rel_entr(x, y):
    """x log(x / y) for x, y > 0; 0 at x == 0, y >= 0; inf otherwise."""
    x, y = _floats(x, y)
    both = fnp.logical_and(fnp.greater(x, 0), fnp.greater(y, 0))
    safe_x = fnp.where(both, x, fnp.ones_like(x))
    safe_y = fnp.where(both, y, fnp.ones_like(y))
    value = fnp.multiply(safe_x, fnp.log(fnp.divide(safe_x, safe_y)))
    edge = fnp.where(fnp.logical_and(fnp.equal(x, 0), fnp.greater_equal(y, 0)), 0.0, np.inf)
    return fnp.where(both, value, edge.astype(aval_of(x).dtype))


def kl_div(x, y):
    """x log(x / y) - x + y for x, y > 0; y at x == 0, y >= 0; inf otherwise."""
    x, y = _floats(x, y)
    r = rel_entr(x, y)
    return fnp.add(fnp.subtract(r, x), y)


def i0e(x):
    return lax.bessel_i0e(_float(x))


def i1e(x):
    return lax.bessel_i1e(_float(x))


def i0(x):
    x = _float(x)
    return fnp.multiply(fnp.exp(fnp.abs(x)), lax.bessel_i0e(x))


def i1(x):
    x = _float(x)
    return fnp.multiply(fnp.exp(fnp.abs(x)), lax.bessel_i1e(x))


def gammainc(a, x):
    """The regularized lower incomplete gamma function (differentiable in x)."""
    return lax.igamma(*_floats(a, x))


def gammaincc(a, x):
    """The regularized upper incomplete gamma function (differentiable in x)."""
    return lax.igammac(*_floats(a, x))


def betainc(a, b, x):
    """The regularized incomplete beta function (differentiable in x)."""
    return lax.betainc(*_floats(a, b, x))


def multigammaln(a, d: int):
    """log of the multivariate gamma function of dimension d."""
    a = _float(a)
    d = int(d)
    dt = aval_of(a).dtype
    const = dt.type(d * (d - 1) / 4 * np.log(np.pi))
    terms = fnp.subtract(fnp.expand_dims(a, -1),
                         fnp.asarray(np.arange(d, dtype=dt) / 2, dt))
    return fnp.add(const, fnp.sum(lax.lgamma(terms), axis=-1))


def sinc(x):
    return fnp.sinc(x)
