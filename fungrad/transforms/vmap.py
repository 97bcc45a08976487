"""Batching: `vmap_jaxpr` rewrites a per-example program into a batched one."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core import Jaxpr, Literal, ShapedArray
from ..errors import FungradValueError, describe_function
from ..pytree import flatten_up_to, tree_flatten
from ..tracing import Tracer, aval_of, trace_to_jaxpr
from . import api_util
from .simplify import simplify_jaxpr
from .util import build_jaxpr, read_atom, rebinding

__all__ = ["vmap_eval", "vmap_jaxpr", "vmap", "moveaxis_value"]


def moveaxis_value(x, src: int | None, dst: int | None, axis_size: int):
    """Move x's batch dimension from src to dst (broadcasting an unbatched x)."""
    from ..lax import shape as lax_shape
    if dst is None:
        if src is not None:
            raise FungradValueError("vmap: out_axes=None for an output that is batched")
        return x
    aval = aval_of(x)
    if src is None:
        shape = list(aval.shape)
        shape.insert(dst, axis_size)
        dims = tuple(i for i in range(len(shape)) if i != dst)
        return lax_shape.broadcast_in_dim(x, shape, dims)
    if src == dst:
        return x
    perm = [i for i in range(aval.ndim) if i != src]
    perm.insert(dst, src)
    return lax_shape.transpose(x, perm)


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


def _unbatched_aval(x, d: int | None) -> ShapedArray:
    aval = aval_of(x)
    if d is None:
        return aval
    return ShapedArray(aval.shape[:d] + aval.shape[d + 1:], aval.dtype)


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None,
         axis_name: Any = None) -> Callable:
    """Vectorize `fun` over a batch axis of its arguments.

    `in_axes` is an int, None, or a pytree prefix of the arguments (None: not
    batched); `out_axes` likewise for the outputs.
    >>> vmap(lambda x, y: x @ y, in_axes=(0, None))(xs, y)    # one matvec per row of xs
    """
    def vmapped(*args, **kwargs):
        where = f"vmap({describe_function(fun)})"
        axes_tree = in_axes if isinstance(in_axes, (list, tuple)) and not isinstance(
            in_axes, int) else (in_axes,) * len(args)
        if isinstance(in_axes, list):
            axes_tree = tuple(in_axes)
        if len(axes_tree) != len(args):
            raise FungradValueError(
                f"{where}: in_axes has {len(axes_tree)} entries but the function was called "
                f"with {len(args)} positional arguments")
        leaves, in_tree = tree_flatten((tuple(args), kwargs))
        leaves = [api_util.as_value(x) for x in leaves]
        dims: list = []
        for a, ax in zip(args, axes_tree):
            n_leaves = len(tree_flatten(a)[0])
            if ax is None or isinstance(ax, (int, np.integer)):
                dims.extend([ax] * n_leaves)
            else:
                sub = flatten_up_to(tree_flatten(ax, is_leaf=lambda x: x is None)[1], ax)
                arg_subtrees = flatten_up_to(tree_flatten(ax, is_leaf=lambda x: x is None)[1], a)
                for s_ax, s_arg in zip(sub, arg_subtrees):
                    dims.extend([s_ax] * len(tree_flatten(s_arg)[0]))
        dims.extend([0] * len(tree_flatten(kwargs)[0]))  # keyword arguments: axis 0, as JAX
        norm_dims = []
        sizes = set()
        for x, d in zip(leaves, dims):
            if d is None:
                norm_dims.append(None)
                continue
            nd = aval_of(x).ndim
            if not -nd <= d < nd:
                raise FungradValueError(
                    f"{where}: in_axes={d} for an argument of shape {aval_of(x).shape}")
            d = int(d) % nd
            norm_dims.append(d)
            sizes.add(aval_of(x).shape[d])
        if axis_size is not None:
            sizes.add(axis_size)
        if len(sizes) != 1:
            if not sizes:
                raise FungradValueError(
                    f"{where}: no argument is batched; give axis_size or an in_axes that is "
                    "not None")
            raise FungradValueError(
                f"{where}: batched arguments have different sizes along their in_axes: "
                f"{sorted(sizes)}")
        n = sizes.pop()
        out_tree_box = []

        def flat_fun(*tracers):
            a, kw = in_tree.unflatten(tracers)
            out = fun(*a, **kw)
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        per_example = [_unbatched_aval(x, d) for x, d in zip(leaves, norm_dims)]
        closed = trace_to_jaxpr(flat_fun, per_example)
        out_tree = out_tree_box[0]
        if isinstance(out_axes, (int, np.integer)) or out_axes is None:
            flat_out_axes = [out_axes] * out_tree.num_leaves
        else:
            flat_out_axes = []
            sub = flatten_up_to(tree_flatten(out_axes, is_leaf=lambda x: x is None)[1],
                                out_axes)
            subtrees = flatten_up_to(tree_flatten(out_axes, is_leaf=lambda x: x is None)[1],
                                     out_tree.unflatten([0] * out_tree.num_leaves))
            for s_ax, s in zip(sub, subtrees):
                flat_out_axes.extend([s_ax] * len(tree_flatten(s)[0]))
        norm_out = []
        for aval, a in zip(closed.out_avals, flat_out_axes):
            norm_out.append(None if a is None else int(a) % (aval.ndim + 1))
        derived = api_util.cached_rewrite(
            ("vmap", n, tuple(norm_dims), tuple(norm_out)), closed,
            lambda j: simplify_jaxpr(vmap_jaxpr(j, n, norm_dims, norm_out)))
        outs = api_util.execute(derived, closed.consts, leaves)
        return out_tree.unflatten(outs)
    vmapped.__name__ = f"vmap({getattr(fun, '__name__', 'fun')})"
    vmapped.__wrapped__ = fun
    return vmapped
