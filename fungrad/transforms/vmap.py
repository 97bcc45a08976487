"""Batching: `vmap_jaxpr` rewrites a per-example program into a batched one."""
from __future__ import annotations

from typing import Sequence


from ..core import Jaxpr, Literal, ShapedArray
from ..errors import FungradValueError
from ..primitives.base import broadcast_in_dim, transpose
from ..tracing import aval_of
from .util import build_jaxpr, read_atom, rebinding

__all__ = ["vmap_eval", "vmap_jaxpr", "moveaxis_value"]


def moveaxis_value(x, src: int | None, dst: int | None, axis_size: int):
    """Move x's batch dimension from src to dst (broadcasting an unbatched x)."""
    if dst is None:
        if src is not None:
            raise FungradValueError("vmap: out_axes=None for an output that is batched")
        return x
    aval = aval_of(x)
    if src is None:
        shape = list(aval.shape)
        shape.insert(dst, axis_size)
        dims = tuple(i for i in range(len(shape)) if i != dst)
        return broadcast_in_dim(x, shape, dims)
    if src == dst:
        return x
    perm = [i for i in range(aval.ndim) if i != src]
    perm.insert(dst, src)
    return transpose(x, perm)


def vmap_eval(jaxpr: Jaxpr, axis_size: int, consts: Sequence, args: Sequence,
              dims: Sequence[int | None]) -> tuple[list, list]:
    """Run the batching interpreter: each value has a batch dimension or None."""
    env: dict = {}
    bdim: dict = {}
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x, d in zip(jaxpr.invars, args, dims, strict=True):
        env[v] = x
        if d is not None:
            bdim[v] = d
    with rebinding() as rb:
        for eqn in jaxpr.eqns:
            rb.at(eqn)
            xs = [read_atom(env, a) for a in eqn.inputs]
            ds = [None if type(a) is Literal else bdim.get(a) for a in eqn.inputs]
            prim = eqn.prim
            if all(d is None for d in ds):
                outs = prim.bind(*xs, **eqn.params)
                out_dims = [None] * len(eqn.outputs) if prim.multiple_results else None
            else:
                outs, out_dims = prim.rule("vmap")(axis_size, xs, ds, **eqn.params)
            if prim.multiple_results:
                for v, o, d in zip(eqn.outputs, outs, out_dims, strict=True):
                    env[v] = o
                    if d is not None:
                        bdim[v] = d
            else:
                env[eqn.outputs[0]] = outs
                if out_dims is not None:
                    bdim[eqn.outputs[0]] = out_dims
    outs = [read_atom(env, a) for a in jaxpr.outvars]
    out_dims = [None if type(a) is Literal else bdim.get(a) for a in jaxpr.outvars]
    return outs, out_dims


def _batched_aval(aval: ShapedArray, d: int | None, n: int) -> ShapedArray:
    if d is None:
        return aval
    shape = list(aval.shape)
    shape.insert(d, n)
    return ShapedArray(shape, aval.dtype)


def vmap_jaxpr(jaxpr: Jaxpr, axis_size: int, in_dims: Sequence[int | None],
               out_axes: Sequence[int | None]) -> Jaxpr:
    """(consts; xs) -> ys  becomes  (consts; batched xs) -> ys batched along out_axes."""
    k = len(jaxpr.constvars)

    def run(*args):
        outs, dims = vmap_eval(jaxpr, axis_size, args[:k], args[k:], in_dims)
        return [moveaxis_value(o, d, a, axis_size) for o, d, a in zip(outs, dims, out_axes,
                                                                      strict=True)]

    in_avals = [_batched_aval(v.aval, d, axis_size) for v, d in zip(jaxpr.invars, in_dims)]
    return build_jaxpr(run, [v.aval for v in jaxpr.constvars], in_avals)
