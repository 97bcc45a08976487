"""`fungrad.testing`: the checker can fail (wrong rules are caught), finite
differences are accurate, and the strategies draw what they promise.  The
property tests at the end use only the public API, as a user's tests would."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.config import config
from fungrad.core import Primitive
from fungrad.testing import (arrays, broadcastable_shapes, check_grads, check_jvp, check_vjp,
                             default_eps, default_tolerance, numerical_jvp, programs,
                             pytrees_of_arrays, shapes)


@pytest.fixture(autouse=True)
def interpreter_only():
    with config.override("disable_jit", True):
        yield


# ---------------------------------------------------------------------------
# deliberately wrong rules: the checker must fail on each
# ---------------------------------------------------------------------------

def _sin_like(name, jvp, vjp):
    """A user-defined primitive computing sin, with the given rules."""
    p = Primitive(name)
    p.def_impl(np.sin)
    p.def_shape(lambda x: x)
    p.def_jvp(jvp)
    p.def_vjp(vjp)
    return lambda x: p.bind(x)


good_sin = _sin_like("good_sin", lambda t, x, *, out: t * lax.cos(x),
                     lambda ct, x, *, out: (ct * lax.cos(x),))
# jvp off by 10%, vjp right
bad_jvp_sin = _sin_like("bad_jvp_sin", lambda t, x, *, out: t * lax.cos(x) * 1.1,
                        lambda ct, x, *, out: (ct * lax.cos(x),))
# vjp of the wrong sign, jvp right
bad_vjp_sin = _sin_like("bad_vjp_sin", lambda t, x, *, out: t * lax.cos(x),
                        lambda ct, x, *, out: (-ct * lax.cos(x),))
# right at first order, but its derivative treats cos(x) as a constant
frozen_sin = _sin_like("frozen_sin", lambda t, x, *, out: t * fg.stop_gradient(lax.cos(x)),
                       lambda ct, x, *, out: (ct * fg.stop_gradient(lax.cos(x)),))

X = (np.array([0.3, -1.2, 2.0]),)


def test_correct_rules_pass():
    check_grads(good_sin, X, order=3)
    check_grads(lambda x: good_sin(x) * x, X, order=2)


def test_wrong_jvp_is_caught_in_forward_mode():
    with pytest.raises(AssertionError, match="fwd"):
        check_grads(bad_jvp_sin, X, order=1, modes=("fwd",))
    with pytest.raises(AssertionError, match="finite differences"):
        check_jvp(bad_jvp_sin, X)


def test_wrong_vjp_is_caught_in_reverse_mode():
    with pytest.raises(AssertionError, match="rev"):
        check_grads(bad_vjp_sin, X, order=1, modes=("rev",))
    # a wrong jvp with a right vjp: the vjp-vs-jvp identity catches it too
    with pytest.raises(AssertionError, match="jvp"):
        check_vjp(bad_jvp_sin, X, against_jvp=True)
    check_vjp(bad_jvp_sin, X, against_jvp=False)     # (the vjp itself is right)


@pytest.mark.parametrize("modes", [("fwd",), ("rev",)])
def test_wrong_second_derivative_is_caught_only_at_order_two(modes):
    check_grads(frozen_sin, X, order=1, modes=modes)
    with pytest.raises(AssertionError, match="order 2"):
        check_grads(frozen_sin, X, order=2, modes=modes)


def test_float32_tolerances_still_catch_a_wrong_rule():
    x32 = (X[0].astype(np.float32),)
    check_grads(good_sin, x32, order=2)
    with pytest.raises(AssertionError):
        check_grads(bad_vjp_sin, x32, order=1)


def test_wrong_derivative_dtype_is_caught():
    p = Primitive("widening_sin")
    p.def_impl(np.sin)
    p.def_shape(lambda x: x)
    p.def_jvp(lambda t, x, *, out: t * lax.cos(x))
    p.def_vjp(lambda ct, x, *, out: (lax.convert_element_type(ct * lax.cos(x), np.float64),))
    x32 = (X[0].astype(np.float32),)
    with pytest.raises(AssertionError):
        check_grads(lambda x: p.bind(x), x32, order=1, modes=("rev",))


def test_argument_errors():
    with pytest.raises(TypeError, match="int"):
        check_grads(lambda n: n * 2, (np.arange(3),), order=1)
    with pytest.raises(ValueError, match="mode"):
        check_grads(fnp.sin, X, modes=("sideways",))
    with pytest.raises(ValueError, match="order"):
        check_grads(fnp.sin, X, order=0)


# ---------------------------------------------------------------------------
# finite differences and step sizes
# ---------------------------------------------------------------------------

def test_numerical_jvp_of_quadratic_is_exact_and_keeps_structure():
    f = lambda x, y: {"q": x * x, "p": x * y}  # noqa: E731
    out = numerical_jvp(f, (np.array([3.0, -1.0]), np.array(2.0)),
                        (np.array([1.0, 0.5]), np.array(1.0)))
    np.testing.assert_allclose(out["q"], [6.0, -1.0], rtol=1e-9)
    np.testing.assert_allclose(out["p"], [2.0 + 3.0, 1.0 - 1.0], rtol=1e-9, atol=1e-9)
    assert numerical_jvp(lambda x: x ** 2, (np.float32(3.0),), (np.float32(1.0),)).dtype \
        == np.float32


def test_dtype_aware_defaults():
    assert default_eps((np.ones(2),)) < default_eps((np.ones(2, np.float32),))
    assert default_tolerance((np.ones(2),)) < default_tolerance((np.ones(2, np.float32),))
    mixed = (np.ones(2), np.ones(2, np.float32))
    assert default_eps(mixed) == default_eps((np.ones(1, np.float32),))


def test_importing_fungrad_does_not_import_hypothesis():
    code = ("import sys, fungrad, fungrad.testing; "
            "assert 'hypothesis' not in sys.modules, 'hypothesis imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

@given(data=st.data())
def test_arrays_and_shapes(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    assert 1 <= len(shape) <= 3 and all(1 <= s <= 4 for s in shape)
    x = data.draw(arrays(np.float32, shape), label="x")
    assert x.dtype == np.float32 and x.shape == shape
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 3)
    other = data.draw(broadcastable_shapes(shape), label="other")
    full = np.broadcast_shapes(shape, other)          # raises if they do not broadcast
    assert len(full) == max(len(shape), len(other))


@given(tree=pytrees_of_arrays(max_leaves=4))
def test_pytrees_of_arrays(tree):
    leaves, _ = fg.tree_util.tree_flatten(tree)
    assert 1 <= len(leaves) <= 4 * 2          # st.recursive bounds leaves loosely
    assert all(np.asarray(x).dtype == np.float64 for x in leaves)


@settings(max_examples=20)
@given(prog=programs())
def test_programs_know_their_avals_and_run(prog):
    assert len(prog.in_avals) == len(prog.args)
    for aval, x in zip(prog.in_avals, prog.args):
        assert aval.shape == np.shape(x) and aval.dtype == np.asarray(x).dtype
    out = prog.fun(*prog.args)
    assert all(np.all(np.isfinite(o)) for o in fg.tree_util.tree_leaves(out))
    assert np.shape(prog.loss(*prog.args)) == ()
    assert str(prog).splitlines()[-1].strip().startswith("return")
    assert len(prog.out_avals) == len(fg.tree_util.tree_leaves(out))


# ---------------------------------------------------------------------------
# as a user would write them: public strategies and check_grads only
# ---------------------------------------------------------------------------

def my_layer(w, b, x):
    return fnp.tanh(x @ w + b)


@settings(max_examples=15)
@given(data=st.data())
def test_user_layer_gradients(data):
    n, k = data.draw(shapes(min_dims=2, max_dims=2, max_side=3), label="n, k")
    w = data.draw(arrays(np.float64, (k, 2)), label="w")
    b = data.draw(arrays(np.float64, (2,)), label="b")
    x = data.draw(arrays(np.float64, (n, k)), label="x")
    check_grads(lambda w, b: my_layer(w, b, x), (w, b), order=2)


@settings(max_examples=15)
@given(prog=programs(max_steps=4))
def test_user_style_random_program(prog):
    check_grads(prog.fun, prog.args, order=1)


@settings(max_examples=10)
@given(prog=programs(ops=("tanh", "mul", "take")))
def test_programs_can_be_restricted_to_some_ops(prog):
    assert {op for op, _, _ in prog.steps} <= {"tanh", "mul", "take"}
    check_grads(prog.fun, prog.args, order=1, modes=("rev",))


def test_programs_reject_unknown_ops():
    with pytest.raises(ValueError, match="unknown ops"):
        programs(ops=("sin", "frobnicate"))
