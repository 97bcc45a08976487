"""The compiled tier equals the interpreter, call after call, on hostile values.

Random small programs (elementwise, reduction and shape operations) over every
integer, unsigned and float dtype run through an eager transform past
`config.jit_threshold` (so the tier-up swaps the kernel in mid-test) and under
`jit` (with changing input layouts), and every call is compared with the NumPy
interpreter (`eval_jaxpr`) and with the first call.  Values are hostile: integer
extremes, zero and -1 divisors, unsigned maxima, signed zeros, NaN, inf and
subnormals; shapes have size-0 and size-1 axes; inputs arrive non-contiguous.

Where the kernel does the same operations as the interpreter (integer arithmetic,
comparisons, + - * / sqrt, rounding, max/min, integer reductions) results must be
equal bit for bit (NaN equal to NaN, -0.0 distinct from 0.0).  Transcendental
functions (numba's libm against NumPy's SIMD loops) and float sums (NumPy sums
pairwise, a kernel in order) are compared to a few ulps; the generator applies
no discontinuous operation (floor, comparison, cast, //) to such inexact values.

The `ci` Hypothesis profile runs FUNGRAD_KERNEL_PROGRAMS programs (default 30,
about a minute); set it higher (e.g. 500) for a heavier run.
"""
import os
import warnings

os.environ.setdefault("NUMBA_OPT", "0")

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.backend import numba_jit
from fungrad.config import config
from fungrad.interpreter import eval_jaxpr

N_PROGRAMS = int(os.environ.get("FUNGRAD_KERNEL_PROGRAMS", "30"))
# FUNGRAD_KERNEL_NO_SHRINK=1 reports failures as drawn (shrinking a program is slow)
PHASES = [p for p in Phase if not (p == Phase.shrink and os.environ.get("FUNGRAD_KERNEL_NO_SHRINK"))]
CALLS = config.jit_threshold + 3   # eager calls: past the tier-up, then a few on the kernel

INTS = [np.int8, np.int16, np.int32, np.int64]
UINTS = [np.uint8, np.uint32, np.uint64]
FLOATS = [np.float32, np.float64]

# statistics of the generated runs, printed by the last test of this module
STATS = {"programs": 0, "calls_past_threshold": 0, "jit_calls": 0, "inexact": 0}


# --- hostile values ---------------------------------------------------------------------

def _specials(dtype) -> list:
    dt = np.dtype(dtype)
    if dt.kind == "i":
        info = np.iinfo(dt)
        return [info.min, info.min + 1, -7, -2, -1, 0, 1, 2, 3, 7, info.max - 1, info.max]
    if dt.kind == "u":
        info = np.iinfo(dt)
        return [0, 1, 2, 3, 7, info.max // 2, info.max // 2 + 1, info.max - 1, info.max]
    if dt.kind == "b":
        return [False, True]
    info = np.finfo(dt)
    return [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
            -info.smallest_subnormal, info.tiny, info.max, -info.max, info.eps, 1.0, -1.0,
            0.5, -2.5, 3.0, 1e-3, 7.25, -1e4]


@st.composite
def hostile_arrays(draw, dtype, shape, label):
    """An array of `shape` and `dtype` from the dtype's special values and ordinary ones."""
    dt = np.dtype(dtype)
    specials = _specials(dt)
    if dt.kind == "f":
        ordinary = st.floats(-50, 50, width=32 if dt == np.float32 else 64)
    elif dt.kind == "b":
        ordinary = st.booleans()
    else:
        info = np.iinfo(dt)
        ordinary = st.integers(max(info.min, -100), min(info.max, 100))
    elements = st.one_of(st.sampled_from(specials), ordinary)
    n = int(np.prod(shape, dtype=np.int64))
    flat = draw(st.lists(elements, min_size=n, max_size=n), label=label)
    with np.errstate(all="ignore"):
        return np.array(flat, dtype=dt).reshape(shape)


def _layouts(x: np.ndarray) -> list:
    """The same values as a C array, a strided view and a Fortran-ordered copy."""
    if x.ndim == 0:   # a NumPy scalar, a 0-d array (ascontiguousarray would make it 1-d)
        return [x[()], np.array(x), np.array(x)]
    strided = np.repeat(x, 2, axis=-1)[..., ::2]
    assert np.array_equal(strided, x, equal_nan=x.dtype.kind == "f")
    return [np.ascontiguousarray(x), strided, np.asfortranarray(x)]


# --- the operation table: (name, arity, applicability, function, exact) --------------------
# `exact`: the kernel performs the same rounding steps as the interpreter.

def _int_ops(dt):
    t = np.dtype(dt).type
    small = t(3)
    return [
        ("add", 2, lambda a, b: a + b), ("sub", 2, lambda a, b: a - b),
        ("mul", 2, lambda a, b: a * b), ("floordiv", 2, lambda a, b: a // b),
        ("mod", 2, lambda a, b: a % b), ("fmod", 2, lambda a, b: fnp.fmod(a, b)),
        ("ldiv", 2, lambda a, b: lax.div(a, b.astype(a.dtype))),
        ("lrem", 2, lambda a, b: lax.rem(a, b.astype(a.dtype))),
        ("neg", 1, lambda a: -a), ("abs", 1, lambda a: fnp.abs(a)),
        ("sign", 1, lambda a: fnp.sign(a)), ("max", 2, fnp.maximum), ("min", 2, fnp.minimum),
        ("square", 1, lambda a: a * a), ("pow3", 1, lambda a: a ** 3), ("pow5", 1, lambda a: a ** 5),
        ("powarr", 2, lambda a, b: lax.pow(a, fnp.bitwise_and(b, 7).astype(a.dtype))),
        ("and", 2, fnp.bitwise_and), ("or", 2, fnp.bitwise_or), ("xor", 2, fnp.bitwise_xor),
        ("invert", 1, fnp.invert), ("where_lt", 2, lambda a, b: fnp.where(a < b, a, b)),
        ("where_eq", 2, lambda a, b: fnp.where(a == b, small, a)),
        ("scalar", 1, lambda a: a * small + t(1)),
        ("cast_i8", 1, lambda a: a.astype(np.int8).astype(dt)),
        ("cast_u8", 1, lambda a: a.astype(np.uint8).astype(dt)),
        ("cast_f64", 1, lambda a: fnp.clip(a, t(-100), t(100)).astype(np.float64).astype(dt)
         if np.dtype(dt).kind == "i" else fnp.minimum(a, t(100)).astype(np.float64).astype(dt)),
        ("bool", 1, lambda a: (a != 0).astype(dt) + (a > small).astype(dt)),
    ]


def _float_ops(dt):
    t = np.dtype(dt).type
    return [
        ("add", 2, lambda a, b: a + b, True), ("sub", 2, lambda a, b: a - b, True),
        ("mul", 2, lambda a, b: a * b, True), ("div", 2, lambda a, b: a / b, True),
        ("neg", 1, lambda a: -a, True), ("abs", 1, fnp.abs, True), ("sign", 1, fnp.sign, True),
        ("max", 2, fnp.maximum, True), ("min", 2, fnp.minimum, True),
        ("sqrt", 1, fnp.sqrt, True), ("square", 1, fnp.square, True),
        ("pow3", 1, lambda a: a ** 3, False), ("recip2", 1, lambda a: a ** -2, False),
        ("floor", 1, fnp.floor, True), ("ceil", 1, fnp.ceil, True),
        ("round", 1, lax.round, True), ("rint", 1, fnp.round, True),
        ("fmod", 2, fnp.fmod, True), ("mod", 2, lambda a, b: a % b, True),
        ("floordiv", 2, lambda a, b: a // b, True),
        ("where_lt", 2, lambda a, b: fnp.where(a < b, a, b), True),
        ("where_nan", 1, lambda a: fnp.where(fnp.isnan(a), t(-1), a), True),
        ("where_ge", 2, lambda a, b: fnp.where(a >= b, b, t(0.5)), True),
        ("scalar", 1, lambda a: a * t(0.1) - t(2.0), True),
        ("clip", 1, lambda a: fnp.clip(a, t(-2), t(3)), True),
        ("nan_to_num", 1, fnp.nan_to_num, True),
        ("to_int", 1, lambda a: fnp.nan_to_num(fnp.clip(a, t(-100), t(100))).astype(np.int32)
         .astype(dt), True),
        ("to_bool", 1, lambda a: a.astype(np.bool_).astype(dt), True),
        ("other_float", 1, lambda a: a.astype(np.float32 if t is np.float64 else np.float64)
         .astype(dt), True),
        ("exp", 1, fnp.exp, False), ("log", 1, lambda a: fnp.log(fnp.abs(a)), False),
        ("sin", 1, fnp.sin, False), ("tanh", 1, fnp.tanh, False),
        ("logistic", 1, lax.logistic, False), ("pow", 2, lambda a, b: fnp.power(fnp.abs(a), b),
                                               False),
    ]


def _reductions(kind):
    """(name, fn(a, axis) -> array broadcast back to a's shape, exact for this kind)."""
    def back(r, a):
        return fnp.broadcast_to(r, a.shape)
    exact_sums = kind in "iu"
    return [
        ("sum", lambda a, k: back(fnp.sum(a, axis=k, keepdims=True), a), exact_sums),
        ("prod", lambda a, k: back(fnp.prod(a, axis=k, keepdims=True), a), exact_sums),
        ("rmax", lambda a, k: back(fnp.max(a, axis=k, keepdims=True), a), True),
        ("rmin", lambda a, k: back(fnp.min(a, axis=k, keepdims=True), a), True),
    ]


def _shape_ops():
    """Operations that keep the shape and move elements around (exact)."""
    return [
        ("flip", lambda a, k: fnp.flip(a, axis=k)),
        ("roll", lambda a, k: fnp.roll(a, 1, axis=k)),
        ("ravel_rev", lambda a, k: fnp.reshape(fnp.ravel(a)[::-1], a.shape)),
        ("transpose2", lambda a, k: fnp.transpose(fnp.transpose(a) + a.dtype.type(0))),
        ("pad_slice", lambda a, k: lax.slice(lax.pad(a, a.dtype.type(1), [(1, 0, 0)] * a.ndim),
                                             [0] * a.ndim, list(a.shape))),
    ]


SHAPES = [(), (0,), (1,), (4,), (3, 1), (1, 3), (2, 3), (3, 0), (2, 1, 3)]


@st.composite
def programs(draw):
    """(dtype, shape, steps, exact): a program of 2-6 steps over two inputs."""
    dtype = np.dtype(draw(st.sampled_from(INTS + UINTS + FLOATS), label="dtype"))
    shape = draw(st.sampled_from(SHAPES), label="shape")
    kind = dtype.kind
    if kind == "f":
        elementwise = _float_ops(dtype)
    else:
        elementwise = [(*op, True) for op in _int_ops(dtype)]
    n = draw(st.integers(2, 6), label="length")
    steps, inexact, exact = [], [False, False], True
    for i in range(n):
        family = draw(st.sampled_from(["elementwise"] * 4 + ["reduction", "shape"]
                                      if shape else ["elementwise"]), label=f"family{i}")
        if family == "elementwise":
            name, arity, fn, op_exact = draw(st.sampled_from(elementwise), label=f"op{i}")
            picks = [draw(st.integers(0, len(inexact) - 1), label=f"arg{i}_{j}")
                     for j in range(arity)]
            if any(inexact[p] for p in picks):
                # an inexact value only meets continuous operations
                if name not in ("add", "sub", "mul", "neg", "abs", "max", "min", "square",
                                "scalar", "exp", "log", "sin", "tanh", "logistic", "pow",
                                "where_nan"):
                    name, arity, fn, op_exact = "add", 2, (lambda a, b: a + b), True
                    picks = (picks + [0, 1])[:2]
            steps.append((name, fn, picks, None))
            inexact.append((not op_exact) or any(inexact[p] for p in picks))
        elif family == "reduction":
            name, fn, op_exact = draw(st.sampled_from(_reductions(kind)), label=f"op{i}")
            axis = draw(st.integers(0, len(shape) - 1), label=f"axis{i}")
            if shape[axis] == 0 and name in ("rmax", "rmin"):
                name, fn, op_exact = _reductions(kind)[0]   # max of nothing is an error
            p = draw(st.integers(0, len(inexact) - 1), label=f"arg{i}_0")
            steps.append((name, fn, [p], axis))
            inexact.append((not op_exact) or inexact[p])
        else:
            name, fn = draw(st.sampled_from(_shape_ops()), label=f"op{i}")
            axis = draw(st.integers(0, len(shape) - 1), label=f"axis{i}")
            p = draw(st.integers(0, len(inexact) - 1), label=f"arg{i}_0")
            steps.append((name, fn, [p], axis))
            inexact.append(inexact[p])
    exact = not any(inexact)
    return dtype, shape, steps, exact


def _program(steps):
    def f(x, y):
        vals = [x, y]
        for _, fn, picks, axis in steps:
            args = [vals[p] for p in picks]
            vals.append(fn(*args) if axis is None else fn(*args, axis))
        return vals[-1], vals[-2]
    return f


def _describe(steps):
    return " ; ".join(f"v{i + 2} = {name}({', '.join(f'v{p}' for p in picks)}"
                      f"{'' if axis is None else f', axis={axis}'})"
                      for i, (name, _, picks, axis) in enumerate(steps))


# --- comparison -----------------------------------------------------------------------

def _ulps(dtype) -> float:
    return 8 * float(np.finfo(dtype).eps)


def assert_same(got, want, exact, what):
    """got == want bit for bit (NaN == NaN, -0.0 != 0.0), or to a few ulps if inexact."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got, want)
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    assert np.array_equal(nan_g, nan_w), f"{what}: NaN positions differ\n{got}\n{want}"
    if exact:
        same = (got == want) & (np.signbit(got) == np.signbit(want))
        assert np.all(same | nan_w), f"{what}: not bit for bit equal\n{got!r}\n{want!r}"
        return
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite & ~nan_w], want[~finite & ~nan_w]), (what, got, want)
    tol = _ulps(got.dtype)
    g = got[finite].astype(np.float64)
    w = want[finite].astype(np.float64)
    scale = np.maximum(np.abs(w), float(np.finfo(got.dtype).tiny) * 1e6)
    assert np.all(np.abs(g - w) <= tol * scale + 1e-300), f"{what}\n{got!r}\n{want!r}"


def _interpret(closed, args):
    with np.errstate(all="ignore"):
        return [np.asarray(v) for v in eval_jaxpr(closed.jaxpr, closed.consts, *args)]


def _strict():
    """Kernel fallbacks are failures here (they would hide a wrong kernel)."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", numba_jit.FungradKernelWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    return ctx


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path_factory, monkeypatch):
    folder = str(tmp_path_factory.getbasetemp() / "kernel-semantics-cache")
    object.__setattr__(config, "cache_dir", folder)
    yield


@settings(max_examples=N_PROGRAMS, phases=PHASES)
@given(program=programs(), data=st.data())
def test_random_programs_compiled_equal_interpreter_call_after_call(program, data):
    dtype, shape, steps, exact = program
    f = _program(steps)
    batch = 2
    xb = data.draw(hostile_arrays(dtype, (batch, *shape), "x"), label="x")
    yb = data.draw(hostile_arrays(dtype, (batch, *shape), "y"), label="y")
    what = f"{dtype.name}{list(shape)}: {_describe(steps)}"
    STATS["programs"] += 1
    STATS["inexact"] += not exact
    ctx = _strict()
    try:
        # eager transform: interpreter for jit_threshold calls, then the kernel
        vf = fg.vmap(f)
        want = _interpret(fg.make_jaxpr(vf)(xb, yb), [xb, yb])
        first = None
        for call in range(CALLS):
            got = [np.asarray(v) for v in vf(xb, yb)]
            for g, w in zip(got, want, strict=True):
                assert_same(g, w, exact, f"vmap call {call + 1}: {what}")
            if first is None:
                first = got
            for g, w in zip(got, first, strict=True):
                assert_same(g, w, exact, f"vmap call {call + 1} vs call 1: {what}")
            if call >= config.jit_threshold:
                STATS["calls_past_threshold"] += 1
        # jit: compiled at once, called with each layout of the same values
        x, y = xb[0], yb[0]
        want = _interpret(fg.make_jaxpr(f)(x, y), [x, y])
        jf = fg.jit(f)
        for xl, yl in zip(_layouts(x), _layouts(y)[::-1], strict=True):
            got = jf(xl, yl)
            STATS["jit_calls"] += 1
            for g, w in zip(got, want, strict=True):
                assert_same(g, w, exact, f"jit: {what}")
    finally:
        ctx.__exit__(None, None, None)


# --- every primitive on every dtype it accepts, on the special values ------------------------

def _pairs(dtype):
    vals = np.array(_specials(dtype), dtype=dtype)
    x = np.repeat(vals, len(vals))
    y = np.tile(vals, len(vals))
    return x, y


def _int_table(x, y):
    dt = x.dtype
    return [lax.add(x, y), lax.sub(x, y), lax.mul(x, y), lax.div(x, y), lax.rem(x, y),
            x // y, x % y, lax.max(x, y), lax.min(x, y), lax.neg(x), lax.abs(x), lax.sign(x),
            lax.integer_pow(x, 2), lax.integer_pow(x, 3), lax.integer_pow(x, 7),
            lax.pow(x, lax.bitwise_and(y, dt.type(7))),
            lax.eq(x, y), lax.lt(x, y), lax.ge(x, y), lax.bitwise_and(x, y),
            lax.bitwise_or(x, y), lax.bitwise_xor(x, y), lax.bitwise_not(x),
            lax.select(lax.lt(x, y), x, y), lax.convert_element_type(x, np.int8),
            lax.convert_element_type(x, np.uint8), lax.convert_element_type(x, np.float32),
            lax.convert_element_type(x, np.float64), lax.convert_element_type(x, np.bool_)]


def _float_table(x, y):
    dt = x.dtype
    return [lax.add(x, y), lax.sub(x, y), lax.mul(x, y), lax.div(x, y), lax.rem(x, y),
            x // y, x % y, lax.max(x, y), lax.min(x, y), lax.neg(x), lax.abs(x), lax.sign(x),
            lax.sqrt(x), lax.floor(x), lax.ceil(x), lax.round(x), fnp.round(x),
            lax.integer_pow(x, 2), lax.nextafter(x, y),
            lax.eq(x, y), lax.ne(x, y), lax.lt(x, y), lax.le(x, y), lax.gt(x, y), lax.ge(x, y),
            lax.is_finite(x), lax.select(lax.lt(x, y), x, y),
            lax.convert_element_type(x, np.bool_), fnp.signbit(x),
            lax.convert_element_type(x, np.float32 if dt == np.float64 else np.float64),
            lax.convert_element_type(
                lax.select(lax.is_finite(x), lax.max(lax.min(x, dt.type(100)), dt.type(-100)),
                           dt.type(0)), np.int64),
            lax.convert_element_type(lax.convert_element_type(
                lax.select(lax.is_finite(x), lax.max(lax.min(x, dt.type(200)), dt.type(0)),
                           dt.type(0)), np.uint8), dt)]


@pytest.mark.parametrize("dtype", INTS + UINTS + FLOATS + [np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_every_primitive_on_special_values_bit_for_bit(dtype):
    x, y = _pairs(dtype)
    if np.dtype(dtype) == np.bool_:
        def table(x, y):
            return [lax.bitwise_and(x, y), lax.bitwise_or(x, y), lax.bitwise_xor(x, y),
                    lax.bitwise_not(x), lax.eq(x, y), lax.ne(x, y), lax.lt(x, y),
                    lax.select(x, y, lax.bitwise_not(y)), lax.convert_element_type(x, np.int8),
                    lax.convert_element_type(x, np.float32), fnp.sum(x), fnp.any(x),
                    fnp.all(x)]
    else:
        table = _float_table if np.dtype(dtype).kind == "f" else _int_table
    closed = fg.make_jaxpr(table)(x, y)
    want = _interpret(closed, [x, y])
    ctx = _strict()
    try:
        got = numba_jit.compile_jaxpr(closed.jaxpr)(closed.consts, [x, y])
        got0 = numba_jit.compile_jaxpr(fg.make_jaxpr(table)(x[:1], y[:1]).jaxpr)
        want0 = _interpret(fg.make_jaxpr(table)(x[:1], y[:1]), [x[:1], y[:1]])
        got0 = got0([], [x[:1], y[:1]])
    finally:
        ctx.__exit__(None, None, None)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_same(g, w, True, f"{np.dtype(dtype).name} output {i} of the table")
    for i, (g, w) in enumerate(zip(got0, want0, strict=True)):
        assert_same(g, w, True, f"{np.dtype(dtype).name} output {i} of the 1-element table")


def test_zero_d_scalars_follow_numpy():
    # 0-d values are scalars inside a kernel: the same rules must hold there
    f = fg.jit(lambda a, b: (a // b, a % b, lax.rem(a, b), fnp.sign(a), a * b, a ** 3))
    for dt in (np.int8, np.uint8, np.int64):
        for a, b in [(-7, 2), (7, -2), (-128, -1), (5, 0), (100, 3), (-1, 7)]:
            if np.dtype(dt).kind == "u" and (a < 0 or b < 0):
                continue
            a_, b_ = np.asarray(a).astype(dt), np.asarray(b).astype(dt)
            closed = fg.make_jaxpr(f)(a_, b_)
            want = _interpret(closed, [a_, b_])
            with warnings.catch_warnings():
                warnings.simplefilter("error", numba_jit.FungradKernelWarning)
                got = f(a_, b_)
            for g, w in zip(got, want, strict=True):
                assert_same(g, w, True, f"{dt.__name__} {a} {b}")


def test_report_generated_program_statistics(capsys):
    # runs last in this module: how much the properties exercised (see the docstring)
    with capsys.disabled():
        print(f"\nkernel semantics: {STATS['programs']} generated programs "
              f"({STATS['inexact']} with inexact operations), "
              f"{STATS['calls_past_threshold']} eager calls past the tier-up threshold, "
              f"{STATS['jit_calls']} jit calls")


# --- regressions: the reproductions of issue 12 (and issue 18, item 6) ------------------------

def _calls(fn, *args, n=CALLS):
    """`fn(*args)` n times (past the tier-up threshold), as NumPy arrays per call."""
    outs = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", numba_jit.FungradKernelWarning)
        for _ in range(n):
            out = fn(*args)
            outs.append([np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))])
    return outs


def test_vmap_of_integer_modulo_is_the_same_after_the_tier_up():
    outs = _calls(fg.vmap(lambda k: k % 3), np.array([-1, -2, -4]))
    for (o,) in outs:
        np.testing.assert_array_equal(o, [2, 1, 2])


def test_float32_sum_of_a_million_values_is_the_same_after_the_tier_up():
    x = np.full(10**6, 0.1, np.float32)
    correctly_rounded = np.float32(np.sum(x, dtype=np.float64))   # 100000.0 (sum 100000.0015)
    outs = _calls(fg.value_and_grad(fnp.sum), x)
    for value, grad in outs:
        assert value.dtype == np.float32 and value == correctly_rounded, value
        np.testing.assert_array_equal(grad, np.ones_like(x))
    assert abs(float(outs[0][0]) - 100000.0078125) <= 0.0079   # within 1 ulp of NumPy's


def test_gradient_through_a_reduced_then_elementwise_value_survives_the_tier_up():
    f = fg.grad(lambda x: fnp.sum(fnp.sin(fnp.sum(x, axis=0))))
    for (o,) in _calls(f, np.ones((1, 3))):
        np.testing.assert_allclose(o, np.cos(np.ones((1, 3))), rtol=1e-15)


def test_compiled_integer_floor_division_modulo_and_sign_follow_numpy():
    a, b = np.array([-7, 7]), np.array([2, -2])
    q, r = fg.jit(lambda a, b: (a // b, a % b))(a, b)
    np.testing.assert_array_equal(q, [-4, -4])
    np.testing.assert_array_equal(r, [1, -1])
    t, m = fg.jit(lambda a, b: (lax.div(a, b), lax.rem(a, b)))(a, b)
    np.testing.assert_array_equal(t, [-3, -3])      # truncation, the sign of the dividend
    np.testing.assert_array_equal(m, [-1, 1])
    s = fg.jit(fnp.sign)(np.array([254, 0, 1], np.uint8))
    assert s.dtype == np.uint8
    np.testing.assert_array_equal(s, [1, 0, 1])
    np.testing.assert_array_equal(fg.jit(fnp.sign)(np.array([-0.0, 0.0, np.nan, -3.0])),
                                  np.sign(np.array([-0.0, 0.0, np.nan, -3.0])))
    assert not np.signbit(fg.jit(fnp.sign)(np.array([-0.0]))[0])   # NumPy: sign(-0.0) is 0.0


def test_negative_zero_literal_has_its_own_kernel():
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(fg.jit(lambda x: x / 0.0)(x), [np.inf, -np.inf])
    np.testing.assert_array_equal(fg.jit(lambda x: x / -0.0)(x), [-np.inf, np.inf])
    np.testing.assert_array_equal(fg.jit(lambda x: x * 0.0)(x), [0.0, -0.0])
    assert np.signbit(fg.jit(lambda x: x * -0.0)(x)).tolist() == [True, False]


def test_python_scalar_arguments_of_jit_are_weakly_typed():
    f32 = np.ones(3, np.float32)
    assert fg.jit(lambda x, n: x * n)(f32, 3).dtype == np.float32
    assert fg.jit(lambda x, n: x * n)(f32, 2.5).dtype == np.float32
    assert fg.jit(lambda x, n: x + n)(np.ones(3, np.int8), 3).dtype == np.int8
    assert fg.jit(lambda x, n: x * n)(np.ones(3, np.int32), 2.5).dtype == np.float64
    assert fg.jit(lambda n: n * 2)(3).dtype == np.int64           # alone, a scalar's own type
    assert fg.jit(lambda n: n / 2)(3).dtype == np.float64
    for n in (3, 2.5):   # eager agrees
        assert fg.jit(lambda x, n: x * n)(f32, n).dtype == (f32 * n).dtype


def test_programs_reading_a_reduction_in_their_own_loop_nest_run_past_the_tier_up():
    x = np.linspace(-1, 1, 10)
    softmaxish = lambda x: fnp.exp(x - fnp.max(x))  # noqa: E731
    want = np.exp(x - x.max())
    np.testing.assert_allclose(fg.jit(softmaxish)(x), want, rtol=1e-15)
    for (o,) in _calls(fg.vmap(softmaxish), x[None]):
        np.testing.assert_allclose(o[0], want, rtol=1e-15)
    column = x.reshape(10, 1)
    trailing = lambda x: fnp.exp(x - fnp.max(x, axis=0))  # noqa: E731
    np.testing.assert_allclose(fg.jit(trailing)(column), np.exp(column - column.max(0)),
                               rtol=1e-15)
    for (o,) in _calls(fg.grad(lambda x: fnp.sum(trailing(x))), column):
        assert o.shape == (10, 1) and np.all(np.isfinite(o))


def test_float16_is_refused_by_kernels_with_a_precise_warning():
    x = np.array([1.5, -2.0, 65504.0], np.float16)
    with pytest.warns(numba_jit.FungradKernelWarning) as record:
        out = fg.jit(lambda x: x * 2)(x)
    messages = [str(w.message) for w in record]
    assert any("float16" in m and "not supported" in m for m in messages), messages
    assert not any("corrupt" in m for m in messages), messages
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, x * np.float16(2))


def test_float16_and_float32_reductions_accumulate_wide_and_round_once():
    h = np.full(10000, 10.0, np.float16)
    m = fnp.mean(h)
    assert m.dtype == np.float16 and m == 10.0          # NumPy and JAX: 10.0 (was inf)
    np.testing.assert_array_equal(fnp.mean(h.reshape(100, 100), axis=1), np.full(100, 10.0))
    tenth = np.full(10000, 0.1, np.float16)
    assert fnp.sum(tenth) == np.float16(np.sum(tenth, dtype=np.float64))
    f = np.full(4097, 1.0, np.float32)
    f[0] = 2.0 ** 24                                  # a float32 accumulator drops every 1
    want = np.float32(2.0 ** 24 + 4096)
    assert fnp.sum(f) == want
    assert fg.jit(fnp.sum)(f) == want
    assert fg.jit(lambda x: fnp.sum(x * 1.0, axis=0))(f.reshape(-1, 1))[0] == want
    p = np.full(300, 1.5, np.float32)
    p[:150] = 1 / 1.5
    assert fg.jit(fnp.prod)(p) == fnp.prod(p) == np.float32(np.prod(p, dtype=np.float64))


def test_narrow_integers_wrap_inside_kernels_as_in_numpy():
    a = np.array([100, -128, 127], np.int8)
    f = fg.jit(lambda a: ((a + a) // 2, -a, fnp.abs(a), a * a * a, fnp.sum(a * a)))
    with np.errstate(all="ignore"):
        want = ((a + a) // 2, -a, np.abs(a), a * a * a, np.sum(a * a))
    for got, w in zip(f(a), want, strict=True):
        assert got.dtype == w.dtype
        np.testing.assert_array_equal(got, w)
    assert fg.jit(lambda a: a + a)(np.int8(-128)) == 0          # 0-d: was an OverflowError
    u = np.array([0, 1, 254], np.uint8)
    np.testing.assert_array_equal(fg.jit(lambda u: (-u, ~u, u - np.uint8(2)))(u),
                                  (-u, ~u, u - np.uint8(2)))


def test_integer_powers_are_exact_and_wrap():
    x = np.array([3, -3, 2, 0, -1], np.int8)
    np.testing.assert_array_equal(fg.jit(lambda x: x ** 5)(x), x ** 5)        # 243 -> -13
    big = np.array([3, 2 ** 40 + 1], np.uint64)
    e = np.array([41, 3], np.uint64)
    np.testing.assert_array_equal(fg.jit(lax.pow)(big, e), np.power(big, e))
    y = np.array([1.1, -0.7, 3.0], np.float32)
    # floats: libm's pow in both tiers (NumPy's may be a SIMD loop: a few ulps apart)
    np.testing.assert_allclose(fg.jit(lambda y: y ** 7)(y), lax.integer_pow(y, 7), rtol=1e-6)
    np.testing.assert_allclose(fg.jit(lambda y: y ** -3)(y), lax.integer_pow(y, -3), rtol=1e-6)


def test_max_and_min_propagate_nan_and_order_signed_zeros_as_numpy():
    a = np.array([np.nan, 1.0, -0.0, 0.0, np.inf])
    b = np.array([1.0, np.nan, 0.0, -0.0, np.nan])
    got = fg.jit(lambda a, b: (fnp.maximum(a, b), fnp.minimum(a, b), fnp.max(a), fnp.min(b)))(a, b)
    want = (np.maximum(a, b), np.minimum(a, b), np.max(a), np.min(b))
    for g, w in zip(got, want, strict=True):
        assert_same(g, w, True, "max/min")
    z = np.array([[0.0, -0.0], [-0.0, 0.0], [0.0, -0.0]])
    for axis in (0, 1):
        assert_same(fg.jit(lambda z: fnp.max(z, axis=axis))(z), np.max(z, axis=axis), True, "max")
        assert_same(fg.jit(lambda z: fnp.min(z, axis=axis))(z), np.min(z, axis=axis), True, "min")


def test_comparisons_with_nan_and_casts_in_range_follow_numpy():
    a = np.array([np.nan, 1.0, -2.7, 2.7, -0.0, 255.9])
    b = np.array([np.nan, np.nan, -2.7, 3.0, 0.0, 1.0])
    got = fg.jit(lambda a, b: (a == b, a != b, a < b, a >= b, a.astype(bool)))(a, b)
    for g, w in zip(got, (a == b, a != b, a < b, a >= b, a.astype(bool)), strict=True):
        np.testing.assert_array_equal(g, w)
    # in range, float -> int truncates toward zero (NaN, inf and out-of-range values
    # give unspecified integers: see docs/sharp-bits.md)
    c = np.array([0.0, -0.0, 1.9, -2.7, 127.5, -128.9])
    got = fg.jit(lambda c: (c.astype(np.int8), c.astype(np.int64), fnp.abs(c).astype(np.uint8)))(c)
    for g, w in zip(got, (c.astype(np.int8), c.astype(np.int64), np.abs(c).astype(np.uint8)),
                    strict=True):
        np.testing.assert_array_equal(g, w)
