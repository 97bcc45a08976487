"""The one execution policy: how a jaxpr runs on concrete arrays.

The NumPy interpreter defines the semantics.  A program reached by eager
transforms runs there until the same structure (`core.jaxpr_key`: the program
with canonical names, including input dtypes and shapes) has been executed
`config.jit_threshold` times; then it is compiled with numba
(`backend/codegen.py`, `backend/numba_jit.py`) and later calls run the kernel.
`fungrad.jit` compiles at once.  `FUNGRAD_DISABLE_JIT=1` (or
`config.update("disable_jit", True)`) keeps everything in the interpreter.
Nothing here imports numba until the first compile.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import numpy as np

from ..caches import clear_caches, new_cache, register
from ..config import settings
from ..core import Jaxpr, jaxpr_key
from ..interpreter import eval_jaxpr, eval_jaxpr_checked, owned_array
from .numba_jit import Kernel, compile_jaxpr

__all__ = ["Executable", "executable", "execute", "kernel_for", "clear_caches"]


class _Entry:
    """Per program structure: how often it ran, and its kernel once compiled."""
    __slots__ = ("count", "kernel")

    def __init__(self):
        self.count = 0
        self.kernel = None


_by_object: "weakref.WeakKeyDictionary[Jaxpr, _Entry]" = weakref.WeakKeyDictionary()
_by_key = new_cache("backend.kernels", 4096)   # program structure -> count and kernel
register("backend.kernels_by_jaxpr", _by_object.clear, lambda: len(_by_object))


def _entry(jaxpr: Jaxpr) -> _Entry:
    entry = _by_object.get(jaxpr)
    if entry is None:
        key = jaxpr_key(jaxpr)
        entry = _by_key.get(key)
        if entry is None:
            entry = _by_key.put(key, _Entry())
        _by_object[jaxpr] = entry
    return entry


def kernel_for(jaxpr: Jaxpr) -> Kernel:
    """The compiled `Kernel` of `jaxpr` (shared by every jaxpr of the same structure)."""
    entry = _entry(jaxpr)
    if entry.kernel is None:
        entry.kernel = compile_jaxpr(jaxpr)
    return entry.kernel


def _interpret(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    s = settings()
    if s.debug_nans or s.debug_infs:  # the checked interpreter names the first NaN/inf
        return [owned_array(x) for x in eval_jaxpr_checked(
            jaxpr, consts, args, s.debug_nans, s.debug_infs)]
    # Derivative programs compute inf/nan on purpose and then select them away
    # ("a zero cotangent wins"); compiled kernels never warn, nor does the interpreter.
    with np.errstate(all="ignore"):
        outs = eval_jaxpr(jaxpr, consts, *args)
    return [owned_array(x) for x in outs]


class Executable:
    """A program and the decision of how to run it, in one place: the interpreter
    when `disable_jit`, `debug_nans` or `debug_infs` is on; otherwise its numba
    kernel, compiled at once (`tiered=False`, what `jit` asks for) or once the
    program's structure has run `config.jit_threshold` times (`tiered=True`, eager
    transforms).  A kernel numba rejects runs the interpreter itself (with a warning)."""
    __slots__ = ("jaxpr", "tiered", "_entry")

    def __init__(self, jaxpr: Jaxpr, tiered: bool):
        self.jaxpr, self.tiered = jaxpr, tiered
        self._entry = _entry(jaxpr)

    def _kernel(self) -> Kernel | None:
        """The kernel to run now, or None for the interpreter (counts tiered calls)."""
        s = settings()   # this thread's settings (fungrad.config.override is per thread)
        if s.disable_jit or s.debug_nans or s.debug_infs:
            return None
        entry = self._entry
        kernel = entry.kernel
        if kernel is None:
            entry.count += 1
            if self.tiered and entry.count <= s.jit_threshold:
                return None
            kernel = entry.kernel = compile_jaxpr(self.jaxpr)
        return kernel

    def __call__(self, consts: Sequence, args: Sequence) -> list:
        """The program's outputs as owned ndarrays."""
        kernel = self._kernel()
        if kernel is not None:
            return list(kernel(consts, args))
        return _interpret(self.jaxpr, consts, args)

    def direct(self):
        """numba's entry point when `fn(*consts, *args)` alone gives the outputs (a
        compiled, checked kernel without 0-d arguments or results), else None."""
        s = settings()   # per jit call: one read of this thread's settings
        if s.disable_jit or s.debug_nans or s.debug_infs:
            return None
        kernel = self._entry.kernel
        return kernel.fn if kernel is not None and kernel.direct else None

    def kernel(self) -> Kernel:
        """The compiled kernel, whatever the settings (for `lower().as_text()`)."""
        return kernel_for(self.jaxpr)


def executable(jaxpr: Jaxpr, tiered: bool = True) -> Executable:
    """How `jaxpr` runs (see `Executable`); call the result with (consts, args)."""
    return Executable(jaxpr, tiered)


def execute(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    """Evaluate `jaxpr` on concrete arrays with the tiered policy: in the interpreter
    while the program is cold, with its numba kernel once hot."""
    entry = _by_object.get(jaxpr)
    s = settings()
    if entry is not None and entry.kernel is not None and not (
            s.disable_jit or s.debug_nans or s.debug_infs):
        return list(entry.kernel(consts, args))   # the hot path: one lookup
    return Executable(jaxpr, True)(consts, args)


