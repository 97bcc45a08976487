"""Sparse Jacobians and Hessians: detect the pattern, color it, compute a few
compressed derivative passes, decompress.

    J = fg.sparse_jacobian(residual)(u)      # scipy.sparse.csr_array, shape (m, n)
    H = fg.sparse_hessian(energy)(x)         # scipy.sparse.csr_array, shape (n, n)
    P = fg.jacobian_sparsity(residual)(u)    # the boolean pattern alone

1. Detection (`transforms/sparsity.py`) interprets the traced program: each
   element's set of input elements, through every primitive.  The Hessian's
   pattern is the Jacobian pattern of the gradient program, symmetrized.
2. Coloring (`transforms/coloring.py`): columns (forward mode) or rows (reverse
   mode) that share no row (column) get one color; a star coloring for Hessians.
3. One batched jvp (or vjp, or forward-over-reverse) over the seed matrix: one
   pass per color, a single fused program, compiled like any eager transform.
4. Decompression: each stored entry is read from the compressed product.

Pattern, coloring and the compressed program are cached per program structure
(which includes the input shapes); constants whose values shaped the pattern (a
constant index array, a constant matrix with zeros) are compared on later
calls.  The function is traced on every call, like every eager transform, so
closures are never stale.

Rules for the control-flow primitives live here, above `hop/`, and are
registered into the rule table of `transforms/sparsity.py`.  scipy is imported
on the first call that builds a matrix, never by `import fungrad`.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import api_util
from .api import grad, jvp, vjp, vmap
from .caches import new_cache
from .core import Jaxpr, jaxpr_key
from .errors import FungradTypeError, FungradValueError, describe_function
from .hop.branching import cond_p
from .hop.checkpointing import checkpoint_p
from .hop.scans import scan_p
from .hop.while_loops import while_p
from .interpreter import eval_jaxpr
from .primitives.base import reshape
from .primitives.indexing import gather
from .primitives.shape import concatenate
from .pytree import register_pytree_node
from .tracing import Tracer, aval_of, trace_to_jaxpr
from .transforms import coloring
from .transforms.ad import _is_float, grad_jaxpr
from .transforms.simplify import simplify_jaxpr
from .transforms.sparsity import (Known, Pattern, combine, dense_rule, jaxpr_sparsity,
                                  register_rule, run_sparsity, stack_rows, union_patterns)

__all__ = ["sparse_jacobian", "sparse_hessian", "jacobian_sparsity", "hessian_sparsity",
           "SparsePlan", "CSR"]

MODES = ("fwd", "rev", "auto")

# a scan shorter than this many (steps x equations) is unrolled exactly
_UNROLL_BUDGET = 4096
# a while loop's carries reach their fixed point within this many body passes,
# or are taken to depend on everything the loop reads
_FIXED_POINT_PASSES = 64


def _scipy_sparse():
    """scipy.sparse, imported on first use (keeps `import fungrad` light)."""
    import scipy.sparse
    return scipy.sparse


# ---------------------------------------------------------------------------
# sparsity rules of the control-flow primitives
# ---------------------------------------------------------------------------

def _sub(closed) -> tuple[Jaxpr, list]:
    """(jaxpr, known constants) of a sub-program parameter (Jaxpr or ClosedJaxpr)."""
    jaxpr = getattr(closed, "jaxpr", closed)
    consts = list(getattr(closed, "consts", ()))
    from_consts = [_known(c) for c in consts]
    return jaxpr, from_consts


def _known(value):
    return Known(value, frozenset())


def _run_sub(ctx, closed, pats, vals):
    jaxpr, consts = _sub(closed)
    return run_sparsity(jaxpr, ctx, [None] * len(consts), consts, pats, vals)


def _grew(old: list, new: list) -> bool:
    return any((n.nnz if n is not None else 0) != (o.nnz if o is not None else 0)
               for o, n in zip(old, new, strict=True))


def _union_each(a: list, b: list, sizes: list, n_in: int) -> list:
    return [union_patterns([x, y], s, n_in) for x, y, s in zip(a, b, sizes, strict=True)]


def _cond_rule(ctx, eqn, pats, vals):
    branches = eqn.params["branches"]
    if vals[0] is not None:   # a known branch index: only that branch runs
        i = min(max(int(ctx.value(vals[0])), 0), len(branches) - 1)
        branches = [branches[i]]
    sizes = [o.aval.size for o in eqn.outputs]
    result = [None] * len(eqn.outputs)
    for b in branches:
        outs, _ = _run_sub(ctx, b, list(pats[1:]), list(vals[1:]))
        result = _union_each(result, outs, sizes, ctx.n_in)
    return result


def _while_rule(ctx, eqn, pats, vals):
    # carries: the least fixed point of carry <- carry | body(carry); the condition
    # only decides how often, which no derivative sees
    nc, nb = eqn.params["cond_nconsts"], eqn.params["body_nconsts"]
    body_pats, body_vals = list(pats[nc:nc + nb]), list(vals[nc:nc + nb])
    carry = list(pats[nc + nb:])
    sizes = [o.aval.size for o in eqn.outputs]
    for _ in range(_FIXED_POINT_PASSES):
        outs, _ = _run_sub(ctx, eqn.params["body_jaxpr"], body_pats + carry,
                           body_vals + [None] * len(carry))
        new = _union_each(carry, outs, sizes, ctx.n_in)
        if not _grew(carry, new):
            return new
        carry = new
    return dense_rule(ctx, eqn, [None] * nc + list(pats[nc:]), vals)


def _scan_rule(ctx, eqn, pats, vals):
    p = eqn.params
    n_consts, n_carry, length = p["num_consts"], p["num_carry"], p["length"]
    consts_p, consts_v = list(pats[:n_consts]), list(vals[:n_consts])
    carry = list(pats[n_consts:n_consts + n_carry])
    xs_atoms = eqn.inputs[n_consts + n_carry:]
    xs_pats = list(pats[n_consts + n_carry:])
    xs_vals = list(vals[n_consts + n_carry:])
    jaxpr, _ = _sub(p["jaxpr"])
    carry_sizes = [o.aval.size for o in eqn.outputs[:n_carry]]
    y_avals = [o.aval for o in eqn.outputs[n_carry:]]
    slice_sizes = [a.aval.size // max(length, 1) for a in xs_atoms]
    if length * max(len(jaxpr.eqns), 1) <= _UNROLL_BUDGET:
        # unrolled: exact per step
        ys = [[None] * length for _ in y_avals]
        steps = range(length - 1, -1, -1) if p["reverse"] else range(length)
        for t in steps:
            x_pats = [None if xp is None else xp.take(np.arange(t * s, (t + 1) * s))
                      for xp, s in zip(xs_pats, slice_sizes)]
            x_vals = [None if xv is None else _slice_known(ctx, xv, t) for xv in xs_vals]
            outs, _ = _run_sub(ctx, p["jaxpr"], consts_p + carry + x_pats,
                               consts_v + [None] * n_carry + x_vals)
            carry = outs[:n_carry]
            for acc, y in zip(ys, outs[n_carry:], strict=True):
                acc[t] = y
        stacked = [stack_rows(acc, [a.size // max(length, 1)] * length, ctx.n_in)
                   if any(y is not None for y in acc) else None
                   for acc, a in zip(ys, y_avals)]
        return carry + stacked
    # long scans: one slice pattern for every step (the union over steps), the
    # carries at their fixed point, every ys row alike
    x_any = []
    for xp, s in zip(xs_pats, slice_sizes):
        if xp is None:
            x_any.append(None)
        else:
            rows = np.arange(xp.size, dtype=np.int64)
            x_any.append(combine(s, ctx.n_in, [(xp, rows % s, rows)]))
    ys = [None] * len(y_avals)
    for _ in range(_FIXED_POINT_PASSES):
        outs, _ = _run_sub(ctx, p["jaxpr"], consts_p + carry + x_any,
                           consts_v + [None] * (n_carry + len(x_any)))
        new = _union_each(carry, outs[:n_carry], carry_sizes, ctx.n_in)
        ys = outs[n_carry:]
        if not _grew(carry, new):
            carry = new
            break
        carry = new
    else:
        return dense_rule(ctx, eqn, pats, vals)
    return carry + [None if y is None else y.take(np.tile(np.arange(y.size), length))
                    for y in ys]


def _slice_known(ctx, known, t):
    return Known(np.asarray(known.value)[t], known.origins)


def _checkpoint_rule(ctx, eqn, pats, vals):
    # rematerialisation changes when values are computed, not what they depend on
    outs, _ = _run_sub(ctx, eqn.params["call_jaxpr"], list(pats), list(vals))
    return outs


register_rule(cond_p, _cond_rule)
register_rule(while_p, _while_rule)
register_rule(scan_p, _scan_rule)
register_rule(checkpoint_p, _checkpoint_rule)


# ---------------------------------------------------------------------------
# the result type under a trace
# ---------------------------------------------------------------------------

class _Structure:
    """The index arrays and shape of a CSR result: static, compared by identity."""
    __slots__ = ("indptr", "indices", "shape")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, shape: tuple):
        self.indptr, self.indices, self.shape = indptr, indices, shape

    def __repr__(self) -> str:
        return f"CSR{self.shape}[nnz={len(self.indices)}]"


class CSR:
    """A sparse matrix in CSR form whose `data` may be traced: what `sparse_jacobian`
    and `sparse_hessian` return inside `fungrad.jit`, `vmap` or `grad` (outside
    them they return a `scipy.sparse.csr_array`).  A pytree whose only leaf is
    `data`; when `jit` hands it back with concrete data it becomes a
    `scipy.sparse.csr_array` again.  Under `vmap`, `data` gains leading batch axes."""
    __slots__ = ("data", "structure")

    def __init__(self, data: Any, structure: _Structure):
        self.data, self.structure = data, structure

    @property
    def indptr(self) -> np.ndarray:
        return self.structure.indptr

    @property
    def indices(self) -> np.ndarray:
        return self.structure.indices

    @property
    def shape(self) -> tuple:
        return self.structure.shape

    def to_scipy(self):
        """The scipy.sparse.csr_array (needs concrete, unbatched data)."""
        return _to_scipy(np.asarray(self.data), self.structure)

    def __repr__(self) -> str:
        return f"CSR(shape={self.shape}, nnz={len(self.indices)}, data={self.data!r})"


def _to_scipy(data: np.ndarray, s: _Structure):
    return _scipy_sparse().csr_array((data, s.indices.copy(), s.indptr.copy()), shape=s.shape)


def _csr_unflatten(structure: _Structure, children):
    (data,) = children
    if isinstance(data, np.ndarray) and data.shape == (len(structure.indices),):
        return _to_scipy(data, structure)
    return CSR(data, structure)


register_pytree_node(CSR, lambda m: ((m.data,), m.structure), _csr_unflatten)


# ---------------------------------------------------------------------------
# plans: pattern, coloring and the compressed program, per program structure
# ---------------------------------------------------------------------------

class SparsePlan:
    """What `sparse_jacobian` / `sparse_hessian` derive once per program structure
    (and input shapes): the pattern (`indptr`, `indices`, `shape`), the coloring
    (`colors`, `n_colors` passes, `mode`: "fwd", "rev", "star" or "column"), the
    seconds spent detecting and coloring, and the compressed program."""

    def __init__(self, kind: str, mode: str, structure: _Structure, colors: np.ndarray,
                 detect_seconds: float, color_seconds: float, read: list):
        self.kind, self.mode, self.structure = kind, mode, structure
        self.colors = colors
        self.n_colors = int(colors.max(initial=-1)) + 1 if structure.indices.size else 0
        self.detect_seconds, self.color_seconds = detect_seconds, color_seconds
        self.read = read
        self.program: Jaxpr | None = None
        self.program_consts: list = []
        self.flat_index: np.ndarray | None = None   # each stored entry's place in B

    @property
    def shape(self) -> tuple:
        return self.structure.shape

    @property
    def nnz(self) -> int:
        return int(self.structure.indices.size)

    def pattern(self):
        """The pattern as a boolean scipy.sparse.csr_array."""
        s = self.structure
        return _scipy_sparse().csr_array(
            (np.ones(len(s.indices), bool), s.indices.copy(), s.indptr.copy()), shape=s.shape)

    def __repr__(self) -> str:
        return (f"SparsePlan({self.kind}, shape={self.shape}, nnz={self.nnz}, "
                f"mode={self.mode!r}, colors={self.n_colors}, "
                f"detect={self.detect_seconds * 1e3:.2f} ms, "
                f"color={self.color_seconds * 1e3:.2f} ms)")


_patterns = new_cache("sparse.patterns", 256)
_plans = new_cache("sparse.plans", 256)


def _is_concrete(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, int, float, bool, complex))


def _still_valid(read: list, consts: Sequence) -> bool:
    """Do the constants a pattern was derived from still hold the same values?"""
    for i, saved in read:
        c = consts[i]
        if not _is_concrete(c):
            return False
        c = np.asarray(c)
        if c.shape != saved.shape or c.dtype != saved.dtype or not np.array_equal(c, saved):
            return False
    return True


class _Call:
    """One call of a sparse derivative: the traced program and what it is taken of."""

    def __init__(self, where: str, fun: Callable, args: tuple, kwargs: dict, argnums,
                 scalar: bool):
        self.where, self.fun = where, fun
        call = api_util.prepare_call(where, fun, args, kwargs, argnums)
        for x, w in zip(call.leaves, call.wrt):
            if w and not _is_float(aval_of(x)):
                raise FungradTypeError(
                    f"{where}({describe_function(fun)}): differentiating with respect to an "
                    f"input of dtype {aval_of(x).dtype} ({aval_of(x)}); only floating-point "
                    "inputs can be differentiated.\n  Pass a float array (e.g. 2.0 instead of "
                    "2), or leave the argument out of argnums.")
        self.call = call
        self.closed, self.out_tree = call.trace()
        if scalar:
            api_util.check_scalar_output(where, fun, self.closed, self.out_tree, False)
        for aval in self.closed.out_avals:
            if not _is_float(aval):
                raise FungradTypeError(
                    f"{where}({describe_function(fun)}): the function returned {aval}; a "
                    "derivative needs floating-point outputs.\n  Convert integer outputs "
                    "with .astype(float), or return only the differentiable ones.")
        self.wrt = tuple(call.wrt)
        self.in_avals = [aval_of(x) for x, w in zip(call.leaves, call.wrt) if w]
        self.n_in = sum(a.size for a in self.in_avals)
        self.n_out = sum(a.size for a in self.closed.out_avals)
        self.dtype = np.result_type(*[a.dtype for a in self.in_avals]) if self.in_avals \
            else np.dtype(np.float64)
        self.key = (self.wrt, jaxpr_key(self.closed.jaxpr, with_source=True),
                    tuple(_is_concrete(c) for c in self.closed.consts))

    def leaves(self) -> list:
        return list(self.closed.consts) + list(self.call.leaves)


def _pattern(kind: str, c: _Call) -> tuple[Pattern, list, float]:
    """(pattern, constants read, detection seconds), cached by program structure."""
    key = (kind,) + c.key
    hit = _patterns.get(key)
    if hit is not None and _still_valid(hit[1], c.closed.consts):
        return hit
    start = time.perf_counter()
    jaxpr, consts = c.closed.jaxpr, c.closed.consts
    if kind == "hessian":
        jaxpr = simplify_jaxpr(grad_jaxpr(jaxpr, list(c.wrt), keep_value=False))
    pats, read_ids = jaxpr_sparsity(jaxpr, consts, list(c.wrt))
    sizes = [v.aval.size for v in jaxpr.outvars]
    p = stack_rows(pats, sizes, c.n_in)
    if kind == "hessian":
        p = _symmetrized(p)
    read = [(i, np.array(consts[i], copy=True)) for i in sorted(read_ids)]
    return _patterns.put(key, (p, read, time.perf_counter() - start))


def _symmetrized(p: Pattern) -> Pattern:
    rows = p.row_ids()
    keys = np.concatenate([rows * p.n_in + p.indices, p.indices * p.n_in + rows])
    keys = np.unique(keys)
    n = p.size
    indptr = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * p.n_in)
    return Pattern(indptr, keys - np.repeat(np.arange(n, dtype=np.int64) * p.n_in,
                                            np.diff(indptr)), p.n_in)


def _user_pattern(where: str, sparsity: Any) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(indptr, indices, shape) of a pattern given by the user (any scipy.sparse
    matrix or array, or a dense array-like whose nonzeros are the pattern)."""
    sp = _scipy_sparse()
    m = sp.csr_array(sparsity if sp.issparse(sparsity) else np.asarray(sparsity) != 0)
    if m.ndim != 2:
        raise FungradValueError(f"{where}: sparsity must be a 2-D pattern, got shape {m.shape}")
    m = sp.csr_array((np.ones(m.nnz, bool), m.indices, m.indptr), shape=m.shape)
    m.sum_duplicates()
    m.sort_indices()
    indptr, indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    digest = hashlib.blake2b(indptr.tobytes() + b"|" + indices.tobytes(), digest_size=16)
    return indptr, indices, tuple(m.shape), digest.hexdigest()


def _pattern_from_user(where: str, fun, given, shape: tuple, symmetric: bool) -> Pattern:
    indptr, indices, gshape, _ = given
    if gshape != shape:
        raise FungradValueError(
            f"{where}({describe_function(fun)}): the given sparsity has shape {gshape}, but "
            f"the derivative has shape {shape} (outputs x inputs, each raveled and "
            "concatenated)")
    p = Pattern(indptr, indices, shape[1])
    return _symmetrized(p) if symmetric else p


def _plan(kind: str, mode: str, order: str, c: _Call, given) -> SparsePlan:
    shape = (c.n_in, c.n_in) if kind == "hessian" else (c.n_out, c.n_in)
    key = (kind, mode, order, None if given is None else given[2:]) + c.key
    plan = _plans.get(key)
    if plan is not None and plan.shape == shape and _still_valid(plan.read, c.closed.consts):
        return plan
    if given is not None:
        p, read, detect = _pattern_from_user(c.where, c.fun, given, shape,
                                             kind == "hessian"), [], 0.0
    else:
        p, read, detect = _pattern(kind, c)
    start = time.perf_counter()
    if kind == "hessian":
        chosen, colors = "column", coloring.column_coloring(p.indptr, p.indices, c.n_in, order)
        if colors.max(initial=-1) + 1 > coloring.clique_bound(p.indptr, p.indices):
            star = coloring.star_coloring(p.indptr, p.indices, order)
            if star.max(initial=-1) < colors.max(initial=-1):
                chosen, colors = "star", star
    else:
        options = []
        if mode in ("fwd", "auto"):
            options.append(("fwd", coloring.column_coloring(p.indptr, p.indices, c.n_in,
                                                            order)))
        optimal = options and options[0][1].max(initial=-1) + 1 <= int(
            np.bincount(p.indices, minlength=c.n_in).max(initial=0))
        if mode == "rev" or (mode == "auto" and not optimal):
            # (a column coloring with at most max-column-count colors cannot be
            # beaten by a row coloring, whose lower bound that is)
            options.append(("rev", coloring.row_coloring(p.indptr, p.indices, c.n_in, order)))
        chosen, colors = min(options, key=lambda o: o[1].max(initial=-1))
    seconds = time.perf_counter() - start
    plan = SparsePlan(kind, chosen, _Structure(p.indptr, p.indices, shape), colors, detect,
                      seconds, read)
    _build_program(plan, c)
    return _plans.put(key, plan)


def _seed_blocks(colors: np.ndarray, n_colors: int, avals: Sequence) -> list:
    """The seed matrix S[color[j], j] = 1, split per leaf: (n_colors,) + leaf.shape."""
    blocks, start = [], 0
    for a in avals:
        s = np.zeros((n_colors, a.size), a.dtype)
        s[colors[start:start + a.size], np.arange(a.size)] = 1
        blocks.append(s.reshape((n_colors,) + a.shape))
        start += a.size
    return blocks


def _build_program(plan: SparsePlan, c: _Call) -> None:
    """Trace (f's consts, f's inputs) -> the compressed product B, raveled: one
    batched derivative pass over the seed matrix.  `plan.flat_index` says where in
    B each stored entry of the CSR matrix is."""
    s = plan.structure
    n_colors = plan.n_colors
    if n_colors == 0:
        return
    m, n = s.shape
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(s.indptr))
    cols = s.indices
    if plan.mode == "fwd":
        width, seeds = m, _seed_blocks(plan.colors, n_colors, c.in_avals)
        flat_index = plan.colors[cols] * m + rows
    elif plan.mode == "rev":
        width, seeds = n, _seed_blocks(plan.colors, n_colors, c.closed.out_avals)
        flat_index = plan.colors[rows] * n + cols
    elif plan.mode == "star":
        width, seeds = n, _seed_blocks(plan.colors, n_colors, c.in_avals)
        flat_index = coloring.symmetric_recovery(s.indptr, s.indices, plan.colors)
    else:   # a column coloring of the Hessian: recovered like a forward Jacobian
        width, seeds = n, _seed_blocks(plan.colors, n_colors, c.in_avals)
        flat_index = plan.colors[cols] * n + rows
    jaxpr, wrt, k = c.closed.jaxpr, c.wrt, len(c.closed.consts)
    mode = plan.mode
    plan.flat_index = flat_index

    def run(*args):
        consts, leaves = args[:k], args[k:]
        diff = [x for x, w in zip(leaves, wrt) if w]

        def f_flat(*d):
            it = iter(d)
            return eval_jaxpr(jaxpr, consts, *[next(it) if w else x
                                               for x, w in zip(leaves, wrt)])
        if mode == "fwd":
            outs = vmap(lambda *ts: jvp(f_flat, tuple(diff), tuple(ts))[1])(*seeds)
        elif mode == "rev":
            _, pullback = vjp(f_flat, *diff)
            outs = vmap(lambda *cts: pullback(list(cts)))(*seeds)
        else:
            g = grad(lambda *d: f_flat(*d)[0], argnums=tuple(range(len(diff))))
            outs = vmap(lambda *ts: jvp(g, tuple(diff), tuple(ts))[1])(*seeds)
        flat = [reshape(o, (n_colors, aval_of(o).size // n_colors)) for o in outs]
        compressed = flat[0] if len(flat) == 1 else concatenate(flat, 1)
        return [reshape(compressed, (n_colors * width,))]

    avals = [v.aval for v in jaxpr.constvars] + list(jaxpr.in_avals)
    closed = trace_to_jaxpr(run, avals)
    plan.program = simplify_jaxpr(closed.jaxpr)
    plan.program_consts = list(closed.consts)


def _evaluate(plan: SparsePlan, c: _Call):
    s = plan.structure
    if plan.program is None:
        return _to_scipy(np.zeros(0, c.dtype), s)
    # the compressed product B (colors x width, raveled), then each stored entry
    (compressed,) = api_util.execute(plan.program, plan.program_consts, c.leaves())
    if isinstance(compressed, Tracer):
        return CSR(gather(compressed, plan.flat_index.reshape(-1, 1), (0,)), s)
    return _to_scipy(np.asarray(compressed)[plan.flat_index], s)


# ---------------------------------------------------------------------------
# the user-facing functions
# ---------------------------------------------------------------------------

def _check_options(where: str, mode: str, order: str) -> None:
    if mode not in MODES:
        raise FungradValueError(f"{where}: mode must be one of {', '.join(MODES)}, "
                                f"got {mode!r}")
    if order not in coloring.ORDERS:
        raise FungradValueError(f"{where}: order must be one of "
                                f"{', '.join(coloring.ORDERS)}, got {order!r}")


class _SparseDerivative:
    """The function `sparse_jacobian` / `sparse_hessian` return; `.plan(*args)`
    shows the pattern, coloring and timings it uses for those arguments."""

    def __init__(self, where: str, kind: str, fun: Callable, argnums, mode: str, order: str,
                 sparsity: Any):
        _check_options(where, mode, order)
        if not callable(fun):
            raise FungradTypeError(f"{where}: expected a function, got {type(fun).__name__}")
        self._where, self._kind, self._fun = where, kind, fun
        self._argnums, self._mode, self._order = argnums, mode, order
        self._given = None if sparsity is None else _user_pattern(where, sparsity)
        self.__name__ = f"{where}({getattr(fun, '__name__', 'fun')})"
        self.__wrapped__ = fun

    def plan(self, *args, **kwargs) -> SparsePlan:
        c = _Call(self._where, self._fun, args, kwargs, self._argnums,
                  self._kind == "hessian")
        return _plan(self._kind, self._mode, self._order, c, self._given)

    def __call__(self, *args, **kwargs):
        c = _Call(self._where, self._fun, args, kwargs, self._argnums,
                  self._kind == "hessian")
        return _evaluate(_plan(self._kind, self._mode, self._order, c, self._given), c)

    def __repr__(self) -> str:
        return f"<{self.__name__}>"


def sparse_jacobian(fun: Callable, argnums: int | Sequence[int] = 0, mode: str = "auto",
                    sparsity: Any = None, order: str = "largest_first") -> Callable:
    """The Jacobian of `fun` as a sparse matrix, computed in as many passes as its
    pattern needs colors (3 for a tridiagonal Jacobian, whatever its size).

    Args:
      fun: a function of arrays returning an array or a pytree of arrays.
      argnums: which positional arguments to differentiate (int or tuple).
      mode: "fwd" (jvps over a column coloring), "rev" (vjps over a row coloring)
        or "auto" (whichever needs fewer passes).
      sparsity: a known pattern (scipy.sparse matrix or dense array-like of shape
        outputs x inputs) instead of detection; entries outside it are taken to
        be zero.
      order: vertex order of the greedy coloring: "largest_first",
        "smallest_last" or "natural".

    Returns:
      a function of fun's arguments returning a `scipy.sparse.csr_array` of shape
      (total output size, total size of the differentiated inputs): outputs and
      inputs are raveled (row-major) and concatenated in pytree order.  Inside
      `jit`, `vmap` or `grad` it returns a `fungrad.sparse.CSR` with traced data.
      `.plan(*args)` returns the `SparsePlan` (pattern, colors, timings).

    The pattern is detected once per program structure and input shapes, by
    interpreting the traced program (`fungrad.jacobian_sparsity`); it holds for
    every input value, so later calls only run the compressed passes.

    >>> J = sparse_jacobian(lambda x: x[1:] * x[:-1])(np.arange(4.0))
    >>> J.toarray()
    array([[1., 0., 0., 0.],
           [0., 2., 1., 0.],
           [0., 0., 3., 2.]])
    """
    return _SparseDerivative("sparse_jacobian", "jacobian", fun, argnums, mode, order,
                             sparsity)


def sparse_hessian(fun: Callable, argnums: int | Sequence[int] = 0, sparsity: Any = None,
                   order: str = "largest_first") -> Callable:
    """The Hessian of scalar-valued `fun` as a sparse symmetric matrix.

    The pattern is the Jacobian pattern of the gradient program, symmetrized; a
    star coloring lets each entry be read from one of the forward-over-reverse
    passes (h_ij from row i or from row j), with a plain column coloring when
    that needs no more passes.  Arguments and result as in `sparse_jacobian`
    (the matrix is n x n over the differentiated inputs, raveled and concatenated).
    """
    return _SparseDerivative("sparse_hessian", "hessian", fun, argnums, "auto", order,
                             sparsity)


def jacobian_sparsity(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the detected Jacobian pattern of `fun` at the given
    arguments' shapes: a boolean `scipy.sparse.csr_array` (outputs x inputs, each
    raveled and concatenated) that holds for every input value.  Exact for
    elementwise, shape and indexing programs; a superset elsewhere."""
    def pattern(*args, **kwargs):
        c = _Call("jacobian_sparsity", fun, args, kwargs, argnums, False)
        p, _, _ = _pattern("jacobian", c)
        return _bool_matrix(p, (c.n_out, c.n_in))
    pattern.__name__ = f"jacobian_sparsity({getattr(fun, '__name__', 'fun')})"
    return pattern


def hessian_sparsity(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Like `jacobian_sparsity`, for the Hessian of scalar-valued `fun` (symmetric)."""
    def pattern(*args, **kwargs):
        c = _Call("hessian_sparsity", fun, args, kwargs, argnums, True)
        p, _, _ = _pattern("hessian", c)
        return _bool_matrix(p, (c.n_in, c.n_in))
    pattern.__name__ = f"hessian_sparsity({getattr(fun, '__name__', 'fun')})"
    return pattern


def _bool_matrix(p: Pattern, shape: tuple):
    return _scipy_sparse().csr_array(
        (np.ones(p.nnz, bool), p.indices.copy(), p.indptr.copy()), shape=shape)
