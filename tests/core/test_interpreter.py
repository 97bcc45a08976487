"""fungrad.interpreter.eval_jaxpr: the reference semantics.  A traced jaxpr
evaluates to what the function computes; under an outer trace the same loop
re-binds (inlines) every equation."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.core import jaxpr_key
from fungrad.interpreter import eval_closed, eval_jaxpr, eval_jaxpr_checked

W = np.linspace(-1.0, 1.0, 12).reshape(4, 3)


def _softmaxish(x, y):
    z = x * y - fnp.max(x)
    return fnp.exp(z) / fnp.sum(fnp.exp(z))


FUNCTIONS = {
    "elementwise": lambda x, y: fnp.sin(x) * y + fnp.tanh(x - y) ** 2,
    "fan_out": lambda x, y: (x * x + x) * (x - y),
    "reductions": lambda x, y: (fnp.sum(x * y), fnp.max(x), fnp.mean(y)),
    "softmaxish": _softmaxish,
    "where": lambda x, y: fnp.where(x > y, x, y * 2.0),
    "closure": lambda x, y: (W @ x[:3]) if x.shape[0] >= 3 else x * y,
    "pytree_out": lambda x, y: {"a": x + 1.0, "b": [y * 3.0, fnp.abs(x)]},
    "literal_out": lambda x, y: (x, 2.0),
    "cond": lambda x, y: fg.lax.cond(fnp.sum(x) > 0, lambda a: a * 2.0, lambda a: -a, y),
    "scan": lambda x, y: fg.lax.scan(lambda c, a: (c + a, c * a), 0.0, x * y),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(data=st.data())
def test_eval_jaxpr_of_a_trace_equals_calling_the_function(name, data):
    f = FUNCTIONS[name]
    n = data.draw(st.integers(1, 5), label="n")
    floats = st.floats(-3, 3, allow_subnormal=False)
    x = data.draw(hnp.arrays(np.float64, n, elements=floats), label="x")
    y = data.draw(hnp.arrays(np.float64, n, elements=floats), label="y")
    closed = fg.make_jaxpr(f)(x, y)
    got = eval_jaxpr(closed.jaxpr, closed.consts, x, y)
    for a, b in zip(got, eval_closed(closed, x, y), strict=True):
        np.testing.assert_array_equal(a, b)
    expected, tree = fg.tree_util.tree_flatten(f(x, y))
    assert fg.tree_util.tree_structure(f(x, y)) == tree and len(got) == len(expected)
    for g, e, aval in zip(got, expected, closed.out_avals, strict=True):
        g = np.asarray(g)
        assert g.shape == aval.shape and g.dtype == aval.dtype
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_eval_under_an_outer_trace_inlines_the_equations():
    inner = fg.make_jaxpr(lambda x, y: fnp.sum(fnp.sin(x) * y))(np.ones(3), np.ones(3))
    outer = fg.make_jaxpr(lambda x, y: eval_jaxpr(inner.jaxpr, inner.consts, x, y)[0])(
        np.ones(3), np.ones(3))
    assert str(outer) == str(inner)
    assert jaxpr_key(outer.jaxpr) == jaxpr_key(inner.jaxpr)
    assert all(e.prim.name != "pjit" for e in outer.eqns)   # inlined, not a call


def test_inlining_keeps_constants_and_source_lines():
    w = np.arange(3.0)
    inner = fg.make_jaxpr(lambda x: fnp.cos(x) + w)(np.ones(3))  # MARK-inner
    outer = fg.make_jaxpr(lambda x: eval_closed(inner, x * 2.0)[0])(np.ones(3))
    assert len(outer.consts) == 1 and outer.consts[0] is w
    assert [e.prim.name for e in outer.eqns] == ["mul", "cos", "add"]
    line = next(i for i, t in enumerate(open(__file__), 1)
                if "MARK-inner" in t and "next(" not in t)
    assert f"test_interpreter.py:{line}" in outer.pretty(source=True)


def test_transforms_of_an_evaluated_jaxpr_equal_those_of_the_function():
    f = FUNCTIONS["elementwise"]
    closed = fg.make_jaxpr(f)(np.ones(3), np.ones(3))

    def via_jaxpr(x, y):
        return eval_jaxpr(closed.jaxpr, closed.consts, x, y)[0]
    x, y = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -0.25])
    loss = lambda g: lambda x, y: fnp.sum(g(x, y))  # noqa: E731
    np.testing.assert_allclose(fg.grad(loss(via_jaxpr))(x, y), fg.grad(loss(f))(x, y), rtol=1e-12)
    np.testing.assert_allclose(fg.vmap(via_jaxpr)(np.stack([x, y]), np.stack([y, x])),
                               np.stack([f(x, y), f(y, x)]), rtol=1e-12)


def test_wrong_number_of_arguments_or_constants_is_an_error():
    closed = fg.make_jaxpr(lambda x: fnp.sin(x) + W[0])(np.ones(3))
    with pytest.raises(ValueError):
        eval_jaxpr(closed.jaxpr, closed.consts, np.ones(3), np.ones(3))
    with pytest.raises(ValueError):
        eval_jaxpr(closed.jaxpr, [], np.ones(3))


def test_checked_evaluation_names_the_primitive_that_made_a_nan():
    closed = fg.make_jaxpr(lambda x: fnp.log(x - 1.0) * 2.0)(np.ones(2))  # MARK-nan
    (ok,) = eval_jaxpr_checked(closed.jaxpr, closed.consts, [np.full(2, 3.0)])
    np.testing.assert_allclose(ok, 2 * np.log(np.full(2, 2.0)))
    with pytest.raises(FloatingPointError, match="primitive 'log' produced NaN") as info:
        eval_jaxpr_checked(closed.jaxpr, closed.consts, [np.array([3.0, 0.5])])
    line = next(i for i, t in enumerate(open(__file__), 1) if "MARK-nan" in t and "next(" not in t)
    assert f"test_interpreter.py:{line}" in str(info.value)
    with pytest.raises(FloatingPointError, match="primitive 'log' produced inf"):
        eval_jaxpr_checked(closed.jaxpr, closed.consts, [np.array([1.0])], nans=True, infs=True)
