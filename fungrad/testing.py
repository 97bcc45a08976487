"""Tools for testing derivatives: `check_grads`, `numerical_jvp`, and Hypothesis
strategies (`arrays`, `shapes`, `broadcastable_shapes`, `pytrees_of_arrays`,
`programs`) for property tests of your own models.

Hypothesis is imported only when a strategy is built, so `import fungrad` does
not need it.  A user's property test:

    from hypothesis import given
    import fungrad.numpy as fnp
    from fungrad.testing import arrays, check_grads, shapes
    import hypothesis.strategies as st

    @given(st.data())
    def test_my_layer(data):
        shape = data.draw(shapes(min_dims=1, max_dims=2), label="shape")
        x = data.draw(arrays(np.float64, shape), label="x")
        check_grads(lambda x: fnp.tanh(x) * x, (x,), order=2)
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from .errors import FungradTypeError, FungradValueError, describe_function
from . import numpy as fnp
from .api import jvp, vjp
from .core import ShapedArray
from .pytree import tree_flatten, tree_map
from .tracing import make_jaxpr

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_jvp", "default_tolerance",
           "default_eps", "arrays", "shapes", "broadcastable_shapes", "pytrees_of_arrays",
           "programs", "Program", "PROGRAM_OPS"]


# ---------------------------------------------------------------------------
# step sizes and tolerances by dtype
# ---------------------------------------------------------------------------

# Central differences err by ~eps^2 f''' (truncation) + ulp(f) / eps (rounding);
# these steps balance the two, and the tolerances leave room for the second
# order check (finite differences of a derivative).
_EPS = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 3e-3, np.dtype(np.float16): 3e-2}
_TOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 2e-2, np.dtype(np.float16): 1e-1}


def _float_dtypes(tree) -> list[np.dtype]:
    out = []
    for leaf in tree_flatten(tree)[0]:
        dt = np.result_type(leaf)
        if np.issubdtype(dt, np.inexact):
            out.append(np.dtype(np.float32) if dt == np.complex64 else
                       np.dtype(np.float64) if dt == np.complex128 else dt)
    return out


def _least_precise(tree) -> np.dtype:
    dts = _float_dtypes(tree)
    if not dts:
        return np.dtype(np.float64)
    return max(dts, key=lambda d: _EPS.get(d, 1e-5))


def default_eps(tree) -> float:
    """The finite-difference step for the least precise float leaf of `tree`
    (1e-5 for float64, 3e-3 for float32)."""
    return _EPS.get(_least_precise(tree), 1e-5)


def default_tolerance(tree) -> float:
    """atol = rtol used by `check_grads` for the least precise float leaf of `tree`
    (1e-5 for float64, 2e-2 for float32)."""
    return _TOL.get(_least_precise(tree), 1e-5)


# ---------------------------------------------------------------------------
# pytree arithmetic on concrete values
# ---------------------------------------------------------------------------

def _axpy(a: float, xs, ys):
    """a * xs + ys leafwise, keeping each leaf's dtype."""
    return tree_map(lambda x, y: (np.asarray(y) + np.asarray(a * np.asarray(x))).astype(
        np.result_type(y)), xs, ys)


def _inner(xs, ys) -> float:
    """Sum over leaves of <x, y>, in float64.  Complex leaves pair as Re(sum x y), with no
    conjugate: a vjp is the transpose of the jvp for that pairing (JAX's convention)."""
    lx, tx = tree_flatten(xs)
    ly, ty = tree_flatten(ys)
    if tx != ty:
        raise FungradValueError(f"inner product of mismatched pytrees {tx} and {ty}")
    total = 0.0
    for x, y in zip(lx, ly, strict=True):
        x = np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)
        y = np.asarray(y, dtype=np.complex128 if np.iscomplexobj(y) else np.float64)
        total += float(np.real(np.dot(x.ravel(), y.ravel())))
    return total


def _random_like(rng: np.random.Generator, tree, what: str = "argument"):
    def one(x):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.inexact):
            raise FungradTypeError(
                f"check_grads: an {what} of dtype {x.dtype} cannot be differentiated; "
                + ("close over integer arguments instead (lambda x: f(x, n))"
                   if what == "argument" else "return only floating-point outputs"))
        r = rng.standard_normal(x.shape)
        if np.iscomplexobj(x):
            r = r + 1j * rng.standard_normal(x.shape)
        return r.astype(x.dtype)
    return tree_map(one, tree)


def numerical_jvp(f: Callable, args: Sequence, tangents: Sequence, eps: float | None = None):
    """Central finite differences: (f(args + eps t) - f(args - eps t)) / (2 eps).

    `args` and `tangents` are tuples of pytrees of arrays with the same structure;
    the result has the structure of f's output, in its dtypes.  `eps` defaults to
    a step suited to the least precise float dtype of `args`.
    >>> numerical_jvp(lambda x: x ** 2, (3.0,), (1.0,))   # ~ 6.0
    """
    args, tangents = tuple(args), tuple(tangents)
    eps = default_eps(args) if eps is None else eps
    f_pos = f(*_axpy(eps, tangents, args))
    f_neg = f(*_axpy(-eps, tangents, args))
    return tree_map(lambda p, n: ((_wide(p) - _wide(n)) / (2 * eps)).astype(np.result_type(p)),
                    f_pos, f_neg)


def _wide(x) -> np.ndarray:
    """x in float64 (complex128), so the difference is taken without extra rounding."""
    return np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64)


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------

def _assert_close(actual, expected, atol: float, rtol: float, what: str) -> None:
    la, ta = tree_flatten(actual)
    le, te = tree_flatten(expected)
    if ta != te:
        raise AssertionError(f"{what}: structure {ta} differs from the expected {te}")
    for i, (a, e) in enumerate(zip(la, le, strict=True)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), atol=atol, rtol=rtol,
                                   err_msg=f"{what} (output leaf {i})")


def _assert_dtypes(values, like, what: str) -> None:
    for i, (v, x) in enumerate(zip(tree_flatten(values)[0], tree_flatten(like)[0],
                                   strict=True)):
        if np.result_type(v) != np.result_type(x):
            raise AssertionError(f"{what}: leaf {i} has dtype {np.result_type(v)}, expected "
                                 f"{np.result_type(x)} (derivatives keep the primal dtype)")


def check_jvp(f: Callable, args: Sequence, *, eps=None, atol=None, rtol=None,
              rng: np.random.Generator | None = None, err_msg: str = "") -> None:
    """`jvp(f, args, t)` against central finite differences, for a random t."""
    args = tuple(args)
    rng = np.random.default_rng(0) if rng is None else rng
    tol = default_tolerance(args)
    atol, rtol = (tol if atol is None else atol), (tol if rtol is None else rtol)
    tangents = _random_like(rng, args)
    out, t_out = jvp(f, args, tangents)
    _assert_close(out, f(*args), atol, rtol, f"jvp primal output{err_msg}")
    _assert_dtypes(t_out, out, f"jvp tangent{err_msg}")
    expected = numerical_jvp(f, args, tangents, eps)
    _assert_close(t_out, expected, atol, rtol,
                  f"jvp of {describe_function(f)} against finite differences{err_msg}")


def check_vjp(f: Callable, args: Sequence, *, eps=None, atol=None, rtol=None,
              rng: np.random.Generator | None = None, err_msg: str = "",
              against_jvp: bool = True) -> None:
    """The dot-product identity <ct, J t> = <J^T ct, t> for random t and ct, with
    J t from finite differences and (if `against_jvp`) from `jvp`."""
    args = tuple(args)
    rng = np.random.default_rng(1) if rng is None else rng
    tol = default_tolerance(args)
    atol, rtol = (tol if atol is None else atol), (tol if rtol is None else rtol)
    out, pullback = vjp(f, *args)
    _assert_close(out, f(*args), atol, rtol, f"vjp primal output{err_msg}")
    tangents = _random_like(rng, args)
    cotangent = _random_like(rng, out, "output")
    cts_in = pullback(cotangent)
    _assert_dtypes(cts_in, args, f"vjp cotangent{err_msg}")
    lhs = _inner(cts_in, tangents)
    fd = _inner(cotangent, numerical_jvp(f, args, tangents, eps))
    name = describe_function(f)
    np.testing.assert_allclose(lhs, fd, atol=atol, rtol=rtol, err_msg=(
        f"vjp of {name}: <J^T ct, t> against <ct, J t> by finite differences{err_msg}"))
    if against_jvp:
        _, t_out = jvp(f, args, tangents)
        # both sides are exact derivatives: only rounding separates them
        np.testing.assert_allclose(lhs, _inner(cotangent, t_out), atol=atol, rtol=rtol,
                                   err_msg=f"vjp of {name}: <J^T ct, t> against <ct, jvp t>"
                                           f"{err_msg}")


def check_grads(f: Callable, args: Sequence, order: int = 2,
                modes: Sequence[str] = ("fwd", "rev"), eps: float | None = None,
                atol: float | None = None, rtol: float | None = None) -> None:
    """Check f's derivatives at `args` up to `order`, in forward and/or reverse mode.

    fwd: jvp against central finite differences.  rev: the dot-product identity
    <ct, J t> = <J^T ct, t> (J t by finite differences and by jvp).  For order > 1
    the same checks run on the derivative functions themselves: (x, t) -> jvp(f, x, t)
    and x -> pullback_x(f(x)), so every order is checked against finite
    differences of the order below.  Step and tolerances default by dtype
    (float64: eps 1e-5, tol 1e-5; float32: eps 3e-3, tol 2e-2).  Raises
    AssertionError naming the mode and order on a mismatch.

    >>> check_grads(fnp.sin, (np.linspace(0, 1, 4),), order=2)
    """
    modes = tuple(modes)
    for m in modes:
        if m not in ("fwd", "rev"):
            raise FungradValueError(f"check_grads: unknown mode {m!r}; use 'fwd' and/or 'rev'")
    if order < 1:
        raise FungradValueError(f"check_grads: order must be >= 1, got {order}")
    args = tuple(args)
    rng = np.random.default_rng(0)

    def check(fun, fun_args, k, msg):
        if "fwd" in modes:
            fwd_msg = f"{msg} [fwd, order {order - k + 1}]"
            check_jvp(fun, fun_args, eps=eps, atol=atol, rtol=rtol, rng=rng, err_msg=fwd_msg)
            if k > 1:
                def f_jvp(primals, tangents):
                    return jvp(fun, tuple(primals), tuple(tangents))
                check(f_jvp, (fun_args, _random_like(rng, fun_args)), k - 1, fwd_msg)
        if "rev" in modes:
            rev_msg = f"{msg} [rev, order {order - k + 1}]"
            check_vjp(fun, fun_args, eps=eps, atol=atol, rtol=rtol, rng=rng, err_msg=rev_msg,
                      against_jvp="fwd" in modes)
            if k > 1:
                def f_vjp(*primals):
                    out, pullback = vjp(fun, *primals)
                    return pullback(out)
                check(f_vjp, fun_args, k - 1, rev_msg)

    check(f, args, order, "")


# ---------------------------------------------------------------------------
# Hypothesis strategies (hypothesis is imported on first use)
# ---------------------------------------------------------------------------

def _hyp():
    try:
        import hypothesis.extra.numpy as hnp
        import hypothesis.strategies as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fungrad.testing strategies need hypothesis: "
                          "pip install hypothesis") from e
    return st, hnp


def _default_elements(dtype, lo=-3.0, hi=3.0):
    st, _ = _hyp()
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return st.floats(lo, hi, width=8 * dtype.itemsize, allow_nan=False,
                         allow_infinity=False, allow_subnormal=False)
    if np.issubdtype(dtype, np.integer):
        return st.integers(int(max(lo, np.iinfo(dtype).min)), int(min(hi, np.iinfo(dtype).max)))
    if dtype == np.bool_:
        return st.booleans()
    return None


def arrays(dtype=np.float64, shape=(), elements=None):
    """A strategy for NumPy arrays of `dtype` and `shape` (a tuple or a strategy of
    tuples).  Floats default to finite values in [-3, 3], without subnormals.
    >>> arrays(np.float32, (2, 3)).example().dtype       # float32
    """
    st, hnp = _hyp()
    if elements is None:
        elements = _default_elements(dtype)
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """A strategy for array shapes (tuples of ints)."""
    _, hnp = _hyp()
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(shape: tuple, min_dims: int = 0, max_dims: int | None = None,
                         min_side: int = 1, max_side: int | None = None):
    """A strategy for shapes that broadcast against `shape` (NumPy rules)."""
    _, hnp = _hyp()
    return hnp.broadcastable_shapes(tuple(shape), min_dims=min_dims, max_dims=max_dims,
                                    min_side=min_side, max_side=max_side)


def pytrees_of_arrays(dtype=np.float64, max_leaves: int = 4, max_dims: int = 2,
                      max_side: int = 3, elements=None):
    """A strategy for pytrees (tuples, lists, dicts with str keys) of float arrays,
    with 1..max_leaves leaves."""
    st, _ = _hyp()
    leaf = shapes(0, max_dims, 1, max_side).flatmap(lambda s: arrays(dtype, s, elements))

    def extend(children):
        return st.one_of(st.tuples(children, children), st.lists(children, min_size=1,
                                                                  max_size=2),
                         st.dictionaries(st.sampled_from("abcd"), children, min_size=1,
                                         max_size=2))
    return st.recursive(leaf, extend, max_leaves=max_leaves)


# --- random programs -----------------------------------------------------------------

@dataclasses.dataclass
class Program:
    """A random differentiable fungrad program drawn by `programs()`.

    `fun(*args)` computes it with fungrad.numpy; `args` are inputs inside its safe
    domain (every intermediate stays where each op is smooth and well
    conditioned); `in_avals` their types; `loss(*args)` is a scalar of it, for
    `grad`.  `str(program)` is Python source that reads as the program."""
    steps: list
    args: tuple
    in_avals: list
    consts: list
    out: list
    source: str = ""

    def fun(self, *args):
        env = list(args)
        for op, ins, param in self.steps:
            env.append(_OPS[op].apply(fnp, [env[i] for i in ins], param, self.consts))
        outs = [env[i] for i in self.out]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def loss(self, *args):
        """A real scalar: the sum of every output's elements times sin of itself."""
        total = 0.0
        for leaf in tree_flatten(self.fun(*args))[0]:
            total = total + fnp.sum(leaf * fnp.sin(leaf))
        return total

    @property
    def out_avals(self):
        return make_jaxpr(self.fun)(*self.args).out_avals

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        args = ", ".join(np.array2string(np.asarray(a), separator=", ", precision=17)
                         for a in self.args)
        consts = "".join(f"\n# C{i} = {np.array2string(c, separator=', ', precision=17)}"
                         for i, c in enumerate(self.consts))
        return f"{self.source}\n# args = ({args}){consts}"

    def _repr_pretty_(self, printer, cycle) -> None:   # what Hypothesis reports
        printer.text(repr(self))


@dataclasses.dataclass
class _Node:
    shape: tuple
    lo: float
    hi: float


class _Op:
    """One kind of step: when it applies (shapes, value bounds), its bounds, its
    code, and the fungrad call."""

    def __init__(self, arity, ok, bounds, code, apply, shape=None):
        self.arity, self.ok, self.bounds, self.code, self.apply = arity, ok, bounds, code, apply
        self.shape = shape or (lambda nodes, param: nodes[0].shape)


def _interval_mul(a, b):
    ps = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return min(ps), max(ps)


def _monotone(fn):
    return lambda nodes, p: (float(fn(nodes[0].lo)), float(fn(nodes[0].hi)))


_LIMIT = 50.0      # every intermediate stays within [-_LIMIT, _LIMIT]


def _unary(np_fn_name, ok=lambda n: True, bounds=None):
    def apply(fnp, xs, p, consts):
        return getattr(fnp, np_fn_name)(xs[0])
    return _Op(1, lambda nodes, p: ok(nodes[0]), bounds or _monotone(getattr(np, np_fn_name)),
               lambda names, p: f"fnp.{np_fn_name}({names[0]})", apply)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


_OPS: dict[str, _Op] = {
    "sin": _Op(1, lambda n, p: True, lambda n, p: (-1.0, 1.0),
               lambda s, p: f"fnp.sin({s[0]})", lambda fnp, x, p, c: fnp.sin(x[0])),
    "cos": _Op(1, lambda n, p: True, lambda n, p: (-1.0, 1.0),
               lambda s, p: f"fnp.cos({s[0]})", lambda fnp, x, p, c: fnp.cos(x[0])),
    "tanh": _unary("tanh"),
    "exp": _unary("exp", ok=lambda n: n.hi <= 3.0),
    "log": _unary("log", ok=lambda n: n.lo >= 0.25),
    "sqrt": _unary("sqrt", ok=lambda n: n.lo >= 0.25),
    "log1p": _unary("log1p", ok=lambda n: n.lo >= -0.5),
    # the same functions made total: the argument is kept inside the domain
    "log_safe": _Op(1, lambda n, p: True,
                    lambda n, p: (0.0, float(np.log(_absmax(n[0]) ** 2 + 1.0))),
                    lambda s, p: f"fnp.log({s[0]} * {s[0]} + 1.0)",
                    lambda fnp, x, p, c: fnp.log(x[0] * x[0] + 1.0)),
    "sqrt_safe": _Op(1, lambda n, p: True,
                     lambda n, p: (0.5, float(np.sqrt(_absmax(n[0]) ** 2 + 0.25))),
                     lambda s, p: f"fnp.sqrt({s[0]} ** 2 + 0.25)",
                     lambda fnp, x, p, c: fnp.sqrt(x[0] ** 2 + 0.25)),
    "div_safe": _Op(2, lambda n, p: True, lambda n, p: (-_absmax(n[0]), _absmax(n[0])),
                    lambda s, p: f"{s[0]} / (1.0 + {s[1]} ** 2)",
                    lambda fnp, x, p, c: x[0] / (1.0 + x[1] ** 2)),
    "square": _Op(1, lambda n, p: True,
                  lambda n, p: ((0.0 if n[0].lo <= 0 <= n[0].hi else
                                 min(n[0].lo ** 2, n[0].hi ** 2)),
                                max(n[0].lo ** 2, n[0].hi ** 2)),
                  lambda s, p: f"{s[0]} ** 2", lambda fnp, x, p, c: x[0] ** 2),
    "cube": _Op(1, lambda n, p: True, lambda n, p: (n[0].lo ** 3, n[0].hi ** 3),
                lambda s, p: f"{s[0]} ** 3", lambda fnp, x, p, c: x[0] ** 3),
    "neg": _Op(1, lambda n, p: True, lambda n, p: (-n[0].hi, -n[0].lo),
               lambda s, p: f"-{s[0]}", lambda fnp, x, p, c: -x[0]),
    "sigmoid_like": _Op(1, lambda n, p: True, lambda n, p: (0.0, 1.0),
                        lambda s, p: f"1.0 / (1.0 + fnp.exp(-{s[0]}))",
                        lambda fnp, x, p, c: 1.0 / (1.0 + fnp.exp(-x[0]))),
    "scale": _Op(1, lambda n, p: True,
                 lambda n, p: (min(n[0].lo * p, n[0].hi * p), max(n[0].lo * p, n[0].hi * p)),
                 lambda s, p: f"{s[0]} * {p!r}", lambda fnp, x, p, c: x[0] * p),
    "add": _Op(2, lambda n, p: True, lambda n, p: (n[0].lo + n[1].lo, n[0].hi + n[1].hi),
               lambda s, p: f"{s[0]} + {s[1]}", lambda fnp, x, p, c: x[0] + x[1]),
    "sub": _Op(2, lambda n, p: True, lambda n, p: (n[0].lo - n[1].hi, n[0].hi - n[1].lo),
               lambda s, p: f"{s[0]} - {s[1]}", lambda fnp, x, p, c: x[0] - x[1]),
    "mul": _Op(2, lambda n, p: True, lambda n, p: _interval_mul(n[0], n[1]),
               lambda s, p: f"{s[0]} * {s[1]}", lambda fnp, x, p, c: x[0] * x[1]),
    "div": _Op(2, lambda n, p: n[1].lo >= 0.5 or n[1].hi <= -0.5,
               lambda n, p: _interval_mul(n[0], _Node((), *sorted((1 / n[1].lo,
                                                                    1 / n[1].hi)))),
               lambda s, p: f"{s[0]} / {s[1]}", lambda fnp, x, p, c: x[0] / x[1]),
    # a closed-over constant (a per-call value of the traced program)
    "mul_const": _Op(1, lambda n, p: True,
                     lambda n, p: _interval_mul(n[0], _Node((), -2.0, 2.0)),
                     lambda s, p: f"{s[0]} * C{p}", lambda fnp, x, p, c: x[0] * c[p]),
    # select on a constant predicate (non-differentiable, no kink in the inputs)
    "where_const": _Op(2, lambda n, p: True,
                       lambda n, p: (min(n[0].lo, n[1].lo), max(n[0].hi, n[1].hi)),
                       lambda s, p: f"fnp.where(C{p} > 0, {s[0]}, {s[1]})",
                       lambda fnp, x, p, c: fnp.where(c[p] > 0, x[0], x[1])),
    "sum_axis": _Op(1, lambda n, p: len(n[0].shape) >= 1,
                    lambda n, p: (n[0].lo * n[0].shape[p], n[0].hi * n[0].shape[p]),
                    lambda s, p: f"fnp.sum({s[0]}, axis={p})",
                    lambda fnp, x, p, c: fnp.sum(x[0], axis=p),
                    shape=lambda n, p: n[0].shape[:p] + n[0].shape[p + 1:]),
    "mean": _Op(1, lambda n, p: True, lambda n, p: (n[0].lo, n[0].hi),
                lambda s, p: f"fnp.mean({s[0]})", lambda fnp, x, p, c: fnp.mean(x[0]),
                shape=lambda n, p: ()),
    "transpose": _Op(1, lambda n, p: len(n[0].shape) >= 2, lambda n, p: (n[0].lo, n[0].hi),
                     lambda s, p: f"{s[0]}.T", lambda fnp, x, p, c: x[0].T,
                     shape=lambda n, p: n[0].shape[::-1]),
    "reshape_flat": _Op(1, lambda n, p: len(n[0].shape) != 1, lambda n, p: (n[0].lo, n[0].hi),
                        lambda s, p: f"fnp.reshape({s[0]}, (-1,))",
                        lambda fnp, x, p, c: fnp.reshape(x[0], (-1,)),
                        shape=lambda n, p: (_size(n[0].shape),)),
    "slice_rev": _Op(1, lambda n, p: len(n[0].shape) >= 1, lambda n, p: (n[0].lo, n[0].hi),
                     lambda s, p: f"{s[0]}[::-1]", lambda fnp, x, p, c: x[0][::-1]),
    # matmul with a (k, k) closed-over constant along the last axis
    "matmul_const": _Op(1, lambda n, p: len(n[0].shape) >= 1,
                        lambda n, p: (-2.0 * n[0].shape[-1] * builtins_max(abs(n[0].lo),
                                                                           abs(n[0].hi)),
                                      2.0 * n[0].shape[-1] * builtins_max(abs(n[0].lo),
                                                                          abs(n[0].hi))),
                        lambda s, p: f"{s[0]} @ C{p}", lambda fnp, x, p, c: x[0] @ c[p]),
    # only where the operands cannot tie: fungrad.numpy.logaddexp is max + log1p(exp(-|d|)),
    # whose second derivative at x1 == x2 follows the max/abs kink conventions (0, not 1/4)
    "logaddexp": _Op(2, lambda n, p: n[0].hi < n[1].lo or n[1].hi < n[0].lo,
                     lambda n, p: (builtins_max(n[0].lo, n[1].lo),
                                   builtins_max(n[0].hi, n[1].hi) + float(np.log(2.0))),
                     lambda s, p: f"fnp.logaddexp({s[0]}, {s[1]})",
                     lambda fnp, x, p, c: fnp.logaddexp(x[0], x[1])),
    "cumsum": _Op(1, lambda n, p: len(n[0].shape) >= 1,
                  lambda n, p: (min(n[0].lo, n[0].lo * n[0].shape[-1]),
                                builtins_max(n[0].hi, n[0].hi * n[0].shape[-1])),
                  lambda s, p: f"fnp.cumsum({s[0]}, axis=-1)",
                  lambda fnp, x, p, c: fnp.cumsum(x[0], axis=-1)),
    "prod": _Op(1, lambda n, p: len(n[0].shape) >= 1,
                lambda n, p: (-_absmax(n[0]) ** n[0].shape[-1], _absmax(n[0]) ** n[0].shape[-1]),
                lambda s, p: f"fnp.prod({s[0]}, axis=-1)",
                lambda fnp, x, p, c: fnp.prod(x[0], axis=-1),
                shape=lambda n, p: n[0].shape[:-1]),
    "slice_head": _Op(1, lambda n, p: len(n[0].shape) >= 1, lambda n, p: (n[0].lo, n[0].hi),
                      lambda s, p: f"{s[0]}[..., :{p}]", lambda fnp, x, p, c: x[0][..., :p],
                      shape=lambda n, p: n[0].shape[:-1] + (p,)),
    # integer-array indexing with a closed-over index array (repeats allowed: the
    # vjp must add the cotangents of repeated rows)
    "take": _Op(1, lambda n, p: len(n[0].shape) >= 1, lambda n, p: (n[0].lo, n[0].hi),
                lambda s, p: f"{s[0]}[C{p[0]}]", lambda fnp, x, p, c: x[0][c[p[0]]],
                shape=lambda n, p: (p[1],) + n[0].shape[1:]),
    "concat": _Op(2, lambda n, p: n[0].shape == n[1].shape and len(n[0].shape) >= 1,
                  lambda n, p: (min(n[0].lo, n[1].lo), builtins_max(n[0].hi, n[1].hi)),
                  lambda s, p: f"fnp.concatenate([{s[0]}, {s[1]}], axis=0)",
                  lambda fnp, x, p, c: fnp.concatenate([x[0], x[1]], axis=0),
                  shape=lambda n, p: (2 * n[0].shape[0],) + n[0].shape[1:]),
    "stack": _Op(2, lambda n, p: n[0].shape == n[1].shape and len(n[0].shape) <= 2,
                 lambda n, p: (min(n[0].lo, n[1].lo), builtins_max(n[0].hi, n[1].hi)),
                 lambda s, p: f"fnp.stack([{s[0]}, {s[1]}])",
                 lambda fnp, x, p, c: fnp.stack([x[0], x[1]]),
                 shape=lambda n, p: (2,) + n[0].shape),
    # matmul of two program values: (..., k) @ (k,) or a 2-d (m, k) @ (k, n)
    "matmul": _Op(2, lambda n, p: len(n[0].shape) >= 1 and len(n[1].shape) in (1, 2)
                  and n[1].shape[0] == n[0].shape[-1],
                  lambda n, p: (-n[0].shape[-1] * _absmax(n[0]) * _absmax(n[1]),
                                n[0].shape[-1] * _absmax(n[0]) * _absmax(n[1])),
                  lambda s, p: f"{s[0]} @ {s[1]}", lambda fnp, x, p, c: x[0] @ x[1],
                  shape=lambda n, p: n[0].shape[:-1] + n[1].shape[1:]),
}

builtins_max = max
PROGRAM_OPS = tuple(_OPS)        # the operation names `programs(ops=...)` accepts
_SHAPED_BINARY = ("matmul", "concat", "stack")     # binary ops that do not broadcast


def _absmax(n: _Node) -> float:
    return builtins_max(abs(n.lo), abs(n.hi))


def programs(dtype=np.float64, max_steps: int = 6, max_inputs: int = 3, max_dims: int = 2,
             max_side: int = 3, outputs: int | None = None, ops: Sequence[str] | None = None):
    """A strategy for random differentiable fungrad programs (`Program`).

    A program starts from 1..max_inputs inputs of random shapes (rank <= max_dims,
    sides <= max_side) and applies up to max_steps operations of fungrad.numpy:
    elementwise math (sin, tanh, exp, log, sqrt, powers, division, logaddexp),
    arithmetic with broadcasting between values of compatible shapes, sums, means,
    products and cumulative sums, transposes, reshapes, slicing, reversal,
    integer-array indexing, concatenate and stack, matmul, closed-over constants
    and a where on a constant predicate.  Operands are picked among every earlier value, so values fan out
    and are reused.  Value bounds are tracked by interval arithmetic and each op is
    only applied where it is smooth and well conditioned (log and sqrt see values
    >= 0.25, divisors stay away from 0, exp sees <= 3, everything stays within
    +-50), so finite differences are accurate at the drawn `args`.  `ops` restricts
    the operations to a subset of `PROGRAM_OPS` (default: all of them); `outputs`
    fixes the number of outputs (default: 1 or 2).
    >>> prog = programs().example(); prog.fun(*prog.args)
    """
    st, hnp = _hyp()
    dtype = np.dtype(dtype)
    op_names = list(_OPS) if ops is None else list(ops)
    unknown = [o for o in op_names if o not in _OPS]
    if unknown or not op_names:
        raise FungradValueError(f"programs: unknown ops {unknown}; choose from {PROGRAM_OPS}")

    @st.composite
    def draw_program(draw):
        base = draw(shapes(0, max_dims, 1, max_side), label="base shape")
        n_inputs = draw(st.integers(1, max_inputs), label="inputs")
        nodes: list[_Node] = []
        in_shapes = []
        for i in range(n_inputs):
            # inputs: the base shape, a trailing part of it (broadcasts), or a scalar
            k = draw(st.integers(0, len(base)), label=f"x{i} drops leading dims")
            shape = base[k:] if i else base
            in_shapes.append(shape)
            nodes.append(_Node(shape, -2.0, 2.0))
        args = tuple(draw(arrays(dtype, s, _default_elements(dtype, -2.0, 2.0)),
                          label=f"x{i}") for i, s in enumerate(in_shapes))
        consts: list = []
        steps: list = []
        names = [f"x{i}" for i in range(n_inputs)]
        signature = ", ".join(f"{n}: {dtype.name}{list(s)}" for n, s in zip(names, in_shapes))
        lines = [f"def program({signature}):"]
        n_steps = draw(st.integers(1, max_steps), label="steps")
        for _ in range(3 * n_steps):          # an attempt may not fit; retry
            if len(steps) == n_steps:
                break
            op_name = draw(st.sampled_from(op_names), label="op")
            op = _OPS[op_name]
            ins = [draw(st.integers(0, len(nodes) - 1), label="operand")
                   for _ in range(op.arity)]
            ops_nodes = [nodes[i] for i in ins]
            if op.arity == 2 and op_name not in _SHAPED_BINARY:
                # elementwise binary: the shapes must broadcast (one a suffix of the other)
                a, b = ops_nodes[0].shape, ops_nodes[1].shape
                short, long_ = (a, b) if len(a) <= len(b) else (b, a)
                if long_[len(long_) - len(short):] != short:
                    continue
            param = None
            if op_name == "scale":
                param = draw(st.sampled_from([0.5, -1.5, 2.0, 3.0]), label="scale")
            elif op_name == "sum_axis":
                if not ops_nodes[0].shape:
                    continue
                param = draw(st.integers(0, len(ops_nodes[0].shape) - 1), label="axis")
            elif op_name == "slice_head":
                if not ops_nodes[0].shape:
                    continue
                param = draw(st.integers(1, ops_nodes[0].shape[-1]), label="slice end")
            elif op_name == "take":
                if not ops_nodes[0].shape:
                    continue
                m = draw(st.integers(1, 4), label="indices")
                index = draw(arrays(np.int64, (m,), st.integers(0, ops_nodes[0].shape[0] - 1)),
                             label=f"C{len(consts)}")
                param = (len(consts), m)
                consts.append(index)
            elif op_name in ("mul_const", "where_const", "matmul_const"):
                shape = ops_nodes[0].shape
                if op_name == "matmul_const":
                    if not shape:
                        continue
                    shape = (shape[-1], shape[-1])
                elif shape and draw(st.booleans(), label="constant is a scalar"):
                    shape = ()
                if op_name == "where_const":
                    a, b = ops_nodes[0].shape, ops_nodes[1].shape
                    shape = a if len(a) >= len(b) else b
                    short = b if len(a) >= len(b) else a
                    if shape[len(shape) - len(short):] != short:
                        continue
                value = draw(arrays(dtype, shape, _default_elements(dtype, -2.0, 2.0)),
                             label=f"C{len(consts)}")
                param = len(consts)
                consts.append(value)
            if not op.ok(ops_nodes, param):
                continue
            lo, hi = op.bounds(ops_nodes, param)
            if not (-_LIMIT <= lo <= hi <= _LIMIT):
                continue
            if op.arity == 2 and op_name not in _SHAPED_BINARY:
                a, b = ops_nodes[0].shape, ops_nodes[1].shape
                shape = a if len(a) >= len(b) else b
            else:
                shape = op.shape(ops_nodes, param)
            steps.append((op_name, ins, param))
            nodes.append(_Node(tuple(shape), float(lo), float(hi)))
            name = f"v{len(names)}"
            lines.append(f"    {name} = {op.code([names[i] for i in ins], param)}")
            names.append(name)
        n_out = outputs if outputs is not None else draw(st.integers(1, 2), label="outputs")
        last = len(nodes) - 1
        out = [last] if n_out == 1 or last == 0 else [last, draw(
            st.integers(0, last - 1), label="second output")]
        lines.append(f"    return {', '.join(names[i] for i in out)}")
        if consts:
            lines.insert(0, "# " + ", ".join(f"C{i}: {c.dtype.name}{list(c.shape)}"
                                             for i, c in enumerate(consts)))
        return Program(steps, args, [ShapedArray(a.shape, a.dtype) for a in args], consts, out,
                       "\n".join(lines))

    return draw_program()
