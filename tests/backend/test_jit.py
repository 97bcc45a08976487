"""fungrad.jit: tracing cache, static arguments, composition with transforms."""
import os

# these tests check results, not speed: LLVM at -O0 compiles kernels ~3x faster
# (set before numba is first imported; test modules are imported at collection)
os.environ.setdefault("NUMBA_OPT", "0")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.config import config
from fungrad.errors import FungradTypeError


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path_factory):
    old = config.cache_dir
    object.__setattr__(config, "cache_dir", str(tmp_path_factory.getbasetemp() / "jit-cache"))
    yield
    object.__setattr__(config, "cache_dir", old)


def loss(w, x):
    return fnp.sum(fnp.tanh(x @ w) ** 2) + 0.5 * fnp.sum(w * w)


W = np.linspace(-1, 1, 6).reshape(3, 2)
X = np.linspace(0, 2, 12).reshape(4, 3)


def test_exact_values():
    assert fg.jit(lambda x: x * x)(3.0) == 9.0
    assert fg.jit(fg.grad(lambda x: x * x))(3.0) == 6.0
    out = fg.jit(lambda x: x * 2.0)(np.ones(2))
    assert isinstance(out, np.ndarray) and out.tolist() == [2.0, 2.0]


def test_traces_once_per_signature():
    calls = []

    def f(x):
        calls.append(1)
        return fnp.sin(x) + 1.0
    jf = fg.jit(f)
    for _ in range(3):
        jf(np.ones(3))
    assert len(calls) == 1
    jf(np.ones(4))                      # new shape: a new trace
    jf(np.ones(3, np.float32))          # new dtype: a new trace
    assert len(calls) == 3
    np.testing.assert_allclose(jf(np.zeros(3)), np.ones(3))


def test_jit_grad_and_grad_jit_agree_with_eager():
    want = fg.grad(loss)(W, X)
    np.testing.assert_allclose(fg.jit(fg.grad(loss))(W, X), want, rtol=1e-12)
    np.testing.assert_allclose(fg.grad(fg.jit(loss))(W, X), want, rtol=1e-12)
    np.testing.assert_allclose(fg.jit(fg.grad(fg.jit(loss)))(W, X), want, rtol=1e-12)


def test_jit_jacrev_jacfwd_vmap_hessian_compose():
    f = lambda x: fnp.tanh(X @ x)  # noqa: E731
    x = np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(fg.jit(fg.jacrev(f))(x), fg.jacrev(f)(x), rtol=1e-12)
    np.testing.assert_allclose(fg.jit(fg.jacfwd(f))(x), fg.jacrev(f)(x), rtol=1e-12)
    g = lambda x: fnp.sum(fnp.sin(x) * x)  # noqa: E731
    xs = np.linspace(-1, 1, 12).reshape(4, 3)
    np.testing.assert_allclose(fg.jit(fg.vmap(fg.grad(g)))(xs),
                               np.stack([fg.grad(g)(r) for r in xs]), rtol=1e-12)
    np.testing.assert_allclose(fg.vmap(fg.jit(g))(xs), [g(r) for r in xs], rtol=1e-12)
    np.testing.assert_allclose(fg.jit(fg.hessian(g))(x), fg.hessian(g)(x), rtol=1e-12)


def test_pytrees_and_kwargs():
    def f(params, x, *, scale):
        return {"out": fnp.sum(params["w"] * x) * scale, "b": params["b"] + 1.0}
    jf = fg.jit(f)
    params = {"w": np.ones(3), "b": np.float64(2.0)}
    r = jf(params, np.arange(3.0), scale=2.0)
    assert set(r) == {"out", "b"} and float(r["out"]) == 6.0 and float(r["b"]) == 3.0
    g = fg.jit(fg.grad(lambda p, x: fnp.sum(p["w"] * x) + p["b"]))(params, np.arange(3.0))
    assert g["w"].tolist() == [0.0, 1.0, 2.0] and float(g["b"]) == 1.0


def test_static_args_by_value_and_unhashable_error():
    calls = []

    def f(x, n, mode="sum"):
        calls.append((n, mode))
        y = x ** n
        return fnp.sum(y) if mode == "sum" else y
    jf = fg.jit(f, static_argnums=1, static_argnames="mode")
    assert float(jf(np.full(2, 2.0), 3)) == 16.0
    assert float(jf(np.full(2, 2.0), 3)) == 16.0
    assert jf(np.full(2, 2.0), 2, mode="none").tolist() == [4.0, 4.0]
    assert calls == [(3, "sum"), (2, "none")]
    with pytest.raises(FungradTypeError, match="not hashable"):
        fg.jit(lambda x, shape: x, static_argnums=1)(np.ones(2), [2, 3])


def test_python_branch_on_traced_value_is_guarded():
    def f(x):
        if x > 0:
            return x
        return -x
    assert fg.jit(f)(1.0) == 1.0 and fg.jit(f)(-3.0) == 3.0   # see test_guards.py
    # where works
    assert float(fg.jit(lambda x: fnp.where(x > 0, x, -x))(-2.0)) == 2.0


def test_lower_as_text_shows_jaxpr_and_kernel():
    text = fg.jit(fg.grad(loss)).lower(W, X).as_text()
    assert "lambda" in text and "dot_general" in text
    assert "def kernel_" in text and "# " in text and "_vm_tanh(" in text  # vecmath.py


def test_closure_constants_are_read_at_trace_time():
    c = np.array([1.0, 2.0])
    jf = fg.jit(lambda x: x * c)
    np.testing.assert_array_equal(jf(np.ones(2)), c)


def test_disable_jit_gives_identical_results():
    jf = fg.jit(fg.grad(loss))
    fast = jf(W, X)
    with config.override("disable_jit", True):
        slow = fg.jit(fg.grad(loss))(W, X)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


@settings(max_examples=10)
@given(x=hnp.arrays(np.float64, 5, elements=st.floats(-2, 2)),
       t=hnp.arrays(np.float64, 5, elements=st.floats(-1, 1)))
def test_jit_grad_matches_finite_differences(x, t):
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x * x) + fnp.log1p(x * x) + fnp.sin(x) ** 2)  # noqa
    g = fg.jit(fg.grad(f))(x)
    h = 1e-6
    fd = (float(f(x + h * t)) - float(f(x - h * t))) / (2 * h)
    assert abs(np.dot(g, t) - fd) < 1e-6 * (1 + abs(fd))
