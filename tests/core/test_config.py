"""fungrad.config: `update` is process-wide, `override` is local to the thread (or
asyncio task) that enters it; sizes and booleans parse from the environment."""
import asyncio
import threading

import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp
from fungrad.config import parse_size, settings
from fungrad.errors import FungradValueError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _nan_loss(x):
    return fnp.sum(fnp.log(x - 2.0))   # NaN for x < 2


@pytest.mark.kernels
def test_override_in_one_thread_does_not_leak_into_others():
    """Issue 18: while one thread runs under override("debug_nans", True), calls in
    other threads ran with debug_nans on (and raised FloatingPointError)."""
    x = np.array([0.5, 3.0])
    jitted = fg.jit(_nan_loss)
    grad = fg.value_and_grad(_nan_loss)   # the forward value is NaN
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def checked_thread():
        with fg.config.override("debug_nans", True):
            seen["inside"] = fg.config.debug_nans
            inside.set()
            done.wait(60)
            for name, run in (("jit", jitted), ("grad", grad), ("eager", _nan_loss)):
                try:
                    run(x)
                    seen[name] = "no error"
                except FloatingPointError:
                    seen[name] = "raised"
        seen["after"] = fg.config.debug_nans

    t = threading.Thread(target=checked_thread)
    t.start()
    try:
        assert inside.wait(60)
        # this thread: no override, so NaNs flow through without an error
        assert fg.config.debug_nans is False and settings().debug_nans is False
        for _ in range(4):   # several calls: the eager tiers compile on the way
            assert np.isnan(jitted(x))
            assert np.isnan(grad(x)[0])
            assert np.isnan(_nan_loss(x))
        assert "debug_nans" in fg.config.options() and not fg.config.options()["debug_nans"]
    finally:
        done.set()
        t.join(60)
    assert seen == {"inside": True, "jit": "raised", "grad": "raised", "eager": "raised",
                    "after": False}


def test_update_reaches_every_thread_but_an_override_wins_in_its_own():
    got = {}
    ready, updated, finish = threading.Event(), threading.Event(), threading.Event()

    def worker():
        with fg.config.override("jit_threshold", 99):
            ready.set()
            updated.wait(60)
            # another option changed process-wide while this thread was overriding
            got["threshold"] = fg.config.jit_threshold
            got["max_paths"] = fg.config.jit_max_paths
            finish.wait(60)
        got["threshold_after"] = fg.config.jit_threshold

    old_threshold, old_paths = fg.config.jit_threshold, fg.config.jit_max_paths
    t = threading.Thread(target=worker)
    t.start()
    try:
        assert ready.wait(60)
        fg.config.update("jit_max_paths", old_paths + 5)
        fg.config.update("jit_threshold", old_threshold + 1)
        updated.set()
        assert fg.config.jit_threshold == old_threshold + 1
    finally:
        finish.set()
        t.join(60)
        fg.config.update("jit_threshold", old_threshold)
        fg.config.update("jit_max_paths", old_paths)
    assert got == {"threshold": 99, "max_paths": old_paths + 5,
                   "threshold_after": old_threshold + 1}


def test_nested_overrides_restore_in_order_and_update_inside_is_process_wide():
    with fg.config.override("debug_infs", True):
        with fg.config.override("debug_nans", True):
            assert fg.config.debug_infs and fg.config.debug_nans
            with fg.config.override("debug_nans", False):
                assert not fg.config.debug_nans and fg.config.debug_infs
            assert fg.config.debug_nans
        assert fg.config.debug_infs and not fg.config.debug_nans
        # update sets the process-wide value; this thread's override still wins here
        fg.config.update("debug_infs", False)
        assert fg.config.debug_infs
        fg.config.update("debug_infs", True)
    try:
        assert fg.config.debug_infs   # the override ended: the process-wide value
    finally:
        fg.config.update("debug_infs", False)
    assert not fg.config.debug_infs


def test_override_is_undone_when_the_block_raises():
    with pytest.raises(KeyError):
        with fg.config.override("debug_nans", True):
            raise KeyError("boom")
    assert fg.config.debug_nans is False


def test_asyncio_tasks_have_their_own_overrides():
    async def task(flag: bool, out: list):
        with fg.config.override("debug_nans", flag):
            await asyncio.sleep(0.01)
            out.append((flag, fg.config.debug_nans))
            await asyncio.sleep(0.01)
            out.append((flag, fg.config.debug_nans))

    async def main():
        out: list = []
        await asyncio.gather(task(True, out), task(False, out), task(True, out))
        return out

    out = asyncio.run(main())
    assert len(out) == 6 and all(flag == seen for flag, seen in out)
    assert fg.config.debug_nans is False


def test_unknown_options_are_named_in_every_entry_point():
    for call in (lambda: fg.config.update("debug_nan", True),
                 lambda: fg.config.override("debug_nan", True).__enter__(),
                 lambda: fg.config.read("debug_nan")):
        with pytest.raises(FungradValueError, match="unknown option 'debug_nan'.*debug_nans"):
            call()


def test_attribute_assignment_is_a_process_wide_update():
    old = fg.config.jit_threshold
    try:
        fg.config.jit_threshold = old + 2
        assert fg.config.read("jit_threshold") == old + 2 == settings().jit_threshold
    finally:
        fg.config.update("jit_threshold", old)


@pytest.mark.parametrize("text, expected", [
    ("1048576", 1 << 20), ("512M", 512 << 20), ("512MB", 512 << 20), ("512MiB", 512 << 20),
    ("2g", 2 << 30), ("1.5K", 1536), ("0", 0), (" 300 MB ", 300 << 20)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "-5M", "12Q", "big"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(FungradValueError, match="as a size"):
        parse_size(text)
