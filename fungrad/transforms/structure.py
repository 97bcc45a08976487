"""Basis structure: propagate diagonal matrices through a jaxpr.

`jacrev`/`jacfwd` push an identity basis (built from `iota`, so it is visibly an
identity) through the batched derivative.  After elementwise operations the
batch is still diagonal, and a matrix product with a diagonal is a row or
column scaling.  `diagonal_jaxpr` tracks, for every 2-d square value known to
be `diag(v)`, the vector `v`, and rewrites

    dot_general(diag(v), A)  ->  v[:, None] * A       (and A @ diag(v) -> A * v)
    reduce_sum(diag(v), one axis)  ->  v
    mul(diag(v), broadcast(w))  ->  diag(v * w)

so `jacobian(lambda x: tanh(A @ x))` costs one scaling of A instead of an
n x n x n matrix product.  Equations made dead by the rewrite are removed by DCE.
Preserves: the value of every output, exactly (the same products and sums are
formed, minus multiplications by exact zeros and ones of the identity).
"""
from __future__ import annotations

import numpy as np

from ..core import Jaxpr, Literal, Var
from ..primitives.base import (broadcast_in_dim, broadcast_in_dim_p, convert_element_type_p, full,
                        reduce_sum_p, transpose, transpose_p)
from ..primitives.elementwise import eq_p, mul, mul_p, neg, neg_p
from ..primitives.linalg import dot_general_p
from ..primitives.shape import iota_p
from .util import build_jaxpr, dce_jaxpr, read_atom, rebinding

__all__ = ["diagonal_jaxpr"]

_ONES = "ones"   # the vector of an identity matrix (made only if needed)


def _is_square(aval) -> bool:
    return len(aval.shape) == 2 and aval.shape[0] == aval.shape[1]


def diagonal_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Rewrite products with diagonal matrices built from an iota identity."""
    prims = {e.prim for e in jaxpr.eqns}
    if iota_p not in prims or dot_general_p not in prims and reduce_sum_p not in prims:
        return jaxpr

    producer: dict = {}
    for eqn in jaxpr.eqns:
        for o in eqn.outputs:
            producer[o] = eqn

    def iota_dim(atom):
        eqn = producer.get(atom) if isinstance(atom, Var) else None
        if eqn is not None and eqn.prim is iota_p and _is_square(atom.aval):
            return eqn.params["dimension"]
        return None

    changed = []

    def run(*args):
        env: dict = {}
        diag: dict = {}       # old var -> vector (new value) or _ONES
        mask: set = set()     # old vars that are the boolean identity
        bcast: dict = {}      # old var -> (new source value, broadcast_dimensions)
        for v, x in zip(jaxpr.constvars + jaxpr.invars, args, strict=True):
            env[v] = x

        def vec(old, dtype, n):
            v = diag[old]
            return full((n,), 1, dtype) if v is _ONES else v

        def scale(v, w):
            return w if v is _ONES else mul(v, w)

        with rebinding() as rb:
            for eqn in jaxpr.eqns:
                rb.at(eqn)
                prim, ins, (out,) = eqn.prim, eqn.inputs, (eqn.outputs + (None,))[:1]
                new = None
                if prim is eq_p and {iota_dim(ins[0]), iota_dim(ins[1])} == {0, 1}:
                    mask.add(out)
                elif prim is convert_element_type_p and ins[0] in mask:
                    diag[out] = _ONES
                elif prim is broadcast_in_dim_p and len(eqn.params["shape"]) == 2:
                    bcast[out] = (read_atom(env, ins[0]), eqn.params["broadcast_dimensions"])
                elif prim is mul_p and out is not None and _is_square(out.aval):
                    a, b = ins
                    if b in diag and a not in diag:
                        a, b = b, a
                    if a in diag:
                        n = out.aval.shape[0]
                        if isinstance(b, Literal) or b.aval.shape == ():
                            diag[out] = scale(diag[a], broadcast_in_dim(
                                read_atom(env, b), (n,), ())) if diag[a] is not _ONES else \
                                broadcast_in_dim(read_atom(env, b), (n,), ())
                        elif b in diag:
                            diag[out] = diag[b] if diag[a] is _ONES else scale(
                                diag[b], diag[a]) if diag[b] is not _ONES else diag[a]
                        elif b in bcast and len(bcast[b][1]) == 1:
                            src, _ = bcast[b]
                            diag[out] = scale(diag[a], src)
                elif prim is neg_p and ins[0] in diag:
                    n = out.aval.shape[0]
                    diag[out] = neg(vec(ins[0], out.aval.dtype, n))
                elif prim is transpose_p and ins[0] in diag:
                    diag[out] = diag[ins[0]]
                elif prim is reduce_sum_p and ins[0] in diag and len(eqn.params["axes"]) == 1:
                    new = vec(ins[0], out.aval.dtype, out.aval.shape[0])
                elif prim is dot_general_p:
                    (cx, cy), (bx, by) = eqn.params["dimension_numbers"]
                    x, y = ins
                    if not bx and len(cx) == 1 and x in diag and x.aval.ndim == 2:
                        # diag(v) . Y over Y's axis cy: scale Y along that axis, then move
                        # it to the front (the diag's free axis comes first in the output)
                        y_val = read_atom(env, y)
                        yshape = y.aval.shape
                        scaled = y_val if diag[x] is _ONES else mul(
                            y_val, broadcast_in_dim(diag[x], yshape, cy))
                        perm = (cy[0],) + tuple(i for i in range(len(yshape)) if i != cy[0])
                        new = transpose(scaled, perm)
                    elif not bx and len(cx) == 1 and y in diag and y.aval.ndim == 2:
                        x_val = read_atom(env, x)
                        xshape = x.aval.shape
                        scaled = x_val if diag[y] is _ONES else mul(
                            x_val, broadcast_in_dim(diag[y], xshape, cx))
                        perm = tuple(i for i in range(len(xshape)) if i != cx[0]) + (cx[0],)
                        new = transpose(scaled, perm)
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
