"""Global settings: `fungrad.config.update(name, value)`, with defaults read from
the environment when fungrad is imported.

    import fungrad as fg
    fg.config.update("debug_nans", True)     # or FUNGRAD_DEBUG_NANS=1
    fg.config.debug_nans                     # True
    with fg.config.override("debug_infs", True):
        ...

Options are plain attributes of one `Config` object (cheap to read on hot
paths).  A module that needs a new option declares it with `config.define`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

from .errors import FungradValueError

__all__ = ["Config", "config", "update", "define"]

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


class Config:
    """The settings object; read options as attributes, change them with `update`."""

    def __init__(self):
        object.__setattr__(self, "_options", {})

    def define(self, name: str, default: Any, env: str | None = None,
               parse: Callable[[str], Any] = parse_bool, doc: str = "") -> None:
        """Declare option `name`; its value starts from environment variable `env`
        (parsed with `parse`) when set, else `default`."""
        value = default
        if env is not None and env in os.environ:
            value = parse(os.environ[env])
        self._options[name] = (default, env, parse, doc)
        object.__setattr__(self, name, value)

    def update(self, name: str, value: Any) -> None:
        """Set option `name` to `value`.  >>> fungrad.config.update("debug_nans", True)"""
        if name not in self._options:
            known = ", ".join(sorted(self._options))
            raise FungradValueError(f"config.update: unknown option {name!r}; "
                                    f"the options are: {known}")
        object.__setattr__(self, name, value)

    def read(self, name: str) -> Any:
        return getattr(self, name)

    @contextlib.contextmanager
    def override(self, name: str, value: Any):
        """Context manager: `name` is `value` inside the block, restored after it."""
        old = self.read(name)
        self.update(name, value)
        try:
            yield
        finally:
            self.update(name, old)

    def options(self) -> dict:
        """Every option with its current value."""
        return {name: getattr(self, name) for name in self._options}

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(name, value)

    def __repr__(self) -> str:
        return f"Config({self.options()})"


config = Config()
update = config.update
define = config.define

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
config.define("cache_dir", os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(
    os.path.expanduser("~"), ".cache"), "fungrad"), env="FUNGRAD_CACHE_DIR", parse=str,
              doc="folder of the on-disk kernel cache ('' disables it)")
config.define("print_kernels", False, env="FUNGRAD_PRINT_KERNELS",
              doc="print the source of every kernel when it is compiled")

# compiling off the caller's path (fungrad/backend/execution.py)
config.define("sync_compile", False, env="FUNGRAD_SYNC_COMPILE",
              doc="compile kernels in the calling thread, waiting for them (by default a "
                  "kernel compiles in a background thread while the interpreter serves calls)")
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
