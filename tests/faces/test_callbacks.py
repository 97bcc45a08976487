"""fungrad.pure_callback: host NumPy/SciPy code inside jit, vmap and (through
custom_vjp) grad."""
import numpy as np
import pytest
import warnings

import fungrad as fg
import fungrad.numpy as fnp

scipy_integrate = pytest.importorskip("scipy.integrate")


def _sds(x):
    return fg.ShapeDtypeStruct(np.shape(x), np.result_type(x))


def test_pure_callback_eager_and_under_jit():
    calls = []

    def host(x):
        calls.append(type(x))
        return np.cumsum(x)                 # plain NumPy, on concrete arrays
    f = lambda x: 2.0 * fg.pure_callback(host, _sds(x), x)  # noqa: E731
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(f(x), [2.0, 6.0, 12.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(fg.jit(f)(x), [2.0, 6.0, 12.0])
        np.testing.assert_array_equal(fg.jit(f)(x + 1), [4.0, 10.0, 18.0])
    assert all(t is np.ndarray or issubclass(t, np.ndarray) for t in calls)


def test_pytree_results_kwargs_and_declared_shapes_are_checked():
    out = fg.pure_callback(lambda a, scale: {"s": a.sum() * scale, "d": a * 2},
                           {"s": fg.ShapeDtypeStruct((), np.float64),
                            "d": fg.ShapeDtypeStruct((2,), np.float64)},
                           np.ones(2), scale=3.0)
    assert float(out["s"]) == 6.0 and out["d"].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="shape"):
        fg.pure_callback(lambda a: a, fg.ShapeDtypeStruct((3,), np.float64), np.ones(2))
    with pytest.raises(TypeError, match="ShapeDtypeStruct"):
        fg.pure_callback(lambda a: a, (3,), np.ones(2))


@pytest.mark.parametrize("method", ["sequential", "expand_dims", "broadcast_all"])
def test_vmap_methods(method):
    seen = []

    def host(x, y):
        seen.append((x.shape, y.shape))
        return x * y

    def f(x, y):
        return fg.pure_callback(host, _sds(x), x, y, vmap_method=method)
    xs, y = np.arange(6.0).reshape(3, 2), np.array([1.0, 10.0])
    np.testing.assert_array_equal(fg.vmap(f, in_axes=(0, None))(xs, y), xs * y)
    expected = {"sequential": [((2,), (2,))] * 3, "expand_dims": [((3, 2), (1, 2))],
                "broadcast_all": [((3, 2), (3, 2))]}[method]
    assert seen == expected
    np.testing.assert_array_equal(fg.vmap(f, in_axes=(1, None), out_axes=1)(xs.T, y), xs.T * y[:, None])


def test_vmap_without_a_method_and_grad_raise_like_jax():
    f = lambda x: fg.pure_callback(np.sin, _sds(x), x)  # noqa: E731
    with pytest.raises(NotImplementedError, match="vmap_method"):
        fg.vmap(f)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"(?s)test_callbacks.py:\d+.*custom_vjp"):
        fg.grad(lambda x: fnp.sum(f(x)))(np.ones(2))


# An ODE solved by SciPy inside a custom_vjp: y' = -k * y, y(0) = y0, observed at ts.
# The adjoint (here: forward sensitivities dy/dy0 and dy/dk, integrated by SciPy too)
# gives the cotangents, as a SciPy-backed solver in a JAX program would.
TS = np.linspace(0.0, 2.0, 5)


def _solve(y0, k):
    return scipy_integrate.odeint(lambda y, t: -k * y, y0, TS, rtol=1e-10, atol=1e-12)[:, 0]


def _sensitivities(y0, k):
    def rhs(state, t):
        y, s_y0, s_k = state
        return [-k * y, -k * s_y0, -y - k * s_k]
    sol = scipy_integrate.odeint(rhs, [y0, 1.0, 0.0], TS, rtol=1e-10, atol=1e-12)
    return sol[:, 1], sol[:, 2]


@fg.custom_vjp
def ode_solve(y0, k):
    return fg.pure_callback(lambda a, b: _solve(float(a), float(b)),
                            fg.ShapeDtypeStruct(TS.shape, np.float64), y0, k)


def _fwd(y0, k):
    return ode_solve(y0, k), (y0, k)


def _bwd(res, ct):
    y0, k = res
    d_y0, d_k = fg.pure_callback(lambda a, b: _sensitivities(float(a), float(b)),
                                 (fg.ShapeDtypeStruct(TS.shape, np.float64),) * 2, y0, k)
    return fnp.sum(ct * d_y0), fnp.sum(ct * d_k)


ode_solve.defvjp(_fwd, _bwd)


def test_custom_vjp_around_scipy_odeint_gives_exact_gradients():
    def loss(y0, k):
        return fnp.sum((ode_solve(y0, k) - 0.5) ** 2)
    y0, k = 1.5, 0.7
    exact = y0 * np.exp(-k * TS)
    g_y0 = np.sum(2 * (exact - 0.5) * np.exp(-k * TS))
    g_k = np.sum(2 * (exact - 0.5) * (-TS) * exact)
    gy, gk = fg.grad(loss, argnums=(0, 1))(y0, k)
    np.testing.assert_allclose([gy, gk], [g_y0, g_k], rtol=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jy, jk = fg.jit(fg.grad(loss, argnums=(0, 1)))(y0, k)
    np.testing.assert_allclose([jy, jk], [g_y0, g_k], rtol=1e-7)


def test_callback_result_is_an_array():
    out = fg.pure_callback(lambda a: a + 1, _sds(np.ones(2)), np.ones(2))
    assert isinstance(out, fg.Array)


# --- fungrad.debug.print / callback -------------------------------------------------

def test_debug_print_prints_the_values_of_each_call_inside_jit(capsys):
    @fg.jit
    def f(x):
        fg.debug.print("x = {x}", x=x)
        fg.debug.print("x = {x}", x=x)        # not merged with the first (no CSE)
        return x * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert float(f(1.0)) == 2.0 and float(f(2.0)) == 4.0
    assert capsys.readouterr().out.splitlines() == ["x = 1.0"] * 2 + ["x = 2.0"] * 2


def test_debug_print_survives_dce_under_grad_and_vmap(capsys):
    def g(x):
        y = fnp.sin(x)
        fg.debug.print("y={:.4f}", y)         # its result is unused: dce must keep it
        return y * x
    assert "debug_callback" in str(fg.make_jaxpr(fg.grad(g))(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(fg.grad(g)(1.0), np.sin(1.0) + np.cos(1.0))
        np.testing.assert_allclose(fg.jit(fg.grad(g))(1.0), np.sin(1.0) + np.cos(1.0))
    assert capsys.readouterr().out.splitlines() == ["y=0.8415"] * 2
    seen = []
    fg.vmap(lambda x: fg.debug.callback(lambda v: seen.append(v.shape), x) or x)(np.ones((3, 2)))
    assert seen == [(3, 2)]
