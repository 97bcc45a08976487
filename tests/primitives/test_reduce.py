"""Reductions and scans: exact values, the tie and zero conventions of their
derivatives, dtypes, and errors.  (Generic per-primitive checks: test_primitives.py.)"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
from fungrad import lax
from fungrad.errors import FungradTypeError, FungradValueError


def total(x):
    return lax.reduce_sum(x, tuple(range(np.ndim(x) if not hasattr(x, "aval") else x.ndim)))


# --- values ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32])
def test_reductions_match_numpy_and_keep_the_dtype(dtype):
    x = np.array([[3, -1, 4], [1, 5, -9]], dtype=dtype)
    for fn, ref in [(lax.reduce_max, np.max), (lax.reduce_min, np.min),
                    (lax.reduce_prod, np.prod), (lax.reduce_sum, np.sum)]:
        for axes in [(0,), (1,), (0, 1)]:
            out = fn(x, axes)
            np.testing.assert_array_equal(out, ref(x, axis=axes))
            assert np.asarray(out).dtype == dtype


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scans_match_numpy(axis, reverse):
    x = np.array([[3., -1., 4., 0.5], [1., 5., -9., 2.]])
    flip = (lambda a: np.flip(a, axis)) if reverse else (lambda a: a)
    for fn, ref in [(lax.cumsum, np.cumsum), (lax.cumprod, np.cumprod),
                    (lax.cummax, np.maximum.accumulate), (lax.cummin, np.minimum.accumulate)]:
        np.testing.assert_array_equal(fn(x, axis, reverse), flip(ref(flip(x), axis=axis)))


def test_argmax_argmin_return_the_first_index_as_integers():
    x = np.array([[1., 7., 7.], [2., 2., -3.]])
    np.testing.assert_array_equal(lax.argmax(x, 1), [1, 0])
    np.testing.assert_array_equal(lax.argmin(x, 1), [0, 2])
    np.testing.assert_array_equal(lax.argmax(x, 0), [1, 0, 0])
    assert np.asarray(lax.argmax(x, 1)).dtype == np.int64
    assert np.asarray(lax.argmax(x, 1, np.int32)).dtype == np.int32
    assert lax.argmax(np.array([1., np.nan, 3.]), 0) == 1      # NaN counts as the maximum
    assert lax.argmax(np.array([False, True, True]), 0) == 1
    jaxpr = fg.make_jaxpr(lambda x: lax.argmax(x, 0, np.int32))(np.ones(3))
    assert str(jaxpr.jaxpr.outvars[0].aval) == "i32[]"


def test_empty_reductions_give_the_identity():
    empty = np.zeros((0, 3))
    np.testing.assert_array_equal(lax.reduce_max(empty, (0,)), [-np.inf] * 3)
    np.testing.assert_array_equal(lax.reduce_min(empty, (0,)), [np.inf] * 3)
    np.testing.assert_array_equal(lax.reduce_prod(empty, (0,)), [1.] * 3)
    assert lax.reduce_max(np.zeros(0, np.int32), (0,)) == np.iinfo(np.int32).min
    with pytest.raises(FungradValueError, match="argmax"):
        lax.argmax(empty, 0)


def test_bool_reductions():
    x = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(lax.reduce_and(x, (1,)), [False, True])
    np.testing.assert_array_equal(lax.reduce_or(x, (0,)), [True, True])
    with pytest.raises(FungradTypeError, match="reduce_and"):
        fg.make_jaxpr(lambda x: lax.reduce_and(x, (0,)))(np.ones(2))


def test_errors_name_the_primitive():
    with pytest.raises(FungradValueError, match="axis"):
        lax.reduce_max(np.ones((2, 2)), (2,))
    with pytest.raises(FungradValueError, match="reduce_max: repeated axis"):
        lax.reduce_max(np.ones((2, 2)), (0, -2))
    with pytest.raises(FungradValueError, match="cumsum"):
        lax.cumsum(np.ones(3), 1)
    with pytest.raises(FungradTypeError, match="cumsum"):
        fg.make_jaxpr(lambda x: lax.cumsum(x, 0))(np.ones(3, bool))


# --- derivative conventions ----------------------------------------------------------------

def test_max_and_min_split_ties_evenly():
    np.testing.assert_allclose(fg.grad(lambda x: lax.reduce_max(x, (0,)))(np.array([1., 3., 3.])),
                               [0., 0.5, 0.5])
    np.testing.assert_allclose(fg.grad(lambda x: lax.reduce_min(x, (0,)))(np.full(3, 2.)),
                               [1 / 3] * 3)
    x = np.array([[1., 5., 5.], [7., 7., 2.]])
    g = fg.grad(lambda x: total(lax.mul(lax.reduce_max(x, (1,)), np.array([1., 10.]))))(x)
    np.testing.assert_allclose(g, [[0., .5, .5], [5., 5., 0.]])
    # jvp uses the same weights
    _, t = fg.jvp(lambda x: lax.reduce_max(x, (0, 1)), (x,), (np.arange(6.).reshape(2, 3),))
    np.testing.assert_allclose(t, (3. + 4.) / 2)


def test_cummax_splits_ties_within_each_prefix():
    x = np.array([1., 3., 3., 2.])
    g = fg.grad(lambda x: total(lax.mul(lax.cummax(x, 0), np.array([1., 2., 3., 4.]))))(x)
    np.testing.assert_allclose(g, [1., 2 + 1.5 + 2, 1.5 + 2, 0.])
    g = fg.grad(lambda x: total(lax.cummin(x, 0, reverse=True)))(x)
    np.testing.assert_allclose(g, [1., 0., 0., 3.])


def test_prod_gradient_is_exact_with_zeros():
    prod = lambda x: lax.reduce_prod(x, (0,))  # noqa: E731
    np.testing.assert_array_equal(fg.grad(prod)(np.array([2., 0., 3.])), [0., 6., 0.])
    np.testing.assert_array_equal(fg.grad(prod)(np.array([0., 0., 3.])), [0., 0., 0.])
    h = fg.hessian(prod)(np.array([0., 0., 3.]))
    np.testing.assert_array_equal(h, [[0., 3., 0.], [3., 0., 0.], [0., 0., 0.]])
    assert np.all(np.isfinite(fg.hessian(prod)(np.zeros(4))))


def _others_product(x, axes):
    """d prod / d x_i by brute force: the product with x_i replaced by 1."""
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        y = x.copy()
        y[i] = 1.0
        kept = tuple(i[d] if d not in axes else slice(None) for d in range(x.ndim))
        out[i] = np.prod(y[kept])
    return out


@settings(max_examples=25)
@given(data=st.data())
def test_prod_gradient_matches_brute_force(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0., 1., -2., 0.5, 3.])),
                  label="x")
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1),
                                  label="axes")))
    g = fg.grad(lambda x: total(lax.reduce_prod(x, axes)))(x)
    np.testing.assert_allclose(g, _others_product(x, axes), rtol=1e-12)


@settings(max_examples=25)
@given(data=st.data())
def test_cumprod_jacobian_matches_brute_force(data):
    n = data.draw(st.integers(1, 6), label="n")
    x = data.draw(hnp.arrays(np.float64, (n,), elements=st.sampled_from([0., 1., -2., 0.5, 3.])),
                  label="x")
    reverse = data.draw(st.booleans(), label="reverse")
    expected = np.zeros((n, n))
    for k in range(n):
        prefix = range(k, n) if reverse else range(k + 1)
        for i in prefix:
            expected[k, i] = np.prod([x[j] for j in prefix if j != i])
    np.testing.assert_allclose(fg.jacrev(lambda x: lax.cumprod(x, 0, reverse))(x), expected)
    np.testing.assert_allclose(fg.jacfwd(lambda x: lax.cumprod(x, 0, reverse))(x), expected)


def test_cumsum_gradient_is_a_reverse_cumsum():
    w = np.array([1., 2., 3.])
    np.testing.assert_array_equal(
        fg.grad(lambda x: total(lax.mul(lax.cumsum(x, 0), w)))(np.zeros(3)), [6., 5., 3.])
    np.testing.assert_array_equal(
        fg.grad(lambda x: total(lax.mul(lax.cumsum(x, 0, True), w)))(np.zeros(3)), [1., 3., 6.])


def test_argmax_is_not_differentiable():
    def f(x):
        i = lax.convert_element_type(lax.argmax(x, 0), np.float64)
        return lax.add(lax.reduce_sum(x, (0,)), i)
    np.testing.assert_array_equal(fg.grad(f)(np.array([1., 3., 2.])), [1., 1., 1.])


@pytest.mark.parametrize("fn", [lambda x: lax.reduce_max(x, (0,)),
                                lambda x: lax.reduce_prod(x, (0,)),
                                lambda x: total(lax.cumprod(x, 0)),
                                lambda x: total(lax.cummin(x, 0))])
def test_float32_stays_float32(fn):
    x = np.array([1.5, 0., 2.], np.float32)
    assert np.asarray(fn(x)).dtype == np.float32
    assert fg.grad(fn)(x).dtype == np.float32


def test_reductions_are_differentiable_under_vmap():
    x = np.array([[1., 2., 2.], [0., 4., 3.]])
    got = fg.vmap(fg.grad(lambda r: lax.reduce_max(r, (0,))))(x)
    np.testing.assert_allclose(got, [[0., .5, .5], [0., 1., 0.]])
    got = fg.vmap(fg.grad(lambda r: lax.reduce_prod(r, (0,))), in_axes=1)(x.T)
    np.testing.assert_allclose(got, [[4., 2., 2.], [12., 0., 0.]])


@settings(max_examples=25)
@given(data=st.data())
def test_cummax_cummin_jacobians_match_the_tie_splitting_definition(data):
    n = data.draw(st.integers(1, 6), label="n")
    x = data.draw(hnp.arrays(np.float64, (n,), elements=st.sampled_from([0., 1., 2., -1.])),
                  label="x")     # ties are common
    reverse = data.draw(st.booleans(), label="reverse")
    use_max = data.draw(st.booleans(), label="max")
    fn = lax.cummax if use_max else lax.cummin
    pick = np.max if use_max else np.min
    expected = np.zeros((n, n))
    for k in range(n):
        prefix = list(range(k, n)) if reverse else list(range(k + 1))
        best = pick(x[prefix])
        tied = [i for i in prefix if x[i] == best]
        expected[k, tied] = 1.0 / len(tied)
    np.testing.assert_allclose(fg.jacrev(lambda x: fn(x, 0, reverse))(x), expected)
    np.testing.assert_allclose(fg.jacfwd(lambda x: fn(x, 0, reverse))(x), expected)


def test_scan_gradients_scale_to_long_axes():
    # O(n log n) rules: no n x n intermediate for cummax / cumprod
    x = np.random.default_rng(0).uniform(0.5, 1.5, 200_000)
    g = fg.grad(lambda x: total(lax.cummax(x, 0)))(x)
    assert g.shape == x.shape and np.isclose(g.sum(), x.size)
    g = fg.grad(lambda x: total(lax.cumprod(x, 0)))(x)
    assert np.all(np.isfinite(g))
