"""Execution of jaxprs on concrete arrays, in tiers.

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

from ..config import config
from ..core import Jaxpr, jaxpr_key
from ..interpreter import eval_jaxpr

__all__ = ["execute", "finalize", "kernel_for", "clear_caches"]


def finalize(x: Any) -> np.ndarray:
    """A result handed to the user: an ndarray that owns its (writeable) memory."""
    a = np.asarray(x)
    if a.base is not None or not a.flags.writeable:
        a = a.copy()
    return a


class _Entry:
    """Per program structure: how often it ran, and its kernel once compiled."""
    __slots__ = ("count", "kernel")

    def __init__(self):
        self.count = 0
        self.kernel = None


_by_object: "weakref.WeakKeyDictionary[Jaxpr, _Entry]" = weakref.WeakKeyDictionary()
_by_key: dict = {}
_MAX_KEYS = 4096


def _entry(jaxpr: Jaxpr) -> _Entry:
    entry = _by_object.get(jaxpr)
    if entry is None:
        key = jaxpr_key(jaxpr)
        entry = _by_key.get(key)
        if entry is None:
            if len(_by_key) >= _MAX_KEYS:
                _by_key.clear()
            entry = _by_key[key] = _Entry()
        _by_object[jaxpr] = entry
    return entry


def kernel_for(jaxpr: Jaxpr):
    """The compiled `Kernel` of `jaxpr` (shared by every jaxpr of the same structure)."""
    entry = _entry(jaxpr)
    if entry.kernel is None:
        from .numba_jit import compile_jaxpr
        entry.kernel = compile_jaxpr(jaxpr)
    return entry.kernel


def _use_interpreter() -> bool:
    return config.disable_jit or getattr(config, "debug_nans", False) or getattr(
        config, "debug_infs", False)


def execute(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    """Evaluate `jaxpr` on concrete arrays and return owned ndarrays: in the
    interpreter while the program is cold, with its numba kernel once hot."""
    if config.debug_nans or config.debug_infs:  # checked interpreter (fungrad.config)
        from ..interpreter import eval_jaxpr_checked
        return [finalize(x) for x in eval_jaxpr_checked(
            jaxpr, consts, args, config.debug_nans, config.debug_infs)]
    if not _use_interpreter():
        entry = _entry(jaxpr)
        kernel = entry.kernel
        if kernel is not None:
            return list(kernel(consts, args))
        entry.count += 1
        if entry.count > config.jit_threshold:
            return list(kernel_for(jaxpr)(consts, args))
    # Derivative programs compute inf/nan on purpose and then select them away
    # ("a zero cotangent wins"); compiled kernels never warn, nor does the interpreter.
    with np.errstate(all="ignore"):
        outs = eval_jaxpr(jaxpr, consts, *args)
    return [finalize(x) for x in outs]


def clear_caches() -> None:
    """Forget call counts and in-process kernels (the disk cache stays)."""
    _by_object.clear()
    _by_key.clear()
