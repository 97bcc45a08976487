"""Programs cross process boundaries: primitives by name, jaxprs by plain pickle,
jit wrappers as their function and configuration."""
import pickle

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.core import Primitive
from fungrad.interpreter import eval_jaxpr
from fungrad.lax import ALL_PRIMITIVES


def test_every_primitive_pickles_to_itself():
    for prim in ALL_PRIMITIVES:
        assert pickle.loads(pickle.dumps(prim)) is prim, prim


def test_a_primitive_shadowed_by_a_same_named_one_refuses_to_pickle():
    first = Primitive("test_pickle_twin")
    second = Primitive("test_pickle_twin")
    assert pickle.loads(pickle.dumps(first)) is first
    with pytest.raises(pickle.PicklingError, match="unique name"):
        pickle.dumps(second)


def _programs():
    x = np.linspace(-1.0, 1.0, 6)
    yield fg.make_jaxpr(fg.grad(lambda w: fnp.sum(fnp.tanh(w) ** 2)))(x), (x,)
    yield fg.make_jaxpr(fg.vmap(lambda a: a @ a.T))(x.reshape(2, 3)), (x.reshape(2, 3),)
    yield fg.make_jaxpr(lambda v: fg.lax.cond(
        v[0] > 0, lambda v: v * 2, lambda v: fnp.linalg.solve(fnp.eye(6) + v[:, None], v),
        v))(x), (x,)
    yield fg.make_jaxpr(lambda v: fg.lax.scan(lambda c, e: (c * e, c + e), 1.0, v))(x), (x,)
    yield fg.make_jaxpr(fg.hessian(lambda v: fnp.sum(fnp.sin(v) * v[::-1])))(x), (x,)


@pytest.mark.parametrize("index", range(5))
def test_jaxprs_round_trip_through_plain_pickle(index):
    closed, args = list(_programs())[index]
    again = pickle.loads(pickle.dumps(closed))
    assert str(again) == str(closed)
    for a, b in zip(eval_jaxpr(again.jaxpr, again.consts, *args),
                    eval_jaxpr(closed.jaxpr, closed.consts, *args), strict=True):
        np.testing.assert_array_equal(a, b)
    # where each equation came from survives as text
    assert [tuple(e.source_info) if e.source_info else None for e in again.eqns] == [
        tuple(e.source_info) if e.source_info else None for e in closed.eqns]


def _module_level(x, n):
    return fnp.sum(x * n)


def test_a_jit_wrapper_pickles_as_its_function_and_configuration():
    jitted = fg.jit(_module_level, static_argnums=1)
    size = len(pickle.dumps(jitted))
    jitted(np.ones(3), 2)
    jitted(np.ones(4), 3)
    assert len(pickle.dumps(jitted)) == size
    again = pickle.loads(pickle.dumps(jitted))
    assert again.static_argnums == (1,) and again.fun is _module_level
    assert again(np.ones(3), 5) == 15.0
