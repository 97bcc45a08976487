"""The NumPy names of issue 17 (append, gradient, frexp, ldexp, copysign on mixed types,
row_stack) against NumPy, with derivatives against finite differences."""
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.testing import check_grads

finite = st.floats(-1e3, 1e3, allow_subnormal=False)


@settings(max_examples=25)
@given(data=st.data())
def test_gradient_matches_numpy_and_is_linear_in_f(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=3, max_side=6),
                      label="shape")
    f = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-5, 5)), label="f")
    edge_order = data.draw(st.sampled_from([1, 2]), label="edge_order")
    axis = data.draw(st.none() | st.integers(0, len(shape) - 1), label="axis")
    axes = range(len(shape)) if axis is None else [axis]
    kind = data.draw(st.sampled_from(["none", "scalar", "coords"]), label="spacing")
    if kind == "none":
        spacing = ()
    elif kind == "scalar":
        spacing = (data.draw(st.floats(0.1, 3), label="h"),)
    else:
        spacing = tuple(np.cumsum(data.draw(hnp.arrays(
            np.float64, shape[a], elements=st.floats(0.2, 2)), label=f"steps {a}")) for a in axes)
    expected = np.gradient(f, *spacing, axis=axis, edge_order=edge_order)
    fn = lambda f: fnp.gradient(f, *spacing, axis=axis, edge_order=edge_order)  # noqa: E731
    out = fn(f)
    for o, e in zip(out if isinstance(out, list) else [out],
                    expected if isinstance(expected, (list, tuple)) else [expected]):
        np.testing.assert_allclose(o, e, rtol=1e-10, atol=1e-10)
    check_grads(fn, (f,), order=1)


def test_gradient_is_differentiable_in_the_coordinates():
    f = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    x = np.array([0.0, 0.5, 1.7, 2.0, 3.1])
    for edge_order in (1, 2):
        check_grads(lambda x: fnp.gradient(f, x, edge_order=edge_order), (x,), order=1)
        check_grads(lambda h: fnp.gradient(f, h, edge_order=edge_order), (0.7,), order=2)


def test_gradient_errors_and_integers():
    with pytest.raises(ValueError, match="too small"):
        fnp.gradient(np.ones(2), edge_order=2)
    with pytest.raises(ValueError, match="distances must match"):
        fnp.gradient(np.ones(4), np.ones(3))
    out = fnp.gradient(np.array([1, 4, 9, 16]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, np.gradient(np.array([1, 4, 9, 16])))


@settings(max_examples=30)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2), elements=st.floats(
    allow_nan=True, allow_infinity=True)) | hnp.arrays(np.float32, 5, elements=st.floats(
        width=32)))
def test_frexp_matches_numpy_under_jit(x):
    m, e = fg.jit(fnp.frexp)(x)
    expected_m, expected_e = np.frexp(x)
    assert m.dtype == expected_m.dtype and e.dtype == expected_e.dtype
    np.testing.assert_array_equal(m, expected_m)
    np.testing.assert_array_equal(e, expected_e)


@settings(max_examples=30)
@given(x=hnp.arrays(np.float64, 4, elements=finite),
       e=hnp.arrays(np.int64, 4, elements=st.integers(-1100, 1100)))
def test_ldexp_matches_numpy_under_jit(x, e):
    np.testing.assert_array_equal(fg.jit(fnp.ldexp)(x, e), np.ldexp(x, e))


def test_frexp_and_ldexp_derivatives():
    x = np.array([0.3, -5.0, 12.0, 1e-3])
    check_grads(lambda x: fnp.frexp(x)[0], (x,), order=2)
    check_grads(lambda x: fnp.ldexp(x, np.array([3, -2, 0, 10])), (x,), order=2)
    np.testing.assert_allclose(fg.grad(lambda x: fnp.frexp(x)[0])(12.0), 1 / 16)
    assert fg.jit(fnp.ldexp)(np.float32([1.5]), np.array([3])).dtype == np.float32
    with pytest.raises(TypeError, match="integer"):
        fnp.ldexp(1.0, 2.5)


@pytest.mark.parametrize("x1, x2", [
    (np.float32([1, -2]), np.array([-1, 1])), (np.array([1, 2]), -1),
    (np.float32([1, 2]), -1.0), (np.array([1.5, -2.5]), np.float32([-0.0, 3])),
    (np.array([3, -4]), np.array([-1.0, np.inf])),
])
def test_copysign_on_mixed_types_matches_numpy(x1, x2):
    expected = np.copysign(x1, x2)
    for out in (fnp.copysign(x1, x2), fg.jit(lambda a: fnp.copysign(a, x2))(x1)):
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)


def test_append_and_row_stack():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((1, 3), np.int64)
    for args, kw in [((a, b), {}), ((a, b), dict(axis=0)), ((a, [[7.0], [8.0]]), dict(axis=1)),
                     (([1, 2], [[3]]), {})]:
        np.testing.assert_array_equal(fnp.append(*args, **kw), np.append(*args, **kw))
        assert fnp.append(*args, **kw).dtype == np.append(*args, **kw).dtype
    check_grads(lambda a, b: fnp.append(a, b, axis=0) ** 2, (a, b.astype(float)), order=1)
    np.testing.assert_array_equal(fnp.row_stack([a, a]), np.vstack([a, a]))
