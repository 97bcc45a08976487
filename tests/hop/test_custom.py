"""custom_jvp, custom_vjp, checkpoint, linear_transpose, the hvp recipe and a
user-defined primitive (fungrad.extend), under every transform."""
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.errors import FungradNotImplementedError, FungradTypeError, FungradValueError
from fungrad.extend import Primitive, elementwise_vmap, same_shape


@pytest.fixture(autouse=True)
def _interpreter_only():
    """Eager calls stay in the NumPy interpreter (no numba compiles); the jit tests
    below switch compilation back on explicitly."""
    with fg.config.override("disable_jit", True):
        yield


def num_grad(f, x, eps=1e-6):
    """Central-difference gradient of scalar f at array x."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
    return g


def num_jac(f, x, eps=1e-6):
    """Central-difference Jacobian (out.shape + x.shape) of f at array x."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps))
    out_shape = np.shape(cols[0])
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


vectors = hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(-2.0, 2.0))


# ---------------------------------------------------------------------------
# custom_jvp
# ---------------------------------------------------------------------------

@fg.custom_jvp
def log1pexp(x):
    return fnp.log1p(fnp.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1.0 - 1.0 / (1.0 + fnp.exp(x)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_custom_jvp_rule_is_used_where_autodiff_overflows():
    # plain autodiff of log1p(exp(x)) at 800 gives inf/inf = nan; the rule is stable
    assert np.isnan(fg.grad(lambda x: fnp.log1p(fnp.exp(x)))(800.0))
    assert fg.grad(log1pexp)(800.0) == 1.0
    assert fg.jvp(log1pexp, (800.0,), (2.0,))[1] == 2.0
    np.testing.assert_allclose(fg.grad(fg.grad(log1pexp))(0.5), sigmoid(0.5) * (1 - sigmoid(0.5)))


@fg.custom_jvp
def scaled_sin(x):
    return fnp.sin(x)


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):
    # a deliberately "wrong" rule: derivative 3 cos(x), so its use is visible
    (x,), (t,) = primals, tangents
    return scaled_sin(x), 3.0 * fnp.cos(x) * t


def test_every_transform_uses_the_custom_jvp_rule():
    x = np.array([0.1, 0.7, -1.2])
    expected = 3.0 * np.cos(x)
    np.testing.assert_allclose(fg.grad(lambda x: scaled_sin(x).sum())(x), expected)
    np.testing.assert_allclose(fg.jacfwd(scaled_sin)(x), np.diag(expected))
    np.testing.assert_allclose(fg.jacrev(scaled_sin)(x), np.diag(expected))
    np.testing.assert_allclose(fg.vmap(fg.grad(scaled_sin))(x), expected)
    np.testing.assert_allclose(fg.grad(lambda x: fg.vmap(scaled_sin)(x).sum())(x), expected)
    # second order differentiates the rule: d/dx 3 cos(x) = -3 sin(x)
    np.testing.assert_allclose(fg.hessian(lambda x: scaled_sin(x).sum())(x),
                               np.diag(-3.0 * np.sin(x)))
    np.testing.assert_allclose(fg.grad(fg.grad(scaled_sin))(0.3), -3.0 * np.sin(0.3))
    np.testing.assert_allclose(fg.jit(fg.grad(scaled_sin))(0.3), 3.0 * np.cos(0.3))
    np.testing.assert_allclose(fg.grad(fg.jit(scaled_sin))(0.3), 3.0 * np.cos(0.3))
    np.testing.assert_allclose(scaled_sin(x), np.sin(x))
    np.testing.assert_allclose(fg.vmap(scaled_sin)(x), np.sin(x))


@fg.custom_jvp
def two_arg(x, y):
    return {"p": fnp.sin(x) * y, "q": x * fnp.exp(y)}


@two_arg.defjvp
def _two_arg_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = two_arg(x, y)
    return out, {"p": fnp.cos(x) * tx * y + fnp.sin(x) * ty,
                 "q": tx * fnp.exp(y) + x * fnp.exp(y) * ty}


def _two_arg_loss(x, y):
    out = two_arg(x, y)
    return fnp.sum(out["p"] ** 2) + fnp.sum(fnp.tanh(out["q"]))


@settings(max_examples=15)
@given(x=vectors, data=st.data())
def test_custom_jvp_matches_finite_differences_orders_1_and_2(x, data):
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-1.0, 1.0)), label="y")
    gx, gy = fg.grad(_two_arg_loss, (0, 1))(x, y)
    np.testing.assert_allclose(gx, num_grad(lambda x: _two_arg_loss(x, y), x), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(gy, num_grad(lambda y: _two_arg_loss(x, y), y), rtol=1e-5,
                               atol=1e-6)
    jf = fg.jacfwd(lambda x: two_arg(x, y)["p"])(x)
    jr = fg.jacrev(lambda x: two_arg(x, y)["p"])(x)
    np.testing.assert_allclose(jf, num_jac(lambda x: two_arg(x, y)["p"], x), atol=1e-6)
    np.testing.assert_allclose(jr, jf, atol=1e-12)
    h = fg.hessian(_two_arg_loss)(x, y)
    h_num = num_jac(lambda x: fg.grad(_two_arg_loss)(x, y), x)
    np.testing.assert_allclose(h, h_num, rtol=1e-4, atol=1e-5)
    # vmap over a batch of rows agrees with a Python loop, and so does its gradient
    xs, ys = np.stack([x, -x]), np.stack([y, y[::-1]])
    batched = fg.vmap(two_arg)(xs, ys)
    for i in range(2):
        one = two_arg(xs[i], ys[i])
        np.testing.assert_allclose(batched["p"][i], one["p"])
        np.testing.assert_allclose(batched["q"][i], one["q"])
    per_row = fg.vmap(fg.grad(_two_arg_loss))(xs, ys)
    for i in range(2):
        np.testing.assert_allclose(per_row[i], fg.grad(_two_arg_loss)(xs[i], ys[i]), atol=1e-12)


def test_custom_jvp_vjp_is_the_transposed_rule():
    # <ct, J t> from jvp equals <J^T ct, t> from vjp
    x, y = np.array([0.3, -0.4]), np.array([1.5, 0.2])
    t = (np.array([0.7, 0.1]), np.array([-0.3, 0.9]))
    f = lambda x, y: two_arg(x, y)["q"]  # noqa: E731
    _, jt = fg.jvp(f, (x, y), t)
    ct = np.array([0.25, -1.5])
    _, pullback = fg.vjp(f, x, y)
    ctx, cty = pullback(ct)
    np.testing.assert_allclose(np.vdot(ct, jt), np.vdot(ctx, t[0]) + np.vdot(cty, t[1]))


def test_custom_jvp_nondiff_argnums_pass_python_values():
    @fg.custom_jvp
    def apply(f, x):
        return f(x)

    def apply_jvp(f, primals, tangents):
        (x,), (t,) = primals, tangents
        return apply(f, x), 2.0 * t  # "derivative 2" whatever f is

    apply = fg.custom_jvp(apply.fun, nondiff_argnums=(0,))
    apply.defjvp(apply_jvp)
    assert fg.grad(lambda x: apply(fnp.sin, x))(0.3) == 2.0
    np.testing.assert_allclose(fg.vmap(lambda x: apply(fnp.cos, x))(np.zeros(3)), np.ones(3))
    np.testing.assert_allclose(fg.jacrev(lambda x: apply(fnp.exp, x))(np.zeros(2)), 2 * np.eye(2))


def test_custom_jvp_defjvps():
    @fg.custom_jvp
    def f(x, y):
        return fnp.sin(x) * y

    f.defjvps(lambda t, ans, x, y: fnp.cos(x) * t * y, lambda t, ans, x, y: fnp.sin(x) * t)
    gx, gy = fg.grad(f, (0, 1))(0.4, 2.0)
    np.testing.assert_allclose([gx, gy], [np.cos(0.4) * 2.0, np.sin(0.4)])
    np.testing.assert_allclose(fg.hessian(f)(0.4, 2.0), -np.sin(0.4) * 2.0)


def test_custom_jvp_closing_over_traced_values():
    def outer(y):
        @fg.custom_jvp
        def f(x):
            return fnp.sin(x) * y

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return f(x), fnp.cos(x) * y * t        # the rule closes over y too
        return f(fnp.asarray(0.5)) + fg.grad(f)(0.25)

    expected = np.sin(0.5) + np.cos(0.25)          # d/dy of sin(.5) y + cos(.25) y
    np.testing.assert_allclose(fg.grad(outer)(2.0), expected)
    np.testing.assert_allclose(fg.grad(outer)(2.0), num_grad(outer, np.array(2.0)), rtol=1e-6)
    np.testing.assert_allclose(fg.jacfwd(outer)(2.0), expected)
    np.testing.assert_allclose(fg.vmap(fg.grad(outer))(np.array([1.0, 3.0])), [expected] * 2)


def test_custom_jvp_errors_name_the_rule():
    @fg.custom_jvp
    def f(x):
        return x * 2.0

    with pytest.raises(FungradTypeError, match="no jvp rule"):
        fg.grad(f)(1.0)

    f.defjvp(lambda p, t: (f(p[0]), (t[0], t[0])))
    with pytest.raises(FungradTypeError, match="structure"):
        fg.grad(f)(1.0)

    f.defjvp(lambda p, t: f(p[0]))
    with pytest.raises(FungradTypeError, match="must return a pair"):
        fg.jvp(f, (1.0,), (1.0,))

    f.defjvp(lambda p, t: (f(p[0]), fnp.ones(3)))
    with pytest.raises(FungradTypeError, match="tangent of type f64"):
        fg.grad(f)(1.0)


# ---------------------------------------------------------------------------
# custom_vjp
# ---------------------------------------------------------------------------

@fg.custom_vjp
def clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(_, g):
    return (fnp.clip(g, -1.0, 1.0),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_custom_vjp_clip_gradient():
    assert fg.grad(lambda x: 5.0 * clip_gradient(x))(2.0) == 1.0
    assert fg.grad(lambda x: -5.0 * clip_gradient(x))(2.0) == -1.0
    assert fg.grad(lambda x: 0.5 * clip_gradient(x))(2.0) == 0.5
    np.testing.assert_allclose(fg.vmap(fg.grad(lambda x: 3.0 * clip_gradient(x)))(np.ones(3)),
                               np.ones(3))
    # forward mode transposes bwd, and clip is not linear in g: there is no forward
    # derivative that agrees with grad, so every forward mode raises (issue 12: jacfwd
    # gave 6.0 where grad gave 1.0), naming bwd's line
    for forward in (lambda: fg.jvp(clip_gradient, (2.0,), (5.0,)),
                    lambda: fg.jacfwd(lambda x: 6.0 * clip_gradient(x))(2.0),
                    lambda: fg.hessian(lambda x: 6.0 * clip_gradient(x) ** 2)(2.0),
                    lambda: fg.linearize(clip_gradient, 2.0)):
        with pytest.raises(FungradTypeError, match="not known to be linear") as info:
            forward()
        assert "test_custom.py" in str(info.value) and "custom_jvp" in str(info.value)
    assert fg.jacrev(lambda x: 6.0 * clip_gradient(x))(2.0) == 1.0


@fg.custom_vjp
def prod_sin(x, y):
    return fnp.sin(x) * y


def _prod_sin_fwd(x, y):
    return prod_sin(x, y), (fnp.cos(x), fnp.sin(x), y)


def _prod_sin_bwd(res, g):
    cos_x, sin_x, y = res
    return (g * cos_x * y, g * sin_x)


prod_sin.defvjp(_prod_sin_fwd, _prod_sin_bwd)


def _prod_sin_loss(x, y):
    return fnp.sum(fnp.tanh(prod_sin(x, y)) * prod_sin(y, x))


@settings(max_examples=15)
@given(x=vectors, data=st.data())
def test_custom_vjp_matches_finite_differences_orders_1_and_2(x, data):
    y = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-1.0, 1.0)), label="y")
    gx, gy = fg.grad(_prod_sin_loss, (0, 1))(x, y)
    np.testing.assert_allclose(gx, num_grad(lambda x: _prod_sin_loss(x, y), x), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(gy, num_grad(lambda y: _prod_sin_loss(x, y), y), rtol=1e-5,
                               atol=1e-6)
    f = lambda x: prod_sin(x, y)  # noqa: E731
    jr = fg.jacrev(f)(x)
    np.testing.assert_allclose(jr, num_jac(f, x), atol=1e-6)
    np.testing.assert_allclose(fg.jacfwd(f)(x), jr, atol=1e-12)   # forward = transposed bwd
    h = fg.hessian(_prod_sin_loss)(x, y)
    np.testing.assert_allclose(h, num_jac(lambda x: fg.grad(_prod_sin_loss)(x, y), x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fg.jacrev(fg.grad(_prod_sin_loss))(x, y), h, atol=1e-10)
    xs = np.stack([x, 2 * x])
    per_row = fg.vmap(fg.grad(_prod_sin_loss), in_axes=(0, None))(xs, y)
    for i in range(2):
        np.testing.assert_allclose(per_row[i], fg.grad(_prod_sin_loss)(xs[i], y), atol=1e-12)
    # gradient through vmap with an unbatched argument: its cotangent is summed
    gy_batched = fg.grad(lambda y: fnp.sum(fg.vmap(prod_sin, (0, None))(xs, y)))(y)
    np.testing.assert_allclose(gy_batched, np.sin(xs).sum(0), atol=1e-12)


def test_custom_vjp_nondiff_argnums_none_cotangents_and_pytree_residuals():
    def f(scale, x, y):
        return scale * x * y

    def fwd(scale, x, y):
        return f(scale, x, y), {"x": x, "y": y}

    def bwd(scale, res, g):
        return (scale * g * res["y"], None)       # None: zero cotangent for y

    cf = fg.custom_vjp(f, nondiff_argnums=(0,))
    cf.defvjp(fwd, bwd)
    gx, gy = fg.grad(cf, (1, 2))(3.0, 2.0, 5.0)
    assert (gx, gy) == (15.0, 0.0)
    np.testing.assert_allclose(fg.jacfwd(cf, 1)(3.0, 2.0, 5.0), 15.0)
    np.testing.assert_allclose(fg.vmap(fg.grad(cf, 1), (None, 0, 0))(2.0, np.ones(2),
                                                                     np.arange(2.0)), [0.0, 2.0])


def test_custom_vjp_bwd_errors_are_named():
    @fg.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (f(x, y), None), lambda res, g: (g,))
    with pytest.raises(FungradTypeError, match="one cotangent per differentiable argument"):
        fg.grad(f)(1.0, 2.0)
    f.defvjp(lambda x, y: (f(x, y), None), lambda res, g: (fnp.ones(2), g))
    with pytest.raises(FungradTypeError, match="cotangent of type f64\\[2\\]"):
        fg.grad(f)(1.0, 2.0)
    with pytest.raises(FungradTypeError, match="no rules"):
        fg.grad(fg.custom_vjp(lambda x: x))(1.0)


def test_custom_vjp_closing_over_a_differentiated_value():
    def outer(y):
        @fg.custom_vjp
        def f(x):
            return fnp.sin(x) * y

        f.defvjp(lambda x: (f(x), x), lambda x, g: (g * fnp.cos(x) * y,))
        return f(fnp.asarray(0.5)) + fg.grad(f)(0.25)

    expected = np.sin(0.5) + np.cos(0.25)
    np.testing.assert_allclose(fg.grad(outer)(2.0), expected)
    np.testing.assert_allclose(fg.jacfwd(outer)(2.0), expected)


def test_closure_over_a_differentiated_value_needs_a_differentiable_function():
    def outer(y):
        @fg.custom_vjp
        def f(x):
            return opaque_p.bind(x * y)           # no derivative rules inside

        f.defvjp(lambda x: (f(x), None), lambda res, g: (2.0 * y * g,))
        return f(fnp.asarray(3.0))

    assert fg.grad(lambda x: outer(2.0) * x)(1.0) == 12.0    # y not differentiated: fine
    with pytest.raises(FungradNotImplementedError, match="explicit argument"):
        fg.grad(outer)(2.0)


# a primitive with no vjp rule, to make a bwd rule that cannot be transposed
opaque_p = Primitive("opaque_double")
opaque_p.def_impl(lambda x: 2.0 * x)
opaque_p.def_shape(same_shape)
opaque_p.def_vmap(elementwise_vmap(opaque_p))


def test_jvp_of_custom_vjp_says_why_when_bwd_cannot_be_transposed():
    @fg.custom_vjp
    def f(x):
        return 2.0 * x

    f.defvjp(lambda x: (f(x), None), lambda res, g: (opaque_p.bind(g),))
    assert fg.grad(f)(1.0) == 2.0
    with pytest.raises(FungradTypeError, match="transposes its bwd rule") as info:
        fg.jvp(f, (1.0,), (1.0,))
    assert "custom_jvp" in str(info.value) and "opaque_double" in str(info.value)
    assert "declares no linear_in" in str(info.value)


def test_custom_rules_that_call_their_own_function_do_not_recurse():
    # both rules call the function itself (the common pattern); tracing them is lazy
    x = np.array([0.2, 1.3])
    np.testing.assert_allclose(fg.hessian(lambda x: log1pexp(x).sum())(x),
                               np.diag(sigmoid(x) * (1 - sigmoid(x))))
    np.testing.assert_allclose(fg.jacfwd(fg.vmap(fg.grad(log1pexp)))(x),
                               np.diag(sigmoid(x) * (1 - sigmoid(x))))
    np.testing.assert_allclose(fg.vmap(fg.hessian(lambda x, y: prod_sin(x, y)))(x, x),
                               -np.sin(x) * x)


W = np.array([1.0, 2.0, 3.0])


@fg.custom_jvp
def scaled_exp(x):
    return fnp.exp(x) * W          # closes over a global array


@scaled_exp.defjvp
def _scaled_exp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    ans = scaled_exp(x)            # the tangent uses the function's own output
    return ans, ans * t


def test_third_order_through_a_self_calling_rule_with_array_closure():
    x = np.array([0.1, 0.2, 0.3])
    third = fg.jacfwd(fg.jacfwd(fg.jacfwd(scaled_exp)))(x)
    np.testing.assert_allclose(third[1, 1, 1, 1], 2.0 * np.exp(0.2))
    assert third.shape == (3, 3, 3, 3) and third[0, 1, 1, 1] == 0.0
    np.testing.assert_allclose(fg.grad(fg.grad(fg.grad(lambda x: scaled_exp(x)[2])))(0.3),
                               3.0 * np.exp(0.3))
    np.testing.assert_allclose(fg.vmap(fg.hessian(lambda x: scaled_exp(x).sum()))(
        np.stack([x, x]))[1], np.diag(W * np.exp(x)))


# ---------------------------------------------------------------------------
# jit: compiled programs with custom rules agree with the interpreter
# ---------------------------------------------------------------------------

@pytest.mark.kernels
def test_custom_rules_and_checkpoint_compile_under_jit():
    x = np.linspace(-1.0, 1.0, 5)
    loss = lambda x: (_two_arg_loss(x, x[::-1]) + _prod_sin_loss(x, x)  # noqa: E731
                      + fg.checkpoint(lambda z: fnp.sin(z) ** 2)(x).sum())
    expected = fg.grad(loss)(x)
    with fg.config.override("disable_jit", False):
        step = fg.jit(fg.grad(loss))
        np.testing.assert_allclose(step(x), expected, atol=1e-12)
        np.testing.assert_allclose(step(2 * x), fg.grad(loss)(2 * x), atol=1e-12)
        kernel = step.lower(x).as_text().split("\ndef ", 1)[1]     # the numba source
        assert "custom_jvp_call" not in kernel and "checkpoint" not in kernel


# ---------------------------------------------------------------------------
# checkpoint
# ---------------------------------------------------------------------------

def _block(w, x):
    for _ in range(3):
        x = fnp.tanh(w * x) * 1.5 + fnp.sin(x)
    return x


@settings(max_examples=15)
@given(x=vectors)
def test_checkpointed_gradients_equal_plain_ones(x):
    w = 0.7
    plain = lambda w, x: fnp.sum(_block(w, x) ** 2)  # noqa: E731
    remat = lambda w, x: fnp.sum(fg.checkpoint(_block)(w, x) ** 2)  # noqa: E731
    for argnums in (0, 1, (0, 1)):
        a = fg.grad(plain, argnums)(w, x)
        b = fg.grad(remat, argnums)(w, x)
        np.testing.assert_allclose(np.hstack(a) if argnums == (0, 1) else a,
                                   np.hstack(b) if argnums == (0, 1) else b, atol=1e-12)
    np.testing.assert_allclose(fg.hessian(remat, 1)(w, x), fg.hessian(plain, 1)(w, x),
                               atol=1e-10)
    np.testing.assert_allclose(fg.jacfwd(fg.checkpoint(_block), 1)(w, x),
                               fg.jacrev(_block, 1)(w, x), atol=1e-12)
    np.testing.assert_allclose(fg.vmap(fg.grad(remat), (None, 0))(w, np.stack([x, x])),
                               np.stack([fg.grad(plain)(w, x)] * 2), atol=1e-12)


def test_checkpoint_recomputes_instead_of_storing_residuals():
    x = np.linspace(0.0, 1.0, 4)
    _, plain_pb = fg.vjp(lambda x: _block(0.7, x), x)
    _, remat_pb = fg.vjp(fg.checkpoint(lambda x: _block(0.7, x)), x)
    _, saved_pb = fg.vjp(fg.checkpoint(lambda x: _block(0.7, x),
                                       policy="everything_saveable"), x)
    assert len(remat_pb._residuals) == 1                 # only the input
    assert len(plain_pb._residuals) > 3
    assert len(saved_pb._residuals) == len(plain_pb._residuals)
    # the backward program recomputes the forward: a checkpoint equation with tanh
    (eqn,) = [e for e in remat_pb._bwd.eqns if e.prim.name == "checkpoint"]
    assert any(e.prim.name == "tanh" for e in eqn.params["call_jaxpr"].eqns)
    ct = np.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(remat_pb(ct), plain_pb(ct), atol=1e-12)


def test_checkpoint_policy_is_checked():
    with pytest.raises(FungradValueError, match="unknown policy"):
        fg.checkpoint(fnp.sin, policy="dots_with_no_batch_dims")
    assert fg.remat is fg.checkpoint
    assert fg.checkpoint(fnp.sin, policy=fg.checkpoint_policies.nothing_saveable)(0.0) == 0.0


# ---------------------------------------------------------------------------
# linear_transpose and the hvp recipe
# ---------------------------------------------------------------------------

def test_linear_transpose():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    f = lambda x, y: {"u": A @ x - 2.0 * (B @ y), "v": fnp.sum(y)}  # noqa: E731
    ft = fg.linear_transpose(f, np.zeros(2), np.zeros(4))
    ct = {"u": rng.normal(size=3), "v": 1.5}
    tx, ty = ft(ct)
    np.testing.assert_allclose(tx, A.T @ ct["u"])
    np.testing.assert_allclose(ty, -2.0 * B.T @ ct["u"] + 1.5)
    # <ct, f(x)> == <f^T(ct), x>
    x, y = rng.normal(size=2), rng.normal(size=4)
    out = f(x, y)
    np.testing.assert_allclose(np.vdot(ct["u"], out["u"]) + ct["v"] * out["v"],
                               np.vdot(tx, x) + np.vdot(ty, y))
    with pytest.raises(FungradTypeError, match="not linear.*'sin'"):
        fg.linear_transpose(lambda x: fnp.sin(x), np.zeros(2))
    with pytest.raises(FungradTypeError, match="not linear.*'mul'"):
        fg.linear_transpose(lambda x: x * x, np.zeros(2))


def test_hvp_forward_over_reverse():
    def f(x):
        return fnp.sum(fnp.sin(x) * x ** 2) + fnp.prod(fnp.cos(x))

    x, v = np.array([0.3, -0.8, 1.1]), np.array([1.0, 2.0, -0.5])
    hvp = fg.jvp(fg.grad(f), (x,), (v,))[1]
    np.testing.assert_allclose(hvp, fg.hessian(f)(x) @ v, atol=1e-12)


# ---------------------------------------------------------------------------
# a user-defined primitive (the example of docs/extending.md)
# ---------------------------------------------------------------------------

softclip_p = Primitive("softclip", kind="elementwise")


def softclip(x):
    """x / (1 + |x|): a smooth clip to (-1, 1)."""
    return softclip_p.bind(x)


softclip_p.def_impl(lambda x: x / (1.0 + np.abs(x)))
softclip_p.def_shape(same_shape)
# d softclip(x) = dx / (1 + |x|)^2
softclip_p.def_jvp(lambda t, x, *, out: t / (1.0 + fnp.abs(x)) ** 2)
softclip_p.def_vjp(lambda ct, x, *, out: (ct / (1.0 + fnp.abs(x)) ** 2,))
softclip_p.def_vmap(elementwise_vmap(softclip_p))
softclip_p.def_emit(lambda x: f"({x} / (1.0 + np.abs({x})))")


def _softclip_ref(x):
    return x / (1.0 + np.abs(x))


@settings(max_examples=15)
@given(x=hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(-3.0, 3.0).filter(
    lambda v: abs(v) > 1e-3)))
def test_user_primitive_under_every_transform(x):
    np.testing.assert_allclose(softclip(x), _softclip_ref(x))
    loss = lambda x: fnp.sum(softclip(x) ** 3)  # noqa: E731
    np.testing.assert_allclose(fg.grad(loss)(x), num_grad(lambda x: np.sum(_softclip_ref(x) ** 3),
                                                          x), rtol=1e-5, atol=1e-7)
    j = num_jac(_softclip_ref, x)
    np.testing.assert_allclose(fg.jacfwd(softclip)(x), j, atol=1e-7)
    np.testing.assert_allclose(fg.jacrev(softclip)(x), j, atol=1e-7)
    np.testing.assert_allclose(fg.vmap(softclip)(x[:, None]), _softclip_ref(x)[:, None])
    np.testing.assert_allclose(fg.vmap(fg.grad(softclip))(x), np.diag(j), atol=1e-7)
    np.testing.assert_allclose(fg.hessian(loss)(x), num_jac(fg.grad(loss), x), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.kernels
def test_user_primitive_compiles_under_jit():
    x = np.linspace(-2.0, 2.0, 7)
    expected = fg.grad(lambda x: fnp.sum(softclip(x) ** 2))(x)
    with fg.config.override("disable_jit", False):
        step = fg.jit(fg.grad(lambda x: fnp.sum(softclip(x) ** 2)))
        np.testing.assert_allclose(step(x), expected, atol=1e-12)
        assert "np.abs" in step.lower(x).as_text()
