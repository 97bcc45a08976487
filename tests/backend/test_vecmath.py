"""The inline vectorisable functions of backend/vecmath.py: accuracy, special values,
vectorisation, and kernels that use them against the interpreter.

Accuracy is measured in ulps of the result's dtype against a correctly rounded
reference: mpmath at 128 bits for Hypothesis draws over the whole float range
(subnormals included) and for sweeps of consecutive floats around every
range-reduction boundary and threshold; a denser float64 sweep uses the
platform's long double where it is wider than float64, and the float32 sweep
over every 4093rd bit pattern uses NumPy's float64 functions (their < 1 float64
ulp is 1e-9 of a float32 ulp).  The promise is 2 ulp (`ULPS`); the maxima
measured when this was written were exp 0.90, log 0.82, log1p 0.83, expm1 0.80,
tanh 1.04, logistic 1.42 (float64; dense sweeps) and <= 0.5 plus double rounding for float32.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.backend import codegen, vecmath
from fungrad.primitives.elementwise import _bce_logits_impl, _logistic_impl, bce_with_logits

mpmath = pytest.importorskip("mpmath")
numba = pytest.importorskip("numba")

ULPS = 2.0
NAMES = sorted(vecmath.FUNCTIONS)
DTYPES = [np.float64, np.float32]


# --- the functions, compiled once into a loop kernel per (name, dtype) -----------------

_KERNELS = {}


def _function(helper):
    """The compiled function kernels call (an overload, callable in numba code)."""
    return dict(zip(vecmath._ENTRY_POINTS, vecmath.kernel_functions(), strict=True))[helper]


def _kernel(name, dtype):
    key = (name, np.dtype(dtype))
    if key not in _KERNELS:
        fn = _function(vecmath.FUNCTIONS[name] + ("_f32" if dtype == np.float32 else ""))

        @numba.njit(error_model="numpy")
        def loop(a, out):
            for i in range(a.shape[0]):
                out[i] = fn(a[i])
        _KERNELS[key] = loop
    return _KERNELS[key]


def run(name, x, dtype):
    x = np.ascontiguousarray(np.atleast_1d(np.asarray(x, dtype)))
    out = np.empty_like(x)
    _kernel(name, dtype)(x, out)
    return out


# --- references ------------------------------------------------------------------------

def _mp_logistic(x):
    return 1 / (1 + mpmath.exp(-x))


MP = {"exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "expm1": mpmath.expm1,
      "tanh": mpmath.tanh, "logistic": _mp_logistic}
NUMPY = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
         "logistic": _logistic_impl}
# where each function is real and finite-valued to test accuracy (specials are separate)
DOMAIN = {"log": (0.0, None), "log1p": (-1.0, None)}


def ulp_errors(name, xs, ys, dtype):
    """|y - f(x)| in ulps of dtype at f(x), with f(x) from mpmath at 128 bits; an
    infinite result must be the rounded reference exactly (then the error is 0)."""
    errs = []
    with mpmath.workprec(128):
        for x, y in zip(xs, ys, strict=True):
            ref = MP[name](mpmath.mpf(float(x)))
            with np.errstate(over="ignore"):
                want = dtype(float(ref))      # rounded to nearest; inf beyond the range
            if np.isinf(want) or np.isinf(y):
                errs.append(0.0 if y == want else np.inf)
                continue
            spacing = float(np.spacing(np.abs(want)))
            errs.append(float(abs(mpmath.mpf(float(y)) - ref)) / spacing)
    return np.array(errs)


def assert_within(name, xs, dtype, ulps=ULPS):
    xs = np.asarray(xs, dtype)
    ys = run(name, xs, dtype)
    errs = ulp_errors(name, xs, ys, dtype)
    worst = int(np.argmax(errs))
    assert errs[worst] <= ulps, (f"{name} {np.dtype(dtype).name}: {errs[worst]:.3f} ulp at "
                                 f"x={xs[worst]!r}: got {ys[worst]!r}")
    return errs


# --- special values: bit for bit what NumPy returns ------------------------------------

def _specials(dtype):
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0,
            fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal,
            fi.tiny / 3, -fi.tiny / 3, fi.max, -fi.max, fi.eps, -fi.eps, 1e-30, -1e-30]
    return np.array(vals, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_special_values_match_numpy(name, dtype):
    x = _specials(dtype)
    with np.errstate(all="ignore"):
        want = NUMPY[name](x).astype(dtype)
    got = run(name, x, dtype)
    nan_w = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan_w), (x, got, want)
    exact = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    keep = exact & ~nan_w
    assert np.array_equal(got[keep], want[keep]), (x[keep], got[keep], want[keep])
    assert np.array_equal(np.signbit(got[keep]), np.signbit(want[keep])), (x[keep], got[keep])
    finite = np.isfinite(x) & ~nan_w & ~exact
    assert_within(name, x[finite], dtype)


def test_signed_zero_and_tiny_arguments_pass_through():
    for name in ("log1p", "expm1", "tanh"):
        for dtype in DTYPES:
            fi = np.finfo(dtype)
            x = np.array([-0.0, 0.0, fi.smallest_subnormal, -fi.smallest_subnormal, -fi.tiny],
                         dtype)
            got = run(name, x, dtype)
            assert np.array_equal(got, x) and np.array_equal(np.signbit(got), np.signbit(x))


# --- Hypothesis: the whole range -------------------------------------------------------

def _floats(name, dtype):
    width = 32 if dtype == np.float32 else 64
    lo, _ = DOMAIN.get(name, (None, None))
    return st.floats(min_value=lo, width=width, allow_nan=False, allow_infinity=False,
                     allow_subnormal=True, exclude_min=lo is not None)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25)
@given(data=st.data())
def test_within_2_ulp_on_draws_over_the_whole_range(name, dtype, data):
    wide = data.draw(st.lists(_floats(name, dtype), min_size=1, max_size=20), label="wide")
    # and where the function is not constant to rounding: |x| up to ~800
    lo = DOMAIN.get(name, (-800.0, None))[0]
    near = data.draw(st.lists(st.floats(-800.0 if lo is None else lo, 800.0,
                                        width=32 if dtype == np.float32 else 64,
                                        exclude_min=lo is not None),
                              min_size=1, max_size=20), label="near")
    assert_within(name, wide + near, dtype)


# --- sweeps around every boundary ------------------------------------------------------

LN2 = math.log(2.0)
SQRT2 = math.sqrt(2.0)
BOUNDARIES = {
    # reduction k = round(x / ln2) changes at (j + 1/2) ln2; clamps at -746, 710
    "exp": [0.5 * LN2, -0.5 * LN2, 1.5 * LN2, -1.5 * LN2, 20.5 * LN2, -1021.5 * LN2,
            -1022.5 * LN2, 709.782712893384, -708.3964185322641, -745.1332191019411,
            -745.1332191019412, 710.0, -746.0, 1e-300, 88.72283935546875, -87.33654022216797,
            -103.97207641601562],
    # m in [sqrt2/2, sqrt2): the split at sqrt(2) 2^k; subnormal scaling below tiny
    "log": [1.0, SQRT2, SQRT2 / 2, SQRT2 * 2.0 ** 10, SQRT2 * 2.0 ** -1000,
            2.2250738585072014e-308, 1.1754943508222875e-38, 5e-324, 1.7976931348623157e308,
            2.0, 0.5],
    # |x| < 2^-53 passes x; f = x on [sqrt2/2 - 1, sqrt2 - 1); the correction switches
    # at k = 2 and vanishes from k = 54
    "log1p": [1.1102230246251565e-16, -1.1102230246251565e-16, SQRT2 - 1, SQRT2 / 2 - 1,
              2 * SQRT2 - 1, 4 * SQRT2 - 1, SQRT2 * 2.0 ** 53 - 1, SQRT2 * 2.0 ** 54,
              -1.0 + 2.0 ** -30, -1.0 + 1e-300, 1e300, 5.960464477539063e-08],
    # cases by k: 0, +-1 (and r < -1/4), 2..19, 20..56, beyond; |x| < 2^-54 passes x
    "expm1": [0.5 * LN2, -0.5 * LN2, 1.5 * LN2, -1.5 * LN2, LN2 - 0.25, 19.5 * LN2,
              56.5 * LN2, -38.0, -60.0, 709.782712893384, 5.551115123125783e-17,
              -5.551115123125783e-17, 88.72283935546875, 2.9802322387695312e-08],
    # the rational form below 0.625; x itself below 2^-27; exp's argument clamped at 22
    "tanh": [0.625, -0.625, 7.450580596923828e-09, -7.450580596923828e-09, 22.0, -22.0,
             19.06154746539849, 9.010913339828708, 1e-3, 0.25541281188299536],
    # 1 + e == 1 from x ~ 36.7; e subnormal below -708; exp's clamp at -746
    "logistic": [0.0, 36.7368005696771, -36.7368005696771, -708.3964185322641,
                 -745.1332191019411, 17.328679513998633, -103.97207641601562,
                 -87.33654022216797, 16.635532333438686],
}


def _around(b, dtype, steps=40):
    """`steps` consecutive floats of dtype on each side of b, and a few spread wider."""
    b = dtype(b)
    up, down = [b], [b]
    with np.errstate(over="ignore"):
        for _ in range(steps):
            up.append(np.nextafter(up[-1], dtype(np.inf)))
            down.append(np.nextafter(down[-1], dtype(-np.inf)))
        wider = b * (1 + np.linspace(-1e-6, 1e-6, 41)).astype(dtype)
    return np.concatenate([np.array(down[::-1] + up[1:], dtype), wider.astype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_within_2_ulp_around_every_boundary(name, dtype):
    lo = DOMAIN.get(name, (None, None))[0]
    for b in BOUNDARIES[name]:
        fi = np.finfo(dtype)
        if abs(b) > float(fi.max) or (b != 0 and abs(b) < float(fi.smallest_subnormal)):
            continue
        xs = _around(b, dtype)
        xs = xs[np.isfinite(xs)]
        if lo is not None:
            xs = xs[xs > lo]
        assert_within(name, xs, dtype)


# --- dense sweeps with a cheaper reference ---------------------------------------------

_WIDE_LONG_DOUBLE = np.finfo(np.longdouble).nmant >= 63


def _reference(name, x):
    if name == "logistic":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return NUMPY[name](x)


@pytest.mark.skipif(not _WIDE_LONG_DOUBLE, reason="long double is no wider than float64 here")
@pytest.mark.parametrize("name", NAMES)
def test_float64_dense_sweep_against_long_double(name):
    rng = np.random.default_rng(15)
    n = 20000
    bits = rng.integers(0, 0x7FF0000000000000, n, dtype=np.int64).view(np.float64)
    xs = np.concatenate([bits, -bits, rng.uniform(-50, 50, n), rng.uniform(-1, 1, n),
                         rng.uniform(-750, 750, n)])
    lo = DOMAIN.get(name, (None, None))[0]
    if lo is not None:
        xs = xs[xs > lo]
    got = run(name, xs, np.float64)
    with np.errstate(all="ignore"):
        ref = _reference(name, xs.astype(np.longdouble))
    want = ref.astype(np.float64)
    assert np.array_equal(np.isinf(got), np.isinf(want)) and not np.isnan(got).any()
    finite = np.isfinite(want)
    err = np.abs(got[finite].astype(np.longdouble) - ref[finite]) / np.spacing(np.abs(want[finite]))
    worst = int(np.argmax(err))
    assert err[worst] <= ULPS, (name, float(err[worst]), xs[finite][worst])


@pytest.mark.parametrize("name", NAMES)
def test_float32_strided_sweep_of_all_bit_patterns(name):
    bits = np.arange(0, 0xFFFFFFFF, 4093, dtype=np.uint64).astype(np.uint32)
    xs = bits.view(np.float32)
    lo = DOMAIN.get(name, (None, None))[0]
    xs = xs[np.isfinite(xs) & ((xs > lo) if lo is not None else True)]
    got = run(name, xs, np.float32)
    with np.errstate(all="ignore"):
        ref = _reference(name, xs.astype(np.float64))
    want = ref.astype(np.float32)
    assert np.array_equal(np.isinf(got), np.isinf(want)) and not np.isnan(got).any()
    finite = np.isfinite(want)
    err = np.abs(got[finite].astype(np.float64) - ref[finite]) / np.spacing(np.abs(want[finite]))
    worst = int(np.argmax(err))
    assert err[worst] <= ULPS, (name, float(err[worst]), xs[finite][worst])


# --- the loop vectorises ---------------------------------------------------------------

_VECTORISED = """
import math, re, sys
import numpy as np, numba
from fungrad.backend import vecmath
compiled = dict(zip(vecmath._ENTRY_POINTS, vecmath.kernel_functions()))
for name, helper in sorted(vecmath.FUNCTIONS.items()):
    for suffix, dtype in (("", np.float64), ("_f32", np.float32)):
        fn = compiled[helper + suffix]

        @numba.njit(error_model="numpy")
        def loop(a, out):
            for i in range(a.shape[0]):
                out[i] = fn(a[i])
        loop(np.ones(4, dtype), np.empty(4, dtype))
        llvm = next(iter(loop.inspect_llvm().values()))
        calls = [c for c in re.findall(r"call [^@\\n]*@([^(\\s]*)", llvm) if "_vm_" in c]
        assert not loop.overloads[loop.signatures[0]].library.has_dynamic_globals, name
        vector = re.search(r"<\\d+ x double>", llvm) is not None
        print(name + suffix, "inlined" if not calls else "CALLS", "vector" if vector else "SCALAR")
"""


@pytest.mark.slow
def test_kernel_loops_are_inlined_and_vectorised():
    """Compiled with LLVM optimisation (the tests run numba at NUMBA_OPT=0), a loop
    over each function keeps no call to it and computes with vectors of float64."""
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_OPT="3")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", _VECTORISED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    report = [ln for ln in lines if ln.strip()]
    assert len(report) == 2 * len(NAMES), done.stdout
    assert all(ln.endswith("inlined vector") for ln in report), done.stdout


# --- kernels generated by fungrad ------------------------------------------------------

def _program(x):
    y = fnp.tanh(x) * fnp.exp(-x * x) + fnp.log1p(x * x) + fnp.log(fnp.abs(x) + 1)
    return fnp.sum(y + fg.nn.sigmoid(x) + fnp.expm1(x * 0.5) + fg.nn.softplus(x))


def _kernel_source(f, *args):
    return codegen.generate(fg.make_jaxpr(f)(*args).jaxpr).source


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernels_call_the_inline_functions_unless_switched_off(dtype):
    x = np.linspace(-3, 3, 7).astype(dtype)
    g = fg.grad(_program)
    text = _kernel_source(_program, x) + _kernel_source(g, x)
    suffix = "_f32" if dtype == np.float32 else ""
    for fn in ("_vm_tanh", "_vm_exp", "_vm_log1p", "_vm_log", "_vm_logistic", "_vm_expm1"):
        assert f"{fn}{suffix}(" in text, fn
    with fg.config.override("vector_math", False):
        assert "_vm_" not in _kernel_source(_program, x) + _kernel_source(g, x)
    assert "_vm_" not in _kernel_source(lambda z: fnp.exp(z) * fnp.tanh(z), x.astype(np.complex128))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_jit_kernel_equals_interpreter_within_stated_ulps(dtype):
    """A compiled gradient using every inline function agrees with the NumPy
    interpreter; both are within a few ulp of the truth, so the elementwise values
    differ by at most 4 ulp (2 each), and the sum by that relative amount."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-4, 4, 300), rng.uniform(-40, 40, 50),
                        [0.0, -0.0, 1e-300, 700.0, -700.0]]).astype(dtype)
    g = fg.jit(fg.grad(_program))
    got = g(x)
    with fg.config.override("disable_jit", True):
        want = fg.grad(_program)(x)
    tol = 16 * float(np.finfo(dtype).eps)   # a few operations, each within 4 ulp
    np.testing.assert_allclose(got, want, rtol=tol, atol=float(np.finfo(dtype).tiny))
    f_got = fg.jit(_program)(x)
    with fg.config.override("disable_jit", True):
        f_want = _program(x)
    np.testing.assert_allclose(f_got, f_want, rtol=tol * 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_jit_bce_with_logits_uses_inline_functions_and_agrees(dtype):
    z = np.array([-800.0, -30.0, -1.0, -0.0, 0.0, 0.5, 3.0, 40.0, 800.0, np.inf, -np.inf], dtype)
    y = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 0.3, 1.0, 0.0, 1.0, 1.0, 0.0], dtype)
    assert "_vm_log1p" in _kernel_source(bce_with_logits, z, y)
    got = fg.jit(bce_with_logits)(z, y)
    want = _bce_logits_impl(z, y)
    np.testing.assert_allclose(got, want, rtol=8 * float(np.finfo(dtype).eps))
    assert np.array_equal(np.isinf(got), np.isinf(want))
