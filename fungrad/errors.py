"""Exception classes and the helpers that make messages name the user's code.

Every exception fungrad raises derives from `FungradError` and from the builtin a
Python user would expect (`TypeError`, `ValueError`, ...), so `except TypeError`
keeps working.  Messages say where (transform, user function, file:line), what
was found, and what to do.
"""
from __future__ import annotations

import os
import sys

from .caches import new_cache

__all__ = [
    "FungradError", "FungradTypeError", "FungradValueError", "FungradIndexError",
    "FungradNotImplementedError", "TracerBoolConversionError", "ConcretizationError",
    "TracerArrayConversionError", "TracerIntegerConversionError", "UnexpectedTracerError",
    "FungradFloatingPointError", "FungradOverflowError", "CodegenError",
    "user_frame", "user_location", "describe_function",
]


class FungradError(Exception):
    """Base class of every error fungrad raises."""


class FungradTypeError(FungradError, TypeError):
    pass


class FungradValueError(FungradError, ValueError):
    pass


class FungradIndexError(FungradError, IndexError):
    pass


class FungradNotImplementedError(FungradError, NotImplementedError):
    pass


class FungradOverflowError(FungradError, OverflowError):
    """A Python int argument that does not fit in int64 (JAX raises OverflowError too)."""


def int_overflow_error(value: int, where: str = "") -> FungradOverflowError:
    """The error for a Python int argument outside int64 (`where`: 'jit(f): ')."""
    return FungradOverflowError(
        f"{where}the Python int {value} does not fit in int64, the dtype fungrad gives "
        f"Python ints, at {format_location(user_location())}.\n  Pass it as a float "
        f"({float(value)!r}) or split it into smaller integers.")


class ConcretizationError(FungradTypeError):
    """A concrete value was needed from a traced value that has none (under `jit`)."""


class TracerBoolConversionError(ConcretizationError):
    """A traced value was used as a Python bool (`if`, `while`, `and`, `or`)."""


class TracerIntegerConversionError(ConcretizationError):
    """A traced value was used as a Python int (`range`, indexing a list)."""


class TracerArrayConversionError(FungradTypeError):
    """A traced value was converted to a NumPy array (`np.asarray(tracer)`)."""


class UnexpectedTracerError(FungradError, RuntimeError):
    """A traced value escaped the transform that created it and was used later."""


class CodegenError(Exception):
    """The jaxpr has an equation the kernel code generator cannot lower (the
    program then runs in the interpreter)."""

    def __init__(self, msg: str, primitive: str):
        super().__init__(msg)
        self.primitive = primitive


class FungradFloatingPointError(FungradError, FloatingPointError):
    """`debug_nans` / `debug_infs`: an equation produced a NaN or an inf."""


_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Modules inside the package that hold *user-level* code (examples, the tour):
# their frames count as the user's.
_USER_MODULES = ("tour.py", "__main__.py", "testing.py")
_internal_code = new_cache("errors.internal_code", 65536)   # code object -> fungrad's own?


def _is_internal(code) -> bool:
    internal = _internal_code.get(code)
    if internal is None:
        name = code.co_filename
        internal = name.startswith(_PKG_DIR) and not name.endswith(_USER_MODULES)
        internal = internal or name.startswith("<frozen ") or name.endswith(
            ("contextlib.py", "functools.py"))
        _internal_code.put(code, internal)
    return internal


def user_frame(depth: int = 1):
    """The innermost frame on the stack that is not fungrad's own code."""
    frame = sys._getframe(depth)
    cache = _internal_code
    while frame is not None:
        code = frame.f_code
        internal = cache.get(code)
        if internal is None:
            internal = _is_internal(code)
        if not internal:
            return frame
        frame = frame.f_back
    return None


def user_location(depth: int = 1) -> tuple | None:
    """(filename, lineno, function name) of the user's innermost frame, or None."""
    frame = user_frame(depth + 1)
    if frame is None:
        return None
    code = frame.f_code
    return (code.co_filename, frame.f_lineno, code.co_name)


class SourceInfo:
    """Where an equation came from: the user's code object and instruction offset.

    Unpacks like (filename, lineno, function name); the line number is decoded
    from the code's line table only when it is shown (reading a frame's f_lineno
    costs more than recording an equation)."""
    __slots__ = ("code", "lasti", "_hash")

    def __init__(self, code, lasti: int):
        self.code, self.lasti = code, lasti
        self._hash = hash((code, lasti))

    @property
    def filename(self) -> str:
        return self.code.co_filename

    @property
    def function(self) -> str:
        return self.code.co_name

    @property
    def lineno(self) -> int | None:
        for start, end, line in self.code.co_lines():
            if start <= self.lasti < end:
                return line
        return self.code.co_firstlineno

    def __iter__(self):
        return iter((self.filename, self.lineno, self.function))

    def __eq__(self, other) -> bool:
        return (isinstance(other, SourceInfo) and self.code is other.code
                and self.lasti == other.lasti)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"SourceInfo({format_location(self)})"

    def __reduce__(self):
        # code objects do not pickle: a jaxpr sent to another process keeps the text
        return SourceLocation, (self.filename, self.lineno, self.function)


class SourceLocation:
    """A `SourceInfo` that crossed a process boundary: the location as text."""
    __slots__ = ("filename", "lineno", "function")

    def __init__(self, filename: str, lineno: int | None, function: str):
        self.filename, self.lineno, self.function = filename, lineno, function

    def __iter__(self):
        return iter((self.filename, self.lineno, self.function))

    def __eq__(self, other) -> bool:
        return isinstance(other, SourceLocation) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __reduce__(self):
        return SourceLocation, tuple(self)

    def __repr__(self) -> str:
        return f"SourceLocation({format_location(self)})"


def format_location(loc) -> str:
    if loc is None:
        return "<unknown location>"
    filename, lineno, func = loc
    return f"{filename}:{lineno} (in {func})"


def describe_function(fun) -> str:
    """A short name for a user function, for messages: `loss`, `<lambda>`."""
    name = getattr(fun, "__name__", None) or type(fun).__name__
    code = getattr(fun, "__code__", None)
    if code is not None:
        return f"{name} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
    return name
