import atexit
import os
import shutil
import signal
import tempfile
import time

import pytest
from hypothesis import HealthCheck, settings

# A run leaves no files behind: kernels compiled by the tests go to a fresh cache
# (never the user's) and pytest's tmp_path folders to a fresh base, both in one
# temporary folder removed when the run ends.  numba compiles at -O0 there: the tests
# check results, not speed (the opt level is part of the kernel cache key, so these
# kernels never mix with optimised ones).
# xdist workers (and the subprocesses tests start) share the folder of the pytest
# process that made it; a run killed too hard to clean up (SIGKILL, a power cut) leaves
# its folder, named after its process id, and the next run removes it.
_PREFIX = "fungrad-test-run-"


def _remove_folders_of_dead_runs() -> None:
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        pid, dash, _ = name[len(_PREFIX):].partition("-")
        path = os.path.join(base, name)
        if not (name.startswith(_PREFIX) and pid.isdigit() and dash) or os.path.islink(path):
            continue
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:     # not ours to signal, or gone meanwhile: leave it
            pass


_RUN_DIR = os.environ.get("FUNGRAD_TEST_RUN_DIR")
_OWN_RUN_DIR = _RUN_DIR is None or not os.path.isdir(_RUN_DIR)
if _OWN_RUN_DIR:
    _remove_folders_of_dead_runs()
    _RUN_DIR = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    os.environ["FUNGRAD_TEST_RUN_DIR"] = _RUN_DIR
    atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
os.environ.setdefault("FUNGRAD_CACHE_DIR", os.path.join(_RUN_DIR, "kernels"))
# dask's workers make their scratch folders there too (not /tmp/dask-scratch-space),
# and Hypothesis keeps its files in the repository's (gitignored) .hypothesis whatever
# the working directory
os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", os.path.join(_RUN_DIR, "dask"))
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".hypothesis"))
os.environ.setdefault("NUMBA_OPT", "0")
# Kernels compile in the calling thread, so a test that runs a program past the
# tiering threshold (or under jit) checks the kernel, not the interpreter that would
# serve it while it compiled in the background; tests/backend/test_background.py
# turns the background compiler on for itself.
os.environ.setdefault("FUNGRAD_SYNC_COMPILE", "1")
# Kernels compile in this process, not in the compile helper (backend/compile_worker.py):
# each handoff costs a few scheduling delays on a loaded 2-core machine, and the code
# compiled is the same; tests/backend/test_compile_helper.py and test_memory.py turn the
# helper on for themselves.
os.environ.setdefault("FUNGRAD_COMPILE_PROCESS", "0")
# compiles take over a second on a busy machine; the message has its own test
os.environ.setdefault("FUNGRAD_COMPILE_MESSAGES", "0")

# Where the tests compile kernels.  numba compiles (0.1-1 s each, even at -O0) were
# most of the suite's CPU time, and most of them were incidental: a test of an API, a
# transform or a numpy function ran its program past `jit_threshold`, or under `jit`.
# So a test compiles only in the files below (the compiled tier's own tests and the
# compiled-against-interpreted properties) or when marked `@pytest.mark.kernels`
# (select them all with `-m kernels`); every other test runs with `disable_jit`:
# `jit` still traces, caches, specialises and checks its arguments, and the NumPy
# interpreter, which defines the semantics, computes (also in the subprocesses the
# test starts).  FUNGRAD_TEST_KERNELS=all compiles kernels in every test, as before.
KERNEL_FILES = (                        # relative to tests/
    "backend/",                             # the compiled tier itself
    "hop/test_control_flow_compiled.py",    # loops and branches inside kernels
)
_TESTS = os.path.dirname(os.path.abspath(__file__))
_KERNELS_EVERYWHERE = os.environ.get("FUNGRAD_TEST_KERNELS", "") == "all"

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, print_blob=True, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _children() -> list:
    """The process ids of this process's children (from /proc; none found elsewhere)."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == me and state != "Z":
            found.append(int(name))
    return found


def _stop_children_clean_up_and_die(signum, frame):
    # a run stopped by SIGTERM (a CI timeout, `kill`) skips atexit: stop the processes
    # this one started (xdist workers, a Dask cluster's, a test's subprocess, which would
    # write into the run's folder after it is gone; each stops its own the same way),
    # remove the folder if it is ours, then die of the signal as before
    children = _children()
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(children) & set(_children()):
        time.sleep(0.05)
    if _OWN_RUN_DIR:
        shutil.rmtree(_RUN_DIR, ignore_errors=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kernels: the test checks compiled kernels (numba), which the other "
        "tests do not compile (see KERNEL_FILES in tests/conftest.py)")
    if config.option.basetemp is None:
        config.option.basetemp = os.path.join(_RUN_DIR, "tmp")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_children_clean_up_and_die)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = os.path.relpath(str(item.path), _TESTS).replace(os.sep, "/")
        if path.startswith(KERNEL_FILES):
            item.add_marker(pytest.mark.kernels)


@pytest.fixture(scope="session")
def interpreter_env() -> dict:
    """Environment variables for processes that a module- or session-scoped fixture
    starts (a Dask cluster's workers): they start before the test's own fixtures, so
    `_kernels_only_where_checked` cannot reach them."""
    return {} if _KERNELS_EVERYWHERE else {"FUNGRAD_DISABLE_JIT": "1"}


@pytest.fixture(autouse=True)
def _kernels_only_where_checked(request, monkeypatch):
    """`disable_jit` for a test that is not about kernels (see KERNEL_FILES); and
    every test leaves the process-wide settings as it found them (a test that saved
    `config.disable_jit` under this override and `update`d it back turned kernels off
    for every later test of its process, which then passed without compiling)."""
    from fungrad.config import config
    before = config.options()         # no override in force here: the process-wide values
    try:
        if _KERNELS_EVERYWHERE or request.node.get_closest_marker("kernels") is not None:
            yield
        else:
            monkeypatch.setenv("FUNGRAD_DISABLE_JIT", "1")   # for the subprocesses it starts
            with config.override("disable_jit", True):
                yield
    finally:
        for name, value in before.items():
            if config.options()[name] != value:
                config.update(name, value)


# FUNGRAD_TEST_PROFILE=FILE: one line per test (tab-separated: CPU seconds of this
# process, of the subprocesses it waited for, wall seconds, kernels compiled, kernels
# loaded from disk, test id), to find what makes the suite slow.  With xdist each
# worker writes FILE.<worker id>.
_PROFILE = os.environ.get("FUNGRAD_TEST_PROFILE")
if _PROFILE:
    import resource

    _profile_rows: list = []

    def _cpu_of_children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def _kernel_counts() -> tuple:
        from fungrad.config import config
        return config.kernels["compiled"], config.kernels["cache_loaded"]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        before = (time.process_time(), _cpu_of_children(), time.perf_counter(),
                  *_kernel_counts())
        yield
        after = (time.process_time(), _cpu_of_children(), time.perf_counter(),
                 *_kernel_counts())
        _profile_rows.append((*(b - a for a, b in zip(before, after)), item.nodeid))

    def pytest_sessionfinish(session):
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        with open(f"{_PROFILE}.{worker}" if worker else _PROFILE, "w") as f:
            for cpu, children, wall, compiled, loaded, nodeid in _profile_rows:
                f.write(f"{cpu:.3f}\t{children:.3f}\t{wall:.3f}\t{compiled}\t{loaded}\t"
                        f"{nodeid}\n")
