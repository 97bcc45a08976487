import atexit
import os
import shutil
import signal
import tempfile

from hypothesis import HealthCheck, settings

# A run leaves no files behind: kernels compiled by the tests go to a fresh cache
# (never the user's) and pytest's tmp_path folders to a fresh base, both in one
# temporary folder removed when the run ends.  numba compiles at -O0 there: the tests
# check results, not speed (the opt level is part of the kernel cache key, so these
# kernels never mix with optimised ones).
_RUN_DIR = tempfile.mkdtemp(prefix="fungrad-test-run-")
atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
os.environ.setdefault("FUNGRAD_CACHE_DIR", os.path.join(_RUN_DIR, "kernels"))
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

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", deadline=None, print_blob=True, max_examples=300,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _remove_run_dir_and_die(signum, frame):
    # a run stopped by SIGTERM (a CI timeout, `kill`) skips atexit: clean up, then
    # die of the signal as before
    shutil.rmtree(_RUN_DIR, ignore_errors=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config):
    if config.option.basetemp is None:
        config.option.basetemp = os.path.join(_RUN_DIR, "tmp")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _remove_run_dir_and_die)
