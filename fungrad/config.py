"""Settings: `fungrad.config.update(name, value)` sets a process-wide value (its
default read from the environment when fungrad is imported);
`fungrad.config.override(name, value)` changes it for the current thread (or
asyncio task) only, inside a `with` block.

    import fungrad as fg
    fg.config.update("debug_nans", True)     # every thread; or FUNGRAD_DEBUG_NANS=1
    fg.config.debug_nans                     # True
    with fg.config.override("debug_infs", True):
        ...                                  # this thread only

Reading `fg.config.<name>` gives the value in force in the calling thread: its
innermost `override`, else the process-wide value.  Hot paths read the
snapshot `settings()` once (a plain object, one attribute per option) instead.
A module that needs a new option declares it with `config.define`.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from typing import Any, Callable, Iterator

from .errors import FungradValueError

__all__ = ["Config", "config", "update", "define", "settings", "parse_bool", "parse_size"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def parse_bool(text: str) -> bool:
    """An environment variable's text as a bool ("1", "true", "yes", "on" are true)."""
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise FungradValueError(f"cannot read {text!r} as a boolean; use 1 or 0")


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes from text like "500M", "2G", "300MB" or "1048576"."""
    t = str(text).strip().lower().replace(" ", "").removesuffix("ib")
    digits = t.rstrip("kmgtb")
    unit = t[len(digits):]
    try:
        number = float(digits)
    except ValueError:
        number = None
    if number is None or unit not in _UNITS or number < 0:
        raise FungradValueError(f"cannot read {text!r} as a size; use e.g. 512M, 2G or a "
                                "number of bytes")
    return int(number * _UNITS[unit])


class _Settings:
    """One consistent set of option values: an attribute per option."""

    def __repr__(self) -> str:
        return f"settings({self.__dict__})"


def _copy(base: _Settings, changes: dict) -> _Settings:
    fresh = _Settings()
    fresh.__dict__.update(base.__dict__)
    fresh.__dict__.update(changes)
    return fresh


class _Overrides:
    """The overrides in force in one context, and their merge with the process-wide
    values (recomputed when `update` has replaced those since)."""
    __slots__ = ("values", "merged")

    def __init__(self, values: dict):
        self.values = values
        self.merged = (None, None)   # (process-wide snapshot it was built on, merge)


_process = _Settings()                 # process-wide values; replaced, never mutated
_update_lock = threading.Lock()
_overrides: contextvars.ContextVar[_Overrides | None] = contextvars.ContextVar(
    "fungrad_config_overrides", default=None)


def settings() -> _Settings:
    """The option values in force in the calling thread (or task), as one object:
    read it once on a hot path, e.g. `s = settings(); if s.debug_nans or s.debug_infs`."""
    local = _overrides.get()
    if local is None:
        return _process
    base = _process
    built_on, merged = local.merged
    if built_on is not base:
        merged = _copy(base, local.values)
        local.merged = (base, merged)
    return merged


class _Option:
    """`config.<name>`: the value in force in the calling thread."""
    __slots__ = ("name", "doc")

    def __init__(self, name: str, doc: str):
        self.name, self.doc = name, doc

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        local = _overrides.get()
        if local is None:   # no override in this thread: the process-wide value
            return _process.__dict__[self.name]
        return settings().__dict__[self.name]

    def __set__(self, obj, value) -> None:
        obj.update(self.name, value)


class Config:
    """The settings object; read options as attributes, change them with `update`
    (every thread) or `override` (this thread, inside a `with` block)."""

    def __init__(self):
        object.__setattr__(self, "_options", {})

    def define(self, name: str, default: Any, env: str | None = None,
               parse: Callable[[str], Any] = parse_bool, doc: str = "") -> None:
        """Declare option `name`; its value starts from environment variable `env`
        (parsed with `parse`) when set, else `default`."""
        global _process
        value = default
        if env is not None and env in os.environ:
            value = parse(os.environ[env])
        self._options[name] = (default, env, parse, doc)
        setattr(type(self), name, _Option(name, doc))
        with _update_lock:
            _process = _copy(_process, {name: value})

    def _check(self, where: str, name: str) -> None:
        if name not in self._options:
            known = ", ".join(sorted(self._options))
            raise FungradValueError(f"config.{where}: unknown option {name!r}; "
                                    f"the options are: {known}")

    def update(self, name: str, value: Any) -> None:
        """Set option `name` to `value` for the whole process (a thread inside an
        `override` of `name` keeps its overridden value until the block ends).

        >>> fungrad.config.update("debug_nans", True)"""
        global _process
        self._check("update", name)
        with _update_lock:
            _process = _copy(_process, {name: value})

    def read(self, name: str) -> Any:
        """The value of option `name` in force in the calling thread."""
        self._check("read", name)
        return getattr(settings(), name)

    @contextlib.contextmanager
    def override(self, name: str, value: Any) -> Iterator[None]:
        """Context manager: `name` is `value` inside the block, in the calling thread
        (or asyncio task) only; other threads keep seeing their own values."""
        self._check("override", name)
        outer = _overrides.get()
        values = dict(outer.values) if outer is not None else {}
        values[name] = value
        token = _overrides.set(_Overrides(values))
        try:
            yield
        finally:
            _overrides.reset(token)

    def options(self) -> dict:
        """Every option with its value in force in the calling thread."""
        current = settings()
        return {name: getattr(current, name) for name in self._options}

    def describe(self) -> dict:
        """Every option's (default, environment variable, doc)."""
        return {name: (default, env, doc)
                for name, (default, env, _, doc) in self._options.items()}

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(name, value)

    def __repr__(self) -> str:
        return f"Config({self.options()})"


config = Config()
update = config.update
define = config.define


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fungrad")


config.define("debug_nans", False, env="FUNGRAD_DEBUG_NANS",
              doc="raise FloatingPointError at the first equation that produces a NaN")
config.define("debug_infs", False, env="FUNGRAD_DEBUG_INFS",
              doc="raise FloatingPointError at the first equation that produces an inf")

# execution tiers and the kernel cache (fungrad/backend)
config.define("disable_jit", False, env="FUNGRAD_DISABLE_JIT",
              doc="run every program in the NumPy interpreter (no numba, jit included)")
config.define("jit_threshold", 3, env="FUNGRAD_JIT_THRESHOLD", parse=int,
              doc="eager calls of one program structure before it is compiled with numba")
config.define("jit_max_paths", 8, env="FUNGRAD_JIT_MAX_PATHS", parse=int,
              doc="how many paths (outcomes of Python `if`/`while` on traced values) one "
                  "jit signature may specialise before it raises")
config.define("cache_dir", _default_cache_dir(), env="FUNGRAD_CACHE_DIR", parse=str,
              doc="folder of the on-disk kernel cache ('' disables it); it must be private "
                  "to you (not writable by group or others, owned by you or root)")
config.define("cache_max_size", 256 << 20, env="FUNGRAD_CACHE_MAX_SIZE", parse=parse_size,
              doc="size limit of the on-disk kernel cache in bytes (env: 512M, 2G, ...); "
                  "the least recently used kernels are deleted beyond it")
config.define("print_kernels", False, env="FUNGRAD_PRINT_KERNELS",
              doc="print the source of every kernel when it is compiled")

# compiling off the caller's path (fungrad/backend/execution.py)
config.define("sync_compile", False, env="FUNGRAD_SYNC_COMPILE",
              doc="compile kernels in the calling thread, waiting for them (by default a "
                  "kernel compiles in a background thread while the interpreter serves calls)")
config.define("compile_process", True, env="FUNGRAD_COMPILE_PROCESS",
              doc="compile kernels in a helper process that fills the disk cache (the "
                  "user's process then only loads them: no GIL held by numba, ~1 MB less "
                  "memory per kernel); off, or without a writable cache, they compile "
                  "in this process")
config.define("compile_messages", True, env="FUNGRAD_COMPILE_MESSAGES",
              doc="say on stderr, once per kernel, when a compile takes longer than "
                  "`compile_message_after` seconds")
config.define("compile_message_after", 1.0, env="FUNGRAD_COMPILE_MESSAGE_AFTER", parse=float,
              doc="seconds a compile may take before it is reported on stderr")


class KernelCounts(dict):
    """How many kernels this process compiled, loaded from the disk cache, has
    pending in the background, and ran in the interpreter instead (`fallbacks`);
    read `fungrad.config.kernels.compiled` or `fungrad.config.kernels["compiled"]`.
    The backend counts; users only read."""

    def __getattr__(self, name: str) -> int:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return "KernelCounts(" + ", ".join(f"{k}={v}" for k, v in self.items()) + ")"


object.__setattr__(config, "kernels", KernelCounts(
    compiled=0, cache_loaded=0, pending=0, fallbacks=0, cache_errors=0))
