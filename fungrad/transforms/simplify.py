"""Simplification passes: pure Jaxpr -> Jaxpr functions.

Every pass keeps the program's signature (constvars, invars, the avals of the
outputs) and its meaning: the interpreter gives the same outputs on every input,
up to the exceptions each docstring states (rounding of `reduce_sum` of a
constant, IEEE special values multiplied by a *broadcast* zero, the sign of a
zero, the last bit of a re-associated matrix product).  Every pass returns its argument unchanged (the same object) when it
finds nothing to do, which is how `simplify_jaxpr` detects its fixed point.

| pass (in pipeline order) | what it does                                          |
| ---                      | ---                                                   |
| `algebraic_jaxpr`        | x*1, x+0, select(True, a, b), zeros, identities, ...  |
| `fold_constants_jaxpr`   | equations over literals -> a literal / broadcast one  |
| `cse_jaxpr`              | same primitive, params and inputs -> reuse the output |
| `dce_jaxpr`              | drop equations whose outputs are unused               |
| `subjaxprs_jaxpr`        | the same pipeline inside cond / loop / call bodies    |

`FUNGRAD_PRINT_PASSES=1` prints the jaxpr after each pass (or that it was unchanged).
`subjaxprs_jaxpr` runs the whole pipeline on the sub-programs held in params
(cond branches, loop bodies, checkpoint and custom-rule jaxprs).

Constants captured from closures (constvars) are per-call values: they are
never folded, so a rewrite stays valid for every value of them.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..core import ClosedJaxpr, Eqn, Jaxpr, Literal, Primitive, ShapedArray, Var, _param_key
from ..primitives.base import (broadcast_in_dim_p, convert_element_type_p, reduce_sum_p, reshape_p,
                        transpose_p)
from ..primitives.elementwise import add_p, div_p, integer_pow_p, mul_p, neg_p, select_p, sub_p
from ..primitives.linalg import dot_general_p
from ..primitives.shape import pad_p, rev_p, slice_p, squeeze_p
from .structure import diagonal_jaxpr
from .util import dce_jaxpr

__all__ = ["dce_jaxpr", "cse_jaxpr", "fold_constants_jaxpr", "algebraic_jaxpr",
           "subjaxprs_jaxpr", "simplify_jaxpr", "PASSES"]


# ---------------------------------------------------------------------------
# shared machinery
# ---------------------------------------------------------------------------

_FOLD_MAX_SIZE = 4096       # materialise constants of at most this many elements


class _Rewriter:
    """One forward walk over a jaxpr that builds a new one.

    `subst` maps an old var to the atom that replaces it; `defs` maps every var
    of the new program to its defining equation; `changed` says whether any
    equation was rewritten."""

    def __init__(self, jaxpr: Jaxpr):
        self.jaxpr = jaxpr
        self.subst: dict[Var, Any] = {}
        self.defs: dict[Var, Eqn] = {}
        self.eqns: list[Eqn] = []
        self.changed = False
        self.source_info = None

    def read(self, atom):
        while type(atom) is Var and atom in self.subst:
            atom = self.subst[atom]
        return atom

    def keep(self, eqn: Eqn, inputs) -> None:
        """Emit `eqn` with (possibly substituted) inputs."""
        if inputs is not eqn.inputs and any(
                a is not b for a, b in zip(inputs, eqn.inputs, strict=True)):
            eqn = Eqn(eqn.prim, inputs, eqn.outputs, eqn.params, eqn.source_info)
        self.eqns.append(eqn)
        for v in eqn.outputs:
            self.defs[v] = eqn

    def emit(self, prim: Primitive, inputs, params: dict) -> Var:
        """A new equation; its output type comes from the primitive's shape rule."""
        aval = prim.shape_rule(*[a.aval for a in inputs], **params)
        out = Var(aval)
        eqn = Eqn(prim, inputs, (out,), params, self.source_info)
        self.eqns.append(eqn)
        self.defs[out] = eqn
        self.changed = True
        return out

    def replace(self, old: Var, atom) -> None:
        """Every later use of `old` reads `atom` (same aval, or a 0-d atom that is
        broadcast to old's shape)."""
        if atom.aval != old.aval:
            assert atom.aval.shape == () and atom.aval.dtype == old.aval.dtype, (old, atom)
            atom = self.emit(broadcast_in_dim_p, (atom,),
                             {"shape": old.aval.shape, "broadcast_dimensions": ()})
        self.subst[old] = atom
        self.changed = True

    def fits(self, old: Var, atom) -> bool:
        """Can `atom` stand for `old` (possibly through a broadcast)?"""
        return atom.aval == old.aval or (atom.aval.shape == ()
                                         and atom.aval.dtype == old.aval.dtype)

    def uniform(self, atom):
        """The scalar value of every element of `atom`, when it is a literal or a
        broadcast of one; else None."""
        while True:
            if type(atom) is Literal:
                return atom.val
            eqn = self.defs.get(atom)
            if eqn is None or eqn.prim is not broadcast_in_dim_p:
                return None
            atom = eqn.inputs[0]

    def constant(self, value, aval: ShapedArray):
        """A literal (0-d) or a broadcast literal holding `value` everywhere."""
        lit = Literal(value, ShapedArray((), aval.dtype))
        if aval.shape == ():
            return lit
        return self.emit(broadcast_in_dim_p, (lit,),
                         {"shape": aval.shape, "broadcast_dimensions": ()})

    def run(self, rewrite: Callable[["_Rewriter", Eqn, tuple], bool]) -> Jaxpr:
        subst, read = self.subst, self.read
        for eqn in self.jaxpr.eqns:
            inputs = tuple(read(a) for a in eqn.inputs) if subst else eqn.inputs
            self.source_info = eqn.source_info
            if not rewrite(self, eqn, inputs):
                self.keep(eqn, inputs)
        outvars = [self.read(v) for v in self.jaxpr.outvars]
        if not self.changed:
            return self.jaxpr
        return Jaxpr(self.jaxpr.constvars, self.jaxpr.invars, self.eqns, outvars)


def _use_counts(jaxpr: Jaxpr) -> dict:
    uses: dict = {}
    for eqn in jaxpr.eqns:
        for a in eqn.inputs:
            if type(a) is Var:
                uses[a] = uses.get(a, 0) + 1
    for a in jaxpr.outvars:
        if type(a) is Var:
            uses[a] = uses.get(a, 0) + 1
    return uses


# ---------------------------------------------------------------------------
# dead-code elimination
# ---------------------------------------------------------------------------

# dce_jaxpr is in util.py (structure.py needs it too); imported above.


# ---------------------------------------------------------------------------
# common-subexpression elimination
# ---------------------------------------------------------------------------

def _atom_key(atom):
    if type(atom) is Literal:
        # bytes, not values: 0.0 and -0.0 (and NaN payloads) stay distinct
        return ("lit", atom.aval.dtype, atom.val.tobytes())
    return atom


def _order(key) -> tuple:
    return (1, key[2]) if type(key) is tuple else (0, id(key))


def cse_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Common-subexpression elimination: an equation with the same primitive, the
    same params and the same inputs as an earlier one reuses its outputs (operands
    of primitives declared `commutative=True` -- add, mul, max, min, eq, ne, and,
    or, xor -- in any order).

    Preserves: every value exactly (primitives are pure functions of their inputs
    and params)."""
    seen: dict = {}

    def rewrite(rw: _Rewriter, eqn: Eqn, inputs) -> bool:
        if eqn.prim.effectful:     # two prints of one value print twice
            return False
        try:
            params = tuple((k, _param_key(v)) for k, v in eqn.params.items()) \
                if eqn.params else ()
            keys = tuple(_atom_key(a) for a in inputs)
            if eqn.prim.commutative:
                # mul a b and mul b a are one value: order operands canonically
                keys = tuple(sorted(keys, key=_order))
            key = (eqn.prim, keys, params)
            hash(key)
        except TypeError:          # an unhashable param: leave the equation alone
            return False
        prev = seen.get(key)
        if prev is None:
            seen[key] = eqn.outputs
            return False
        for old, new in zip(eqn.outputs, prev, strict=True):
            rw.replace(old, new)
        return True

    return _Rewriter(jaxpr).run(rewrite)


# ---------------------------------------------------------------------------
# constant folding
# ---------------------------------------------------------------------------

def _uniform_of(value: np.ndarray):
    """The scalar if every element of `value` has the same bits, else None."""
    value = np.asarray(value)
    if value.size == 0:
        return None
    first = value.reshape(-1)[0]
    if np.full(value.shape, first, value.dtype).tobytes() != np.ascontiguousarray(value).tobytes():
        return None
    return first


def _fold(eqn: Eqn, values: list):
    """The uniform value of `eqn`'s output given uniform input values, or None."""
    prim = eqn.prim
    out_aval = eqn.outputs[0].aval
    if prim.value_preserving:   # every output element is an input element
        return values[0]
    if prim is reduce_sum_p:
        n = eqn.inputs[0].aval.size // max(out_aval.size, 1)
        if eqn.inputs[0].aval.size > _FOLD_MAX_SIZE:
            # value * n: the exact sum; np.sum of n copies may round differently
            return np.asarray(np.multiply(values[0], out_aval.dtype.type(n)),
                              dtype=out_aval.dtype)[()]
    with np.errstate(all="ignore"):
        if prim.kind == "elementwise":  # acts per element; a 0-d operand on every one
            out = prim.impl(*[np.asarray(v) for v in values], **eqn.params)
            out = np.asarray(out)
            if out.dtype != out_aval.dtype:
                return None
            return out.reshape(-1)[0] if out.size == 1 else None
        if any(a.aval.size > _FOLD_MAX_SIZE for a in eqn.inputs) or \
                out_aval.size > _FOLD_MAX_SIZE:
            return None
        arrays = [np.full(a.aval.shape, v, a.aval.dtype) for a, v in zip(eqn.inputs, values)]
        out = np.asarray(prim.impl(*arrays, **eqn.params))
    if out.dtype != out_aval.dtype or out.shape != out_aval.shape:
        return None
    return _uniform_of(out)


def fold_constants_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Constant folding: an equation whose inputs are all literals or broadcasts of
    literals is evaluated now; a 0-d result becomes a literal that replaces the
    variable, a uniform array result a `broadcast_in_dim` of a literal.

    Preserves: every value exactly, except that `reduce_sum` of a constant array
    larger than 4096 elements folds to value * n (the exact sum, where NumPy's
    pairwise sum may differ in the last bit).  Constvars are never folded (they
    are per-call values); results that are not uniform, of a non-numeric dtype,
    or of primitives holding sub-programs (loops are not run at rewrite time) are
    left alone, and equations without inputs (iota) are folded only when small."""

    def rewrite(rw: _Rewriter, eqn: Eqn, inputs) -> bool:
        prim = eqn.prim
        if prim.multiple_results or prim.impl is None:
            return False
        if eqn.outputs[0].aval.dtype.kind not in "biufc" or any(
                isinstance(v, (Jaxpr, ClosedJaxpr)) for v in eqn.params.values()):
            return False              # opaque values (tapes); loops are not run at rewrite
        if not inputs and eqn.outputs[0].aval.size > _FOLD_MAX_SIZE:
            return False              # (iota: folded only when small and uniform)
        values = [rw.uniform(a) for a in inputs]
        if any(v is None for v in values):
            return False
        out = eqn.outputs[0]
        if prim is broadcast_in_dim_p and type(inputs[0]) is Literal and \
                out.aval.shape != ():
            return False                     # already the canonical form
        try:
            value = _fold(eqn, values)
        except Exception:  # noqa: BLE001 - an impl that rejects a constant: keep it
            return False
        if value is None:
            return False
        rw.replace(out, rw.constant(value, out.aval))
        return True

    return _Rewriter(jaxpr).run(rewrite)


# ---------------------------------------------------------------------------
# algebraic cleanup and zero propagation
# ---------------------------------------------------------------------------

def _is(value, target) -> bool:
    return value is not None and bool(value == target)


class _Match:
    """One equation met by `algebraic_jaxpr`: its (substituted) inputs `ins`, output
    `out`, `params`, the uniform value of each input (`u`, None when not uniform),
    and the means to build a replacement."""

    def __init__(self, rw: _Rewriter, eqn: Eqn, inputs, uses: dict):
        self.rw, self.eqn, self.ins, self.uses = rw, eqn, inputs, uses
        self.out = eqn.outputs[0]
        self.params = eqn.params
        self._u = None

    @property
    def u(self) -> list:
        if self._u is None:
            self._u = [self.rw.uniform(a) for a in self.ins]
        return self._u

    def var(self, i: int):
        """Input i when it is a variable (not a literal), else None."""
        return self.ins[i] if type(self.ins[i]) is Var else None

    def inner(self, i: int, prim: Primitive) -> Eqn | None:
        """The equation of `prim` that defines input i, if one does."""
        eqn = self.rw.defs.get(self.ins[i]) if type(self.ins[i]) is Var else None
        return eqn if eqn is not None and eqn.prim is prim else None

    def zero_array(self, i: int) -> bool:
        """Input i is a broadcast zero (not a literal 0 of the user's code)."""
        return type(self.ins[i]) is Var and _is(self.rw.uniform(self.ins[i]), 0)

    def emit(self, prim: Primitive, inputs, params=None) -> Var:
        return self.rw.emit(prim, tuple(inputs), params or {})

    def filled(self, value):
        """The output's aval filled with `value`."""
        return self.rw.constant(self.out.aval.dtype.type(value), self.out.aval)

    def same_aval(self) -> bool:
        return self.ins[0].aval == self.out.aval


def _same_operands(m: _Match) -> bool:
    """select(p, a, a): the same variable, or two equal uniform values."""
    _, a, b = m.ins
    _, ua, ub = m.u
    return a is b or (ua is not None and ub is not None and a.aval == b.aval
                      and ua.tobytes() == ub.tobytes())


def _composed_transpose(m: _Match):
    """transpose(transpose(x)) -> one transpose, or x when they cancel."""
    inner = m.inner(0, transpose_p)
    if inner is None:
        return None
    p1, p2 = inner.params["permutation"], m.params["permutation"]
    composed = tuple(p1[i] for i in p2)
    if composed == tuple(range(len(composed))):
        return inner.inputs[0]
    return m.emit(transpose_p, (inner.inputs[0],), {"permutation": composed})


def _swapped_dot(m: _Match):
    """transpose(dot_general(a, b)) that swaps the free blocks -> dot_general(b, a)."""
    dot = m.inner(0, dot_general_p)
    if dot is None or m.uses.get(m.ins[0], 0) != 1:
        return None
    (cx, cy), (bx, by) = dot.params["dimension_numbers"]
    if bx or by:
        return None
    a, b = dot.inputs
    n_a = a.aval.ndim - len(cx)
    n_b = b.aval.ndim - len(cy)
    swap = tuple(range(n_a, n_a + n_b)) + tuple(range(n_a))
    if m.params["permutation"] != swap:
        return None
    return m.emit(dot.prim, (b, a), {**dot.params, "dimension_numbers": ((cy, cx), ((), ()))})


def _placed(m: _Match, atom, dims: tuple, shape: tuple):
    """`atom` with its axis k at axis dims[k] of `shape` (a transpose when dims are not
    increasing, then a broadcast along the other axes)."""
    perm = tuple(sorted(range(len(dims)), key=dims.__getitem__))
    if perm != tuple(range(len(dims))):
        atom = m.emit(transpose_p, (atom,), {"permutation": perm})
    if atom.aval.shape == tuple(shape):
        return atom
    return m.emit(broadcast_in_dim_p, (atom,),
                  {"shape": tuple(shape), "broadcast_dimensions": tuple(sorted(dims))})


def _reshaped_broadcast(m: _Match):
    """reshape(broadcast_in_dim(x)) where the broadcast repeats nothing (it only adds
    axes of size 1, so the elements keep their order) -> reshape(x), or x itself."""
    b = m.inner(0, broadcast_in_dim_p)
    if b is None or type(b.inputs[0]) is not Var or b.inputs[0].aval.size != m.out.aval.size:
        return None
    if b.inputs[0].aval == m.out.aval:
        return b.inputs[0]
    return m.emit(reshape_p, b.inputs, m.params)


def _squeezed(m: _Match, atom, axes):
    """atom without its (size-1) `axes`."""
    if not axes:
        return atom
    shape = tuple(s for i, s in enumerate(atom.aval.shape) if i not in axes)
    return m.emit(reshape_p, (atom,), {"new_sizes": shape})


def _batched_outer(m: _Match):
    """dot_general with batch dimensions and nothing contracted (or only axes of size
    1) -> a product of two broadcasts (one multiplication per output element, as the
    dot forms; it fuses into a loop where the batched BLAS path would make one call
    per batch element).  A plain outer product, and a matrix product of operands of
    rank <= 2 (one BLAS call), are left as they are."""
    (cx, cy), (bx, by) = m.params["dimension_numbers"]
    x, y = m.ins
    if not (cx or bx) or type(x) is not Var or type(y) is not Var \
            or any(x.aval.shape[a] != 1 for a in cx) \
            or not bx and x.aval.ndim <= 2 and y.aval.ndim <= 2 \
            or not np.issubdtype(m.out.aval.dtype, np.inexact):
        return None
    if cx:
        keep_x = [a for a in range(x.aval.ndim) if a not in cx]
        keep_y = [a for a in range(y.aval.ndim) if a not in cy]
        bx, by = tuple(keep_x.index(a) for a in bx), tuple(keep_y.index(a) for a in by)
        x, y = _squeezed(m, x, cx), _squeezed(m, y, cy)
    nb = len(bx)
    fx = [a for a in range(x.aval.ndim) if a not in bx]
    fy = [a for a in range(y.aval.ndim) if a not in by]
    px, py = [0] * x.aval.ndim, [0] * y.aval.ndim
    for k, (a, b) in enumerate(zip(bx, by)):
        px[a], py[b] = k, k
    for t, a in enumerate(fx):
        px[a] = nb + t
    for t, b in enumerate(fy):
        py[b] = nb + len(fx) + t
    shape = m.out.aval.shape
    return m.emit(mul_p, (_placed(m, x, tuple(px), shape), _placed(m, y, tuple(py), shape)))


def _transposed_operand(m: _Match, atom, perm: tuple):
    """transpose(atom, perm) for an operand that is a broadcast (-> a broadcast of the
    transposed, smaller source), a transpose (-> one transpose) or a 0-d value (-> itself)."""
    if atom.aval.shape == ():
        return atom
    eqn = m.rw.defs.get(atom)
    if eqn is not None and eqn.prim is broadcast_in_dim_p:
        dims = eqn.params["broadcast_dimensions"]
        return _placed(m, eqn.inputs[0], tuple(perm.index(d) for d in dims), m.out.aval.shape)
    if eqn is not None and eqn.prim is transpose_p:
        inner = eqn.params["permutation"]
        composed = tuple(inner[i] for i in perm)
        if composed == tuple(range(len(composed))):
            return eqn.inputs[0]
        return m.emit(transpose_p, eqn.inputs, {"permutation": composed})
    return None


def _transposed_broadcast(m: _Match):
    """transpose(broadcast_in_dim(x)) -> a broadcast of x (transposed if need be)."""
    return _transposed_operand(m, m.ins[0], m.params["permutation"]) \
        if m.inner(0, broadcast_in_dim_p) is not None else None


def _transposed_elementwise(m: _Match):
    """transpose(op(a, b, ...)) for an elementwise op used once, whose operands are all
    broadcasts, transposes or 0-d -> op of the transposed operands (no pass over the
    full array to transpose it)."""
    x = m.var(0)
    eqn = m.rw.defs.get(x) if x is not None else None
    if eqn is None or eqn.prim.kind != "elementwise" or eqn.prim.multiple_results or \
            m.uses.get(x, 0) != 1 or eqn.outputs[0] is not x:
        return None
    perm = m.params["permutation"]
    if any(type(a) is not Literal and a.aval.shape != () and a.aval.shape != x.aval.shape
           for a in eqn.inputs):
        return None
    ops = [_transposed_operand(m, a, perm) for a in eqn.inputs]
    if any(o is None for o in ops):
        return None
    return m.emit(eqn.prim, ops, eqn.params)


# The rewrites of `algebraic_jaxpr`, tried in order on each equation of the primitive:
# (primitive, pattern, rewrite), where the rewrite returns the atom that replaces the
# output (a 0-d atom is broadcast back to the output's shape) or None.  "c" is a
# literal or a broadcast literal; "zeros" a broadcast 0.
_REWRITES: list[tuple[Primitive, str, Callable[[_Match], Any]]] = [
    (add_p, "x + 0 -> x", lambda m: m.ins[0] if _is(m.u[1], 0) else None),
    (add_p, "0 + x -> x", lambda m: m.ins[1] if _is(m.u[0], 0) else None),
    (sub_p, "x - 0 -> x", lambda m: m.ins[0] if _is(m.u[1], 0) else None),
    (sub_p, "0 - x -> neg x", lambda m: m.emit(neg_p, m.ins[1:])
     if _is(m.u[0], 0) and m.ins[1].aval == m.out.aval else None),
    (mul_p, "x * 1 -> x", lambda m: m.ins[0] if _is(m.u[1], 1) else None),
    (mul_p, "1 * x -> x", lambda m: m.ins[1] if _is(m.u[0], 1) else None),
    (mul_p, "x * zeros -> zeros", lambda m: m.filled(0)
     if m.zero_array(0) or m.zero_array(1) else None),
    (div_p, "x / 1 -> x", lambda m: m.ins[0] if _is(m.u[1], 1) else None),
    (neg_p, "neg(neg x) -> x", lambda m: m.inner(0, neg_p) and m.inner(0, neg_p).inputs[0]),
    (select_p, "select(c, a, b) -> a or b", lambda m: None if m.u[0] is None
     else m.ins[1] if bool(m.u[0]) else m.ins[2]),
    (select_p, "select(p, a, a) -> a", lambda m: m.ins[1] if _same_operands(m) else None),
    (select_p, "select(p, 1, 0) -> float(p)", lambda m: m.emit(
        convert_element_type_p, m.ins[:1], {"new_dtype": m.out.aval.dtype})
     if _is(m.u[1], 1) and _is(m.u[2], 0) and m.ins[0].aval.shape == m.out.aval.shape
     and np.issubdtype(m.out.aval.dtype, np.inexact) else None),
    # x**2 -> x*x: the impl and the kernel compute exactly that, and CSE can then share
    # it with the x*x a tanh or square rule writes; NumPy: inf**0 == nan**0 == 1
    (integer_pow_p, "x**1 -> x", lambda m: m.ins[0] if m.params["y"] == 1 else None),
    (integer_pow_p, "x**0 -> ones", lambda m: m.filled(1) if m.params["y"] == 0 else None),
    (integer_pow_p, "x**2 -> x*x", lambda m: m.emit(mul_p, (m.ins[0], m.ins[0]))
     if m.params["y"] == 2 else None),
    (convert_element_type_p, "convert to the same dtype -> x",
     lambda m: m.ins[0] if m.same_aval() else None),
    # identities (a 0-d broadcast of a literal stays until folding: `x * it` is zeros)
    (reshape_p, "reshape to the same shape -> x", lambda m: m.var(0) if m.same_aval() else None),
    (broadcast_in_dim_p, "broadcast to the same shape -> x",
     lambda m: m.var(0) if m.same_aval() else None),
    (squeeze_p, "squeeze of no dimension -> x", lambda m: m.var(0) if m.same_aval() else None),
    (reduce_sum_p, "sum over no axis -> x", lambda m: m.var(0) if m.same_aval() else None),
    (slice_p, "slice of everything -> x", lambda m: m.var(0) if m.same_aval() and all(
        s == 1 for s in m.params.get("strides") or ()) else None),
    (pad_p, "pad by nothing -> x", lambda m: m.var(0) if m.same_aval() and all(
        tuple(c) == (0, 0, 0) for c in m.params["padding_config"]) else None),
    (transpose_p, "identity transpose -> x", lambda m: m.var(0)
     if m.params["permutation"] == tuple(range(m.out.aval.ndim)) else None),
    (rev_p, "rev of no dimension -> x", lambda m: None if m.params["dimensions"] else m.var(0)),
    (reshape_p, "reshape(reshape x) -> one reshape", lambda m: m.inner(0, reshape_p) and m.emit(
        reshape_p, m.inner(0, reshape_p).inputs[:1], m.params)),
    # a broadcast that only inserts axes of size 1 keeps the elements' order
    (reshape_p, "reshape(broadcast x adding size-1 axes) -> reshape x", _reshaped_broadcast),
    (transpose_p, "transpose(transpose x) -> one transpose", _composed_transpose),
    (transpose_p, "transpose(dot_general(a, b)) swapping the free blocks -> "
     "dot_general(b, a)", _swapped_dot),
    (transpose_p, "transpose(broadcast x) -> broadcast of x", _transposed_broadcast),
    (transpose_p, "transpose(op(broadcasts)) -> op(transposed broadcasts)",
     _transposed_elementwise),
    (dot_general_p, "dot_general with a zeros operand -> zeros",
     lambda m: m.filled(0) if m.zero_array(0) or m.zero_array(1) else None),
    (dot_general_p, "batched outer product -> mul of broadcasts", _batched_outer),
]

_REWRITES_OF: dict[Primitive, list] = {}
for _prim, _pattern, _fn in _REWRITES:
    _REWRITES_OF.setdefault(_prim, []).append(_fn)


def _literal_operands(rw: _Rewriter, eqn: Eqn, inputs, u: list) -> bool:
    """A broadcast literal operand of an elementwise primitive -> the 0-d literal, one
    operand at a time while another operand still gives the output its shape."""
    new = list(inputs)
    for i, (a, v) in enumerate(zip(inputs, u, strict=True)):
        if type(a) is not Var or v is None:
            continue
        trial = new[:i] + [Literal(v, ShapedArray((), a.aval.dtype))] + new[i + 1:]
        try:
            ok = eqn.prim.shape_rule(*[t.aval for t in trial], **eqn.params) == \
                eqn.outputs[0].aval
        except Exception:  # noqa: BLE001 - the primitive wants full operands
            ok = False
        if ok:
            new = trial
    if all(a is b for a, b in zip(new, inputs)):
        return False
    rw.keep(eqn, tuple(new))
    rw.changed = True
    return True


def algebraic_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Algebraic cleanup and zero propagation: the rewrites of the table `_REWRITES`,
    then (elementwise primitives) broadcast literal operands -> the literal itself.

    Rewrites (c is a literal or a broadcast literal; "zeros" a broadcast 0):
      x*1, 1*x, x+0, 0+x, x-0, x/1 -> x;  0-x -> neg x;  neg(neg x) -> x
      x * zeros, dot_general with a zeros operand -> zeros
      select(c, a, b) -> a or b;  select(p, a, a) -> a;  select(p, 1, 0) -> float(p)
      a broadcast literal operand of an elementwise primitive -> the literal itself
        (binary elementwise primitives take 0-d operands)
      x**2 -> x*x;  x**1 -> x;  x**0 -> ones
      convert_element_type to the same dtype, reshape/broadcast to the same shape,
      identity transpose / squeeze / rev / reduce_sum / slice / pad -> x
      transpose(transpose(x)) -> one transpose;  reshape(reshape(x)) -> one reshape
      reshape(broadcast x that only adds size-1 axes) -> reshape x
      transpose(dot_general(a, b)) swapping the free blocks -> dot_general(b, a)
      dot_general with batch dimensions, or of an operand of rank > 2, that contracts
        nothing or only axes of size 1 -> mul of broadcasts
      transpose(broadcast x) -> broadcast of x (transposed);  transpose of an
        elementwise op (used once) of broadcasts -> the op of transposed broadcasts

    Preserves: the signature, the avals of the outputs (a 0-d replacement is
    broadcast back to the output's shape) and every value, up to the rounding of
    a matrix product computed as dot_general(b, a) instead of a transpose of
    dot_general(a, b), with two deliberate exceptions.  (1) x * zeros is zeros even where x is inf or nan, as with JAX's
    symbolic zeros; only a zero that is a *broadcast* (the form derivative
    programs instantiate, 0-d included) triggers it, while a literal 0 written in
    the user's code (`x * 0.0`) keeps IEEE semantics.  (2) The sign of a zero may
    change (x + 0 -> x turns -0.0 + 0.0 = 0.0 into -0.0)."""
    uses = _use_counts(jaxpr)

    def rewrite(rw: _Rewriter, eqn: Eqn, inputs) -> bool:
        prim = eqn.prim
        if prim.multiple_results:
            return False
        m = _Match(rw, eqn, inputs, uses)
        for fn in _REWRITES_OF.get(prim, ()):
            atom = fn(m)
            if atom is not None and rw.fits(m.out, atom):
                rw.replace(m.out, atom)
                return True
        if prim.kind == "elementwise" and len(inputs) >= 2:
            return _literal_operands(rw, eqn, inputs, m.u)
        return False

    return _Rewriter(jaxpr).run(rewrite)


# ---------------------------------------------------------------------------
# sub-programs
# ---------------------------------------------------------------------------

def _simplified_param(value):
    """`value` with every Jaxpr / ClosedJaxpr in it simplified (same object if none
    changed)."""
    if isinstance(value, Jaxpr):
        return simplify_jaxpr(value)
    if isinstance(value, ClosedJaxpr):
        inner = simplify_jaxpr(value.jaxpr)
        return value if inner is value.jaxpr else ClosedJaxpr(inner, value.consts)
    if isinstance(value, tuple) and any(isinstance(v, (Jaxpr, ClosedJaxpr, tuple))
                                        for v in value):
        new = tuple(_simplified_param(v) for v in value)
        return value if all(a is b for a, b in zip(new, value)) else new
    return value


def subjaxprs_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Simplify the sub-programs held in params (cond branches, loop bodies,
    checkpoint and custom-rule jaxprs) with `simplify_jaxpr`.

    Preserves: each sub-program's signature and outputs (what simplify_jaxpr
    preserves), hence every equation's meaning and output types."""
    def rewrite(rw: _Rewriter, eqn: Eqn, inputs) -> bool:
        if not eqn.params:
            return False
        params = {k: _simplified_param(v) for k, v in eqn.params.items()}
        if all(params[k] is v for k, v in eqn.params.items()):
            return False
        rw.keep(Eqn(eqn.prim, inputs, eqn.outputs, params, eqn.source_info), inputs)
        rw.changed = True
        return True

    return _Rewriter(jaxpr).run(rewrite)


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------

# algebraic runs before fold: a 0-d zero that a derivative instantiated is still a
# broadcast (`x * zeros` -> zeros) until folding turns it into a literal 0
def diagonal_pass(jaxpr: Jaxpr) -> Jaxpr:
    """Products with identity-derived diagonals become scalings (structure.py)."""
    return diagonal_jaxpr(jaxpr)


PASSES: list[tuple[str, Callable[[Jaxpr], Jaxpr]]] = [
    ("algebraic", algebraic_jaxpr),
    ("fold", fold_constants_jaxpr),
    ("cse", cse_jaxpr),
    ("dce", dce_jaxpr),
    ("diagonal", diagonal_pass),
    ("subjaxprs", subjaxprs_jaxpr),
]

_MAX_ROUNDS = 6


def simplify_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Run every pass in PASSES, round after round, until none changes the program
    (at most a few rounds; each pass is one linear walk).

    Preserves what each pass preserves: the signature, the output avals and the
    outputs' values.
    >>> simplify_jaxpr(make_jaxpr(lambda x: x * 1.0 + 0.0)(2.0).jaxpr)  # no equations
    """
    show = os.environ.get("FUNGRAD_PRINT_PASSES") == "1"
    for _ in range(_MAX_ROUNDS):
        start = jaxpr
        for name, fn in PASSES:
            before = jaxpr
            jaxpr = fn(jaxpr)
            if show:
                print(f"--- after {name}: unchanged" if jaxpr is before else
                      f"--- after {name} ({len(jaxpr.eqns)} equations)\n{jaxpr}")
        if jaxpr is start:
            break
    return jaxpr
