"""Compile generated kernel source with numba; cache it on disk; fall back.

A kernel's module text (its source, the helpers, and a header naming the
fungrad, numba, NumPy, codegen and Python versions and the optimisation level)
is executed in memory under a synthetic filename registered in `linecache`; its
SHA-256 is the kernel's content address.  The numba dispatcher gets our own
disk cache (`_VerifiedCache`) in place of numba's: compiled code is stored in,
and loaded from, self-checking artefact files of `disk_cache.py`, keyed by the
content address, the signature and the target CPU.  A file is verified (digest
and key) before numba unpickles it, so a corrupt or foreign file is deleted and
the kernel recompiled with a warning instead of crashing the process; nothing in
the cache folder is ever imported.  Whatever goes wrong with the cache ends in
a plain compile, and a kernel numba rejects runs in the interpreter: a warning,
never an error.

Kernel texts hold no dimension sizes (codegen.py), so programs that differ only
in shapes have one text, one module and one dispatcher: each `Kernel` keeps its
own size parameters (`KernelSource.dims`) and passes them after the arrays, and
the module lives while any kernel using it does (`_retain`, `_drop`).
"""
from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import pickle
import sys
import threading
import types
import warnings
import weakref
from typing import Callable, Sequence

import numpy as np

from .._version import __version__
from ..config import config, settings
from ..interpreter import eval_jaxpr, owned_array
from . import disk_cache
from .compile_worker import compile_in_helper
from .codegen import CODEGEN_VERSION, HELPERS, CodegenError, KernelSource, generate

__all__ = ["Kernel", "compile_jaxpr", "FungradKernelWarning", "stats", "deferred_warnings"]


class FungradKernelWarning(RuntimeWarning):
    """A kernel could not be compiled; fungrad fell back (results unchanged)."""


# counters for tests, the benchmark and users (`fungrad.config.kernels`): kernels
# compiled, loaded from disk, pending in the background, fallen back, cache errors
stats = config.kernels

# A thread that compiles for someone else (the background compiler) collects its
# warnings here instead of issuing them, so the caller's thread issues them later.
_deferred = threading.local()

_NOT_CACHED = r'Cannot cache compiled function "(kernel_|_)'


@contextlib.contextmanager
def _quiet_about_caching():
    """Kernels calling C helpers (math.erf, lgamma) stay in-process only, and numba
    says so each time.  `catch_warnings` in the calling thread; the compiler thread
    (backend/execution.py) cannot use it (it is not thread-safe) and installs a
    global filter for that one message instead."""
    if getattr(_deferred, "messages", None) is not None:
        warnings.filterwarnings("ignore", message=_NOT_CACHED)
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_CACHED)
        yield


class deferred_warnings:
    """Context manager: warnings of kernels compiled inside it are collected in the
    list it returns, for another thread to issue with `warnings.warn`."""

    def __enter__(self) -> list:
        self.messages: list = []
        _deferred.messages = self.messages
        return self.messages

    def __exit__(self, *exc) -> None:
        _deferred.messages = None


_PRELUDE = "import math\nimport numpy as np\nimport numba\n"
_load_lock = threading.Lock()


def _versions() -> str:
    import numba
    # the LLVM optimization level too: kernels compiled at NUMBA_OPT=0 (tests) must
    # never be loaded by a process that expects optimized code
    return f"fungrad {__version__} numba {numba.__version__} numpy {np.__version__} " \
           f"codegen {CODEGEN_VERSION} python {sys.version_info[0]}.{sys.version_info[1]} " \
           f"opt {numba.config.OPT}"


def _module_text(ks: KernelSource) -> str:
    helpers = HELPERS.replace("CACHE", "False")   # helpers are linked into each kernel
    if ks.helpers:
        helpers += "\n\n" + ks.helpers.replace("CACHE", "False")
    return (f"# fungrad kernel, generated; {_versions()}\n{_PRELUDE}{helpers}\n\n"
            f"@numba.njit(cache=False, error_model='numpy')\n{ks.source}")


def _warn(msg: str) -> None:
    deferred = getattr(_deferred, "messages", None)
    if deferred is not None:
        deferred.append(msg)
    else:
        warnings.warn(msg, FungradKernelWarning, stacklevel=4)


# Kernel modules shared by live kernels: module name -> how many `Kernel`s use it.
# A kernel's finalizer queues its module in `_orphans` and releases it if it can
# take the lock at once (a collection may run while this thread or another holds
# it); queued modules are released at the next kernel load otherwise.
_users: dict = {}
_users_lock = threading.Lock()
_orphans: list = []


def _make_dispatcher(ks: KernelSource, retain: bool = False) -> tuple[Callable, str]:
    """exec the kernel's module text under a synthetic filename registered in
    linecache (or find the module made for the same text); returns (the numba
    dispatcher, the text's content address).  `retain` counts one more user."""
    return _dispatcher_of_text(_module_text(ks), ks.name, retain)


def _address(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dispatcher_of_text(text: str, name: str, retain: bool = False) -> tuple[Callable, str]:
    address = _address(text)
    filename = f"<fungrad kernel {address}>"
    modname = f"_fungrad_kernel_{address}"
    with _users_lock:
        _release_orphans()
        module = sys.modules.get(modname)
        if module is None or getattr(module, "__fungrad_text__", None) != text:
            module = types.ModuleType(modname)
            module.__file__ = filename
            exec(compile(text, filename, "exec"), module.__dict__)  # noqa: S102 - our source
            module.__fungrad_text__ = text
            # numba rebuilds a cached kernel's environment by importing its module by
            # name: it must find this one (never a file named like it on sys.path)
            sys.modules[modname] = module
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        if retain:
            _users[modname] = _users.get(modname, 0) + 1
    return getattr(module, name), address


def _compile_in_memory(ks: KernelSource) -> Callable:
    """A dispatcher for the kernel without the disk cache."""
    return _make_dispatcher(ks)[0]


_cache_class = None


def _verified_cache_class():
    """`_VerifiedCache`, built on first use (numba is imported lazily)."""
    global _cache_class
    if _cache_class is not None:
        return _cache_class
    from numba.core.caching import _Cache
    from numba.core.compiler import CompileResult
    from numba.core.serialize import dumps

    class _VerifiedCache(_Cache):
        """numba's per-function disk cache, replaced: one verified artefact per
        signature in fungrad's private folder; no index file, no source stamp."""

        def __init__(self, folder: disk_cache.Folder, address: str, name: str):
            self._folder, self._address, self._name = folder, address, name
            self.saved = False      # an artefact was written (the compile helper asks)

        @property
        def cache_path(self):
            return self._folder.kernels

        def _key(self, sig, codegen) -> str:
            return f"{self._address} {self._name} {sig} {codegen.magic_tuple()}"

        def has(self, sig, target_context) -> bool:
            """Whether an artefact for `sig` is on disk (not yet verified)."""
            key = self._key(sig, target_context.codegen())
            return os.path.exists(os.path.join(self._folder.kernels,
                                               disk_cache.artefact_name(key)))

        def load_overload(self, sig, target_context):
            target_context.refresh()
            key = self._key(sig, target_context.codegen())
            payload = disk_cache.read_artefact(self._folder, key)
            if payload is None:
                return None
            try:
                return CompileResult._rebuild(target_context, *pickle.loads(payload))
            except Exception as e:  # noqa: BLE001 - a verified file numba cannot use
                stats["cache_errors"] += 1
                disk_cache.discard(self._folder, key, f"numba could not load it "
                                   f"({type(e).__name__}: {str(e)[:200]})")
                return None

        def save_overload(self, sig, cres):
            folder = self._folder
            limit = settings().cache_max_size
            if not folder.writable or limit <= 0:
                return
            # kernels calling C helpers (math.erf, lgamma) hold process addresses
            if cres.library.has_dynamic_globals or any(not f.can_cache for f in cres.lifted):
                return
            try:
                payload = dumps(cres._reduce())
            except Exception:  # noqa: BLE001 - an unpicklable result is not kept
                return
            if disk_cache.write_artefact(folder, self._key(sig, cres.codegen), payload, limit):
                self.saved = True

        def enable(self):
            pass

        def disable(self):
            pass

        def flush(self):
            pass

    _cache_class = _VerifiedCache
    return _cache_class


def _load(ks: KernelSource) -> Callable:
    """The kernel's dispatcher, backed by the disk cache when there is a usable one
    (counted as one more user of its module: pair it with `_release_with`)."""
    fn, address = _make_dispatcher(ks, retain=True)
    folder = disk_cache.folder_for(settings().cache_dir)
    if folder is not None and hasattr(fn, "_cache") and not fn.overloads:
        fn._cache = _verified_cache_class()(folder, address, ks.name)
    return fn


def compile_to_cache(text: str, name: str, signature: tuple, cache_dir: str) -> str | None:
    """Compile kernel `name` of module `text` for `signature` into the disk cache at
    `cache_dir` (what the compile helper process does): "written", "present" (it
    was there already), or None (not kept: the caller must compile it itself)."""
    fn, address = _dispatcher_of_text(text, name)
    folder = disk_cache.folder_for(cache_dir)
    if folder is None or not folder.writable or not hasattr(fn, "_cache"):
        return None
    cache = fn._cache = _verified_cache_class()(folder, address, name)
    try:
        with _quiet_about_caching():
            fn.compile(signature)
        return "written" if cache.saved else "present" if _cache_hits(fn) else None
    finally:
        _release_module(fn.py_func.__globals__)


def helper_usable() -> bool:
    """Whether kernels are to be compiled by the helper process: the option is on and
    there is a writable cache folder for it to fill."""
    s = settings()
    if not s.compile_process or s.cache_max_size <= 0 or not s.cache_dir:
        return False
    folder = disk_cache.folder_for(s.cache_dir)
    return folder is not None and folder.writable


def _compile_elsewhere(ks: KernelSource, signature: tuple) -> bool:
    """Have the compile helper process put this kernel's machine code in the disk
    cache (compile_worker.py says why); True when the caller can now load it."""
    if not helper_usable():
        return False
    s = settings()
    return compile_in_helper(_module_text(ks), ks.name, signature, s.cache_dir,
                             s.cache_max_size)


def _cache_hits(fn) -> int:
    try:
        return sum(fn.stats.cache_hits.values())
    except AttributeError:
        return 0


class Kernel:
    """A compiled jaxpr: `kernel(consts, args) -> list of owned ndarrays`.

    The first call compiles (or loads from the disk cache); if numba fails,
    the kernel turns into the interpreter for good, with one warning."""

    __slots__ = ("jaxpr", "source", "fn", "zero_d", "literal_outs", "out_dtypes",
                 "scalar_outs", "fallback", "checked", "direct", "dims", "__weakref__")

    def __init__(self, jaxpr, ks: KernelSource | None, fallback_reason: str | None = None):
        self.jaxpr = jaxpr
        self.source = ks
        self.fn = None
        self.fallback = fallback_reason
        self.checked = False
        self.direct = False   # True once `fn(*consts, *args)` alone gives the results
        self.dims = ()        # size parameters, after the arrays (codegen.KernelSource.dims)
        if ks is not None:
            self.dims = ks.dims
            self.zero_d = [(i, a.dtype.type) for i, a in enumerate(ks.in_avals) if a.shape == ()]
            self.literal_outs = ks.literal_outs
            self.out_dtypes = [a.dtype for a in ks.out_avals]
            self.scalar_outs = [i for i, a in enumerate(ks.out_avals) if a.shape == ()]

    def _load(self) -> None:
        with _load_lock:   # two threads' first calls make one dispatcher
            if self.fn is None:
                self.fn = _load(self.source)
                _release_with(self, self.fn)
                if settings().print_kernels:
                    print(f"--- fungrad kernel {self.source.name}\n{self.source.source}")

    def _fail(self, e: BaseException) -> None:
        prim = _failing_primitive(self.jaxpr, self.source, e)
        self.fallback = f"{type(e).__name__}: {e}"
        self.fn = None
        self.direct = False
        stats["fallbacks"] += 1
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _warn(f"fungrad: numba could not compile kernel {self.source.name} "
              f"(primitive '{prim}'): {first[:300]}; running it in the interpreter instead "
              "(results are the same, only slower)")

    def __call__(self, consts: Sequence, args: Sequence) -> list:
        if self.fallback is not None:
            return _interpret(self.jaxpr, consts, args)
        flat = [*consts, *args, *self.dims]
        if self.zero_d:
            for i, to_scalar in self.zero_d:
                x = flat[i]
                flat[i] = x[()] if type(x) is np.ndarray else to_scalar(x)
        if not self.checked:
            return self._first_call(flat, consts, args)
        try:
            outs = self.fn(*flat)
        except (IndexError, np.linalg.LinAlgError):
            # a traced index out of bounds: the interpreter raises the error users read;
            # a singular, non-positive-definite or non-finite matrix: the interpreter
            # gives what the primitive defines (NaNs) for this call
            return _interpret(self.jaxpr, consts, args)
        except Exception as e:  # noqa: BLE001 - e.g. a new input layout numba rejects
            self._fail(e)
            return _interpret(self.jaxpr, consts, args)
        if self.scalar_outs or self.literal_outs:
            return self._finish(outs)
        return outs

    def _finish(self, outs) -> list:
        outs = list(outs)
        for i in self.scalar_outs:
            outs[i] = np.asarray(outs[i], dtype=self.out_dtypes[i])
        for i, val in self.literal_outs.items():
            outs[i] = np.array(val, dtype=self.out_dtypes[i])
        return outs

    def _flat(self, consts: Sequence, args: Sequence) -> list:
        flat = [*consts, *args, *self.dims]
        for i, to_scalar in self.zero_d:
            x = flat[i]
            flat[i] = x[()] if type(x) is np.ndarray else to_scalar(x)
        return flat

    def _count(self, before: tuple, elsewhere: bool = False) -> None:
        """Count what happened since `before = _progress(fn)`: a load or a compile
        (a load of what the compile helper just compiled is a compile)."""
        signatures, hits = before
        if _cache_hits(self.fn) > hits and not elsewhere:
            stats["cache_loaded"] += 1
        elif _compile_count(self.fn) > signatures:
            stats["compiled"] += 1

    def _compile(self, signature: tuple) -> None:
        """Machine code for `signature`: loaded from the disk cache, else made by the
        compile helper and loaded, else compiled here."""
        before = _progress(self.fn)
        cache = getattr(self.fn, "_cache", None)
        elsewhere = (not (hasattr(cache, "has") and cache.has(signature, self.fn.targetctx))
                     and _compile_elsewhere(self.source, signature))
        with _quiet_about_caching():
            self.fn.compile(signature)
        self._count(before, elsewhere)

    def prepare(self, consts: Sequence, args: Sequence) -> bool:
        """Load or compile the machine code for these arguments' types without running
        it (what the background compiler does); False if numba failed (the kernel
        then runs the interpreter, and has warned)."""
        if self.fallback is not None:
            return False
        if self.fn is not None and self.checked:
            return True
        try:
            if self.fn is None:
                self._load()
            import numba
            signature = tuple(numba.typeof(x) for x in self._flat(consts, args))
            if signature not in self.fn.overloads:
                self._compile(signature)
        except Exception as e:  # noqa: BLE001 - numba rejected it: the interpreter runs it
            self._fail(e)
            return False
        return True

    def _first_call(self, flat, consts, args) -> list:
        try:
            if self.fn is None:
                self._load()
            if not self.fn.overloads:
                import numba
                self._compile(tuple(numba.typeof(x) for x in flat))
            before = _progress(self.fn)
            with _quiet_about_caching():
                outs = self.fn(*flat)
            self._count(before)
        except (IndexError, np.linalg.LinAlgError) as e:
            if self.fn is not None and _compile_count(self.fn):
                # the user's IndexError, or a matrix the interpreter answers (see __call__)
                return _interpret(self.jaxpr, consts, args)
            self._fail(e)
            return _interpret(self.jaxpr, consts, args)
        except Exception as e:  # noqa: BLE001 - a numba failure must not fail the call
            self._fail(e)
            return _interpret(self.jaxpr, consts, args)
        self.checked = True
        self.direct = not (self.zero_d or self.scalar_outs or self.literal_outs or self.dims)
        return self._finish(outs)


def _release_with(kernel: Kernel, fn) -> None:
    """When `kernel` is garbage, let numba free the machine code of `fn`'s module.

    numba files every compiled function in its global target context
    (`targetctx._defns`, keyed by the compiled entry point, whose environment holds
    the module's globals, which hold the dispatcher); only the dispatcher's own
    finalizer removes that entry, and it never runs because the entry keeps the
    dispatcher alive.  So each kernel and its helpers stayed in memory for the life of
    the process (about 0.7 MB each, issue 18).  Doing what that finalizer does once
    nothing can call the kernel any more breaks the cycle, and the garbage collector
    then frees the dispatchers and everything numba keeps in Python for them.  What
    stays is numba's MCJIT engine: it never removes a module it was given (numba's
    codegen.py disables `remove_module`, which crashed), about 0.4 MB per kernel
    (measured: 0.72 MB per dropped jit before, 0.40 after; removing the modules too
    would leave 0.16 MB, at the risk numba declined).  Kernels of programs that
    differ only in shapes share one module: it is released with the last of them."""
    namespace = getattr(fn, "py_func", fn).__globals__
    weakref.finalize(kernel, _drop, namespace)


def _drop(namespace: dict) -> None:
    """A kernel using the module `namespace` is garbage (a weakref.finalize callback)."""
    _orphans.append(namespace)
    if _users_lock.acquire(blocking=False):
        try:
            _release_orphans()
        finally:
            _users_lock.release()


def _release_orphans() -> None:
    """Release the modules whose last kernel died (with `_users_lock` held)."""
    while _orphans:
        namespace = _orphans.pop()
        name = namespace.get("__name__")
        left = _users.get(name, 0) - 1
        if left > 0:
            _users[name] = left
            continue
        _users.pop(name, None)
        _release_module(namespace)


def _release_module(namespace: dict) -> None:
    for value in list(namespace.values()):
        finalizer = getattr(value, "_make_finalizer", None)
        if finalizer is not None and hasattr(value, "overloads"):
            try:
                finalizer()()
            except Exception:  # noqa: BLE001 - numba internals; never fail a collection
                pass
    name = namespace.get("__name__")
    module = sys.modules.get(name) if name else None
    if module is not None and module.__dict__ is namespace:
        del sys.modules[name]
    filename = namespace.get("__file__")
    if filename is None and name and name.startswith("_fungrad_kernel_"):
        filename = f"<fungrad kernel {name[len('_fungrad_kernel_'):]}>"
    if filename is not None:
        linecache.cache.pop(filename, None)
    namespace.clear()     # the kernel's functions and dispatchers: now only garbage


def _progress(fn) -> tuple:
    return _compile_count(fn), _cache_hits(fn)


def _compile_count(fn) -> int:
    try:
        return len(fn.signatures)
    except AttributeError:
        return 0


def _interpret(jaxpr, consts, args) -> list:
    return [owned_array(x) for x in eval_jaxpr(jaxpr, consts, *args)]


def _failing_primitive(jaxpr, ks, e) -> str:
    """The primitive of the generated line numba complained about (best effort):
    the line it quotes or that holds a name it quotes, then the comment above it."""
    import re
    text = str(e)
    lines = ks.source.splitlines() if ks is not None else []
    quoted = set(re.findall(r"'([A-Za-z_][A-Za-z0-9_.]*)'", text))
    hit = None
    for j, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("def "):
            continue
        if s in text or any(q in s for q in quoted):
            hit = j
            break
    if hit is not None:
        for j in range(hit, -1, -1):
            s = lines[j].strip()
            if s.startswith("# ") and " = " in s:
                return s.split(" = ", 1)[1].split()[0].split("[")[0]
    for eqn in jaxpr.eqns:
        if eqn.prim.name in text:
            return eqn.prim.name
    return "?"


_warned_primitives: set = set()   # one warning per primitive the generator cannot lower


def compile_jaxpr(jaxpr) -> Kernel:
    """A `Kernel` for `jaxpr` (compiled lazily on its first call); a jaxpr the code
    generator cannot lower gives a kernel that runs the interpreter, with a warning."""
    try:
        ks = generate(jaxpr)
    except CodegenError as e:
        stats["fallbacks"] += 1
        if e.primitive in _warned_primitives:
            return Kernel(jaxpr, None, fallback_reason=str(e))
        _warned_primitives.add(e.primitive)
        _warn(f"fungrad: cannot compile a program with primitive '{e.primitive}' ({e}); "
              "running it in the interpreter (results are the same, only slower)")
        return Kernel(jaxpr, None, fallback_reason=str(e))
    return Kernel(jaxpr, ks)
