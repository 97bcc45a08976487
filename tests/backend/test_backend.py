"""The numba backend agrees with the interpreter; tiers, disk cache, fallbacks.

Compiles are the cost here (~0.1-0.3 s each): each table test builds one
kernel holding many primitives and draws many inputs for it.
"""
import os
import subprocess
import sys
import textwrap
import warnings

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
from fungrad import lax
from fungrad.backend import codegen, numba_jit
from fungrad.config import config
from fungrad.core import Primitive, ShapedArray
from fungrad.interpreter import eval_jaxpr


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path_factory, monkeypatch):
    folder = str(tmp_path_factory.getbasetemp() / "kernel-cache")
    monkeypatch.setattr(config, "cache_dir", folder, raising=False)
    object.__setattr__(config, "cache_dir", folder)
    yield


def _compile(closed):
    return numba_jit.compile_jaxpr(closed.jaxpr)


def _check(closed, args, kernel=None, rtol=None):
    """Kernel outputs equal interpreter outputs (1e-12 / 1e-5 relative for f64 / f32)."""
    kernel = kernel or _compile(closed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", numba_jit.FungradKernelWarning)
        got = kernel(closed.consts, args)
    want = eval_jaxpr(closed.jaxpr, closed.consts, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype, (g, w)
        tol = rtol if rtol is not None else (1e-5 if w.dtype == np.float32 else 1e-12)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * 1e-3, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)
        assert g.base is None or g.flags.owndata or isinstance(g.base, object)
    return kernel


# --- elementwise primitives: one kernel per (dtype, rank) ------------------------------

UNARY = {  # op: domain
    lax.neg: (-3, 3), lax.abs: (-3, 3), lax.sign: (-3, 3), lax.exp: (-3, 3),
    lax.exp2: (-3, 3), lax.expm1: (-3, 3), lax.log: (0.1, 5), lax.log1p: (-0.5, 3),
    lax.sqrt: (0.1, 5), lax.rsqrt: (0.1, 5), lax.cbrt: (-3, 3), lax.sin: (-3, 3),
    lax.cos: (-3, 3), lax.tan: (-1.2, 1.2), lax.asin: (-0.9, 0.9), lax.acos: (-0.9, 0.9),
    lax.atan: (-3, 3), lax.sinh: (-3, 3), lax.cosh: (-3, 3), lax.tanh: (-3, 3),
    lax.asinh: (-3, 3), lax.acosh: (1.1, 4), lax.atanh: (-0.9, 0.9), lax.logistic: (-5, 5),
    lax.erf: (-3, 3), lax.erfc: (-3, 3), lax.erf_inv: (-0.99, 0.99), lax.lgamma: (0.1, 5),
    lax.floor: (-3, 3), lax.ceil: (-3, 3), lax.round: (-3, 3), lax.square: (-3, 3),
    lambda x: lax.integer_pow(x, 3): (-3, 3), lambda x: lax.integer_pow(x, -2): (0.5, 3),
    lambda x: lax.integer_pow(x, 5): (-2, 2), lax.stop_gradient: (-3, 3),
}
BINARY = [lax.add, lax.sub, lax.mul, lax.div, lax.rem, lax.max, lax.min, lax.atan2,
          lax.nextafter, lambda x, y: lax.pow(lax.abs(x), y)]
COMPARE = [lax.eq, lax.ne, lax.lt, lax.le, lax.gt, lax.ge]


def _unary_program(x_list):
    return [op(x) for op, x in zip(UNARY, x_list, strict=True)]


def _binary_program(x, y, s):
    outs = [op(x, y) for op in BINARY] + [op(x, s) for op in BINARY[:4]]
    cmp = [op(x, y) for op in COMPARE]
    outs += cmp
    outs += [lax.select(cmp[2], x, y), lax.select(cmp[0], s, y)]
    outs += [lax.convert_element_type(cmp[1], x.dtype), lax.convert_element_type(x, np.int32),
             lax.convert_element_type(x, np.bool_), lax.is_finite(lax.div(x, y)),
             lax.bitwise_and(cmp[2], cmp[4]), lax.bitwise_or(cmp[2], cmp[4]),
             lax.bitwise_xor(cmp[2], cmp[4]), lax.bitwise_not(cmp[2])]
    return outs


def _values(data, shape, dtype, lo, hi, label):
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)), label=label)
    return x.astype(dtype)


_kernels: dict = {}


def _cached_kernel(name, closed):
    if name not in _kernels:
        _kernels[name] = _compile(closed)
    return _kernels[name]


@pytest.mark.parametrize("dtype,shape", [(np.float64, (3, 4)), (np.float32, (3, 4)),
                                         (np.float64, ()), (np.float32, ()),
                                         (np.float64, (0, 3))],
                         ids=["2d-f64", "2d-f32", "0d-f64", "0d-f32", "size0-f64"])
@settings(max_examples=8)
@given(data=st.data())
def test_unary_primitives_compiled_equal_interpreter(dtype, shape, data):
    xs = [_values(data, shape, dtype, lo, hi, f"x{i}") for i, (lo, hi) in
          enumerate(UNARY.values())]
    closed = fg.make_jaxpr(lambda *xs: _unary_program(xs))(*xs)
    kernel = _cached_kernel(("unary", dtype, shape), closed)
    _check(closed, xs, kernel, rtol=2e-5 if dtype == np.float32 else 1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=8)
@given(data=st.data())
def test_binary_primitives_compiled_equal_interpreter(dtype, data):
    x = _values(data, (2, 3), dtype, -3, 3, "x")
    y = _values(data, (2, 3), dtype, 0.2, 3, "y")
    s = _values(data, (), dtype, 0.5, 2, "s")
    closed = fg.make_jaxpr(lambda x, y, s: _binary_program(x, y, s))(x, y, s)
    kernel = _cached_kernel(("binary", dtype), closed)
    _check(closed, [x, y, s], kernel)


def test_noncontiguous_inputs():
    base = np.arange(24.0).reshape(4, 6) / 7.0
    x, y = base[:, ::2], np.asfortranarray(base[:, 1::2])
    closed = fg.make_jaxpr(lambda x, y: [fnp.sin(x) * y + 1.0, fnp.sum(x * y, axis=0),
                                         x.T @ y, fnp.transpose(x)])(x, y)
    kernel = _check(closed, [x, y])
    _check(closed, [np.ascontiguousarray(x), np.ascontiguousarray(y)], kernel)


# --- shape operations, reductions, dot_general ---------------------------------------------

def _shape_program(x, v, m):
    return [
        lax.broadcast_in_dim(v, (2, 3, 4), (2,)), lax.broadcast_in_dim(x, (3, 2, 4), (1, 2)),
        lax.reshape(x, (4, 2)), lax.reshape(x, (8,)), lax.squeeze(lax.reshape(x, (1, 2, 4)), (0,)),
        lax.transpose(x, (1, 0)), lax.slice(x, (0, 1), (2, 4), (1, 2)), lax.rev(x, (1,)),
        lax.concatenate([x, x * 2.0], 1), lax.pad(x, 0.5, ((1, 0, 0), (0, 2, 1))),
        lax.iota(np.int64, (3, 2), 1), lax.iota(np.float64, (4,), 0) * v,
        lax.reduce_sum(x, (0,)), lax.reduce_sum(x, (1,)), lax.reduce_sum(x, (0, 1)),
        lax.reduce_sum(fnp.exp(x), (1,)) * 2.0 + 1.0, fnp.max(x, axis=0), fnp.min(x),
        fnp.prod(x, axis=1), fnp.all(x > 0, axis=0), fnp.any(x > 1.0),
        x @ m, lax.dot_general(x, x, (((0,), (0,)), ((), ()))),
        lax.dot_general(v, x, (((0,), (1,)), ((), ()))), lax.dot_general(x, v[:2], (((0,), (0,)), ((), ()))), x @ v, v @ v, fnp.outer(v, v), fnp.einsum("ij,kj->ik", x, x),
        lax.dot_general(lax.broadcast_in_dim(x, (3, 2, 4), (1, 2)),
                        lax.broadcast_in_dim(m, (3, 4, 5), (1, 2)), (((2,), (1,)), ((0,), (0,)))),
        lax.reshape(lax.reduce_sum(x, (0, 1)), (1, 1)), fnp.full((2, 2), 3.0),
    ]


@settings(max_examples=6)
@given(data=st.data())
def test_shape_ops_reductions_dot_compiled_equal_interpreter(data):
    x = _values(data, (2, 4), np.float64, -2, 2, "x")
    v = _values(data, (4,), np.float64, -2, 2, "v")
    m = _values(data, (4, 5), np.float64, -2, 2, "m")
    closed = fg.make_jaxpr(_shape_program)(x, v, m)
    kernel = _cached_kernel("shape", closed)
    _check(closed, [x, v, m], kernel)


# --- random programs and their derivative programs ---------------------------------------

_OPS = [("sin", fnp.sin), ("tanh", fnp.tanh), ("exp", lambda a: fnp.exp(-a * a)),
        ("log1p", lambda a: fnp.log1p(a * a)), ("mul", lambda a, b: a * b),
        ("add", lambda a, b: a + b), ("where", lambda a, b: fnp.where(a > b, a, b * 2.0)),
        ("sum0", lambda a: fnp.sum(a, axis=0, keepdims=True) + a), ("scale", lambda a: 3.0 * a),
        ("max", lambda a, b: fnp.maximum(a, b)), ("sqrt", lambda a: fnp.sqrt(a * a + 1.0))]


@st.composite
def programs(draw):
    n = draw(st.integers(2, 6), label="length")
    steps = []
    for i in range(n):
        name, fn = draw(st.sampled_from(_OPS), label=f"op{i}")
        nargs = fn.__code__.co_argcount
        picks = [draw(st.integers(0, i + 1), label=f"arg{i}_{j}") for j in range(nargs)]
        steps.append((name, fn, picks))
    return steps


def _run_program(steps, x, y):
    vals = [x, y]
    for _, fn, picks in steps:
        vals.append(fn(*[vals[p] for p in picks]))
    return fnp.sum(vals[-1] * vals[-2])


@settings(max_examples=6)
@given(steps=programs(), data=st.data())
def test_random_programs_and_their_gradients(steps, data):
    x = _values(data, (3, 2), np.float64, -2, 2, "x")
    y = _values(data, (3, 2), np.float64, -2, 2, "y")
    f = lambda x, y: _run_program(steps, x, y)  # noqa: E731
    _check(fg.make_jaxpr(f)(x, y), [x, y])
    _check(fg.make_jaxpr(fg.grad(f, argnums=(0, 1)))(x, y), [x, y])


# --- fallbacks ------------------------------------------------------------------------------

def _custom_prim(name, emit):
    p = Primitive(name)
    p.def_impl(lambda x: np.cos(x) + 1.0)
    p.def_shape(lambda x: x)
    if emit is not None:
        p.def_emit(emit)
    return p


def test_primitive_numba_rejects_falls_back_with_one_warning():
    p = _custom_prim("weird_op", lambda x: f"not_a_function({x})")
    x = np.linspace(0, 1, 5)
    closed = fg.make_jaxpr(lambda x: p.bind(fnp.sin(x)) * 2.0)(x)
    kernel = _compile(closed)
    with pytest.warns(numba_jit.FungradKernelWarning, match="weird_op"):
        got = kernel(closed.consts, [x])
    np.testing.assert_array_equal(got[0], (np.cos(np.sin(x)) + 1.0) * 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = kernel(closed.consts, [x])      # no second warning
    np.testing.assert_array_equal(again[0], got[0])


def test_primitive_without_emit_rule_falls_back():
    p = _custom_prim("no_emit_op", None)
    x = np.linspace(0, 1, 4)
    closed = fg.make_jaxpr(lambda x: p.bind(x))(x)
    with pytest.warns(numba_jit.FungradKernelWarning, match="no_emit_op"):
        kernel = _compile(closed)
    np.testing.assert_array_equal(kernel(closed.consts, [x])[0], np.cos(x) + 1.0)
    closed2 = fg.make_jaxpr(lambda x: p.bind(x) * 2.0)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # one warning per primitive, not per program
        kernel2 = _compile(closed2)
    np.testing.assert_array_equal(kernel2(closed2.consts, [x])[0], (np.cos(x) + 1.0) * 2.0)


def test_codegen_comments_every_equation_with_printer_names():
    x = np.ones(3)
    closed = fg.make_jaxpr(lambda x: fnp.sum(fnp.sin(x) * x))(x)
    src = codegen.generate(closed.jaxpr).source
    assert src.startswith("def kernel_") and "(a):" in src
    # sizes are symbols read from the inputs (the text is shared by every length)
    assert "_d0 = a.shape[0]" in src and "range(_d0)" in src
    assert "# b:f64[_d0] = sin a" in src and "# c:f64[_d0] = mul b a" in src
    assert "# d:f64[] = reduce_sum[axes=(0,)] c" in src


# --- tiers ----------------------------------------------------------------------------------

def test_tiered_execution_compiles_after_threshold_and_agrees():
    from fungrad.backend import execution
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x * x))  # noqa: E731
    x = np.linspace(-1, 1, 7)
    with config.override("jit_threshold", 2):
        results = [fg.grad(f)(x) for _ in range(4)]
        hot = fg.make_jaxpr(fg.grad(f))(x).jaxpr
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-13)
    compiled = [e for e in execution._by_key.values() if e.kernel is not None]
    assert compiled, "a program run past the threshold was compiled"
    assert hot is not None


def test_disable_jit_runs_the_interpreter_identically():
    f = lambda x: fnp.sum(fnp.sin(x) ** 2 + fnp.log1p(x * x))  # noqa: E731
    x = np.linspace(-1, 1, 9)
    with config.override("disable_jit", True):
        slow = fg.jit(fg.grad(f))(x)
        eager = [fg.grad(f)(x) for _ in range(6)]
    want = eval_jaxpr(fg.make_jaxpr(fg.grad(f))(x).jaxpr, [], x)[0]
    np.testing.assert_array_equal(slow, want)
    for e in eager:
        np.testing.assert_array_equal(e, want)


def _python(code, env=None, check=True):
    full = dict(os.environ)
    full.update(env or {})
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=full, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_import_fungrad_does_not_import_numba():
    r = _python("import sys, fungrad, fungrad.numpy; print('numba' in sys.modules)")
    assert r.stdout.strip() == "False"


def test_env_disable_jit_never_imports_numba_and_matches_interpreter():
    code = """
    import sys, numpy as np, fungrad as fg, fungrad.numpy as fnp
    f = fg.jit(fg.grad(lambda x: fnp.sum(fnp.sin(x) ** 2 * fnp.exp(x))))
    g = fg.grad(lambda x: fnp.sum(fnp.sin(x) ** 2 * fnp.exp(x)))
    outs = [f(np.linspace(0, 1, 4)) for _ in range(5)] + [g(np.linspace(0, 1, 4)) for _ in range(5)]
    print(repr(outs[-1].tolist()), all((o == outs[0]).all() for o in outs), 'numba' in sys.modules)
    """
    r = _python(code, {"FUNGRAD_DISABLE_JIT": "1"})
    x = np.linspace(0, 1, 4)
    closed = fg.make_jaxpr(fg.grad(lambda x: fnp.sum(fnp.sin(x) ** 2 * fnp.exp(x))))(x)
    want = eval_jaxpr(closed.jaxpr, closed.consts, x)[0]
    assert r.stdout.split() [-2:] == ["True", "False"]
    assert r.stdout.rsplit("]", 1)[0] + "]" == repr(want.tolist())


def test_zero_d_and_literal_outputs_are_owned_arrays():
    closed = fg.make_jaxpr(lambda x, s: [s * 2.0, x, x, fnp.sum(x), 1.5])(np.ones(3), 2.0)
    kernel = _compile(closed)
    outs = kernel(closed.consts, [np.ones(3), np.float64(2.0)])
    assert [o.shape for o in outs] == [(), (3,), (3,), (), ()]
    assert all(isinstance(o, np.ndarray) for o in outs)
    assert outs[1] is not outs[2]
    assert float(outs[4]) == 1.5 and float(outs[0]) == 4.0


def test_shaped_array_avals_in_kernel_source():
    ks = codegen.generate(fg.make_jaxpr(lambda x: x * 2.0)(np.ones((2, 2), np.float32)).jaxpr)
    assert ks.in_avals == [ShapedArray((2, 2), np.float32)]
    assert "np.float32" in ks.source


def _indexing_program(x, i):
    y = x.at[i[:2]].set(x[i[1:]] * 2.0).at[i].add(1.0)
    # (x[i[0], i[1]] is a 0-d gather: regression test for reading element 0 instead)
    return fnp.sum(fnp.sin(x[i]) * y[i[::-1]]) + fnp.sum(x[:, i] ** 2) + x[i[0], i[1]] * 3.0


def test_gather_scatter_and_their_gradient_compile_and_out_of_bounds_raises():
    x = np.arange(12.0).reshape(3, 4) / 5.0
    i = np.array([2, -1, 0])
    closed = fg.make_jaxpr(fg.value_and_grad(_indexing_program))(x, i)
    src = codegen.generate(closed.jaxpr).source
    assert "_wrap(" in src and "scatter_add" in src and "# " in src
    kernel = _check(closed, [x, i])
    _check(closed, [x, np.array([1, 1, -3])], kernel)            # duplicates accumulate
    with pytest.raises(IndexError):
        kernel(closed.consts, [x, np.array([3, 0, 0])])
    assert kernel.fallback is None                              # still compiled
