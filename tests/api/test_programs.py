"""Random differentiable programs (`fungrad.testing.programs()`: fan-out, reused
intermediates, closures over constants, broadcasting, several outputs) through
every transform; all routes to a derivative must agree with each other and with
finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
from fungrad.config import config
from fungrad.interpreter import eval_jaxpr
from fungrad.testing import check_grads, check_jvp, check_vjp, numerical_jvp, programs
from fungrad.transforms.ad import grad_jaxpr


@pytest.fixture(autouse=True)
def interpreter_only():
    """Finite differences run each program many times; kernels would compile on the
    way (jit is tested on its own below)."""
    with config.override("disable_jit", True):
        yield


def all_argnums(prog):
    return tuple(range(len(prog.args)))


def close(a, b, rtol=1e-9, atol=1e-11, msg=""):
    for x, y in zip(fg.tree_util.tree_leaves(a), fg.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                                   err_msg=msg)
    assert fg.tree_util.tree_structure(a) == fg.tree_util.tree_structure(b)


@given(prog=programs())
def test_jvp_against_finite_differences(prog):
    check_jvp(prog.fun, prog.args, err_msg=f"\n{prog}")


@given(prog=programs())
def test_vjp_against_jvp_dot_product_identity(prog):
    check_vjp(prog.fun, prog.args, err_msg=f"\n{prog}")


@settings(max_examples=15)
@given(prog=programs(max_steps=4))
def test_second_order_both_modes(prog):
    check_grads(prog.fun, prog.args, order=2)


@settings(max_examples=10)
@given(prog=programs(dtype=np.float32, max_steps=4))
def test_float32_programs(prog):
    check_grads(prog.fun, prog.args, order=1)
    for g, x in zip(fg.grad(prog.loss, argnums=all_argnums(prog))(*prog.args), prog.args):
        assert g.dtype == np.float32 and g.shape == x.shape


@given(prog=programs())
def test_jacfwd_equals_jacrev(prog):
    argnums = all_argnums(prog)
    jf = fg.jacfwd(prog.fun, argnums=argnums)(*prog.args)
    jr = fg.jacrev(prog.fun, argnums=argnums)(*prog.args)
    close(jf, jr, msg=str(prog))


@given(prog=programs())
def test_grad_matches_the_unsimplified_derivative_program(prog):
    argnums = all_argnums(prog)
    grads = fg.grad(prog.loss, argnums=argnums)(*prog.args)
    closed = fg.make_jaxpr(prog.loss)(*prog.args)
    raw = grad_jaxpr(closed.jaxpr, [True] * len(prog.args), keep_value=False)
    expected = eval_jaxpr(raw, closed.consts, *prog.args)
    close(grads, tuple(expected), rtol=1e-10, msg=str(prog))
    for g, x in zip(grads, prog.args):
        assert np.shape(g) == np.shape(x)


@settings(max_examples=20)
@given(prog=programs(max_steps=4))
def test_forward_over_reverse_matches_finite_differences_of_grad(prog):
    argnums = all_argnums(prog)
    g = fg.grad(prog.loss, argnums=argnums)
    rng = np.random.default_rng(0)
    tangents = tuple(rng.standard_normal(np.shape(x)) for x in prog.args)
    _, hvp = fg.jvp(lambda *xs: g(*xs), prog.args, tangents)
    close(hvp, numerical_jvp(g, prog.args, tangents), rtol=1e-5, atol=1e-5, msg=str(prog))


@settings(max_examples=25)
@given(prog=programs())
def test_vmap_of_grad_equals_per_example_grads(prog):
    argnums = all_argnums(prog)
    g = fg.grad(prog.loss, argnums=argnums)
    # a batch of first arguments inside the program's domain ([-2, 2], symmetric)
    x0 = np.asarray(prog.args[0])
    batch = np.stack([x0, -x0, 0.5 * x0])
    in_axes = (0,) + (None,) * (len(prog.args) - 1)
    batched = fg.vmap(g, in_axes=in_axes)(batch, *prog.args[1:])
    for i in range(3):
        one = g(batch[i], *prog.args[1:])
        close(tuple(b[i] for b in batched), one, msg=str(prog))


@settings(max_examples=4)
@given(prog=programs(max_steps=4))
def test_jit_of_grad_and_grad_of_jit_agree_with_grad(prog):
    argnums = all_argnums(prog)
    expected = fg.grad(prog.loss, argnums=argnums)(*prog.args)
    with config.override("disable_jit", False):
        close(fg.jit(fg.grad(prog.loss, argnums=argnums))(*prog.args), expected,
              msg=str(prog))
        close(fg.grad(fg.jit(prog.loss), argnums=argnums)(*prog.args), expected,
              msg=str(prog))


@settings(max_examples=15)
@given(prog=programs(max_steps=4, max_dims=1))
def test_hessian_is_symmetric_and_matches_finite_differences_of_grad(prog):
    x0 = np.asarray(prog.args[0])
    rest = prog.args[1:]

    def f(x):
        return prog.loss(x, *rest)
    h = np.asarray(fg.hessian(f)(x0)).reshape(x0.size, x0.size)
    np.testing.assert_allclose(h, h.T, rtol=1e-9, atol=1e-11, err_msg=str(prog))
    g = fg.grad(f)
    basis = np.eye(x0.size).reshape((x0.size,) + x0.shape)
    fd = np.stack([np.asarray(numerical_jvp(g, (x0,), (e,))).reshape(-1) for e in basis], 1)
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-5, err_msg=str(prog))
    np.testing.assert_allclose(np.asarray(fg.jacrev(fg.jacrev(f))(x0)).reshape(h.shape), h,
                               rtol=1e-9, atol=1e-11, err_msg=str(prog))
