"""Bounded memory (issue 18): compiled kernels are released once nothing can call them."""
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dispatcher_of(jitted):
    (trace,) = jitted._cache.values()
    return trace.executable._entry.kernel.fn


def test_a_dropped_jitted_function_releases_its_kernel():
    refs, modules = [], []
    for k in range(3):
        c = 1.5 + k
        f = fg.jit(lambda x: fnp.sin(x * c) + c)        # c is a literal: distinct programs
        np.testing.assert_allclose(f(np.ones(3)), np.sin(c) + c, rtol=1e-14)
        d = _dispatcher_of(f)
        refs.append(weakref.ref(d))
        modules.append(d.py_func.__module__)
        del f, d
    gc.collect()
    assert [r() for r in refs] == [None] * 3          # dispatchers (and machine code) freed
    assert not [m for m in modules if m in sys.modules]


def test_clear_caches_releases_kernels_of_live_functions():
    f = fg.jit(lambda x: fnp.cos(x) * 2.25)
    x = np.linspace(0, 1, 4)
    np.testing.assert_allclose(f(x), np.cos(x) * 2.25, rtol=1e-14)
    ref = weakref.ref(_dispatcher_of(f))
    fg.clear_caches()
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(f(x), np.cos(x) * 2.25, rtol=1e-14)   # traces and compiles again
    assert _dispatcher_of(f) is not None


def test_a_kernel_shared_by_two_programs_lives_while_either_does():
    x = np.linspace(0, 1, 5)
    f = fg.jit(lambda x: fnp.exp(x) * 0.75)
    g = fg.jit(lambda y: fnp.exp(y) * 0.75)              # the same structure: one entry
    f(x), g(x)
    assert _dispatcher_of(f) is _dispatcher_of(g)
    ref = weakref.ref(_dispatcher_of(f))
    del f
    gc.collect()
    assert ref() is not None
    np.testing.assert_allclose(g(x), np.exp(x) * 0.75, rtol=1e-14)
    del g
    gc.collect()
    assert ref() is None


_MANY_PROGRAMS = textwrap.dedent("""
    import gc, os, sys, numpy as np, fungrad as fg, fungrad.numpy as fnp
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    n = int(sys.argv[1])
    x = np.linspace(0, 1, 4)
    def run(i):
        c = i + 0.5
        f = fg.jit(lambda x: fnp.sin(x * c) + c)        # a distinct program per i
        np.testing.assert_allclose(f(x), np.sin(x * c) + c, rtol=1e-13)
    for i in range(20):                                 # numba's own set-up first
        run(-1 - i)
    gc.collect()
    start = rss_mb()
    peak = start
    for i in range(n):
        run(i)
        if i % 50 == 49:
            gc.collect()
            peak = max(peak, rss_mb())
    gc.collect()
    fg.clear_caches()
    gc.collect()
    print(start, peak, rss_mb(), fg.config.kernels.compiled + fg.config.kernels.cache_loaded)
""")


@pytest.mark.slow
def test_many_distinct_jitted_programs_leave_memory_bounded(tmp_path):
    """Each distinct kernel used to keep ~0.72 MB for the life of the process (1,681
    dropped jits: 1.7 GB); freeing what numba keeps in Python brought it to ~0.40 MB
    (numba's MCJIT engine never gives a module back, see numba_jit._release_with).
    Kernels are now compiled by the helper process (backend/compile_worker.py) and
    only loaded here, which costs ~0.035 MB each (measured: 400 programs, 14 MB);
    the helper itself is restarted every few hundred compiles.
    FUNGRAD_MEMORY_TEST_PROGRAMS sets how many (2000 is the issue's figure, with a
    bound of 150 MB; the default keeps the test to a minute or two of compiling)."""
    n = int(os.environ.get("FUNGRAD_MEMORY_TEST_PROGRAMS", "200"))
    env = dict(os.environ, FUNGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT,
               FUNGRAD_SYNC_COMPILE="1", FUNGRAD_COMPILE_MESSAGES="0",
               FUNGRAD_COMPILE_PROCESS="1")
    out = subprocess.run([sys.executable, "-c", _MANY_PROGRAMS, str(n)], env=env,
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr
    start, peak, end, kernels = map(float, out.stdout.split())
    assert kernels >= n
    # ~0.72 MB per program at first, ~0.40 compiled here, ~0.035 loaded from the helper
    assert peak - start < 20.0 + 0.065 * n, (start, peak, end)
    assert end - start < 20.0 + 0.065 * n, (start, peak, end)
