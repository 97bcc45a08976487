"""Structured control flow (fungrad.lax.cond/switch/while_loop/fori_loop/scan/map)
and Python control flow under eager transforms.

Every control-flow program below has an unrolled Python twin; the property tests
check values, gradients (against the twin and finite differences), the jvp/vjp
dot-product identity, and vmap against a Python loop."""
from __future__ import annotations

import functools
import os

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.config import config
from fungrad.core import typecheck
from fungrad.errors import FungradTypeError, FungradValueError, TracerBoolConversionError
from fungrad.tracing import Tracer

THIS_FILE = os.path.basename(__file__)


# ---------------------------------------------------------------------------
# x ** 3 written with every loop: 12 at x = 2 in every mode
# ---------------------------------------------------------------------------

def cube_fori(x):
    return lax.fori_loop(0, 3, lambda i, a: a * x, 1.)


def cube_fori_traced_bounds(x):
    return lax.fori_loop(fnp.asarray(0), fnp.asarray(3), lambda i, a: a * x, 1.)


def cube_scan(x):
    return lax.scan(lambda a, _: (a * x, None), 1., None, length=3)[0]


def cube_scan_xs(x):
    return lax.scan(lambda a, xi: (a * xi, a), 1., fnp.stack([x, x, x]))[0]


def cube_while(x):
    return lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x), (0, 1.))[1]


CUBES = [cube_fori, cube_fori_traced_bounds, cube_scan, cube_scan_xs, cube_while]


@pytest.mark.parametrize("f", CUBES, ids=lambda f: f.__name__)
def test_cube_gradient_is_12_in_every_mode(f):
    assert f(2.) == 8.
    assert fg.grad(f)(2.) == 12.
    assert fg.jacfwd(f)(2.) == 12.
    assert fg.jacrev(f)(2.) == 12.
    y, t = fg.jvp(f, (2.,), (1.,))
    assert (y, t) == (8., 12.)
    y, pullback = fg.vjp(f, 2.)
    assert pullback(1.)[0] == 12.
    assert fg.value_and_grad(f)(2.) == (8., 12.)


@pytest.mark.parametrize("f", CUBES, ids=lambda f: f.__name__)
def test_cube_second_and_third_derivatives(f):
    assert fg.grad(fg.grad(f))(3.) == pytest.approx(18.)     # 6x
    assert fg.jacfwd(fg.jacrev(f))(3.) == pytest.approx(18.)
    assert fg.grad(fg.grad(fg.grad(f)))(3.) == pytest.approx(6.)


def test_closed_over_tracer_is_an_explicit_operand():
    jaxpr = fg.make_jaxpr(cube_fori)(2.).jaxpr
    (eqn,) = jaxpr.eqns
    assert eqn.prim is lax.scan_p
    assert jaxpr.invars[0] in eqn.inputs
    assert eqn.params["jaxpr"].jaxpr.constvars == ()
    assert "scan[" in str(jaxpr) and "mul" in str(jaxpr)


def test_loops_are_not_unrolled_in_the_ir():
    def f(n):
        return lambda x: lax.fori_loop(0, n, lambda i, a: fnp.sin(a) * x, x)
    small = fg.make_jaxpr(fg.grad(f(3)))(0.5).jaxpr
    large = fg.make_jaxpr(fg.grad(f(300)))(0.5).jaxpr
    assert len(str(small)) == len(str(large).replace("300", "3"))
    typecheck(large)
    np.testing.assert_allclose(fg.grad(f(300))(0.5), _fd(f(300), 0.5), rtol=1e-6)


def test_impls_run_on_numpy_without_any_trace():
    assert lax.while_loop(lambda x: x < 10, lambda x: x * 2, 1.0) == 16.
    assert lax.fori_loop(0, 3, lambda i, a: a * 2.0, 1.0) == 8.
    carry, ys = lax.scan(lambda c, x: (c + x, c * x), 0., np.arange(4.))
    assert carry == 6.
    np.testing.assert_array_equal(ys, [0., 0., 2., 9.])
    assert isinstance(ys, np.ndarray)
    np.testing.assert_array_equal(lax.map(lambda x: x.sum(), np.ones((3, 2))), [2., 2., 2.])
    assert lax.switch(1, [lambda x: x + 1, lambda x: x * 10], 2.0) == 20.


# ---------------------------------------------------------------------------
# Python control flow under eager transforms
# ---------------------------------------------------------------------------

def test_python_if_under_eager_grad():
    assert fg.grad(lambda x: x if x > 0 else -x)(-2.) == -1.
    assert fg.grad(lambda x: x if x > 0 else -x)(3.) == 1.


def test_python_while_under_eager_grad():
    def doubling(x):
        while x < 10:
            x = x * 2
        return x
    assert fg.grad(doubling)(1.) == 16.
    assert fg.grad(doubling)(3.) == 4.


def test_python_branch_under_make_jaxpr_names_line_and_suggests_cond():
    with pytest.raises(TracerBoolConversionError) as info:
        fg.make_jaxpr(lambda x: x if x > 0 else -x)(1.)
    msg = str(info.value)
    assert THIS_FILE in msg and "fungrad.lax.cond" in msg


def test_python_branch_on_loop_carry_raises():
    def body(i, a):
        return a * 2 if a > 1 else a + 1
    with pytest.raises(TracerBoolConversionError, match=THIS_FILE):
        fg.grad(lambda x: lax.fori_loop(0, 3, body, x))(2.)


# ---------------------------------------------------------------------------
# cond and switch
# ---------------------------------------------------------------------------

def test_cond_exact_values():
    def f(x):
        return lax.cond(x > 0, lambda y: y * y, lambda y: -y, x)
    assert fg.grad(f)(3.) == 6. and fg.grad(f)(-2.) == -1.
    np.testing.assert_array_equal(fg.vmap(f)(np.array([-1., 2., 3.])), [1., 4., 9.])
    np.testing.assert_array_equal(fg.vmap(fg.grad(f))(np.array([-1., 2., 3.])), [-1., 4., 6.])
    jaxpr = fg.make_jaxpr(f)(1.).jaxpr
    assert [e.prim.name for e in jaxpr.eqns][-1] == "cond"
    typecheck(fg.make_jaxpr(fg.grad(f))(1.).jaxpr)


def test_cond_concrete_predicate_calls_the_branch():
    calls = []
    out = lax.cond(True, lambda x: calls.append("t") or x + 1, lambda x: x - 1, 1.)
    assert out == 2. and calls == ["t"]
    assert lax.cond(np.bool_(False), lambda x: x + 1, lambda x: x - 1, 1.) == 0.


def test_cond_numeric_predicate_and_weak_scalar_branches():
    def f(x):
        return lax.cond(x, lambda: 0, lambda: x * 2.0)     # 0 is weak: takes f64
    assert fg.grad(f)(0.) == 2. and fg.grad(f)(1.5) == 0.


@pytest.mark.parametrize("index,expected", [(-3, 4.), (0, 4.), (1, 20.), (2, np.sin(2.)),
                                            (9, np.sin(2.))])
def test_switch_clamps_the_index(index, expected):
    branches = [lambda x: x * x, lambda x: x * 10, fnp.sin]
    assert lax.switch(index, branches, 2.) == pytest.approx(expected)

    def traced(x):
        return lax.switch(fnp.asarray(index) + (fnp.asarray(x) * 0).astype(int), branches, x)
    assert traced(2.) == pytest.approx(expected)
    assert fg.make_jaxpr(traced)(2.).jaxpr.eqns[-1].prim is lax.cond_p
    grads = {-3: 4., 0: 4., 1: 10., 2: np.cos(2.), 9: np.cos(2.)}
    assert fg.grad(traced)(2.) == pytest.approx(grads[index])


def test_cond_pytree_operands_and_outputs():
    def f(p):
        return lax.cond(p["a"] > p["b"][0],
                        lambda q: {"s": q["a"] * q["b"][1], "t": (q["a"],)},
                        lambda q: {"s": q["b"][0] + q["b"][1], "t": (q["b"][1],)}, p)
    p = {"a": 2.0, "b": (1.0, 3.0)}
    out = f(p)
    assert out["s"] == 6. and out["t"] == (2.,)
    g = fg.grad(lambda p: f(p)["s"] + f(p)["t"][0])(p)
    assert g["a"] == 4. and g["b"] == (0., 2.)


def test_mismatched_branch_shapes_raise_naming_the_line():
    with pytest.raises(FungradTypeError) as info:
        fg.make_jaxpr(lambda x: lax.cond(x > 0, lambda: x, lambda: fnp.ones(3)))(1.)
    msg = str(info.value)
    assert THIS_FILE in msg and "f64[3]" in msg and "f64[]" in msg and "true_fun" in msg


def test_mismatched_branch_dtypes_and_structures_raise():
    with pytest.raises(FungradTypeError, match="same structure"):
        fg.grad(lambda x: lax.cond(x > 0, lambda: x, lambda: x.astype(np.float32)))(1.)
    with pytest.raises(FungradTypeError, match=THIS_FILE):
        fg.grad(lambda x: lax.cond(x > 0, lambda: (x, x), lambda: [x, x])[0])(1.)
    with pytest.raises(FungradTypeError, match="switch"):
        fg.grad(lambda x: lax.switch((x > 0).astype(int), [lambda: x, lambda: (x, x)]))(1.)
    with pytest.raises(FungradTypeError, match="scalar"):
        fg.grad(lambda x: lax.cond(fnp.stack([x, x]) > 0, lambda: x, lambda: x))(1.)


# ---------------------------------------------------------------------------
# loops: pytrees, errors, semantics
# ---------------------------------------------------------------------------

def test_pytree_carries_in_every_loop():
    def f(x):
        def body(i, c):
            return {"p": c["p"] * x, "q": (c["q"][0] + c["p"], c["q"][1] + 1)}
        c = lax.fori_loop(0, 3, body, {"p": 1., "q": (0., 0)})
        c2 = lax.while_loop(lambda c: c[1] < 2, lambda c: ([c[0][0] * x], c[1] + 1), ([x], 0))
        _, ys = lax.scan(lambda c, xi: (c, {"y": xi * c}), x, fnp.stack([x, x * 0 + 1.]))
        return c["p"] + c["q"][0] + c2[0][0] + ys["y"].sum()
    # x^3 + (1 + x + x^2) + x^3 + (x^2 + x)
    expected = lambda x: 2 * x ** 3 + 2 * x ** 2 + 2 * x + 1   # noqa: E731
    assert f(2.) == expected(2.)
    assert fg.grad(f)(2.) == pytest.approx(6 * 4 + 4 * 2 + 2)


def test_scan_reverse_and_stacked_ys_match_python():
    xs = np.array([1., 2., 3., 4.])

    def step(c, x):
        return c * 0.5 + x, c - x
    for reverse in (False, True):
        carry, ys = lax.scan(step, 1., xs, reverse=reverse)
        c, expected = 1., [None] * 4
        for k in (reversed(range(4)) if reverse else range(4)):
            c, expected[k] = step(c, xs[k])
        assert carry == c
        np.testing.assert_allclose(ys, expected)


def test_scan_zero_length_and_map():
    carry, ys = lax.scan(lambda c, x: (c + x.sum(), x * 2), 5., np.zeros((0, 3)))
    assert carry == 5. and ys.shape == (0, 3)
    assert fg.grad(lambda x: lax.fori_loop(0, 0, lambda i, a: a * x, x))(2.) == 1.
    assert fg.grad(lambda x: lax.map(fnp.sin, x).sum())(np.array([0., 1.])).tolist() == \
        [1., np.cos(1.)]


def test_carry_type_errors_name_the_line():
    with pytest.raises(FungradTypeError) as info:
        lax.fori_loop(0, 3, lambda i, a: a * 1.5, 1)          # int carry becomes float
    msg = str(info.value)
    assert THIS_FILE in msg and "fori_loop" in msg and "body_fun" in msg
    assert "must return the carry's structure and types * (i64[]), but it returned * (f64[])" \
        in msg
    with pytest.raises(FungradTypeError, match="fori_loop"):    # traced bounds: a while loop
        fg.grad(lambda x: lax.fori_loop(0, fnp.asarray(3) + 0 * x.astype(int),
                                        lambda i, a: (a, a), x))(1.)
    with pytest.raises(FungradTypeError, match="carry"):
        lax.while_loop(lambda c: c < 3., lambda c: fnp.stack([c, c]), 0.)
    with pytest.raises(FungradTypeError, match="boolean scalar"):
        lax.while_loop(lambda c: c, lambda c: c + 1., 0.)
    with pytest.raises(FungradTypeError, match="pair"):
        lax.scan(lambda c, x: c, 0., np.ones(3))
    with pytest.raises(FungradValueError, match="leading lengths"):
        lax.scan(lambda c, x: (c, x), 0., (np.ones(3), np.ones(4)))
    with pytest.raises(FungradValueError, match="length"):
        lax.scan(lambda c, x: (c, x), 0., np.ones(3), length=4)


def test_while_with_data_dependent_trip_count_under_vmap():
    def f(x):
        return lax.while_loop(lambda c: c < 10, lambda c: c * 2, x)
    xs = np.array([1., 3., 11.])
    np.testing.assert_array_equal(fg.vmap(f)(xs), [16., 12., 11.])
    np.testing.assert_array_equal(fg.vmap(fg.grad(f))(xs), [16., 4., 1.])
    np.testing.assert_array_equal(fg.jacrev(fg.vmap(f))(xs), np.diag([16., 4., 1.]))


# ---------------------------------------------------------------------------
# property tests: control-flow programs against their unrolled twins
# ---------------------------------------------------------------------------

def _fd(f, x, t=None, eps=1e-6):
    x = np.asarray(x, dtype=float)
    t = np.ones_like(x) if t is None else t
    return (np.asarray(f(x + eps * t)) - np.asarray(f(x - eps * t))) / (2 * eps)


def p_fori(x, n):
    return lax.fori_loop(0, n, lambda i, a: fnp.sin(a) * x + i, x).sum()


def u_fori(x, n):
    a = x
    for i in range(n):
        a = fnp.sin(a) * x + i
    return a.sum()


def p_fori_traced(x, n):
    return lax.fori_loop(fnp.asarray(0), fnp.asarray(n), lambda i, a: fnp.tanh(a * x) + a,
                         x).sum()


def u_fori_traced(x, n):
    a = x
    for _ in range(n):
        a = fnp.tanh(a * x) + a
    return a.sum()


def p_while(x, n):
    def body(c):
        a, b, k = c
        return a * fnp.cos(b) + x[1], b + a * x[2], k + 1
    return lax.while_loop(lambda c: c[2] < n, body, (x[0], x[1], 0))[0] * 1.0


def u_while(x, n):
    a, b = x[0], x[1]
    for _ in range(n):
        a, b = a * fnp.cos(b) + x[1], b + a * x[2]
    return a


def p_scan(x, n):
    def step(c, xi):
        return c * fnp.cos(xi) + xi * x[0], c * xi
    carry, ys = lax.scan(step, x[1], fnp.concatenate([x] * (n + 1)), reverse=n % 2 == 1)
    return carry + (ys * ys).sum()


def u_scan(x, n):
    xs = fnp.concatenate([x] * (n + 1))
    c, ys = x[1], []
    order = reversed(range(xs.shape[0])) if n % 2 == 1 else range(xs.shape[0])
    for k in order:
        c, y = c * fnp.cos(xs[k]) + xs[k] * x[0], c * xs[k]
        ys.append(y * y)
    return c + sum(ys)


def p_cond(x, n):
    return lax.cond(x[0] > 0, lambda v: (fnp.sin(v) * n).sum(), lambda v: (v * v).prod(), x)


def u_cond(x, n):
    return (fnp.sin(x) * n).sum() if x[0] > 0 else (x * x).prod()


def _branches(n):
    return [lambda v: v.sum() * n, lambda v: (v * v).sum(), lambda v: fnp.sin(v * n).sum()]


def p_switch(x, n):
    index = (x[0] > 0).astype(int) + (x[1] > 0).astype(int)
    return lax.switch(index, _branches(n), x)


def u_switch(x, n):
    return _branches(n)[int(x[0] > 0) + int(x[1] > 0)](x)


def p_nested(x, n):
    def outer(c, xi):
        inner = lax.fori_loop(0, n, lambda i, a: lax.cond(
            a > 1.0, lambda: a * 0.5, lambda: a * xi + 0.1), c)
        return inner, inner * x[2]
    c, ys = lax.scan(outer, fnp.abs(x[0]) + 0.1, x)
    return c + ys.sum()


def u_nested(x, n):
    c, total = fnp.abs(x[0]) + 0.1, 0.0
    for k in range(x.shape[0]):
        a = c
        for _ in range(n):
            a = a * 0.5 if a > 1.0 else a * x[k] + 0.1
        c = a
        total = total + a * x[2]
    return c + total


def p_while_data(x, n):
    # the trip count depends on the data (differs per example under vmap)
    def body(c):
        return c[0] * 1.5 + 0.2, c[1] * fnp.cos(x)
    a, v = lax.while_loop(lambda c: c[0] < 2.0 + n, body, (fnp.abs(x[0]) + 0.1, x))
    return a + v.sum()


def u_while_data(x, n):
    a, v = fnp.abs(x[0]) + 0.1, x
    while a < 2.0 + n:
        a, v = a * 1.5 + 0.2, v * fnp.cos(x)
    return a + v.sum()


def p_map(x, n):
    return lax.map(lambda v: fnp.sin(v * n) * v, fnp.stack([x, x * 2])).sum()


def u_map(x, n):
    return sum((fnp.sin(v * n) * v).sum() for v in [x, x * 2])


PROGRAMS = [(p_fori, u_fori), (p_fori_traced, u_fori_traced), (p_while, u_while),
            (p_scan, u_scan), (p_cond, u_cond), (p_switch, u_switch), (p_nested, u_nested),
            (p_while_data, u_while_data), (p_map, u_map)]
IDS = [p.__name__[2:] for p, _ in PROGRAMS]



def interpreted(test):
    """Run in the NumPy interpreter: the unrolled twins would otherwise be compiled by
    numba (seconds for each big unrolled kernel); the interpreter defines the meaning."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        with config.override("disable_jit", True):
            return test(*args, **kwargs)
    return run


# away from 0 so that branch predicates do not flip under finite differences
_ELEMENT = st.floats(0.1, 1.2) | st.floats(-1.2, -0.1)


def _point(data, shape=(3,)):
    x = data.draw(hnp.arrays(np.float64, shape, elements=_ELEMENT), label="x")
    n = data.draw(st.integers(0, 3), label="n")
    return x, n


@pytest.mark.parametrize("program,unrolled", PROGRAMS, ids=IDS)
@settings(max_examples=8)
@given(data=st.data())
@interpreted
def test_gradient_matches_unrolled_and_finite_differences(program, unrolled, data):
    x, n = _point(data)
    f = lambda v: program(v, n)      # noqa: E731
    u = lambda v: unrolled(v, n)     # noqa: E731
    np.testing.assert_allclose(f(x), u(x), rtol=1e-10, atol=1e-12)
    g = fg.grad(f)(x)
    np.testing.assert_allclose(g, fg.grad(u)(x), rtol=1e-9, atol=1e-12)
    t = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1, 1)), label="t")
    np.testing.assert_allclose(np.vdot(g, t), _fd(f, x, t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("program,unrolled", PROGRAMS, ids=IDS)
@settings(max_examples=5)
@given(data=st.data())
@interpreted
def test_jvp_vjp_dot_product_identity(program, unrolled, data):
    x, n = _point(data)

    def f(v):      # a vector output: the value and the doubled sine of it
        y = program(v, n)
        return fnp.stack([y, fnp.sin(y) * 2.0])
    t = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1, 1)), label="t")
    ct = data.draw(hnp.arrays(np.float64, (2,), elements=st.floats(-1, 1)), label="ct")
    y, jt = fg.jvp(f, (x,), (t,))
    y2, pullback = fg.vjp(f, x)
    (x_bar,) = pullback(ct)
    np.testing.assert_allclose(y, y2)
    np.testing.assert_allclose(np.vdot(ct, jt), np.vdot(x_bar, t), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fg.jacfwd(f)(x), fg.jacrev(f)(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("program,unrolled", PROGRAMS, ids=IDS)
@settings(max_examples=4)
@given(data=st.data())
@interpreted
def test_vmap_matches_python_loop(program, unrolled, data):
    xs = data.draw(hnp.arrays(np.float64, (3, 3), elements=_ELEMENT), label="xs")
    n = data.draw(st.integers(0, 3), label="n")
    f = lambda v: program(v, n)      # noqa: E731
    np.testing.assert_allclose(fg.vmap(f)(xs), np.stack([f(x) for x in xs]), rtol=1e-12)
    np.testing.assert_allclose(fg.vmap(fg.grad(f))(xs),
                               np.stack([fg.grad(lambda v: unrolled(v, n))(x) for x in xs]),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("program,unrolled", [PROGRAMS[0], PROGRAMS[2], PROGRAMS[3],
                                              PROGRAMS[4]], ids=["fori", "while", "scan", "cond"])
@settings(max_examples=3)
@given(data=st.data())
@interpreted
def test_second_derivative_matches_unrolled(program, unrolled, data):
    x, n = _point(data)
    t = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1, 1)), label="t")

    def hvp(f):
        return fg.jvp(fg.grad(f), (x,), (t,))[1]
    np.testing.assert_allclose(hvp(lambda v: program(v, n)), hvp(lambda v: unrolled(v, n)),
                               rtol=1e-8, atol=1e-10)


@pytest.mark.kernels
@pytest.mark.parametrize("program,unrolled", PROGRAMS, ids=IDS)
def test_backend_agrees_with_interpreter(program, unrolled):
    """Programs with control flow go through the backend (its fallback when it cannot
    compile them); repeated calls cross the compile threshold."""
    import warnings
    x = np.array([0.4, -0.7, 1.1])
    f = fg.grad(lambda v: program(v, 2))
    with config.override("disable_jit", True):
        expected = f(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(config.jit_threshold + 2):
            np.testing.assert_allclose(f(x), expected, rtol=1e-12)


def test_while_reverse_mode_records_a_tape_and_matches_scan():
    def by_while(x):
        return lax.while_loop(lambda c: c[1] < 300,
                              lambda c: (fnp.sin(c[0]) * x + 0.1, c[1] + 1), (x, 0))[0]

    def by_fori(x):
        return lax.fori_loop(0, 300, lambda i, a: fnp.sin(a) * x + 0.1, x)
    names = [e.prim.name for e in fg.make_jaxpr(fg.grad(by_while))(0.9).jaxpr.eqns]
    assert "while_tape" in names and "while_tape_vjp" in names
    np.testing.assert_allclose(fg.grad(by_while)(0.9), fg.grad(by_fori)(0.9), rtol=1e-12)
    np.testing.assert_allclose(fg.grad(by_while)(0.9), _fd(by_while, 0.9), rtol=1e-6)
    # the backward pass of the backward pass uses the recomputing reference (O(n^2))
    short_while = lambda x: lax.while_loop(  # noqa: E731
        lambda c: c[1] < 20, lambda c: (fnp.sin(c[0]) * x + 0.1, c[1] + 1), (x, 0))[0]
    short_fori = lambda x: lax.fori_loop(0, 20, lambda i, a: fnp.sin(a) * x + 0.1, x)  # noqa
    np.testing.assert_allclose(fg.grad(fg.grad(short_while))(0.9),
                               fg.grad(fg.grad(short_fori))(0.9), rtol=1e-9)


def test_while_gradient_wrt_closed_over_array_under_vmap_and_jacrev():
    w = np.array([0.5, -0.3, 0.8])

    def f(w, x):
        return lax.while_loop(lambda c: c[1] < 4, lambda c: (fnp.tanh(c[0] * w), c[1] + 1),
                              (x, 0))[0]

    def unrolled(w, x):
        for _ in range(4):
            x = fnp.tanh(x * w)
        return x
    xs = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]])
    np.testing.assert_allclose(
        fg.vmap(fg.grad(lambda w, x: f(w, x).sum()), in_axes=(None, 0))(w, xs),
        np.stack([fg.grad(lambda w: unrolled(w, x).sum())(w) for x in xs]), rtol=1e-12)
    np.testing.assert_allclose(fg.jacrev(f)(w, xs[0]), fg.jacfwd(unrolled)(w, xs[0]),
                               rtol=1e-12, atol=1e-15)


def _typecheck_deep(jaxpr):
    """typecheck a jaxpr and every sub-jaxpr stored in its equations' params."""
    typecheck(jaxpr)
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for sub in (value if isinstance(value, tuple) else (value,)):
                if isinstance(sub, fg.ClosedJaxpr):
                    _typecheck_deep(sub.jaxpr)


@pytest.mark.parametrize("program,unrolled", PROGRAMS, ids=IDS)
def test_every_rewrite_typechecks(program, unrolled):
    x = np.array([0.4, -0.7, 1.1])
    f = lambda v: program(v, 2)      # noqa: E731
    g = fg.grad(f)
    for jaxpr in [fg.make_jaxpr(f)(x), fg.make_jaxpr(g)(x),
                  fg.make_jaxpr(lambda v, t: fg.jvp(g, (v,), (t,)))(x, x),
                  fg.make_jaxpr(fg.vmap(g))(np.stack([x, x])),
                  fg.make_jaxpr(fg.grad(lambda v: g(v).sum()))(x)]:
        _typecheck_deep(jaxpr.jaxpr)


@pytest.mark.parametrize("axes", [(0, None), (1, 0), (0, 0), (None, 0)])
@interpreted
def test_vmap_grad_of_while_sharing_a_constant_between_cond_and_body(axes):
    def f(w, x):
        return lax.while_loop(lambda c: (c[1] < 4) & (c[0].sum() < w.sum() * 10),
                              lambda c: (fnp.tanh(c[0] * w) + w, c[1] + 1), (x, 0))[0].sum()

    def unrolled(w, x):
        k = 0
        while k < 4 and x.sum() < w.sum() * 10:
            x, k = fnp.tanh(x * w) + w, k + 1
        return x.sum()
    W = np.array([[0.5, -0.3, 0.8], [0.1, 0.2, 0.3], [1., 1., 1.]]).T
    X = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.5], [2., 2., 2.]])
    ww = W if axes[0] is not None else W[:, 0]
    xx = X if axes[1] is not None else X[0]
    got = fg.vmap(fg.grad(f, argnums=(0, 1)), in_axes=axes)(ww, xx)
    for i in range(3):
        wi = ww if axes[0] is None else (ww[i] if axes[0] == 0 else ww[:, i])
        xi = xx if axes[1] is None else xx[i]
        expected = fg.grad(unrolled, argnums=(0, 1))(wi, xi)
        np.testing.assert_allclose(got[0][i], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[1][i], expected[1], rtol=1e-12)


@pytest.mark.parametrize("f", CUBES + [lambda x: lax.cond(x > 0, lambda: x ** 3, lambda: -x)],
                         ids=[f.__name__ for f in CUBES] + ["cond"])
def test_under_jit(f):
    jit = fg.jit
    assert jit(f)(2.) == 8.
    assert jit(fg.grad(f))(2.) == 12.
    assert fg.grad(jit(f))(2.) == 12.
    assert jit(fg.grad(fg.grad(f)))(2.) == pytest.approx(12.)
    np.testing.assert_allclose(jit(fg.vmap(fg.grad(f)))(np.array([2., 3.])), [12., 27.])


@pytest.mark.parametrize("batch_size", [None, 1, 3, 7, 10])
def test_map_batch_size(batch_size):
    xs = np.arange(14.).reshape(7, 2)
    np.testing.assert_allclose(lax.map(lambda x: (x * x).sum(), xs, batch_size=batch_size),
                               (xs * xs).sum(1))
    g = fg.grad(lambda v: lax.map(lambda x: fnp.sin(x).sum(), v, batch_size=batch_size).sum())
    np.testing.assert_allclose(g(xs), np.cos(xs))
    out = lax.map(lambda p: {"a": p[0] * 2, "b": p[1]}, (xs, xs[:, 0]), batch_size=batch_size)
    np.testing.assert_allclose(out["a"], xs * 2)
    np.testing.assert_allclose(out["b"], xs[:, 0])


# -- branch and carry types are checked in every mode (issue 12) ------------------------

def _f32(x):
    return fnp.asarray(x).astype(np.float32)


MISMATCHED = {
    "cond": lambda p, x: lax.cond(p, lambda v: v * 2.0, lambda v: _f32(v), x),
    "cond_shape": lambda p, x: lax.cond(p, lambda v: v, lambda v: fnp.stack([v, v]), x),
    "cond_tree": lambda p, x: lax.cond(p, lambda v: (v, v), lambda v: v, x),
    "switch": lambda p, x: lax.switch(fnp.asarray(p).astype(np.int64) if isinstance(p, Tracer)
                                      else int(p), [lambda v: v, lambda v: _f32(v)], x),
}


@pytest.mark.parametrize("name", sorted(MISMATCHED))
def test_mismatched_branch_types_raise_in_every_mode(name):
    op = MISMATCHED[name]
    modes = {
        "eager True": lambda: op(True, 1.0),
        "eager False": lambda: op(False, 1.0),
        "eager array pred": lambda: op(np.bool_(True), np.float64(1.0)),
        "grad": lambda: fg.grad(lambda x: fnp.sum(op(True, x)))(1.0),
        "grad traced pred": lambda: fg.grad(lambda x: fnp.sum(op(x > 0, x)))(1.0),
        "jit": lambda: fg.jit(lambda x: op(x > 0, x))(1.0),
        "jit static pred": lambda: fg.jit(lambda x: op(True, x))(1.0),
        "vmap": lambda: fg.vmap(lambda x: op(x > 0, x))(np.ones(2)),
        "make_jaxpr": lambda: fg.make_jaxpr(lambda x: op(True, x))(1.0),
    }
    for mode, run in modes.items():
        with pytest.raises(FungradTypeError, match="branches must return the same") as info:
            run()
        assert "test_control_flow.py" in str(info.value), (mode, str(info.value))


def test_a_concrete_cond_still_runs_only_the_chosen_branch_and_allows_python_scalars():
    calls = []
    assert lax.cond(False, lambda x: calls.append("t") or x + 1,
                    lambda x: calls.append("f") or x - 1, 1.0) == 0.0
    assert calls == ["f", "t"]      # f ran; t was traced (once, abstractly) for its type
    assert lax.cond(True, lambda x: 0.0, lambda x: x, np.float32(1.0)) == 0.0   # weak 0.0
    assert lax.switch(5, [lambda x: x, lambda x: x * 2], 1.0) == 2.0             # clamped
    # a branch with Python control flow on values cannot be traced: not compared
    assert lax.cond(True, lambda x: x, lambda x: x if x > 0 else -x, 2.0) == 2.0


@pytest.mark.parametrize("mode", ["eager", "grad", "jit", "vmap"])
def test_loop_carry_type_changes_raise_in_every_mode(mode):
    loops = [
        lambda x: lax.while_loop(lambda c: c < 3.0, lambda c: _f32(c + 1.0), x),
        lambda x: lax.scan(lambda c, _: (_f32(c), c), x, None, length=2)[0],
        lambda x: lax.fori_loop(0, 2, lambda i, c: fnp.stack([c, c]), x),
    ]
    for loop in loops:
        run = {"eager": lambda: loop(1.0), "grad": lambda: fg.grad(loop)(1.0),
               "jit": lambda: fg.jit(loop)(1.0),
               "vmap": lambda: fg.vmap(loop)(np.ones(2))}[mode]
        with pytest.raises(FungradTypeError, match="must return the carry") as info:
            run()
        assert "test_control_flow.py" in str(info.value)


# the rest of the mode matrix (issue 12 item 5): forward mode, jit of grad, hessian, and
# the predicate / index / loop-condition types, each in every mode
_MORE_MODES = {
    "eager": lambda f: f(1.0),
    "jit": lambda f: fg.jit(f)(1.0),
    "grad": lambda f: fg.grad(lambda x: fnp.sum(f(x)))(1.0),
    "jacfwd": lambda f: fg.jacfwd(lambda x: fnp.sum(f(x)))(1.0),
    "jit(grad)": lambda f: fg.jit(fg.grad(lambda x: fnp.sum(f(x))))(1.0),
    "hessian": lambda f: fg.hessian(lambda x: fnp.sum(f(x)))(1.0),
    "vmap": lambda f: fg.vmap(f)(np.array([1.0, 2.0])),
}

_MISTYPED = {
    "cond branch dtype": lambda x: lax.cond(x > 0, lambda v: v, _f32, x),
    "cond branch shape": lambda x: lax.cond(x > 0, lambda v: v, lambda v: fnp.stack([v, v]), x),
    "switch branch tree": lambda x: lax.switch(1, [lambda v: v, lambda v: (v, v)], x),
    "cond predicate not a scalar": lambda x: lax.cond(fnp.stack([x > 0, x > 0]), lambda v: v,
                                                      lambda v: v, x),
    "switch index not a scalar": lambda x: lax.switch(
        fnp.stack([x > 0, x > 0]).astype(int), [lambda v: v, lambda v: v], x),
    "while_loop carry dtype": lambda x: lax.while_loop(lambda c: c < 3.0,
                                                       lambda c: _f32(c + 1.0), x),
    "while_loop condition not bool": lambda x: lax.while_loop(lambda c: c - 3.0,
                                                              lambda c: c + 1.0, x),
    "while_loop condition not scalar": lambda x: lax.while_loop(
        lambda c: fnp.stack([c < 3.0, c < 3.0]), lambda c: c + 1.0, x),
    "scan carry shape": lambda x: lax.scan(lambda c, t: (fnp.stack([c, c]), t), x,
                                           fnp.ones(3))[0],
    "fori_loop carry dtype": lambda x: lax.fori_loop(0, 2, lambda i, c: _f32(c), x),
}


@pytest.mark.parametrize("mode", sorted(_MORE_MODES))
@pytest.mark.parametrize("case", sorted(_MISTYPED))
def test_control_flow_type_errors_in_the_full_mode_matrix(case, mode):
    with pytest.raises(FungradTypeError) as info:
        _MORE_MODES[mode](_MISTYPED[case])
    assert "test_control_flow.py" in str(info.value), str(info.value)
