"""`fungrad.distributed`: derivatives over data that is chunked with Dask.

Two kinds of work outgrow one process: a loss summed over a dataset of many
chunks, and many independent problems.  This module runs both on Dask (a
`distributed.Client` when one is active, Dask's threads otherwise):

    import dask.array as da, fungrad as fg, fungrad.numpy as fnp
    import fungrad.distributed as fgd

    def loss(w, X, y):                     # a sum over the rows of X and y
        z = X @ w
        return fnp.sum(fnp.logaddexp(0.0, z) - y * z)

    X = da.from_array(X_np, chunks=(100_000, 100)).persist()
    y = da.from_array(y_np, chunks=100_000).persist()
    value, g = fgd.value_and_grad(loss)(w, X, y)
    fit = fgd.minimize(loss, w0, X, y)           # SciPy here, gradients on the cluster

The model: `loss(params, *data)` must be a sum over the rows (the leading axis)
of every data array, so that the loss of the whole dataset is the sum of the
losses of its row blocks.  Each block runs one compiled `value_and_grad`, and
Dask adds the blocks' results in a tree.  `params` is any pytree; it enters the
task graph once per call.  `loss` travels to the workers by pickling (Dask uses
cloudpickle, so lambdas and closures work); each worker traces and compiles it
once per block shape, or loads the kernel from its own on-disk cache
(`FUNGRAD_CACHE_DIR`, node-local).  Blocks shorter than the others (the last
one, usually) are padded to the common block length and masked, so a ragged
layout costs one more program, not one per block.

`import fungrad` never imports this module or Dask; install the extra with
`pip install fungrad[distributed]`.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Sequence

import dask
import dask.array as da
import numpy as np
import scipy.optimize

from .api import jvp as _jvp, value_and_grad as _value_and_grad, vjp as _vjp, vmap as _vmap
from .backend.numba_jit import stats as _kernel_stats
from .caches import new_cache
from .errors import FungradTypeError, FungradValueError, describe_function
from .jitted import JittedFunction
from .pytree import tree_flatten, tree_map, tree_unflatten
from .tracing import make_jaxpr
from . import numpy as fnp

try:  # the distributed scheduler is optional: Dask's threads serve without it
    import distributed as _distributed
except ImportError:  # pragma: no cover - CI installs the extra
    _distributed = None

__all__ = ["value_and_grad", "grad", "vmap", "jacobian", "minimize", "Program"]


# ---------------------------------------------------------------------------
# programs that travel: one compiled function per worker, not one per task
# ---------------------------------------------------------------------------

# the programs this process has received, by token: a task that brings a program
# this process already knows reuses its traces and kernels
_programs = new_cache("distributed.programs", 256)
_programs_lock = threading.Lock()


class Program:
    """A jitted function that pickles as (token, function) and unpickles to the
    same object in every task a process runs, so each worker traces and compiles it
    once per argument shape, however many tasks call it."""

    def __init__(self, fun: Callable, token: str | None = None):
        self.fun = fun
        self.token = token or uuid.uuid4().hex
        self.jitted = JittedFunction(fun)

    def __call__(self, *args):
        return self.jitted(*args)

    def __reduce__(self):
        return _program, (self.token, self.fun)

    def __dask_tokenize__(self):
        return ("fungrad.distributed.Program", self.token)

    def warm(self, *args) -> None:
        """Compile (or load from disk) the kernel for these argument types now."""
        self.jitted.lower(*args).compile()(*args)

    def __repr__(self) -> str:
        return f"Program({describe_function(self.fun)})"


def _program(token: str, fun: Callable) -> Program:
    with _programs_lock:
        program = _programs.get(token)
        if program is None:
            program = _programs.put(token, Program(fun, token))
    return program


def _client():
    """The active `distributed.Client`, or None (Dask's threads then run the tasks)."""
    if _distributed is None:
        return None
    try:
        return _distributed.get_client()
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# row-chunked data
# ---------------------------------------------------------------------------

class _Rows:
    """The data arguments of a call, as Dask arrays with the same row blocks."""

    def __init__(self, where: str, fun: Callable, data: Sequence):
        if not data:
            raise FungradTypeError(
                f"{where}({describe_function(fun)}): no data arrays were given; call it as "
                "f(params, X, y, ...) with Dask (or NumPy) arrays chunked along their rows")
        chunks = next((x.chunks[0] for x in data if isinstance(x, da.Array)), None)
        arrays = []
        for i, x in enumerate(data):
            if not isinstance(x, da.Array):
                x = np.asarray(x)
                if x.ndim == 0:
                    raise FungradTypeError(
                        f"{where}({describe_function(fun)}): data argument {i + 1} is a "
                        "scalar; data arrays have one row per example along axis 0 (pass a "
                        "constant as part of params instead)")
                x = da.from_array(x, chunks=(chunks or (x.shape[0],),) + x.shape[1:])
            if x.ndim == 0:
                raise FungradTypeError(
                    f"{where}({describe_function(fun)}): data argument {i + 1} is 0-d")
            if any(len(c) != 1 for c in x.chunks[1:]):
                x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
            arrays.append(x)
        first = arrays[0]
        for i, x in enumerate(arrays[1:], start=2):
            if x.shape[0] != first.shape[0]:
                raise FungradValueError(
                    f"{where}({describe_function(fun)}): data argument {i} has "
                    f"{x.shape[0]} rows but data argument 1 has {first.shape[0]}; every data "
                    "array holds one row per example")
            if x.chunks[0] != first.chunks[0]:
                raise FungradValueError(
                    f"{where}({describe_function(fun)}): data argument {i} is chunked into "
                    f"row blocks {x.chunks[0]} but data argument 1 into {first.chunks[0]}; "
                    "the blocks must line up.  Rechunk one to the other, e.g. "
                    "y = y.rechunk({0: X.chunks[0]})")
        if first.shape[0] == 0:
            raise FungradValueError(
                f"{where}({describe_function(fun)}): the data arrays have no rows")
        self.arrays = arrays
        self.sizes = first.chunks[0]
        self.full = max(self.sizes)
        # blocks of each array, in row order (other axes are one chunk each)
        self.blocks = [x.to_delayed().reshape(-1).tolist() for x in arrays]

    def block(self, b: int) -> list:
        return [blocks[b] for blocks in self.blocks]


def _literal(value, what: str):
    """`value` as one key of the task graph, named without hashing its contents."""
    return dask.delayed(value, name=f"fungrad-{what}-{uuid.uuid4().hex}", pure=False,
                        traverse=False)


def _call(fn: Callable, *args, nout: int | None = None):
    """A task calling `fn(*args)`, keyed without hashing its arguments."""
    return dask.delayed(fn, pure=False, nout=nout)(
        *args, dask_key_name=f"{fn.__name__.strip('_')}-{uuid.uuid4().hex}")


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
    """`x` grown to `n` rows by repeating its first row (finite wherever x is)."""
    extra = np.broadcast_to(x[:1], (n - x.shape[0],) + x.shape[1:])
    return np.concatenate([x, extra])


def _tree_add(*parts):
    total = parts[0]
    for part in parts[1:]:
        total = tree_map(np.add, total, part)
    return total


def _tree_reduce(items: list, fan_in: int = 8):
    """Dask tasks adding `items` (delayed pytrees of arrays) in a tree."""
    while len(items) > 1:
        items = [_call(_tree_add, *items[i:i + fan_in]) if len(items[i:i + fan_in]) > 1
                 else items[i] for i in range(0, len(items), fan_in)]
    return items[0]


# ---------------------------------------------------------------------------
# value_and_grad / grad of a sum-over-rows loss
# ---------------------------------------------------------------------------

def _masked_loss(loss: Callable) -> Callable:
    """The loss of the rows where `mask` is 1: a padded block's real rows."""
    def masked(params, mask, *rows):
        per_row = _vmap(lambda *row: loss(params, *[r[None] for r in row]))(*rows)
        return fnp.sum(mask * per_row)
    return masked


def _run_full(program: Program, params, *chunks):
    value, g = program(params, *chunks)
    return np.asarray(value), g


def _run_padded(program: Program, full: int, params, *chunks):
    n = chunks[0].shape[0]
    mask = np.zeros(full)
    mask[:n] = 1.0
    value, g = program(params, mask, *[_pad_rows(np.asarray(c), full) for c in chunks])
    return np.asarray(value), g


class DistributedValueAndGrad:
    """`value_and_grad(loss)` over row-chunked data; see the module's docstring."""

    def __init__(self, loss: Callable, keep_value: bool = True):
        if not callable(loss):
            raise FungradTypeError(f"fungrad.distributed: expected a loss function, got "
                                   f"{type(loss).__name__}")
        self.loss, self.keep_value = loss, keep_value
        self.full_program = Program(_value_and_grad(loss))
        self.padded_program = Program(_value_and_grad(_masked_loss(loss)))

    def graph(self, params, *data):
        """The Dask computation of (value, gradient) (a Delayed), not yet run."""
        rows = _Rows("fungrad.distributed.value_and_grad", self.loss, data)
        _check_params(self.loss, params)
        # params and programs are one key each: sent once to each worker per call
        params_d = _literal(params, "params")
        full = padded = None
        parts = []
        for b, size in enumerate(rows.sizes):
            if size == rows.full:
                if full is None:
                    full = _literal(self.full_program, "program")
                parts.append(_call(_run_full, full, params_d, *rows.block(b)))
            else:
                if padded is None:
                    padded = _literal(self.padded_program, "program")
                parts.append(_call(_run_padded, padded, rows.full, params_d, *rows.block(b)))
        return _tree_reduce(parts)

    def __call__(self, params, *data):
        value, g = dask.compute(self.graph(params, *data))[0]
        return (value[()] if value.ndim == 0 else value, g) if self.keep_value else g

    def prepare(self, params, *data) -> dict:
        """Trace and compile (or load from each worker's disk cache) the block
        programs on every worker now, so the first real call pays no compile.
        Returns, per worker, how many kernels it compiled and how many it loaded."""
        rows = _Rows("fungrad.distributed.value_and_grad", self.loss, data)
        specs = [(a.shape[1:], a.dtype) for a in rows.arrays]
        shapes = {size == rows.full for size in rows.sizes}
        task = _Warm(self, params, specs, rows.full, shapes)
        client = _client()
        if client is None:
            return {"local": task()}
        return client.run(task)


def _check_params(loss: Callable, params) -> None:
    leaves, _ = tree_flatten(params)
    for leaf in leaves:
        if isinstance(leaf, da.Array):
            raise FungradTypeError(
                f"fungrad.distributed({describe_function(loss)}): params hold a Dask array; "
                "params are sent whole to every block, so pass NumPy arrays (compute them "
                "first), and pass row-chunked data after params")


class _Warm:
    """Run on a worker: call the block programs on zeros of the block shapes."""

    def __init__(self, vg: DistributedValueAndGrad, params, specs, full: int, shapes: set):
        self.full_program, self.padded_program = vg.full_program, vg.padded_program
        self.params, self.specs, self.full, self.shapes = params, specs, full, shapes

    def __call__(self) -> dict:
        before = dict(_kernel_stats)
        chunks = [np.zeros((self.full,) + tuple(shape), dtype) for shape, dtype in self.specs]
        with np.errstate(all="ignore"):
            if True in self.shapes:
                self.full_program.warm(self.params, *chunks)
            if False in self.shapes:
                self.padded_program.warm(self.params, np.ones(self.full), *chunks)
        return {"compiled": _kernel_stats["compiled"] - before["compiled"],
                "loaded": _kernel_stats["cache_loaded"] - before["cache_loaded"]}


def value_and_grad(loss: Callable) -> DistributedValueAndGrad:
    """`loss(params, *data)` summed over row-chunked data: returns a function
    `(params, *data) -> (value, gradient with respect to params)`, where `data`
    are Dask arrays (or NumPy arrays, taken as one block) with the same row blocks.

    The result has `.prepare(params, *data)` (compile on every worker before the
    first call) and `.graph(params, *data)` (the Dask computation, unevaluated)."""
    return DistributedValueAndGrad(loss, keep_value=True)


def grad(loss: Callable) -> DistributedValueAndGrad:
    """Like `value_and_grad`, returning only the gradient."""
    return DistributedValueAndGrad(loss, keep_value=False)


# ---------------------------------------------------------------------------
# vmap over the rows of a Dask array
# ---------------------------------------------------------------------------

def _vmap_block(program: Program, full: int, fixed, *chunks):
    n = chunks[0].shape[0]
    if n != full:
        chunks = [_pad_rows(np.asarray(c), full) for c in chunks]
    outs, _ = tree_flatten(program(fixed, *chunks))
    return [np.asarray(o)[:n] for o in outs]


def vmap(fun: Callable, in_axes: Any = 0) -> Callable:
    """`fungrad.vmap(fun, in_axes)` over the leading axis of Dask arrays: the mapped
    arguments (in_axes 0) are split along their row blocks, each block runs one
    compiled `vmap(fun)`, and the result is a pytree of Dask arrays (lazy; call
    `.compute()` or `dask.compute`).  in_axes is 0 or None for each positional
    argument (None: the argument, any pytree, goes whole to every block)."""
    if not callable(fun):
        raise FungradTypeError(f"fungrad.distributed.vmap: expected a function, got "
                               f"{type(fun).__name__}")

    def vmapped(*args):
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise FungradValueError(
                f"fungrad.distributed.vmap({describe_function(fun)}): in_axes has "
                f"{len(axes)} entries for {len(args)} positional arguments")
        for a in axes:
            if a not in (0, None):
                raise FungradValueError(
                    f"fungrad.distributed.vmap({describe_function(fun)}): in_axes entries "
                    f"must be 0 or None (the rows of Dask arrays), got {a!r}; move the axis "
                    "to the front first (x.transpose(...))")
        mapped = [i for i, a in enumerate(axes) if a == 0]
        if not mapped:
            raise FungradValueError(
                f"fungrad.distributed.vmap({describe_function(fun)}): no argument is mapped "
                "(every in_axes entry is None)")
        fixed = tuple(args[i] for i in range(len(args)) if axes[i] is None)
        rows = _Rows("fungrad.distributed.vmap", fun, [args[i] for i in mapped])

        def call(fixed_args, *mapped_args):
            it_f, it_m = iter(fixed_args), iter(mapped_args)
            return fun(*[next(it_m) if axes[i] == 0 else next(it_f)
                         for i in range(len(args))])

        batched = _vmap(call, in_axes=(None,) + (0,) * len(mapped))
        program = _vmap_programs(fun, axes, batched)
        example = [np.zeros((1,) + a.shape[1:], a.dtype) for a in rows.arrays]
        _, shapes = make_jaxpr(batched, return_shape=True)(fixed, *example)
        out_leaves, out_tree = tree_flatten(shapes)
        fixed_d = _literal(fixed, "fixed")
        program_d = _literal(program, "program")
        columns: list[list] = [[] for _ in out_leaves]
        for b, size in enumerate(rows.sizes):
            outs = _call(_vmap_block, program_d, rows.full, fixed_d, *rows.block(b),
                         nout=len(out_leaves))
            for k, leaf in enumerate(out_leaves):
                columns[k].append(da.from_delayed(
                    outs[k], shape=(size,) + tuple(leaf.shape[1:]), dtype=leaf.dtype))
        return tree_unflatten(out_tree, [da.concatenate(c, axis=0) for c in columns])

    vmapped.__name__ = f"distributed_vmap({getattr(fun, '__name__', 'fun')})"
    return vmapped


# one Program per (function, in_axes): a call reuses the workers' kernels
_vmap_program_cache = new_cache("distributed.vmap_programs", 256)


def _vmap_programs(fun, axes, batched) -> Program:
    key = (fun, tuple(axes))
    try:
        program = _vmap_program_cache.get(key)
    except TypeError:   # an unhashable callable: a fresh program each call
        return Program(batched)
    if program is None:
        program = _vmap_program_cache.put(key, Program(batched))
    return program


# ---------------------------------------------------------------------------
# a big jacobian in column (or row) blocks
# ---------------------------------------------------------------------------

def _jac_block(program: Program, x, start: int, stop: int, block: int, size: int, dtype):
    basis = np.zeros((block, size), dtype)
    idx = np.arange(stop - start)
    basis[idx, start + idx] = 1
    return np.asarray(program(x, basis))[:stop - start]


def jacobian(fun: Callable, mode: str = "fwd", block: int = 256) -> Callable:
    """The jacobian of `fun` (one array in, one array out) as a Dask array of shape
    `out.shape + x.shape`, computed in blocks of `block` columns (`mode="fwd"`,
    batched jvps) or rows (`mode="rev"`, batched vjps), one task per block."""
    if mode not in ("fwd", "rev"):
        raise FungradValueError(
            f"fungrad.distributed.jacobian({describe_function(fun)}): mode must be 'fwd' or "
            f"'rev', got {mode!r}")
    if not isinstance(block, (int, np.integer)) or isinstance(block, bool) or block < 1:
        raise FungradValueError(
            f"fungrad.distributed.jacobian({describe_function(fun)}): block must be a "
            f"positive int, got {block!r}")
    if mode == "fwd":
        def seeds(x, basis):
            return _vmap(lambda t: _jvp(fun, (x,), (t.reshape(x.shape),))[1].reshape(-1))(
                basis)
    else:
        def seeds(x, basis):
            out, pullback = _vjp(fun, x)
            return _vmap(lambda c: pullback(c.reshape(out.shape))[0].reshape(-1))(basis)
    program = Program(seeds)

    def jac(x):
        x = np.asarray(x)
        if x.dtype.kind not in "f":
            x = x.astype(np.float64)
        _, out = make_jaxpr(fun, return_shape=True)(x)
        if not hasattr(out, "shape"):
            raise FungradTypeError(
                f"fungrad.distributed.jacobian({describe_function(fun)}): the function must "
                "return one array")
        n_in, n_out = x.size, int(np.prod(out.shape, dtype=np.int64))
        seeds_n = n_in if mode == "fwd" else n_out
        width = int(min(block, max(seeds_n, 1)))
        x_d = _literal(x, "x")
        program_d = _literal(program, "program")
        other = n_out if mode == "fwd" else n_in
        parts = []
        for start in range(0, seeds_n, width):
            stop = min(start + width, seeds_n)
            parts.append(da.from_delayed(
                _call(_jac_block, program_d, x_d, start, stop, width, seeds_n,
                      x.dtype if mode == "fwd" else out.dtype),
                shape=(stop - start, other), dtype=np.result_type(out.dtype, x.dtype)))
        stacked = da.concatenate(parts, axis=0) if parts else da.zeros((0, other))
        if mode == "fwd":     # stacked is (inputs, outputs)
            return stacked.T.reshape(tuple(out.shape) + x.shape)
        return stacked.reshape(tuple(out.shape) + x.shape)

    jac.__name__ = f"distributed_jacobian({getattr(fun, '__name__', 'fun')})"
    return jac


# ---------------------------------------------------------------------------
# minimize: SciPy here, gradients on the cluster
# ---------------------------------------------------------------------------

def _ravel(params) -> tuple[np.ndarray, Callable]:
    leaves, tree = tree_flatten(params)
    arrays = [np.asarray(leaf, dtype=np.float64) for leaf in leaves]
    sizes = [a.size for a in arrays]
    shapes = [a.shape for a in arrays]
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)

    def unravel(v: np.ndarray):
        out, at = [], 0
        for size, shape in zip(sizes, shapes):
            out.append(np.asarray(v[at:at + size]).reshape(shape))
            at += size
        return tree_unflatten(tree, out)

    return flat, unravel


def minimize(loss: Callable, params0, *data, method: str = "L-BFGS-B", tol: float | None = None,
             options: dict | None = None, callback: Callable | None = None):
    """Minimise `loss(params, *data)` (a sum over row-chunked data) with
    `scipy.optimize.minimize`: SciPy runs here, each value and gradient runs on the
    cluster.  The data are persisted once (in the workers' memory when a
    `distributed.Client` is active).  Returns SciPy's `OptimizeResult`, whose `x`
    has the structure of `params0` (`x_flat` holds SciPy's vector)."""
    if method.upper() not in ("L-BFGS-B", "BFGS", "CG", "NEWTON-CG", "TNC", "SLSQP",
                              "TRUST-CONSTR"):
        raise FungradValueError(
            f"fungrad.distributed.minimize({describe_function(loss)}): method {method!r} does "
            "not use gradients; use one of L-BFGS-B, BFGS, CG, Newton-CG, TNC, SLSQP")
    data = dask.persist(*[x for x in data])
    vg = value_and_grad(loss)
    vg.prepare(params0, *data)
    flat0, unravel = _ravel(params0)

    def fun(v):
        value, g = vg(unravel(v), *data)
        return float(value), _ravel(g)[0]

    user_callback = None if callback is None else (lambda v, *a: callback(unravel(v)))
    result = scipy.optimize.minimize(fun, flat0, jac=True, method=method, tol=tol,
                                     options=options, callback=user_callback)
    result["x_flat"] = result.x
    result["x"] = unravel(result.x)
    return result
