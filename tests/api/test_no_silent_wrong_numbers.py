"""Issue 12, tried as a hostile user would: every reproduction is a regression test,
plus the edge-case property: at kinks, ties, NaN entries and singular matrices,
forward mode, reverse mode and grad give the same number (tests/core/test_tracing.py
holds the Python-conversion cases, tests/hop the control-flow typing)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn
from fungrad.errors import FungradError


def _same(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))
                                              | np.isclose(a, b, rtol=1e-12, atol=1e-12)))


# -- conversions --------------------------------------------------------------------------

@pytest.mark.parametrize("transform", [
    lambda f: fg.grad(f)(0.7), lambda f: fg.value_and_grad(f)(0.7),
    lambda f: fg.jvp(f, (0.7,), (1.0,)), lambda f: fg.jacobian(f)(0.7),
    lambda f: fg.hessian(f)(0.7)], ids=["grad", "value_and_grad", "jvp", "jacobian", "hessian"])
@pytest.mark.parametrize("conversion", [
    lambda w: 1 / (1 + math.exp(-w)), lambda w: float(w) * w, lambda w: math.sqrt(w) * w,
    lambda w: w.item() * w], ids=["math.exp", "float", "math.sqrt", "item"])
def test_conversions_under_differentiation_raise_instead_of_returning_zero(transform, conversion):
    with pytest.raises(fg.ConcretizationError, match="being differentiated"):
        transform(conversion)


# -- modes agree ---------------------------------------------------------------------------

def test_custom_vjp_clip_gradient_under_jacfwd_raises_instead_of_disagreeing():
    @fg.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (fnp.clip(g, -1.0, 1.0),))
    assert fg.grad(lambda x: 6.0 * clip_gradient(x))(3.0) == 1.0
    with pytest.raises(TypeError, match="not known to be linear"):
        fg.jacfwd(lambda x: 6.0 * clip_gradient(x))(3.0)


def test_sqrt_of_abs_at_zero_is_the_same_in_every_mode():
    f = lambda x: fnp.sqrt(fnp.abs(x))  # noqa: E731
    assert fg.grad(f)(0.0) == fg.jacfwd(f)(0.0) == fg.jacrev(f)(0.0) == 0.0


def test_sort_gradient_keeps_a_nan_entry():
    x = np.array([np.nan, 1.0, 0.0])
    g = fg.grad(lambda x: fnp.sum(fnp.sort(x) * np.array([0.0, 1.0, 2.0])))(x)
    np.testing.assert_array_equal(g, [2.0, 1.0, 0.0])        # JAX: [2, 1, 0]
    np.testing.assert_array_equal(fg.jacfwd(fnp.sort)(x), fg.jacrev(fnp.sort)(x))


def test_hypot_propagates_nan_like_numpy():
    assert np.isnan(fnp.hypot(np.nan, 0.0)) and np.isnan(fnp.hypot(0.0, np.nan))
    assert fnp.hypot(np.nan, np.inf) == np.inf == np.hypot(np.nan, np.inf)
    assert np.isnan(fg.grad(fnp.hypot)(np.nan, 0.0))
    assert fg.grad(fnp.hypot, argnums=(0, 1))(0.0, 0.0) == (0.0, 0.0)


def test_det_gradient_at_a_singular_matrix_is_the_adjugate():
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    adj_t = np.array([[4.0, -2.0], [-2.0, 1.0]])             # JAX gives the same
    np.testing.assert_allclose(fg.grad(fnp.linalg.det)(a), adj_t, atol=1e-12)
    np.testing.assert_allclose(fg.jacfwd(fnp.linalg.det)(a), adj_t, atol=1e-12)
    b = np.arange(1.0, 10.0).reshape(3, 3)                      # rank 2
    cof = np.array([[-3.0, 6.0, -3.0], [6.0, -12.0, 6.0], [-3.0, 6.0, -3.0]])
    np.testing.assert_allclose(fg.grad(fnp.linalg.det)(b), cof, atol=1e-9)
    np.testing.assert_allclose(fg.grad(fnp.linalg.det)(np.zeros((3, 3))), 0.0)
    c = np.array([[2.0, 1.0], [1.0, 3.0]])                      # regular: det A A^-T
    np.testing.assert_allclose(fg.grad(fnp.linalg.det)(c), 5.0 * np.linalg.inv(c).T)


def test_arctan2_gradient_at_the_origin_is_finite():
    for mode in (fg.grad, fg.jacfwd, fg.jacrev):
        assert mode(lambda x: fnp.arctan2(x, x))(0.0) == 0.0
        assert mode(fnp.arctan2, argnums=(0, 1))(0.0, 0.0) == (0.0, 0.0)
    assert fg.grad(fnp.arctan2, argnums=(0, 1))(1.0, 2.0) == pytest.approx((0.4, -0.2))


# -- control flow, conversions of inputs ------------------------------------------------

def test_eager_cond_checks_both_branch_types():
    with pytest.raises(TypeError, match="branches must return the same"):
        fg.lax.cond(True, lambda x: x, lambda x: x.astype(np.float32), 1.0)


def test_ported_programs_array_of_a_numpy_array_and_the_one_hot_idiom():
    np.testing.assert_array_equal(fnp.array(np.array([1, 2])), [1, 2])
    x = np.array([0, 2, 1])
    one_hot = fnp.array(x[:, None] == np.arange(3), dtype=int)
    np.testing.assert_array_equal(one_hot, np.eye(3, dtype=int)[x])
    traced = fg.jit(lambda x: fnp.array(x[:, None] == fnp.arange(3), dtype=int))(x)
    np.testing.assert_array_equal(traced, one_hot)


def test_lgamma_promotes_integers():
    np.testing.assert_allclose(fg.lax.lgamma(np.array([1, 2, 5])), [0.0, 0.0, math.log(24)])
    np.testing.assert_allclose(fg.lax.digamma(np.array([1])), [-0.5772156649015329])


# -- bad input: our errors, naming the argument and this file ---------------------------

X = np.ones((2, 3))
BAD_INPUT = {
    "vmap in_axes='0'": (lambda: fg.vmap(lambda a: a, in_axes="0")(X), TypeError, "in_axes"),
    "grad argnums=(0, 0)": (lambda: fg.grad(lambda a: a.sum(), argnums=(0, 0))(X),
                            ValueError, "argnums"),
    "grad argnums=0.0": (lambda: fg.grad(lambda a: a.sum(), argnums=0.0)(X), TypeError,
                         "argnums"),
    "jit(f)('abc')": (lambda: fg.jit(lambda a: a)("abc"), TypeError, "not a numeric"),
    "jit(f)(2**70)": (lambda: fg.jit(lambda a: a)(2 ** 70), OverflowError, "int64"),
    "grad(f)(2**70)": (lambda: fg.grad(lambda a: a * 1.0)(2 ** 70), OverflowError, "int64"),
    "sum axis=0.0": (lambda: fnp.sum(X, axis=0.0), TypeError, "axis"),
    "sum axis=(0, 0)": (lambda: fnp.sum(X, axis=(0, 0)), ValueError, "duplicate"),
    "transpose (0,)": (lambda: fnp.transpose(X, (0,)), ValueError, "permutation"),
    "concatenate axis=2": (lambda: fnp.concatenate([np.ones(2), np.ones(2)], axis=2),
                           ValueError, "out of bounds"),
    "vmap out_axes=3": (lambda: fg.vmap(lambda a: a.sum(), out_axes=3)(X), ValueError,
                        "out_axes"),
    "sum('abc')": (lambda: fnp.sum("abc"), TypeError, "not numeric"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_raises_our_error_naming_the_argument_and_line(case):
    run, kind, word = BAD_INPUT[case]
    with pytest.raises(kind, match=word) as info:
        run()
    assert isinstance(info.value, FungradError), type(info.value)
    assert "test_no_silent_wrong_numbers.py" in str(info.value) or case == "vmap out_axes=3"


def test_debug_nans_checks_the_forward_values_the_user_wrote():
    f = lambda x: fnp.sum(fnp.log(x - 1) * 0.0)  # noqa: E731
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(fg.grad(f)(x), [0.0, 0.0])   # flag off: no check
    fg.config.update("debug_nans", True)
    try:
        for mode in (fg.grad, fg.jacfwd, fg.jacrev):
            with pytest.raises(FloatingPointError, match="test_no_silent_wrong_numbers.py"):
                mode(f)(x)
        np.testing.assert_allclose(fg.grad(lambda x: fnp.sum(fnp.log(x)))(x), 1 / x)
    finally:
        fg.config.update("debug_nans", False)


# -- the edge-case property: every mode agrees at kinks, ties, NaNs, singular points -----

KINK_OPS = {
    "abs": fnp.abs, "sqrt": fnp.sqrt, "relu": nn.relu, "relu6": nn.relu6,
    "maximum0": lambda x: fnp.maximum(x, 0.0), "minimum0": lambda x: fnp.minimum(x, 0.0),
    "clip": lambda x: fnp.clip(x, 0.0, 1.0), "sign*x": lambda x: fnp.where(x > 0, x, -x),
    "max": lambda x: fnp.max(fnp.stack([x, fnp.zeros_like(x), fnp.zeros_like(x) - 1.0])),
    "min": lambda x: fnp.min(fnp.stack([x, fnp.zeros_like(x)])),
    "sort": lambda x: fnp.sort(fnp.stack([x, fnp.zeros_like(x), -x]))[1],
    "hypot": lambda x: fnp.hypot(x, fnp.zeros_like(x)),
    "arctan2": lambda x: fnp.arctan2(x, x), "norm": lambda x: fnp.linalg.norm(fnp.stack([x, x])),
}
SINGULAR = {"id": lambda u: u, "sqrt": fnp.sqrt, "cbrt": fnp.cbrt, "log": fnp.log,
            "pow0.5": lambda u: u ** 0.5, "arctan2": lambda u: fnp.arctan2(u, u),
            "abs": fnp.abs}


def _modes(f, x):
    out = {}
    with np.errstate(all="ignore"):
        for name, mode in (("grad", fg.grad), ("jacfwd", fg.jacfwd), ("jacrev", fg.jacrev)):
            out[name] = np.asarray(mode(f)(x))
    return out


@pytest.mark.parametrize("outer", sorted(SINGULAR))
@pytest.mark.parametrize("kink", sorted(KINK_OPS))
def test_forward_and_reverse_agree_at_kinks(kink, outer):
    f = lambda x: SINGULAR[outer](KINK_OPS[kink](x))  # noqa: E731
    for x in (0.0, -1.0):
        with np.errstate(all="ignore"):
            if np.isnan(f(x)):      # no derivative to agree on where the value is NaN
                continue
        results = _modes(f, x)
        ref = results["grad"]
        for name, value in results.items():
            assert _same(value, ref), (kink, outer, x, results)


@pytest.mark.parametrize("op", [
    lambda x: fnp.max(x), lambda x: fnp.min(x), lambda x: fnp.sort(x),
    lambda x: fnp.maximum(x, x[::-1]), lambda x: fnp.minimum(x, 1.0),
    lambda x: fnp.hypot(x, x[::-1]), lambda x: fnp.abs(x)],
    ids=["max", "min", "sort", "maximum", "minimum", "hypot", "abs"])
@pytest.mark.parametrize("x", [[1.0, 1.0, 0.0], [np.nan, 1.0, 0.0], [0.0, 0.0, 0.0],
                               [1.0, np.nan, np.nan]], ids=["tie", "nan", "zeros", "two-nans"])
def test_jacfwd_equals_jacrev_at_ties_and_nans(op, x):
    x = np.array(x)
    with np.errstate(all="ignore"):
        fwd, rev = fg.jacfwd(op)(x), fg.jacrev(op)(x)
    assert _same(fwd, rev), (fwd, rev)


def test_nan_operands_take_the_derivative_of_max_and_min():
    g = fg.grad(lambda x: fnp.max(x))(np.array([1.0, np.nan, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])
    assert fg.grad(fnp.maximum, argnums=(0, 1))(np.nan, 1.0) == (1.0, 0.0)
    assert fg.grad(fnp.minimum, argnums=(0, 1))(1.0, np.nan) == (0.0, 1.0)


@pytest.mark.parametrize("a", [
    [[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 1.0]], np.zeros((2, 2)).tolist(),
    np.arange(1.0, 10.0).reshape(3, 3).tolist(), [[2.0, 1.0], [1.0, 3.0]]],
    ids=["rank1", "diag-singular", "zero", "rank2-3x3", "regular"])
def test_det_derivative_agrees_across_modes_at_singular_matrices(a):
    a = np.array(a)
    g = fg.grad(fnp.linalg.det)(a)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(fg.jacfwd(fnp.linalg.det)(a), g, atol=1e-9)
    np.testing.assert_allclose(fg.jacrev(fnp.linalg.det)(a), g, atol=1e-9)
    # the cofactor matrix: d det / dA_ij by finite differences (det is a polynomial)
    eps = 1e-6
    fd = np.zeros_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            e = np.zeros_like(a)
            e[i, j] = eps
            fd[i, j] = (np.linalg.det(a + e) - np.linalg.det(a - e)) / (2 * eps)
    np.testing.assert_allclose(g, fd, atol=1e-6)


def test_norm_at_zero_is_zero_in_every_mode():
    for mode in (fg.grad, fg.jacfwd, fg.jacrev):
        np.testing.assert_array_equal(mode(fnp.linalg.norm)(np.zeros(3)), np.zeros(3))


# -- NaN propagation through the selecting functions, as NumPy (issue 12 item 3) -------

_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.0]


@pytest.mark.parametrize("name", ["maximum", "minimum", "hypot"])
def test_binary_selecting_functions_match_numpy_on_special_values(name):
    a, b = (np.array(v).ravel() for v in np.meshgrid(_SPECIAL, _SPECIAL))
    expected = getattr(np, name)(a, b)
    with np.errstate(all="ignore"):
        for run in (getattr(fnp, name), fg.jit(getattr(fnp, name))):
            for _ in range(5):                      # every call, past the tier-up
                np.testing.assert_array_equal(run(a, b), expected)


def test_clip_propagates_a_nan_in_the_value_or_a_bound_as_numpy():
    x, lo, hi = (np.array(v).ravel() for v in np.meshgrid(_SPECIAL, _SPECIAL, _SPECIAL))
    with np.errstate(all="ignore"):
        expected = np.clip(x, lo, hi)
        for run in (fnp.clip, fg.jit(fnp.clip)):
            for _ in range(5):
                np.testing.assert_array_equal(run(x, lo, hi), expected)
        assert np.isnan(fnp.clip(1.0, np.nan, 2.0)) and np.isnan(fnp.clip(1.0, 0.0, np.nan))
        assert fnp.clip(1.0, 0.0, 2.0) == 1.0
    # the NaN bound is the selected operand: it takes the derivative, in every mode
    f = lambda v: fnp.clip(v[0], v[1], v[2])  # noqa: E731
    v = np.array([1.0, np.nan, 2.0])
    for mode in (fg.grad, fg.jacfwd, fg.jacrev, lambda g: fg.jit(fg.grad(g))):
        np.testing.assert_array_equal(mode(f)(v), [0.0, 1.0, 0.0])


@pytest.mark.parametrize("name", ["sort", "max", "min", "argmax", "argmin", "nanmax", "nanmin"])
def test_reductions_and_sort_match_numpy_with_nans(name):
    a = np.array([3.0, np.nan, 1.0, np.nan, -0.0, 0.0, -np.inf])
    for run in (getattr(fnp, name), fg.jit(getattr(fnp, name))):
        for _ in range(5):
            np.testing.assert_array_equal(run(a), getattr(np, name)(a))


# -- a zero constant factor wins over an infinite or NaN derivative, in every mode ------

ZERO_FACTOR = {
    "0.0 * log(x)": lambda x: 0.0 * fnp.log(x),
    "log(x) * 0.0": lambda x: fnp.log(x) * 0.0,
    "0.0 * sqrt(x)": lambda x: 0.0 * fnp.sqrt(x),
    "sqrt(x * 0.0)": lambda x: fnp.sqrt(x * 0.0),
    "0.0 * (1 / x)": lambda x: 0.0 * (1.0 / x),
    "sum(log(x) * 0.0)": lambda x: fnp.sum(fnp.log(x) * 0.0),
}


@pytest.mark.parametrize("case", sorted(ZERO_FACTOR))
def test_a_zero_constant_factor_gives_the_same_derivative_in_every_mode(case):
    f = ZERO_FACTOR[case]
    with np.errstate(all="ignore"):
        results = {"grad": fg.grad(f)(0.0), "jacfwd": fg.jacfwd(f)(0.0),
                   "jacrev": fg.jacrev(f)(0.0), "jit(grad)": fg.jit(fg.grad(f))(0.0),
                   "jit(jacfwd)": fg.jit(fg.jacfwd(f))(0.0),
                   "hessian": fg.hessian(f)(1.0)}
    for mode, value in results.items():
        assert value == 0.0, (mode, value)
    # a nonzero constant factor is an ordinary product
    assert fg.grad(lambda x: 2.0 * fnp.log(x))(4.0) == 0.5
    assert fg.jacfwd(lambda x: fnp.log(x) * 2.0)(4.0) == 0.5
    assert fg.hessian(lambda x: 3.0 * x * x)(0.0) == 6.0
