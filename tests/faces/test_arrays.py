"""fungrad.Array: results carry JAX's `.at[...]` and `.block_until_ready()` and are
NumPy arrays in every other respect."""
import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st
import hypothesis.extra.numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp


# each makes its result when its test runs (not at collection, where a jit would
# compile a kernel in every pytest process)
_RESULTS = {
    "jit": lambda x: fg.jit(lambda v: 2 * v)(x),
    "jit tuple": lambda x: fg.jit(lambda v: (v, v + 1))(x)[1],
    "jit dict": lambda x: fg.jit(lambda v: {"a": v * 3})(x)["a"],
    "grad": lambda x: fg.grad(lambda v: fnp.sum(v ** 2))(x),
    "vmap": lambda x: fg.vmap(lambda v: v * 2)(x),
    "jacfwd": lambda x: fg.jacfwd(lambda v: v * 2)(x)[0],
    "jvp": lambda x: fg.jvp(lambda v: v * 2, (x,), (x,))[1],
    "vjp": lambda x: fg.vjp(lambda v: v * 2, x)[1](x)[0],
    "fnp eager": lambda x: fnp.sin(x),
    "device_put": lambda x: fg.device_put(x),
}


@pytest.mark.kernels
@pytest.mark.parametrize("where", list(_RESULTS))
def test_results_of_fungrad_functions_have_at_and_block_until_ready(where):
    y = _RESULTS[where](np.arange(4.0))
    assert isinstance(y, fg.Array) and isinstance(y, np.ndarray)
    before = np.array(y)
    updated = y.at[1].set(5.0)
    np.testing.assert_array_equal(np.asarray(y), before)          # functional: y unchanged
    expected = before.copy()
    expected[1] = 5.0
    np.testing.assert_array_equal(updated, expected)
    assert y.block_until_ready() is y


def test_at_updates_chain_and_cover_jax_methods():
    y = fg.jit(lambda v: v + 0.0)(np.zeros(4))
    z = y.at[0].set(1.0).at[1].add(2.0).at[2].set(3.0).at[2].multiply(2.0)
    np.testing.assert_array_equal(z, [1.0, 2.0, 6.0, 0.0])
    assert isinstance(z, fg.Array)
    np.testing.assert_array_equal(y.at[np.array([0, 0, 1])].add(1.0), [2.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(y.at[1:3].get(), [0.0, 0.0])
    np.testing.assert_array_equal(y.at[3].max(-1.0), [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(y.at[3].min(-1.0), [0.0, 0.0, 0.0, -1.0])
    with pytest.raises(IndexError):
        y.at[4].set(1.0)


def test_array_is_numpy_in_every_other_respect():
    y = fg.jit(lambda v: v * 1.0)(np.arange(3.0))
    assert repr(y) == "array([0., 1., 2.])" and str(y) == "[0. 1. 2.]"
    assert isinstance(np.sin(y), fg.Array) and isinstance(y[1:], fg.Array)
    assert float(y[2]) == 2.0 and y.tolist() == [0.0, 1.0, 2.0]
    back = pickle.loads(pickle.dumps(y))
    np.testing.assert_array_equal(back, y)
    assert type(fg.device_get(y)) is np.ndarray
    assert fg.device_get({"a": y})["a"].__class__ is np.ndarray


def test_results_fed_back_reuse_the_compiled_trace():
    f = fg.jit(lambda v: v * 2.0)
    y = f(np.ones(3))
    z = f(y)
    assert len(f._cache) == 1
    np.testing.assert_array_equal(z, [4.0, 4.0, 4.0])
    g = fg.grad(lambda v: fnp.sum(v * v))
    np.testing.assert_array_equal(g(g(np.ones(2))), [4.0, 4.0])


def test_closed_over_array_results_work_as_jit_constants():
    w = fg.jit(lambda v: v + 1.0)(np.ones(3))
    h = fg.jit(lambda v: v * w)
    np.testing.assert_array_equal(h(np.ones(3)), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(h(np.ones(3)), [2.0, 2.0, 2.0])


def test_traced_at_inside_jit_of_a_returned_array():
    y = fg.jit(lambda v: v * 1.0)(np.zeros(3))
    f = fg.jit(lambda v, i: v.at[i].set(7.0))
    np.testing.assert_array_equal(f(y, 2), [0.0, 0.0, 7.0])


@given(data=st.data())
def test_at_set_on_results_agrees_with_numpy_assignment(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-5, 5)), label="x")
    i = data.draw(st.integers(-shape[0], shape[0] - 1), label="i")
    v = data.draw(st.floats(-5, 5), label="v")
    y = fg.jit(lambda a: a * 1.0)(x)
    expected = x.copy()
    expected[i] = v
    np.testing.assert_array_equal(y.at[i].set(v), expected)
    expected = x.copy()
    expected[i] += v
    np.testing.assert_array_equal(y.at[i].add(v), expected)
