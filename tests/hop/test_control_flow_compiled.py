"""Control flow inside numba kernels: scan/while/cond lower to real loops and branches.

Each program runs compiled (`fg.jit`) and interpreted (`disable_jit`); the results
must agree, the kernel source must hold the loop, and nothing may fall back.
"""
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


def _interpreted(f, *args):
    with config.override("disable_jit", True):
        return f(*args)


def _leaves(x):
    if isinstance(x, (tuple, list)):
        return [y for v in x for y in _leaves(v)]
    return [np.asarray(x)]


def check(f, *args, loop=None):
    """fg.jit(f) == f interpreted, no fallback warning; `loop` must be in the kernel."""
    jf = fg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FungradKernelWarning)
        got = jf(*args)
        text = jf.lower(*args).as_text()
    want = _interpreted(f, *args)
    gl, wl = _leaves(got), _leaves(want)
    assert len(gl) == len(wl)
    for g, w in zip(gl, wl, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, (g, w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert "no kernel" not in text
    if loop is not None:
        assert loop in text.split("\n\n", 1)[1], text
    return text


# --- programs --------------------------------------------------------------------

def decay(x):
    return lax.fori_loop(0, 50, lambda i, a: a * 0.99 + 1.0, x)


def rnn(w, h0, xs):
    def step(h, x):
        h = fnp.tanh(w @ h + x)
        return h, h.sum()
    return lax.scan(step, h0, xs)


def rnn_loss(w, h0, xs):
    h, ys = rnn(w, h0, xs)
    return (h ** 2).sum() + ys.sum()


def cumulative(xs, reverse):
    return lax.scan(lambda c, x: (c + x, c * x), 0.0, xs, reverse=reverse)


def newton_sqrt(a):
    def body(s):
        x, i = s
        return (x + a / x) * 0.5, i + 1
    return lax.while_loop(lambda s: (fnp.abs(s[0] * s[0] - a) > 1e-10) & (s[1] < 100),
                          body, (a + 1.0, 0))


def piecewise(x):
    return lax.cond(x > 0, lambda y: fnp.sin(y) * y, lambda y: y ** 3 - 2.0 * y, x)


def three_way(i, x):
    return lax.switch(i, [lambda y: y + 1.0, lambda y: y * y, lambda y: fnp.exp(-y)], x)


def dynamic_fori(n, x):
    return lax.fori_loop(0, n, lambda i, a: a * fnp.cos(a) + i, x)


def nested(x):
    def outer(c, xi):
        inner = lax.fori_loop(0, 3, lambda j, a: lax.cond(a.sum() > 1.0, lambda b: b * 0.5,
                                                          lambda b: b + xi, a), c)
        return inner, inner.sum()
    return lax.scan(outer, x, fnp.arange(4.0))


# --- exact programs ------------------------------------------------------------------

def test_fori_loop_is_a_for_loop():
    text = check(decay, np.array([0.5, 2.0]), loop="for _t")
    out = fg.jit(decay)(np.array(0.0))
    want = 0.0
    for _ in range(50):
        want = want * 0.99 + 1.0
    assert float(out) == pytest.approx(want, rel=1e-14)
    assert "range(50)" in text


def test_scan_rnn_and_reverse():
    rng = np.random.default_rng(0)
    w, h0, xs = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=3), rng.normal(size=(6, 3))
    check(rnn, w, h0, xs, loop="for _t")
    backward = lambda xs: cumulative(xs, True)  # noqa: E731
    # the length is a size symbol read from the input (kernels shared across lengths)
    check(backward, np.arange(1.0, 6.0), loop="range((_d0 - 1), -1, -1)")
    check(lambda xs: cumulative(xs, False), np.arange(1.0, 6.0), loop="range(_d0)")
    c, ys = fg.jit(backward)(np.arange(1.0, 6.0))
    assert float(c) == 15.0 and ys.tolist() == [14.0, 24.0, 27.0, 20.0, 0.0]


def test_while_loop_is_a_while_loop():
    check(newton_sqrt, np.array(2.0), loop="while True:")
    x, n = fg.jit(newton_sqrt)(np.array(9.0))
    assert float(x) == pytest.approx(3.0) and 0 < int(n) < 100
    check(dynamic_fori, np.array(7), np.array([0.3, -1.2]), loop="while True:")


def test_cond_and_switch_are_branches():
    for v in (-1.5, 0.0, 2.0):
        check(piecewise, np.array(v), loop="if ")
    for i in (-3, 0, 1, 2, 7):   # the index is clamped like lax.switch
        check(three_way, np.array(i), np.array([0.5, 1.5]), loop="elif ")


def test_nested_control_flow():
    text = check(nested, np.array([0.2, 0.4]), loop="for _t")
    assert text.count("for _t") >= 2 and "if " in text


def test_zero_length_scan():
    f = lambda x: lax.scan(lambda c, y: (c + y, c * y), 1.0, x)  # noqa: E731
    check(f, np.zeros((0,)))


def test_while_tape_still_falls_back_with_identical_results():
    # reverse mode of while_loop records an opaque tape: it stays in the interpreter
    f = fg.grad(lambda x: newton_sqrt(x)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FungradKernelWarning)
        got = fg.jit(f)(np.array(2.0))
    assert float(got) == pytest.approx(float(_interpreted(f, np.array(2.0))), rel=1e-12)
    assert float(got) == pytest.approx(0.5 / np.sqrt(2.0), rel=1e-8)


# --- transforms (property tests) ---------------------------------------------------

floats = st.floats(-2.0, 2.0, allow_nan=False)


@settings(max_examples=8)
@given(st.lists(floats, min_size=9 + 3 + 12, max_size=9 + 3 + 12))
def test_grad_of_scan_compiles(vals):
    v = np.array(vals)
    w, h0, xs = v[:9].reshape(3, 3) * 0.5, v[9:12], v[12:].reshape(4, 3)
    check(fg.grad(rnn_loss, argnums=(0, 1, 2)), w, h0, xs, loop="for _t")
    text = fg.jit(fg.grad(rnn_loss)).lower(w, h0, xs).as_text()
    assert text.count("for _t") >= 2     # forward scan and reverse scan


@settings(max_examples=8)
@given(floats, floats)
def test_jvp_and_grad_of_fori_and_cond(x, t):
    x, t = np.array(x), np.array(t)
    g = lambda x: lax.fori_loop(0, 20, lambda i, a: fnp.sin(a) * 0.9 + x, x)  # noqa: E731
    check(lambda x, t: fg.jvp(g, (x,), (t,)), x, t, loop="for _t")
    check(fg.grad(g), x, loop="for _t")
    check(fg.grad(piecewise), x, loop="if ")
    check(lambda x, t: fg.jvp(piecewise, (x,), (t,)), x, t, loop="if ")


@settings(max_examples=8)
@given(st.lists(floats, min_size=4, max_size=4))
def test_vmap_of_control_flow(vals):
    xs = np.array(vals)
    check(fg.vmap(piecewise), xs)        # cond of a batched predicate becomes select
    check(fg.vmap(decay), xs, loop="for _t")
    check(fg.vmap(lambda a: newton_sqrt(fnp.abs(a) + 0.5)[0]), xs, loop="while True:")
    check(fg.vmap(lambda i: three_way(i, xs)), np.array([0, 2, 1]), loop="if ")


def test_dtypes_aliases_and_passthrough():
    def f(x):
        c, ys = lax.scan(lambda c, y: ((c[0] * y + 1, c[1] + 1, c[2]), y * c[0]),
                         (x[0], np.int32(0), x), x)
        same = lax.cond(c[1] > 2, lambda a: a, lambda a: a * 2, x)   # returns its operand
        return c, ys, same, same
    check(f, np.arange(1.0, 4.0, dtype=np.float32), loop="for _t")
    check(f, np.arange(1.0, 4.0), loop="for _t")
