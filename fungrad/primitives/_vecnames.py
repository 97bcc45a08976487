"""Which elementwise functions kernels compute with fungrad's inline, vectorisable
implementations (the numba code is backend/vecmath.py), and the kernel text that
calls one: what the primitives' `scalar_emit` rules need, without importing numba
or the backend."""
from __future__ import annotations

import numpy as np

from ..config import config, settings

__all__ = ["FUNCTIONS", "scalar_call"]

config.define("vector_math", True, env="FUNGRAD_VECTOR_MATH",
              doc="Kernels compute exp, log, tanh, ... with fungrad's vectorisable inline "
                  "functions (backend/vecmath.py, <= 2 ulp) instead of calling libm per "
                  "element; applies to kernels generated after the change.")

# the functions with an inline implementation: fungrad name -> kernel helper name
FUNCTIONS = {"exp": "_vm_exp", "log": "_vm_log", "log1p": "_vm_log1p", "expm1": "_vm_expm1",
             "tanh": "_vm_tanh", "logistic": "_vm_logistic"}


def scalar_call(name: str, x: str, dtype) -> str | None:
    """Kernel text computing function `name` of the scalar expression `x` of `dtype`
    with the inline implementation, or None (the caller emits its libm call) when
    config.vector_math is off or `dtype` is not float32/float64."""
    if not settings().vector_math:
        return None
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return f"{FUNCTIONS[name]}({x})"
    if dtype == np.float32:
        return f"{FUNCTIONS[name]}_f32({x})"
    return None
