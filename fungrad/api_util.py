"""What every user-facing transform does around its rewrite: flatten the
arguments, pick the differentiated leaves, trace, cache the rewrite by the
traced program's structure, and run the result (inline it into an enclosing
trace, or execute it)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .caches import new_cache
from .arrays import as_array
from .core import ClosedJaxpr, jaxpr_key
from .errors import FungradTypeError, FungradValueError, describe_function
from .backend import execute as backend_execute
from .interpreter import eval_jaxpr
from .pytree import PyTreeDef, tree_flatten
from .tracing import Tracer, as_value, aval_of, current_trace, trace_to_jaxpr

__all__ = ["prepare_call", "cached_rewrite", "execute", "as_value", "check_scalar_output",
           "aux_split", "PreparedCall"]


def _normalize_argnums(where: str, fun, argnums, n_args: int) -> tuple[tuple[int, ...], bool]:
    is_tuple = not isinstance(argnums, int)
    nums = tuple(argnums) if is_tuple else (argnums,)
    out = []
    for a in nums:
        if not isinstance(a, (int, np.integer)):
            raise FungradTypeError(f"{where}: argnums must be ints, got {argnums!r}")
        if not -n_args <= a < n_args:
            raise FungradValueError(
                f"{where}({describe_function(fun)}): argnums={argnums!r} but the function "
                f"was called with {n_args} positional argument(s)")
        out.append(int(a) % n_args)
    return tuple(out), is_tuple


class PreparedCall:
    """One call of a transformed function: its flat leaves and which are differentiated."""

    def __init__(self, where: str, fun: Callable, args: tuple, kwargs: dict, argnums):
        self.where, self.fun = where, fun
        self.args, self.kwargs = args, kwargs
        self.argnums, self.is_tuple = _normalize_argnums(where, fun, argnums, len(args))
        leaves: list = []
        wrt: list = []
        self.arg_trees: list[PyTreeDef] = []
        self.arg_slices: list[tuple[int, int]] = []
        for i, a in enumerate(args):
            lv, tree = tree_flatten(a)
            self.arg_trees.append(tree)
            self.arg_slices.append((len(leaves), len(leaves) + len(lv)))
            leaves.extend(as_value(x) for x in lv)
            wrt.extend([i in self.argnums] * len(lv))
        kw_leaves, self.kw_tree = tree_flatten(kwargs)
        self.n_pos = len(leaves)
        leaves.extend(as_value(x) for x in kw_leaves)
        wrt.extend([False] * len(kw_leaves))
        self.leaves, self.wrt = leaves, wrt

    def with_leaves(self, leaves: Sequence) -> "PreparedCall":
        """The same call with other leaf values (e.g. the tracers of a staged trace)."""
        new = object.__new__(PreparedCall)
        new.__dict__.update(self.__dict__)
        new.leaves = list(leaves)
        return new

    def rebuild(self, leaves: Sequence) -> tuple[list, dict]:
        """(args, kwargs) with these leaves in place of the call's."""
        args = [tree.unflatten(leaves[lo:hi])
                for tree, (lo, hi) in zip(self.arg_trees, self.arg_slices)]
        kwargs = self.kw_tree.unflatten(leaves[self.n_pos:])
        return args, kwargs

    def call_flat(self, leaves: Sequence) -> Any:
        args, kwargs = self.rebuild(leaves)
        return self.fun(*args, **kwargs)

    def merge(self, diff_leaves: Sequence) -> list:
        """All leaves, with the differentiated ones replaced by `diff_leaves`."""
        it = iter(diff_leaves)
        return [next(it) if w else x for x, w in zip(self.leaves, self.wrt)]

    def trace(self) -> tuple[ClosedJaxpr, PyTreeDef]:
        """Trace the function on the call's leaves; values stay readable on demand."""
        out_tree_box = []

        def flat_fun(*tracers):
            out = self.call_flat(tracers)
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            for x in out_leaves:
                if not isinstance(x, (Tracer, np.ndarray, np.generic, float, int, bool, complex)):
                    raise FungradTypeError(
                        f"{self.where}({describe_function(self.fun)}): the function returned a "
                        f"{type(x).__name__}; outputs must be arrays or pytrees of arrays")
            return out_leaves

        closed = trace_to_jaxpr(flat_fun, [aval_of(x) for x in self.leaves],
                                sources=self.leaves)
        return closed, out_tree_box[0]

    def unflatten_wrt(self, flat: Sequence) -> Any:
        """Per-argnum pytrees from the flat differentiated leaves (a tuple if argnums was)."""
        out, pos = [], 0
        for i in self.argnums:
            lo, hi = self.arg_slices[i]
            out.append(self.arg_trees[i].unflatten(flat[pos:pos + hi - lo]))
            pos += hi - lo
        return tuple(out) if self.is_tuple else out[0]



def prepare_call(where: str, fun: Callable, args: tuple, kwargs: dict, argnums) -> PreparedCall:
    if not callable(fun):
        raise FungradTypeError(f"{where}: expected a function, got {type(fun).__name__}")
    return PreparedCall(where, fun, args, kwargs, argnums)


def check_scalar_output(where: str, fun: Callable, closed: ClosedJaxpr, out_tree: PyTreeDef,
                        has_aux: bool) -> int:
    """The output must be one real scalar (or (scalar, aux)); returns its leaf count (1)."""
    name = describe_function(fun)
    if has_aux:
        if out_tree.node_type not in (tuple, list) or len(out_tree.children) != 2:
            raise FungradTypeError(
                f"{where}({name}) with has_aux=True: the function must return a pair "
                f"(value, aux), but it returned {out_tree}")
        if out_tree.children[0].num_leaves != 1 or out_tree.children[0].node_type is not None:
            raise FungradTypeError(
                f"{where}({name}): the first element of (value, aux) must be a scalar array")
    elif out_tree.node_type is not None:
        raise FungradTypeError(
            f"{where}({name}): the function must return a scalar, but it returned a "
            f"{out_tree} pytree.\n  Use vjp({name}, ...) or jacobian({name}) for "
            "non-scalar or several outputs, or has_aux=True to return (value, aux).")
    aval = closed.out_avals[0]
    if aval.shape != ():
        raise FungradTypeError(
            f"{where}({name}): the function must return a scalar, but it returned "
            f"{aval}.\n  Use vjp({name}, ...) or jacobian({name}) for non-scalar outputs, "
            "or reduce the output (e.g. .sum()).")
    if not np.issubdtype(aval.dtype, np.floating):
        raise FungradTypeError(
            f"{where}({name}): the function must return a real floating-point scalar, but "
            f"it returned {aval}")
    return 1


def aux_split(where: str, fun: Callable, out_tree: PyTreeDef) -> int:
    if out_tree.node_type not in (tuple, list) or len(out_tree.children) != 2:
        raise FungradTypeError(f"{where}({describe_function(fun)}) with has_aux=True: the "
                               f"function must return (out, aux), got {out_tree}")
    return out_tree.children[0].num_leaves


_rewrites = new_cache("api.rewrites", 1024)


def cached_rewrite(kind: tuple, closed: ClosedJaxpr, build: Callable) -> Any:
    """`build(jaxpr)`, cached by (kind, the program's structure).  Constants are
    not part of the key: they stay inputs of the rewritten program."""
    key = (kind, jaxpr_key(closed.jaxpr, with_source=True))
    hit = _rewrites.get(key)
    if hit is not None:
        return hit
    return _rewrites.put(key, build(closed.jaxpr))


def execute(jaxpr, consts: Sequence, args: Sequence) -> list:
    """Run a rewritten program: inlined into the enclosing trace when there is one
    (or when any value is a tracer), else on the backend with concrete arrays."""
    if current_trace() is not None or any(isinstance(x, Tracer) for x in args) or any(
            isinstance(x, Tracer) for x in consts):
        return eval_jaxpr(jaxpr, consts, *args)
    return [as_array(x) for x in backend_execute(jaxpr, consts, args)]
