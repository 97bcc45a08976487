"""Execution of jaxprs on concrete arrays.  The NumPy interpreter defines the
semantics; compiled paths (numba) must agree with it."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core import Jaxpr
from ..interpreter import eval_jaxpr

__all__ = ["execute", "finalize"]


def finalize(x: Any) -> np.ndarray:
    """A result handed to the user: an ndarray that owns its (writeable) memory."""
    a = np.asarray(x)
    if a.base is not None or not a.flags.writeable:
        a = a.copy()
    return a


def execute(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    """Evaluate `jaxpr` on concrete arrays and return owned ndarrays."""
    return [finalize(x) for x in eval_jaxpr(jaxpr, consts, *args)]
