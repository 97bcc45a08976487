"""Process state: the one cache registry, the one execution policy, and evaluation
outside the current trace."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import caches, core
from fungrad.backend import execution
from fungrad.config import config
from fungrad.interpreter import eval_concrete, eval_jaxpr


@given(maxsize=st.integers(1, 8), keys=st.lists(st.integers(0, 20), max_size=40))
def test_cache_is_bounded_and_evicts_the_oldest_entry(maxsize, keys):
    cache = caches.Cache("test", maxsize)
    model: dict = {}        # insertion order; a new key evicts the oldest when full
    for k in keys:
        assert cache.put(k, -k) == -k
        if k not in model and len(model) == maxsize:
            del model[next(iter(model))]
        model[k] = -k
        assert len(cache) <= maxsize and cache[k] == -k
    assert list(cache.items()) == list(model.items())


def test_clear_caches_empties_every_registered_cache():
    f = fg.jit(lambda x: fnp.sin(x) * 2.0)
    f(np.ones(3))
    fg.grad(lambda x: fnp.sum(fnp.tanh(x)))(np.ones(4))
    sizes = caches.cache_sizes()
    assert sizes["core.avals"] > 0 and sizes["api.rewrites"] > 0
    assert sizes["backend.kernels"] > 0 and sizes["jit.traces"] > 0
    fg.clear_caches()
    assert all(n == 0 for n in caches.cache_sizes().values()), caches.cache_sizes()
    np.testing.assert_allclose(f(np.ones(3)), 2 * np.sin(np.ones(3)))   # still works


def test_a_cache_name_is_registered_once():
    with pytest.raises(ValueError, match="registered already"):
        caches.new_cache("core.avals", 4)


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


def test_outside_trace_evaluates_concretely_inside_a_trace():
    seen = []

    def f(x):
        assert core.current_trace() is not None
        with core.outside_trace():
            assert core.current_trace() is None
            seen.append(fnp.sin(np.float64(0.5)))    # a NumPy value, not a tracer
        return x * 2.0
    fg.make_jaxpr(f)(1.0)
    assert isinstance(seen[0], (np.ndarray, np.generic, float))
    assert core.current_trace() is None


def test_eval_concrete_ignores_the_enclosing_trace():
    inner = fg.make_jaxpr(lambda x: x * 3.0)(1.0).jaxpr
    values = []

    def f(x):
        values.extend(eval_concrete(inner, [np.float64(2.0)]))
        return x
    fg.make_jaxpr(f)(1.0)
    assert values == [6.0]


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
