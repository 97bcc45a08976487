"""autograd's loop-style optimizers (`autograd.misc.optimizers`).

Each runs `num_iters` steps from `x0` and returns the final parameters:

    params = adam(grad(objective), init_params, step_size=0.01, num_iters=500,
                  callback=print_perf)

`grad_fn(x, i)` is called with the current parameters (any pytree) and the step
number, and `callback(x, i, g)`, if given, after each gradient evaluation.  The
parameters are flattened into one vector for the update (autograd's
`unflatten_optimizer`), so the update rules see a single array.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..flatten_util import ravel_pytree

__all__ = ["unflatten_optimizer", "sgd", "rmsprop", "adam"]


def unflatten_optimizer(optimize: Callable) -> Callable:
    """Lift an optimizer written for a flat vector `x` (with `grad(x, i)` and
    `callback(x, i, g)` on vectors) to one taking pytrees of parameters."""
    @functools.wraps(optimize)
    def _optimize(grad, x0, callback=None, *args, **kwargs):
        flat_x0, unflatten = ravel_pytree(x0)

        def _grad(x, i):
            return ravel_pytree(grad(unflatten(x), i))[0]
        if callback:
            def _callback(x, i, g):
                return callback(unflatten(x), i, unflatten(g))
        else:
            _callback = None
        return unflatten(optimize(_grad, np.asarray(flat_x0), _callback, *args, **kwargs))
    return _optimize


@unflatten_optimizer
def sgd(grad, x, callback=None, num_iters: int = 200, step_size: float = 0.1,
        mass: float = 0.9) -> Any:
    """Stochastic gradient descent with momentum:
    `v <- mass * v - (1 - mass) * g`, `x <- x + step_size * v`."""
    velocity = np.zeros(len(x), dtype=x.dtype)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        velocity = mass * velocity - (1.0 - mass) * g
        x = x + step_size * velocity
    return x


@unflatten_optimizer
def rmsprop(grad, x, callback=None, num_iters: int = 100, step_size: float = 0.1,
            gamma: float = 0.9, eps: float = 10**-8) -> Any:
    """Root mean squared prop: `a <- gamma * a + (1 - gamma) * g**2`,
    `x <- x - step_size * g / (sqrt(a) + eps)`."""
    avg_sq_grad = np.ones(len(x), dtype=x.dtype)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        avg_sq_grad = avg_sq_grad * gamma + g**2 * (1 - gamma)
        x = x - step_size * g / (np.sqrt(avg_sq_grad) + eps)
    return x


@unflatten_optimizer
def adam(grad, x, callback=None, num_iters: int = 100, step_size: float = 0.001,
         b1: float = 0.9, b2: float = 0.999, eps: float = 10**-8) -> Any:
    """Adam as described in http://arxiv.org/pdf/1412.6980.pdf (autograd's loop):
    bias-corrected moments, `x <- x - step_size * m_hat / (sqrt(v_hat) + eps)`."""
    m = np.zeros(len(x), dtype=x.dtype)
    v = np.zeros(len(x), dtype=x.dtype)
    for i in range(num_iters):
        g = np.asarray(grad(x, i))
        if callback:
            callback(x, i, g)
        m = (1 - b1) * g + b1 * m
        v = (1 - b2) * (g**2) + b2 * v
        m_hat = m / (1 - b1**(i + 1))
        v_hat = v / (1 - b2**(i + 1))
        x = x - step_size * m_hat / (np.sqrt(v_hat) + eps)
    return x
