"""Compiling off the caller's path (backend/execution.py): the interpreter serves calls
while a kernel compiles in a background thread, then the kernel is swapped in."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.backend import execution, numba_jit
from fungrad.config import config
from fungrad.core import Primitive
from fungrad.interpreter import eval_jaxpr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _background(tmp_path, monkeypatch):
    """The background compiler on, a private kernel cache, no compile messages."""
    execution.wait_for_kernels(600)
    for name, value in (("sync_compile", False), ("cache_dir", str(tmp_path / "cache")),
                        ("compile_messages", False)):
        monkeypatch.setattr(config, name, value, raising=False)
        object.__setattr__(config, name, value)
    fg.clear_caches()
    yield
    assert execution.wait_for_kernels(600)


def _wait_until(predicate, timeout=600.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _loss(w, x):
    return fnp.sum(fnp.tanh(x @ w) * fnp.exp(-w[0]))


def test_background_compile_is_swapped_in_while_calls_stay_correct():
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    g = fg.grad(_loss)
    with config.override("disable_jit", True):
        expected = g(w, x)
    compiled_before = config.kernels.compiled + config.kernels.cache_loaded
    calls = 0
    with config.override("jit_threshold", 1):
        # keep calling: every call answers at once (interpreter, then the kernel)
        def swapped():
            return [e for e in list(execution._by_key.values()) if e.kernel is not None]
        while not swapped():
            np.testing.assert_allclose(g(w, x), expected, rtol=1e-12)
            calls += 1
            assert calls < 1_000_000
            time.sleep(0.001)
        assert calls > 2       # the first calls after the threshold did not wait
        for _ in range(3):
            np.testing.assert_allclose(g(w, x), expected, rtol=1e-12)
    assert config.kernels.compiled + config.kernels.cache_loaded == compiled_before + 1
    assert all(e.kernel.fn is not None and e.kernel.checked for e in swapped())
    assert config.kernels.pending == 0


def test_jit_first_call_runs_interpreted_and_lower_compile_waits():
    f = fg.jit(lambda x, y: fnp.sin(x) * y + fnp.max(x))
    x, y = np.linspace(-1, 1, 7), np.arange(7.0)
    expected = np.sin(x) * y + np.max(x)
    before = config.kernels.compiled + config.kernels.cache_loaded
    np.testing.assert_allclose(f(x, y), expected, rtol=1e-12)   # does not wait
    compiled = f.lower(x, y).compile()                          # waits for the kernel
    assert config.kernels.compiled + config.kernels.cache_loaded == before + 1
    np.testing.assert_allclose(compiled(x, y), expected, rtol=1e-12)
    (trace,) = f._cache.values()
    assert trace.executable.direct() is not None                # the kernel runs now
    np.testing.assert_allclose(f(x, y), expected, rtol=1e-12)


def test_sync_compile_flag_compiles_in_the_caller():
    f = fg.jit(lambda x: fnp.cumsum(x * 3.0))
    x = np.arange(5.0)
    before = config.kernels.compiled + config.kernels.cache_loaded
    with config.override("sync_compile", True):
        np.testing.assert_allclose(f(x), np.cumsum(x * 3.0))
        assert config.kernels.compiled + config.kernels.cache_loaded == before + 1
        assert config.kernels.pending == 0


def test_a_kernel_failing_in_the_background_leaves_the_interpreter_and_warns_once():
    p = Primitive("bg_reject_op")
    p.def_impl(lambda x: np.cos(x) + 1.0)
    p.def_shape(lambda x: x)
    p.def_emit(lambda x: f"not_a_function({x})")
    f = fg.jit(lambda x: p.bind(fnp.sin(x)) * 2.0)
    x = np.linspace(0, 1, 5)
    expected = (np.cos(np.sin(x)) + 1.0) * 2.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(f(x), expected)
        _wait_until(lambda: config.kernels.pending == 0)
        for _ in range(5):
            np.testing.assert_array_equal(f(x), expected)
    ours = [w for w in caught if issubclass(w.category, numba_jit.FungradKernelWarning)]
    assert len(ours) == 1 and "bg_reject_op" in str(ours[0].message), [
        str(w.message) for w in caught]
    assert ours[0].filename == __file__       # issued in the caller's thread, at its line


def test_concurrent_first_calls_from_threads_each_get_their_answer():
    f = fg.jit(lambda x, s: fnp.sum(fnp.tanh(x) * s) + fnp.prod(x[:2]))
    g = fg.grad(lambda x: fnp.sum(fnp.sin(x) ** 2))
    inputs = [np.linspace(-1, 1, 6) * (k + 1) for k in range(8)]
    barrier = threading.Barrier(len(inputs))
    failures = []

    def worker(k):
        x = inputs[k]
        barrier.wait()
        try:
            for _ in range(6):
                np.testing.assert_allclose(
                    f(x, float(k)), np.sum(np.tanh(x) * k) + np.prod(x[:2]), rtol=1e-12)
                np.testing.assert_allclose(g(x), np.sin(2 * x), rtol=1e-12, atol=1e-15)
        except BaseException as e:  # noqa: BLE001
            failures.append((k, e))

    with config.override("jit_threshold", 1):
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures, failures


def test_a_slow_compile_says_so_once_naming_the_users_line(capfd):
    config.update("compile_messages", True)
    config.update("compile_message_after", 0.0)
    try:
        f = fg.jit(lambda x: fnp.sum(fnp.exp(x) * x))     # the line named
        line = sys._getframe().f_lineno - 1
        with config.override("sync_compile", True):
            f(np.ones(3))
            f(np.ones(3))
        err = capfd.readouterr().err
        assert err.count("fungrad: compiling a kernel") == 1, err
        assert f"{os.path.basename(__file__)}:{line}" in err and "compile_messages" in err
        h = fg.jit(lambda x: fnp.sum(fnp.cos(x) * x))
        with config.override("sync_compile", True), config.override("compile_messages", False):
            h(np.ones(3))
        assert "fungrad" not in capfd.readouterr().err
    finally:
        config.update("compile_messages", False)
        config.update("compile_message_after", 1.0)


_KILLED_CHILD = textwrap.dedent("""
    import sys, time, numpy as np, fungrad as fg, fungrad.numpy as fnp
    def loss(w, x):
        h = fnp.tanh(x @ w)
        return fnp.sum(h * h) + fnp.sum(fnp.log1p(fnp.exp(-fnp.abs(w))))
    w, x = np.linspace(-1, 1, 12).reshape(4, 3), np.linspace(0, 2, 20).reshape(5, 4)
    g = fg.jit(fg.grad(loss))
    out = g(w, x)
    if sys.argv[1] == "compile":
        print("started", flush=True)
        time.sleep(60)          # killed while the kernel compiles (or just after)
    else:
        fg.backend.execution.wait_for_kernels()
        out = fg.jit(fg.grad(loss)).lower(w, x).compile()(w, x)
        with fg.config.override("disable_jit", True):
            want = fg.grad(loss)(w, x)
        np.testing.assert_allclose(out, want, rtol=1e-12)
        k = fg.config.kernels
        print(k.compiled + k.cache_loaded, k.cache_errors, k.fallbacks)
""")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_a_process_killed_while_compiling_leaves_a_usable_cache(tmp_path, delay):
    env = dict(os.environ, FUNGRAD_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT,
               FUNGRAD_SYNC_COMPILE="0", FUNGRAD_COMPILE_MESSAGES="0")
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, "compile"], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    after = subprocess.run([sys.executable, "-c", _KILLED_CHILD, "check"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["1", "0", "0"], after.stdout + after.stderr
