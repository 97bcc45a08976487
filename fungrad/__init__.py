"""fungrad: functional automatic differentiation on NumPy, compiled with numba.

    import fungrad as fg, fungrad.numpy as fnp
    fg.grad(lambda x: (x + 2) ** 2 + 3)(2.0)        # 8.0
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import lax, numpy, tree_util  # noqa: F401  (numpy installs the Tracer operators)
from .core import ClosedJaxpr, Jaxpr, ShapedArray  # noqa: F401
from .errors import (ConcretizationError, FungradError, TracerArrayConversionError,  # noqa: F401
                     TracerBoolConversionError, TracerIntegerConversionError,
                     UnexpectedTracerError)
from .lax import stop_gradient  # noqa: F401
from .tracing import make_jaxpr  # noqa: F401
from .transforms.ad import (grad, hessian, jacfwd, jacobian, jacrev, jvp, linearize,  # noqa: F401
                            value_and_grad, vjp)
from .transforms.vmap import vmap  # noqa: F401

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "jacobian",
           "hessian", "vmap", "make_jaxpr", "stop_gradient", "lax", "numpy", "tree_util",
           "ShapedArray", "Jaxpr", "ClosedJaxpr", "FungradError"]
