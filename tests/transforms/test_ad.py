"""The differentiation API (grad, value_and_grad, vjp, jvp, linearize, jacfwd,
jacrev, hessian) with JAX's semantics, its errors, and the kink conventions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.config import config
from fungrad.testing import arrays, check_grads, numerical_jvp, shapes


@pytest.fixture(autouse=True)
def interpreter_only():
    """Derivative semantics are checked in the reference interpreter: finite
    differences call the same programs many times, which would compile kernels."""
    with config.override("disable_jit", True):
        yield


def close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **kw)


# ---------------------------------------------------------------------------
# exact values
# ---------------------------------------------------------------------------

def test_grad_exact_values():
    assert fg.grad(lambda x: x * x)(3.0) == 6.0
    assert fg.grad(lambda x: (x + 2) ** 2 + 3)(2.0) == 8.0
    assert fg.grad(lambda x: x * 2 + x ** 2 + 3)(3.0) == 8.0
    close(fg.grad(lambda x: fnp.sum(x ** 3))(np.arange(3.0)), 3 * np.arange(3.0) ** 2)


def test_value_and_grad_returns_both():
    value, g = fg.value_and_grad(lambda x: fnp.sin(x) * x)(0.5)
    close(value, np.sin(0.5) * 0.5)
    close(g, np.cos(0.5) * 0.5 + np.sin(0.5))


# ---------------------------------------------------------------------------
# argnums, has_aux, pytrees, kwargs
# ---------------------------------------------------------------------------

def f3(x, y, z):
    return fnp.sum(x * y ** 2 + z)


def test_argnums_int_tuple_and_negative():
    x, y, z = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0])
    close(fg.grad(f3)(x, y, z), y ** 2)
    close(fg.grad(f3, argnums=1)(x, y, z), 2 * x * y)
    gx, gz = fg.grad(f3, argnums=(0, 2))(x, y, z)
    close(gx, y ** 2)
    close(gz, np.ones(2))
    (gy,) = fg.grad(f3, argnums=(1,))(x, y, z)      # a 1-tuple stays a tuple
    close(gy, 2 * x * y)
    close(fg.grad(f3, argnums=-1)(x, y, z), np.ones(2))
    v, (gx2, gy2) = fg.value_and_grad(f3, argnums=(0, 1))(x, y, z)
    close(v, np.sum(x * y ** 2 + z))
    close(gy2, 2 * x * y)


def test_argnums_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="argnums"):
        fg.grad(f3, argnums=3)(1.0, 2.0, 3.0)


def test_has_aux():
    def f(x):
        return fnp.sum(x ** 2), {"mean": fnp.mean(x), "n": x.shape[0]}
    g, aux = fg.grad(f, has_aux=True)(np.array([1.0, 3.0]))
    close(g, [2.0, 6.0])
    close(aux["mean"], 2.0)
    (v, aux2), g2 = fg.value_and_grad(f, has_aux=True)(np.array([1.0, 3.0]))
    close(v, 10.0)
    close(aux2["mean"], 2.0)
    close(g2, g)


def test_vjp_and_jacrev_with_aux():
    def f(x):
        return fnp.sin(x), fnp.cos(x)
    x = np.array([0.1, 0.2])
    out, pullback, aux = fg.vjp(f, x, has_aux=True)
    close(out, np.sin(x))
    close(aux, np.cos(x))
    (ct,) = pullback(np.ones(2))
    close(ct, np.cos(x))
    jac, aux = fg.jacrev(f, has_aux=True)(x)
    close(jac, np.diag(np.cos(x)))
    close(aux, np.cos(x))


def test_pytree_inputs_and_outputs():
    params = {"w": np.array([1.0, 2.0]), "b": (np.array(0.5), [np.array(3.0)])}

    def loss(p, x):
        return fnp.sum(p["w"] * x) + p["b"][0] * p["b"][1][0]
    g = fg.grad(loss)(params, np.array([3.0, 4.0]))
    assert set(g) == {"w", "b"}
    assert isinstance(g["b"], tuple) and isinstance(g["b"][1], list)
    close(g["w"], [3.0, 4.0])
    close(g["b"][0], 3.0)
    close(g["b"][1][0], 0.5)
    # vjp of a pytree-valued function
    out, pullback = fg.vjp(lambda p: {"a": p["w"] * 2, "c": p["b"][0]}, params)
    (ct,) = pullback({"a": np.ones(2), "c": np.array(1.0)})
    close(ct["w"], [2.0, 2.0])
    close(ct["b"][0], 1.0)
    close(ct["b"][1][0], 0.0)


def test_kwargs_are_passed_and_not_differentiated():
    def f(x, scale=1.0):
        return fnp.sum(x * scale)
    close(fg.grad(f)(np.ones(2), scale=3.0), [3.0, 3.0])
    close(fg.jacrev(lambda x, k=2.0: x * k)(np.ones(2), k=5.0), 5 * np.eye(2))


def test_jacobians_of_pytree_outputs_and_argnums():
    def f(x, y):
        return {"s": x * y, "t": fnp.sum(x) * np.ones(2)}
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for jac in (fg.jacfwd, fg.jacrev):
        j = jac(f, argnums=(0, 1))(x, y)
        close(j["s"][0], np.diag(y))
        close(j["s"][1], np.diag(x))
        close(j["t"][0], np.ones((2, 2)))
        close(j["t"][1], np.zeros((2, 2)))
    assert fg.jacobian is fg.jacrev or fg.jacobian(f)(x, y)["s"].shape == (2, 2)


def test_vjp_pullback_reusable():
    out, pullback = fg.vjp(lambda x: (x + 1) ** 2, np.eye(2))
    (a,) = pullback(np.ones((2, 2)))
    (b,) = pullback(2 * np.ones((2, 2)))
    close(a, 2 * (np.eye(2) + 1))
    close(b, 2 * a)


def test_linearize_matches_jvp():
    f = lambda x: fnp.sin(x) * fnp.exp(x)  # noqa: E731
    x = np.array([0.3, -0.7])
    y, f_jvp = fg.linearize(f, x)
    close(y, np.sin(x) * np.exp(x))
    for t in (np.array([1.0, 0.0]), np.array([0.5, 2.0])):
        close(f_jvp(t), fg.jvp(f, (x,), (t,))[1])


def test_jvp_api():
    y, t = fg.jvp(fnp.sin, (0.0,), (1.0,))
    assert y == 0.0 and t == 1.0
    y, t = fg.jvp(lambda a, b: a * b, (2.0, 3.0), (1.0, 0.0))
    assert (y, t) == (6.0, 3.0)
    with pytest.raises(TypeError):
        fg.jvp(fnp.sin, 0.0, 1.0)
    with pytest.raises(ValueError):
        fg.jvp(fnp.sin, (np.ones(2),), (np.ones(3),))


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_grad_of_non_scalar_is_a_type_error_naming_shape():
    def vector_valued(x):
        return x * 2
    with pytest.raises(TypeError) as info:
        fg.grad(vector_valued)(np.ones(3))
    msg = str(info.value)
    assert "f64[3]" in msg and "jacobian" in msg and "vjp" in msg
    assert "vector_valued" in msg


def test_grad_wrt_integer_input_is_a_type_error_naming_the_argument():
    def f(x, n):
        return x * n
    with pytest.raises(TypeError) as info:
        fg.grad(f, argnums=1)(2.0, 3)
    msg = str(info.value)
    assert "int" in msg and "f (" in msg
    assert "argument 1" in msg or "'n'" in msg
    # the integer argument is fine when it is not differentiated
    assert fg.grad(f)(2.0, 3) == 3.0


def test_grad_of_function_returning_non_array():
    with pytest.raises(TypeError):
        fg.grad(lambda x: "nope")(1.0)


# ---------------------------------------------------------------------------
# stop_gradient, dtypes
# ---------------------------------------------------------------------------

def test_stop_gradient_blocks_forward_and_reverse():
    f = lambda x: x * fg.stop_gradient(x)  # noqa: E731
    assert fg.grad(f)(3.0) == 3.0
    assert fg.jvp(f, (3.0,), (1.0,))[1] == 3.0
    assert fg.lax.stop_gradient is fg.stop_gradient or fg.grad(
        lambda x: fg.lax.stop_gradient(x) * x)(2.0) == 2.0
    close(fg.jacfwd(lambda x: fg.stop_gradient(x) ** 2)(np.ones(2)), np.zeros((2, 2)))
    assert fg.grad(fg.grad(lambda x: fg.stop_gradient(x) * x ** 2))(1.0) == 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivative_dtypes_follow_inputs(dtype):
    x = np.array([0.5, 1.5], dtype=dtype)
    f = lambda x: fnp.sum(fnp.tanh(x) * x)  # noqa: E731
    assert fg.grad(f)(x).dtype == dtype
    assert fg.value_and_grad(f)(x)[0].dtype == dtype
    assert np.asarray(fg.jvp(f, (x,), (np.ones(2, dtype),))[1]).dtype == dtype
    assert fg.vjp(lambda x: fnp.sin(x), x)[1](np.ones(2, dtype))[0].dtype == dtype
    assert fg.jacfwd(fnp.sin)(x).dtype == dtype
    assert fg.jacrev(fnp.sin)(x).dtype == dtype
    assert fg.hessian(f)(x).dtype == dtype
    assert fg.grad(lambda s: s * 2.0)(dtype(1.5)).dtype == dtype


# ---------------------------------------------------------------------------
# the kink conventions (docs table of issue 3 item 4)
# ---------------------------------------------------------------------------

def test_abs_derivative_at_zero_is_zero():
    assert fg.grad(fnp.abs)(0.0) == 0.0
    assert fg.jvp(fnp.abs, (0.0,), (1.0,))[1] == 0.0
    close(fg.grad(lambda x: fnp.sum(fnp.abs(x)))(np.array([-2.0, 0.0, 2.0])), [-1, 0, 1])


@pytest.mark.parametrize("fn", [fnp.maximum, fnp.minimum])
def test_maximum_minimum_ties_split_evenly(fn):
    gx, gy = fg.grad(fn, argnums=(0, 1))(1.0, 1.0)
    assert (gx, gy) == (0.5, 0.5)
    _, t = fg.jvp(fn, (1.0, 1.0), (1.0, 0.0))
    assert t == 0.5


def test_clip_at_a_bound_passes_the_gradient():
    f = lambda x: fnp.clip(x, 0.0, 1.0)  # noqa: E731
    assert fg.grad(f)(0.0) == 1.0
    assert fg.grad(f)(1.0) == 1.0
    assert fg.grad(f)(0.5) == 1.0
    assert fg.grad(f)(2.0) == 0.0


def test_power_zero_at_zero():
    assert fg.grad(lambda x: x ** 0.0)(0.0) == 0.0
    assert fg.grad(lambda x: x ** 0)(0.0) == 0.0
    assert fg.grad(fg.grad(lambda x: x ** 0.0))(0.0) == 0.0


def test_where_sqrt_has_zero_gradient_at_zero():
    g = fg.grad(lambda x: fnp.where(x > 0, fnp.sqrt(x), 0.0))(0.0)
    assert g == 0.0 and np.isfinite(g)
    gs = fg.grad(lambda x: fnp.sum(fnp.where(x > 0, fnp.sqrt(x), 0.0)))(np.array([0.0, 4.0]))
    close(gs, [0.0, 0.25])


def test_norm_gradient_at_zero_is_zero():
    linalg = getattr(fnp, "linalg", None)
    if linalg is None or not hasattr(linalg, "norm"):
        pytest.skip("fungrad.numpy.linalg.norm is not available")
    close(fg.grad(linalg.norm)(np.zeros(3)), np.zeros(3))
    close(fg.grad(linalg.norm)(np.array([3.0, 4.0])), [0.6, 0.8])


def test_max_reduction_splits_ties_and_prod_is_exact_with_zeros():
    close(fg.grad(fnp.max)(np.array([1.0, 1.0, 0.0])), [0.5, 0.5, 0.0])
    close(fg.grad(fnp.prod)(np.array([2.0, 0.0, 3.0])), [0.0, 6.0, 0.0])
    close(fg.grad(fnp.prod)(np.array([2.0, 0.0, 0.0])), [0.0, 0.0, 0.0])
    assert fg.grad(fnp.sinc)(0.0) == 0.0


# ---------------------------------------------------------------------------
# higher order and nesting
# ---------------------------------------------------------------------------

def test_nested_grad_three_levels():
    f = lambda x: x ** 4  # noqa: E731
    assert fg.grad(fg.grad(fg.grad(f)))(2.0) == 48.0
    close(fg.grad(fg.grad(fg.grad(fnp.sin)))(0.3), -np.cos(0.3))


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x * y)] = d/dx x^2 = 2x, at any x
    def outer(x):
        return x * fg.grad(lambda y: x * y)(3.0)
    for x in (1.0, 2.5, -4.0):
        assert fg.grad(outer)(x) == 2 * x
        assert fg.jvp(outer, (x,), (1.0,))[1] == 2 * x

    # forward inside reverse, closing over the outer variable
    def outer_fwd(x):
        return fg.jvp(lambda y: x * y, (1.0,), (1.0,))[1] * x
    assert fg.grad(outer_fwd)(3.0) == 6.0


def test_grad_inside_differentiated_function_with_closure():
    def f(x):
        inner = fg.grad(lambda w: fnp.sum(fnp.sin(w * x)))
        return fnp.sum(inner(np.array([0.1, 0.2])))
    x = 0.7
    # inner grad = x cos(w x); d/dx = cos(w x) - w x sin(w x), summed over w
    w = np.array([0.1, 0.2])
    close(fg.grad(f)(x), np.sum(np.cos(w * x) - w * x * np.sin(w * x)), rtol=1e-12)


def test_hessian_is_symmetric_and_matches_finite_differences():
    def f(x):
        return fnp.sum(fnp.sin(x) * x[::-1]) + fnp.prod(fnp.tanh(x)) * 0.5
    x = np.array([0.3, -0.4, 1.1])
    h = fg.hessian(f)(x)
    close(h, h.T, atol=1e-12)
    g = fg.grad(f)
    fd = np.stack([numerical_jvp(g, (x,), (e,)) for e in np.eye(3)], axis=1)
    close(h, fd, rtol=1e-6, atol=1e-8)
    close(fg.jacfwd(fg.jacrev(f))(x), h, atol=1e-12)
    close(fg.jacrev(fg.jacfwd(f))(x), h, atol=1e-12)
    close(fg.jacrev(fg.jacrev(f))(x), h, atol=1e-12)


def test_jacfwd_equals_jacrev_rectangular():
    def f(x):
        return fnp.stack([fnp.sum(x ** 2), x[0] * x[1], fnp.exp(x[2])])
    x = np.array([1.0, 2.0, 0.5, -1.0])
    jf, jr = fg.jacfwd(f)(x), fg.jacrev(f)(x)
    assert jf.shape == (3, 4)
    close(jf, jr, atol=1e-14)
    close(jf[0], 2 * x)


def test_grad_grad_against_finite_differences():
    f = lambda x: fnp.log1p(fnp.exp(x)) * fnp.cos(x)  # noqa: E731
    g2 = fg.grad(fg.grad(f))
    for x in (-1.0, 0.0, 0.7):
        close(g2(x), numerical_jvp(fg.grad(f), (x,), (1.0,)), rtol=1e-7)


@settings(max_examples=15)
@given(data=st.data())
def test_check_grads_on_composites(data):
    shape = data.draw(shapes(0, 2, 1, 3), label="shape")
    x = data.draw(arrays(np.float64, shape), label="x")
    y = data.draw(arrays(np.float64, shape), label="y")
    check_grads(lambda x, y: fnp.tanh(x) * fnp.sin(y) + x * y / (1.0 + y ** 2), (x, y),
                order=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_grads_seed_bce(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3)).astype(dtype)
    y = (rng.random(6) > 0.5).astype(dtype)

    def bce(w, b):
        z = x @ w + b
        return fnp.mean(fnp.maximum(z, 0) - z * y + fnp.log1p(fnp.exp(-fnp.abs(z))))
    w, b = rng.standard_normal(3).astype(dtype), dtype(0.1)
    check_grads(bce, (w, b), order=2)
    gw, gb = fg.grad(bce, argnums=(0, 1))(w, b)
    p = 1 / (1 + np.exp(-(x.astype(np.float64) @ w + b)))
    close(gw, x.T @ (p - y) / 6, rtol=1e-5 if dtype == np.float32 else 1e-12)
    close(gb, np.mean(p - y), rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


def test_higher_derivatives_where_a_tangent_is_zero():
    # regression: safe_mul was select(t == 0, 0, t * deriv), whose derivative in t is 0
    # wherever t == 0, so forward-over-forward gave 0 at x = 0 (d(x*x) = 0 there)
    f = lambda x: -fnp.log(x * x + 1.0)  # noqa: E731
    g = lambda x: fnp.sqrt(x * x + 1.0)  # noqa: E731
    for second in (fg.hessian, lambda h: fg.jacfwd(fg.jacfwd(h)), lambda h: fg.grad(fg.grad(h))):
        assert second(f)(0.0) == -2.0
        assert second(g)(0.0) == 1.0
    # ... while a zero cotangent still wins over an infinite local derivative
    assert fg.grad(lambda x: fnp.where(x > 0, fnp.sqrt(x), 0.0))(0.0) == 0.0
