"""Compile generated kernel source with numba; cache it on disk; fall back.

Each kernel is written to a content-addressed module file
`<cache dir>/kernels/k_<hash>.py` (the hash covers the source and the fungrad,
numba and NumPy versions) and imported, so `numba.njit(cache=True)` can keep
its compiled code next to it and a later process loads instead of compiling.
Writes go to a temporary file and `os.replace`, so concurrent writers never
leave a torn file; a file whose text is not the expected source is rewritten.
Whatever goes wrong with the cache (unwritable folder, corrupt file, corrupt
numba index) ends in a plain in-memory compile, and a kernel numba rejects
runs in the interpreter: a warning, never an error.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import linecache
import os
import sys
import tempfile
import threading
import warnings
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from .._version import __version__
from ..config import config
from ..interpreter import eval_jaxpr, owned_array
from .codegen import CODEGEN_VERSION, HELPERS, CodegenError, KernelSource, generate

__all__ = ["Kernel", "compile_jaxpr", "FungradKernelWarning", "stats", "deferred_warnings"]


class FungradKernelWarning(RuntimeWarning):
    """A kernel could not be compiled or cached; fungrad fell back (results unchanged)."""


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


def _versions() -> str:
    import numba
    # the LLVM optimization level too: kernels compiled at NUMBA_OPT=0 (tests) must
    # never be loaded by a process that expects optimized code
    return f"fungrad {__version__} numba {numba.__version__} numpy {np.__version__} " \
           f"codegen {CODEGEN_VERSION} python {sys.version_info[0]}.{sys.version_info[1]} " \
           f"opt {numba.config.OPT}"


def _module_text(ks: KernelSource, cache: bool) -> str:
    helpers = HELPERS.replace("CACHE", "True" if cache else "False")
    return (f"# fungrad kernel, generated; {_versions()}\n{_PRELUDE}{helpers}\n\n"
            f"@numba.njit(cache={cache}, error_model='numpy')\n{ks.source}")


def _warn(msg: str) -> None:
    deferred = getattr(_deferred, "messages", None)
    if deferred is not None:
        deferred.append(msg)
    else:
        warnings.warn(msg, FungradKernelWarning, stacklevel=4)


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load_from_disk(ks: KernelSource) -> tuple[Callable, Any] | None:
    """Import the kernel's module file (writing it first if needed); None on failure."""
    folder = config.cache_dir
    if not folder:
        return None
    text = _module_text(ks, cache=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    kdir = os.path.join(folder, "kernels")
    path = os.path.join(kdir, f"k_{digest}.py")
    try:
        os.makedirs(kdir, exist_ok=True)
        try:
            with open(path) as f:
                on_disk = f.read()
        except (OSError, UnicodeDecodeError):
            on_disk = None
        if on_disk != text:
            if on_disk is not None:
                stats["cache_errors"] += 1
                _warn(f"fungrad: kernel cache file {path} was corrupt; rewriting it")
                _purge_numba_cache(path)
            _write_atomic(path, text)
    except OSError as e:
        stats["cache_errors"] += 1
        _warn(f"fungrad: cannot write the kernel cache in {folder} ({e}); compiling in memory. "
              "Set FUNGRAD_CACHE_DIR to a writable folder to keep compiled kernels.")
        return None
    modname = f"_fungrad_kernel_{digest}"
    try:
        linecache.checkcache(path)
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        # numba's cache finds the kernel's globals again by module name
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - a cache problem is never fatal
        sys.modules.pop(modname, None)
        stats["cache_errors"] += 1
        _warn(f"fungrad: cannot import cached kernel {path} ({type(e).__name__}: {e}); "
              "compiling in memory")
        return None
    return getattr(module, ks.name), path


def _purge_numba_cache(path: str) -> None:
    """Remove numba's index/data files that belong to the kernel module at `path`."""
    base = os.path.splitext(os.path.basename(path))[0]
    pyc = os.path.join(os.path.dirname(path), "__pycache__")
    try:
        for fn in os.listdir(pyc):
            if fn.startswith(base + "."):
                try:
                    os.unlink(os.path.join(pyc, fn))
                except OSError:
                    pass
    except OSError:
        pass


def _compile_in_memory(ks: KernelSource) -> Callable:
    """exec the source under a synthetic filename registered in linecache."""
    filename = f"<fungrad kernel {ks.digest}>"
    text = _module_text(ks, cache=False)
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict = {"__name__": f"_fungrad_kernel_{ks.digest}"}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102 - our generated source
    return namespace[ks.name]


def _cache_hits(fn) -> int:
    try:
        return sum(fn.stats.cache_hits.values())
    except AttributeError:
        return 0


class Kernel:
    """A compiled jaxpr: `kernel(consts, args) -> list of owned ndarrays`.

    The first call compiles (or loads from the disk cache); if numba fails,
    the kernel turns into the interpreter for good, with one warning."""

    __slots__ = ("jaxpr", "source", "fn", "path", "zero_d", "literal_outs", "out_dtypes",
                 "scalar_outs", "fallback", "checked", "direct", "__weakref__")

    def __init__(self, jaxpr, ks: KernelSource | None, fallback_reason: str | None = None):
        self.jaxpr = jaxpr
        self.source = ks
        self.fn = None
        self.path = None
        self.fallback = fallback_reason
        self.checked = False
        self.direct = False   # True once `fn(*consts, *args)` alone gives the results
        if ks is not None:
            self.zero_d = [(i, a.dtype.type) for i, a in enumerate(ks.in_avals) if a.shape == ()]
            self.literal_outs = ks.literal_outs
            self.out_dtypes = [a.dtype for a in ks.out_avals]
            self.scalar_outs = [i for i, a in enumerate(ks.out_avals) if a.shape == ()]

    def _load(self) -> None:
        ks = self.source
        fn = None
        if config.cache_dir:
            loaded = _load_from_disk(ks)
            if loaded is not None:
                fn, self.path = loaded
        if fn is None:
            fn = _compile_in_memory(ks)
        self.fn = fn
        _release_with(self, fn)
        if config.print_kernels:
            print(f"--- fungrad kernel {ks.name}\n{ks.source}")

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
        flat = [*consts, *args]
        if self.zero_d:
            for i, to_scalar in self.zero_d:
                x = flat[i]
                flat[i] = x[()] if type(x) is np.ndarray else to_scalar(x)
        if not self.checked:
            return self._first_call(flat, consts, args)
        try:
            outs = self.fn(*flat)
        except IndexError:
            # a traced index out of bounds: the interpreter raises the error users read
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
        flat = [*consts, *args]
        for i, to_scalar in self.zero_d:
            x = flat[i]
            flat[i] = x[()] if type(x) is np.ndarray else to_scalar(x)
        return flat

    def _count(self, before: tuple) -> None:
        """Count what happened since `before = _progress(fn)`: a load or a compile."""
        signatures, hits = before
        if _cache_hits(self.fn) > hits:
            stats["cache_loaded"] += 1
        elif _compile_count(self.fn) > signatures:
            stats["compiled"] += 1

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
            before = _progress(self.fn)
            if signature not in self.fn.overloads:
                with _quiet_about_caching():
                    self.fn.compile(signature)
            self._count(before)
        except Exception as e:  # noqa: BLE001 - the first call sorts out cache problems
            if self.path is not None and not isinstance(e, _numba_errors()):
                return True      # _first_call purges the cache entry and recompiles
            self._fail(e)
            return False
        return True

    def _first_call(self, flat, consts, args) -> list:
        try:
            if self.fn is None:
                self._load()
            before = _progress(self.fn)
            with _quiet_about_caching():
                outs = self.fn(*flat)
            self._count(before)
        except IndexError:
            if self.fn is not None and _compile_count(self.fn):
                return _interpret(self.jaxpr, consts, args)   # raises the user's IndexError
            self._fail(IndexError("index out of bounds"))
            return _interpret(self.jaxpr, consts, args)
        except Exception as e:  # noqa: BLE001 - a numba failure must not fail the call
            if self.path is not None and not isinstance(e, _numba_errors()):
                # maybe a corrupt numba cache entry: purge it and compile in memory once
                stats["cache_errors"] += 1
                _warn(f"fungrad: the numba cache of kernel {self.path} is corrupt or "
                      f"unreadable ({type(e).__name__}: {str(e)[:200]}); compiling it again")
                _purge_numba_cache(self.path)
                self.path = None
                try:
                    self.fn = _compile_in_memory(self.source)
                    _release_with(self, self.fn)
                    outs = self.fn(*flat)
                    stats["compiled"] += 1
                except Exception as e2:  # noqa: BLE001
                    self._fail(e2)
                    return _interpret(self.jaxpr, consts, args)
            else:
                self._fail(e)
                return _interpret(self.jaxpr, consts, args)
        self.checked = True
        self.direct = not (self.zero_d or self.scalar_outs or self.literal_outs)
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
    would leave 0.16 MB, at the risk numba declined)."""
    namespace = getattr(fn, "py_func", fn).__globals__
    weakref.finalize(kernel, _release_module, namespace)


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


def _numba_errors() -> tuple:
    from numba.core import errors
    return (errors.NumbaError,)


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
