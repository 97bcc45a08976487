"""fungrad.tracing: make_jaxpr's output, what a Tracer knows (shape, dtype, ndim),
leaked tracers, Python conversions of traced values, static_argnums."""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.core import ShapedArray
from fungrad.errors import FungradError, FungradTypeError, FungradValueError
from fungrad.tracing import Tracer, current_trace, is_tracer

import markers  # tests/markers.py


def line_of(marker: str) -> int:
    return markers.line_of(__file__, marker)


def where(marker: str, fun: str) -> str:
    return markers.where(__file__, marker, fun)


# ---------------------------------------------------------------------------
# make_jaxpr
# ---------------------------------------------------------------------------

def test_make_jaxpr_prints_the_program():
    closed = fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(1.0)
    assert str(closed) == ("{ lambda ; a:f64[] . let\n"
                           "    b:f64[] = sin a\n"
                           "    c:f64[] = mul b 2.0:f64[]\n"
                           "  in (c) }")
    assert isinstance(closed, fg.ClosedJaxpr) and closed.consts == []
    assert closed.in_avals == [ShapedArray((), np.float64)]


def test_make_jaxpr_of_pytrees_and_keywords():
    def f(d, scale=None):
        return {"s": d["a"].sum() * scale, "t": (d["b"],)}
    closed, shapes = fg.make_jaxpr(f, return_shape=True)(
        {"a": np.ones((2, 3)), "b": np.float32(1)}, scale=2.0)
    assert [str(a) for a in closed.in_avals] == ["f64[2,3]", "f32[]", "f64[]"]
    assert [str(a) for a in closed.out_avals] == ["f64[]", "f32[]"]
    assert shapes["s"].shape == () and shapes["t"][0].dtype == np.float32
    assert "reduce_sum[axes=(0,1)] a" in str(closed)


def test_closed_over_arrays_become_constants_and_0d_arrays_literals():
    w = np.arange(6.0).reshape(2, 3)
    closed = fg.make_jaxpr(lambda x: x @ w + np.array(5.0))(np.ones(2))
    assert len(closed.consts) == 1 and closed.consts[0] is w
    assert str(closed).startswith("{ lambda a:f64[2,3] ; b:f64[2] . let")
    assert "5.0:f64[]" in str(closed)


def test_static_argnums_are_baked_in():
    def f(x, n, scale):
        for _ in range(n):            # a Python int: fine because it is static
            x = x * scale
        return x
    for argnums in ((1,), (1, -1)):
        closed = fg.make_jaxpr(f, static_argnums=argnums)(np.ones(2), 3, 2.0)
        assert len(closed.in_avals) == (1 if -1 in argnums else 2)
        assert str(closed).count(" mul ") == 3
    assert len(fg.make_jaxpr(f, static_argnums=1)(np.ones(2), 1, 2.0).eqns) == 1
    with pytest.raises(fg.TracerIntegerConversionError):
        fg.make_jaxpr(f)(np.ones(2), 3, 2.0)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
       dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
def test_tracer_knows_shape_dtype_ndim_size(shape, dtype):
    seen = []

    def f(x):
        seen.append((x.shape, x.dtype, x.ndim, x.size, x.aval, is_tracer(x), repr(x)))
        assert current_trace() is x._trace
        return x
    closed = fg.make_jaxpr(f)(np.zeros(shape, dtype))
    aval = ShapedArray(shape, dtype)
    assert seen == [(shape, np.dtype(dtype), len(shape), int(np.prod(shape)), aval, True,
                     f"Traced<{aval}>")]
    assert closed.out_avals == [aval] and current_trace() is None


def test_tracer_len_and_iteration():
    def f(x):
        assert len(x) == 3
        rows = list(x)
        assert len(rows) == 3 and rows[0].shape == (2,)
        return rows[2]
    assert fg.make_jaxpr(f)(np.ones((3, 2))).out_avals == [ShapedArray((2,), np.float64)]
    with pytest.raises(FungradTypeError, match="len\\(\\) of a 0-d traced array"):
        fg.make_jaxpr(lambda x: len(x))(1.0)


def test_eager_tracer_shows_its_value():
    seen = []
    fg.grad(lambda x: (seen.append(repr(x)), x * x)[1])(2.0)
    assert seen == ["Traced<f64[]>(value=2.)"]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_leaked_tracer_error_names_the_use():
    saved = []

    def leak(x):
        saved.append(x)
        return x * 2.0
    fg.make_jaxpr(leak)(1.0)
    with pytest.raises(fg.UnexpectedTracerError) as info:
        saved[0] + 1.0  # MARK-leak-use
    msg = str(info.value)
    assert isinstance(info.value, FungradError) and isinstance(info.value, RuntimeError)
    assert "escaped the transform" in msg and "traced f64[] value" in msg
    assert "it was an argument of the transformed function" in msg
    assert where("MARK-leak-use", "test_leaked_tracer_error_names_the_use") in msg, msg


def test_leaked_tracer_cannot_be_read_or_fed_to_another_trace():
    saved = []
    fg.make_jaxpr(lambda x: saved.append(fnp.sin(x)) or x)(1.0)
    with pytest.raises(fg.UnexpectedTracerError, match="it was created at .*test_tracing.py"):
        fg.make_jaxpr(lambda y: y + saved[0])(1.0)
    with pytest.raises(fg.UnexpectedTracerError):
        saved[0].concrete_value()


def branch_on_value(x):
    if x > 0:  # MARK-bool
        return x
    return -x


def test_bool_conversion_error_names_the_users_line():
    with pytest.raises(fg.TracerBoolConversionError) as info:
        fg.make_jaxpr(branch_on_value)(1.0)
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert msg.startswith("a traced bool[] value was used as a Python bool"), msg
    assert where("MARK-bool", "branch_on_value") in msg, msg
    assert "fungrad.numpy.where" in msg and "static_argnums" in msg


def test_bool_of_a_non_scalar_is_ambiguous():
    with pytest.raises(FungradValueError, match="truth value of a traced bool\\[3\\] array"):
        fg.make_jaxpr(lambda x: 1.0 if x > 0 else 0.0)(np.ones(3))


def test_other_conversions_under_abstract_tracing():
    with pytest.raises(fg.ConcretizationError, match="as a Python float"):
        fg.make_jaxpr(lambda x: float(x))(1.0)
    with pytest.raises(fg.TracerIntegerConversionError, match="as a Python int"):
        fg.make_jaxpr(lambda x: int(x))(1)
    with pytest.raises(fg.ConcretizationError, match="x.item"):
        fg.make_jaxpr(lambda x: x.item())(1.0)
    with pytest.raises(fg.TracerArrayConversionError) as info:
        fg.make_jaxpr(lambda x: np.asarray(x))(np.ones(2))  # MARK-asarray
    assert "test_tracing.py" in str(info.value) and "fungrad.numpy" in str(info.value)
    with pytest.raises(FungradTypeError, match="unhashable"):
        fg.make_jaxpr(lambda x: hash(x))(1.0)


def test_non_array_arguments_are_refused():
    with pytest.raises(FungradTypeError, match="make_jaxpr: an argument leaf of type object"):
        fg.make_jaxpr(lambda x: x)(object())
    with pytest.raises(FungradTypeError, match="fungrad.numpy.asarray"):
        fg.make_jaxpr(lambda x: fg.lax.add(x, [1.0, 2.0]))(np.ones(2))   # lax takes arrays only


@pytest.mark.parametrize("transform", [fg.make_jaxpr, fg.grad, fg.vmap, fg.jit],
                         ids=lambda t: t.__name__)
def test_string_arguments_are_refused(transform):
    with pytest.raises(FungradTypeError, match="not (an|a numeric) array"):
        transform(lambda x: x)("abc")


def test_eager_transforms_know_values_so_python_control_flow_works():
    assert fg.grad(branch_on_value)(2.0) == 1.0 and fg.grad(branch_on_value)(-2.0) == -1.0
    assert fg.grad(lambda x: x * float(fg.lax.stop_gradient(x)))(3.0) == 3.0
    assert fg.grad(lambda x, n: x * float(n))(3.0, 2.0) == 2.0   # n is not differentiated


# -- Python conversions of a value being differentiated raise (issue 12) ---------------

def _logistic_math(w):
    return 1 / (1 + math.exp(-w))


CONVERSIONS = {
    "float": lambda w: w * float(w),
    "int": lambda w: w * int(w * 10),
    "complex": lambda w: w * complex(w).real,
    "item": lambda w: w * w.item(),
    "tolist": lambda w: w * w.tolist(),
    "math.exp": _logistic_math,
    "math.sqrt": lambda w: math.sqrt(w) * w,
    "derived": lambda w: w * float(fnp.sin(w) * 2.0 + 1.0),
}


def _every_derivative_transform(f, x):
    return {
        "grad": lambda: fg.grad(f)(x),
        "value_and_grad": lambda: fg.value_and_grad(f)(x),
        "vjp": lambda: fg.vjp(f, x),
        "jvp": lambda: fg.jvp(f, (x,), (1.0,)),
        "linearize": lambda: fg.linearize(f, x),
        "jacfwd": lambda: fg.jacfwd(f)(x),
        "jacrev": lambda: fg.jacrev(f)(x),
        "hessian": lambda: fg.hessian(f)(x),
        "grad(grad)": lambda: fg.grad(fg.grad(f))(x),
        "grad(jit)": lambda: fg.grad(fg.jit(f))(x),
    }


@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
def test_a_conversion_that_would_drop_a_derivative_raises_naming_the_line(conversion):
    f = CONVERSIONS[conversion]
    for name, run in _every_derivative_transform(f, 0.7).items():
        with pytest.raises(fg.ConcretizationError) as info:
            run()
        msg = str(info.value)
        if "under jit" not in msg.lower():       # grad(jit): jit's own abstract-value error
            assert "being differentiated" in msg, (name, msg)
            assert "test_tracing.py" in msg and "stop_gradient" in msg, (name, msg)


def test_sigmoid_through_math_exp_raises_instead_of_returning_zero():
    with pytest.raises(fg.ConcretizationError, match=r"math\.exp"):
        fg.grad(_logistic_math)(0.7)
    assert fg.grad(lambda w: 1 / (1 + fnp.exp(-w)))(0.7) == pytest.approx(0.22171287)


def test_conversions_that_drop_nothing_keep_working():
    # another argument, a constant, a shape, an integer result, stop_gradient, printing
    assert fg.grad(lambda w, n: w * float(n))(0.5, 3.0) == 3.0
    assert fg.grad(lambda w: fnp.sum(w * float(np.float64(2.0)) + w.shape[0]))(
        np.ones(2)).tolist() == [2.0, 2.0]
    assert fg.grad(lambda w: w[int(fnp.argmax(w))])(np.array([1.0, 3.0, 2.0])).tolist() \
        == [0.0, 1.0, 0.0]
    assert fg.grad(lambda w: w * fg.lax.stop_gradient(w).item())(3.0) == 3.0
    assert fg.jvp(lambda w: w * float(fg.lax.stop_gradient(w)), (2.0,), (1.0,))[1] == 2.0
    printed = []
    fg.grad(lambda w: printed.append(f"{w:.2f} {w}") or w * w)(0.5)
    assert printed == ["0.50 0.5"]
    # a value closed over from outside the transform is a constant
    c = np.float64(2.0)
    assert fg.grad(lambda w: w * math.exp(c))(1.0) == pytest.approx(math.exp(2.0))
    # values inside the differentiated function of a custom rule: the rule gives
    # the derivative, so a conversion of the function's own inputs drops nothing
    @fg.custom_jvp
    def f(x):
        return x * 0.0 + math.sin(x)

    f.defjvp(lambda p, t: (f(p[0]), fnp.cos(p[0]) * t[0]))
    assert fg.grad(f)(0.3) == pytest.approx(math.cos(0.3))
    # an outer derivative's value used inside an inner transform that does not
    # differentiate it: grad w.r.t. x only, y converted
    assert fg.grad(lambda x, y: x * float(y), argnums=0)(2.0, 5.0) == 5.0


def test_isinstance_tracer_and_nothing_left_on_the_context():
    seen = []
    fg.make_jaxpr(lambda x: seen.append(isinstance(x, Tracer)) or x)(1.0)
    assert seen == [True] and current_trace() is None
    with pytest.raises(fg.TracerBoolConversionError):
        fg.make_jaxpr(branch_on_value)(1.0)
    assert current_trace() is None                     # an error leaves no trace behind
