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
from typing import Any, Callable, Sequence

from .core import Jaxpr, Primitive, Var
from .custom_derivatives import (_Call, _is_float, _is_zero, _needs_trace, _trace_fun, _zero,
                                 batch_jaxpr, call_primitive, trace_with_consts)
from .errors import FungradTypeError, FungradValueError, describe_function, format_location
from .pytree import tree_flatten
from .tracing import aval_of

__all__ = ["checkpoint", "remat", "checkpoint_p", "checkpoint_policies", "linear_transpose"]


class checkpoint_policies:
    """Names of the policies `checkpoint(fun, policy=...)` accepts."""
    nothing_saveable = "nothing_saveable"        # store only the inputs; recompute the rest
    everything_saveable = "everything_saveable"  # store everything (no rematerialization)


_POLICIES = (checkpoint_policies.nothing_saveable, checkpoint_policies.everything_saveable)

checkpoint_p = call_primitive(Primitive("checkpoint", multiple_results=True))


def _checkpoint_jvp(*args, out, call_jaxpr, policy, name):
    # (xs, ts) -> ts_out, itself one checkpoint equation so a later vjp still remats
    from .transforms.jvp import jvp_jaxpr
    from .transforms.simplify import dce_jaxpr
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


_checkpoint_jvp.symbolic_zeros = True


def _checkpoint_vjp(ct, *xs, out, active, call_jaxpr, policy, name):
    # (xs, ct) -> cts_xs: the forward is recomputed inside the backward equation
    from .transforms.ad import vjp_jaxpr
    from .transforms.simplify import dce_jaxpr
    from .transforms.util import instantiate
    wrt = [a and _is_float(v.aval) for a, v in zip(active, call_jaxpr.invars, strict=True)]
    out_avals = [v.aval for v in call_jaxpr.outvars]
    cts = [c if _is_float(a) else _zero(a) for c, a in zip(ct, out_avals, strict=True)]
    joint = vjp_jaxpr(call_jaxpr, wrt)
    backward = dce_jaxpr(Jaxpr((), joint.invars, joint.eqns, joint.outvars[len(out_avals):]))
    cts_in = checkpoint_p.bind(*xs, *[instantiate(c) for c in cts], call_jaxpr=backward,
                               policy=policy, name=name)
    it = iter(cts_in)
    return tuple(next(it) if w else None for w in wrt)


_checkpoint_vjp.wants_active = True


def _checkpoint_vmap(axis_size, args, dims, *, call_jaxpr, policy, name):
    n_out = len(call_jaxpr.outvars)
    batched = batch_jaxpr(call_jaxpr, axis_size, list(dims), [0] * n_out)
    return checkpoint_p.bind(*args, call_jaxpr=batched, policy=policy, name=name), [0] * n_out


checkpoint_p.def_jvp(_checkpoint_jvp)
checkpoint_p.def_vjp(_checkpoint_vjp)
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

_LINEAR = {"neg", "add", "sub", "convert_element_type", "reduce_sum", "broadcast_in_dim",
           "reshape", "squeeze", "expand_dims", "transpose", "slice", "rev", "concatenate",
           "pad", "select", "copy", "cumsum", "dynamic_slice", "dynamic_update_slice",
           "gather", "scatter_add", "real", "imag", "conj", "complex", "stop_gradient"}
_BILINEAR = {"mul", "dot_general", "conv"}


def _check_linear(where: str, jaxpr: Jaxpr) -> None:
    """Raise if an equation is nonlinear in the inputs (a known nonlinear primitive,
    or a product of two input-dependent values); other primitives are trusted."""
    from .lax import elementwise
    nonlinear = {v.name for v in vars(elementwise).values() if isinstance(v, Primitive)}
    nonlinear -= _LINEAR | _BILINEAR | {"div"}
    dependent: set = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        flags = [type(a) is Var and a in dependent for a in eqn.inputs]
        if not any(flags):
            continue
        name = eqn.prim.name
        bad = (name in nonlinear or (name in _BILINEAR and sum(flags) > 1)
               or (name == "div" and flags[1]))
        if bad:
            raise FungradTypeError(
                f"{where}: the function is not linear in its inputs: primitive '{name}' at "
                f"{format_location(eqn.source_info)} is applied to an input-dependent value"
                + (" twice (a product of inputs)" if name in _BILINEAR else "")
                + ".\n  linear_transpose needs a linear function; for a nonlinear one use "
                "vjp(fun, *primals), whose pullback is the transposed linearization.")
        dependent.update(eqn.outputs)


def linear_transpose(fun: Callable, *primals: Any, reduce_axes: tuple = ()) -> Callable:
    """The transpose of the linear function `fun` (JAX's `jax.linear_transpose`).

    `primals` give the input shapes and dtypes (arrays, or objects with `.shape`
    and `.dtype`); their values are not used.  The result maps a cotangent with
    the structure of fun's output to a tuple of cotangents, one per primal.
    Raises `FungradTypeError` if `fun` is visibly nonlinear.

    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> f_t = linear_transpose(lambda x: A @ x, np.zeros(2))
    >>> f_t(np.array([1.0, 0.0]))       # (A.T @ [1, 0],) == (array([1., 2.]),)
    """
    from .core import ShapedArray
    from .transforms import api_util
    from .transforms.ad import vjp_eval
    from .transforms.simplify import simplify_jaxpr
    from .transforms.util import build_jaxpr, instantiate
    from .tracing import trace_to_jaxpr
    where = f"linear_transpose({describe_function(fun)})"
    leaves, in_tree = tree_flatten(tuple(primals))
    avals = []
    for x in leaves:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            avals.append(ShapedArray(x.shape, x.dtype))
        else:
            avals.append(aval_of(api_util.as_value(x)))
    for a in avals:
        if not _is_float(a):
            raise FungradTypeError(f"{where}: inputs must be floating point, got {a}")
    out_box: list = []

    def flat_fun(*xs):
        out_leaves, out_tree = tree_flatten(fun(*in_tree.unflatten(list(xs))))
        out_box.append(out_tree)
        return out_leaves
    closed = trace_to_jaxpr(flat_fun, avals)
    out_tree = out_box[0]
    _check_linear(where, closed.jaxpr)
    jaxpr = closed.jaxpr
    k = len(jaxpr.constvars)
    out_avals = closed.out_avals

    def run(*args):
        consts, cts = args[:k], args[k:]
        zeros = [instantiate(_zero(a)) for a in avals]
        _, cts_in = vjp_eval(jaxpr, consts, zeros, [True] * len(avals), cts)
        return [instantiate(c) for c in cts_in]
    transposed = simplify_jaxpr(build_jaxpr(run, [v.aval for v in jaxpr.constvars], out_avals))

    def transposed_fun(out_cotangent):
        ct_leaves, ct_tree = tree_flatten(out_cotangent)
        if ct_tree != out_tree:
            raise FungradTypeError(f"{where}: the cotangent has structure {ct_tree}, but the "
                                   f"function's output has structure {out_tree}")
        cts = []
        for c, a in zip(ct_leaves, out_avals, strict=True):
            c = api_util.as_value(c)
            if aval_of(c).shape != a.shape:
                raise FungradValueError(
                    f"{where}: a cotangent of shape {aval_of(c).shape} was given for an "
                    f"output of shape {a.shape}")
            if aval_of(c).dtype != a.dtype:
                from .lax import convert_element_type
                c = convert_element_type(c, a.dtype)
            cts.append(c)
        outs = api_util.execute(transposed, closed.consts, cts)
        return in_tree.unflatten(outs)
    transposed_fun.__name__ = f"linear_transpose({getattr(fun, '__name__', 'fun')})"
    return transposed_fun
