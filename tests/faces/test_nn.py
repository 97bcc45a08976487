"""fungrad.nn: values against reference formulas (scipy.special), gradients against
finite differences, stability at extreme inputs, dtype preservation."""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn
from fungrad.testing import numerical_jvp


def numerical_grad(f, x, eps=1e-6):
    """Central finite differences of scalar f at float64 array x."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        g[i] = (float(f(x + step)) - float(f(x - step))) / (2 * eps)
    return g


def _sum_of(f, weights):
    return lambda x: fnp.sum(fnp.multiply(f(x), weights))


# ---------------------------------------------------------------------------
# values against references
# ---------------------------------------------------------------------------

X = np.array([-30.0, -3.0, -0.5, 0.0, 0.25, 2.0, 30.0])

REFERENCES = {
    "sigmoid": (nn.sigmoid, sp.expit),
    "log_sigmoid": (nn.log_sigmoid, sp.log_expit),
    "softplus": (nn.softplus, lambda x: np.logaddexp(0.0, x)),
    "relu": (nn.relu, lambda x: np.maximum(x, 0)),
    "relu6": (nn.relu6, lambda x: np.clip(x, 0, 6)),
    "gelu_tanh": (nn.gelu, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi)
                                                             * (x + 0.044715 * x ** 3)))),
    "gelu_exact": (lambda x: nn.gelu(x, approximate=False),
                   lambda x: 0.5 * x * sp.erfc(-x / np.sqrt(2))),
    "silu": (nn.silu, lambda x: x * sp.expit(x)),
    "swish": (nn.swish, lambda x: x * sp.expit(x)),
    "elu": (nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "leaky_relu": (nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    "softmax": (nn.softmax, sp.softmax),
    "log_softmax": (nn.log_softmax, sp.log_softmax),
    "logsumexp": (nn.logsumexp, sp.logsumexp),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_values_match_reference(name):
    ours, ref = REFERENCES[name]
    np.testing.assert_allclose(np.asarray(ours(X)), ref(X), rtol=1e-12, atol=1e-300)


def test_binary_functions_match_reference():
    x = np.array([0.0, 0.0, 1.5, -2.0, 3.0])
    y = np.array([0.0, 2.0, 0.5, 7.0, -0.5])
    np.testing.assert_allclose(nn.logaddexp(x, y), np.logaddexp(x, y), rtol=1e-14)
    yp = np.abs(y)
    np.testing.assert_allclose(nn.xlogy(x, yp), sp.xlogy(x, yp), rtol=1e-14)
    np.testing.assert_allclose(nn.xlog1py(x, yp), sp.xlog1py(x, yp), rtol=1e-14)
    assert nn.xlogy(0.0, np.inf) == 0.0 and nn.xlog1py(0.0, -1.0) == 0.0


def test_logsumexp_axis_b_keepdims_and_sign_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 4)) * 10
    b = rng.normal(size=(3, 4))
    for axis in (None, 0, 1, -1, (0, 1)):
        for keepdims in (False, True):
            np.testing.assert_allclose(nn.logsumexp(a, axis=axis, keepdims=keepdims),
                                       sp.logsumexp(a, axis=axis, keepdims=keepdims))
    out, sign = nn.logsumexp(a, axis=1, b=b, return_sign=True)
    ref_out, ref_sign = sp.logsumexp(a, axis=1, b=b, return_sign=True)
    np.testing.assert_allclose(out, ref_out)
    np.testing.assert_array_equal(sign, ref_sign)


def test_softmax_axis_argument():
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(nn.softmax(a, axis=0), sp.softmax(a, axis=0))
    np.testing.assert_allclose(nn.log_softmax(a, axis=0), sp.log_softmax(a, axis=0))


def test_one_hot():
    np.testing.assert_array_equal(nn.one_hot(np.array([0, 2, 5, -1]), 3),
                                  [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert nn.one_hot(np.array([1]), 2, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(nn.one_hot(np.array([0, 1]), 3, axis=0),
                                  [[1, 0], [0, 1], [0, 0]])
    with pytest.raises(TypeError):
        nn.one_hot(np.array([0.5]), 2)


def test_losses_match_formulas():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 0.99, size=6)
    t = rng.uniform(0, 1, size=6)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(nn.binary_cross_entropy(p, t), bce.mean())
    np.testing.assert_allclose(nn.binary_cross_entropy(p, t, reduction="sum"), bce.sum())
    np.testing.assert_allclose(nn.binary_cross_entropy(p, t, reduction="none"), bce)
    # clamped like PyTorch: log(0) counts as -100
    assert float(nn.binary_cross_entropy(np.array([0.0]), np.array([1.0]))) == 100.0
    assert float(nn.binary_cross_entropy(np.array([1.0]), np.array([0.0]))) == 100.0
    z = rng.normal(size=6) * 5
    np.testing.assert_allclose(nn.binary_cross_entropy_with_logits(z, t),
                               np.mean(np.logaddexp(0, z) - z * t))
    d = rng.normal(size=6) * 2
    np.testing.assert_allclose(nn.mse_loss(d, 0 * d), np.mean(d ** 2))
    np.testing.assert_allclose(nn.l1_loss(d, 0 * d, reduction="sum"), np.abs(d).sum())
    huber = np.where(np.abs(d) < 1.5, 0.5 * d ** 2, 1.5 * (np.abs(d) - 0.75))
    np.testing.assert_allclose(nn.huber_loss(d, 0 * d, delta=1.5, reduction="none"), huber)
    with pytest.raises(ValueError, match="reduction"):
        nn.mse_loss(d, d, reduction="avg")


def test_softmax_cross_entropy_int_labels_equal_one_hot():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 5)) * 3
    labels = np.array([0, 4, 2, 2])
    expected = -sp.log_softmax(logits, axis=-1)[np.arange(4), labels]
    np.testing.assert_allclose(nn.softmax_cross_entropy(logits, labels, reduction="none"),
                               expected)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(nn.softmax_cross_entropy(logits, onehot), expected.mean())
    g_int = fg.grad(nn.softmax_cross_entropy)(logits, labels)
    g_hot = fg.grad(nn.softmax_cross_entropy)(logits, onehot)
    np.testing.assert_allclose(g_int, g_hot)
    np.testing.assert_allclose(g_int, (sp.softmax(logits, axis=-1) - onehot) / 4)


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

UNARY = {
    "sigmoid": nn.sigmoid, "log_sigmoid": nn.log_sigmoid, "softplus": nn.softplus,
    "gelu_tanh": nn.gelu, "gelu_exact": lambda x: nn.gelu(x, approximate=False),
    "silu": nn.silu, "elu": nn.elu, "leaky_relu": nn.leaky_relu, "relu": nn.relu,
    "relu6": nn.relu6, "softmax": nn.softmax, "log_softmax": nn.log_softmax,
    "logsumexp": lambda x: nn.logsumexp(x, axis=-1, keepdims=True),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=15)
@given(data=st.data())
def test_gradient_matches_finite_differences(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), label="shape")
    # keep away from kinks (0 and 6) so central differences are accurate
    elements = st.floats(-8, 8).filter(lambda v: abs(v) > 1e-2 and abs(v - 6) > 1e-2)
    x = data.draw(hnp.arrays(np.float64, shape, elements=elements), label="x")
    weights = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)),
                        label="weights")
    f = _sum_of(UNARY[name], weights)
    np.testing.assert_allclose(fg.grad(f)(x), numerical_grad(f, x), rtol=1e-5, atol=1e-7)


LOSSES = {
    "bce_logits": lambda z, y: nn.binary_cross_entropy_with_logits(z, y),
    "bce": lambda z, y: nn.binary_cross_entropy(nn.sigmoid(z), y),
    "mse": nn.mse_loss, "l1": nn.l1_loss, "huber": lambda z, y: nn.huber_loss(z, y, 0.7),
    "logaddexp": lambda z, y: fnp.sum(nn.logaddexp(z, 3 * y)),
    "xlogy": lambda z, y: fnp.sum(nn.xlogy(z, y + 0.5)),
    "xlog1py": lambda z, y: fnp.sum(nn.xlog1py(z, y)),
    "softmax_xent": lambda z, y: nn.softmax_cross_entropy(z, nn.softmax(y * 4)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@settings(max_examples=15)
@given(data=st.data())
def test_loss_gradients_in_both_arguments(name, data):
    n = data.draw(st.integers(1, 5), label="n")
    z = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-5, 5)
                             .filter(lambda v: abs(v) > 1e-2)), label="z")
    y = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.05, 0.95)), label="y")
    if name in ("l1", "huber"):    # away from the kinks |z - y| = 0 and = delta
        y = np.where(np.abs(np.abs(z - y) - 0.7) < 1e-2, y + 0.05, y)
        y = np.where(np.abs(z - y) < 1e-2, y + 0.05, y)
    f = LOSSES[name]
    gz, gy = fg.grad(f, argnums=(0, 1))(z, y)
    np.testing.assert_allclose(gz, numerical_grad(lambda v: f(v, y), z), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gy, numerical_grad(lambda v: f(z, v), y), rtol=1e-5, atol=1e-7)


def test_seed_bce_gradient_is_sigmoid_minus_y_over_n():
    rng = np.random.default_rng(0)
    x, y = np.ones(5), np.zeros(3)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)

    def loss(w, b):
        return nn.binary_cross_entropy_with_logits(fnp.matmul(x, w) + b, y)
    gw, gb = fg.grad(loss, argnums=(0, 1))(w, b)
    closed_form = (sp.expit(x @ w + b) - y) / 3
    np.testing.assert_allclose(gb, closed_form, rtol=1e-14)
    np.testing.assert_allclose(gw, np.outer(x, closed_form), rtol=1e-14)


def test_kink_conventions():
    assert fg.grad(nn.relu)(0.0) == 0.0
    assert fg.grad(nn.leaky_relu)(0.0) == 1.0
    assert fg.grad(nn.softplus)(0.0) == 0.5
    assert fg.grad(lambda z: nn.binary_cross_entropy_with_logits(z, 1.0))(0.0) == -0.5
    assert fg.grad(lambda z: nn.binary_cross_entropy_with_logits(z, 0.0))(0.0) == 0.5
    assert fg.grad(nn.logaddexp, argnums=(0, 1))(2.0, 2.0) == (0.5, 0.5)
    assert fg.grad(lambda d: nn.l1_loss(d, 0.0))(0.0) == 0.0


# ---------------------------------------------------------------------------
# stability at extreme inputs
# ---------------------------------------------------------------------------

EXTREMES = [0.0, 17.0, 40.0, 100.0, 800.0, np.inf]

# name -> (function of one scalar, whether +inf / -inf give a finite value);
# None: not checked at that infinity (softmax of [inf, 0] is inf/inf, NaN as in JAX)
STABLE = {
    "sigmoid": (nn.sigmoid, True, True),
    "log_sigmoid": (nn.log_sigmoid, True, False),
    "softplus": (nn.softplus, False, True),
    "relu": (nn.relu, False, True),
    "relu6": (nn.relu6, True, True),
    "gelu_tanh": (nn.gelu, False, True),
    "gelu_exact": (lambda z: nn.gelu(z, approximate=False), False, True),
    "silu": (nn.silu, False, True),
    "elu": (nn.elu, False, True),
    "leaky_relu": (nn.leaky_relu, False, False),
    "bce_logits_y0": (lambda z: nn.binary_cross_entropy_with_logits(z, 0.0), False, True),
    "bce_logits_y1": (lambda z: nn.binary_cross_entropy_with_logits(z, 1.0), True, False),
    "bce_logits_y_half": (lambda z: nn.binary_cross_entropy_with_logits(z, 0.5), False, False),
    "logsumexp_pair": (lambda z: nn.logsumexp(fnp.stack([z, fnp.zeros_like(z)])), None, True),
    "logsumexp_twin": (lambda z: nn.logsumexp(fnp.stack([z, z])), None, None),
    "softmax_first": (lambda z: nn.softmax(fnp.stack([z, fnp.zeros_like(z)]))[0], None, True),
    "log_softmax_first": (lambda z: nn.log_softmax(fnp.stack([z, fnp.zeros_like(z)]))[0],
                          None, False),
    "logaddexp": (lambda z: nn.logaddexp(z, 1.0), False, True),
    "softmax_xent": (lambda z: nn.softmax_cross_entropy(
        fnp.stack([z, fnp.zeros_like(z)]), np.array(1)), None, True),
    "binary_cross_entropy": (lambda z: nn.binary_cross_entropy(nn.sigmoid(z), 0.0), True, True),
    "xlogy": (lambda z: nn.xlogy(0.0, nn.relu(z)), True, True),
}


def _finite_expected(name, v):
    _, pos_ok, neg_ok = STABLE[name]
    if np.isinf(v):
        return pos_ok if v > 0 else neg_ok
    return True


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(STABLE))
def test_finite_values_and_gradients_at_extremes(name, dtype):
    f = STABLE[name][0]
    for magnitude in EXTREMES:
        for v in {magnitude, -magnitude}:
            if _finite_expected(name, v) is None:
                continue
            z = dtype(v)
            value = f(z)
            g = fg.grad(f)(z)
            assert np.asarray(g).dtype == dtype, (name, v)
            assert np.asarray(value).dtype == dtype, (name, v)
            assert np.isfinite(g), f"{name}: gradient {g} at {v} ({dtype.__name__})"
            if _finite_expected(name, v):
                assert np.isfinite(value), f"{name}: value {value} at {v} ({dtype.__name__})"
            else:
                assert not np.isnan(value), f"{name}: NaN value at {v}"


def test_extreme_gradient_values():
    assert fg.grad(nn.softplus)(800.0) == 1.0 and fg.grad(nn.softplus)(-np.inf) == 0.0
    assert fg.grad(nn.sigmoid)(np.inf) == 0.0
    bce1 = fg.grad(lambda z: nn.binary_cross_entropy_with_logits(z, 1.0))
    assert bce1(np.inf) == 0.0 and bce1(-np.inf) == -1.0
    assert float(nn.binary_cross_entropy_with_logits(np.inf, 1.0)) == 0.0
    assert fg.grad(nn.gelu)(np.inf) == 1.0 and fg.grad(nn.gelu)(-np.inf) == 0.0


def test_logsumexp_large_equal_inputs():
    a = np.array([1000.0, 1000.0])
    np.testing.assert_allclose(float(nn.logsumexp(a)), 1000.0 + np.log(2.0), rtol=1e-15)
    np.testing.assert_array_equal(fg.grad(nn.logsumexp)(a), [0.5, 0.5])
    np.testing.assert_allclose(nn.softmax(np.array([800.0, 800.0, -800.0])), [0.5, 0.5, 0.0])


def test_logsumexp_all_minus_inf_gives_minus_inf_and_zero_gradient():
    a = np.full(3, -np.inf)
    assert nn.logsumexp(a) == -np.inf
    np.testing.assert_array_equal(fg.grad(nn.logsumexp)(a), np.zeros(3))
    a32 = np.full((2, 3), -np.inf, dtype=np.float32)
    g = fg.grad(lambda a: fnp.sum(nn.logsumexp(a, axis=1)))(a32)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_float32_stays_float32(name):
    x = np.array([-3.0, 0.5, 2.0], dtype=np.float32)
    out = UNARY[name](x)
    assert np.asarray(out).dtype == np.float32
    assert fg.grad(lambda x: fnp.sum(UNARY[name](x)))(x).dtype == np.float32


def test_float32_losses_stay_float32():
    z = np.array([-3.0, 0.5, 2.0], dtype=np.float32)
    y = np.array([0.0, 1.0, 0.5], dtype=np.float32)
    for loss in (nn.binary_cross_entropy_with_logits, nn.mse_loss, nn.l1_loss, nn.huber_loss,
                 lambda z, y: nn.binary_cross_entropy(nn.sigmoid(z), y)):
        assert np.asarray(loss(z, y)).dtype == np.float32
        assert fg.grad(loss)(z, y).dtype == np.float32


def test_integer_inputs_become_float64():
    assert np.asarray(nn.sigmoid(np.array([0, 1]))).dtype == np.float64
    assert np.asarray(nn.relu(3)).dtype == np.float64


def test_works_under_vmap_and_jaxpr():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(fg.vmap(nn.logsumexp)(x), sp.logsumexp(x, axis=1))
    text = str(fg.make_jaxpr(nn.logsumexp)(x))
    assert "stop_gradient" in text and "reduce_max" in text   # the shift is a constant


def test_jit_agrees_with_eager_at_extremes():
    z = np.array([-np.inf, -800.0, -3.0, 0.0, 2.0, 800.0, np.inf])
    y = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0])
    dloss = fg.grad(lambda z: nn.binary_cross_entropy_with_logits(z, y))
    np.testing.assert_array_equal(fg.jit(dloss)(z), dloss(z))
    a = np.array([[1000.0, 1000.0], [-np.inf, -np.inf]])
    dlse = fg.grad(lambda a: fnp.sum(nn.logsumexp(a, axis=1)))
    np.testing.assert_array_equal(fg.jit(dlse)(a), [[0.5, 0.5], [0.0, 0.0]])


# jax.nn activations added as compositions (values checked against jax.nn 0.10 while
# writing; here against their formulas, with derivatives against finite differences)
_SELU_A, _SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_MORE = {
    "tanh": np.tanh,
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "soft_sign": lambda x: x / (np.abs(x) + 1),
    "selu": lambda x: _SELU_S * np.where(x > 0, x, _SELU_A * np.expm1(x)),
    "celu": lambda x: np.maximum(x, 0) + np.minimum(np.expm1(x), 0),
    "glu": lambda x: x[..., :x.shape[-1] // 2] / (1 + np.exp(-x[..., x.shape[-1] // 2:])),
    "standardize": lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(
        x.var(-1, keepdims=True) + 1e-5),
}


@pytest.mark.parametrize("name", list(_MORE))
def test_more_jax_nn_activations(name):
    fn = getattr(fg.nn, name)
    x = np.array([[-2.5, -0.7, 0.3, 1.9], [0.2, -1.1, 2.2, 0.05]])
    np.testing.assert_allclose(fn(x), _MORE[name](x), rtol=1e-12, atol=1e-14)
    t = np.linspace(-1, 1, 8).reshape(2, 4)
    out, pullback = fg.vjp(fn, x)
    ct = np.cos(np.arange(out.size)).reshape(out.shape)
    np.testing.assert_allclose(np.vdot(pullback(ct)[0], t),
                               np.vdot(ct, numerical_jvp(fn, (x,), (t,))), rtol=1e-6)
