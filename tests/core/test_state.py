"""Process state: the one cache registry, and evaluation outside the current trace."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import caches, core
from fungrad.interpreter import eval_concrete


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
