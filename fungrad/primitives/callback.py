"""`pure_callback`: call NumPy/SciPy code on concrete values from inside traced code.

The callback runs on the host with NumPy arrays and must return arrays of the
declared shapes and dtypes (`result_shape_dtypes`, any pytree of objects with
`.shape` and `.dtype`, such as `fungrad.ShapeDtypeStruct` or arrays).  As in JAX:

* it is pure: it may be called any number of times (or not at all, when its
  result is unused), so it must not have side effects;
* it has no derivative rule: differentiating through it raises; wrap it in
  `custom_jvp` / `custom_vjp` to give it one (e.g. an adjoint SciPy solve);
* under `vmap`, `vmap_method` says how it is batched: "sequential" (one call per
  batch element), "expand_dims" (one call; unbatched arguments get a leading
  axis of size 1), "broadcast_all" (one call; every argument broadcast to the
  batch size).  The default, None, raises under vmap, as in JAX.

Under `jit` a program containing a callback runs in the NumPy interpreter (numba
kernels cannot call back into Python); the rest of fungrad's caching applies.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..arrays import as_array
from ..core import Primitive, ShapedArray
from ..errors import (FungradNotImplementedError, FungradTypeError, FungradValueError,
                      format_location, user_location)
from ..pytree import tree_flatten
from ..tracing import aval_of
from .base import bdim_to_front, broadcast_in_dim, move_axis_to_front

__all__ = ["pure_callback", "pure_callback_p", "debug_callback", "debug_callback_p"]

VMAP_METHODS = ("sequential", "sequential_unrolled", "expand_dims", "broadcast_all")


def _describe(callback) -> str:
    name = getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None) or repr(
        callback)
    where = getattr(callback, "location", None)
    return f"{name}, called at {format_location(where)}" if where is not None else name


def _impl(*args, callback, result_avals, vmap_method):
    outs = callback(*args)
    leaves, _ = tree_flatten(outs)
    if len(leaves) != len(result_avals):
        raise FungradTypeError(
            f"pure_callback({_describe(callback)}): the callback returned {len(leaves)} "
            f"array(s), but result_shape_dtypes declares {len(result_avals)}")
    results = []
    for i, (value, aval) in enumerate(zip(leaves, result_avals, strict=True)):
        array = np.asarray(value)
        if array.shape != aval.shape:
            raise FungradValueError(
                f"pure_callback({_describe(callback)}): result {i} has shape {array.shape}, "
                f"but result_shape_dtypes declares {aval.shape}")
        if array.dtype != aval.dtype:
            if not np.can_cast(array.dtype, aval.dtype, casting="same_kind"):
                raise FungradTypeError(
                    f"pure_callback({_describe(callback)}): result {i} has dtype "
                    f"{array.dtype}, but result_shape_dtypes declares {aval.dtype}")
            array = array.astype(aval.dtype)
        results.append(np.array(array, copy=True) if array.base is not None else array)
    return tuple(results)


def _shape(*avals, callback, result_avals, vmap_method):
    return tuple(result_avals)


def _no_derivative(*args, callback, **params):
    raise FungradValueError(
        f"pure_callback({_describe(callback)}): pure callbacks have no derivative rule "
        "(fungrad cannot see inside NumPy/SciPy code).\n  Wrap the function calling "
        "pure_callback in fungrad.custom_jvp or fungrad.custom_vjp and give its derivative "
        "(for example another pure_callback computing the adjoint), as in JAX.")


def _vmap(axis_size, args, dims, *, callback, result_avals, vmap_method):
    if vmap_method not in VMAP_METHODS:
        raise FungradNotImplementedError(
            f"vmap of pure_callback({_describe(callback)}): vmap_method={vmap_method!r}; "
            f"pass vmap_method= one of {', '.join(map(repr, VMAP_METHODS))} to pure_callback "
            "(as in JAX, there is no default: only you know whether the callback handles a "
            "batch axis).")
    batched_avals = tuple(ShapedArray((axis_size,) + a.shape, a.dtype) for a in result_avals)
    if vmap_method in ("sequential", "sequential_unrolled"):
        moved = [move_axis_to_front(x, d) if d is not None else x for x, d in zip(
            args, dims, strict=True)]
        batched = tuple(d is not None for d in dims)

        def each(*arrays):
            results = []
            for i in range(axis_size):
                call_args = [a[i] if b else a for a, b in zip(arrays, batched, strict=True)]
                results.append(_impl(*call_args, callback=callback, result_avals=result_avals,
                                     vmap_method=vmap_method))
            return tuple(np.stack([r[k] for r in results]) if results else
                         np.zeros(batched_avals[k].shape, batched_avals[k].dtype)
                         for k in range(len(result_avals)))
        each.__qualname__ = f"sequential({callback.__qualname__})"
    else:
        if vmap_method == "broadcast_all":
            moved = [bdim_to_front(axis_size, x, d) for x, d in zip(args, dims, strict=True)]
        else:
            moved = [move_axis_to_front(x, d) if d is not None else broadcast_in_dim(
                x, (1,) + aval_of(x).shape, tuple(range(1, 1 + aval_of(x).ndim)))
                for x, d in zip(args, dims, strict=True)]
        each = callback
    outs = pure_callback_p.bind(*moved, callback=each, result_avals=batched_avals,
                                vmap_method=vmap_method)
    return outs, (0,) * len(outs)


pure_callback_p = Primitive("pure_callback", multiple_results=True)
pure_callback_p.def_impl(_impl)
pure_callback_p.def_shape(_shape)
pure_callback_p.def_jvp(_no_derivative)
pure_callback_p.def_vjp(_no_derivative)
pure_callback_p.def_vmap(_vmap)


def pure_callback(callback: Callable, result_shape_dtypes: Any, *args: Any,
                  vmap_method: str | None = None, **kwargs: Any) -> Any:
    """`callback(*args, **kwargs)` computed on the host with NumPy arrays, usable inside
    `jit`, `vmap` and (wrapped in custom_jvp/custom_vjp) `grad`; returns arrays shaped
    like the pytree `result_shape_dtypes` (JAX's `jax.pure_callback`).

    >>> f = lambda x: fg.pure_callback(scipy.special.j0, fg.ShapeDtypeStruct(x.shape, x.dtype), x)
    >>> fg.jit(f)(np.array([0.0, 1.0]))        # array([1.        , 0.76519769])
    """
    shape_leaves, out_tree = tree_flatten(result_shape_dtypes)
    result_avals = []
    for leaf in shape_leaves:
        if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
            raise FungradTypeError(
                f"pure_callback({_describe(callback)}): result_shape_dtypes must be a pytree "
                f"of objects with .shape and .dtype (fungrad.ShapeDtypeStruct), got a "
                f"{type(leaf).__name__}")
        result_avals.append(ShapedArray(tuple(int(d) for d in leaf.shape), np.dtype(leaf.dtype)))
    arg_leaves, in_tree = tree_flatten((args, kwargs))

    def flat_callback(*flat_args):
        call_args, call_kwargs = in_tree.unflatten(list(flat_args))
        return callback(*call_args, **call_kwargs)
    flat_callback.__qualname__ = _describe(callback)
    operands = [x if hasattr(x, "aval") or isinstance(x, np.ndarray) else np.asarray(x)
                for x in arg_leaves]
    flat = _Callback(flat_callback, (callback, in_tree), user_location(1))
    outs = pure_callback_p.bind(*operands, callback=flat,
                                result_avals=tuple(result_avals), vmap_method=vmap_method)
    return out_tree.unflatten([as_array(x) for x in outs])


class _Callback:
    """The flat callback as a primitive parameter: hashed and compared by the user's
    function (two traces of one program share caches), called with flat arrays."""
    __slots__ = ("flat", "user", "location", "__qualname__")

    def __init__(self, flat, user, location):
        self.flat, self.user = flat, user          # user: (the user's function, in_tree)
        self.location = location                   # the user's pure_callback call (for errors)
        self.__qualname__ = getattr(user[0], "__qualname__", None) or getattr(
            user[0], "__name__", None) or repr(user[0])

    def __call__(self, *args):
        return self.flat(*args)

    def __hash__(self):
        return hash(self.user)

    def __eq__(self, other):
        return isinstance(other, _Callback) and other.user[0] is self.user[0] and (
            other.user[1] == self.user[1])

    def __repr__(self):
        return self.__qualname__


# --- debug_callback: a callback run for its effect (fungrad.debug.print) -------------

def _debug_impl(*args, callback):
    callback(*args)
    return ()


def _debug_vmap(axis_size, args, dims, *, callback):
    # the batched values, batch axis first, are passed to one call (as JAX prints them)
    moved = [move_axis_to_front(x, d) if d is not None else x
             for x, d in zip(args, dims, strict=True)]
    return debug_callback_p.bind(*moved, callback=callback), ()


debug_callback_p = Primitive("debug_callback", multiple_results=True, effectful=True)
debug_callback_p.def_impl(_debug_impl)
debug_callback_p.def_shape(lambda *avals, callback: ())
# a print has no outputs, so no tangent or cotangent flows through it
debug_callback_p.def_jvp(lambda *tangents_and_args, out, callback: ())
debug_callback_p.def_vjp(lambda ct, *args, out, callback: (None,) * len(args))
debug_callback_p.def_vmap(_debug_vmap)


def debug_callback(callback: Callable, *args: Any, **kwargs: Any) -> None:
    """Call `callback(*args, **kwargs)` with the concrete values of this call, for its
    effect: eagerly at once, and inside `jit`/`grad`/`vmap` each time the program runs
    (JAX's `jax.debug.callback`).  Dead-code elimination never removes it."""
    leaves, in_tree = tree_flatten((args, kwargs))

    def flat_callback(*flat_args):
        call_args, call_kwargs = in_tree.unflatten(list(flat_args))
        callback(*call_args, **call_kwargs)
    operands = [x if hasattr(x, "aval") or isinstance(x, np.ndarray) else np.asarray(x)
                for x in leaves]
    debug_callback_p.bind(*operands, callback=_Callback(flat_callback, (callback, in_tree),
                                                        user_location(1)))
