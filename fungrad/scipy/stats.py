"""`fungrad.scipy.stats`: log densities and distribution functions with SciPy's (and
`jax.scipy.stats`') names and signatures, differentiable in every argument they are
smooth in (the shape parameters of cdf's through incomplete gamma/beta excepted).

Each distribution is a namespace: `norm.logpdf(x, loc, scale)`, `gamma.cdf(x, a)`.

    >>> from fungrad.scipy.stats import norm
    >>> float(norm.logcdf(-40.0))
    -804.6084420137538
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import lax
from .. import numpy as fnp
from ..errors import FungradValueError
from ..tracing import aval_of
from . import special as sp

__all__ = ["norm", "multivariate_normal", "t", "gamma", "beta", "poisson", "bernoulli",
           "dirichlet", "cauchy", "laplace", "logistic", "expon", "uniform", "chi2"]

_LOG_2PI = float(np.log(2 * np.pi))


def _promote(*xs):
    return sp._floats(*xs)


def _const(x, v):
    return aval_of(x).dtype.type(v)


def _namespace(name, **functions):
    for fname, fn in functions.items():
        fn.__name__ = fname
        fn.__qualname__ = f"{name}.{fname}"
    return SimpleNamespace(__name__=f"fungrad.scipy.stats.{name}", **functions)


def _exp(logf):
    def f(*args, **kwargs):
        return fnp.exp(logf(*args, **kwargs))
    return f


# --- norm ------------------------------------------------------------------------------

def _norm_z(x, loc, scale):
    x, loc, scale = _promote(x, loc, scale)
    return fnp.divide(fnp.subtract(x, loc), scale), scale


def _norm_logpdf(x, loc=0, scale=1):
    z, scale = _norm_z(x, loc, scale)
    return fnp.subtract(fnp.multiply(_const(z, -0.5), fnp.multiply(z, z)),
                        fnp.add(fnp.log(scale), _const(z, 0.5 * _LOG_2PI)))


def _norm_cdf(x, loc=0, scale=1):
    return sp.ndtr(_norm_z(x, loc, scale)[0])


def _norm_logcdf(x, loc=0, scale=1):
    return sp.log_ndtr(_norm_z(x, loc, scale)[0])


def _norm_sf(x, loc=0, scale=1):
    return sp.ndtr(fnp.negative(_norm_z(x, loc, scale)[0]))


def _norm_logsf(x, loc=0, scale=1):
    return sp.log_ndtr(fnp.negative(_norm_z(x, loc, scale)[0]))


def _norm_ppf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.add(loc, fnp.multiply(scale, sp.ndtri(q)))


def _norm_isf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.subtract(loc, fnp.multiply(scale, sp.ndtri(q)))


norm = _namespace("norm", logpdf=_norm_logpdf, pdf=_exp(_norm_logpdf), cdf=_norm_cdf,
                  logcdf=_norm_logcdf, sf=_norm_sf, logsf=_norm_logsf, ppf=_norm_ppf,
                  isf=_norm_isf)


# --- multivariate_normal -------------------------------------------------------------------

def _mvn_logpdf(x, mean, cov, allow_singular=None):
    if allow_singular is not None:
        raise FungradValueError("multivariate_normal.logpdf: allow_singular is not supported "
                                "(as in JAX); pass a positive-definite cov")
    x, mean = fnp.asarray(x), fnp.asarray(mean)
    dtype = np.result_type(aval_of(x).dtype, aval_of(mean).dtype, aval_of(fnp.asarray(cov)).dtype,
                           np.float16)
    dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    x, mean, cov = (fnp.asarray(v, dtype) for v in (x, mean, cov))
    if aval_of(mean).ndim == 0 and aval_of(cov).ndim == 0:     # scalars: one dimension
        mean, cov = fnp.reshape(mean, (1,)), fnp.reshape(cov, (1, 1))
        x = fnp.expand_dims(x, -1)
    n = aval_of(mean).shape[-1]
    if aval_of(cov).ndim == 1:          # a diagonal given as a vector
        cov = fnp.multiply(fnp.eye(n, dtype=dtype), fnp.expand_dims(cov, -2))
    if aval_of(cov).shape[-2:] != (n, n):
        raise FungradValueError(f"multivariate_normal.logpdf: cov must have shape (..., {n}, "
                                f"{n}), got {aval_of(cov).shape}")
    chol = fnp.linalg.cholesky(cov)
    diff = fnp.subtract(x, mean)
    batch = np.broadcast_shapes(aval_of(diff).shape[:-1], aval_of(chol).shape[:-2])
    chol = fnp.broadcast_to(chol, batch + (n, n))
    diff = fnp.broadcast_to(diff, batch + (n,))
    y = lax.triangular_solve(chol, fnp.expand_dims(diff, -1), left_side=True, lower=True)
    maha = fnp.sum(fnp.square(y[..., 0]), axis=-1)
    log_det = fnp.sum(fnp.log(fnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return fnp.subtract(fnp.multiply(dtype.type(-0.5), fnp.add(maha, dtype.type(n * _LOG_2PI))),
                        log_det)


multivariate_normal = _namespace("multivariate_normal", logpdf=_mvn_logpdf,
                                 pdf=_exp(_mvn_logpdf))


# --- t -----------------------------------------------------------------------------------------

def _t_logpdf(x, df, loc=0, scale=1):
    x, df, loc, scale = _promote(x, df, loc, scale)
    z = fnp.divide(fnp.subtract(x, loc), scale)
    half = _const(z, 0.5)
    half_df1 = fnp.multiply(half, fnp.add(df, _const(z, 1)))
    norm_ = fnp.subtract(fnp.subtract(sp.gammaln(half_df1), sp.gammaln(fnp.multiply(half, df))),
                         fnp.add(fnp.multiply(half, fnp.log(fnp.multiply(df, _const(z, np.pi)))),
                                 fnp.log(scale)))
    return fnp.subtract(norm_, fnp.multiply(half_df1, fnp.log1p(fnp.divide(fnp.square(z), df))))


def _t_cdf(x, df, loc=0, scale=1):
    x, df, loc, scale = _promote(x, df, loc, scale)
    z = fnp.divide(fnp.subtract(x, loc), scale)
    half = _const(z, 0.5)
    w = fnp.divide(df, fnp.add(df, fnp.square(z)))
    tail = fnp.multiply(half, sp.betainc(fnp.multiply(half, df), half, w))
    return fnp.where(fnp.greater(z, 0), fnp.subtract(_const(z, 1), tail), tail)


t = _namespace("t", logpdf=_t_logpdf, pdf=_exp(_t_logpdf), cdf=_t_cdf)


# --- gamma, chi2, expon --------------------------------------------------------------------------

def _gamma_logpdf(x, a, loc=0, scale=1):
    x, a, loc, scale = _promote(x, a, loc, scale)
    y = fnp.divide(fnp.subtract(x, loc), scale)
    inside = fnp.greater_equal(y, 0)
    safe_y = fnp.where(inside, y, fnp.ones_like(y))
    value = fnp.subtract(fnp.subtract(sp.xlogy(fnp.subtract(a, _const(y, 1)), safe_y), safe_y),
                         fnp.add(sp.gammaln(a), fnp.log(scale)))
    return fnp.where(inside, value, _const(y, -np.inf))


def _gamma_y(x, a, loc, scale):
    x, a, loc, scale = _promote(x, a, loc, scale)
    return fnp.maximum(fnp.divide(fnp.subtract(x, loc), scale), _const(x, 0)), a


def _gamma_cdf(x, a, loc=0, scale=1):
    y, a = _gamma_y(x, a, loc, scale)
    return sp.gammainc(a, y)


def _gamma_sf(x, a, loc=0, scale=1):
    y, a = _gamma_y(x, a, loc, scale)
    return sp.gammaincc(a, y)


gamma = _namespace("gamma", logpdf=_gamma_logpdf, pdf=_exp(_gamma_logpdf), cdf=_gamma_cdf,
                   logcdf=lambda x, a, loc=0, scale=1: fnp.log(_gamma_cdf(x, a, loc, scale)),
                   sf=_gamma_sf,
                   logsf=lambda x, a, loc=0, scale=1: fnp.log(_gamma_sf(x, a, loc, scale)))


def _chi2_args(x, df, loc, scale):
    x, df, loc, scale = _promote(x, df, loc, scale)
    two = _const(x, 2)
    return x, fnp.divide(df, two), loc, fnp.multiply(two, scale)


# chi2(df) is gamma(df / 2, scale=2)
def _chi2_logpdf(x, df, loc=0, scale=1):
    return _gamma_logpdf(*_chi2_args(x, df, loc, scale))


def _chi2_cdf(x, df, loc=0, scale=1):
    return _gamma_cdf(*_chi2_args(x, df, loc, scale))


def _chi2_sf(x, df, loc=0, scale=1):
    return _gamma_sf(*_chi2_args(x, df, loc, scale))


chi2 = _namespace("chi2", logpdf=_chi2_logpdf, pdf=_exp(_chi2_logpdf), cdf=_chi2_cdf,
                  sf=_chi2_sf)


def _expon_logpdf(x, loc=0, scale=1):
    x, loc, scale = _promote(x, loc, scale)
    y = fnp.divide(fnp.subtract(x, loc), scale)
    return fnp.where(fnp.less(y, 0), _const(y, -np.inf),
                     fnp.negative(fnp.add(y, fnp.log(scale))))


def _expon_cdf(x, loc=0, scale=1):
    x, loc, scale = _promote(x, loc, scale)
    y = fnp.maximum(fnp.divide(fnp.subtract(x, loc), scale), _const(x, 0))
    return fnp.negative(fnp.expm1(fnp.negative(y)))


expon = _namespace("expon", logpdf=_expon_logpdf, pdf=_exp(_expon_logpdf), cdf=_expon_cdf)


def _uniform_logpdf(x, loc=0, scale=1):
    x, loc, scale = _promote(x, loc, scale)
    inside = fnp.logical_and(fnp.greater_equal(x, loc), fnp.less_equal(x, fnp.add(loc, scale)))
    return fnp.where(inside, fnp.negative(fnp.log(scale)), _const(x, -np.inf))


def _uniform_cdf(x, loc=0, scale=1):
    x, loc, scale = _promote(x, loc, scale)
    return fnp.clip(fnp.divide(fnp.subtract(x, loc), scale), 0.0, 1.0)


uniform = _namespace("uniform", logpdf=_uniform_logpdf, pdf=_exp(_uniform_logpdf),
                     cdf=_uniform_cdf)


# --- beta ------------------------------------------------------------------------------------------

def _beta_logpdf(x, a, b, loc=0, scale=1):
    x, a, b, loc, scale = _promote(x, a, b, loc, scale)
    y = fnp.divide(fnp.subtract(x, loc), scale)
    one = _const(y, 1)
    inside = fnp.logical_and(fnp.greater_equal(y, 0), fnp.less_equal(y, one))
    safe_y = fnp.where(inside, y, fnp.full_like(y, 0.5))
    value = fnp.subtract(fnp.add(sp.xlogy(fnp.subtract(a, one), safe_y),
                                 sp.xlog1py(fnp.subtract(b, one), fnp.negative(safe_y))),
                         fnp.add(sp.betaln(a, b), fnp.log(scale)))
    return fnp.where(inside, value, _const(y, -np.inf))


def _beta_cdf(x, a, b, loc=0, scale=1):
    x, a, b, loc, scale = _promote(x, a, b, loc, scale)
    y = fnp.clip(fnp.divide(fnp.subtract(x, loc), scale), 0.0, 1.0)
    return sp.betainc(a, b, y)


def _beta_sf(x, a, b, loc=0, scale=1):
    x, a, b, loc, scale = _promote(x, a, b, loc, scale)
    y = fnp.clip(fnp.divide(fnp.subtract(x, loc), scale), 0.0, 1.0)
    return sp.betainc(b, a, fnp.subtract(_const(y, 1), y))


beta = _namespace("beta", logpdf=_beta_logpdf, pdf=_exp(_beta_logpdf), cdf=_beta_cdf,
                  logcdf=lambda *a, **k: fnp.log(_beta_cdf(*a, **k)), sf=_beta_sf,
                  logsf=lambda *a, **k: fnp.log(_beta_sf(*a, **k)))


# --- poisson, bernoulli ----------------------------------------------------------------------------

def _poisson_logpmf(k, mu, loc=0):
    k, mu, loc = _promote(k, mu, loc)
    x = fnp.subtract(k, loc)
    valid = fnp.logical_and(fnp.greater_equal(x, 0), fnp.equal(x, fnp.floor(x)))
    safe_x = fnp.where(valid, x, fnp.zeros_like(x))
    value = fnp.subtract(fnp.subtract(sp.xlogy(safe_x, mu), sp.gammaln(
        fnp.add(safe_x, _const(x, 1)))), mu)
    return fnp.where(valid, value, _const(x, -np.inf))


def _poisson_cdf(k, mu, loc=0):
    k, mu, loc = _promote(k, mu, loc)
    x = fnp.subtract(k, loc)
    safe_x = fnp.where(fnp.less(x, 0), fnp.zeros_like(x), fnp.floor(x))
    value = sp.gammaincc(fnp.add(safe_x, _const(x, 1)), mu)
    return fnp.where(fnp.less(x, 0), fnp.zeros_like(value), value)


poisson = _namespace("poisson", logpmf=_poisson_logpmf, pmf=_exp(_poisson_logpmf),
                     cdf=_poisson_cdf)


def _bernoulli_logpmf(k, p, loc=0):
    k, p, loc = _promote(k, p, loc)
    x = fnp.subtract(k, loc)
    one = _const(x, 1)
    value = fnp.add(sp.xlogy(x, p), sp.xlog1py(fnp.subtract(one, x), fnp.negative(p)))
    valid = fnp.logical_or(fnp.equal(x, 0), fnp.equal(x, one))
    return fnp.where(valid, value, _const(x, -np.inf))


def _bernoulli_cdf(k, p):
    k, p = _promote(k, p)
    one = _const(k, 1)
    return fnp.where(fnp.less(k, 0), fnp.zeros_like(p),
                     fnp.where(fnp.less(k, one), fnp.subtract(one, p), fnp.ones_like(p)))


def _bernoulli_ppf(q, p):
    q, p = _promote(q, p)
    out = fnp.where(fnp.less_equal(q, fnp.subtract(_const(q, 1), p)), 0.0, 1.0)
    bad = fnp.logical_or(fnp.less(q, 0), fnp.greater(q, 1))
    return fnp.where(bad, _const(q, np.nan), out.astype(aval_of(q).dtype))


bernoulli = _namespace("bernoulli", logpmf=_bernoulli_logpmf, pmf=_exp(_bernoulli_logpmf),
                       cdf=_bernoulli_cdf, ppf=_bernoulli_ppf)


# --- dirichlet (x's first axis holds the K components, as SciPy and JAX) ---------------------------

def _dirichlet_logpdf(x, alpha):
    x, alpha = fnp.asarray(x), fnp.asarray(alpha)
    dtype = np.result_type(aval_of(x).dtype, aval_of(alpha).dtype, np.float16)
    dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    x, alpha = fnp.asarray(x, dtype), fnp.asarray(alpha, dtype)
    if aval_of(alpha).ndim != 1:
        raise FungradValueError(f"dirichlet.logpdf: alpha must be one-dimensional, got shape "
                                f"{aval_of(alpha).shape}")
    k = aval_of(alpha).shape[0]
    if aval_of(x).shape[0] not in (k, k - 1):
        raise FungradValueError(f"dirichlet.logpdf: x must have {k} or {k - 1} entries on its "
                                f"first axis, got shape {aval_of(x).shape}")
    one = dtype.type(1)
    if aval_of(x).shape[0] != k:
        x = fnp.concatenate([x, fnp.subtract(one, fnp.sum(x, axis=0, keepdims=True))], axis=0)
    normalize = fnp.subtract(fnp.sum(sp.gammaln(alpha)), sp.gammaln(fnp.sum(alpha)))
    a = fnp.reshape(alpha, (k,) + (1,) * (aval_of(x).ndim - 1))
    log_probs = fnp.subtract(fnp.sum(sp.xlogy(fnp.subtract(a, one), x), axis=0), normalize)
    simplex = fnp.logical_and(fnp.all(fnp.greater_equal(x, 0), axis=0),
                              fnp.less(fnp.abs(fnp.subtract(fnp.sum(x, axis=0), one)),
                                       dtype.type(np.finfo(dtype).eps * 4 * k)))
    return fnp.where(simplex, log_probs, dtype.type(-np.inf))


dirichlet = _namespace("dirichlet", logpdf=_dirichlet_logpdf, pdf=_exp(_dirichlet_logpdf))


# --- cauchy, laplace, logistic --------------------------------------------------------------------

def _z(x, loc, scale):
    x, loc, scale = _promote(x, loc, scale)
    return fnp.divide(fnp.subtract(x, loc), scale), loc, scale


def _cauchy_logpdf(x, loc=0, scale=1):
    z, _, scale = _z(x, loc, scale)
    return fnp.negative(fnp.add(fnp.add(_const(z, np.log(np.pi)), fnp.log(scale)),
                                fnp.log1p(fnp.square(z))))


def _cauchy_cdf(x, loc=0, scale=1):
    z, _, _ = _z(x, loc, scale)
    return fnp.add(_const(z, 0.5), fnp.divide(fnp.arctan(z), _const(z, np.pi)))


def _cauchy_sf(x, loc=0, scale=1):
    z, _, _ = _z(x, loc, scale)
    return fnp.subtract(_const(z, 0.5), fnp.divide(fnp.arctan(z), _const(z, np.pi)))


def _cauchy_ppf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.add(loc, fnp.multiply(scale, fnp.tan(fnp.multiply(
        _const(q, np.pi), fnp.subtract(q, _const(q, 0.5))))))


def _cauchy_isf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.subtract(loc, fnp.multiply(scale, fnp.tan(fnp.multiply(
        _const(q, np.pi), fnp.subtract(q, _const(q, 0.5))))))


cauchy = _namespace("cauchy", logpdf=_cauchy_logpdf, pdf=_exp(_cauchy_logpdf), cdf=_cauchy_cdf,
                    logcdf=lambda *a, **k: fnp.log(_cauchy_cdf(*a, **k)), sf=_cauchy_sf,
                    logsf=lambda *a, **k: fnp.log(_cauchy_sf(*a, **k)), ppf=_cauchy_ppf,
                    isf=_cauchy_isf)


def _laplace_logpdf(x, loc=0, scale=1):
    z, _, scale = _z(x, loc, scale)
    return fnp.negative(fnp.add(fnp.log(fnp.multiply(_const(z, 2), scale)), fnp.abs(z)))


def _laplace_cdf(x, loc=0, scale=1):
    z, _, _ = _z(x, loc, scale)
    half = _const(z, 0.5)
    lower = fnp.multiply(half, fnp.exp(fnp.minimum(z, _const(z, 0))))
    upper = fnp.subtract(_const(z, 1), fnp.multiply(half, fnp.exp(fnp.negative(
        fnp.maximum(z, _const(z, 0))))))
    return fnp.where(fnp.less(z, 0), lower, upper)


laplace = _namespace("laplace", logpdf=_laplace_logpdf, pdf=_exp(_laplace_logpdf),
                     cdf=_laplace_cdf)


def _logistic_logpdf(x, loc=0, scale=1):
    z, _, scale = _z(x, loc, scale)
    # log sigmoid(z) + log sigmoid(-z) - log scale, stable for every z
    return fnp.subtract(fnp.add(sp.log_expit(z), sp.log_expit(fnp.negative(z))), fnp.log(scale))


def _logistic_cdf(x, loc=0, scale=1):
    return sp.expit(_z(x, loc, scale)[0])


def _logistic_sf(x, loc=0, scale=1):
    return sp.expit(fnp.negative(_z(x, loc, scale)[0]))


def _logistic_ppf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.add(loc, fnp.multiply(scale, sp.logit(q)))


def _logistic_isf(q, loc=0, scale=1):
    q, loc, scale = _promote(q, loc, scale)
    return fnp.subtract(loc, fnp.multiply(scale, sp.logit(q)))


logistic = _namespace("logistic", logpdf=_logistic_logpdf, pdf=_exp(_logistic_logpdf),
                      cdf=_logistic_cdf, sf=_logistic_sf, ppf=_logistic_ppf, isf=_logistic_isf)
