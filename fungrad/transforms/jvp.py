"""Forward mode: `jvp_jaxpr` rewrites (xs) -> ys into (xs, ts) -> (ys, ys_dot)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core import Jaxpr, Literal
from .util import Zero, build_jaxpr, instantiate, read_atom, rebinding

__all__ = ["jvp_jaxpr", "jvp_eval"]


def _is_float(aval) -> bool:
    return aval.dtype.kind in "fc"


def jvp_eval(jaxpr: Jaxpr, consts: Sequence, primals: Sequence, tangents: Sequence,
             instantiate_out: bool = True) -> tuple[list, list]:
    """Run the jvp interpreter on values (tracers); tangents may be `Zero`."""
    primal: dict = {}
    tangent: dict = {}
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        primal[v] = x
    for v, x, t in zip(jaxpr.invars, primals, tangents, strict=True):
        primal[v] = x
        if not isinstance(t, Zero):
            tangent[v] = t

    def read_tangent(atom):
        if type(atom) is Literal:
            return Zero(atom.aval)
        t = tangent.get(atom)
        return Zero(atom.aval) if t is None else t

    with rebinding() as rb:
        for eqn in jaxpr.eqns:
            rb.at(eqn)
            xs = [read_atom(primal, a) for a in eqn.inputs]
            ts = [read_tangent(a) for a in eqn.inputs]
            prim = eqn.prim
            outs = prim.bind(*xs, **eqn.params)
            out_list = outs if prim.multiple_results else (outs,)
            for v, o in zip(eqn.outputs, out_list, strict=True):
                primal[v] = o
            if all(isinstance(t, Zero) for t in ts) or not any(
                    _is_float(v.aval) for v in eqn.outputs):
                continue  # no tangent flows: no rule call at all
            if prim.jvp_nondifferentiable:
                continue
            jvp = prim.rule("jvp")
            # a rule declared with symbolic_zeros (call primitives) receives Zero tangents as is
            t_in = ts if prim.jvp_symbolic_zeros else [instantiate(t) for t in ts]
            t_out = jvp(*t_in, *xs, out=outs, **eqn.params)
            if prim.multiple_results:
                for v, t in zip(eqn.outputs, t_out, strict=True):
                    if t is not None and not isinstance(t, Zero):
                        tangent[v] = t
            elif t_out is not None and not isinstance(t_out, Zero):
                tangent[eqn.outputs[0]] = t_out
    ys = [read_atom(primal, a) for a in jaxpr.outvars]
    ts_out = [read_tangent(a) for a in jaxpr.outvars]
    if instantiate_out:
        ts_out = [instantiate(t) for t in ts_out]
    return ys, ts_out


def jvp_jaxpr(jaxpr: Jaxpr, wrt: Sequence[bool] | None = None) -> Jaxpr:
    """(consts; xs) -> ys  becomes  (consts; xs, ts[wrt]) -> (ys, ys_dot).

    `wrt[i]` says whether input i gets a tangent input (default: every float input);
    the others have symbolic zero tangents."""
    n = len(jaxpr.invars)
    if wrt is None:
        wrt = [_is_float(v.aval) for v in jaxpr.invars]
    t_avals = [v.aval for v, w in zip(jaxpr.invars, wrt, strict=True) if w]
    k = len(jaxpr.constvars)

    def run(*args):
        consts, xs, ts_given = args[:k], args[k:k + n], iter(args[k + n:])
        ts = [next(ts_given) if w else Zero(v.aval) for v, w in zip(jaxpr.invars, wrt)]
        ys, ys_dot = jvp_eval(jaxpr, consts, xs, ts)
        return list(ys) + list(ys_dot)

    return build_jaxpr(run, [v.aval for v in jaxpr.constvars],
                       [v.aval for v in jaxpr.invars] + t_avals)
