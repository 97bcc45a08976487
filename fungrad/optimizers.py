"""`fungrad.optimizers`: JAX's `jax.example_libraries.optimizers`.

Each optimizer is a triple of pure functions over any pytree of parameters:

    opt_init, opt_update, get_params = optimizers.adam(step_size=1e-3)
    state = opt_init(params)                         # an OptimizerState (a pytree)
    state = opt_update(i, grads, state)              # step i (0, 1, 2, ...)
    params = get_params(state)

`opt_update` is plain fungrad code, so `jit(opt_update)` (or a jitted training
step calling it) compiles it.  `step_size` is a number or a schedule `i -> step`.
autograd's loop-style `adam(grad, x0, ...)` lives in `fungrad.misc.optimizers`.
"""
from __future__ import annotations

import functools
from collections import namedtuple
from typing import Any, Callable

import numpy as np

from . import numpy as fnp
from .pytree import register_pytree_node, tree_flatten, tree_map, tree_unflatten

__all__ = ["OptimizerState", "Optimizer", "optimizer", "sgd", "momentum", "nesterov", "adagrad",
           "rmsprop", "rmsprop_momentum", "adam", "adamax", "constant", "exponential_decay",
           "inverse_time_decay", "polynomial_decay", "piecewise_constant", "make_schedule",
           "l2_norm", "clip_grads", "unpack_optimizer_state", "pack_optimizer_state"]

OptimizerState = namedtuple("OptimizerState", ["packed_state", "tree_def", "subtree_defs"])
OptimizerState.__doc__ = """The state of an optimizer: per parameter leaf, the flat
leaves of that leaf's state (`packed_state`), the parameters' structure (`tree_def`)
and each leaf state's structure (`subtree_defs`).  A pytree whose leaves are the
state arrays, so it passes through `jit`."""

register_pytree_node(
    OptimizerState,
    lambda state: ((state.packed_state,), (state.tree_def, tuple(state.subtree_defs))),
    lambda aux, children: OptimizerState(children[0], *aux))

Optimizer = namedtuple("Optimizer", ["init_fn", "update_fn", "params_fn"])


def optimizer(opt_maker: Callable) -> Callable:
    """Decorator lifting an optimizer defined on one array (`init(x) -> state`,
    `update(i, g, state) -> state`, `get_params(state) -> x`) to pytrees of arrays."""
    @functools.wraps(opt_maker)
    def tree_opt_maker(*args, **kwargs):
        init, update, get_params = opt_maker(*args, **kwargs)

        @functools.wraps(init)
        def tree_init(x0_tree):
            x0_flat, tree = tree_flatten(x0_tree)
            initial_states = [init(x0) for x0 in x0_flat]
            states_flat, subtrees = zip(*[tree_flatten(s) for s in initial_states]) if (
                initial_states) else ((), ())
            return OptimizerState(list(states_flat), tree, list(subtrees))

        @functools.wraps(update)
        def tree_update(i, grad_tree, opt_state):
            states_flat, tree, subtrees = opt_state
            grad_flat, tree2 = tree_flatten(grad_tree)
            if tree2 != tree:
                raise ValueError(
                    "optimizer update: the gradient's tree structure differs from the "
                    f"parameters' ({tree2} vs {tree}); pass grad(loss)(params) for the same "
                    "params given to init")
            states = [tree_unflatten(s, list(f)) for s, f in zip(subtrees, states_flat,
                                                                 strict=True)]
            new_states = [update(i, g, state) for g, state in zip(grad_flat, states,
                                                                   strict=True)]
            new_flat, new_subtrees = zip(*[tree_flatten(s) for s in new_states]) if (
                new_states) else ((), ())
            for a, b in zip(subtrees, new_subtrees, strict=True):
                if a != b:
                    raise TypeError("optimizer update: an optimizer's state changed structure "
                                    f"({a} -> {b})")
            return OptimizerState(list(new_flat), tree, list(subtrees))

        @functools.wraps(get_params)
        def tree_get_params(opt_state):
            states_flat, tree, subtrees = opt_state
            states = [tree_unflatten(s, list(f)) for s, f in zip(subtrees, states_flat,
                                                                 strict=True)]
            return tree_unflatten(tree, [get_params(s) for s in states])

        return Optimizer(tree_init, tree_update, tree_get_params)
    return tree_opt_maker


def _array(x):
    """A parameter as an array of an inexact dtype (ints become float64)."""
    x = fnp.asarray(x)
    return x if fnp.issubdtype(x.dtype, np.inexact) else fnp.asarray(x, dtype=np.float64)


def _step(step_size, i, x):
    """The step size at step i, in x's dtype (a float32 parameter stays float32
    when the step number is a traced int64 or the schedule computes in float64)."""
    return fnp.asarray(step_size(i), dtype=fnp.result_type(x))


def _count(i, x):
    """i + 1 in x's dtype, the exponent of the bias corrections b ** (i + 1)."""
    return fnp.asarray(i + 1, dtype=fnp.result_type(x))


# --- optimizers --------------------------------------------------------------------

@optimizer
def sgd(step_size):
    """Stochastic gradient descent: `x <- x - step_size(i) * g`."""
    step_size = make_schedule(step_size)

    def init(x0):
        return _array(x0)

    def update(i, g, x):
        return x - _step(step_size, i, x) * g

    def get_params(x):
        return x
    return Optimizer(init, update, get_params)


@optimizer
def momentum(step_size, mass: float):
    """Heavy-ball momentum: `v <- mass * v + g`, `x <- x - step_size(i) * v`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0)

    def update(i, g, state):
        x, velocity = state
        velocity = mass * velocity + g
        return x - _step(step_size, i, x) * velocity, velocity

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def nesterov(step_size, mass: float):
    """Nesterov momentum: `v <- mass * v + g`,
    `x <- x - step_size(i) * (mass * v + g)`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0)

    def update(i, g, state):
        x, velocity = state
        velocity = mass * velocity + g
        return x - _step(step_size, i, x) * (mass * velocity + g), velocity

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def adagrad(step_size, momentum: float = 0.9):
    """Adagrad with momentum: `s <- s + g**2`, `m <- (1 - momentum) * g / sqrt(s) +
    momentum * m` (0 where s is 0), `x <- x - step_size(i) * m`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i, g, state):
        x, g_sq, m = state
        g_sq = g_sq + fnp.square(g)
        g_sq_inv_sqrt = fnp.where(g_sq > 0, 1.0 / fnp.sqrt(fnp.where(g_sq > 0, g_sq, 1.0)), 0.0)
        m = (1.0 - momentum) * (g * g_sq_inv_sqrt) + momentum * m
        return x - _step(step_size, i, x) * m, g_sq, m

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def rmsprop(step_size, gamma: float = 0.9, eps: float = 1e-8):
    """RMSProp: `a <- gamma * a + (1 - gamma) * g**2`, `x <- x - step_size(i) * g /
    sqrt(a + eps)`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0)

    def update(i, g, state):
        x, avg_sq_grad = state
        avg_sq_grad = avg_sq_grad * gamma + fnp.square(g) * (1.0 - gamma)
        return x - _step(step_size, i, x) * g / fnp.sqrt(avg_sq_grad + eps), avg_sq_grad

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def rmsprop_momentum(step_size, gamma: float = 0.9, eps: float = 1e-8, momentum: float = 0.9):
    """RMSProp with momentum: `m <- momentum * m + step_size(i) * g / sqrt(a + eps)`,
    `x <- x - m`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i, g, state):
        x, avg_sq_grad, mom = state
        avg_sq_grad = avg_sq_grad * gamma + fnp.square(g) * (1.0 - gamma)
        mom = momentum * mom + _step(step_size, i, x) * g / fnp.sqrt(avg_sq_grad + eps)
        return x - mom, avg_sq_grad, mom

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def adam(step_size, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """Adam (Kingma and Ba, 2015): bias-corrected first and second moment estimates,
    `x <- x - step_size(i) * m_hat / (sqrt(v_hat) + eps)`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i, g, state):
        x, m, v = state
        m = (1 - b1) * g + b1 * m
        v = (1 - b2) * fnp.square(g) + b2 * v
        m_hat = m / (1 - b1 ** _count(i, x))
        v_hat = v / (1 - b2 ** _count(i, x))
        return x - _step(step_size, i, x) * m_hat / (fnp.sqrt(v_hat) + eps), m, v

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


@optimizer
def adamax(step_size, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """AdaMax (Adam with the infinity norm): `u <- max(b2 * u, |g|)`,
    `x <- x - step_size(i) / (1 - b1**(i + 1)) * m / (u + eps)`."""
    step_size = make_schedule(step_size)

    def init(x0):
        x0 = _array(x0)
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i, g, state):
        x, m, u = state
        m = (1 - b1) * g + b1 * m
        u = fnp.maximum(b2 * u, fnp.abs(g))
        scale = _step(step_size, i, x) / (1 - b1 ** _count(i, x))
        return x - scale * m / (u + eps), m, u

    def get_params(state):
        return state[0]
    return Optimizer(init, update, get_params)


# --- step-size schedules ----------------------------------------------------------

def constant(step_size: float) -> Callable:
    """The schedule `i -> step_size`."""
    def schedule(i):
        return step_size
    return schedule


def exponential_decay(step_size: float, decay_steps: float, decay_rate: float) -> Callable:
    """`i -> step_size * decay_rate ** (i / decay_steps)`."""
    def schedule(i):
        return step_size * decay_rate ** (i / decay_steps)
    return schedule


def inverse_time_decay(step_size: float, decay_steps: float, decay_rate: float,
                       staircase: bool = False) -> Callable:
    """`i -> step_size / (1 + decay_rate * i / decay_steps)` (floor of the ratio when
    `staircase`)."""
    if staircase:
        def schedule(i):
            return step_size / (1 + decay_rate * fnp.floor(i / decay_steps))
    else:
        def schedule(i):
            return step_size / (1 + decay_rate * i / decay_steps)
    return schedule


def polynomial_decay(step_size: float, decay_steps: int, final_step_size: float,
                     power: float = 1.0) -> Callable:
    """From `step_size` to `final_step_size` over `decay_steps` steps along
    `(1 - i / decay_steps) ** power`, then constant."""
    def schedule(step_num):
        step_num = fnp.minimum(step_num, decay_steps)
        step_mult = (1 - step_num / decay_steps) ** power
        return step_mult * (step_size - final_step_size) + final_step_size
    return schedule


def piecewise_constant(boundaries, values) -> Callable:
    """`values[k]` for `boundaries[k-1] <= i < boundaries[k]` (one more value than
    boundaries)."""
    boundaries = np.asarray(boundaries)
    values = np.asarray(values)
    if not values.shape[0] == boundaries.shape[0] + 1:
        raise ValueError("piecewise_constant: values must have one more element than "
                         f"boundaries, got {values.shape[0]} and {boundaries.shape[0]}")

    def schedule(i):
        return fnp.asarray(values)[fnp.sum(fnp.asarray(i) >= boundaries)]
    return schedule


def make_schedule(scalar_or_schedule) -> Callable:
    """A schedule from a number (constant) or a callable (used as is)."""
    if callable(scalar_or_schedule):
        return scalar_or_schedule
    if np.ndim(scalar_or_schedule) == 0:
        return constant(scalar_or_schedule)
    raise TypeError(f"step_size must be a number or a callable schedule, got "
                    f"{type(scalar_or_schedule).__name__}")


# --- utilities --------------------------------------------------------------------

def l2_norm(tree: Any) -> Any:
    """The l2 norm of all the leaves of `tree` taken as one vector."""
    leaves, _ = tree_flatten(tree)
    return fnp.sqrt(sum(fnp.vdot(x, x) for x in leaves))


def clip_grads(grad_tree: Any, max_norm: float) -> Any:
    """`grad_tree` scaled down so that its l2 norm is at most `max_norm`."""
    norm = l2_norm(grad_tree)
    normalize = lambda g: fnp.where(norm < max_norm, g, g * (max_norm / norm))  # noqa: E731
    return tree_map(normalize, grad_tree)


def unpack_optimizer_state(opt_state: OptimizerState) -> Any:
    """The state as a pytree of the parameters' structure holding each leaf's state
    (for saving); `pack_optimizer_state` inverts it."""
    states_flat, tree, subtrees = opt_state
    states = [_JoinPoint(tree_unflatten(s, list(f)))
              for s, f in zip(subtrees, states_flat, strict=True)]
    return tree_unflatten(tree, states)


def pack_optimizer_state(marked_pytree: Any) -> OptimizerState:
    """The inverse of `unpack_optimizer_state`."""
    sentinels, tree = tree_flatten(marked_pytree, is_leaf=lambda x: isinstance(x, _JoinPoint))
    if not all(isinstance(s, _JoinPoint) for s in sentinels):
        raise TypeError("pack_optimizer_state: expected the output of unpack_optimizer_state")
    subtrees = [s.subtree for s in sentinels]
    states_flat, subtree_defs = zip(*[tree_flatten(s) for s in subtrees]) if subtrees else (
        (), ())
    return OptimizerState(list(states_flat), tree, list(subtree_defs))


class _JoinPoint:
    """Marks where one leaf's state sits inside an unpacked optimizer state."""
    __slots__ = ("subtree",)

    def __init__(self, subtree):
        self.subtree = subtree

    def __iter__(self):
        yield self.subtree
