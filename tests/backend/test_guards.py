"""Python control flow on traced values under jit: specialise, guard, retrace on a miss."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fungrad as fg
import fungrad.numpy as fnp


def test_jit_grad_of_python_branch_takes_each_path():
    g = fg.jit(fg.grad(lambda x: x * x if x > 0 else -x))
    assert g(-2.0) == -1.0
    assert g(3.0) == 6.0
    assert g(-5.0) == -1.0


def doubling(x):
    while x < 10:
        x = x * 2
    return x


def test_jit_of_while_on_traced_value_matches_eager():
    for x0 in (1.0, 3.0, 9.5, 12.0):
        assert fg.jit(fg.grad(doubling))(x0) == fg.grad(doubling)(x0)
        assert fg.jit(doubling)(x0) == doubling(x0)
    assert fg.jit(fg.grad(doubling))(1.0) == 16.0


@settings(max_examples=30)
@given(xs=st.lists(st.floats(-20, 20), min_size=1, max_size=12))
def test_guarded_results_equal_the_interpreted_function(xs):
    def f(x):
        y = fnp.sin(x)
        if y > 0.5:
            return y * x
        if x < -3:
            return x ** 2
        return fnp.exp(-x)
    jf = fg.jit(f)
    jg = fg.jit(fg.grad(f))
    for x in xs:
        np.testing.assert_allclose(jf(x), f(x), rtol=1e-12)
        np.testing.assert_allclose(jg(x), fg.grad(f)(x), rtol=1e-12)


def test_too_many_paths_suggests_lax_cond():
    h = fg.jit(lambda x: x * int(x))
    with pytest.raises(fg.FungradError, match="fungrad.lax.cond"):
        for v in range(20):
            h(float(v))


def test_guard_predicates_are_part_of_the_lowered_program():
    text = fg.jit(doubling).lower(1.0).as_text()
    assert "lt" in text


def test_make_jaxpr_still_refuses_python_branches():
    with pytest.raises(fg.TracerBoolConversionError, match="test_guards.py"):
        fg.make_jaxpr(lambda x: x if x > 0 else -x)(1.0)


def test_vmap_of_python_branch_raises_clearly():
    with pytest.raises(fg.TracerBoolConversionError):
        fg.vmap(lambda x: x if x > 0 else -x)(np.arange(3.0))
