"""Kernels shared across shapes (issue 11, items 2-3).

A kernel's text holds no dimension size (backend/codegen.py: sizes are symbols
read from the inputs' shapes or passed as parameters), so the same program at
other shapes is the same text: one numba compile, one dispatcher, one disk-cache
artefact.  Every kernel result here is compared with the NumPy interpreter, at
sizes 0, 1, coincident and distinct; programs whose sizes follow the same
pattern with no coincidence must have one text and compile once.
"""
import gc
import os
import re
import warnings
import weakref

os.environ.setdefault("NUMBA_OPT", "0")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.backend import codegen, disk_cache, numba_jit
from fungrad.config import config
from fungrad.interpreter import eval_jaxpr

stats = numba_jit.stats


def _made():
    """Kernels made so far by numba: compiled or loaded from the disk cache."""
    return stats["compiled"] + stats["cache_loaded"]


def _run(f, *args):
    """(kernel source, kernel) of `f` at these arguments, after checking the kernel's
    outputs against the interpreter's (no fallback allowed)."""
    closed = fg.make_jaxpr(f)(*args)
    kernel = numba_jit.compile_jaxpr(closed.jaxpr)
    assert kernel.fallback is None, kernel.fallback
    with warnings.catch_warnings():
        warnings.simplefilter("error", numba_jit.FungradKernelWarning)
        got = kernel(closed.consts, list(args))
    assert kernel.fallback is None, kernel.fallback
    with np.errstate(all="ignore"):
        want = eval_jaxpr(closed.jaxpr, closed.consts, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        if np.issubdtype(w.dtype, np.inexact):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11)
        else:
            np.testing.assert_array_equal(g, w)
    return kernel.source.source, kernel


def _run_made(made):
    f, args = made
    return _run(f, *args)


# --- program families: make(rng, a, b, c) -> (f, args) ---------------------------------

def _broadcast_reduce(rng, a, b, c):
    x, y, s = rng.normal(size=(a, b)), rng.normal(size=(b,)), rng.normal()

    def f(x, y, s):
        z = fnp.tanh(x * y) + s
        centred = x - fnp.sum(x, axis=0, keepdims=True)
        return fnp.sum(z, axis=1), fnp.prod(centred * 0.5 + 1.0, axis=0), fnp.sum(z * z)
    return f, (x, y, s)


def _transpose_reshape(rng, a, b, c):
    x = rng.normal(size=(a, b, c))

    def f(x):
        t = fnp.transpose(x, (2, 0, 1))
        r = t.reshape(c, a * b) * 2.0
        flat = x.reshape(a * b * c)
        return r, fnp.sum(fnp.sin(flat)), fnp.swapaxes(x, 0, 1) + 1.0
    return f, (x,)


def _slices_pad_concat(rng, a, b, c):
    x = rng.normal(size=(a, b))

    def f(x):
        head, tail = x[1:], x[:1]
        rolled = fnp.concatenate([head, tail], axis=0)
        padded = lax.pad(x, 0.5, ((1, 2, 0), (0, 1, 1)))
        return rolled * x, x[::-1, ::2] * 3.0, padded, fnp.concatenate([x, x * 2.0], axis=1)
    return f, (x,)


def _gather_scatter(rng, a, b, c):
    a = max(a, 1)
    x = rng.normal(size=(a, b))
    idx = rng.integers(0, a, size=c)

    def f(x, idx):
        rows = x[idx]
        added = x.at[idx].add(1.0)
        return fnp.sin(rows) * 2.0, added, x.at[idx].set(-1.0)
    return f, (x, idx)


def _dot(rng, a, b, c):
    x, y = rng.normal(size=(a, b)), rng.normal(size=(b, c))
    x2 = rng.normal(size=(a, c))
    xb, yb = rng.normal(size=(c, a, b)), rng.normal(size=(b, c, a))

    def f(x, y, x2, xb, yb):
        batched = lax.dot_general(xb, yb, (((2,), (0,)), ((0,), (1,))))   # general path
        return x @ y, fnp.einsum("ij,ik->jk", x, x2), batched, fnp.tanh(x @ y) @ y.T
    return f, (x, y, x2, xb, yb)


def _control_flow(rng, a, b, c):
    xs, v = rng.normal(size=(a, b)), rng.normal(size=(b,))

    def f(xs, v):
        def step(carry, x):
            new = carry * 0.5 + fnp.tanh(x)
            return new, new * 2.0
        last, ys = lax.scan(step, v, xs)
        rev_last, _ = lax.scan(step, v, xs, reverse=True)
        n, w = lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * 0.5 + 1.0),
                              (0, v))
        picked = lax.cond(fnp.sum(v) > 0, lambda u: u * 2.0, lambda u: -u, last)
        return last, ys, rev_last, n, w, picked
    return f, (xs, v)


def _mean_grad(rng, a, b, c):
    a = max(a, 1)
    x, w, y = rng.normal(size=(a, b)), rng.normal(size=(b, c)), rng.normal(size=(a, c))

    def loss(w, x, y):
        return fnp.mean((fnp.tanh(x @ w) - y) ** 2)
    return fg.grad(loss), (w, x, y)


def _sizes_not_in_inputs(rng, a, b, c):
    x = rng.normal(size=(a,))

    def f(x):
        doubled = fnp.concatenate([x, x[::-1]])           # 2a: no input has it
        return doubled * fnp.arange(2 * a), fnp.outer(x, fnp.ones(b + 2))
    return f, (x,)


FAMILIES = {f.__name__[1:]: f for f in (
    _broadcast_reduce, _transpose_reshape, _slices_pad_concat, _gather_scatter, _dot,
    _control_flow, _mean_grad, _sizes_not_in_inputs)}

# sizes far apart (primes): no sum or product of them coincides with another size
GENERIC = [(11, 13, 17), (19, 23, 29)]


def _instance(pattern, values):
    """Sizes of a pattern: 0 and 1 as they are, class k as values[k]."""
    return tuple(p if p in (0, 1) else values[p - 2] for p in pattern)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_generic_shapes_share_one_text_and_one_compile(name):
    make = FAMILIES[name]
    rng = np.random.default_rng(0)
    src1, k1 = _run_made(make(rng, *GENERIC[0]))
    before = _made()
    src2, k2 = _run_made(make(rng, *GENERIC[1]))
    assert src1 == src2
    assert _made() == before, "the second shape compiled again"
    assert k1.fn is k2.fn       # one dispatcher
    body = src1.split("\n", 1)[1]
    assert not re.search(r"(?<![\w.])(11|13|17)(?![\w.])", body), src1


# each example compiles up to two kernels; FUNGRAD_SHARED_EXAMPLES=200 for a longer run
@settings(max_examples=int(os.environ.get("FUNGRAD_SHARED_EXAMPLES", "10")), deadline=None)
@given(name=st.sampled_from(sorted(FAMILIES)),
       pattern=st.tuples(*[st.sampled_from([0, 1, 2, 3, 4])] * 3),
       small=st.lists(st.integers(2, 5), min_size=3, max_size=3),
       seed=st.integers(0, 2**16))
def test_every_shape_pattern_equals_the_interpreter_and_shares_by_pattern(
        name, pattern, small, seed):
    """Sizes 0, 1 and classes of equal sizes: small values (which may coincide with
    each other and with derived sizes) and two generic instances of the pattern,
    which must share one text; every result equals the interpreter's."""
    make = FAMILIES[name]
    rng = np.random.default_rng(seed)
    _run_made(make(rng, *_instance(pattern, small)))
    src1, k1 = _run_made(make(rng, *_instance(pattern, GENERIC[0])))
    before = _made()
    src2, k2 = _run_made(make(rng, *_instance(pattern, GENERIC[1])))
    assert src1 == src2
    assert _made() == before


def test_coincident_and_different_sizes_are_different_texts_with_right_answers():
    f = lambda x, y: (fnp.sin(x) + y.T, fnp.sum(x, axis=0) * fnp.sum(y, axis=1))  # noqa: E731
    rng = np.random.default_rng(1)
    square, _ = _run(f, rng.normal(size=(5, 5)), rng.normal(size=(5, 5)))
    oblong, _ = _run(f, rng.normal(size=(5, 7)), rng.normal(size=(7, 5)))
    square2, _ = _run(f, rng.normal(size=(8, 8)), rng.normal(size=(8, 8)))
    oblong2, _ = _run(f, rng.normal(size=(9, 4)), rng.normal(size=(4, 9)))
    assert square != oblong
    assert square == square2 and oblong == oblong2
    assert "_d1" not in square and "_d1" in oblong


def test_sizes_no_input_has_are_parameters():
    f = lambda x: fnp.concatenate([x, x]) * 2.0  # noqa: E731
    ks = codegen.generate(fg.make_jaxpr(f)(np.ones(6)).jaxpr)
    assert ks.dims == (12,) and "(a, _d0):" in ks.source and "_d1 = a.shape[0]" in ks.source
    jf = fg.jit(f)
    for n in (3, 6, 10):
        x = np.arange(float(n))
        np.testing.assert_array_equal(jf(x), np.concatenate([x, x]) * 2.0)
        np.testing.assert_array_equal(jf(x), np.concatenate([x, x]) * 2.0)   # the kernel


def test_sizes_read_from_inputs_keep_the_direct_call():
    jf = fg.jit(lambda x, y: fnp.tanh(x) @ y + 1.5)
    rng = np.random.default_rng(2)
    for n in (4, 7):
        x, y = rng.normal(size=(n, 3)), rng.normal(size=(3, 5))
        jf(x, y)
        np.testing.assert_allclose(jf(x, y), np.tanh(x) @ y + 1.5, rtol=1e-13)
    traces = list(jf._cache.values())
    assert len(traces) == 2
    for compiled in traces:                      # numba's entry point, called directly
        assert compiled.executable.direct() is not None
    assert traces[0].executable.direct() is traces[1].executable.direct()


def test_jit_at_many_batch_sizes_compiles_once():
    """The ragged last batch: jit(grad) of a mean loss at many batch sizes."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3)) * 0.1

    def loss(w, x, y):    # (the weight term makes it a program of its own: a fresh text)
        return fnp.mean((fnp.tanh(x @ w) - y) ** 2) + 0.0123 * fnp.sum(w)
    step = fg.jit(fg.grad(loss))
    start = _made()
    # (a batch of 3 or 4, equal to a feature size, is another pattern: another text)
    for batch in (2, 5, 8, 13, 21, 34, 1000):
        x, y = rng.normal(size=(batch, 4)), rng.normal(size=(batch, 3))
        got = step(w, x, y)
        p = np.tanh(x @ w)
        want = x.T @ (2 * (p - y) * (1 - p * p)) / y.size + 0.0123
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert _made() - start == 1


def test_float32_size_literals_are_exact():
    dims = codegen._Dims()
    for n in (3, 7, 10, 49, 1000):
        dims.dim(n)
    for n in (3, 7, 10, 21, 49, 70, 1000):
        for dtype in (np.float32, np.float64):
            for val in (dtype(n), dtype(1) / dtype(n), dtype(1.0 / n), -dtype(1.0 / n)):
                text = dims.size_literal(float(val), dtype)
                if text is None:
                    continue
                env = {d.text: int(d) for d in dims.by_value.values()}
                env["np"] = np
                got = eval(text, env)      # what the kernel computes
                assert np.asarray(got).dtype == np.dtype(dtype) or dtype == np.float64
                assert dtype(got) == val and float(dtype(got)) == float(val), (text, val)
    assert dims.size_literal(2.5, np.float64) is None
    for odd in (5e-324, 1e-300, 1e300, np.finfo(np.float64).max, np.inf, np.nan, 0.0, -0.0):
        assert dims.size_literal(odd, np.float64) is None
    assert dims.size_literal(1.0 / 3.0, np.float64) == "(1.0 / _d0)"
    assert dims.size_literal(-1.0 / 3.0, np.float64) == "(-(1.0 / _d0))"
    assert dims.size_literal(np.nextafter(1.0 / 3.0, 1.0), np.float64) is None
    assert dims.size_literal(21.0, np.float64) == "float((_d0 * _d1))"
    dims.dim(2)
    assert dims.size_literal(2.0, np.float64) is None     # a constant far more often
    assert dims.size_literal(0.5, np.float64) is None


_leaf = st.one_of(st.integers(-3, 40), st.integers(0, 3))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_dim_arithmetic_text_evaluates_to_its_value(data):
    dims = codegen._Dims()
    pool = [dims.dim(n) for n in data.draw(st.lists(st.integers(2, 30), min_size=1,
                                                    max_size=4))]
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
           lambda a, b: a // b if b else a, lambda a, b: a % b if b else a,
           lambda a, b: -a]
    values = list(pool) + [data.draw(_leaf)]
    for _ in range(data.draw(st.integers(1, 8))):
        a = data.draw(st.sampled_from(values))
        b = data.draw(st.sampled_from(values))
        values.append(data.draw(st.sampled_from(ops))(a, b))
    env = {d.text: int(d) for d in dims.by_value.values()}
    for v in values:
        assert eval(repr(v), env) == int(v), (repr(v), int(v))
        assert eval(f"{v}", env) == int(v)


def test_a_shared_module_lives_while_any_kernel_using_it_does():
    f = lambda x: fnp.exp(x) * 0.6125  # noqa: E731
    k1 = numba_jit.compile_jaxpr(fg.make_jaxpr(f)(np.ones(4)).jaxpr)
    k2 = numba_jit.compile_jaxpr(fg.make_jaxpr(f)(np.ones(9)).jaxpr)
    np.testing.assert_allclose(k1([], [np.ones(4)])[0], np.exp(np.ones(4)) * 0.6125)
    np.testing.assert_allclose(k2([], [np.ones(9)])[0], np.exp(np.ones(9)) * 0.6125)
    assert k1.fn is k2.fn
    ref = weakref.ref(k1.fn)
    del k1
    gc.collect()
    assert ref() is not None
    np.testing.assert_allclose(k2([], [np.arange(9.0)])[0], np.exp(np.arange(9.0)) * 0.6125)
    k3 = numba_jit.compile_jaxpr(fg.make_jaxpr(f)(np.ones(5)).jaxpr)
    np.testing.assert_allclose(k3([], [np.ones(5)])[0], np.exp(np.ones(5)) * 0.6125)
    del k2, k3
    gc.collect()
    assert ref() is None


def test_one_disk_artefact_for_every_shape(tmp_path):
    with config.override("cache_dir", str(tmp_path)):
        f = lambda x: fnp.cos(x) * 0.8125 + x  # noqa: E731
        kernels = []
        for n in (3, 5, 8):
            _, k = _run(f, np.linspace(0.0, 1.0, n))
            kernels.append(k)
        files = [p for p in os.listdir(os.path.join(tmp_path, disk_cache.KERNELS))
                 if not p.startswith(".")]
    assert len(files) == 1, files


_OTHER_PROCESS = """
import sys, json, numpy as np, fungrad as fg, fungrad.numpy as fnp
n = int(sys.argv[1])
x = np.linspace(0.0, 1.0, n)
out = fg.jit(lambda x: fnp.sum(fnp.cos(x) * 0.8125 + x))(x)
assert abs(float(out) - float(np.sum(np.cos(x) * 0.8125 + x))) < 1e-12
print(json.dumps(dict(fg.config.kernels)))
"""


def test_another_process_loads_the_kernel_compiled_at_another_shape(tmp_path):
    import json
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, FUNGRAD_CACHE_DIR=str(tmp_path), FUNGRAD_SYNC_COMPILE="1",
               PYTHONPATH=root)
    counts = []
    for n in (3, 7):
        r = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(n)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        counts.append(json.loads(r.stdout.splitlines()[-1]))
    assert counts[0]["compiled"] == 1 and counts[0]["cache_loaded"] == 0
    assert counts[1]["compiled"] == 0 and counts[1]["cache_loaded"] == 1


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(2, 500), min_size=1, max_size=5),
       val=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.integers(1, 10**6).map(lambda k: 1.0 / k),
                     st.integers(1, 10**6).map(float)),
       neg=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_a_size_literal_is_exactly_the_literal_or_not_used(sizes, val, neg, dtype):
    dims = codegen._Dims()
    for n in sizes:
        dims.dim(n)
    with np.errstate(over="ignore"):
        val = float(dtype(-val if neg else val))
    text = dims.size_literal(val, dtype)
    if text is None:
        return
    env = {d.text: int(d) for d in dims.by_value.values()}
    env["np"] = np
    got = eval(text, env)
    assert float(dtype(got)) == val and np.signbit(got) == np.signbit(val), (text, val)
