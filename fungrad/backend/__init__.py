"""The backend: `codegen.py` turns a jaxpr into Python source, `numba_jit.py`
compiles it with numba (the only module that imports numba, on the first compile)
and caches kernels in memory and on disk, and `execution.py` is the one policy
that decides, per call, between the interpreter and a kernel."""
from __future__ import annotations

from .execution import Executable, clear_caches, executable, execute, kernel_for  # noqa: F401

__all__ = ["Executable", "executable", "execute", "kernel_for", "clear_caches"]
