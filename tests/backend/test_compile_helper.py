"""Kernels compiled by the helper process (backend/compile_worker.py): the user's
process only loads them, and everything that can go wrong with the helper ends in
an in-process compile with the same results."""
import contextlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.backend import compile_worker, disk_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _helper_on():
    """The suite compiles in-process (conftest); these tests are about the helper."""
    with fg.config.override("compile_process", True):
        yield


def _program(c):
    return fg.jit(lambda x: fnp.tanh(x * c) + fnp.sum(x) * c)


def _expected(x, c):
    return np.tanh(x * c) + np.sum(x) * c


def test_a_kernel_is_compiled_by_the_helper_and_loaded_here(tmp_path):
    x = np.linspace(-1, 1, 7)
    before = dict(fg.config.kernels)
    written = disk_cache.stats["written"]
    with fg.config.override("cache_dir", str(tmp_path)):
        np.testing.assert_allclose(_program(0.3125)(x), _expected(x, 0.3125), rtol=1e-14)
        pid = compile_worker.helper_pid()
    assert pid is not None and pid != os.getpid()
    assert fg.config.kernels.compiled == before["compiled"] + 1
    assert disk_cache.stats["written"] == written + 1
    assert len(list((tmp_path / disk_cache.KERNELS).glob("*" + disk_cache.SUFFIX))) == 1


def test_a_killed_helper_is_replaced(tmp_path):
    x = np.linspace(-1, 1, 5)
    with fg.config.override("cache_dir", str(tmp_path)):
        np.testing.assert_allclose(_program(0.375)(x), _expected(x, 0.375), rtol=1e-14)
        pid = compile_worker.helper_pid()
        os.kill(pid, signal.SIGKILL)
        np.testing.assert_allclose(_program(0.4375)(x), _expected(x, 0.4375), rtol=1e-14)
        new = compile_worker.helper_pid()
    assert new is not None and new != pid


@pytest.mark.parametrize("how", ["option", "read-only", "no cache"])
def test_without_a_usable_helper_kernels_compile_in_process(tmp_path, how):
    x = np.linspace(-2, 2, 6)
    compile_worker.stop_helper()
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    overrides = {"cache_dir": str(folder)}
    if how == "option":
        overrides["compile_process"] = False
    elif how == "no cache":
        overrides["cache_dir"] = ""
    else:
        (folder / disk_cache.KERNELS).mkdir(mode=0o700)
        os.chmod(folder / disk_cache.KERNELS, stat.S_IRUSR | stat.S_IXUSR)
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    if how == "read-only" and os.access(folder, os.W_OK):
        pytest.skip("running as a user who can write a read-only folder (root)")
    compiled = fg.config.kernels.compiled
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", disk_cache.FungradCacheWarning)
            with _overrides(overrides):
                c = {"option": 0.5625, "read-only": 0.625, "no cache": 0.6875}[how]
                np.testing.assert_allclose(_program(c)(x), _expected(x, c), rtol=1e-14)
    finally:
        os.chmod(folder, stat.S_IRWXU)
        if (folder / disk_cache.KERNELS).exists():
            os.chmod(folder / disk_cache.KERNELS, stat.S_IRWXU)
    assert fg.config.kernels.compiled == compiled + 1
    assert compile_worker.helper_pid() is None


@contextlib.contextmanager
def _overrides(values):
    with contextlib.ExitStack() as stack:
        for k, v in values.items():
            stack.enter_context(fg.config.override(k, v))
        yield


def test_a_forked_child_gets_its_own_helper(tmp_path):
    """After os.fork the child must not share its parent's pipes (the replies would
    interleave): it starts a helper of its own."""
    code = textwrap.dedent(f"""
        import os, sys, numpy as np, fungrad as fg, fungrad.numpy as fnp
        from fungrad.backend import compile_worker
        f = fg.jit(lambda x: fnp.sin(x) * 1.25)
        x = np.arange(4.0)
        assert np.allclose(f(x), np.sin(x) * 1.25)
        parent = compile_worker.helper_pid()
        pid = os.fork()
        if pid == 0:
            g = fg.jit(lambda x: fnp.cos(x) * 1.75)
            ok = np.allclose(g(x), np.cos(x) * 1.75)
            mine = compile_worker.helper_pid()
            compile_worker.stop_helper()
            os._exit(0 if ok and mine not in (None, parent) else 3)
        _, status = os.waitpid(pid, 0)
        h = fg.jit(lambda x: fnp.exp(x) * 0.5)
        assert np.allclose(h(x), np.exp(x) * 0.5)
        assert compile_worker.helper_pid() == parent
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    env = dict(os.environ, FUNGRAD_CACHE_DIR=str(tmp_path / "c"), PYTHONPATH=ROOT,
               FUNGRAD_SYNC_COMPILE="1", FUNGRAD_COMPILE_MESSAGES="0",
               FUNGRAD_COMPILE_PROCESS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
