"""Every public function of fungrad.numpy, fungrad.lax, fungrad.nn and the transforms,
driven with wrong types, shapes and values: each call either works or raises one of
fungrad's errors (FungradError) or an error NumPy itself documents for that input
(AxisError, LinAlgError).  Anything else (an AttributeError from deep inside, a
bare TypeError from a primitive, an OverflowError from a kernel) is an internal error:
the user learns nothing from it."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import fungrad as fg
import fungrad.lax as lax
import fungrad.nn as nn
import fungrad.numpy as fnp
from fungrad.errors import FungradError

ALLOWED = (FungradError, np.exceptions.AxisError, np.linalg.LinAlgError)

# wrong values for an array argument, and for the keyword arguments that every
# NumPy-style function shares
BAD_ARRAYS = ["abc", None, object(), {"a": 1}, 2 ** 70, np.array(["x", "y"])]
BAD_AXES = [0.0, "0", (0, 0), 5, -7, (0, 1.5), True]

# functions that take functions, or whose arguments are not arrays
SKIP = {"vectorize", "frompyfunc", "piecewise", "apply_along_axis", "apply_over_axes",
        "einsum_path", "set_printoptions", "printoptions", "get_printoptions", "seterr",
        "errstate", "geterr", "dtype", "finfo", "iinfo", "result_type", "issubdtype",
        "can_cast", "promote_types"}


def _public_functions(module):
    for name in sorted(getattr(module, "__all__", dir(module))):
        obj = getattr(module, name, None)
        if name.startswith("_") or name in SKIP or not callable(obj) or isinstance(obj, type):
            continue
        if getattr(obj, "__module__", "") and not obj.__module__.startswith("fungrad"):
            continue
        yield name, obj


def _call(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fn(*args, **kwargs)
        except ALLOWED:
            pass
        except Exception as e:  # noqa: BLE001  (what the test is about)
            return f"{type(e).__name__}: {str(e)[:160]}"
    return None


def _n_required(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.default is inspect.Parameter.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _params_before(fn, name: str) -> int:
    names = list(inspect.signature(fn).parameters)
    return names.index(name)


def _required_after(fn, name: str) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())
    i = [p.name for p in params].index(name)
    return [p.name for p in params[i + 1:] if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _fuzz_module(module, good):
    failures = []
    for name, fn in _public_functions(module):
        n = max(_n_required(fn), 1)
        for bad in BAD_ARRAYS:
            for pos in range(n):
                args = [good] * n
                args[pos] = bad
                err = _call(fn, *args)
                if err:
                    failures.append(f"{name}(arg {pos} = {bad!r:.20}): {err}")
        if _accepts(fn, "axis"):
            # a required `axis` (lax.argmax(operand, axis, ...)) is passed by keyword
            # only: passing it twice is Python's own TypeError, not ours
            before = _params_before(fn, "axis")
            for axis in BAD_AXES:
                err = _call(fn, *([good] * min(n, before)), axis=axis,
                            **{p: good for p in _required_after(fn, "axis")})
                if err:
                    failures.append(f"{name}(axis={axis!r}): {err}")
    return failures


GOOD = np.arange(6.0).reshape(2, 3) + 1.0


@pytest.mark.parametrize("module", [fnp, fnp.linalg, lax, nn],
                         ids=["fungrad.numpy", "fungrad.numpy.linalg", "fungrad.lax",
                              "fungrad.nn"])
def test_every_public_function_refuses_bad_arguments_with_our_errors(module):
    failures = _fuzz_module(module, GOOD)
    assert not failures, (f"{len(failures)} internal errors:\n" + "\n".join(failures[:60]))


def _f(x):
    return fnp.sum(x * x)


TRANSFORM_CASES = {
    "grad argnums='0'": lambda: fg.grad(_f, argnums="0")(GOOD),
    "grad argnums=None": lambda: fg.grad(_f, argnums=None)(GOOD),
    "grad argnums=()": lambda: fg.grad(_f, argnums=())(GOOD),
    "grad argnums=5": lambda: fg.grad(_f, argnums=5)(GOOD),
    "grad argnums=(0, 0)": lambda: fg.grad(_f, argnums=(0, 0))(GOOD),
    "grad of a non-function": lambda: fg.grad(3.0)(GOOD),
    "grad int input": lambda: fg.grad(_f)(np.arange(3)),
    "grad str input": lambda: fg.grad(_f)("abc"),
    "grad non-scalar out": lambda: fg.grad(lambda x: x)(GOOD),
    "value_and_grad argnums=1.0": lambda: fg.value_and_grad(_f, argnums=1.0)(GOOD),
    "jacfwd argnums=[0, 0]": lambda: fg.jacfwd(_f, argnums=[0, 0])(GOOD),
    "jacrev chunk_size=0": lambda: fg.jacrev(_f, chunk_size=0)(GOOD),
    "jacfwd chunk_size='a'": lambda: fg.jacfwd(_f, chunk_size="a")(GOOD),
    "hessian argnums='x'": lambda: fg.hessian(_f, argnums="x")(GOOD),
    "vmap in_axes='0'": lambda: fg.vmap(_f, in_axes="0")(GOOD),
    "vmap in_axes=0.0": lambda: fg.vmap(_f, in_axes=0.0)(GOOD),
    "vmap in_axes=(0, 0)": lambda: fg.vmap(_f, in_axes=(0, 0))(GOOD),
    "vmap in_axes=5": lambda: fg.vmap(_f, in_axes=5)(GOOD),
    "vmap in_axes={}": lambda: fg.vmap(_f, in_axes={"x": 0})(GOOD),
    "vmap out_axes='a'": lambda: fg.vmap(_f, out_axes="a")(GOOD),
    "vmap out_axes=3": lambda: fg.vmap(_f, out_axes=3)(GOOD),
    "vmap axis_size=-1": lambda: fg.vmap(_f, in_axes=None, axis_size=-1)(GOOD),
    "vmap no args": lambda: fg.vmap(_f)(),
    "vmap str arg": lambda: fg.vmap(_f)("abc"),
    "jvp primals not tuple": lambda: fg.jvp(_f, GOOD, GOOD),
    "jvp shape mismatch": lambda: fg.jvp(_f, (GOOD,), (np.ones(2),)),
    "jvp tangents str": lambda: fg.jvp(_f, (GOOD,), ("abc",)),
    "vjp str primal": lambda: fg.vjp(_f, "abc"),
    "vjp pullback wrong shape": lambda: fg.vjp(lambda x: x, GOOD)[1](np.ones(7)),
    "vjp pullback str": lambda: fg.vjp(lambda x: x, GOOD)[1]("abc"),
    "linearize str": lambda: fg.linearize(_f, "abc"),
    "jit str": lambda: fg.jit(_f)("abc"),
    "jit huge int": lambda: fg.jit(lambda x: x + 1)(2 ** 70),
    "jit static_argnums='a'": lambda: fg.jit(_f, static_argnums="a")(GOOD),
    "jit static unhashable": lambda: fg.jit(lambda x, n: x, static_argnums=1)(GOOD, [1]),
    "jit of a non-function": lambda: fg.jit(3)(GOOD),
    "make_jaxpr object": lambda: fg.make_jaxpr(_f)(object()),
    "linear_transpose nonlinear": lambda: fg.linear_transpose(lambda x: x * x, GOOD),
    "cond pred str": lambda: fg.lax.cond("a", lambda x: x, lambda x: x, 1.0),
    "cond pred shape": lambda: fg.lax.cond(np.ones(2) > 0, lambda x: x, lambda x: x, 1.0),
    "switch index float": lambda: fg.lax.switch(1.5, [lambda x: x, lambda x: x], 1.0),
    "switch no branches": lambda: fg.lax.switch(0, [], 1.0),
    "while_loop bad cond": lambda: fg.lax.while_loop(lambda c: c, lambda c: c + 1.0, 1.0),
    "scan no xs": lambda: fg.lax.scan(lambda c, x: (c, x), 0.0, None),
    "scan bad xs": lambda: fg.lax.scan(lambda c, x: (c, x), 0.0, "abc"),
    "fori_loop float bounds": lambda: fg.lax.fori_loop(0.0, 3.0, lambda i, c: c, 1.0),
}


@pytest.mark.parametrize("case", sorted(TRANSFORM_CASES))
def test_transforms_refuse_bad_arguments_with_our_errors(case):
    err = _call(TRANSFORM_CASES[case])
    assert err is None, f"{case}: {err}"


# Arguments that used to be silently reinterpreted (an axis taken modulo ndim, a float
# truncated to an int, a string read as a dtype): each now raises, naming the argument.
SILENT_CASES = {
    "lax.squeeze dimension out of range": lambda: lax.squeeze(np.ones((2, 1)), (5,)),
    "lax.reshape float size": lambda: lax.reshape(GOOD, (3, 2.0)),
    "lax.broadcast_in_dim negative size": lambda: lax.broadcast_in_dim(1.0, (-1,), ()),
    "lax.slice zero stride": lambda: lax.slice(GOOD, (0, 0), (2, 3), (1, 0)),
    "lax.integer_pow float exponent": lambda: lax.integer_pow(GOOD, 2.5),
    "lax.cumsum float axis": lambda: lax.cumsum(GOOD, axis=1.0),
    "lax.argmax float index dtype": lambda: lax.argmax(GOOD, 0, np.float64),
    "lax.iota string dtype": lambda: lax.iota("abc", 3),
    "lax.fft unknown type": lambda: lax.fft(GOOD, "DCT", (3,)),
    "lax.expand_dims out of range": lambda: lax.expand_dims(GOOD, (7,)),
    "lax.reduce_sum axis of a 0-d": lambda: lax.reduce_sum(np.float64(1.0), (0,)),
    "lax.pad negative interior": lambda: lax.pad(GOOD, 0.0, ((0, 0, -1), (0, 0, 0))),
    "lax.dot_general flat numbers": lambda: lax.dot_general(GOOD, GOOD.T, ((1,), (0,))),
    "lax.conv_general_dilated bad permutation": lambda: lax.conv_general_dilated(
        np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), (1, 1), "VALID",
        dimension_numbers=((0, 1, 2, 2), (0, 1, 2, 3), (0, 1, 2, 3))),
    "lax.cond branch not callable": lambda: lax.cond(True, 1.0, lambda x: x, 2.0),
    "lax.scan length float": lambda: lax.scan(lambda c, x: (c, x), 0.0, None, length=3.0),
    "fnp.squeeze axis out of range": lambda: fnp.squeeze(np.ones((2, 1)), axis=5),
    "fnp.linalg.cross axis out of range": lambda: fnp.linalg.cross(
        np.ones((3, 3)), np.ones((3, 3)), axis=5),
    "fnp.linalg.vecdot axis out of range": lambda: fnp.linalg.vecdot(GOOD, GOOD, axis=-7),
    "fnp.size axis out of range": lambda: fnp.size(GOOD, axis=5),
    "fnp.zeros float shape": lambda: fnp.zeros((2, 3.0)),
    "fnp.ones negative shape": lambda: fnp.ones((2, -1)),
    "fnp.tile float reps": lambda: fnp.tile(GOOD, 2.5),
    "fnp.repeat float count": lambda: fnp.repeat(GOOD, 1.5),
    "fnp.roll float shift": lambda: fnp.roll(GOOD, 1.5, axis=0),
    "fnp.eye float N": lambda: fnp.eye(2.5),
    "fnp.asarray string": lambda: fnp.asarray("abc"),
    "fnp.astype string dtype": lambda: fnp.astype(GOOD, "abc"),
    "fnp.linspace float num": lambda: fnp.linspace(0.0, 1.0, 2.5),
    "fnp.take_along_axis float axis": lambda: fnp.take_along_axis(
        GOOD, np.zeros((2, 1), int), 1.0),
    "nn.glu axis out of range": lambda: nn.glu(np.ones((2, 4)), axis=5),
}


@pytest.mark.parametrize("case", sorted(SILENT_CASES))
def test_misused_arguments_raise_our_error_naming_the_line(case):
    with pytest.raises(FungradError) as info:
        SILENT_CASES[case]()
    # the message names the user's file and line (this test file)
    assert "test_fuzz_arguments.py" in str(info.value), str(info.value)


def test_good_static_arguments_still_work():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(lax.reshape(x, np.array([3, 2])), x.reshape(3, 2))
    np.testing.assert_array_equal(lax.squeeze(np.ones((2, 1)), (-1,)), np.ones(2))
    np.testing.assert_array_equal(lax.transpose(x, [1, 0]), x.T)
    np.testing.assert_array_equal(lax.iota("int32", 3), np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(lax.complex(1.0, x), 1.0 + 1j * x)
    np.testing.assert_array_equal(fnp.roll(x, (1, 1), axis=(1, 1)), np.roll(x, (1, 1), (1, 1)))
    np.testing.assert_array_equal(fnp.repeat(x, np.array([1, 2]), axis=0),
                                  np.repeat(x, [1, 2], axis=0))
    np.testing.assert_array_equal(fnp.zeros(np.int64(3)), np.zeros(3))
    assert lax.fft(x.astype(complex), "fft", (3,)).shape == (2, 3)
