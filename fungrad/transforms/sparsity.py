"""Sparsity detection: an interpretation of a jaxpr that propagates, for every
element of every value, the set of input elements its derivative may depend on.

A value's `Pattern` is a boolean matrix in CSR form, one row per element of the
value (row-major) and one column per element of the differentiated inputs (all
input leaves raveled and concatenated).  Each primitive maps the patterns of its
operands to the patterns of its results with a *sparsity rule*:

- elementwise primitives (`kind="elementwise"`): the union of the operands' rows
  (a 0-d operand's row joins every element); a primitive whose jvp is declared
  `nondifferentiable`, and any integer or boolean result, depends on nothing;
- structural primitives (`kind="shape"`, `value_preserving=True`, and gather /
  scatter with indices known at detection time): each result element is one
  operand element, found by running the primitive's own NumPy `impl` on arrays
  of element numbers, so the map is exact by construction;
- reductions and cumulative reductions: a union over the reduced positions;
- `dot_general`: a union over the contracted positions, restricted to the
  nonzero entries of an operand whose value is known (a constant matrix);
- gather/scatter with indices computed from the inputs, and the factorisations
  of `primitives/linalg.py`: conservative unions;
- any other primitive (custom derivative rules, user primitives): its jvp rule is
  traced on one equation and the pattern of the tangent outputs is read from that
  linear program, which is exact for what the rule computes; if that fails the
  result depends on every operand element (a dense, conservative rule, with a
  warning naming the primitive, once).

Values that depend only on constants are evaluated (with each primitive's
`impl`), so index arrays, masks and matrices captured from the user's closure
refine the pattern; the constants whose values were read are reported, so a
cache of the pattern can check them.  Rules for the control-flow primitives
(`cond`, `while`, `scan`, `checkpoint`) are registered by `fungrad.sparse`,
which sits above `hop/` (`register_rule`).

The pattern is exact for elementwise, shape and indexing programs and a superset
of the true derivative pattern elsewhere: it is valid for every input value, not
only the point at which a function is called.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..core import Eqn, Jaxpr, Literal, Primitive, Var
from ..errors import FungradError, format_location
from ..primitives.base import reduce_sum_p
from ..primitives.elementwise import mul_p, select_p
from ..primitives.indexing import (gather_p, scatter_add_p, scatter_max_p, scatter_min_p,
                                   scatter_mul_p, scatter_p)
from ..primitives.callback import debug_callback_p, pure_callback_p
from ..primitives.fft import fft_p
from ..primitives.linalg import (cholesky_p, det_p, dot_general_p, eig_p, eigh_p, qr_p, slogdet_p,
                                 solve_p, svd_p, triangular_solve_p)
from ..primitives.reduce import (cummax_p, cummin_p, cumprod_p, cumsum_p, reduce_max_p,
                                 reduce_min_p, reduce_prod_p)
from .ad import _is_float
from .jvp import jvp_jaxpr

__all__ = ["Pattern", "Known", "jaxpr_sparsity", "run_sparsity", "register_rule", "SparsityContext",
           "union_patterns", "combine", "stack_rows", "dense_rule", "has_rule"]

# a masked dot_general (or a cumulative rule) with more (output, input) pairs than
# this falls back to the unmasked union, which costs per element, not per pair
_PAIR_BUDGET = 20_000_000


# ---------------------------------------------------------------------------
# patterns: boolean CSR matrices, one row per element of a value
# ---------------------------------------------------------------------------

class Pattern:
    """For each element of a value (row-major), the sorted input elements its
    derivative may depend on: `indices[indptr[i]:indptr[i + 1]]` for element i,
    out of `n_in` input elements."""
    __slots__ = ("indptr", "indices", "n_in")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_in: int):
        self.indptr, self.indices, self.n_in = indptr, indices, n_in

    @property
    def size(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @staticmethod
    def empty(size: int, n_in: int) -> "Pattern":
        return Pattern(np.zeros(size + 1, np.int64), np.zeros(0, np.int64), n_in)

    @staticmethod
    def identity(size: int, offset: int, n_in: int) -> "Pattern":
        """Element i depends on input element offset + i (an input leaf)."""
        return Pattern(np.arange(size + 1, dtype=np.int64),
                       np.arange(offset, offset + size, dtype=np.int64), n_in)

    def row_ids(self) -> np.ndarray:
        """The row of each stored entry (COO rows)."""
        return np.repeat(np.arange(self.size, dtype=np.int64), np.diff(self.indptr))

    def take(self, rows: np.ndarray) -> "Pattern":
        """Row r of the result is row `rows[r]` of self, or empty where rows[r] < 0."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and rows[0] >= 0 and rows[-1] - rows[0] == rows.size - 1 and (
                rows.size == 1 or (np.diff(rows) == 1).all()):
            # a contiguous run of rows (a slice, an identity): views, no gather
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            start = self.indptr[lo]
            return Pattern(self.indptr[lo:hi + 1] - start,
                           self.indices[start:self.indptr[hi]], self.n_in)
        missing = rows < 0
        safe = np.where(missing, 0, rows) if missing.any() else rows
        lens, cols = _gather_rows(self, safe, missing)
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lens, out=indptr[1:])
        return Pattern(indptr, cols, self.n_in)

    def __repr__(self) -> str:
        return f"Pattern({self.size} elements x {self.n_in} inputs, {self.nnz} entries)"


def _gather_rows(p: Pattern, rows: np.ndarray, missing: np.ndarray | None = None):
    """(row lengths, concatenated column indices) of the rows `rows` of p."""
    starts = p.indptr[rows]
    lens = p.indptr[rows + 1] - starts
    if missing is not None and missing.any():
        lens = np.where(missing, 0, lens)
    total = int(lens.sum())
    if total == 0:
        return lens, np.zeros(0, np.int64)
    if total == p.nnz and len(rows) == p.size and np.array_equal(rows, np.arange(p.size)):
        return lens, p.indices
    ends = np.cumsum(lens)
    shift = np.repeat(starts - (ends - lens), lens)
    return lens, p.indices[np.arange(total, dtype=np.int64) + shift]


def _from_keys(keys: np.ndarray, size: int, n_in: int) -> Pattern:
    """The pattern holding the (sorted, deduplicated) entries row * n_in + col."""
    if n_in == 0 or keys.size == 0:
        return Pattern.empty(size, n_in)
    rows = keys // n_in
    indptr = np.zeros(size + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=size), out=indptr[1:])
    return Pattern(indptr, keys - rows * n_in, n_in)


def _dedupe_sorted(keys: np.ndarray) -> np.ndarray:
    """`keys` sorted and deduplicated (sorted in place: pass a fresh array)."""
    # a stable sort is a timsort on int64: it merges the already sorted runs of
    # CSR rows in linear time
    keys.sort(kind="stable")
    if keys.size > 1:
        keep = np.empty(keys.size, bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
    return keys


def combine(size: int, n_in: int, parts: Sequence[tuple]) -> Pattern:
    """Row r of the result is the union of row `in_rows[k]` of `pattern` over every
    part `(pattern, out_rows, in_rows)` and every k with out_rows[k] == r."""
    keys = []
    for p, out_rows, in_rows in parts:
        if p is None:
            continue
        in_rows = np.asarray(in_rows, np.int64).ravel()
        out_rows = np.asarray(out_rows, np.int64).ravel()
        lens, cols = _gather_rows(p, in_rows)
        if cols.size:
            keys.append(np.repeat(out_rows, lens) * n_in + cols)
    if not keys:
        return Pattern.empty(size, n_in)
    return _from_keys(_dedupe_sorted(np.concatenate(keys)), size, n_in)


def union_patterns(patterns: Sequence[Pattern | None], size: int, n_in: int) -> Pattern | None:
    """Elementwise union; a pattern with one row (a 0-d operand) joins every row."""
    present = [p for p in patterns if p is not None and p.nnz]
    if not present:
        return None if all(p is None for p in patterns) else Pattern.empty(size, n_in)
    if len(present) == 1 or all(p is present[0] for p in present):
        p = present[0]
        return p if p.size == size else p.take(np.zeros(size, np.int64))
    full = [p for p in present if p.size == size]
    scalars = [p for p in present if p.size != size]
    if not scalars and len({id(p) for p in full}) == 1:
        return full[0]
    rows = np.arange(size, dtype=np.int64)
    parts = [(p, rows, rows) for p in full]
    parts += [(p, rows, np.zeros(size, np.int64)) for p in scalars]
    return combine(size, n_in, parts)


def stack_rows(patterns: Sequence[Pattern | None], sizes: Sequence[int], n_in: int) -> Pattern:
    """The patterns one after another (rows concatenated); None is `sizes[k]` empty rows."""
    indptrs, indices, offset = [np.zeros(1, np.int64)], [], 0
    for p, size in zip(patterns, sizes, strict=True):
        if p is None:
            indptrs.append(np.full(size, offset, np.int64))
            continue
        indptrs.append(p.indptr[1:] + offset)
        indices.append(p.indices)
        offset += p.nnz
    return Pattern(np.concatenate(indptrs),
                   np.concatenate(indices) if indices else np.zeros(0, np.int64), n_in)


def _all_rows(p: Pattern) -> Pattern:
    """One row: the union of every row of p."""
    return combine(1, p.n_in, [(p, np.zeros(p.size, np.int64), np.arange(p.size))])


# ---------------------------------------------------------------------------
# the interpretation
# ---------------------------------------------------------------------------

class Known:
    """A value computable before the inputs are known, and the constants it came from."""
    __slots__ = ("value", "origins")

    def __init__(self, value: Any, origins: frozenset):
        self.value, self.origins = value, origins


class SparsityContext:
    """State of one detection: the number of input elements, the constants whose
    values a rule read, and the primitives being linearized (against recursion)."""

    def __init__(self, n_in: int):
        self.n_in = n_in
        self.read: set = set()
        self.linearizing: list[Primitive] = []

    def value(self, known: "Known | None") -> Any:
        """The known value (recording that the pattern depends on its constants)."""
        if known is None:
            return None
        self.read |= known.origins
        return known.value


_RULES: dict[Primitive, Callable] = {}
_warned: set = set()


def register_rule(prim: Primitive, rule: Callable) -> Callable:
    """Declare the sparsity rule of `prim`: `rule(ctx, eqn, patterns, known)` returns
    one `Pattern` (or None: no dependence) per output of the equation; `patterns[k]`
    is operand k's pattern or None, `known[k]` its value if known (read it with
    `ctx.value(known[k])`)."""
    _RULES[prim] = rule
    return rule


def has_rule(prim: Primitive) -> bool:
    """Whether `prim` has a rule of its own or of its kind (else it is linearized)."""
    return prim in _RULES or prim.kind in ("elementwise", "shape", "reduction") or \
        prim.value_preserving


def run_sparsity(jaxpr: Jaxpr, ctx: SparsityContext, const_patterns: Sequence,
                 const_known: Sequence, in_patterns: Sequence, in_known: Sequence):
    """Interpret `jaxpr`: (patterns, known values) of its outputs from those of its
    constvars and invars (None: no dependence / not known)."""
    patterns: dict = {}
    known: dict = {}
    for v, p, k in zip(jaxpr.constvars, const_patterns, const_known, strict=True):
        patterns[v], known[v] = p, k
    for v, p, k in zip(jaxpr.invars, in_patterns, in_known, strict=True):
        patterns[v], known[v] = p, k

    def read(atom):
        if type(atom) is Literal:
            return None, Known(atom.val, frozenset())
        return patterns.get(atom), known.get(atom)

    for eqn in jaxpr.eqns:
        pats, vals = zip(*[read(a) for a in eqn.inputs]) if eqn.inputs else ((), ())
        if all(v is not None for v in vals) and all(p is None for p in pats):
            try:
                with np.errstate(all="ignore"):
                    outs = eqn.prim.impl(*[v.value for v in vals], **eqn.params)
            except Exception:   # e.g. an index out of bounds: leave it to run time
                outs = None
            if outs is not None:
                origins = frozenset().union(*[v.origins for v in vals])
                outs = outs if eqn.prim.multiple_results else (outs,)
                for o, value in zip(eqn.outputs, outs, strict=True):
                    known[o] = Known(value, origins)
                continue
        if all(p is None for p in pats) or not any(_is_float(o.aval) for o in eqn.outputs):
            continue
        out_pats = _apply(ctx, eqn, list(pats), list(vals))
        for o, p in zip(eqn.outputs, out_pats, strict=True):
            if p is not None and _is_float(o.aval):
                patterns[o] = p
    outs = [read(a) for a in jaxpr.outvars]
    return [p for p, _ in outs], [k for _, k in outs]


def _apply(ctx, eqn, pats, vals) -> list:
    prim = eqn.prim
    if prim.jvp_nondifferentiable:
        return [None] * len(eqn.outputs)
    rule = _RULES.get(prim)
    if rule is not None:
        return rule(ctx, eqn, pats, vals)
    if prim.kind == "elementwise":
        return _elementwise_rule(ctx, eqn, pats, vals)
    if prim.kind == "shape" or prim.value_preserving:
        try:
            return [_by_impl(ctx, eqn, pats, vals, range(len(eqn.inputs)))]
        except Exception:   # an impl that needs float operands: linearize instead
            pass
    if prim.kind == "reduction" and "axes" in eqn.params and not prim.multiple_results:
        return _reduce_rule(ctx, eqn, pats, vals)
    return linearized_rule(ctx, eqn, pats, vals)


def jaxpr_sparsity(jaxpr: Jaxpr, consts: Sequence, wrt: Sequence[bool]):
    """The derivative pattern of each output of `jaxpr` with respect to the inputs
    marked in `wrt` (raveled and concatenated): a list of `Pattern`, one per
    output, and the set of constvar positions whose values shaped the result.

    `consts` are the constvars' values; concrete arrays refine the pattern (a
    constant index array, a constant matrix with zeros), tracers are unknown."""
    avals = [v.aval for v in jaxpr.invars]
    n_in = sum(a.size for a, w in zip(avals, wrt, strict=True) if w)
    ctx = SparsityContext(n_in)
    in_patterns, offset = [], 0
    for a, w in zip(avals, wrt):
        if w:
            in_patterns.append(Pattern.identity(a.size, offset, n_in))
            offset += a.size
        else:
            in_patterns.append(None)
    const_known = [Known(c, frozenset([i])) if _is_concrete(c) else None
                   for i, c in enumerate(consts)]
    out_pats, _ = run_sparsity(jaxpr, ctx, [None] * len(consts), const_known, in_patterns,
                               [None] * len(avals))
    result = [p if p is not None else Pattern.empty(v.aval.size, n_in)
              for p, v in zip(out_pats, jaxpr.outvars, strict=True)]
    if not all(_is_float(v.aval) for v in jaxpr.outvars):
        result = [p if _is_float(v.aval) else Pattern.empty(v.aval.size, n_in)
                  for p, v in zip(result, jaxpr.outvars)]
    return result, ctx.read


def _is_concrete(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, int, float, bool, complex))


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------

def _elementwise_rule(ctx, eqn, pats, vals):
    out = eqn.outputs[0].aval
    return [union_patterns(pats, out.size, ctx.n_in)]


def _mul_rule(ctx, eqn, pats, vals):
    # d(x * c) = c dx: where a known factor is exactly 0, nothing flows through
    out = eqn.outputs[0].aval
    for k in (0, 1):
        other = 1 - k
        if vals[k] is not None and pats[other] is not None and pats[k] is None:
            factor = np.asarray(ctx.value(vals[k]))
            p = pats[other]
            rows = np.zeros(out.size, np.int64) if p.size != out.size else \
                np.arange(out.size, dtype=np.int64)
            zero = np.broadcast_to(factor == 0, out.shape).ravel()
            if not zero.any():
                return [p if p.size == out.size else p.take(rows)]
            return [p.take(np.where(zero, -1, rows))]
    return _elementwise_rule(ctx, eqn, pats, vals)


def _select_rule(ctx, eqn, pats, vals):
    # select(pred, a, b) with a known predicate picks each element from one side
    out = eqn.outputs[0].aval
    if vals[0] is None:
        return [union_patterns(pats[1:], out.size, ctx.n_in)]
    pred = np.broadcast_to(np.asarray(ctx.value(vals[0]), bool), out.shape).ravel()
    sizes = [eqn.inputs[1].aval.size, eqn.inputs[2].aval.size]
    stacked = stack_rows(pats[1:], sizes, ctx.n_in)
    rows = np.arange(out.size, dtype=np.int64)
    true_rows = rows if sizes[0] == out.size else np.zeros(out.size, np.int64)
    false_rows = (rows if sizes[1] == out.size else np.zeros(out.size, np.int64)) + sizes[0]
    return [stacked.take(np.where(pred, true_rows, false_rows))]


register_rule(mul_p, _mul_rule)
register_rule(select_p, _select_rule)


def _by_impl(ctx, eqn, pats, vals, moving) -> Pattern:
    """Each result element is one element of the operands in `moving`: run the
    primitive's impl on their element numbers (the other operands at their known
    values) to find which."""
    args, parts, sizes, offset = [], [], [], 0
    moving = set(moving)
    for k, atom in enumerate(eqn.inputs):
        if k in moving:
            aval = atom.aval
            args.append((np.arange(aval.size, dtype=np.int64) + offset).reshape(aval.shape))
            parts.append(pats[k])
            sizes.append(aval.size)
            offset += aval.size
        else:
            args.append(ctx.value(vals[k]))
    index = np.asarray(eqn.prim.impl(*args, **eqn.params), dtype=np.int64).ravel()
    if index.size != eqn.outputs[0].aval.size:
        raise FungradError(f"sparsity: impl of {eqn.prim.name} gave {index.size} elements")
    if len(parts) == 1 and parts[0] is not None:
        return parts[0].take(index)
    return stack_rows(parts, sizes, ctx.n_in).take(index)


def _reduce_over(p: Pattern, shape: tuple, axes: Sequence[int]) -> Pattern:
    """The union of p over `axes` of a value of `shape` (the reduced result's rows)."""
    kept = tuple(d for i, d in enumerate(shape) if i not in axes)
    size = int(np.prod(kept, dtype=np.int64))
    out_ids = np.arange(size, dtype=np.int64).reshape(kept)
    if axes:
        out_ids = np.expand_dims(out_ids, tuple(axes))
    out_rows = np.broadcast_to(out_ids, shape).ravel()
    return combine(size, p.n_in, [(p, out_rows, np.arange(p.size))])


def _reduce_rule(ctx, eqn, pats, vals):
    axes = tuple(int(a) for a in eqn.params["axes"])
    return [_reduce_over(pats[0], eqn.inputs[0].aval.shape, axes)]


for _p in (reduce_sum_p, reduce_max_p, reduce_min_p, reduce_prod_p):
    register_rule(_p, _reduce_rule)


def _cumulative_rule(ctx, eqn, pats, vals):
    # out[..., i, ...] depends on in[..., j, ...] for j <= i (j >= i when reversed)
    aval = eqn.inputs[0].aval
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    length = aval.shape[axis]
    ids = np.moveaxis(np.arange(aval.size, dtype=np.int64).reshape(aval.shape), axis, -1)
    ids = ids.reshape(-1, length)
    i, j = np.triu_indices(length) if reverse else np.tril_indices(length)
    out_rows, in_rows = ids[:, i].ravel(), ids[:, j].ravel()
    return [combine(aval.size, ctx.n_in, [(pats[0], out_rows, in_rows)])]


for _p in (cumsum_p, cumprod_p, cummax_p, cummin_p):
    register_rule(_p, _cumulative_rule)


def _dot_rule(ctx, eqn, pats, vals):
    # out[b, i, j] = sum_k x[b, i, k] y[b, k, j]: depends on x[b, i, k] for every k
    # where y[b, k, j] may be nonzero, and on y[b, k, j] where x[b, i, k] may be
    (cx, cy), (bx, by) = eqn.params["dimension_numbers"]
    x, y = eqn.inputs[0].aval, eqn.inputs[1].aval
    fx = tuple(d for d in range(x.ndim) if d not in cx and d not in bx)
    fy = tuple(d for d in range(y.ndim) if d not in cy and d not in by)
    nb = int(np.prod([x.shape[d] for d in bx], dtype=np.int64))
    ni = int(np.prod([x.shape[d] for d in fx], dtype=np.int64))
    nk = int(np.prod([x.shape[d] for d in cx], dtype=np.int64))
    nj = int(np.prod([y.shape[d] for d in fy], dtype=np.int64))
    xi = np.arange(x.size, dtype=np.int64).reshape(x.shape).transpose(bx + fx + cx)
    xi = xi.reshape(nb, ni, nk)
    yi = np.arange(y.size, dtype=np.int64).reshape(y.shape).transpose(by + cy + fy)
    yi = yi.reshape(nb, nk, nj)
    oi = np.arange(nb * ni * nj, dtype=np.int64).reshape(nb, ni, nj)
    parts = []
    # x's side: rows (b, i, k) reach (b, i, j); y's side: rows (b, k, j) reach (b, i, j)
    for p, other_known, ids, other_axes, n_free, n_keep in (
            (pats[0], vals[1], xi, (by + cy + fy), ni, "x"),
            (pats[1], vals[0], yi, (bx + fx + cx), nj, "y")):
        if p is None:
            continue
        masked = False
        if other_known is not None:
            value = np.asarray(ctx.value(other_known))
            if n_keep == "x":
                nz = np.asarray(value.transpose(by + cy + fy) != 0).reshape(nb, nk, nj)
                b, k, j = np.nonzero(nz)
                if b.size * ni <= _PAIR_BUDGET:
                    i = np.arange(ni, dtype=np.int64)
                    out_rows = oi[b[:, None], i[None, :], j[:, None]]
                    in_rows = xi[b[:, None], i[None, :], k[:, None]]
                    parts.append((p, out_rows, in_rows))
                    masked = True
            else:
                nz = np.asarray(value.transpose(bx + fx + cx) != 0).reshape(nb, ni, nk)
                b, i, k = np.nonzero(nz)
                if b.size * nj <= _PAIR_BUDGET:
                    j = np.arange(nj, dtype=np.int64)
                    out_rows = oi[b[:, None], i[:, None], j[None, :]]
                    in_rows = yi[b[:, None], k[:, None], j[None, :]]
                    parts.append((p, out_rows, in_rows))
                    masked = True
        if masked:
            continue
        if n_keep == "x":   # union over k per (b, i), then spread over j
            u = combine(nb * ni, ctx.n_in, [(p, np.repeat(np.arange(nb * ni), nk), xi.ravel())])
            spread = np.broadcast_to(np.arange(nb * ni).reshape(nb, ni, 1), (nb, ni, nj))
        else:               # union over k per (b, j), then spread over i
            ids_bj = yi.transpose(0, 2, 1).reshape(nb * nj, nk)
            u = combine(nb * nj, ctx.n_in, [(p, np.repeat(np.arange(nb * nj), nk),
                                               ids_bj.ravel())])
            spread = np.broadcast_to(np.arange(nb * nj).reshape(nb, 1, nj), (nb, ni, nj))
        parts.append((u, oi.ravel(), spread.ravel()))
    return [combine(nb * ni * nj, ctx.n_in, parts)]


register_rule(dot_general_p, _dot_rule)


def _gather_rule(ctx, eqn, pats, vals):
    if vals[1] is not None:
        return [_by_impl(ctx, eqn, pats, vals, (0,))]
    # indices computed from the inputs: an element may come from anywhere along axes
    x = eqn.inputs[0].aval
    axes = tuple(eqn.params["axes"])
    rest = _reduce_over(pats[0], x.shape, axes)
    out = eqn.outputs[0].aval
    rows = np.broadcast_to(np.arange(rest.size, dtype=np.int64),
                           (out.size // max(rest.size, 1), rest.size)).ravel()
    return [rest.take(rows)]


register_rule(gather_p, _gather_rule)


def _scatter_rule(ctx, eqn, pats, vals):
    x, idx, u = (a.aval for a in eqn.inputs)
    axes = tuple(eqn.params["axes"])
    if vals[1] is not None:
        if eqn.prim is scatter_p:   # every result element is one operand or update element
            return [_by_impl(ctx, eqn, pats, vals, (0, 2))]
        # combining scatters: a position depends on its operand element and every
        # update landing on it
        target = gather_p.impl(np.arange(x.size, dtype=np.int64).reshape(x.shape),
                               ctx.value(vals[1]), axes=axes)
        parts = [(pats[0], np.arange(x.size), np.arange(x.size)),
                 (pats[2], np.asarray(target).ravel(), np.arange(u.size))]
        return [combine(x.size, ctx.n_in, parts)]
    # unknown indices: any update with the same non-indexed position may land there
    parts = [(pats[0], np.arange(x.size), np.arange(x.size))]
    if pats[2] is not None:
        n_batch = idx.ndim - 1
        rest_shape = u.shape[n_batch:]
        merged = _reduce_over(pats[2], u.shape, tuple(range(n_batch)))
        rest_ids = np.arange(merged.size, dtype=np.int64).reshape(rest_shape)
        if axes:
            rest_ids = np.expand_dims(rest_ids, axes)
        parts.append((merged, np.arange(x.size), np.broadcast_to(rest_ids, x.shape).ravel()))
    return [combine(x.size, ctx.n_in, parts)]


for _p in (scatter_p, scatter_add_p, scatter_mul_p, scatter_min_p, scatter_max_p):
    register_rule(_p, _scatter_rule)


def dense_rule(ctx, eqn, pats, vals):
    """Conservative: every result element depends on every operand element."""
    present = [p for p in pats if p is not None]
    if not present:
        return [None] * len(eqn.outputs)
    whole = combine(1, ctx.n_in, [(p, np.zeros(p.size, np.int64), np.arange(p.size))
                                  for p in present])
    return [whole.take(np.zeros(o.aval.size, np.int64)) if _is_float(o.aval) else None
            for o in eqn.outputs]


# factorisations and solves: conservative (a banded solve fills in anyway); an FFT
# mixes every element of the axes it transforms (conservative: all of them)
for _p in (cholesky_p, triangular_solve_p, solve_p, det_p, slogdet_p, eigh_p, eig_p, qr_p,
           svd_p, fft_p):
    register_rule(_p, dense_rule)

# host callbacks are opaque: every result may depend on every operand
for _p in (pure_callback_p, debug_callback_p):
    register_rule(_p, dense_rule)


def linearized_rule(ctx, eqn, pats, vals):
    """Trace the primitive's jvp rule on this one equation and read the pattern of
    its tangent outputs (a linear program in the tangents): exact for what the rule
    computes.  Dense, with a warning once, if that is not possible."""
    prim = eqn.prim
    if prim in ctx.linearizing or len(ctx.linearizing) > 8 or not prim.has_rule("jvp"):
        return _dense_with_warning(ctx, eqn, pats, vals, "its jvp rule calls itself"
                                   if prim.has_rule("jvp") else "it has no jvp rule")
    ctx.linearizing.append(prim)
    try:
        ins = [Var(a.aval) if type(a) is Var else a for a in eqn.inputs]
        invars = [v for v in ins if type(v) is Var]
        outs = [Var(o.aval) for o in eqn.outputs]
        one = Jaxpr((), invars, [Eqn(prim, ins, outs, eqn.params, eqn.source_info)], outs)
        wrt = [_is_float(v.aval) for v in invars]
        lin = jvp_jaxpr(one, wrt)
        var_pats = [p for a, p in zip(eqn.inputs, pats) if type(a) is Var]
        var_vals = [k for a, k in zip(eqn.inputs, vals) if type(a) is Var]
        t_pats = [p for p, w in zip(var_pats, wrt) if w]
        out_pats, _ = run_sparsity(lin, ctx, [], [], [None] * len(invars) + t_pats,
                                   var_vals + [None] * len(t_pats))
        return out_pats[len(outs):]
    except FungradError as e:
        return _dense_with_warning(ctx, eqn, pats, vals, f"tracing its jvp failed ({e})")
    finally:
        ctx.linearizing.pop()


def _dense_with_warning(ctx, eqn, pats, vals, why):
    if eqn.prim not in _warned:
        _warned.add(eqn.prim)
        warnings.warn(
            f"sparsity: primitive '{eqn.prim.name}' (at {format_location(eqn.source_info)}) "
            f"has no sparsity rule and {why}; its "
            "results are taken to depend on every element of its operands (a conservative, "
            "possibly dense pattern). Register a rule with "
            "fungrad.transforms.sparsity.register_rule.", stacklevel=2)
    return dense_rule(ctx, eqn, pats, vals)
