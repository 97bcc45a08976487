"""fungrad.core: the IR types, typecheck, the printer and jaxpr_key, on hand-built
jaxprs and on traced ones."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.core import (ClosedJaxpr, Eqn, Jaxpr, JaxprTypeError, Literal, ShapedArray, Var,
                          dtype_name, jaxpr_key, typecheck)
from fungrad.errors import FungradError
from fungrad.primitives.elementwise import add_p, mul_p, sin_p

F64_3 = ShapedArray((3,), np.float64)


# ---------------------------------------------------------------------------
# ShapedArray, Var, Literal
# ---------------------------------------------------------------------------

def test_shaped_array_is_a_type_with_value_equality():
    a = ShapedArray([2, np.int64(3)], "float32")
    assert a.shape == (2, 3) and type(a.shape[1]) is int
    assert a.dtype == np.dtype(np.float32) and a.ndim == 2 and a.size == 6
    assert a == ShapedArray((2, 3), np.float32) and hash(a) == hash(ShapedArray((2, 3), "f4"))
    assert a != ShapedArray((3, 2), np.float32) and a != ShapedArray((2, 3), np.float64)
    assert str(a) == "f32[2,3]" and str(ShapedArray((), np.bool_)) == "bool[]"
    assert a.update(dtype=np.int32) == ShapedArray((2, 3), np.int32)
    assert a.update(shape=(6,)).shape == (6,) and a.shape == (2, 3)   # update copies


@pytest.mark.parametrize("value, expected", [
    (np.zeros((2, 0)), ShapedArray((2, 0), np.float64)),
    (np.float32(1.0), ShapedArray((), np.float32)),
    (1.5, ShapedArray((), np.float64)),
    (2, ShapedArray((), np.int64)),
    (True, ShapedArray((), np.bool_)),
    (1j, ShapedArray((), np.complex128)),
    ([1, 2, 3], ShapedArray((3,), np.int64)),
])
def test_shaped_array_of_a_value(value, expected):
    assert ShapedArray.of(value) == expected


def test_dtype_names_are_short():
    assert [dtype_name(np.dtype(t)) for t in ("float64", "float32", "int64", "bool")] == \
        ["f64", "f32", "i64", "bool"]


def test_vars_compare_by_identity_and_literals_hold_typed_scalars():
    a, b = Var(F64_3), Var(F64_3)
    assert a != b and a == a and len({a, b}) == 2
    lit = Literal(2, ShapedArray((), np.float64))
    assert type(lit.val) is np.float64 and lit.val == 2.0 and str(lit) == "2.0:f64[]"
    assert str(Literal(1, ShapedArray((), np.bool_))) == "True:bool[]"


# ---------------------------------------------------------------------------
# building and typechecking
# ---------------------------------------------------------------------------

def _sin_mul() -> Jaxpr:
    """{ lambda ; a:f64[3] b:f64[3] . let c = sin a; d = mul b c in (d) }"""
    a, b, c, d = (Var(F64_3) for _ in range(4))
    return Jaxpr((), (a, b), [Eqn(sin_p, [a], [c], {}), Eqn(mul_p, [b, c], [d], {})], [d])


def test_hand_built_jaxpr_typechecks_prints_and_evaluates():
    jaxpr = _sin_mul()
    typecheck(jaxpr)
    assert isinstance(jaxpr.eqns, tuple) and isinstance(jaxpr.invars, tuple)
    assert jaxpr.in_avals == [F64_3, F64_3] and jaxpr.out_avals == [F64_3]
    assert str(jaxpr) == ("{ lambda ; a:f64[3] b:f64[3] . let\n"
                          "    c:f64[3] = sin a\n"
                          "    d:f64[3] = mul b c\n"
                          "  in (d) }")
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    (out,) = fg.interpreter.eval_jaxpr(jaxpr, [], x, y)
    np.testing.assert_allclose(out, y * np.sin(x))


def _marked_line(msg: str) -> str:
    marked = [line for line in msg.splitlines() if line.startswith(">>> ")]
    assert len(marked) == 1, msg
    return marked[0]


def test_typecheck_marks_the_equation_whose_output_type_is_wrong():
    a, b, c = Var(F64_3), Var(F64_3), Var(ShapedArray((4,), np.float64))
    d = Var(F64_3)
    bad = Jaxpr((), (a, b), [Eqn(add_p, [a, b], [c], {}), Eqn(sin_p, [a], [d], {})], [c, d])
    with pytest.raises(JaxprTypeError) as info:
        typecheck(bad)
    msg = str(info.value)
    assert isinstance(info.value, FungradError) and isinstance(info.value, TypeError)
    assert msg.startswith("typecheck: add: output typed f64[4], shape rule gives f64[3]"), msg
    assert _marked_line(msg) == ">>> c:f64[4] = add a b"
    assert "    d:f64[3] = sin a" in msg     # the other equations are printed unmarked


def test_typecheck_catches_shape_rule_failure_and_names_the_primitive():
    a, b, c = Var(F64_3), Var(ShapedArray((4,), np.float64)), Var(F64_3)
    bad = Jaxpr((), (a, b), [Eqn(mul_p, [a, b], [c], {})], [c])
    with pytest.raises(JaxprTypeError, match="typecheck: mul: shape rule failed") as info:
        typecheck(bad)
    assert _marked_line(str(info.value)).startswith(">>> c:f64[3] = mul a b")


def test_typecheck_catches_use_before_definition_and_double_binding():
    a, b, c = Var(F64_3), Var(F64_3), Var(F64_3)
    use_first = Jaxpr((), (a,), [Eqn(sin_p, [b], [c], {}), Eqn(sin_p, [a], [b], {})], [c])
    with pytest.raises(JaxprTypeError, match="sin: input .* used before it is defined") as info:
        typecheck(use_first)
    assert _marked_line(str(info.value)) == ">>> b:f64[3] = sin c"   # names follow binding order
    twice = Jaxpr((), (a,), [Eqn(sin_p, [a], [b], {}), Eqn(sin_p, [a], [b], {})], [b])
    with pytest.raises(JaxprTypeError, match="bound twice"):
        typecheck(twice)
    rebinds_input = Jaxpr((), (a,), [Eqn(sin_p, [a], [a], {})], [a])
    with pytest.raises(JaxprTypeError, match="bound twice"):
        typecheck(rebinds_input)
    undefined_out = Jaxpr((), (a,), [Eqn(sin_p, [a], [b], {})], [c])
    with pytest.raises(JaxprTypeError, match="output .* is not defined"):
        typecheck(undefined_out)


def test_closed_jaxpr_holds_constants_and_checks_their_count():
    c, x, y = Var(F64_3), Var(F64_3), Var(F64_3)
    jaxpr = Jaxpr((c,), (x,), [Eqn(add_p, [c, x], [y], {})], [y])
    closed = ClosedJaxpr(jaxpr, [np.ones(3)])
    assert str(closed).startswith("{ lambda a:f64[3] ; b:f64[3] . let")
    assert closed.in_avals == [F64_3] and closed.out_avals == [F64_3]
    np.testing.assert_array_equal(fg.interpreter.eval_closed(closed, np.arange(3.0)),
                                  [np.arange(3.0) + 1])
    with pytest.raises(AssertionError):
        ClosedJaxpr(jaxpr, [])


# ---------------------------------------------------------------------------
# the printer on traced programs
# ---------------------------------------------------------------------------

def test_printer_shows_params_literals_and_constants():
    w = np.ones((2, 3))
    closed = fg.make_jaxpr(lambda x: fnp.sum(fnp.sin(x) * 2.0 + w, axis=1))(np.zeros((2, 3)))
    text = str(closed)
    assert text.splitlines()[0] == "{ lambda a:f64[2,3] ; b:f64[2,3] . let", text
    assert "c:f64[2,3] = sin b" in text and "mul c 2.0:f64[]" in text
    assert "reduce_sum[axes=(1,)]" in text, text
    assert text.splitlines()[-1].startswith("  in (") and text.endswith(") }")


def test_printer_names_run_past_z_without_np():
    def many(x):
        for _ in range(60):
            x = fnp.sin(x)
        return x
    text = str(fg.make_jaxpr(many)(1.0))
    names = [line.split(":")[0].strip() for line in text.splitlines()[1:-1]]
    assert names[:2] == ["b", "c"] and "z" in names and "a1" in names and "b2" in names
    assert len(set(names)) == 60 and "np" not in names


def test_pretty_with_source_names_the_users_line():
    closed = fg.make_jaxpr(lambda x: fnp.cos(x))(1.0)  # MARK-source
    line = next(i for i, text in enumerate(open(__file__), 1) if "MARK-source" in text
                and "next(" not in text)
    assert f"test_core.py:{line}" in closed.pretty(source=True)
    assert "test_core.py" not in str(closed)


# ---------------------------------------------------------------------------
# jaxpr_key
# ---------------------------------------------------------------------------

def _poly(x, y):
    z = x * y + fnp.sin(x)
    return fnp.sum(z * z) - 3.0


def test_jaxpr_key_is_equal_for_two_traces_of_one_program():
    x, y = np.ones(4), np.zeros(4)
    first, second = fg.make_jaxpr(_poly)(x, y), fg.make_jaxpr(_poly)(x, y)
    assert first.jaxpr is not second.jaxpr
    assert jaxpr_key(first.jaxpr) == jaxpr_key(second.jaxpr)
    assert hash(jaxpr_key(first.jaxpr)) == hash(jaxpr_key(second.jaxpr))
    assert jaxpr_key(first.jaxpr, with_source=True) == jaxpr_key(second.jaxpr, with_source=True)


def test_jaxpr_key_ignores_names_but_not_structure():
    assert jaxpr_key(_sin_mul()) == jaxpr_key(_sin_mul())
    a, b, c, d = (Var(F64_3) for _ in range(4))
    swapped = Jaxpr((), (a, b), [Eqn(sin_p, [a], [c], {}), Eqn(mul_p, [c, b], [d], {})], [d])
    assert jaxpr_key(swapped) != jaxpr_key(_sin_mul())


PROGRAMS = {
    "poly": _poly,
    "poly_other_literal": lambda x, y: fnp.sum((x * y + fnp.sin(x)) ** 2) - 4.0,
    "cos_instead_of_sin": lambda x, y: fnp.sum((x * y + fnp.cos(x)) ** 2) - 3.0,
    "swapped_inputs": lambda x, y: fnp.sum((y * x + fnp.sin(y)) ** 2) - 3.0,
    "mean": lambda x, y: fnp.mean((x * y + fnp.sin(x)) ** 2) - 3.0,
    "int_literal": lambda x, y: fnp.sum((x * y + fnp.sin(x)) ** 2) - fnp.int64(3),
    "no_sum": lambda x, y: (x * y + fnp.sin(x)) ** 2 - 3.0,
}


@given(data=st.data())
def test_jaxpr_key_differs_for_different_programs(data):
    names = data.draw(st.lists(st.sampled_from(sorted(PROGRAMS)), min_size=2, max_size=2,
                               unique=True), label="programs")
    n = data.draw(st.integers(1, 4), label="n")
    x, y = np.ones(n), np.ones(n)
    keys = [jaxpr_key(fg.make_jaxpr(PROGRAMS[k])(x, y).jaxpr) for k in names]
    texts = [str(fg.make_jaxpr(PROGRAMS[k])(x, y)) for k in names]
    assert texts[0] != texts[1]
    assert keys[0] != keys[1]


def test_jaxpr_key_differs_for_other_shapes_and_dtypes():
    key = lambda *args: jaxpr_key(fg.make_jaxpr(_poly)(*args).jaxpr)  # noqa: E731
    base = key(np.ones(3), np.ones(3))
    assert base != key(np.ones(4), np.ones(4))
    assert base != key(np.ones(3, np.float32), np.ones(3, np.float32))


def test_jaxpr_key_distinguishes_signed_zero_literals():
    # regression: literals were keyed with ==, so a cached rewrite (vmap, grad, jit)
    # built for 0.0 was reused for -0.0
    f = lambda x, s: 1.0 / (x * s)  # noqa: E731
    plus = fg.make_jaxpr(f, static_argnums=1)(1.0, 0.0)
    minus = fg.make_jaxpr(f, static_argnums=1)(1.0, -0.0)
    assert str(plus) != str(minus)
    assert jaxpr_key(plus.jaxpr) != jaxpr_key(minus.jaxpr)


def test_jaxpr_key_is_equal_for_two_traces_with_a_nan_literal():
    # regression: a NaN literal was keyed by its value, unequal to itself
    f = lambda x: x * float("nan")  # noqa: E731
    assert jaxpr_key(fg.make_jaxpr(f)(1.0).jaxpr) == jaxpr_key(fg.make_jaxpr(f)(1.0).jaxpr)
