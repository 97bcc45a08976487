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
from .errors import (FungradTypeError, FungradValueError, describe_function, format_location,
                     user_location)
from .backend import execute as backend_execute
from .config import config
from .interpreter import eval_jaxpr, eval_jaxpr_checked
from .primitives.callback import debug_callback_p
from .pytree import PyTreeDef, tree_flatten
from .tracing import Tracer, as_value, aval_of, current_trace, trace_to_jaxpr

__all__ = ["prepare_call", "check_argnums", "check_axes_spec", "check_function", "check_forward", "cached_rewrite", "execute", "as_value", "check_scalar_output",
           "aux_split", "PreparedCall"]


def _is_int(a) -> bool:
    return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))


def check_argnums(where: str, fun, argnums) -> None:
    """argnums is an int or a non-empty tuple/list of distinct ints (checked when the
    transform is made, so the error points at that line)."""
    if _is_int(argnums):
        return
    if not isinstance(argnums, (tuple, list)) or not all(_is_int(a) for a in argnums):
        raise FungradTypeError(
            f"{where}({describe_function(fun)}): argnums must be an int or a tuple of ints, "
            f"got {argnums!r}, at {format_location(user_location())}.\n  Pass e.g. "
            "argnums=0 or argnums=(0, 1).")
    if not argnums:
        raise FungradValueError(
            f"{where}({describe_function(fun)}): argnums=() selects no argument to "
            f"differentiate, at {format_location(user_location())}.\n  Name at least one "
            "positional argument.")
    if len({int(a) for a in argnums}) != len(argnums):
        raise FungradValueError(
            f"{where}({describe_function(fun)}): argnums={argnums!r} names an argument "
            f"twice, at {format_location(user_location())}.\n  Name each argument once.")


def _normalize_argnums(where: str, fun, argnums, n_args: int) -> tuple[tuple[int, ...], bool]:
    check_argnums(where, fun, argnums)
    is_tuple = not _is_int(argnums)
    nums = tuple(argnums) if is_tuple else (argnums,)
    out = []
    for a in nums:
        if not -n_args <= a < n_args:
            raise FungradValueError(
                f"{where}({describe_function(fun)}): argnums={argnums!r} but the function "
                f"was called with {n_args} positional argument(s)")
        out.append(int(a) % n_args)
    if len(set(out)) != len(out):      # (0, -1) with one argument
        raise FungradValueError(
            f"{where}({describe_function(fun)}): argnums={argnums!r} names an argument "
            f"twice for a call with {n_args} positional argument(s), at "
            f"{format_location(user_location())}")
    return tuple(out), is_tuple


def check_axes_spec(where: str, name: str, spec) -> None:
    """vmap's in_axes/out_axes: an int, None, or a tuple/list (a pytree prefix of the
    arguments) whose leaves are ints or None."""
    if spec is None or _is_int(spec):
        return
    if not isinstance(spec, (tuple, list, dict)) or (name == "in_axes" and isinstance(spec, dict)):
        raise FungradTypeError(
            f"{where}: {name} must be an int, None, or a tuple with one entry per positional "
            f"argument, got {spec!r} of type {type(spec).__name__}, at "
            f"{format_location(user_location())}.\n  Pass e.g. {name}=0 or {name}=(0, None).")
    for leaf in tree_flatten(spec, is_leaf=lambda x: x is None)[0]:
        if leaf is not None and not _is_int(leaf):
            raise FungradTypeError(
                f"{where}: every entry of {name} must be an int or None, got {leaf!r} of type "
                f"{type(leaf).__name__} in {name}={spec!r}, at "
                f"{format_location(user_location())}.\n  Use ints for the batch axis and "
                "None for unbatched entries.")


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
                                sources=self.leaves, differentiated=self.wrt)
        check_forward(closed, self.leaves)
        return closed, out_tree_box[0]

    def unflatten_wrt(self, flat: Sequence) -> Any:
        """Per-argnum pytrees from the flat differentiated leaves (a tuple if argnums was)."""
        out, pos = [], 0
        for i in self.argnums:
            lo, hi = self.arg_slices[i]
            out.append(self.arg_trees[i].unflatten(flat[pos:pos + hi - lo]))
            pos += hi - lo
        return tuple(out) if self.is_tuple else out[0]



def check_forward(closed: ClosedJaxpr, leaves: Sequence) -> None:
    """With debug_nans / debug_infs on, run the program the user wrote, checked, before
    its derivative: simplification may drop a forward value the derivative does not
    need (grad of sum(log(x - 1) * 0.0)), and the flag is about what the user wrote.
    Inside an enclosing trace (`jit(grad(f))`, `vmap(grad(f))`, `grad(grad(f))`) the
    forward program is inlined into that trace, its outputs kept alive by an effect
    that does nothing, so the program that finally runs (checked, as the flag makes
    it) computes and checks the forward values too."""
    if not (config.debug_nans or config.debug_infs):
        return
    if current_trace() is not None:
        outs = eval_jaxpr(closed.jaxpr, closed.consts, *leaves)
        kept = [o for o in outs if np.dtype(aval_of(o).dtype).kind in "fc"]
        if kept:
            debug_callback_p.bind(*kept, callback=_forward_values_checked)
        return
    if any(isinstance(x, Tracer) for x in leaves) or any(
            isinstance(c, Tracer) for c in closed.consts):
        return
    eval_jaxpr_checked(closed.jaxpr, closed.consts, leaves, config.debug_nans,
                       config.debug_infs)


def _forward_values_checked(*values) -> None:
    """The effect that keeps the forward values of a derivative alive under
    debug_nans: nothing (the checked interpreter has checked them when they were made)."""


def check_function(where: str, fun) -> None:
    if not callable(fun):
        raise FungradTypeError(
            f"{where}: expected a function, got {type(fun).__name__}, at "
            f"{format_location(user_location())}.\n  Pass the function itself: "
            f"{where}(f)(x), not {where}(f(x)).")


def prepare_call(where: str, fun: Callable, args: tuple, kwargs: dict, argnums) -> PreparedCall:
    check_function(where, fun)
    return PreparedCall(where, fun, args, kwargs, argnums)


def check_scalar_output(where: str, fun: Callable, closed: ClosedJaxpr, out_tree: PyTreeDef,
                        has_aux: bool, holomorphic: bool = False) -> int:
    """The output must be one real scalar (or (scalar, aux)), a complex one with
    `holomorphic=True` (JAX's rule); returns its leaf count (1)."""
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
    if holomorphic and aval.dtype.kind != "c":
        raise FungradTypeError(
            f"{where}({name}) with holomorphic=True requires outputs with complex dtype, "
            f"but got {aval.dtype}.")
    if aval.dtype.kind == "c" and not holomorphic:
        raise FungradTypeError(
            f"{where}({name}) requires real-valued outputs (output dtype that is a sub-dtype "
            f"of np.floating), but got {aval.dtype}.\n  For holomorphic differentiation, pass "
            "holomorphic=True. For differentiation of non-holomorphic functions involving "
            "complex outputs, use vjp directly (or differentiate a real function of the "
            "output, such as abs(out) ** 2).")
    if aval.dtype.kind not in "fc":
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
