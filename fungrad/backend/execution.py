"""The one execution policy: how a jaxpr runs on concrete arrays.

The NumPy interpreter defines the semantics.  A program reached by eager
transforms runs there until the same structure (`core.jaxpr_key`: the program
with canonical names, including input dtypes and shapes) has been executed
`config.jit_threshold` times; then it is compiled with numba
(`backend/codegen.py`, `backend/numba_jit.py`) and later calls run the kernel.
`fungrad.jit` asks for its kernel on the first call.  A program with an equation
the code generator cannot lower, or one larger than `config.kernel_max_equations`,
runs as several kernels with the uncompilable equations interpreted between them
(`backend/segments.py`).

Compiling never blocks a call the interpreter can serve: the kernel compiles in
one background thread (`_Compiler`) while the interpreter answers; the compiler
leaves the result in `_Entry.ready` and the next call swaps it in (in the
caller's thread, which also issues the compile's warnings at the user's line).
`config.sync_compile` (`FUNGRAD_SYNC_COMPILE=1`) compiles in the caller instead,
as does `jit(f).lower(*args).compile()`.  A compile that takes longer than
`config.compile_message_after` seconds says so once on stderr, naming the
user's function and line (`config.compile_messages` silences it).
`FUNGRAD_DISABLE_JIT=1` (or `config.update("disable_jit", True)`) keeps
everything in the interpreter.  Nothing here imports numba until the first
compile, and then only in the thread that compiles.

Why a thread and not a helper process: numba holds the GIL while it types and
lowers a kernel, so the caller's thread runs in slices of the interpreter's
switch interval (5 ms) while a compile is under way, but it never waits for the
whole compile (automatic garbage collection pauses during a background compile:
a full collection run by the compiler thread held the GIL for 0.2-0.4 s); a
helper process would not share the GIL, but it must import numpy, numba and
fungrad (seconds of CPU on a small machine) and the caller still imports numba
to load the result, which holds the GIL as long.  bench/latency.py measures the
rows of issue 11, bench/README.md has the thread-against-process figures.
"""
from __future__ import annotations

import atexit
import contextlib
import contextvars
import gc
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from typing import Any, Sequence

import numpy as np

from ..caches import clear_caches, register
from ..config import config, settings
from ..core import Jaxpr, jaxpr_key
from ..errors import user_location
from ..interpreter import eval_jaxpr, eval_jaxpr_checked, owned_array
from .compile_worker import prestart_helper
from .numba_jit import FungradKernelWarning, Kernel, deferred_warnings, helper_usable, stats
from .segments import compile_program, issue_warning

__all__ = ["Executable", "executable", "execute", "kernel_for", "clear_caches", "wait_for_kernels"]


class _Entry:
    """Per program structure: how often it ran, its kernel once compiled, the
    compile under way (`pending`), and a background compile's result waiting to be
    swapped in by the next call (`ready`: the kernel and the warnings to issue)."""
    __slots__ = ("count", "kernel", "pending", "ready", "__weakref__")

    def __init__(self):
        self.count = 0
        self.kernel = None
        self.pending: _Job | None = None
        self.ready: tuple | None = None

    def swap_in(self) -> Kernel | None:
        """Take the background compile's result (in the caller's thread, which issues
        its warnings); the kernel to run from now on, if any."""
        with _compiler.lock:
            ready, self.ready = self.ready, None
        if ready is None:
            return self.kernel
        kernel, messages = ready
        for msg in messages:
            _warn_at_user_line(msg)
        if self.kernel is None:
            self.kernel = kernel
        return self.kernel


class _Job:
    """One kernel to compile for a program, with the first call's arguments (read
    for their types only, never run)."""
    __slots__ = ("entry", "jaxpr", "consts", "args", "done", "label", "context")

    def __init__(self, entry: _Entry, jaxpr: Jaxpr, consts: Sequence, args: Sequence,
                 label: str | None):
        self.entry, self.jaxpr, self.label = entry, jaxpr, label
        self.consts, self.args = list(consts), list(args)
        self.done = threading.Event()
        # the caller's settings (fungrad.config.override is per thread) travel with it
        self.context = contextvars.copy_context()


def _detached(jaxpr: Jaxpr) -> Jaxpr:
    """The same program as another object, for the kernel to keep: a kernel holding
    the jaxpr that keys its entry in the weak `_by_object` would keep it alive."""
    return Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.eqns, jaxpr.outvars)


def _describe(jaxpr: Jaxpr, label: str | None) -> str:
    """What is being compiled, for whom: `jit(step) at model.py:12 (40 equations)`."""
    where = next((e.source_info for e in jaxpr.eqns if e.source_info is not None), None)
    what = label if label else "a program"
    if where is not None:
        filename, lineno, function = where
        what += f" at {filename}:{lineno}" if label else f" of {function} at {filename}:{lineno}"
    return f"{what} ({len(jaxpr.eqns)} equations)"


def _compile(job: _Job, background: bool) -> Kernel:
    """Generate, load or compile `job`'s kernel (announcing a slow one on stderr)."""
    timer = None
    if config.compile_messages:
        where = "in the background; calls run in the interpreter until it is ready" \
            if background else "(the call waits for it)"
        def announce():
            print(f"fungrad: compiling a kernel for {_describe(job.jaxpr, job.label)} "
                  f"{where}.  Silence with fungrad.config.update('compile_messages', False).",
                  file=sys.stderr, flush=True)
        timer = threading.Timer(config.compile_message_after, announce)
        timer.daemon = True
        timer.start()
    try:
        if helper_usable():
            prestart_helper()       # its start-up overlaps code generation here
        kernel = compile_program(_detached(job.jaxpr))
        kernel.prepare(job.consts, job.args)
    finally:
        if timer is not None:
            timer.cancel()
    return kernel


def _warn_at_user_line(msg) -> None:
    """Issue a warning the compiler thread collected, located at the user's line
    (`msg` may be a (message, location) pair: segments.warn_at)."""
    if isinstance(msg, tuple):
        issue_warning(*msg)
        return
    where = user_location()
    if where is None:
        warnings.warn(msg, FungradKernelWarning, stacklevel=3)
        return
    filename, lineno, _ = where
    warnings.warn_explicit(msg, FungradKernelWarning, filename, lineno,
                           module=os.path.splitext(os.path.basename(filename))[0])


@contextlib.contextmanager
def _no_gc_pauses():
    """No automatic garbage collection while numba compiles in the background.

    numba allocates hundreds of thousands of objects per compile; the collections
    they trigger (a full one traverses every object of the process, numba's own
    included) ran in the compiler thread holding the GIL for 0.2-0.4 s each, which
    the caller's thread waited out (measured: the slowest steps of an eager loop).
    The young objects a compile leaves are collected later by ordinary collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Compiler:
    """The one background thread that compiles kernels, first come first served."""

    def __init__(self):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.stopping = False

    def submit(self, entry: _Entry, jaxpr: Jaxpr, consts, args, label) -> None:
        with self.lock:
            if entry.pending is not None or entry.kernel is not None or self.stopping:
                return
            entry.pending = _Job(entry, jaxpr, consts, args, label)
            stats["pending"] += 1
            self.jobs.put(entry.pending)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._work, name="fungrad-compiler",
                                               daemon=True)
                self.thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            ready = None
            try:
                if not self.stopping:
                    with deferred_warnings() as messages, _no_gc_pauses():
                        kernel = job.context.run(_compile, job, True)
                    ready = (kernel, messages)
            except BaseException as e:  # noqa: BLE001 - never lose the thread
                reason = f"{type(e).__name__}: {e}"
                ready = (Kernel(job.jaxpr, None, fallback_reason=reason), [
                    f"fungrad: the background compile of {_describe(job.jaxpr, job.label)} "
                    f"failed ({reason}); it keeps running in the interpreter"])
            finally:
                with self.lock:
                    job.entry.ready = ready     # the next call swaps it in
                    job.entry.pending = None
                    stats["pending"] -= 1
                job.consts = job.args = job.context = None
                job.done.set()

    def stop(self) -> None:
        """At exit: start no new compile (one under way finishes or is cut off; the
        disk cache is written atomically, so either way it stays usable)."""
        self.stopping = True
        self.jobs.put(None)


_compiler = _Compiler()
atexit.register(_compiler.stop)


def wait_for_kernels(timeout: float | None = None) -> bool:
    """Wait until no kernel is compiling in the background; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while stats["pending"]:
        thread = _compiler.thread
        if thread is None or not thread.is_alive():
            break
        time.sleep(0.002)
        if deadline is not None and time.monotonic() > deadline:
            return False
    return True


# Entries (and so kernels) live exactly as long as something can run their program:
# a jaxpr (held by a jitted function's trace, the rewrite cache, a pullback) keeps its
# entry in `_by_object`; `_by_key` only finds the entry of a live program again from
# another jaxpr of the same structure.  A dropped entry's kernel releases what numba
# keeps for it (numba_jit._release_with), so memory returns when the functions go.
_by_object: "weakref.WeakKeyDictionary[Jaxpr, _Entry]" = weakref.WeakKeyDictionary()
_by_key: "weakref.WeakValueDictionary[Any, _Entry]" = weakref.WeakValueDictionary()
register("backend.kernels", _by_key.clear, lambda: len(_by_key))
register("backend.kernels_by_jaxpr", _by_object.clear, lambda: len(_by_object))


def _entry(jaxpr: Jaxpr) -> _Entry:
    entry = _by_object.get(jaxpr)
    if entry is None:
        key = jaxpr_key(jaxpr)
        entry = _by_key.get(key)
        if entry is None:
            entry = _by_key[key] = _Entry()
        _by_object[jaxpr] = entry
    return entry


def kernel_for(jaxpr: Jaxpr) -> Kernel:
    """The `Kernel` of `jaxpr` (shared by every jaxpr of the same structure); its
    machine code is made on its first call (or by `compile_now`)."""
    entry = _entry(jaxpr)
    job = entry.pending
    if job is not None:
        job.done.wait()
    if entry.swap_in() is None:
        entry.kernel = compile_program(_detached(jaxpr))
    return entry.kernel


def compile_now(jaxpr: Jaxpr, consts: Sequence, args: Sequence, label: str | None = None
                ) -> Kernel:
    """The kernel of `jaxpr`, compiled for these arguments' types in the calling thread
    (waiting for a background compile of it under way): `lower(...).compile()`."""
    entry = _entry(jaxpr)
    job = entry.pending
    if job is not None:
        job.done.wait()
    kernel = entry.swap_in()
    if kernel is None:
        kernel = entry.kernel = _compile(_Job(entry, jaxpr, consts, args, label), False)
    else:
        kernel.prepare(consts, args)
    return kernel


def _interpret(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    s = settings()
    if s.debug_nans or s.debug_infs:  # the checked interpreter names the first NaN/inf
        return [owned_array(x) for x in eval_jaxpr_checked(
            jaxpr, consts, args, s.debug_nans, s.debug_infs)]
    # Derivative programs compute inf/nan on purpose and then select them away
    # ("a zero cotangent wins"); compiled kernels never warn, nor does the interpreter.
    with np.errstate(all="ignore"):
        outs = eval_jaxpr(jaxpr, consts, *args)
    return [owned_array(x) for x in outs]


class Executable:
    """A program and the decision of how to run it, in one place: the interpreter
    when `disable_jit`, `debug_nans` or `debug_infs` is on; otherwise its numba
    kernel, compiled at once (`tiered=False`, what `jit` asks for) or once the
    program's structure has run `config.jit_threshold` times (`tiered=True`, eager
    transforms).  A kernel numba rejects runs the interpreter itself (with a warning)."""
    __slots__ = ("jaxpr", "tiered", "_entry", "label")

    def __init__(self, jaxpr: Jaxpr, tiered: bool, label: str | None = None):
        self.jaxpr, self.tiered, self.label = jaxpr, tiered, label
        self._entry = _entry(jaxpr)

    def _kernel(self, consts: Sequence, args: Sequence) -> Kernel | None:
        """The kernel to run now, or None for the interpreter (counts tiered calls,
        starts the compile when the program is hot)."""
        s = settings()   # this thread's settings (fungrad.config.override is per thread)
        if s.disable_jit or s.debug_nans or s.debug_infs:
            return None
        entry = self._entry
        kernel = entry.kernel
        if kernel is None:
            if entry.ready is not None:
                return entry.swap_in()
            entry.count += 1
            if self.tiered and entry.count <= s.jit_threshold:
                return None
            if entry.pending is not None:
                return None
            if not s.sync_compile:
                _compiler.submit(entry, self.jaxpr, consts, args, self.label)
                return None
            kernel = entry.kernel = _compile(
                _Job(entry, self.jaxpr, consts, args, self.label), background=False)
        return kernel

    def __call__(self, consts: Sequence, args: Sequence) -> list:
        """The program's outputs as owned ndarrays."""
        kernel = self._kernel(consts, args)
        if kernel is not None:
            return list(kernel(consts, args))
        return _interpret(self.jaxpr, consts, args)

    def direct(self):
        """numba's entry point when `fn(*consts, *args)` alone gives the outputs (a
        compiled, checked kernel without 0-d arguments or results), else None."""
        s = settings()   # per jit call: one read of this thread's settings
        if s.disable_jit or s.debug_nans or s.debug_infs:
            return None
        kernel = self._entry.kernel
        return kernel.fn if kernel is not None and kernel.direct else None

    def kernel(self) -> Kernel:
        """The kernel, whatever the settings (for `lower().as_text()`)."""
        return kernel_for(self.jaxpr)

    def compile_now(self, consts: Sequence, args: Sequence) -> Kernel:
        """Compile for these arguments in the calling thread (`lower().compile()`)."""
        return compile_now(self.jaxpr, consts, args, self.label)


def executable(jaxpr: Jaxpr, tiered: bool = True, label: str | None = None) -> Executable:
    """How `jaxpr` runs (see `Executable`); call the result with (consts, args).
    `label` names the program in messages (`jit(loss)`)."""
    return Executable(jaxpr, tiered, label)


def execute(jaxpr: Jaxpr, consts: Sequence, args: Sequence) -> list:
    """Evaluate `jaxpr` on concrete arrays with the tiered policy: in the interpreter
    while the program is cold, with its numba kernel once hot."""
    entry = _by_object.get(jaxpr)
    s = settings()
    if entry is not None and entry.kernel is not None and not (
            s.disable_jit or s.debug_nans or s.debug_infs):
        return list(entry.kernel(consts, args))   # the hot path: one lookup
    return Executable(jaxpr, True)(consts, args)


