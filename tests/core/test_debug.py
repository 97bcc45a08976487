"""debug_nans / debug_infs: the first equation producing a NaN or an inf raises
FloatingPointError naming the primitive and the user's line; fungrad.config."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.errors import FungradFloatingPointError, FungradValueError

import markers  # tests/markers.py

# NumPy's own divide/invalid warnings from the unchecked runs
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def line_of(marker: str) -> int:
    return markers.line_of(__file__, marker)


@pytest.fixture
def debug_nans():
    with fg.config.override("debug_nans", True):
        yield


def forward_nan(x):
    y = fnp.exp(x)
    return fnp.sum(fnp.log(y - 2.0))  # MARK-forward-log


def test_forward_nan_names_primitive_and_line(debug_nans):
    for run in (fg.value_and_grad(forward_nan), fg.jit(forward_nan),
                fg.vmap(forward_nan)):
        with pytest.raises(FloatingPointError) as info:
            run(np.array([[0.0, 1.0]]) if "vmap" in run.__name__ else np.array([0.0, 1.0]))
    msg = str(info.value)
    assert "debug_nans: primitive 'log' produced NaN" in msg
    assert f"test_debug.py:{line_of('MARK-forward-log')}" in msg
    assert "(in forward_nan)" in msg
    assert isinstance(info.value, FungradFloatingPointError)


@fg.custom_vjp
def planted(x):
    return x * 2.0


def _planted_fwd(x):
    return planted(x), x


def _planted_bwd(x, g):
    return (g * fnp.log(x - x) * 0.0,)  # MARK-backward-log: log(0) = -inf, times 0 = NaN


planted.defvjp(_planted_fwd, _planted_bwd)


def test_planted_log0_in_the_backward_pass(debug_nans):
    loss = lambda x: fnp.sum(planted(x) ** 2)  # noqa: E731
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(loss(x), 20.0)       # the forward pass is clean
    for run in (lambda: fg.grad(loss)(x), lambda: fg.vjp(loss, x)[1](1.0),
                lambda: fg.jit(fg.grad(loss))(x)):
        with pytest.raises(FloatingPointError) as info:
            run()
        msg = str(info.value)
        assert "primitive 'mul' produced NaN" in msg, msg
        assert f"test_debug.py:{line_of('MARK-backward-log')}" in msg
    with fg.config.override("debug_nans", False):
        assert np.isnan(fg.grad(loss)(x)).all()     # off: NaN flows out silently


def test_derivative_equations_carry_the_primal_line():
    def f(x):
        return fnp.sum(fnp.arccos(x))  # MARK-arccos: d/dx = -1/sqrt(1-x^2), inf at 1

    assert fg.grad(f)(np.array([1.0, 0.0]))[0] == -np.inf
    with fg.config.override("debug_infs", True):
        np.testing.assert_allclose(f(np.array([1.0])), 0.0)   # forward fine at 1
        with pytest.raises(FloatingPointError) as info:
            fg.grad(f)(np.array([1.0, 0.0]))
    msg = str(info.value)
    assert "debug_infs" in msg and "produced inf" in msg
    assert f"test_debug.py:{line_of('MARK-arccos')}" in msg


def test_checked_call_blames_the_equation_inside_a_checkpoint(debug_nans):
    def body(x):
        return fnp.sqrt(x - 3.0)  # MARK-in-checkpoint

    with pytest.raises(FloatingPointError) as info:
        fg.grad(lambda x: fnp.sum(fg.checkpoint(body)(x)))(np.array([1.0]))
    assert "'sqrt' produced NaN" in str(info.value)
    assert f"test_debug.py:{line_of('MARK-in-checkpoint')}" in str(info.value)


def test_no_false_alarm_and_same_values(debug_nans):
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x ** 2))  # noqa: E731
    x = np.linspace(-2.0, 2.0, 5)
    with fg.config.override("debug_nans", False):
        expected = fg.grad(f)(x)
    np.testing.assert_array_equal(fg.grad(f)(x), expected)
    np.testing.assert_array_equal(fg.jit(fg.grad(f))(x), expected)


def test_input_nan_is_reported_as_coming_from_the_inputs(debug_nans):
    with pytest.raises(FloatingPointError, match="inputs already contained NaN"):
        fg.grad(lambda x: fnp.sum(fnp.sin(x)))(np.array([np.nan, 1.0]))


def test_environment_variable_turns_debug_nans_on(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(
        "import numpy as np, fungrad as fg, fungrad.numpy as fnp\n"
        "assert fg.config.debug_nans\n"
        "def loss(x):\n"
        "    return fnp.sum(fnp.log(x - 1.0))\n"
        "fg.value_and_grad(loss)(np.array([0.5]))\n")
    # the script runs from tmp_path: import the fungrad under test, not an installed one
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fg.__file__)))
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, FUNGRAD_DEBUG_NANS="1", FUNGRAD_DISABLE_JIT="1", PYTHONPATH=path)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0
    assert "FloatingPointError" in proc.stderr or "FungradFloatingPointError" in proc.stderr
    assert "user_script.py:4 (in loss)" in proc.stderr


def test_config_update_and_override():
    assert fg.config.debug_nans is False
    fg.config.update("debug_nans", True)
    try:
        assert fg.config.debug_nans is True
    finally:
        fg.config.update("debug_nans", False)
    with fg.config.override("debug_infs", True):
        assert fg.config.debug_infs
    assert not fg.config.debug_infs
    with pytest.raises(FungradValueError, match="unknown option 'debug_nan'"):
        fg.config.update("debug_nan", True)
    assert "debug_nans" in fg.config.options()


def test_eager_operations_outside_transforms_are_checked(debug_nans):
    def f(x):
        return fnp.sqrt(x - 1.0)  # MARK-eager

    np.testing.assert_allclose(f(np.array([2.0])), [1.0])
    with pytest.raises(FloatingPointError) as info:
        f(np.array([0.0, 2.0]))
    assert "'sqrt' produced NaN" in str(info.value)
    assert f"test_debug.py:{line_of('MARK-eager')} (in f)" in str(info.value)


def dropped_forward(x):
    return fnp.sum(fnp.log(x - 1.0) * 0.0)  # MARK-dropped: the derivative never needs it


def test_forward_values_are_checked_under_enclosing_transforms(debug_nans):
    """The derivative of dropped_forward is 0 and its program no longer computes the
    NaN of log(0) * 0; the flag is about what the user wrote, in every composition."""
    x = np.array([1.0, 2.0])
    runs = {
        "jit(grad)": lambda: fg.jit(fg.grad(dropped_forward))(x),
        "jit(jacrev)": lambda: fg.jit(fg.jacrev(dropped_forward))(x),
        "jit(jacfwd)": lambda: fg.jit(fg.jacfwd(dropped_forward))(x),
        "vmap(grad)": lambda: fg.vmap(fg.grad(dropped_forward))(x[None]),
        "grad(grad)": lambda: fg.grad(lambda v: fnp.sum(fg.grad(dropped_forward)(v)))(x),
        "jit(hessian)": lambda: fg.jit(fg.hessian(dropped_forward))(x),
    }
    for name, run in runs.items():
        with pytest.raises(FloatingPointError) as info:
            run()
        assert f"test_debug.py:{line_of('MARK-dropped')}" in str(info.value), name
    with fg.config.override("debug_nans", False):
        np.testing.assert_array_equal(fg.jit(fg.grad(dropped_forward))(x), [0.0, 0.0])


def test_checking_forward_values_changes_no_result(debug_nans):
    f = lambda x: fnp.sum(fnp.tanh(x) * fnp.exp(-x ** 2))  # noqa: E731
    x = np.linspace(-2.0, 2.0, 5)
    with fg.config.override("debug_nans", False):
        expected = fg.grad(f)(x)
    jitted = fg.jit(fg.grad(f))
    np.testing.assert_array_equal(jitted(x), expected)          # traced with the flag on
    np.testing.assert_array_equal(fg.vmap(fg.grad(f))(x[None])[0], expected)
    with fg.config.override("debug_nans", False):
        for _ in range(5):                                       # past the tier-up
            np.testing.assert_array_equal(jitted(x), expected)
