"""`eval_jaxpr`: the reference semantics of a Jaxpr, one NumPy `impl` per equation.

Called on tracers (inside another trace), the same loop re-binds every equation
into that trace: this is how a rewritten inner jaxpr is inlined into an outer one.
"""
from __future__ import annotations

from typing import Any, Sequence

from .core import ClosedJaxpr, Jaxpr, Literal
from .tracing import current_trace

__all__ = ["eval_jaxpr", "eval_closed"]


def eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list[Any]:
    """Evaluate `jaxpr` on `consts` and `args`; returns the list of outputs."""
    env: dict = {}

    def read(atom):
        return atom.val if type(atom) is Literal else env[atom]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
        env[var] = val
    trace = current_trace()
    if trace is None:
        return _eval_impl(jaxpr, env, read)
    saved = trace.source_info
    try:
        for eqn in jaxpr.eqns:
            trace.source_info = eqn.source_info or saved
            prim = eqn.prim
            outs = prim.bind(*[read(x) for x in eqn.inputs], **eqn.params)
            if prim.multiple_results:
                for var, val in zip(eqn.outputs, outs, strict=True):
                    env[var] = val
            else:
                env[eqn.outputs[0]] = outs
    finally:
        trace.source_info = saved
    return [read(v) for v in jaxpr.outvars]


def _eval_impl(jaxpr, env, read):
    """The NumPy path: every equation runs its primitive's impl."""
    for eqn in jaxpr.eqns:
        prim = eqn.prim
        outs = prim.impl(*[read(x) for x in eqn.inputs], **eqn.params)
        if prim.multiple_results:
            for var, val in zip(eqn.outputs, outs, strict=True):
                env[var] = val
        else:
            env[eqn.outputs[0]] = outs
    return [read(v) for v in jaxpr.outvars]


def eval_closed(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    return eval_jaxpr(closed.jaxpr, closed.consts, *args)
