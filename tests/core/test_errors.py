"""The error taxonomy: each class raised by a short user program, deriving from
FungradError and the matching builtin, its message naming the user's function,
file and line, and the fix."""
import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp

import markers  # tests/markers.py


def line_of(marker: str) -> int:
    return markers.line_of(__file__, marker)


def where(marker: str, fun: str) -> str:
    return markers.where(__file__, marker, fun)


def check(info, cls, builtin, marker, fun, fix):
    err = info.value
    assert type(err) is cls, type(err)
    assert isinstance(err, fg.FungradError) and isinstance(err, builtin)
    msg = str(err)
    assert where(marker, fun) in msg, msg
    assert fix in msg, msg


def branchy(x):
    if x > 0:  # MARK-bool
        return x
    return -x


def test_tracer_bool_conversion_error():
    for transform in (fg.make_jaxpr, fg.vmap):
        with pytest.raises(fg.TracerBoolConversionError) as info:
            transform(branchy)(np.array([1.0]) if transform is fg.vmap else 1.0)
        check(info, fg.TracerBoolConversionError, TypeError, "MARK-bool", "branchy",
              "fungrad.numpy.where")
    assert issubclass(fg.TracerBoolConversionError, fg.ConcretizationError)
    assert fg.grad(branchy)(2.0) == 1.0        # eager transforms know the value
    assert fg.jit(fg.grad(branchy))(2.0) == 1.0   # jit specialises and guards the branch


def floaty(x):
    return x * float(x)  # MARK-float


def test_concretization_error():
    with pytest.raises(fg.ConcretizationError) as info:
        fg.jit(floaty)(2.0)
    check(info, fg.ConcretizationError, TypeError, "MARK-float", "floaty",
          "compute the float outside the transformed function")
    with pytest.raises(fg.ConcretizationError) as info:   # it would drop x's derivative
        fg.grad(floaty)(3.0)
    check(info, fg.ConcretizationError, TypeError, "MARK-float", "floaty",
          "stop_gradient")


def loopy(x, n):
    total = x
    for _ in range(n):  # MARK-int
        total = total * x
    return total


def test_tracer_integer_conversion_error():
    with pytest.raises(fg.TracerIntegerConversionError) as info:
        fg.make_jaxpr(loopy)(2.0, 3)
    check(info, fg.TracerIntegerConversionError, TypeError, "MARK-int", "loopy",
          "static_argnums")
    assert fg.jit(loopy, static_argnums=1)(2.0, 3) == 16.0
    assert fg.jit(loopy)(2.0, 3) == 16.0 and fg.jit(loopy)(2.0, 1) == 4.0   # guarded


def numpy_inside(x):
    return np.sin(np.asarray(x)).sum()  # MARK-array


def test_tracer_array_conversion_error():
    with pytest.raises(fg.TracerArrayConversionError) as info:
        fg.grad(numpy_inside)(np.ones(2))
    check(info, fg.TracerArrayConversionError, TypeError, "MARK-array", "numpy_inside",
          "use the function of the same name in fungrad.numpy")


_saved = []


def leaky(x):
    _saved.append(fnp.sin(x))  # MARK-leak-made
    return fnp.sum(x * 2.0)


def use_later():
    return _saved[0] + 1.0  # MARK-leak-used


def test_unexpected_tracer_error():
    _saved.clear()
    fg.grad(leaky)(np.ones(3))
    with pytest.raises(fg.UnexpectedTracerError) as info:
        use_later()
    check(info, fg.UnexpectedTracerError, RuntimeError, "MARK-leak-used", "use_later",
          "return it from the function instead of storing it")
    made = str(info.value).split("created at ", 1)[1]
    assert made.startswith(__file__) and where("MARK-leak-made", "leaky") in made
    # used inside another transform later: the same error
    with pytest.raises(fg.UnexpectedTracerError):
        fg.grad(lambda y: fnp.sum(y * _saved[0]))(np.ones(3))


def test_error_classes_are_exported_with_their_builtins():
    assert issubclass(fg.ConcretizationError, TypeError)
    assert issubclass(fg.TracerIntegerConversionError, fg.ConcretizationError)
    assert issubclass(fg.TracerArrayConversionError, TypeError)
    assert issubclass(fg.UnexpectedTracerError, RuntimeError)
    assert issubclass(fg.FungradFloatingPointError, FloatingPointError)
    for name in ("FungradError", "TracerBoolConversionError", "ConcretizationError",
                 "TracerArrayConversionError", "TracerIntegerConversionError",
                 "UnexpectedTracerError", "FungradFloatingPointError"):
        assert name in fg.__all__ and issubclass(getattr(fg, name), fg.FungradError)


def test_storing_a_traced_value_into_a_numpy_array_is_refused_not_silently_wrong():
    def h(x):
        a = np.zeros(2)
        a[0] = x * 2  # MARK-store
        return fnp.sum(a * x)
    with pytest.raises(ValueError) as info:
        fg.grad(h)(3.0)
    cause = info.value.__cause__ if not isinstance(info.value, fg.FungradError) else info.value
    assert isinstance(cause, fg.FungradError)
    assert "test_errors.py" in str(cause) and "fnp.zeros" in str(cause)

    def traced(x):
        a = fnp.zeros(2)
        a[0] = x * 2
        return fnp.sum(a * x)
    assert fg.grad(traced)(3.0) == 12.0
    assert fg.grad(lambda x: x * float(fg.stop_gradient(x)))(3.0) == 3.0   # a constant
