"""`eval_jaxpr`: the reference semantics of a Jaxpr, one NumPy `impl` per equation.

Called on tracers (inside another trace), the same loop re-binds every equation
into that trace: this is how a rewritten inner jaxpr is inlined into an outer one.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .core import (ClosedJaxpr, Jaxpr, Literal, _bad_values, check_outputs, current_trace,
                   outside_trace, pp_eqn, var_names)

__all__ = ["eval_jaxpr", "eval_closed", "eval_concrete", "eval_jaxpr_checked", "check_outputs",
           "owned_array"]


def _environment(jaxpr: Jaxpr, consts: Sequence[Any], args: Sequence[Any]):
    """(env, read): the values of the program's inputs, and the reader of an atom."""
    env: dict = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))

    def read(atom):
        return atom.val if type(atom) is Literal else env[atom]
    return env, read


def _store(env: dict, eqn, outs: Any) -> None:
    """Bind an equation's result(s) to its output variable(s)."""
    if eqn.prim.multiple_results:
        for var, val in zip(eqn.outputs, outs, strict=True):
            env[var] = val
    else:
        env[eqn.outputs[0]] = outs


def eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list[Any]:
    """Evaluate `jaxpr` on `consts` and `args`; returns the list of outputs."""
    env, read = _environment(jaxpr, consts, args)
    trace = current_trace()
    if trace is None:
        return _eval_impl(jaxpr, env, read)
    saved = trace.source_info
    try:
        for eqn in jaxpr.eqns:
            trace.source_info = eqn.source_info or saved
            prim = eqn.prim
            _store(env, eqn, prim.bind(*[read(x) for x in eqn.inputs], **eqn.params))
    finally:
        trace.source_info = saved
    return [read(v) for v in jaxpr.outvars]


def _eval_impl(jaxpr, env, read):
    """The NumPy path: every equation runs its primitive's impl."""
    for eqn in jaxpr.eqns:
        prim = eqn.prim
        _store(env, eqn, prim.impl(*[read(x) for x in eqn.inputs], **eqn.params))
    return [read(v) for v in jaxpr.outvars]


def eval_closed(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    return eval_jaxpr(closed.jaxpr, closed.consts, *args)


def eval_concrete(jaxpr: Jaxpr, args: Sequence[Any], consts: Sequence[Any] = ()) -> list[Any]:
    """Evaluate `jaxpr` on NumPy values whatever trace is current (a rule that needs a
    sub-program's value, or a tracer's value read on demand, runs here)."""
    with outside_trace():
        return eval_jaxpr(jaxpr, consts, *args)


def owned_array(x: Any) -> np.ndarray:
    """A result handed to the user: an ndarray that owns its (writeable) memory."""
    a = np.asarray(x)
    if a.base is not None or not a.flags.writeable:
        a = a.copy()
    return a


def eval_jaxpr_checked(jaxpr: Jaxpr, consts: Sequence[Any], args: Sequence[Any],
                       nans: bool = True, infs: bool = False) -> list[Any]:
    """`eval_jaxpr` on concrete arrays that raises `FungradFloatingPointError` (a
    `FloatingPointError`) at the first equation producing a NaN (`nans`) or an inf
    (`infs`), naming the primitive and the user's file:line the equation comes from
    (derivative equations carry the line of the primal operation they differentiate).
    Used by the backend when `config.debug_nans` / `config.debug_infs` is on."""
    env, read = _environment(jaxpr, consts, args)
    for eqn in jaxpr.eqns:
        prim = eqn.prim
        ins = [read(x) for x in eqn.inputs]
        with np.errstate(all="ignore"):  # reported below, with the user's line
            outs = prim.impl(*ins, **eqn.params)
        out_list = outs if prim.multiple_results else (outs,)
        if _bad_values(out_list, nans, infs) is not None:
            sub = prim.call_jaxpr_param
            if sub is not None:  # a call (custom rule, checkpoint): blame the inner equation
                eval_jaxpr_checked(eqn.params[sub], (), ins, nans, infs)
            names = var_names(jaxpr)
            text = pp_eqn(eqn, lambda x: str(x) if type(x) is Literal else names.get(id(x), "?"))
            check_outputs(prim, ins, outs, eqn.source_info, nans, infs, text)
        for var, val in zip(eqn.outputs, out_list, strict=True):
            env[var] = val
    return [read(v) for v in jaxpr.outvars]
