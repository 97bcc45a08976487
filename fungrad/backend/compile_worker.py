"""Compiling kernels in a helper process that fills the disk cache.

numba keeps every function it compiles in its MCJIT engine for the life of the
process, IR and all: about 1 MB per small kernel at -O3, never returned (numba
disables `remove_module`).  A kernel *loaded* from the disk cache costs a
twentieth of that (object code only; measured: 200 distinct kernels grew a
process by 193 MB compiled, by 6.5 MB loaded).  And numba's front end holds the
GIL while it compiles, so a compile in a thread of the user's process slows the
calls it was meant to stay out of the way of.

So, when the kernel cache folder is writable, a kernel's machine code is made by
a helper process (`python -m fungrad.backend.compile_serve`, started on the
first compile, one per process, restarted after `_MAX_COMPILES` compiles to keep
its own memory bounded): it is sent the kernel's module text and numba
signature, compiles them with the same verified cache (numba_jit), and answers
whether the artefact is now on disk; the caller then loads it like any cached
kernel.  Whatever goes wrong there (no folder, a read-only one, an artefact numba
will not cache, the helper failing to start or dying) ends in the old path: the
kernel compiles in the calling process.  `config.compile_process` turns the
helper off.

The protocol is pickles with a length prefix over the helper's stdin and stdout
(its numba chatter goes to stderr); both ends are this package, nothing else
writes to the pipes.
"""
from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading

from . import disk_cache

__all__ = ["compile_in_helper", "prestart_helper", "stop_helper", "helper_pid"]

_LENGTH = struct.Struct("<Q")
_MAX_COMPILES = 300            # restart the helper after this many (its memory grows)
_IN_HELPER = "FUNGRAD_IN_COMPILE_HELPER"


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream):
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the compile helper closed its pipe")
    (n,) = _LENGTH.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the compile helper closed its pipe")
    return pickle.loads(data)  # noqa: S301 - our own process at the other end


class _Helper:
    """The helper process of this process, started on demand; one request at a time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.compiles = 0
        self.broken = False     # it failed to start: stop trying in this process

    def _start(self) -> subprocess.Popen:
        import numba
        env = dict(os.environ)
        env[_IN_HELPER] = "1"
        # the helper's numba must make the code this process expects (the opt level
        # is also in the kernel's text, so a mismatch could only miss, never mix)
        env["NUMBA_OPT"] = str(numba.config.OPT)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                    if env.get("PYTHONPATH") else "")
        return subprocess.Popen(
            [sys.executable, "-m", "fungrad.backend.compile_serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, close_fds=True)

    def prestart(self) -> None:
        """Start the helper now (it imports numba while the caller generates code)."""
        if self.broken or not self.lock.acquire(blocking=False):
            return
        try:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start()
                self.compiles = 0
        except OSError:
            self.broken = True
        finally:
            self.lock.release()

    def request(self, req: dict, while_waiting=None):
        """The helper's answer to `req`, or None if there is no working helper;
        `while_waiting()` runs here while the helper works."""
        with self.lock:
            if self.broken:
                return None
            for attempt in range(2):
                if self.proc is None or self.proc.poll() is not None:
                    try:
                        self.proc = self._start()
                        self.compiles = 0
                    except OSError:
                        self.broken = True
                        return None
                try:
                    _send(self.proc.stdin, req)
                    if while_waiting is not None:
                        while_waiting()
                        while_waiting = None
                    reply = _recv(self.proc.stdout)
                except (EOFError, OSError, pickle.UnpicklingError):
                    # it died (killed, crashed in numba): once more with a new one,
                    # then the caller compiles in-process
                    self._stop()
                    if attempt:
                        return None
                    continue
                self.compiles += 1
                if self.compiles >= _MAX_COMPILES:
                    self._stop()
                return reply
            return None

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        with self.lock:
            self._stop()


_helper = _Helper()
atexit.register(_helper.stop)


def _forget_parents_helper() -> None:
    # a forked child must not talk on its parent's pipes: it starts its own helper
    global _helper
    _helper = _Helper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_helper)


def _warm_numba() -> None:
    """Set up numba's CPU target in this process (about a second, once), so loading
    the helper's first kernel does not pay it after the helper is done."""
    from numba.core.registry import cpu_target
    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


def compile_in_helper(text: str, name: str, signature: tuple, cache_dir: str,
                      limit: int) -> bool:
    """Have the helper compile kernel `name` of module `text` for `signature` into
    the cache at `cache_dir`; True when the artefact is there to be loaded."""
    if os.environ.get(_IN_HELPER):
        return False
    reply = _helper.request({"text": text, "name": name, "signature": signature,
                             "cache_dir": cache_dir, "limit": limit}, _warm_numba)
    if reply is None:
        return False
    for name, n in reply[-1].items():       # what the helper did to the folder for us
        disk_cache.stats[name] += n
    return reply[0] == "written"


def prestart_helper() -> None:
    """Start the helper process if it is not running (returns at once)."""
    if not os.environ.get(_IN_HELPER):
        _helper.prestart()


def stop_helper() -> None:
    """Stop the helper process (a new one starts on the next compile)."""
    _helper.stop()


def helper_pid() -> int | None:
    """The process id of the running compile helper, if there is one."""
    proc = _helper.proc
    return proc.pid if proc is not None and proc.poll() is None else None
