"""`inline_calls_jaxpr`: replace call equations (custom_jvp_call, custom_vjp_call,
checkpoint: primitives with a `call_jaxpr_param`) by the equations of the jaxpr
they call.

Only for execution (the numba code generator): transforms must see the call
equations, whose rules carry the user's custom derivatives and rematerialization.
"""
from __future__ import annotations

from ..core import Eqn, Jaxpr, Var

__all__ = ["inline_calls_jaxpr"]


def _has_calls(jaxpr: Jaxpr) -> bool:
    return any(e.prim.call_jaxpr_param for e in jaxpr.eqns)


def inline_calls_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """The same program with every call equation (recursively) replaced by the body
    it calls; inputs, outputs and all other equations are kept."""
    if not _has_calls(jaxpr):
        return jaxpr
    eqns: list[Eqn] = []

    def inline(body: Jaxpr, env: dict) -> list:
        def read(a):
            return env[a] if type(a) is Var else a
        for eqn in body.eqns:
            args = [read(a) for a in eqn.inputs]
            param = eqn.prim.call_jaxpr_param
            if param is not None:
                sub = eqn.params[param]
                outs = inline(sub, dict(zip(sub.invars, args, strict=True)))
                env.update(zip(eqn.outputs, outs, strict=True))
                continue
            new_outs = [Var(o.aval) for o in eqn.outputs]
            eqns.append(Eqn(eqn.prim, args, new_outs, eqn.params, eqn.source_info))
            env.update(zip(eqn.outputs, new_outs, strict=True))
        return [read(a) for a in body.outvars]

    top = {v: v for v in (*jaxpr.constvars, *jaxpr.invars)}
    outs = inline(jaxpr, top)
    return Jaxpr(jaxpr.constvars, jaxpr.invars, eqns, outs)
