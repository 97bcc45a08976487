"""`fungrad.jit`: trace once per (pytree structure, avals, static values), compile
the jaxpr into one numba kernel (in the background, see backend/execution.py),
and call the kernel once it is ready.

    import fungrad as fg, fungrad.numpy as fnp
    step = fg.jit(fg.grad(lambda w, x: fnp.sum(fnp.tanh(x @ w))))
    step(w, x)          # traces; runs interpreted while the kernel compiles
    step.lower(w, x).compile()   # or: wait for the kernel now (JAX's AOT spelling)

Like JAX, `f` is assumed pure: values it closes over are read once, when it is
traced.  Inside another transform (`grad(jit(f))`, `vmap(jit(f))`) a jitted
function is traced through, so its equations join the enclosing program.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from .arrays import Array, as_array, plain
from .caches import register
from .config import config
from .core import ClosedJaxpr, ShapedArray
from .errors import (FungradTypeError, FungradValueError, describe_function, format_location,
                     int_overflow_error, user_location)
from .pytree import tree_flatten
from .backend import executable
from .tracing import Tracer, current_trace, trace_to_jaxpr
from .transforms.simplify import simplify_jaxpr

__all__ = ["JittedFunction", "Lowered", "Compiled"]

_ARRAY = np.ndarray
# Python scalars are traced with weak types: they adopt the dtype of the arrays they
# meet, as the Python scalar itself would (`jit(lambda x, n: x * n)(f32, 3)` is f32)
_SCALAR_AVALS = {float: ShapedArray((), np.float64, weak_type=True),
                 int: ShapedArray((), np.int64, weak_type=True),
                 bool: ShapedArray((), np.bool_, weak_type=True),
                 complex: ShapedArray((), np.complex128, weak_type=True)}


def _leaf_sig(x: Any):
    """The part of a leaf that selects a trace: (shape, dtype) or the scalar type."""
    if type(x) is _ARRAY:
        return (x.shape, x.dtype)
    t = type(x)
    if t in _SCALAR_AVALS:
        return t
    if isinstance(x, np.generic):
        return ((), x.dtype)
    if isinstance(x, np.ndarray):
        return (x.shape, x.dtype)
    arr = np.asarray(x)
    return (arr.shape, arr.dtype)


def _fast_sig(x: Any):
    """`_leaf_sig` for the common leaves; None (never a cache key) for anything else."""
    t = type(x)
    if t is _ARRAY or t is Array:
        return (x.shape, x.dtype)
    return t if t in _SCALAR_AVALS else None


def _aval(sig) -> ShapedArray:
    """The type of a leaf, when a trace is made (cache hits never get here)."""
    if isinstance(sig, type):
        return _SCALAR_AVALS[sig]
    shape, dtype = sig
    if dtype.kind not in "biufc":
        raise FungradTypeError(
            f"jit: an argument of dtype {dtype} is not a numeric array, at "
            f"{format_location(user_location())}; arguments must be arrays, scalars, or "
            "pytrees (tuple, list, dict) of them.\n  Pass other values with static_argnums.")
    return ShapedArray(shape, dtype)


class _Compiled:
    """One trace of the function: its jaxpr, constants, output tree, and how it runs
    (`backend.Executable`, which alone decides between kernel and interpreter)."""
    __slots__ = ("closed", "out_tree", "executable", "consts", "unflatten")

    def __init__(self, closed: ClosedJaxpr, out_tree, label: str | None = None):
        self.closed, self.out_tree = closed, out_tree
        self.executable = executable(closed.jaxpr, tiered=False, label=label)
        self.consts = [plain(c) for c in closed.consts]
        self.unflatten = _fast_unflatten(out_tree)

    def run(self, leaves: Sequence) -> Any:
        fn = self.executable.direct()
        if fn is not None:
            # compiled and checked, no 0-d arguments or results: call numba directly
            try:
                return self.unflatten(fn(*self.consts, *leaves))
            except Exception:  # noqa: BLE001 - the general path below reports it
                pass
        return self.unflatten(self.run_flat(leaves))

    def run_flat(self, leaves: Sequence) -> list:
        """All outputs of the program as a list (guard predicates included)."""
        # a Python int is an int64 (weakly typed): one beyond its range raises
        # OverflowError here, as numba does, whichever tier runs the program
        leaves = [np.int64(x) if type(x) is int else x for x in leaves]
        return self.executable(self.consts, leaves)


class _Guarded:
    """The traced paths of a function whose Python control flow depends on traced
    values.  Each path is a program specialised to the decisions taken when it was
    traced; it also computes those decisions (its guards), which are checked after
    every call.  A call whose decisions match no path traces a new one."""
    __slots__ = ("jitted", "template", "paths")

    def __init__(self, jitted: "JittedFunction", template: tuple, first: "_Path"):
        self.jitted, self.template, self.paths = jitted, template, [first]

    def run(self, leaves: Sequence) -> Any:
        for i, path in enumerate(self.paths):
            outs = path.try_run(leaves)
            if outs is not None:
                if i:
                    self.paths.insert(0, self.paths.pop(i))  # most recent path first
                return path.compiled.unflatten(outs)
        limit = config.jit_max_paths
        if len(self.paths) >= limit:
            raise FungradTypeError(
                f"jit({describe_function(self.jitted.fun)}): Python control flow on traced "
                f"values has produced {len(self.paths)} different paths (the limit is "
                f"{limit}, fungrad.config 'jit_max_paths').\n  Each `if`/`while` on a traced "
                "value specialises the compiled program; write data-dependent branches with "
                "fungrad.lax.cond / fungrad.lax.while_loop or fungrad.numpy.where instead.")
        concrete = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in leaves]
        path = self.jitted._trace(*self.template, leaves=concrete)
        assert isinstance(path, _Path)
        self.paths.insert(0, path)
        outs = path.try_run(leaves)
        if outs is None:
            raise AssertionError("jit: a freshly traced path does not match its own guards")
        return path.compiled.unflatten(outs)


class _Path:
    """One specialised program: outputs, then one output per guard."""
    __slots__ = ("compiled", "n_out", "expected")

    def __init__(self, compiled: _Compiled, n_out: int, expected: list):
        self.compiled, self.n_out, self.expected = compiled, n_out, expected

    def try_run(self, leaves: Sequence) -> list | None:
        """The outputs when every guard holds for these inputs, else None."""
        try:
            with np.errstate(all="ignore"):
                outs = self.compiled.run_flat(leaves)
        except Exception:  # noqa: BLE001 - another path may be the right one
            return None
        for value, expected in zip(outs[self.n_out:], self.expected, strict=True):
            if not np.array_equal(value, expected):
                return None
        return outs[:self.n_out]


def _fast_unflatten(out_tree) -> Callable:
    """out_tree.unflatten of the outputs as `fungrad.Array`s (the one place jit's
    results are made), short-cut for a single array and a flat tuple of arrays."""
    if out_tree.node_type is None and out_tree.children == () and out_tree.num_leaves == 1:
        return lambda outs: as_array(outs[0])
    if out_tree.node_type is tuple and all(
            c.node_type is None and c.num_leaves == 1 for c in out_tree.children):
        return lambda outs: tuple([as_array(x) for x in outs])
    return lambda outs: out_tree.unflatten([as_array(x) for x in outs])


class Lowered:
    """A traced and lowered call: `as_text()` shows the jaxpr and the kernel source;
    `compile()` compiles the kernel now, in the calling thread (JAX's AOT spelling)."""

    def __init__(self, compiled: _Compiled, jitted: "JittedFunction", leaves: Sequence):
        self._compiled, self._jitted, self._leaves = compiled, jitted, leaves

    @property
    def jaxpr(self) -> ClosedJaxpr:
        return self._compiled.closed

    def as_text(self) -> str:
        """The jaxpr, then the generated kernel source (or why there is none)."""
        kernel = self._compiled.executable.kernel()
        if kernel.source is None:
            code = f"# no kernel: {kernel.fallback}; runs in the interpreter"
        else:
            code = kernel.source.source
        return f"{self._compiled.closed.jaxpr}\n\n{code}"

    def compile(self) -> "Compiled":
        """Compile the kernel for the lowered arguments' types now, waiting for it
        (a call of the jitted function may otherwise run in the interpreter while its
        kernel compiles in the background).  Returns a callable taking the same
        arguments as the jitted function."""
        leaves = [x if isinstance(x, np.ndarray) else np.asarray(x) for x in self._leaves]
        self._compiled.executable.compile_now(self._compiled.consts, leaves)
        return Compiled(self._jitted, self._compiled)


class Compiled:
    """The result of `jit(f).lower(*args).compile()`: calls `f`'s compiled kernel."""

    def __init__(self, jitted: "JittedFunction", compiled: _Compiled):
        self._jitted, self._compiled = jitted, compiled

    def __call__(self, *args, **kwargs):
        return self._jitted(*args, **kwargs)

    def as_text(self) -> str:
        """The jaxpr and the kernel source, as `Lowered.as_text()`."""
        return Lowered(self._compiled, self._jitted, ()).as_text()


def _normalize_static(fun, static_argnums, static_argnames) -> tuple[tuple, tuple]:
    if static_argnums is None:
        static_argnums = ()
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if static_argnames is None:
        static_argnames = ()
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    for a in static_argnums:
        if not isinstance(a, (int, np.integer)):
            raise FungradTypeError(f"jit({describe_function(fun)}): static_argnums must be "
                                   f"ints, got {static_argnums!r}")
    return tuple(int(a) for a in static_argnums), tuple(static_argnames)


class JittedFunction:
    """The result of `jit(f)`: callable like `f`; `.lower(*args)` exposes the program."""

    def __init__(self, fun: Callable, static_argnums=(), static_argnames=(), donate_argnums=()):
        if not callable(fun):
            raise FungradTypeError(f"jit: expected a function, got {type(fun).__name__}")
        # first: update_wrapper copies fun.__dict__ (custom_jvp objects have a `.fun`)
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.static_argnums, self.static_argnames = _normalize_static(
            fun, static_argnums, static_argnames)
        # donation is a hint in JAX too; kernels never write into their inputs
        self.donate_argnums = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(
            donate_argnums or ())
        self._plain = not self.static_argnums and not self.static_argnames
        self._cache: dict = {}
        _jitted.add(self)

    # --- the hot path -------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        try:
            if self._plain and not kwargs:
                # fast path: every argument a leaf (array or scalar)
                key = tuple([_fast_sig(a) for a in args])
                hit = self._cache.get(key)
                if hit is not None and current_trace() is None:
                    return hit.run(args)
            if current_trace() is not None or _has_tracer(args, kwargs):
                return self.fun(*args, **kwargs)   # inline into the enclosing trace
            return self._slow_call(args, kwargs)
        except OverflowError:
            # a Python int argument beyond int64 (checked here, off the hot path)
            for leaf in tree_flatten((args, kwargs))[0]:
                if type(leaf) is int and not -2**63 <= leaf < 2**63:
                    raise int_overflow_error(
                        leaf, f"jit({describe_function(self.fun)}): ") from None
            raise

    def _split(self, args: tuple, kwargs: dict):
        n = len(args)
        nums = set()
        for a in self.static_argnums:
            if not -n <= a < n:
                raise FungradValueError(
                    f"jit({describe_function(self.fun)}): static_argnums={self.static_argnums} "
                    f"but the function was called with {n} positional argument(s)")
            nums.add(a % n)
        static = []
        for i in sorted(nums):
            static.append(("arg", i, self._hashable(args[i], f"argument {i}")))
        for name in self.static_argnames:
            if name in kwargs:
                static.append(("kw", name, self._hashable(kwargs[name], f"argument {name!r}")))
        dyn_args = [a for i, a in enumerate(args) if i not in nums]
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return tuple(static), nums, dyn_args, dyn_kwargs

    def _hashable(self, value, what):
        try:
            hash(value)
        except TypeError:
            raise FungradTypeError(
                f"jit({describe_function(self.fun)}): static {what} has type "
                f"{type(value).__name__}, which is not hashable.\n  Static arguments are "
                "cache keys, hashed by value: pass a tuple instead of a list (or a frozen "
                "object), or make the argument non-static.") from None
        return value

    def _lookup(self, args: tuple, kwargs: dict) -> tuple[_Compiled, list]:
        static, nums, dyn_args, dyn_kwargs = self._split(args, kwargs)
        leaves, tree = tree_flatten((dyn_args, dyn_kwargs))
        sigs = tuple([_leaf_sig(x) for x in leaves])
        key = (tree, sigs, static) if not self._plain or kwargs or tree != _flat_tree(
            len(args)) else sigs
        hit = self._cache.get(key)
        if hit is None:
            template = (args, kwargs, static, nums, tree, sigs)
            concrete = [x if type(x) is _ARRAY or type(x) in _SCALAR_AVALS or isinstance(
                x, np.generic) else np.asarray(x) for x in leaves]
            hit = self._trace(*template, leaves=concrete)
            if isinstance(hit, _Path):
                hit = _Guarded(self, template, hit)
            self._cache[key] = hit
        return hit, leaves

    def _slow_call(self, args: tuple, kwargs: dict):
        compiled, leaves = self._lookup(args, kwargs)
        leaves = [x if type(x) is _ARRAY or type(x) in _SCALAR_AVALS or isinstance(x, np.generic)
                  else np.asarray(x) for x in leaves]
        return compiled.run(leaves)

    def _trace(self, args, kwargs, static, nums, tree, sigs, leaves=None):
        """Trace for these avals.  With concrete `leaves`, Python decisions on traced
        values are allowed and recorded as guards: the result is then a `_Path`."""
        fun = self.fun
        n_args = len(args)
        out_tree_box = []
        guards: list = []

        def flat_fun(*tracers):
            dyn_args, dyn_kwargs = tree.unflatten(tracers)
            it = iter(dyn_args)
            full_args = [args[i] if i in nums else next(it) for i in range(n_args)]
            full_kwargs = dict(dyn_kwargs)
            for kind, name, value in static:
                if kind == "kw":
                    full_kwargs[name] = value
            out = fun(*full_args, **full_kwargs)
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append((out_tree, len(out_leaves)))
            return list(out_leaves) + [predicate for predicate, _ in guards]

        closed = trace_to_jaxpr(flat_fun, [_aval(s) for s in sigs], sources=leaves,
                                guards=guards if leaves is not None else None)
        jaxpr = simplify_jaxpr(closed.jaxpr)
        closed = ClosedJaxpr(jaxpr, closed.consts)
        out_tree, n_out = out_tree_box[0]
        compiled = _Compiled(closed, out_tree, f"jit({describe_function(fun)})")
        if guards:
            return _Path(compiled, n_out, [expected for _, expected in guards])
        return compiled

    # --- inspection ---------------------------------------------------------------------

    def lower(self, *args, **kwargs) -> Lowered:
        """Trace (or reuse the trace) for these arguments; `.as_text()` shows the
        jaxpr and the generated kernel source."""
        compiled, leaves = self._lookup(args, kwargs)
        if isinstance(compiled, _Guarded):
            compiled = compiled.paths[0].compiled
        return Lowered(compiled, self, leaves)

    def clear_cache(self) -> None:
        self._cache.clear()

    def __repr__(self) -> str:
        return f"jit({describe_function(self.fun)})"

    def __reduce__(self):
        # the function and its static configuration only: traces and kernels are
        # rebuilt (or loaded from the receiving machine's disk cache) where it lands
        return JittedFunction, (self.fun, self.static_argnums, self.static_argnames,
                                self.donate_argnums)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)


@functools.lru_cache(maxsize=64)
def _flat_tree(n: int):
    return tree_flatten(([0] * n, {}))[1]


register("jit.flat_trees", _flat_tree.cache_clear, lambda: _flat_tree.cache_info().currsize)
# every jitted function's traces (one per argument signature), cleared together
_jitted: "weakref.WeakSet[JittedFunction]" = weakref.WeakSet()


def _clear_traces() -> None:
    for jitted in list(_jitted):
        jitted.clear_cache()


register("jit.traces", _clear_traces, lambda: sum(len(f._cache) for f in list(_jitted)))


def _has_tracer(args, kwargs) -> bool:
    for a in args:
        if isinstance(a, Tracer):
            return True
    leaves, _ = tree_flatten((args, kwargs))
    return any(isinstance(x, Tracer) for x in leaves)
