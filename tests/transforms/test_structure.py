"""The basis-structure pass (transforms/structure.py) and the simplifications that
let `vmap(jacrev(f))`, `vmap(jacfwd(f))` and `vmap(grad(f))` reach the shape of a
hand-written batched derivative: no dense n x n basis, no O(n^2)-per-example
products, and values equal to the unsimplified program."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.config import config
from fungrad.core import typecheck
from fungrad.interpreter import eval_jaxpr
from fungrad.transforms.simplify import simplify_jaxpr
from fungrad.transforms.structure import diagonal_jaxpr
from fungrad.transforms.vmap import vmap_jaxpr


@pytest.fixture(autouse=True)
def interpreter_only():
    with config.override("disable_jit", True):
        yield


def programs(fn, *args, in_axes=None):
    """(unsimplified jaxpr, simplified jaxpr, consts) of fn at args; with in_axes, of
    vmap(fn, in_axes) (fn traced per example, batched by vmap_jaxpr, not simplified:
    `make_jaxpr(vmap(...))` shows vmap's simplified program)."""
    if in_axes is None:
        closed = fg.make_jaxpr(fn)(*args)
        raw = closed.jaxpr
    else:
        sizes = {a.shape[d] for a, d in zip(args, in_axes) if d is not None}
        (size,) = sizes
        one = [a if d is None else np.take(a, 0, axis=d) for a, d in zip(args, in_axes)]
        closed = fg.make_jaxpr(fn)(*one)
        raw = vmap_jaxpr(closed.jaxpr, size, in_axes, [0] * len(closed.jaxpr.outvars))
    typecheck(raw)
    simple = simplify_jaxpr(raw)
    typecheck(simple)
    return raw, simple, closed.consts


def assert_same_values(raw, simple, consts, *args, rtol=1e-13):
    want = eval_jaxpr(raw, consts, *args)
    got = eval_jaxpr(simple, consts, *args)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        w, g = np.asarray(w), np.asarray(g)
        assert w.shape == g.shape and w.dtype == g.dtype
        scale = max(float(np.max(np.abs(w), initial=0.0)), 1e-300)
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * scale)


def prims(jaxpr):
    return [e.prim.name for e in jaxpr.eqns]


def dense_products(jaxpr, min_rank=3):
    """dot_general / reduce_sum equations that read an operand of rank >= min_rank."""
    return [e for e in jaxpr.eqns if e.prim.name in ("dot_general", "reduce_sum")
            and any(getattr(a.aval, "ndim", 0) >= min_rank for a in e.inputs)]


def full_size(jaxpr, shape):
    """Equations whose output has `shape` (the batched jacobian's)."""
    return [e for e in jaxpr.eqns if e.outputs[0].aval.shape == tuple(shape)]


# ---------------------------------------------------------------------------
# the benchmark's programs
# ---------------------------------------------------------------------------

def _tanh_ax(x, A):
    return fnp.tanh(A @ x)


@pytest.mark.parametrize("jac", [fg.jacrev, fg.jacfwd])
@pytest.mark.parametrize("B,n", [(16, 20), (1, 5), (3, 1), (1, 1)])
def test_vmap_jacobian_of_tanh_ax_is_a_scaling(jac, B, n):
    rng = np.random.default_rng(B * 100 + n)
    X, A = rng.standard_normal((B, n)), rng.standard_normal((n, n))
    raw, simple, consts = programs(jac(_tanh_ax), X, A, in_axes=(0, None))
    if jac is fg.jacrev and n > 1:
        # the unsimplified program multiplies a batched (3-d) identity by A
        assert "iota" in prims(raw) and dense_products(raw)
    assert "iota" not in prims(simple)
    assert not dense_products(simple)
    # the forward product, then (1 - t^2) broadcast times A broadcast: one pass at B x n x n
    # (n = 1: the 1 x 1 identity is folded to a constant before the pass sees it, and
    # a product by it may stay; all is O(B) then)
    assert prims(simple).count("dot_general") == 1 or n == 1
    assert len(full_size(simple, (B, n, n))) <= 3
    assert_same_values(raw, simple, consts, X, A)
    T = np.tanh(X @ A.T)
    np.testing.assert_allclose(eval_jaxpr(simple, consts, X, A)[0],
                               (1 - T * T)[:, :, None] * A[None], rtol=1e-13)


def _example_loss(W1, b1, W2, b2, x, y):
    h = fnp.tanh(x @ W1 + b1)
    logits = (h @ W2 + b2)[None, :]
    logp = logits - fg.nn.logsumexp(logits, axis=1, keepdims=True)
    return -fnp.sum(y * logp)


@pytest.mark.parametrize("B", [1, 7])
def test_per_example_grads_have_no_batched_outer_products(B):
    rng = np.random.default_rng(B)
    D, H, C = 6, 5, 3
    params = [rng.standard_normal((D, H)), rng.standard_normal(H),
              rng.standard_normal((H, C)), rng.standard_normal(C)]
    X, Y = rng.standard_normal((B, D)), np.eye(C)[rng.integers(0, C, B)]
    g = fg.grad(_example_loss, argnums=(0, 1, 2, 3))
    raw, simple, consts = programs(g, *params, X, Y, in_axes=(None,) * 4 + (0, 0))
    batched = [e for e in raw.eqns if e.prim.name == "dot_general"
               and e.params["dimension_numbers"][1][0]]
    assert batched      # the per-example outer products x (x) dh, h (x) dlogits
    for e in simple.eqns:
        if e.prim.name == "dot_general":
            (cx, _), (bx, _) = e.params["dimension_numbers"]
            assert cx and not bx, e       # only real matrix products remain
    assert_same_values(raw, simple, consts, *params, X, Y)


# ---------------------------------------------------------------------------
# random elementwise functions, batch sizes and sizes including 1
# ---------------------------------------------------------------------------

UNARY = {
    "sin": fnp.sin, "tanh": fnp.tanh, "exp": lambda x: fnp.exp(-x * x),
    "square": lambda x: x * x, "neg": lambda x: -x, "scale": lambda x: 2.5 * x,
    "shift": lambda x: x + 0.75, "leaky": lambda x: fnp.where(x > 0, x, 0.1 * x),
    "log1p": lambda x: fnp.log1p(x * x), "sqrt": lambda x: fnp.sqrt(1.0 + x * x),
    "cube": lambda x: x ** 3, "recip": lambda x: 1.0 / (2.0 + x * x),
}
# operations after which the jacobian is no longer diagonal (values only)
BREAK = {
    "flip": lambda x: x[::-1], "cumsum": fnp.cumsum, "mean": lambda x: x * fnp.mean(x),
}


class Fn:
    """A callable with a readable repr (hypothesis prints it for a failing case)."""

    def __init__(self, fn, text):
        self.fn, self.text = fn, text

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self):
        return self.text


@st.composite
def elementwise_fns(draw, depth=3):
    """A random function built from elementwise operations (a tree of unary chains
    joined by +, - or *), as a Python callable of x."""
    def node(d):
        kind = draw(st.sampled_from(["chain", "chain", "join"] if d > 0 else ["chain"]))
        if kind == "chain":
            names = draw(st.lists(st.sampled_from(sorted(UNARY)), min_size=1, max_size=3))

            def f(x, names=names):
                for nm in names:
                    x = UNARY[nm](x)
                return x
            return Fn(f, ".".join(reversed(names)) + "(x)")
        op = draw(st.sampled_from(["+", "*", "-"]))
        a, b = node(d - 1), node(d - 1)
        return Fn({"+": lambda x: a(x) + b(x), "*": lambda x: a(x) * b(x),
                   "-": lambda x: a(x) - b(x)}[op], f"({a!r} {op} {b!r})")
    return node(depth)


@settings(max_examples=40, deadline=None)
@given(g=elementwise_fns(), B=st.sampled_from([1, 2, 3]), n=st.sampled_from([1, 2, 4]),
       pre=st.sampled_from([None, "A@x"]), post=st.sampled_from([None, "C@", "sum"]),
       breaker=st.sampled_from([None, None, "flip", "cumsum", "mean"]),
       jac=st.sampled_from(["jacrev", "jacfwd"]), seed=st.integers(0, 2 ** 16))
def test_vmap_jacobian_of_elementwise_functions(g, B, n, pre, post, breaker, jac, seed):
    rng = np.random.default_rng(seed)
    X, A, C = (rng.uniform(-1.5, 1.5, (B, n)), rng.standard_normal((n, n)),
               rng.standard_normal((2, n)))

    def f(x, A, C):
        y = A @ x if pre else x
        y = g(y)
        if breaker:
            y = BREAK[breaker](y)
        return C @ y if post == "C@" else fnp.sum(y) + y if post == "sum" else y

    d = getattr(fg, jac)
    raw, simple, consts = programs(d(f), X, A, C, in_axes=(0, None, None))
    assert_same_values(raw, simple, consts, X, A, C)
    if breaker is None and post is None and n > 1 and (jac == "jacrev" or not pre):
        # the jacobian is diag(g'(..)) (times A): only the forward matmul remains, and
        # at most one pass over the B x n x n result builds it from a B x n vector
        # (n = 1: the 1 x 1 identity is folded before the pass sees it; all is O(B).
        # jacfwd through A @ x pushes the dense tangent A through g's chain rule, one
        # pass per factor: folding those factors would re-associate products)
        assert not dense_products(simple), simple
        assert prims(simple).count("dot_general") == (1 if pre else 0)
        assert len(full_size(simple, (B, n, n))) <= 3, simple


@settings(max_examples=15, deadline=None)
@given(g=elementwise_fns(depth=2), B=st.sampled_from([1, 3]), n=st.sampled_from([1, 3]),
       seed=st.integers(0, 2 ** 16))
def test_jacrev_and_jacfwd_agree_through_vmap(g, B, n, seed):
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, (B, n))
    rev = fg.vmap(fg.jacrev(g))(X)
    fwd = fg.vmap(fg.jacfwd(g))(X)
    np.testing.assert_allclose(rev, fwd, rtol=1e-12, atol=1e-12)
    one = np.stack([fg.jacrev(g)(x) for x in X])
    np.testing.assert_allclose(rev, one, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# each rule of the pass on a diagonal built by hand (batched: axes 1, 2 of 3-d)
# ---------------------------------------------------------------------------

def _bdiag(v, n):
    """v[b, i] on the diagonal of a (B, n, n) array, from an iota identity."""
    eye = lax.convert_element_type(lax.eq(lax.iota(np.int64, (n, n), 0),
                                          lax.iota(np.int64, (n, n), 1)), np.float64)
    B = v.shape[0]
    return lax.broadcast_in_dim(eye, (B, n, n), (1, 2)) * \
        lax.broadcast_in_dim(fnp.sin(v), (B, n, n), (0, 1))


B_, N_ = 3, 4
RULES = {
    # name: (function of (v, W), the primitive that must disappear)
    "sum axis 2": (lambda v, W: fnp.sum(_bdiag(v, N_), axis=2), "reduce_sum"),
    "sum axis 1": (lambda v, W: fnp.sum(_bdiag(v, N_), axis=1), "reduce_sum"),
    "sum axes 0, 2": (lambda v, W: fnp.sum(_bdiag(v, N_), axis=(0, 2)), "reduce_sum"),
    "sum axes 1, 2": (lambda v, W: fnp.sum(_bdiag(v, N_), axis=(1, 2)), "reduce_sum"),
    "sum axis 0, then a product": (
        lambda v, W: fnp.sum(_bdiag(v, N_), axis=0) @ W, "dot_general"),
    "D @ W": (lambda v, W: _bdiag(v, N_) @ W, "dot_general"),
    "W.T @ D": (lambda v, W: fnp.einsum("ij,bjk->bik", W.T, _bdiag(v, N_)), "dot_general"),
    "transpose then @": (
        lambda v, W: fnp.transpose(_bdiag(v, N_), (0, 2, 1)) @ W, "dot_general"),
    "transpose to the front then contract": (
        lambda v, W: fnp.einsum("ibj,jk->bik", fnp.transpose(_bdiag(v, N_), (2, 0, 1)), W),
        "dot_general"),
    "neg, scale, add, sub": (lambda v, W: (2.0 * (-_bdiag(v, N_)) + _bdiag(v * v, N_)
                                           - _bdiag(v, N_)) @ W, "dot_general"),
    "select with zeros": (lambda v, W: fnp.where(
        (v > 0)[:, :, None], _bdiag(v, N_), 0.0) @ W, "dot_general"),
    "batched dot with another contraction": (
        lambda v, W: lax.dot_general(_bdiag(v, N_), fnp.broadcast_to(W[:, None, :], (N_, B_, N_)),
                                     (((0, 2), (1, 0)), ((), ()))), "smaller dot_general"),
    "broadcast to 4-d then @": (
        lambda v, W: fnp.broadcast_to(_bdiag(v, N_)[None], (2, B_, N_, N_)) @ W,
        "dot_general"),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rules_on_a_batched_diagonal(name):
    fn, gone = RULES[name]
    rng = np.random.default_rng(7)
    v, W = rng.standard_normal((B_, N_)), rng.standard_normal((N_, N_))
    raw, simple, consts = programs(fn, v, W)
    rewritten = diagonal_jaxpr(raw)
    assert rewritten is not raw
    assert "iota" not in prims(simple), simple
    if gone == "smaller dot_general":
        # the diagonal operand is read as its v: a product batched over the diagonal
        (dot,) = [e for e in simple.eqns if e.prim.name == "dot_general"]
        assert dot.inputs[0].aval.shape == (B_, N_) and dot.params["dimension_numbers"][1][0]
    else:
        # the dense product or sum is gone (a sum over the small v may remain)
        assert prims(simple).count(gone) < prims(raw).count(gone) or gone == "reduce_sum", simple
        assert not dense_products(simple, min_rank=4 if "4-d" in name else 3), simple
    assert_same_values(raw, simple, consts, v, W)


def test_a_product_that_is_not_diagonal_is_left_alone():
    # D * W (W varies along both diagonal axes): its diagonal would need a gather,
    # so the dense product is kept; the value is still right
    rng = np.random.default_rng(3)
    v, W = rng.standard_normal((B_, N_)), rng.standard_normal((B_, N_, N_))
    raw, simple, consts = programs(lambda v, W: (_bdiag(v, N_) * W) @ W[0], v, W)
    assert dense_products(simple)
    assert_same_values(raw, simple, consts, v, W)


def test_no_identity_no_change():
    j = fg.make_jaxpr(lambda x: fnp.sin(x) @ x.T)(np.ones((2, 3))).jaxpr
    assert diagonal_jaxpr(j) is j


def test_simplification_reaches_a_fixed_point():
    X, A = np.ones((2, 3)), np.eye(3)
    for once in (programs(fg.jacrev(lambda x: fnp.sin(x) * fnp.exp(x)), X, in_axes=(0,))[1],
                 programs(fg.jacrev(_tanh_ax), X, A, in_axes=(0, None))[1]):
        assert simplify_jaxpr(once) is once


# ---------------------------------------------------------------------------
# the algebraic rewrites the batched derivatives need (simplify.py)
# ---------------------------------------------------------------------------

def _bcast(x, shape, dims):
    return lax.broadcast_in_dim(x, shape, dims)


ALGEBRAIC = {
    # name: (function, input shapes, primitive whose count must drop)
    "batched outer product": (
        lambda x, y: lax.dot_general(x, y, (((), ()), ((0,), (0,)))), [(3, 4), (3, 5)],
        "dot_general"),
    "batched outer product, batch axes not in front": (
        lambda x, y: lax.dot_general(x, y, (((), ()), ((1,), (2,)))), [(4, 3), (2, 5, 3)],
        "dot_general"),
    "contraction over size-1 axes of a 3-d operand": (
        lambda x, y: lax.dot_general(x, y, (((2,), (0,)), ((), ()))), [(3, 4, 1), (1, 5)],
        "dot_general"),
    "transpose of a broadcast that stretches a size-1 axis": (
        lambda x, y: lax.transpose(_bcast(x, (3, 4), (0, 1)), (1, 0)), [(3, 1), (1,)],
        "full-size transpose"),
    "transpose of a product of broadcasts": (
        lambda x, y: lax.transpose(_bcast(x, (2, 3, 4), (0, 2)) * _bcast(y, (2, 3, 4), (1, 2)),
                                   (0, 2, 1)), [(2, 4), (3, 4)], "full-size transpose"),
    "transpose of a select of broadcasts": (
        lambda x, y: lax.transpose(fnp.where(_bcast(x > 0, (2, 3), (1,)), _bcast(y, (2, 3), (0,)),
                                             0.0), (1, 0)), [(3,), (2,)], "full-size transpose"),
    "reshape of a broadcast adding size-1 axes": (
        lambda x, y: lax.reshape(_bcast(x, (3, 1, 4), (0, 2)), (3, 4, 1)) + 1.0,
        [(3, 4), (1,)], "broadcast_in_dim"),
}


@pytest.mark.parametrize("name", sorted(ALGEBRAIC))
def test_algebraic_rewrites_keep_values(name):
    fn, shapes, gone = ALGEBRAIC[name]
    rng = np.random.default_rng(11)
    args = [rng.standard_normal(s) for s in shapes]
    raw, simple, consts = programs(fn, *args)
    if gone == "full-size transpose":     # the transpose moved onto the small source
        size = raw.outvars[0].aval.size
        assert all(e.inputs[0].aval.size < size for e in simple.eqns
                   if e.prim.name == "transpose"), simple
    else:
        assert prims(simple).count(gone) < prims(raw).count(gone), simple
    assert_same_values(raw, simple, consts, *args, rtol=0)
    assert simplify_jaxpr(simple) is simple


def test_a_transpose_of_a_dense_elementwise_result_stays():
    # sin(x) is no broadcast: pushing the transpose into it would not save a pass
    raw, simple, consts = programs(lambda x: lax.transpose(fnp.sin(x) * x, (1, 0)),
                                   np.ones((2, 3)))
    assert "transpose" in prims(simple)


def test_compiled_batched_jacobian_and_per_example_grads_match_numpy():
    # the simplified programs through the numba kernels (jit), against NumPy by hand
    rng = np.random.default_rng(5)
    X, A = rng.standard_normal((4, 6)), rng.standard_normal((6, 6))
    D, H, C = 5, 4, 3
    params = [rng.standard_normal((D, H)), rng.standard_normal(H),
              rng.standard_normal((H, C)), rng.standard_normal(C)]
    Xe, Ye = rng.standard_normal((3, D)), np.eye(C)[[0, 2, 1]]
    from fungrad.backend.numba_jit import stats
    before = stats["compiled"] + stats["cache_loaded"]
    with config.override("disable_jit", False), config.override("sync_compile", True), \
            config.override("compile_messages", False):
        J = fg.jit(fg.vmap(fg.jacrev(_tanh_ax), in_axes=(0, None)))(X, A)
        G = fg.jit(fg.vmap(fg.grad(_example_loss, argnums=(0, 1, 2, 3)),
                           in_axes=(None,) * 4 + (0, 0)))(*params, Xe, Ye)
    assert stats["compiled"] + stats["cache_loaded"] >= before + 2    # two kernels ran
    T = np.tanh(X @ A.T)
    np.testing.assert_allclose(J, (1 - T * T)[:, :, None] * A[None], rtol=1e-13, atol=1e-15)
    W1, b1, W2, b2 = params
    Hh = np.tanh(Xe @ W1 + b1)
    logits = Hh @ W2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    dl = e / e.sum(axis=1, keepdims=True) - Ye
    dH = (dl @ W2.T) * (1.0 - Hh * Hh)
    want = (Xe[:, :, None] * dH[:, None, :], dH, Hh[:, :, None] * dl[:, None, :], dl)
    for g, w in zip(G, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
