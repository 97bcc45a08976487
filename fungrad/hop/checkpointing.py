"""Rematerialization (`checkpoint` / `remat`) and `linear_transpose`.

`checkpoint(f)` gives the same values and derivatives as `f`, but reverse mode
stores only f's inputs and recomputes f's intermediates in the backward pass:
memory traded for compute.  It is one `checkpoint` equation holding f's jaxpr;
its vjp rule binds *another* checkpoint equation (the whole backward of f,
forward recomputation included) whose inputs include the cotangent, so partial
evaluation (`vjp`, `linearize`) cannot hoist the recomputation into the forward
pass: the residuals are f's inputs, not its intermediates.

    >>> f = fg.checkpoint(lambda x: fnp.sin(fnp.sin(x)))
    >>> fg.grad(lambda x: f(x).sum())(np.ones(3))    # same as without checkpoint

Hessian-vector products: forward-over-reverse, `jvp(grad(f), (x,), (v,))[1]`,
costs about one gradient evaluation more and never forms the Hessian.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

from ..core import Jaxpr, Primitive
from ..transforms.ad import vjp_jaxpr
from ..transforms.jvp import jvp_jaxpr
from ..transforms.simplify import dce_jaxpr
from ..transforms.util import instantiate
from .custom_derivatives import (_Call, _is_float, _is_zero, _needs_trace, _trace_fun, _zero,
                                 batch_jaxpr, call_primitive, trace_with_consts)
from ..errors import FungradValueError, describe_function

__all__ = ["checkpoint", "remat", "checkpoint_p", "checkpoint_policies"]


class checkpoint_policies:
    """Names of the policies `checkpoint(fun, policy=...)` accepts."""
    nothing_saveable = "nothing_saveable"        # store only the inputs; recompute the rest
    everything_saveable = "everything_saveable"  # store everything (no rematerialization)


_POLICIES = (checkpoint_policies.nothing_saveable, checkpoint_policies.everything_saveable)

checkpoint_p = call_primitive(Primitive("checkpoint", kind="call", multiple_results=True,
                                         call_jaxpr_param="call_jaxpr"))


def _checkpoint_jvp(*args, out, call_jaxpr, policy, name):
    # (xs, ts) -> ts_out, itself one checkpoint equation so a later vjp still remats
    n = len(call_jaxpr.invars)
    ts, xs = args[:n], args[n:]
    wrt = [not _is_zero(t) and _is_float(v.aval) for t, v in zip(ts, call_jaxpr.invars)]
    out_avals = [v.aval for v in call_jaxpr.outvars]
    n_out = len(out_avals)
    joint = jvp_jaxpr(call_jaxpr, wrt)
    tangent_only = dce_jaxpr(Jaxpr((), joint.invars, joint.eqns, joint.outvars[n_out:]))
    ts_out = checkpoint_p.bind(*xs, *[t for t, w in zip(ts, wrt) if w],
                               call_jaxpr=tangent_only, policy=policy, name=name)
    return tuple(t if _is_float(a) else None for t, a in zip(ts_out, out_avals, strict=True))




def _checkpoint_vjp(ct, *xs, out, active, call_jaxpr, policy, name):
    # (xs, ct) -> cts_xs: the forward is recomputed inside the backward equation
    wrt = [a and _is_float(v.aval) for a, v in zip(active, call_jaxpr.invars, strict=True)]
    out_avals = [v.aval for v in call_jaxpr.outvars]
    cts = [c if _is_float(a) else _zero(a) for c, a in zip(ct, out_avals, strict=True)]
    joint = vjp_jaxpr(call_jaxpr, wrt)
    backward = dce_jaxpr(Jaxpr((), joint.invars, joint.eqns, joint.outvars[len(out_avals):]))
    cts_in = checkpoint_p.bind(*xs, *[instantiate(c) for c in cts], call_jaxpr=backward,
                               policy=policy, name=name)
    it = iter(cts_in)
    return tuple(next(it) if w else None for w in wrt)




def _checkpoint_vmap(axis_size, args, dims, *, call_jaxpr, policy, name):
    n_out = len(call_jaxpr.outvars)
    batched = batch_jaxpr(call_jaxpr, axis_size, list(dims), [0] * n_out)
    return checkpoint_p.bind(*args, call_jaxpr=batched, policy=policy, name=name), [0] * n_out


checkpoint_p.def_jvp(_checkpoint_jvp, symbolic_zeros=True)
checkpoint_p.def_vjp(_checkpoint_vjp, wants_active=True)
checkpoint_p.def_vmap(_checkpoint_vmap)


def checkpoint(fun: Callable, policy: str | None = None, prevent_cse: bool = True,
               static_argnums: int | Sequence[int] = ()) -> Callable:
    """`fun` with rematerialization: reverse mode recomputes its intermediates in
    the backward pass instead of storing them (JAX's `jax.checkpoint`).

    Values and derivatives of every order are those of `fun`.

    Args:
      fun: the function to checkpoint.
      policy: what the forward pass may store: `"nothing_saveable"` (default; only
        the inputs are kept) or `"everything_saveable"` (no rematerialization:
        `fun` is called as is).
      prevent_cse: accepted for JAX compatibility (fungrad does no CSE across it).
      static_argnums: arguments passed as Python values (not traced).
    Returns:
      A function with the signature of `fun`.

    >>> layer = checkpoint(lambda w, x: fnp.tanh(w @ x))
    >>> fg.grad(lambda w: layer(w, x).sum())(w)
    """
    policy = checkpoint_policies.nothing_saveable if policy is None else policy
    if policy not in _POLICIES:
        raise FungradValueError(
            f"checkpoint({describe_function(fun)}): unknown policy {policy!r}; use one of "
            f"{', '.join(map(repr, _POLICIES))}")
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(fun)
    def checkpointed(*args, **kwargs):
        where = f"checkpoint({describe_function(fun)})"
        call = _Call(where, fun, args, kwargs, static)
        if not _needs_trace(call.leaves) or policy == checkpoint_policies.everything_saveable:
            return fun(*call.args)
        closed, out_tree = _trace_fun(where, fun, call)
        consts, (call_jaxpr,) = trace_with_consts([closed])
        outs = checkpoint_p.bind(*consts, *call.leaves, call_jaxpr=call_jaxpr, policy=policy,
                                 name=getattr(fun, "__name__", "fun"))
        return out_tree.unflatten(list(outs))
    return checkpointed


remat = checkpoint


# ---------------------------------------------------------------------------
# linear_transpose
# ---------------------------------------------------------------------------
