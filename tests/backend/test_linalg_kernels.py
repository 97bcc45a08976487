"""Linear algebra, cumulative ops and scatter-min/max inside numba kernels; programs
run as segments (per-equation fallback, the kernel size cap).

Each matrix function under `jit` (and `jit(grad)` of a loss using it) must compile
without a FungradKernelWarning and agree with the NumPy interpreter: to 1e-11 of the
result's scale in float64 (solve, det and slogdet run an LU in the kernel where NumPy
runs LAPACK's getrf, and triangular_solve a substitution where SciPy runs trtrs: the
same pivots and operations, summed in another order), 2e-5 in float32.  Inputs are
well conditioned (diagonally dominant, or with separated eigenvalues and singular
values, so eigenvectors are defined to rounding).
"""
import os

os.environ.setdefault("NUMBA_OPT", "0")

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.backend.numba_jit import FungradKernelWarning
from fungrad.config import config

from markers import line_of  # tests/markers.py

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)


@pytest.fixture(autouse=True)
def _kernel_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FungradKernelWarning)
        yield


def _general(rng, batch, n, dtype):
    """Diagonally dominant: well conditioned, either sign of det."""
    a = rng.uniform(-1, 1, batch + (n, n)) + (n + 1.0) * np.eye(n) * rng.choice([-1, 1], n)
    return a.astype(dtype)


def _separated(rng, batch, n, dtype, values):
    """Q diag(values) Q^T with a random orthogonal Q (eigenvalues apart by >= 0.5)."""
    q, _ = np.linalg.qr(rng.normal(size=batch + (n, n)))
    return ((q * values) @ np.swapaxes(q, -1, -2)).astype(dtype)


def _spd(rng, batch, n, dtype):
    return _separated(rng, batch, n, dtype, 1.0 + np.arange(n) + rng.uniform(0, 0.3, n))


def _symmetric(rng, batch, n, dtype):
    return _separated(rng, batch, n, dtype, np.arange(n) - n / 2 + rng.uniform(0, 0.3, n))


def _rect(rng, batch, n, dtype):
    """(n + 1, n) with singular values apart by >= 0.5."""
    u, _ = np.linalg.qr(rng.normal(size=batch + (n + 1, n)))
    v, _ = np.linalg.qr(rng.normal(size=batch + (n, n)))
    s = 1.0 + np.arange(n)[::-1] + rng.uniform(0, 0.3, n)
    return ((u * s) @ np.swapaxes(v, -1, -2)).astype(dtype)


def _rhs(rng, batch, n, dtype):
    return rng.uniform(-1, 1, batch + (n, 2)).astype(dtype)


def _lower(rng, batch, n, dtype):
    return np.tril(_general(rng, batch, n, dtype))


# name -> (function of the inputs, makers of the inputs)
CASES = {
    "solve": (fnp.linalg.solve, (_general, _rhs)),
    "inv": (fnp.linalg.inv, (_general,)),
    "det": (fnp.linalg.det, (_general,)),
    "slogdet": (lambda a: fnp.linalg.slogdet(a)[1] * fnp.linalg.slogdet(a)[0], (_general,)),
    "cholesky": (fnp.linalg.cholesky, (_spd,)),
    "triangular_solve": (lambda a, b: lax.triangular_solve(a, b, left_side=True, lower=True),
                         (_lower, _rhs)),
    "triangular_solve_upper_t": (
        lambda a, b: lax.triangular_solve(np.swapaxes(a, -1, -2), b, left_side=True,
                                          lower=False, transpose_a=True), (_lower, _rhs)),
    "triangular_solve_right": (
        lambda a, b: lax.triangular_solve(a, np.swapaxes(b, -1, -2), left_side=False,
                                          lower=True, unit_diagonal=True), (_lower, _rhs)),
    "eigh": (lambda a: fnp.linalg.eigh(a), (_symmetric,)),
    "svd": (lambda a: fnp.linalg.svd(a, full_matrices=False), (_rect,)),
    "qr": (lambda a: fnp.linalg.qr(a), (_rect,)),
}


def _interpreted(fn, *args):
    with config.override("disable_jit", True):
        return fn(*args)


def _leaves(tree):
    return [np.asarray(x) for x in fg.tree_util.tree_leaves(tree)]


def _assert_close(got, want, dtype, what):
    tol = 1e-11 if dtype == F64 else 2e-5
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, what
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=0, atol=tol * scale, err_msg=what)


def _inputs(name, seed, batch, n, dtype):
    rng = np.random.default_rng(seed)
    return [make(rng, batch, n, dtype) for make in CASES[name][1]]


def _compiled_count():
    counts = config.kernels
    return counts["compiled"] + counts["cache_loaded"]


def _loss(fn, weights):
    """sum(fn(*xs) * weights): a scalar loss whose gradient runs fn's vjp program."""
    def loss(*xs):
        outs = fg.tree_util.tree_leaves(fn(*xs))
        return sum(fnp.sum(o * w) for o, w in zip(outs, weights, strict=True))
    return loss


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_matrix_function_equals_interpreter(name):
    fn = CASES[name][0]
    args = _inputs(name, 0, (2,), 3, F64)
    before = _compiled_count()
    got = fg.jit(fn)(*args)
    assert _compiled_count() > before          # it ran a kernel, not the interpreter
    _assert_close(got, _interpreted(fn, *args), F64, name)


@pytest.mark.parametrize("name", ["solve", "eigh"])   # every one: the slow test below
def test_compiled_gradient_program_equals_interpreter(name):
    fn = CASES[name][0]
    args = _inputs(name, 1, (), 3, F64)
    weights = [np.random.default_rng(2).normal(size=x.shape) for x in _leaves(fn(*args))]
    loss = _loss(fn, weights)
    argnums = tuple(range(len(args)))
    got = fg.jit(fg.grad(loss, argnums=argnums))(*args)
    _assert_close(got, _interpreted(fg.grad(loss, argnums=argnums), *args), F64, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=4)
@given(seed=st.integers(0, 2**16), batch=st.sampled_from([(), (1,), (3,), (2, 2)]),
       n=st.integers(1, 4), dtype=st.sampled_from([F64, F32]))
def test_matrix_functions_agree_over_shapes_and_dtypes(name, seed, batch, n, dtype):
    fn = CASES[name][0]
    args = _inputs(name, seed, batch, n, dtype)
    _assert_close(fg.jit(fn)(*args), _interpreted(fn, *args), dtype, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=2)
@given(seed=st.integers(0, 2**16), batch=st.sampled_from([(), (2,)]), n=st.integers(1, 3))
def test_gradient_programs_agree_over_shapes(name, seed, batch, n):
    fn = CASES[name][0]
    args = _inputs(name, seed, batch, n, F64)
    weights = [np.random.default_rng(seed).normal(size=x.shape) for x in _leaves(fn(*args))]
    loss = _loss(fn, weights)
    argnums = tuple(range(len(args)))
    got = fg.jit(fg.grad(loss, argnums=argnums))(*args)
    _assert_close(got, _interpreted(fg.grad(loss, argnums=argnums), *args), F64, name)


# --- what the interpreter answers otherwise than a factorization ---------------------

def _same(got, want):
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g[~np.isnan(g)], w[~np.isnan(w)], rtol=1e-12, atol=1e-12)


def test_singular_and_non_finite_inputs_give_the_interpreters_answer():
    good = _general(np.random.default_rng(3), (), 3, F64)
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    stack = np.stack([good, singular])
    not_pd = np.stack([_spd(np.random.default_rng(4), (), 3, F64), -np.eye(3)])
    with_nan = good.copy()
    with_nan[0, 1] = np.nan
    zero_diag = np.tril(good)
    zero_diag[1, 1] = 0.0
    b = np.ones((2, 3, 1))
    cases = [
        (fnp.linalg.solve, (stack, b)),                       # NaNs for the singular one
        (lambda a: fnp.linalg.slogdet(a), (stack,)),           # (0, -inf)
        (fnp.linalg.cholesky, (not_pd,)),                      # NaNs for -I
        (fnp.linalg.solve, (with_nan, np.ones((3, 1)))),
        (lambda a: lax.triangular_solve(a, np.ones((3, 1)), left_side=True, lower=True),
         (zero_diag,)),
        (lambda a: fnp.linalg.eigh(a), (with_nan + with_nan.T,)),
    ]
    fallbacks = config.kernels["fallbacks"]
    for fn, args in cases:
        try:
            want = _interpreted(fn, *args)
        except np.linalg.LinAlgError:
            with pytest.raises(np.linalg.LinAlgError):
                fg.jit(fn)(*args)
            continue
        jitted = fg.jit(fn)
        _same(jitted(*args), want)
        # the kernel stays: a regular input afterwards runs compiled
        regular = [np.broadcast_to(good, x.shape).copy() if x.shape[-2:] == (3, 3) else x
                   for x in args]
        _same(jitted(*regular), _interpreted(fn, *regular))
    assert config.kernels["fallbacks"] == fallbacks


def test_an_empty_svd_is_answered():
    a = np.zeros((0, 3))
    fn = lambda a: fnp.linalg.svd(a, full_matrices=False)   # noqa: E731
    _same(fg.jit(fn)(a), _interpreted(fn, a))


# --- cumulative ops and scatter-min/max -------------------------------------------------

@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), shape=st.sampled_from([(5,), (3, 4), (2, 1, 3)]),
       dtype=st.sampled_from([F64, F32, np.dtype(np.int32)]), reverse=st.booleans(),
       op=st.sampled_from(["cumsum", "cumprod", "cummax", "cummin"]))
def test_cumulative_ops_equal_the_interpreter(seed, shape, dtype, reverse, op):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-3, 3, shape) if dtype.kind == "f" else rng.integers(-4, 5, shape))
    x = x.astype(dtype)
    if dtype.kind == "f" and x.size > 2:
        x.flat[1] = np.nan                    # a NaN propagates as NumPy's does
    axis = int(rng.integers(0, len(shape)))
    fn = lambda x: getattr(lax, op)(x, axis, reverse=reverse)   # noqa: E731
    got = fg.jit(fn)(x)
    np.testing.assert_array_equal(got, _interpreted(fn, x))
    assert got.dtype == dtype


@pytest.mark.parametrize("op", ["scatter_min", "scatter_max"])
def test_scatter_min_max_equal_the_interpreter(op):
    x = np.array([[0.0, 1.0, np.nan], [2.0, -1.0, 3.0], [5.0, 5.0, 5.0]])
    idx = np.array([[0], [2], [0], [1]])
    u = np.array([[-1.0, 4.0, 0.0], [np.nan, 6.0, 4.0], [3.0, -2.0, 1.0], [2.0, 2.0, 2.0]])
    fn = lambda x, u: getattr(lax, op)(x, idx, u, (0,))   # noqa: E731
    np.testing.assert_array_equal(fg.jit(fn)(x, u), _interpreted(fn, x, u))
    loss = lambda x, u: fnp.sum(fn(x, u) * np.arange(9.0).reshape(3, 3))   # noqa: E731
    x0, u0 = np.nan_to_num(x), np.nan_to_num(u)
    got = fg.jit(fg.grad(loss, argnums=(0, 1)))(x0, u0)
    _assert_close(got, _interpreted(fg.grad(loss, argnums=(0, 1)), x0, u0), F64, op)


# --- segments -------------------------------------------------------------------------

def _with_callback(x):
    y = fnp.sin(x) * 2.0
    z = fg.pure_callback(np.cos, fg.ShapeDtypeStruct(x.shape, x.dtype), y)  # MARK-callback
    return fnp.sum(z * y + 1.0)


def test_an_uncompilable_equation_runs_alone_and_warns_once_at_the_users_line():
    x = np.linspace(0.0, 1.0, 5)
    before = _compiled_count()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jitted = fg.jit(_with_callback)
        results = [jitted(x) for _ in range(3)]
    ours = [w for w in caught if issubclass(w.category, FungradKernelWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert ours[0].filename == __file__
    assert ours[0].lineno == line_of(__file__, "MARK-callback")
    assert "pure_callback" in str(ours[0].message)
    assert _compiled_count() - before == 2      # the code before and after the callback
    want = np.sum(np.cos(np.sin(x) * 2.0) * np.sin(x) * 2.0 + 1.0)
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-14)


def _while_loss(x):
    def body(carry):
        i, v = carry
        return i + 1, fnp.sin(v) * 1.1
    _, v = lax.while_loop(lambda c: c[0] < 3, body, (0, x))  # MARK-while
    return fnp.sum(v * x)


def test_the_reverse_mode_of_while_loop_runs_as_segments():
    x = np.linspace(0.1, 1.0, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = fg.jit(fg.grad(_while_loss))(x)
    ours = [w for w in caught if issubclass(w.category, FungradKernelWarning)]
    assert len(ours) == 1 and ours[0].filename == __file__
    assert ours[0].lineno == line_of(__file__, "MARK-while")
    np.testing.assert_allclose(got, _interpreted(fg.grad(_while_loss), x), rtol=1e-13)


def _long_chain(x):
    for k in range(12):
        x = fnp.sin(x) * (1.0 + 0.1 * k) + fnp.cumsum(x, axis=0)
    return x


def test_a_program_over_the_size_cap_compiles_to_several_kernels():
    x = np.random.default_rng(5).normal(size=(3, 4))
    with config.override("kernel_max_equations", 8):
        before = _compiled_count()
        got = fg.jit(_long_chain)(x)
        pieces = _compiled_count() - before
    assert pieces >= 4, pieces
    _assert_close(got, _interpreted(_long_chain, x), F64, "size cap")


def test_segment_outputs_are_new_arrays():
    def f(x):
        y = fg.pure_callback(np.cos, fg.ShapeDtypeStruct(x.shape, x.dtype), x * 2.0)
        return x, y, y
    x = np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FungradKernelWarning)
        a, b, c = fg.jit(f)(x)
    assert a is not x and b is not c
    b[0] = 5.0
    assert c[0] == np.cos(2.0) and x[0] == 1.0


def test_dot_general_with_a_0d_operand_compiles():
    # the vjp of a vector . vector product has scalar-times-vector dot_generals
    r = np.linspace(-1.0, 1.0, 4)
    cov = _spd(np.random.default_rng(6), (), 4, F64)
    loss = lambda r: r @ fnp.linalg.solve(cov, r)   # noqa: E731
    got = fg.jit(fg.grad(loss))(r)
    _assert_close(got, _interpreted(fg.grad(loss), r), F64, "0-d dot_general")
