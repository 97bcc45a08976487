"""The one execution policy (backend/execution.py), and the wrappers that run through it."""
import numpy as np

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.backend import execution
from fungrad.config import config
from fungrad.interpreter import eval_jaxpr


def _program():
    return fg.make_jaxpr(lambda x: fnp.sum(fnp.exp(x) * x))(np.ones(5)).jaxpr


def test_tiered_policy_compiles_after_the_threshold():
    fg.clear_caches()
    jaxpr, x = _program(), np.linspace(-1, 1, 5)
    expected = eval_jaxpr(jaxpr, (), x)
    with config.override("jit_threshold", 2):
        run = execution.executable(jaxpr, tiered=True)
        for call in range(4):
            out = run((), [x])
            np.testing.assert_allclose(out[0], expected[0], rtol=1e-14)
            compiled = execution._entry(jaxpr).kernel is not None
            assert compiled == (call >= 2), call


def test_untiered_policy_compiles_at_once_and_settings_choose_the_interpreter():
    fg.clear_caches()
    jaxpr, x = _program(), np.arange(5.0)
    expected = eval_jaxpr(jaxpr, (), x)
    run = execution.executable(jaxpr, tiered=False)
    with config.override("disable_jit", True):
        np.testing.assert_allclose(run((), [x])[0], expected[0], rtol=1e-14)
        assert execution._entry(jaxpr).kernel is None and run.direct() is None
    np.testing.assert_allclose(run((), [x])[0], expected[0], rtol=1e-14)
    assert execution._entry(jaxpr).kernel is not None
    with config.override("debug_nans", True):
        assert run.direct() is None                  # the checked interpreter runs
        np.testing.assert_allclose(run((), [x])[0], expected[0], rtol=1e-14)


def test_results_own_their_memory():
    jaxpr = fg.make_jaxpr(lambda x: x[1:])(np.ones(3)).jaxpr
    x = np.ones(3)
    (out,) = execution.execute(jaxpr, (), [x])
    assert out.flags.writeable and out.base is None      # not a view into x


def test_jvp_and_vjp_convert_a_tangent_or_cotangent_of_another_dtype():
    # a float32 tangent for a float64 primal (and the reverse for a cotangent) is
    # converted to the primal's dtype, in the wrappers' own code path
    f = lambda x: fnp.sin(x) * x                        # noqa: E731
    x = np.array([0.5, 1.5])
    y, t = fg.jvp(f, (x,), (np.ones(2, np.float32),))
    np.testing.assert_allclose(t, np.cos(x) * x + np.sin(x), rtol=1e-15)
    assert t.dtype == np.float64
    _, pullback = fg.vjp(f, x)
    (ct,) = pullback(np.ones(2, np.float32))
    np.testing.assert_allclose(ct, np.cos(x) * x + np.sin(x), rtol=1e-15)
