"""fungrad.vmap against a Python loop over the batch axis: elementwise programs,
reductions, matmul, in_axes/out_axes (None and negative), nesting, vmap of grad,
pytrees, and the size errors."""
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
from fungrad.backend.numba_jit import FungradKernelWarning
import fungrad.numpy as fnp

FLOATS = st.floats(-2, 2, allow_subnormal=False)


def loop(f, args, in_axes, out_axis=0, n=None):
    """The reference: call f once per batch index and stack along out_axis."""
    if n is None:
        n = next(a.shape[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = []
    for i in range(n):
        outs.append(f(*[a if ax is None else np.take(a, i, axis=ax)
                        for a, ax in zip(args, in_axes)]))
    return np.stack([np.asarray(o) for o in outs], axis=out_axis)


def draw_batched(data, shape, n, label, allow_none=True):
    """An array of per-example `shape` with a batch axis of size n at a drawn position
    (reported as a negative axis half the time), or unbatched (axis None)."""
    choices = list(range(len(shape) + 1)) + ([None] if allow_none else [])
    ax = data.draw(st.sampled_from(choices), label=f"{label}_axis")
    full = shape if ax is None else shape[:ax] + (n,) + shape[ax:]
    x = data.draw(hnp.arrays(np.float64, full, elements=FLOATS), label=label)
    if ax is not None and data.draw(st.booleans(), label=f"{label}_negative_axis"):
        ax = ax - len(full)
    return x, ax


def out_axis_for(data, ndim):
    ax = data.draw(st.integers(0, ndim), label="out_axis")
    return ax - (ndim + 1) if data.draw(st.booleans(), label="negative_out_axis") else ax


ELEMENTWISE = {
    "sin_mul": lambda x, y: fnp.sin(x) * y,
    "tanh_sub_sq": lambda x, y: fnp.tanh(x - y) ** 2 + x,
    "where": lambda x, y: fnp.where(x > y, x * y, fnp.exp(y)),
    "max_abs": lambda x, y: fnp.maximum(fnp.abs(x), y) / (1.0 + y * y),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@given(data=st.data())
def test_elementwise_matches_a_loop(name, data):
    f = ELEMENTWISE[name]
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), label="shape")
    n = data.draw(st.integers(1, 4), label="n")
    x, x_ax = draw_batched(data, shape, n, "x", allow_none=False)
    y, y_ax = draw_batched(data, shape, n, "y")
    out_ax = out_axis_for(data, len(shape))
    got = fg.vmap(f, in_axes=(x_ax, y_ax), out_axes=out_ax)(x, y)
    np.testing.assert_allclose(got, loop(f, (x, y), (x_ax, y_ax), out_ax), rtol=1e-12)


REDUCTIONS = {
    "sum": lambda x, axis: fnp.sum(x, axis=axis),
    "max": lambda x, axis: fnp.max(x, axis=axis),
    "mean": lambda x, axis: fnp.mean(x, axis=axis),
    "prod": lambda x, axis: fnp.prod(x, axis=axis),
    "cumsum": lambda x, axis: fnp.cumsum(x, axis=axis if axis is not None else 0),
    "logsumexp": lambda x, axis: fnp.log(fnp.sum(fnp.exp(x), axis=axis)),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reductions_match_a_loop(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    axis = data.draw(st.sampled_from([None, *range(-len(shape), len(shape))]), label="axis")
    if name == "cumsum" and axis is None:
        axis = 0
    n = data.draw(st.integers(1, 4), label="n")
    x, x_ax = draw_batched(data, shape, n, "x", allow_none=False)
    f = lambda v: REDUCTIONS[name](v, axis)  # noqa: E731
    got = fg.vmap(f, in_axes=x_ax)(x)
    np.testing.assert_allclose(got, loop(f, (x,), (x_ax,)), rtol=1e-12, atol=1e-14)


@given(data=st.data())
def test_matmul_matches_a_loop(data):
    m, k, p = (data.draw(st.integers(1, 3), label=s) for s in "mkp")
    n = data.draw(st.integers(1, 4), label="n")
    x_shape = data.draw(st.sampled_from([(m, k), (k,)]), label="x_shape")
    w_shape = data.draw(st.sampled_from([(k, p), (k,)]), label="w_shape")
    x, x_ax = draw_batched(data, x_shape, n, "x")
    w, w_ax = draw_batched(data, w_shape, n, "w", allow_none=x_ax is not None)
    f = lambda a, b: a @ b  # noqa: E731
    got = fg.vmap(f, in_axes=(x_ax, w_ax))(x, w)
    np.testing.assert_allclose(got, loop(f, (x, w), (x_ax, w_ax)), rtol=1e-12, atol=1e-14)


def test_matmul_exact_values():
    xs = np.arange(6.0).reshape(2, 3)
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(fg.vmap(lambda x: x @ w)(xs), xs @ w)
    np.testing.assert_array_equal(fg.vmap(lambda x: w.T @ x, in_axes=1, out_axes=1)(xs.T),
                                  (xs @ w).T)


# ---------------------------------------------------------------------------
# in_axes / out_axes
# ---------------------------------------------------------------------------

def test_in_axes_none_broadcasts_and_out_axes_none_returns_unbatched():
    xs, y = np.arange(6.0).reshape(3, 2), np.array([10.0, 20.0])
    np.testing.assert_array_equal(fg.vmap(lambda x, c: x + c, in_axes=(0, None))(xs, y), xs + y)
    out = fg.vmap(lambda x, c: (x * c, c * 2.0), in_axes=(0, None), out_axes=(0, None))(xs, y)
    np.testing.assert_array_equal(out[0], xs * y)
    np.testing.assert_array_equal(out[1], y * 2.0)
    with pytest.raises(ValueError, match="out_axes=None for an output that is batched"):
        fg.vmap(lambda x: x, out_axes=None)(xs)


def test_unbatched_and_constant_outputs_are_broadcast():
    xs, y = np.ones((3, 2)), np.arange(2.0)
    np.testing.assert_array_equal(fg.vmap(lambda x, c: c, in_axes=(0, None))(xs, y),
                                  np.broadcast_to(y, (3, 2)))
    np.testing.assert_array_equal(fg.vmap(lambda x: 1.0)(xs), np.ones(3))
    np.testing.assert_array_equal(fg.vmap(lambda x, c: c, in_axes=(0, None), out_axes=1)(xs, y),
                                  np.broadcast_to(y[:, None], (2, 3)))
    np.testing.assert_array_equal(fg.vmap(lambda c: c * 2.0, in_axes=None, axis_size=4)(y),
                                  np.broadcast_to(2.0 * y, (4, 2)))


def test_negative_axes_count_from_the_end():
    x = np.arange(24.0).reshape(2, 3, 4)
    f = lambda v: fnp.sum(v, axis=0) * 2.0  # noqa: E731
    np.testing.assert_array_equal(fg.vmap(f, in_axes=-1)(x), fg.vmap(f, in_axes=2)(x))
    np.testing.assert_array_equal(fg.vmap(f, in_axes=-1)(x), loop(f, (x,), (2,)))
    g = lambda v: v * 3.0  # noqa: E731
    np.testing.assert_array_equal(fg.vmap(g, in_axes=0, out_axes=-1)(x), loop(g, (x,), (0,), 2))


@pytest.mark.parametrize("out_axes", [5, -3])
def test_out_of_range_out_axes_is_an_error(out_axes):
    with pytest.raises(ValueError, match="out_axes"):
        fg.vmap(lambda x: x * 2.0, out_axes=out_axes)(np.ones((3, 2)))


# ---------------------------------------------------------------------------
# composition
# ---------------------------------------------------------------------------

@given(data=st.data())
def test_nested_vmap_matches_a_double_loop(data):
    n1, n2, k = (data.draw(st.integers(1, 3), label=s) for s in ("n1", "n2", "k"))
    xs = data.draw(hnp.arrays(np.float64, (n1, k), elements=FLOATS), label="xs")
    ys = data.draw(hnp.arrays(np.float64, (k, n2), elements=FLOATS), label="ys")
    f = lambda x, y: fnp.sum(fnp.sin(x) * y) + x[0]  # noqa: E731
    inner = fg.vmap(f, in_axes=(None, 1))                       # over the columns of ys
    got = fg.vmap(inner, in_axes=(0, None))(xs, ys)
    want = np.array([[f(xs[i], ys[:, j]) for j in range(n2)] for i in range(n1)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    closure = fg.vmap(lambda x: fg.vmap(lambda y: f(x, y), in_axes=1)(ys))(xs)
    np.testing.assert_allclose(closure, want, rtol=1e-12)


@pytest.mark.kernels
@given(data=st.data())
def test_vmap_of_grad_matches_a_loop_of_grads(data):
    # interpreted, then compiled from the first call (whether a kernel runs would
    # otherwise depend on how often the suite has run the program before)
    with fg.config.override("disable_jit", True):
        _check_vmap_of_grad(data)
    with fg.config.override("jit_threshold", 0):
        _check_vmap_of_grad(data)


def _check_vmap_of_grad(data):
    n, k = data.draw(st.integers(1, 4), label="n"), data.draw(st.integers(1, 3), label="k")
    xs = data.draw(hnp.arrays(np.float64, (n, k), elements=FLOATS), label="xs")
    w = data.draw(hnp.arrays(np.float64, (k,), elements=FLOATS), label="w")
    loss = lambda x, w: fnp.sum(fnp.tanh(x * w) ** 2) + fnp.sum(x) ** 2  # noqa: E731
    per_example = fg.vmap(fg.grad(loss), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(per_example, np.stack([fg.grad(loss)(x, w) for x in xs]),
                               rtol=1e-12, atol=1e-14)
    wrt_w = fg.vmap(fg.grad(loss, argnums=1), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(wrt_w, np.stack([fg.grad(loss, argnums=1)(x, w) for x in xs]),
                               rtol=1e-12, atol=1e-14)
    # and grad of a vmapped loss: the sum of the per-example gradients
    total = fg.grad(lambda w: fnp.sum(fg.vmap(loss, in_axes=(0, None))(xs, w)))(w)
    np.testing.assert_allclose(total, wrt_w.sum(axis=0), rtol=1e-10, atol=1e-12)


@pytest.mark.kernels
def test_vmap_of_grad_compiled_kernel():
    # regression: an equation reading two values of one open loop nest closed it twice
    # (KeyError in codegen's flush) once the program was hot
    # (closing the group dropped the reading equation, so numba rejected the kernel and
    # the interpreter ran it: the kernel must now compile)
    loss = lambda x, w: fnp.sum(x * w) ** 2  # noqa: E731
    xs, w = np.array([[1.0], [2.0]]), np.array([2.0])
    with fg.config.override("jit_threshold", 0), warnings.catch_warnings():
        warnings.simplefilter("error", FungradKernelWarning)
        got = fg.vmap(fg.grad(loss), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(got, 2 * (xs * w).sum(axis=1, keepdims=True) * w)


def test_exact_per_example_gradients():
    xs = np.array([1.0, 2.0, -3.0])
    np.testing.assert_array_equal(fg.vmap(fg.grad(lambda x: x * x))(xs), 2 * xs)


def test_pytrees_in_and_out():
    params = {"w": np.arange(6.0).reshape(3, 2), "b": np.array([1.0, -1.0])}
    batch = (np.arange(8.0).reshape(4, 2), [np.arange(4.0)])

    def f(p, xy):
        x, (y,) = xy
        h = p["w"] @ x + y
        return {"h": h, "stats": (fnp.sum(h), p["b"] * y)}
    out = fg.vmap(f, in_axes=({"w": None, "b": None}, 0))(params, batch)
    assert sorted(out) == ["h", "stats"] and isinstance(out["stats"], tuple)
    for i in range(4):
        want = f(params, (batch[0][i], [batch[1][0][i]]))
        np.testing.assert_allclose(out["h"][i], want["h"])
        np.testing.assert_allclose(out["stats"][0][i], want["stats"][0])
        np.testing.assert_allclose(out["stats"][1][i], want["stats"][1])
    mixed = fg.vmap(f, in_axes=({"w": 2, "b": None}, 0), out_axes={"h": 1, "stats": 0})(
        {"w": np.stack([params["w"]] * 4, axis=2), "b": params["b"]}, batch)
    np.testing.assert_allclose(mixed["h"], out["h"].T)
    np.testing.assert_allclose(mixed["stats"][1], out["stats"][1])


def test_keyword_arguments_are_batched_along_axis_0():
    xs, ys = np.arange(3.0), np.arange(3.0) + 1.0
    np.testing.assert_array_equal(fg.vmap(lambda x, y=None: x * y)(xs, y=ys), xs * ys)


# ---------------------------------------------------------------------------
# sizes and errors
# ---------------------------------------------------------------------------

def test_batch_of_size_zero():
    out = fg.vmap(lambda x: fnp.sum(x * 2.0))(np.ones((0, 2)))
    assert out.shape == (0,)
    assert fg.vmap(lambda x: x @ np.ones((2, 5)))(np.ones((0, 2))).shape == (0, 5)


def test_axis_size_mismatch_is_an_error_naming_the_sizes_and_function():
    def add(x, y):
        return x + y
    with pytest.raises(ValueError, match=r"vmap\(add.*different sizes along their in_axes: "
                       r"\[3, 4\]"):
        fg.vmap(add)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        fg.vmap(lambda x: x, axis_size=4)(np.ones(3))
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        fg.vmap(add, in_axes=(0, 1))(np.ones((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(fg.vmap(add, axis_size=3)(np.ones(3), np.ones(3)), 2 * np.ones(3))


def test_in_axes_errors():
    with pytest.raises(ValueError, match="no argument is batched; give axis_size"):
        fg.vmap(lambda x: x, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match=r"in_axes=2 for an argument of shape \(3,\)"):
        fg.vmap(lambda x: x, in_axes=2)(np.ones(3))
    with pytest.raises(ValueError, match=r"in_axes=0 for an argument of shape \(\)"):
        fg.vmap(lambda x: x * 2.0)(3.0)
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function was called "
                       "with 2 positional arguments"):
        fg.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))


def test_out_axes_none_error_names_the_function():
    def identity(x):
        return x
    with pytest.raises(ValueError, match=r"vmap\(identity"):
        fg.vmap(identity, out_axes=None)(np.ones(3))


def test_vmapped_function_keeps_its_name():
    def per_example(x):
        return x
    v = fg.vmap(per_example)
    assert v.__name__ == "vmap(per_example)" and v.__wrapped__ is per_example
