"""fungrad: functional automatic differentiation on NumPy, compiled with numba.

    import fungrad as fg, fungrad.numpy as fnp
    fg.grad(lambda x: (x + 2) ** 2 + 3)(2.0)        # 8.0
"""
from __future__ import annotations

from ._version import __version__  # noqa: F401

from .arrays import as_array

import numpy as _np

from . import lax, numpy, tree_util  # noqa: F401  (numpy installs the Tracer operators)
from .core import ClosedJaxpr, Jaxpr, ShapedArray  # noqa: F401
from .errors import (ConcretizationError, FungradError, TracerArrayConversionError,  # noqa: F401
                     TracerBoolConversionError, TracerIntegerConversionError,
                     UnexpectedTracerError)
from .lax import stop_gradient  # noqa: F401
from .api import (grad, hessian, jacfwd, jacobian, jacrev, jit, jvp, linear_transpose,  # noqa: F401
                  linearize, make_jaxpr, value_and_grad, vjp, vmap)
from . import nn, viz  # noqa: F401,E402  (activations/losses; graph pictures)
from . import random  # noqa: F401,E402  (counter-based random numbers, JAX's streams)
from .caches import clear_caches  # noqa: F401,E402  (every in-process cache)
from .config import config  # noqa: F401,E402  (fungrad.config.update("debug_nans", True))
from .hop import checkpoint, checkpoint_policies, custom_jvp, custom_vjp, remat  # noqa: F401,E402
from .errors import FungradFloatingPointError  # noqa: F401,E402
from . import extend  # noqa: F401,E402  (Primitive and helpers for user-defined primitives)
from . import testing  # noqa: F401,E402  (check_grads, numerical_jvp; strategies import hypothesis lazily)
from . import sparse  # noqa: F401,E402  (sparse derivatives; scipy is imported on first use)
from .sparse import (hessian_sparsity, jacobian_sparsity, sparse_hessian,  # noqa: F401,E402
                     sparse_jacobian)
from . import debug, flatten_util, misc, optimizers, tree  # noqa: F401,E402  (pytree helpers, optimizers)
from .primitives.callback import pure_callback  # noqa: F401,E402
from .helpers import (ShapeDtypeStruct, elementwise_grad, eval_shape,  # noqa: F401,E402
                      hessian_vector_product, hvp)

from .arrays import Array  # noqa: E402  (a NumPy array with .at[] and .block_until_ready())

# JAX names for where values live: fungrad computes on the CPU with NumPy arrays,
# so a value is always "on the device" and always ready.


def _to_array(x):
    return as_array(_np.asarray(x))


def device_put(x, device=None):
    """JAX's device_put: the pytree `x` with every leaf as a `fungrad.Array` (a NumPy
    array with `.at[...]`); no copy is made of leaves that are already arrays.

    >>> fungrad.device_put({"w": [1.0, 2.0]})["w"].at[0].set(5.0)   # array([5., 2.])
    """
    return tree_util.tree_map(_to_array, x)


def device_get(x):
    """JAX's device_get: the pytree `x` with every array leaf as a plain `numpy.ndarray`
    (fungrad's values already live in host memory; nothing is copied)."""
    return tree_util.tree_map(lambda leaf: _np.asarray(leaf) if isinstance(
        leaf, (_np.ndarray, _np.generic)) else leaf, x)


def block_until_ready(x):
    """JAX's block_until_ready: fungrad computes synchronously, so this returns `x`
    (any pytree) unchanged."""
    return x


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "jacobian",
           "hessian", "vmap", "jit", "make_jaxpr", "stop_gradient", "lax", "numpy", "tree_util",
           "ShapedArray", "Jaxpr", "ClosedJaxpr", "FungradError", "config", "custom_jvp",
           "custom_vjp", "checkpoint", "remat", "checkpoint_policies", "linear_transpose",
           "extend", "TracerBoolConversionError", "ConcretizationError",
           "TracerArrayConversionError", "TracerIntegerConversionError",
           "UnexpectedTracerError", "FungradFloatingPointError", "Array", "device_put",
           "block_until_ready", "device_get", "clear_caches", "sparse_jacobian", "sparse_hessian",
           "jacobian_sparsity", "hessian_sparsity", "sparse", "tree", "flatten_util",
           "optimizers", "misc", "eval_shape", "ShapeDtypeStruct", "hvp",
           "hessian_vector_product", "elementwise_grad", "pure_callback", "debug"]
