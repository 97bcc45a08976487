"""`fungrad.scipy.optimize.minimize`: SciPy's minimizers driven by fungrad's gradients.

The objective and its gradient come from one `value_and_grad` (compiled with `jit`), and
SciPy's `minimize` does the iterations (BFGS, L-BFGS-B, CG, Newton-CG, ...), so the method
names, options and result fields are SciPy's.  Unlike `jax.scipy.optimize.minimize` this is
not traceable (the loop runs in SciPy), but it supports every SciPy method and bounds.

    >>> res = minimize(lambda x: fnp.sum((x - 3.0) ** 2), np.zeros(2), method="BFGS")
    >>> np.round(res.x, 6)
    array([3., 3.])
"""
from __future__ import annotations

import numpy as np
import scipy.optimize

from .. import api
from ..errors import FungradTypeError

__all__ = ["minimize", "OptimizeResults"]

OptimizeResults = scipy.optimize.OptimizeResult


def minimize(fun, x0, args=(), *, method: str = "BFGS", tol=None, options=None, bounds=None,
             constraints=(), callback=None):
    """Minimize the scalar `fun(x, *args)` over the 1-d array `x`, starting at x0.

    Returns SciPy's OptimizeResult (x, fun, jac, success, status, message, nit, ...).
    """
    x0 = np.asarray(x0)
    if x0.ndim != 1:
        raise FungradTypeError(f"minimize: x0 must be one-dimensional, got shape {x0.shape}; "
                               "ravel it (fungrad.flatten_util.ravel_pytree for pytrees)")
    dtype = x0.dtype if x0.dtype.kind == "f" else np.dtype(np.float64)
    value_and_grad = api.jit(api.value_and_grad(lambda x, *a: fun(x, *a)))

    def objective(x, *a):
        value, grad = value_and_grad(np.asarray(x, dtype), *a)
        return float(value), np.asarray(grad, np.float64)

    hess = None
    if method.lower() in ("newton-cg", "trust-ncg", "trust-krylov", "trust-exact",
                          "trust-constr", "dogleg"):
        hessian = api.jit(api.hessian(lambda x, *a: fun(x, *a)))

        def hess(x, *a):
            return np.asarray(hessian(np.asarray(x, dtype), *a), np.float64)
    result = scipy.optimize.minimize(objective, x0.astype(np.float64), args=tuple(args),
                                     method=method, jac=True, hess=hess, tol=tol,
                                     options=options, bounds=bounds, constraints=constraints,
                                     callback=callback)
    result.x = result.x.astype(dtype)
    return result
