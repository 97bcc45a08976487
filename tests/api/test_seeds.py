"""The seed tutorials' computations (../shared/seeds/), with their exact numbers."""
import numpy as np

import fungrad as fg
import fungrad.numpy as fnp


def test_scalar_chain_rule_is_8():
    assert fg.grad(lambda x: (x + 2) ** 2 + 3)(2.0) == 8.0


def test_x2_plus_x_squared_is_8_and_accumulates_to_16():
    f = lambda x: x * 2 + x ** 2 + 3  # noqa: E731
    g = fg.grad(f)(3.0)
    assert g == 8.0
    assert g + fg.grad(f)(3.0) == 16.0     # PyTorch's accumulation, made explicit


def test_pullback_of_ones_twice_gives_4_2_then_8_4():
    out, pullback = fg.vjp(lambda inp: (inp + 1) ** 2, np.eye(5))
    (first,) = pullback(np.ones_like(out))
    expected = np.full((5, 5), 2.0) + 2.0 * np.eye(5)
    np.testing.assert_array_equal(first, expected)
    (second,) = pullback(np.ones_like(out))
    np.testing.assert_array_equal(first + second, 2 * expected)


def test_transposed_eye_4_5_variant():
    out, pullback = fg.vjp(lambda inp: ((inp + 1) ** 2).T, np.eye(4, 5))
    assert out.shape == (5, 4)
    (g,) = pullback(np.ones_like(out))
    np.testing.assert_array_equal(g, 2.0 + 2.0 * np.eye(4, 5))


def test_mean_of_y_minus_xw_gradients():
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(10, 20)), rng.normal(size=(10, 5)), rng.normal(size=(20, 5))
    gx, gy, gw = fg.grad(lambda x, y, w: fnp.mean(y - fnp.matmul(x, w)), argnums=(0, 1, 2))(
        x, y, w)
    np.testing.assert_allclose(gy, np.full((10, 5), 0.02))
    np.testing.assert_allclose(gx, np.tile(-w.sum(axis=1) / 50, (10, 1)))
    np.testing.assert_allclose(gw, np.tile(-x.sum(axis=0)[:, None] / 50, (1, 5)))


def test_no_perturbation_confusion():
    f = lambda x: x * fg.grad(lambda y: x * y)(3.0)  # noqa: E731
    for x in (0.5, 2.0, -3.0):
        assert fg.grad(f)(x) == 2 * x


def test_third_derivative():
    assert fg.grad(fg.grad(fg.grad(lambda x: x ** 4)))(2.0) == 48.0


def test_jax_device_names_are_identities_on_numpy_arrays():
    tree = {"a": [1.0, 2.0], "b": np.ones(2)}
    placed = fg.device_put(tree)
    assert isinstance(placed["b"], fg.Array) and isinstance(placed["a"][0], np.ndarray)
    g = fg.grad(lambda x: x * x)(3.0)
    assert fg.block_until_ready(g) is g
