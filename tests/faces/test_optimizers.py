"""fungrad.optimizers (JAX's example_libraries.optimizers) and fungrad.misc.optimizers
(autograd's loops): exact agreement with hand-written update steps, convergence on
Rosenbrock, pytrees, jit."""
import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import optimizers
from fungrad.misc import flatten, optimizers as ag_optimizers


def rosenbrock(p):
    return (1.0 - p["x"]) ** 2 + 100.0 * (p["y"] - p["x"] ** 2) ** 2


def _np_grad(x, y):
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


# one update of each optimizer written out by hand in NumPy, in the same order of
# operations: (make_state(x0), step(i, g, state) -> state, params(state))
HAND = {
    "sgd": (optimizers.sgd(0.01), lambda x: x,
            lambda i, g, x: x - 0.01 * g, lambda s: s),
    "momentum": (optimizers.momentum(0.01, 0.9), lambda x: (x, np.zeros_like(x)),
                 lambda i, g, s: (s[0] - 0.01 * (0.9 * s[1] + g), 0.9 * s[1] + g),
                 lambda s: s[0]),
    "nesterov": (optimizers.nesterov(0.01, 0.9), lambda x: (x, np.zeros_like(x)),
                 lambda i, g, s: (s[0] - 0.01 * (0.9 * (0.9 * s[1] + g) + g), 0.9 * s[1] + g),
                 lambda s: s[0]),
    "adagrad": (optimizers.adagrad(0.1, 0.9), lambda x: (x, 0 * x, 0 * x),
                lambda i, g, s: (s[0] - 0.1 * ((1 - 0.9) * (g / np.sqrt(s[1] + g * g))
                                               + 0.9 * s[2]),
                                 s[1] + g * g,
                                 (1 - 0.9) * (g / np.sqrt(s[1] + g * g)) + 0.9 * s[2]),
                lambda s: s[0]),
    "rmsprop": (optimizers.rmsprop(0.01, 0.9, 1e-8), lambda x: (x, 0 * x),
                lambda i, g, s: (s[0] - 0.01 * g / np.sqrt(s[1] * 0.9 + g * g * 0.1 + 1e-8),
                                 s[1] * 0.9 + g * g * 0.1),
                lambda s: s[0]),
    "adam": (optimizers.adam(0.02, 0.9, 0.999, 1e-8), lambda x: (x, 0 * x, 0 * x),
             lambda i, g, s: (
                 s[0] - 0.02 * (((1 - 0.9) * g + 0.9 * s[1]) / (1 - 0.9 ** (i + 1)))
                 / (np.sqrt(((1 - 0.999) * g * g + 0.999 * s[2]) / (1 - 0.999 ** (i + 1)))
                    + 1e-8),
                 (1 - 0.9) * g + 0.9 * s[1], (1 - 0.999) * g * g + 0.999 * s[2]),
             lambda s: s[0]),
    "adamax": (optimizers.adamax(0.02, 0.9, 0.999, 1e-8), lambda x: (x, 0 * x, 0 * x),
               lambda i, g, s: (
                   s[0] - 0.02 / (1 - 0.9 ** (i + 1)) * ((1 - 0.9) * g + 0.9 * s[1])
                   / (np.maximum(0.999 * s[2], np.abs(g)) + 1e-8),
                   (1 - 0.9) * g + 0.9 * s[1], np.maximum(0.999 * s[2], np.abs(g))),
               lambda s: s[0]),
}


@pytest.mark.parametrize("name", list(HAND))
def test_update_matches_a_hand_written_step(name):
    (init, update, get_params), make, step, params = HAND[name]
    x0 = np.array([-1.2, 1.0])
    state, hand = init(x0), make(x0)
    for i in range(5):
        x = get_params(state)
        g = _np_grad(*x)
        state, hand = update(i, g, state), step(i, g, hand)
        np.testing.assert_allclose(get_params(state), params(hand), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", list(HAND))
def test_converges_on_rosenbrock_under_jit_on_a_pytree(name):
    settings = {"sgd": optimizers.sgd(1e-3), "momentum": optimizers.momentum(1e-3, 0.9),
                "nesterov": optimizers.nesterov(1e-3, 0.9), "adagrad": optimizers.adagrad(0.1),
                "rmsprop": optimizers.rmsprop(optimizers.inverse_time_decay(2e-3, 3000, 1.0)),
                "adam": optimizers.adam(0.02), "adamax": optimizers.adamax(0.02)}
    init, update, get_params = settings[name]
    state = init({"x": -1.0, "y": 1.0})

    @fg.jit
    def step(i, state):
        return update(i, fg.grad(rosenbrock)(get_params(state)), state)
    start = float(rosenbrock(get_params(state)))
    for i in range(6000):
        state = step(i, state)
    final = float(rosenbrock(get_params(state)))
    assert final < 0.02 * start and final < 0.1, (name, start, final)
    assert len(step._cache) == 1
    if name not in ("sgd", "rmsprop"):   # the slow ones are still in the valley
        np.testing.assert_allclose([get_params(state)["x"], get_params(state)["y"]], 1.0,
                                   atol=1e-3)


def test_jit_agrees_with_eager_and_state_is_a_pytree():
    init, update, get_params = optimizers.adam(0.01)
    params = {"w": np.ones((2, 2)), "b": [np.zeros(2), np.float32(1.0)]}
    state = init(params)
    leaves = fg.tree.leaves(state)
    assert len(leaves) == 3 * 3    # (x, m, v) per parameter leaf
    g = fg.tree.map(lambda p: 0.5 * fnp.ones_like(p), params)
    eager = get_params(update(0, g, state))
    jitted = get_params(fg.jit(update)(0, g, state))
    for a, b in zip(fg.tree.leaves(eager), fg.tree.leaves(jitted)):
        np.testing.assert_allclose(a, b, rtol=1e-15)
        assert a.dtype == b.dtype
    assert get_params(state)["b"][1].dtype == np.float32


def test_schedules_and_utilities():
    assert optimizers.constant(0.1)(7) == 0.1
    np.testing.assert_allclose(optimizers.exponential_decay(1.0, 10, 0.5)(20), 0.25)
    np.testing.assert_allclose(optimizers.inverse_time_decay(1.0, 10, 1.0)(10), 0.5)
    np.testing.assert_allclose(optimizers.inverse_time_decay(1.0, 10, 1.0, True)(15), 0.5)
    np.testing.assert_allclose(optimizers.polynomial_decay(1.0, 10, 0.0)(5), 0.5)
    np.testing.assert_allclose(optimizers.polynomial_decay(1.0, 10, 0.0)(50), 0.0)
    pc = optimizers.piecewise_constant([10, 20], [1.0, 0.5, 0.1])
    assert [float(pc(i)) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.1]
    np.testing.assert_allclose(optimizers.l2_norm({"a": np.array([3.0]), "b": 4.0}), 5.0)
    clipped = optimizers.clip_grads({"a": np.array([3.0]), "b": 4.0}, 1.0)
    np.testing.assert_allclose(optimizers.l2_norm(clipped), 1.0)
    init, update, get_params = optimizers.momentum(0.1, 0.9)
    state = update(0, {"a": np.ones(2)}, init({"a": np.zeros(2)}))
    again = optimizers.pack_optimizer_state(optimizers.unpack_optimizer_state(state))
    np.testing.assert_array_equal(get_params(again)["a"], get_params(state)["a"])
    with pytest.raises(ValueError, match="one more element"):
        optimizers.piecewise_constant([1, 2], [1.0])


def test_update_with_a_mismatched_gradient_tree_names_the_problem():
    init, update, _ = optimizers.sgd(0.1)
    with pytest.raises(ValueError, match="tree structure"):
        update(0, {"a": 1.0}, init({"a": 1.0, "b": 2.0}))


def test_autograd_style_loops_match_hand_written_updates():
    x0 = {"x": np.array(-1.2), "y": np.array(1.0)}
    flat0, unflat = flatten(x0)

    def grad_fn(p, i):
        return fg.grad(rosenbrock)(p)
    seen = []
    out = ag_optimizers.adam(grad_fn, x0, callback=lambda p, i, g: seen.append(i),
                             num_iters=3, step_size=0.01)
    x, m, v = np.asarray(flat0), np.zeros(2), np.zeros(2)
    for i in range(3):
        g = _np_grad(*x)
        m = (1 - 0.9) * g + 0.9 * m
        v = (1 - 0.999) * (g ** 2) + 0.999 * v
        x = x - 0.01 * (m / (1 - 0.9 ** (i + 1))) / (np.sqrt(v / (1 - 0.999 ** (i + 1))) + 1e-8)
    np.testing.assert_allclose([out["x"], out["y"]], x, rtol=1e-14)
    assert seen == [0, 1, 2]
    out = ag_optimizers.sgd(grad_fn, x0, num_iters=2, step_size=1e-3, mass=0.9)
    x, vel = np.asarray(flat0), np.zeros(2)
    for i in range(2):
        vel = 0.9 * vel - (1 - 0.9) * _np_grad(*x)
        x = x + 1e-3 * vel
    np.testing.assert_allclose([out["x"], out["y"]], x, rtol=1e-14)
    out = ag_optimizers.rmsprop(grad_fn, x0, num_iters=2, step_size=1e-3)
    x, avg = np.asarray(flat0), np.ones(2)
    for i in range(2):
        g = _np_grad(*x)
        avg = avg * 0.9 + g ** 2 * (1 - 0.9)
        x = x - 1e-3 * g / (np.sqrt(avg) + 1e-8)
    np.testing.assert_allclose([out["x"], out["y"]], x, rtol=1e-14)
    far = ag_optimizers.adam(grad_fn, x0, num_iters=3000, step_size=0.02)
    np.testing.assert_allclose([far["x"], far["y"]], 1.0, atol=3e-3)
