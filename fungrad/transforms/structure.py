"""Basis structure: propagate (batched) diagonal arrays through a jaxpr.

`jacrev`/`jacfwd` push an identity basis (built from `iota`, so it is visibly an
identity) through the batched derivative.  After elementwise operations the
batch is still diagonal, and a matrix product with a diagonal is a row or
column scaling.  Under `vmap` the basis is broadcast along the batch axis and
the diagonal sits in two axes of a 3-d (or higher) array, so the pass tracks,
for every value X known to be a diagonal in two equal-sized axes p < q,

    X[..., i_p, ..., i_q, ...] = (i_p == i_q) * v[..., i_p, ...]    (v: X without axis q)

the array v (or "all ones", for the identity itself), and rewrites

    dot_general(X, A) contracting one of the diagonal axes  ->  v * A, broadcast
        (a product with a batch axis added when other axes are contracted too)
    reduce_sum(X) over one or both diagonal axes            ->  v (summed further)

while passing the structure through `broadcast_in_dim`, `transpose`, `neg`, `reshape`
that only adds or drops axes of size 1,
`convert_element_type`, `reduce_sum` over other axes, `add`/`sub` of two such
diagonals, `select` between one and zeros, and `mul` by anything whose diagonal
can be read without forming it (a scalar, another such diagonal, a broadcast
that leaves one of p, q alone).  So `jacobian(lambda x: tanh(A @ x))` costs one
scaling of A instead of an n x n x n matrix product, with or without `vmap`.
Equations made dead by the rewrite are removed by DCE.

Preserves: the value of every output, up to the IEEE special cases of the dense
product (0 * inf is not formed) and the rounding of a sum that also ran over
other axes: the same products are formed, minus the multiplications by the
exact zeros of the identity.
"""
from __future__ import annotations

import numpy as np

from ..core import Jaxpr, Literal, Var
from ..primitives.base import (broadcast_in_dim, broadcast_in_dim_p, convert_element_type,
                               convert_element_type_p, full, reduce_sum, reduce_sum_p, reshape,
                               reshape_p, transpose, transpose_p)
from ..primitives.elementwise import (add, add_p, eq, eq_p, mul, mul_p, neg, neg_p, select, select_p,
                                      sub, sub_p)
from ..primitives.linalg import dot_general, dot_general_p
from ..primitives.shape import iota, iota_p
from ..tracing import aval_of
from .util import build_jaxpr, dce_jaxpr, read_atom, rebinding

__all__ = ["diagonal_jaxpr"]

_ONES = "ones"   # the v of an identity (made only if needed)


def _drop(seq, i):
    return tuple(seq[:i]) + tuple(seq[i + 1:])


def _place(x, shape, dims):
    """x with its axis k at axis dims[k] of `shape`: a transpose where dims are not
    increasing, then a broadcast along the other axes (each skipped when trivial)."""
    perm = sorted(range(len(dims)), key=dims.__getitem__)
    return broadcast_in_dim(transpose(x, perm), shape, sorted(dims))


def _is_zero(atom, bcast) -> bool:
    """A literal 0 (0-d) or a broadcast of one."""
    while type(atom) is Var and atom in bcast and bcast[atom][2] is not None:
        atom = bcast[atom][2]
    return type(atom) is Literal and not np.any(atom.val)


def diagonal_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Rewrite products and sums of diagonals built from an iota identity."""
    prims = {e.prim for e in jaxpr.eqns}
    if iota_p not in prims or eq_p not in prims:
        return jaxpr

    producer: dict = {}
    for eqn in jaxpr.eqns:
        for o in eqn.outputs:
            producer[o] = eqn

    def iota_dim(atom):
        eqn = producer.get(atom) if isinstance(atom, Var) else None
        if eqn is not None and eqn.prim is iota_p:
            return eqn.params["dimension"]
        return None

    changed = []

    def run(*args):
        env: dict = {}
        diag: dict = {}       # old var -> (v (new value) or _ONES, p, q)
        mask: dict = {}       # old var that is the boolean identity in axes (p, q)
        bcast: dict = {}      # old var -> (new source value, broadcast_dimensions, old source)
        for v, x in zip(jaxpr.constvars + jaxpr.invars, args, strict=True):
            env[v] = x

        def vshape(aval, q):
            return _drop(aval.shape, q)

        def vec(old):
            v, _, q = diag[old]
            return full(vshape(old.aval, q), 1, old.aval.dtype) if v is _ONES else v

        def times(v, w, shape):
            """v * w for v (or _ONES) of `shape` and w of that shape or 0-d."""
            if v is not _ONES:
                return mul(v, w)
            return broadcast_in_dim(w, shape, ()) if aval_of(w).shape == () else w

        def diagonal_of(atom, p, q, shape):
            """The entries atom[..., i, ..., i, ...] (axes p, q), as an array of shape
            minus q (or a 0-d value: the same everywhere), or None if it would take
            more than a broadcast to read them."""
            if type(atom) is Literal or atom.aval.shape == ():
                return read_atom(env, atom)
            if atom in diag and diag[atom][1:] == (p, q):
                return diag[atom][0]
            if atom in bcast:
                src, dims, _ = bcast[atom]
                sshape = aval_of(src).shape
                stretched = [k for k, a in enumerate(dims) if sshape[k] == 1 != shape[a]]
                if stretched:     # axes of size 1 that the broadcast repeats: drop them
                    src = reshape(src, [k for i, k in enumerate(sshape) if i not in stretched])
                    dims = [a for i, a in enumerate(dims) if i not in stretched]
                if p in dims and q in dims:
                    return None
                out = [p if d == q else d - (d > q) for d in dims]
                return _place(src, _drop(shape, q), out)
            return None

        with rebinding() as rb:
            for eqn in jaxpr.eqns:
                rb.at(eqn)
                prim, ins, (out,) = eqn.prim, eqn.inputs, (eqn.outputs + (None,))[:1]
                new = None
                d = [diag.get(a) if type(a) is Var else None for a in ins]
                if prim is eq_p:
                    a, b = iota_dim(ins[0]), iota_dim(ins[1])
                    shape = out.aval.shape
                    if a is not None and b is not None and a != b and \
                            ins[0].aval.shape == ins[1].aval.shape == shape and \
                            shape[a] == shape[b]:
                        mask[out] = (min(a, b), max(a, b))
                elif prim is convert_element_type_p and ins[0] in mask:
                    diag[out] = (_ONES,) + mask[ins[0]]
                elif prim is convert_element_type_p and d[0]:
                    v, p, q = d[0]
                    diag[out] = (v if v is _ONES else convert_element_type(
                        v, eqn.params["new_dtype"]), p, q)
                elif prim is broadcast_in_dim_p:
                    dims, shape = eqn.params["broadcast_dimensions"], eqn.params["shape"]
                    if d[0]:
                        v, p, q = d[0]
                        p2, q2 = dims[p], dims[q]
                        if shape[p2] == ins[0].aval.shape[p] and shape[q2] == ins[0].aval.shape[q]:
                            vdims = [dims[a] - (dims[a] > q2)
                                     for a in range(ins[0].aval.ndim) if a != q]
                            diag[out] = (v if v is _ONES else broadcast_in_dim(
                                v, _drop(shape, q2), vdims), p2, q2)
                    bcast[out] = (read_atom(env, ins[0]), dims,
                                  ins[0] if ins[0].aval.shape == () else None)
                elif prim is mul_p and (d[0] or d[1]):
                    a, b = ins if d[0] else ins[::-1]
                    v, p, q = diag[a]
                    w = diagonal_of(b, p, q, out.aval.shape)
                    if w is not None and a.aval.shape == out.aval.shape:
                        diag[out] = (times(v, w, vshape(out.aval, q)) if w is not _ONES
                                     else v, p, q)
                elif prim in (add_p, sub_p) and d[0] and d[1] and d[0][1:] == d[1][1:] and \
                        ins[0].aval.shape == ins[1].aval.shape:
                    _, p, q = d[0]
                    fn = add if prim is add_p else sub
                    diag[out] = (fn(vec(ins[0]), vec(ins[1])), p, q)
                elif prim is select_p and (d[1] or d[2]):
                    p, q = (d[1] or d[2])[1:]
                    shape = out.aval.shape
                    ok = all(x is not None and x[1:] == (p, q) and a.aval.shape == shape
                             or _is_zero(a, bcast) for a, x in zip(ins[1:], d[1:]))
                    pred = diagonal_of(ins[0], p, q, shape) if ok else None
                    if pred is not None:
                        pred = broadcast_in_dim(pred, vshape(out.aval, q), ()) \
                            if aval_of(pred).shape == () else pred
                        vs = [vec(a) if x is not None else full((), 0, out.aval.dtype)
                              for a, x in zip(ins[1:], d[1:])]
                        diag[out] = (select(pred, *vs), p, q)
                elif prim is neg_p and d[0]:
                    _, p, q = d[0]
                    diag[out] = (neg(vec(ins[0])), p, q)
                elif prim is transpose_p and d[0]:
                    v, p, q = d[0]
                    perm = eqn.params["permutation"]
                    p2, q2 = sorted((perm.index(p), perm.index(q)))
                    old_labels = [a for a in range(len(perm)) if a != q]
                    new_labels = [p if perm[k] == q else perm[k]
                                  for k in range(len(perm)) if k != q2]
                    diag[out] = (v if v is _ONES else transpose(
                        v, [old_labels.index(lbl) for lbl in new_labels]), p2, q2)
                elif prim is reshape_p and d[0]:
                    # a reshape that only inserts or removes axes of size 1
                    v, p, q = d[0]
                    ins_big = [a for a, k in enumerate(ins[0].aval.shape) if k != 1]
                    out_big = [a for a, k in enumerate(out.aval.shape) if k != 1]
                    if [ins[0].aval.shape[a] for a in ins_big] == \
                            [out.aval.shape[a] for a in out_big] and p in ins_big:
                        p2, q2 = out_big[ins_big.index(p)], out_big[ins_big.index(q)]
                        diag[out] = (v if v is _ONES else reshape(
                            v, _drop(out.aval.shape, q2)), p2, q2)
                elif prim is reduce_sum_p and d[0]:
                    new = _reduced(ins[0], d[0], eqn.params["axes"], vec, diag, out)
                elif prim is dot_general_p and (d[0] or d[1]):
                    new = _dot(ins, d, eqn.params["dimension_numbers"], out, env)
                if new is None and out in diag and any(
                        x is not None and x[0] is not _ONES for x in d):
                    # the dense value, if anything still reads it, from v: one product
                    # instead of the chain of products and sums that formed it
                    new = _materialized(out, diag[out])
                if new is not None:
                    changed.append(eqn)
                if new is None:
                    outs = eqn.prim.bind(*[read_atom(env, a) for a in ins], **eqn.params)
                    if eqn.prim.multiple_results:
                        for v, o in zip(eqn.outputs, outs, strict=True):
                            env[v] = o
                        continue
                    new = outs
                env[out] = new
        return [read_atom(env, a) for a in jaxpr.outvars]

    rewritten = build_jaxpr(run, [v.aval for v in jaxpr.constvars],
                            [v.aval for v in jaxpr.invars])
    if not changed:
        return jaxpr     # nothing to gain: keep the program (and the fixed point) as it was
    return dce_jaxpr(rewritten)


def _materialized(x, xd):
    """The dense diagonal array x = identity(p, q) * v, broadcast."""
    v, p, q = xd
    shape = x.aval.shape
    n = shape[p]
    ident = convert_element_type(eq(iota(np.int64, (n, n), 0), iota(np.int64, (n, n), 1)),
                                 x.aval.dtype)
    return mul(broadcast_in_dim(ident, shape, (p, q)),
               broadcast_in_dim(v, shape, [a for a in range(len(shape)) if a != q]))


def _reduced(x, xd, axes, vec, diag, out):
    """reduce_sum of the diagonal x over `axes`: v summed (a new value), or, when
    neither diagonal axis is summed, None after recording the result's diagonal."""
    v, p, q = xd
    axes = set(axes)
    labels = [a for a in range(x.aval.ndim) if a != q]      # v's axes (p: the diagonal)
    if p not in axes and q not in axes:
        summed = [k for k, a in enumerate(labels) if a in axes]
        diag[out] = (reduce_sum(vec(x), summed) if summed else v,
                     p - sum(a < p for a in axes), q - sum(a < q for a in axes))
        return None
    both = p in axes and q in axes
    summed = [k for k, a in enumerate(labels) if (a in axes if a != p else both)]
    kept = [a for k, a in enumerate(labels) if k not in summed]
    target = [p if a == q else a for a in range(x.aval.ndim) if a not in axes]
    return transpose(reduce_sum(vec(x), summed), [kept.index(t) for t in target])


def _dot(ins, d, dimension_numbers, out, env):
    """dot_general with a diagonal operand D that contracts exactly one of its
    diagonal axes (the other one free): that axis and its partner in the other
    operand O become one index, so the product is v * O (broadcast) when nothing
    else is contracted, else a dot_general of v and O batched over that index."""
    (cx, cy), (bx, by) = dimension_numbers
    nd = [a.aval.ndim for a in ins]
    contract, batch = (cx, cy), (bx, by)
    free = [[a for a in range(nd[s]) if a not in contract[s] and a not in batch[s]]
            for s in (0, 1)]
    nb = len(bx)

    def outpos(s, a):
        if a in batch[s]:
            return batch[s].index(a)
        return nb + (len(free[0]) if s else 0) + free[s].index(a)

    for s in (0, 1):
        if not d[s]:
            continue
        v, p, q = d[s]
        o = 1 - s
        inc = [a for a in (p, q) if a in contract[s]]
        if len(inc) != 1:
            continue
        c = inc[0]
        dd = q if c == p else p
        if dd not in free[s]:
            continue
        j = contract[s].index(c)
        oc = contract[o][j]
        rest = [(contract[s][i], contract[o][i]) for i in range(len(contract[s])) if i != j]
        O = read_atom(env, ins[o])
        D = ins[s]
        shape = out.aval.shape
        dpos = outpos(s, dd)
        vlabels = [a for a in range(nd[s]) if a != q]     # v's axes (p: the diagonal)
        if not rest:
            vdims = [dpos if a == p else outpos(s, a) for a in vlabels]
            odims = [dpos if a == oc else outpos(o, a) for a in range(nd[o])]
            placed = _place(O, shape, odims)
            return placed if v is _ONES else mul(_place(v, shape, vdims), placed)
        vv = full(_drop(D.aval.shape, q), 1, D.aval.dtype) if v is _ONES else v
        vax = {a: k for k, a in enumerate(vlabels)}
        vbatch = tuple(vax[a] for a in batch[s]) + (vax[p],)
        obatch = tuple(batch[o]) + (oc,)
        vcon = tuple(vax[a] for a, _ in rest)
        ocon = tuple(b for _, b in rest)
        # the new product's axes: batch, the diagonal, then x's free axes, then y's
        # (labelled by the output axis each one becomes)
        vfree = [outpos(s, a) for a in free[s] if a != dd]
        ofree = [outpos(o, a) for a in free[o]]
        if s == 0:
            r = dot_general(vv, O, ((vcon, ocon), (vbatch, obatch)))
            labels = list(range(nb)) + [dpos] + vfree + ofree
        else:
            r = dot_general(O, vv, ((ocon, vcon), (obatch, vbatch)))
            labels = list(range(nb)) + [dpos] + ofree + vfree
        return transpose(r, [labels.index(k) for k in range(len(shape))])
    return None
