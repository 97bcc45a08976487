"""fungrad.scipy: values against SciPy (hypothesis over the domains, tails included),
derivatives against finite differences, the stable derivatives in the tails, stats,
linalg, optimize and signal."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.scipy import linalg as fla
from fungrad.scipy import optimize as fopt
from fungrad.scipy import signal as fsig
from fungrad.scipy import special as fsp
from fungrad.scipy import stats as fst
from fungrad.testing import check_grads

# name -> (fungrad function, scipy function, value domain, gradient domain)
UNARY = {
    "expit": (fsp.expit, scipy.special.expit, (-700, 700), (-30, 30)),
    "log_expit": (fsp.log_expit, scipy.special.log_expit, (-700, 700), (-30, 30)),
    "logit": (fsp.logit, scipy.special.logit, (1e-12, 1 - 1e-12), (0.01, 0.99)),
    "gammaln": (fsp.gammaln, scipy.special.gammaln, (1e-3, 1e5), (0.1, 50)),
    "digamma": (fsp.digamma, scipy.special.digamma, (1e-3, 1e5), (0.1, 50)),
    "erf": (fsp.erf, scipy.special.erf, (-6, 6), (-3, 3)),
    "erfc": (fsp.erfc, scipy.special.erfc, (-6, 26), (-3, 3)),
    "erfcx": (fsp.erfcx, scipy.special.erfcx, (-26, 1e5), (-3, 10)),
    "erfinv": (fsp.erfinv, scipy.special.erfinv, (-0.999999, 0.999999), (-0.9, 0.9)),
    "ndtr": (fsp.ndtr, scipy.special.ndtr, (-37, 8), (-5, 5)),
    "ndtri": (fsp.ndtri, scipy.special.ndtri, (1e-300, 1 - 1e-16), (0.01, 0.99)),
    "log_ndtr": (fsp.log_ndtr, scipy.special.log_ndtr, (-1e5, 40), (-50, 10)),
    "entr": (fsp.entr, scipy.special.entr, (1e-300, 100), (0.01, 5)),
    "i0e": (fsp.i0e, scipy.special.i0e, (-700, 700), (-5, 5)),
    "i1e": (fsp.i1e, scipy.special.i1e, (-700, 700), (-5, 5)),
    "i0": (fsp.i0, scipy.special.i0, (-50, 50), (-3, 3)),
    "i1": (fsp.i1, scipy.special.i1, (-50, 50), (-3, 3)),
    "gamma": (fsp.gamma, scipy.special.gamma, (-5.5, 30), (0.2, 5)),
}


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=25)
@given(data=st.data())
def test_special_values_match_scipy(name, data):
    fn, ref, (lo, hi), _ = UNARY[name]
    x = data.draw(hnp.arrays(np.float64, (5,), elements=_floats(lo, hi)), label="x")
    if name == "gamma":
        x = np.where(np.abs(x - np.round(x)) < 1e-3, x + 0.01, x)   # away from the poles
    np.testing.assert_allclose(fn(x), ref(x), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=10)
@given(data=st.data())
def test_special_gradients_match_finite_differences(name, data):
    fn, _, _, (lo, hi) = UNARY[name]
    x = data.draw(hnp.arrays(np.float64, (3,), elements=_floats(lo, hi)), label="x")
    if name in ("i1e", "i0e", "i0", "i1"):
        x = np.where(np.abs(x) < 1e-3, 0.5, x)      # |x| has a kink at 0 for i0e, i1e
    check_grads(lambda v: fnp.sum(fn(v)), (x,), order=2, rtol=1e-4, atol=1e-6)


@settings(max_examples=15)
@given(n=st.integers(0, 3), x=hnp.arrays(np.float64, (4,), elements=_floats(0.2, 20)))
def test_polygamma_values_and_gradients(n, x):
    np.testing.assert_allclose(fsp.polygamma(n, x), scipy.special.polygamma(n, x), rtol=1e-11)
    check_grads(lambda v: fnp.sum(fsp.polygamma(n, v)), (x,), order=1, rtol=1e-4)


def test_log_ndtr_is_stable_deep_in_the_tail():
    x = np.array([-40.0, -1e3, -1e5, -1e150])
    np.testing.assert_allclose(fsp.log_ndtr(x), scipy.special.log_ndtr(x), rtol=1e-14)
    g = fg.vmap(fg.grad(fsp.log_ndtr))(x)
    # d/dx log Phi(x) = phi(x) / Phi(x) = -x - 1/x + 2/x^3 - ... for x -> -inf
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(g, -x - 1 / x + 2 / x ** 3 - 10 / x ** 5 + 74 / x ** 7,
                                   rtol=1e-12)
    assert np.all(np.isfinite(fg.vmap(fg.grad(fg.grad(fsp.log_ndtr)))(x[:3])))
    assert fg.grad(fsp.log_ndtr)(40.0) == 0.0 or fg.grad(fsp.log_ndtr)(40.0) < 1e-300


def test_ndtri_is_accurate_for_tiny_probabilities():
    p = np.array([1e-300, 1e-50, 1e-10, 0.5])
    np.testing.assert_allclose(fsp.ndtri(p), scipy.special.ndtri(p), rtol=1e-14)
    np.testing.assert_allclose(fsp.ndtr(fsp.ndtri(p)), p, rtol=1e-12)


def test_logsumexp_with_b_return_sign_and_minus_inf():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, -2.0, 0.5])
    v, s = fsp.logsumexp(a, b=b, return_sign=True)
    rv, rs = scipy.special.logsumexp(a, b=b, return_sign=True)
    np.testing.assert_allclose([v, s], [rv, rs], rtol=1e-14)
    x = np.array([-np.inf, -np.inf])
    assert fsp.logsumexp(x) == -np.inf
    np.testing.assert_array_equal(fg.grad(fsp.logsumexp)(x), [0.0, 0.0])
    m = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(fsp.logsumexp(m, axis=1, keepdims=True),
                               scipy.special.logsumexp(m, axis=1, keepdims=True))
    check_grads(lambda y: fsp.logsumexp(y, b=np.abs(b)), (a,), order=2)
    check_grads(lambda y: fsp.logsumexp(y, b=b, return_sign=True)[0], (a,), order=2)


def test_xlogy_xlog1py_at_zero():
    assert fsp.xlogy(0.0, 0.0) == 0.0 and fsp.xlog1py(0.0, -1.0) == 0.0
    np.testing.assert_allclose(fsp.xlogy(np.array([2.0, 0.5]), np.array([3.0, 0.1])),
                               scipy.special.xlogy([2.0, 0.5], [3.0, 0.1]))
    gx, gy = fg.grad(fsp.xlogy, argnums=(0, 1))(0.0, 2.0)
    assert np.isclose(gx, np.log(2.0)) and gy == 0.0
    assert fg.grad(fsp.xlogy, argnums=1)(0.0, 0.0) == 0.0
    check_grads(lambda x, y: fsp.xlogy(x, y), (1.5, 2.5), order=2)
    check_grads(lambda x, y: fsp.xlog1py(x, y), (1.5, 0.5), order=2)


@settings(max_examples=20)
@given(a=_floats(0.1, 30), x=_floats(0.0, 60))
def test_incomplete_gamma_values_and_x_derivative(a, x):
    np.testing.assert_allclose(fsp.gammainc(a, x), scipy.special.gammainc(a, x), rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(fsp.gammaincc(a, x), scipy.special.gammaincc(a, x), rtol=1e-12,
                               atol=1e-300)
    want = scipy.stats.gamma(a).pdf(x)
    np.testing.assert_allclose(fg.grad(fsp.gammainc, argnums=1)(a, x), want, rtol=1e-9,
                               atol=1e-300)
    np.testing.assert_allclose(fg.grad(fsp.gammaincc, argnums=1)(a, x), -want, rtol=1e-9,
                               atol=1e-300)


@settings(max_examples=20)
@given(a=_floats(0.2, 20), b=_floats(0.2, 20), x=_floats(0.001, 0.999))
def test_incomplete_beta_values_and_x_derivative(a, b, x):
    np.testing.assert_allclose(fsp.betainc(a, b, x), scipy.special.betainc(a, b, x),
                               rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(fg.grad(fsp.betainc, argnums=2)(a, b, x),
                               scipy.stats.beta(a, b).pdf(x), rtol=1e-9, atol=1e-300)


def test_derivative_in_a_shape_parameter_raises_instead_of_a_silent_zero():
    with pytest.raises(NotImplementedError, match="shape parameter `a`"):
        fg.grad(fsp.gammainc, argnums=0)(2.0, 1.0)
    with pytest.raises(NotImplementedError, match="shape parameter `a`"):
        fg.jvp(lambda a: fsp.gammainc(a, 1.0), (2.0,), (1.0,))
    with pytest.raises(NotImplementedError, match="shape parameter `b`"):
        fg.grad(fsp.betainc, argnums=1)(2.0, 3.0, 0.4)


def test_betaln_multigammaln_rel_entr_kl_div():
    np.testing.assert_allclose(fsp.betaln(2.5, 0.7), scipy.special.betaln(2.5, 0.7))
    np.testing.assert_allclose(fsp.multigammaln(np.array([3.0, 4.5]), 3),
                               scipy.special.multigammaln(np.array([3.0, 4.5]), 3))
    x, y = np.array([0.0, 0.5, 2.0, 1.0]), np.array([0.3, 0.2, 1.0, 0.0])
    np.testing.assert_allclose(fsp.rel_entr(x, y), scipy.special.rel_entr(x, y))
    np.testing.assert_allclose(fsp.kl_div(x, y), scipy.special.kl_div(x, y))


def test_special_functions_jit_and_vmap():
    x = np.linspace(-3, 3, 7)
    for fn in (fsp.log_ndtr, fsp.ndtr, fsp.i0e, fsp.expit):
        np.testing.assert_allclose(fg.jit(fn)(x), fn(x), rtol=1e-14)
        np.testing.assert_allclose(fg.vmap(fg.grad(fn))(x), [fg.grad(fn)(v) for v in x],
                                   rtol=1e-14)


# --- stats ----------------------------------------------------------------------------------

X = np.array([-3.0, -0.5, 0.0, 0.7, 2.5])
POS = np.array([0.05, 0.5, 1.0, 2.5, 7.0])
UNIT = np.array([0.01, 0.2, 0.5, 0.8, 0.99])

STATS = [
    # (fungrad, scipy, argument, extra args)
    (fst.norm, scipy.stats.norm, X, (0.3, 1.7), ("logpdf", "pdf", "cdf", "logcdf", "sf",
                                                "logsf")),
    (fst.norm, scipy.stats.norm, UNIT, (0.3, 1.7), ("ppf", "isf")),
    (fst.t, scipy.stats.t, X, (3.5, 0.2, 1.3), ("logpdf", "pdf", "cdf")),
    (fst.gamma, scipy.stats.gamma, POS, (2.3, 0.0, 1.5), ("logpdf", "pdf", "cdf", "logcdf",
                                                          "sf", "logsf")),
    (fst.beta, scipy.stats.beta, UNIT, (2.3, 0.7), ("logpdf", "pdf", "cdf", "sf")),
    (fst.cauchy, scipy.stats.cauchy, X, (0.3, 1.7), ("logpdf", "pdf", "cdf", "logcdf", "sf",
                                                    "logsf")),
    (fst.cauchy, scipy.stats.cauchy, UNIT, (0.3, 1.7), ("ppf", "isf")),
    (fst.laplace, scipy.stats.laplace, X, (0.3, 1.7), ("logpdf", "pdf", "cdf")),
    (fst.logistic, scipy.stats.logistic, X, (0.3, 1.7), ("logpdf", "pdf", "cdf", "sf")),
    (fst.logistic, scipy.stats.logistic, UNIT, (0.3, 1.7), ("ppf", "isf")),
    (fst.expon, scipy.stats.expon, POS, (0.0, 1.7), ("logpdf", "pdf", "cdf")),
    (fst.chi2, scipy.stats.chi2, POS, (3.0,), ("logpdf", "pdf", "cdf", "sf")),
    (fst.uniform, scipy.stats.uniform, UNIT, (-0.5, 2.0), ("logpdf", "pdf", "cdf")),
]


@pytest.mark.parametrize("ours,ref,x,args,methods", STATS,
                         ids=[f"{s[1].name}-{s[4][0]}" for s in STATS])
def test_stats_match_scipy(ours, ref, x, args, methods):
    for m in methods:
        np.testing.assert_allclose(getattr(ours, m)(x, *args), getattr(ref, m)(x, *args),
                                   rtol=1e-11, atol=1e-300, err_msg=m)


@pytest.mark.parametrize("ours,ref,x,args,methods", STATS,
                         ids=[f"{s[1].name}-{s[4][0]}" for s in STATS])
def test_stats_gradients_match_finite_differences(ours, ref, x, args, methods):
    for m in methods:
        if ref is scipy.stats.uniform or (m in ("cdf", "sf", "logcdf", "logsf")
                                         and ref in (scipy.stats.gamma, scipy.stats.beta,
                                                     scipy.stats.t, scipy.stats.chi2)):
            # shape parameters of the incomplete gamma/beta are not differentiable: x only
            check_grads(lambda v: fnp.sum(getattr(ours, m)(v, *args)), (x,), order=1,
                        rtol=1e-4, atol=1e-7)
            continue
        check_grads(lambda v, *a: fnp.sum(getattr(ours, m)(v, *a)), (x,) + tuple(
            np.float64(a) for a in args), order=1, rtol=1e-4, atol=1e-7)


def test_norm_logcdf_gradient_in_the_tail():
    g = fg.grad(fst.norm.logcdf)(-200.0)
    np.testing.assert_allclose(g, 200.0 + 1 / 200.0 - 2 / 200.0 ** 3, rtol=1e-12)


def test_discrete_stats():
    k = np.array([0.0, 1.0, 3.0, 7.0, 2.5, -1.0])
    np.testing.assert_allclose(fst.poisson.logpmf(k, 2.3), scipy.stats.poisson.logpmf(k, 2.3))
    np.testing.assert_allclose(fst.poisson.pmf(k, 2.3), scipy.stats.poisson.pmf(k, 2.3))
    np.testing.assert_allclose(fst.poisson.cdf(k, 2.3), scipy.stats.poisson.cdf(k, 2.3))
    check_grads(lambda mu: fnp.sum(fst.poisson.logpmf(k[:4], mu)), (2.3,), order=2)
    check_grads(lambda mu: fnp.sum(fst.poisson.cdf(k[:4], mu)), (2.3,), order=1)
    b = np.array([0.0, 1.0, 0.5])
    np.testing.assert_allclose(fst.bernoulli.logpmf(b, 0.3), scipy.stats.bernoulli.logpmf(b, 0.3))
    np.testing.assert_allclose(fst.bernoulli.cdf(np.array([-1.0, 0.0, 0.5, 1.0]), 0.3),
                               scipy.stats.bernoulli.cdf([-1.0, 0.0, 0.5, 1.0], 0.3))
    np.testing.assert_allclose(fst.bernoulli.ppf(np.array([0.1, 0.7, 0.9]), 0.3),
                               scipy.stats.bernoulli.ppf([0.1, 0.7, 0.9], 0.3))
    check_grads(lambda p: fnp.sum(fst.bernoulli.logpmf(b[:2], p)), (0.3,), order=2)


def test_multivariate_normal_and_dirichlet():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 3 * np.eye(3)
    mean = np.array([0.5, -1.0, 2.0])
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(fst.multivariate_normal.logpdf(x, mean, cov),
                               scipy.stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(fst.multivariate_normal.pdf(x[0], mean, cov),
                               scipy.stats.multivariate_normal(mean, cov).pdf(x[0]), rtol=1e-12)
    check_grads(lambda m, c: fnp.sum(fst.multivariate_normal.logpdf(x, m, c)), (mean, cov),
                order=1, rtol=1e-5)
    alpha = np.array([1.5, 2.0, 0.7])
    p = np.array([[0.2, 0.3], [0.5, 0.1], [0.3, 0.6]])       # components on the first axis
    np.testing.assert_allclose(fst.dirichlet.logpdf(p, alpha),
                               scipy.stats.dirichlet(alpha).logpdf(p), rtol=1e-12)
    check_grads(lambda al: fnp.sum(fst.dirichlet.logpdf(p, al)), (alpha,), order=2)


# --- linalg, optimize, signal -------------------------------------------------------------------

def test_linalg_matches_scipy_and_differentiates():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    spd = a @ a.T + 4 * np.eye(4)
    b = rng.normal(size=(4, 2))
    low = np.tril(a) + 4 * np.eye(4)
    for trans in (0, 1):
        np.testing.assert_allclose(fla.solve_triangular(low, b, trans=trans, lower=True),
                                   scipy.linalg.solve_triangular(low, b, trans=trans,
                                                                 lower=True), rtol=1e-12)
    np.testing.assert_allclose(fla.cho_solve(fla.cho_factor(spd), b),
                               scipy.linalg.cho_solve(scipy.linalg.cho_factor(spd), b),
                               rtol=1e-12)
    np.testing.assert_allclose(fla.cho_solve(fla.cho_factor(spd, lower=True), b[:, 0]),
                               np.linalg.solve(spd, b[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(fla.cholesky(spd), scipy.linalg.cholesky(spd), rtol=1e-12)
    np.testing.assert_allclose(fla.block_diag(np.ones((1, 2)), 2 * np.eye(2), 3.0),
                               scipy.linalg.block_diag(np.ones((1, 2)), 2 * np.eye(2), 3.0))
    for scale in (0.01, 1.0, 30.0):
        np.testing.assert_allclose(fla.expm(scale * a), scipy.linalg.expm(scale * a),
                                   rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(fg.jit(fla.expm)(a), scipy.linalg.expm(a), rtol=1e-11)
    check_grads(lambda m: fnp.sum(fla.expm(m)), (0.5 * a,), order=1, rtol=1e-5)
    check_grads(lambda m: fnp.sum(fla.cho_solve(fla.cho_factor(m), b)), (spd,), order=1,
                rtol=1e-5)


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "CG", "Newton-CG"])
def test_minimize_rosenbrock(method):
    def rosen(x):
        return fnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    res = fopt.minimize(rosen, np.array([-1.2, 1.0, 0.8]), method=method,
                        options={"maxiter": 2000})
    np.testing.assert_allclose(res.x, np.ones(3), atol=1e-4)
    assert res.success


def test_minimize_with_bounds_and_args():
    res = fopt.minimize(lambda x, c: fnp.sum((x - c) ** 2), np.zeros(2), (np.array([3.0, -2.0]),),
                        method="L-BFGS-B", bounds=[(0, 1), (-5, 5)])
    np.testing.assert_allclose(res.x, [1.0, -2.0], atol=1e-6)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_signal_convolve_and_correlate_match_scipy(mode):
    rng = np.random.default_rng(2)
    for sa, sb in [((7,), (4,)), ((3,), (6,)), ((5, 6), (3, 2)), ((4, 3, 5), (2, 2, 3))]:
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        if mode == "valid" and not (all(x >= y for x, y in zip(sa, sb))
                                    or all(x <= y for x, y in zip(sa, sb))):
            continue
        np.testing.assert_allclose(fsig.convolve(a, b, mode), scipy.signal.convolve(a, b, mode),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fsig.correlate(a, b, mode),
                                   scipy.signal.correlate(a, b, mode), rtol=1e-12, atol=1e-12)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(2, 3))
    check_grads(lambda x, y: fnp.sum(fnp.sin(fsig.convolve(x, y, mode))), (a, b), order=1)
    np.testing.assert_allclose(fsig.convolve2d(a, b, mode), scipy.signal.convolve2d(a, b, mode),
                               rtol=1e-12, atol=1e-12)
