"""fungrad.tree, flatten_util.ravel_pytree, eval_shape, device_get, hvp helpers."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
import hypothesis.extra.numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.flatten_util import ravel_pytree
from fungrad.testing import numerical_jvp


def test_tree_module_names():
    t = {"w": 1.0, "b": [2.0, 3.0]}
    assert fg.tree.leaves(t) == [2.0, 3.0, 1.0]
    assert fg.tree.map(lambda a, b: a + b, t, t) == {"w": 2.0, "b": [4.0, 6.0]}
    leaves, td = fg.tree.flatten(t)
    assert fg.tree.unflatten(td, leaves) == t and fg.tree.structure(t) == td
    assert fg.tree.reduce(lambda a, b: a + b, t) == 6.0
    assert fg.tree.reduce(lambda a, b: a + b, t, 10.0) == 16.0
    assert fg.tree.all([1, (2, True)]) and not fg.tree.all([1, 0])
    outer, inner = fg.tree.structure([0, 0]), fg.tree.structure((0, 0))
    assert fg.tree.transpose(outer, inner, [(1, 2), (3, 4)]) == ([1, 3], [2, 4])
    assert fg.tree.transpose(outer, None, [(1, 2), (3, 4)]) == ([1, 3], [2, 4])
    assert fg.tree.map(lambda x: x, [None, 1.0]) == [None, 1.0]


def test_ravel_pytree_round_trip_and_dtypes():
    t = {"w": np.ones((2, 3)), "b": np.arange(2), "s": np.float32(1.5)}
    flat, unravel = ravel_pytree(t)
    assert flat.shape == (9,) and flat.dtype == np.float64
    np.testing.assert_array_equal(flat, [0, 1, 1.5, 1, 1, 1, 1, 1, 1])
    back = unravel(flat)
    assert back["b"].dtype == np.int64 and back["s"].dtype == np.float32
    assert back["w"].shape == (2, 3)
    f32, _ = ravel_pytree([np.ones(2, np.float32)])
    assert f32.dtype == np.float32
    empty, unravel_empty = ravel_pytree({})
    assert empty.shape == (0,) and unravel_empty(empty) == {}
    with pytest.raises(ValueError, match="length 9"):
        unravel(np.zeros(8))
    with pytest.raises(TypeError, match="dtype float64"):
        unravel(np.zeros(9, np.float32))


@given(data=st.data())
def test_ravel_pytree_is_differentiable_and_traceable(data):
    a = data.draw(hnp.arrays(np.float64, (2, 2), elements=st.floats(-2, 2)), label="a")
    b = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-2, 2)), label="b")
    t = {"a": a, "b": b}
    flat, unravel = ravel_pytree(t)

    def loss(tree):
        v, _ = ravel_pytree(tree)
        return fnp.sum(fnp.sin(v) * fnp.arange(7.0))
    g = fg.grad(loss)(t)
    gflat, _ = ravel_pytree(g)
    np.testing.assert_allclose(gflat, np.cos(flat) * np.arange(7.0), rtol=1e-12)
    jitted = fg.jit(lambda v: unravel(v))(flat)
    np.testing.assert_array_equal(jitted["a"], a)
    # unravel differentiated: the gradient of a function of the unraveled tree
    h = fg.grad(lambda v: fnp.sum(unravel(v)["a"] ** 2))(flat)
    np.testing.assert_allclose(h, np.concatenate([2 * a.ravel(), np.zeros(3)]))


def test_eval_shape():
    out = fg.eval_shape(lambda x, y: {"p": x @ y, "s": fnp.sum(x)},
                        fg.ShapeDtypeStruct((3, 5), np.float32), np.ones((5, 2), np.float32))
    assert out["p"] == fg.ShapeDtypeStruct((3, 2), np.float32)
    assert out["s"].shape == () and out["s"].dtype == np.float32
    inside = fg.jit(lambda x: fnp.zeros(fg.eval_shape(lambda y: y.T, x).shape))(np.ones((2, 3)))
    assert inside.shape == (3, 2)
    with pytest.raises(TypeError, match="eval_shape"):
        fg.eval_shape(lambda x: x, "abc")


@given(data=st.data())
def test_hvp_agrees_with_hessian_and_finite_differences(data):
    x = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1, 1)), label="x")
    v = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1, 1)), label="v")

    def f(z):
        return fnp.sum(fnp.sin(z) * z ** 2) + fnp.sum(z) ** 3
    np.testing.assert_allclose(fg.hvp(f, (x,), (v,)), fg.hessian(f)(x) @ v, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(fg.hessian_vector_product(f)(x, v), fg.hessian(f)(x) @ v,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fg.hvp(f, (x,), (v,)), numerical_jvp(fg.grad(f), (x,), (v,)),
                               rtol=1e-5, atol=1e-6)


def test_hessian_vector_product_argnum_and_elementwise_grad():
    f = lambda a, x: fnp.sum(a * x ** 3)  # noqa: E731
    a, x, v = np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([1.0, 1.0])
    np.testing.assert_allclose(fg.hessian_vector_product(f, argnum=1)(a, x, v), 6 * a * x * v)
    np.testing.assert_allclose(fg.elementwise_grad(fnp.tanh)(x), 1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(fg.elementwise_grad(lambda s, y: s * y ** 2, 1)(3.0, x), 6 * x)
