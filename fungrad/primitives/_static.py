"""Checks of the static parameters of the lax functions (axes, shapes, dimension
numbers, dtypes, strings, functions), done once at the API boundary.

A bad parameter raises a `FungradTypeError` or `FungradValueError` that names the
function, the parameter, the value given, the user's line and the fix; it never
reaches a shape rule or NumPy as `int('abc')`.  Each check costs an isinstance test
or two on the good path.
"""
from __future__ import annotations

import operator
import sys

import numpy as np

from ..errors import FungradTypeError, FungradValueError, _is_internal, format_location

__all__ = ["api_call_site", "static_int", "static_ints", "static_dtype", "static_str",
           "static_callable", "static_int_pairs"]


def api_call_site(depth: int = 1, default: str = "fungrad") -> tuple[str, str]:
    """(the fungrad function the user called, "file:line (in f)" of that call)."""
    frame = sys._getframe(depth)
    name = default
    while frame is not None and _is_internal(frame.f_code):
        if not frame.f_code.co_name.startswith("_"):
            name = frame.f_code.co_name
        frame = frame.f_back
    if frame is None:
        return name, "<unknown location>"
    return name, format_location((frame.f_code.co_filename, frame.f_lineno,
                                  frame.f_code.co_name))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_error(what: str, value, expected: str, fix: str) -> FungradTypeError:
    name, where = api_call_site(3)
    return FungradTypeError(
        f"{name}: {what} must be {expected}, got {_shown(value)} of type "
        f"{type(value).__name__}, at {where}.\n  {fix}")


def _is_int(value) -> bool:
    if isinstance(value, int):
        return not isinstance(value, bool)
    if isinstance(value, np.integer):
        return True
    return False


def static_int(value, what: str, *, minimum: int | None = None) -> int:
    """A Python int (an int or a NumPy integer scalar; not a bool, a float, an array)."""
    if type(value) is not int and not _is_int(value):
        raise _type_error(what, value, "an int", "Pass a Python integer such as 0 or 2.")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        name, where = api_call_site(2)
        raise FungradValueError(f"{name}: {what} must be >= {minimum}, got {value}, at "
                                f"{where}.")
    return value


def static_ints(value, what: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """A tuple of ints from a tuple, a list, a range or a 1-d integer array."""
    if type(value) is not tuple:
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
            value = tuple(value.tolist())
        elif isinstance(value, (tuple, list, range)):
            value = tuple(value)
        else:
            raise _type_error(what, value, "a tuple of ints",
                              "Pass a tuple (or list) of Python integers, e.g. (0, 1).")
    out = tuple(v if type(v) is int else _entry(v, what, value) for v in value)
    if minimum is not None:
        for v in out:
            if v < minimum:
                name, where = api_call_site(2)
                raise FungradValueError(f"{name}: every entry of {what} must be >= "
                                        f"{minimum}, got {out}, at {where}.")
    return out


def _entry(v, what: str, value) -> int:
    if not _is_int(v):
        raise _type_error(what, value, "a tuple of ints",
                          "Pass a tuple (or list) of Python integers, e.g. (0, 1).")
    return operator.index(v)


def static_int_pairs(value, what: str) -> tuple[tuple[int, int], ...]:
    """A sequence of (low, high) int pairs (convolution padding)."""
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(
                type(v) is int or _is_int(v) for v in p) for p in value):
        raise _type_error(what, value, "a sequence of (low, high) int pairs",
                          "Pass e.g. ((1, 1), (0, 0)), or a padding string such as 'SAME'.")
    return tuple((operator.index(lo), operator.index(hi)) for lo, hi in value)


_DTYPE_KINDS = "biufc"


def static_dtype(value, what: str = "dtype") -> np.dtype:
    """A numeric NumPy dtype from a dtype, a scalar type or a dtype name."""
    if isinstance(value, np.ndarray) or value is None:
        raise _type_error(what, value, "a dtype",
                          "Pass a dtype such as fungrad.numpy.float32 or 'int64'.")
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise _type_error(what, value, "a dtype",
                          "Pass a dtype such as fungrad.numpy.float32 or 'int64'.") from None
    if dtype.kind not in _DTYPE_KINDS:
        raise _type_error(what, value, "a numeric dtype (bool, integer, float, complex)",
                          "Pass a dtype such as fungrad.numpy.float32 or 'int64'.")
    return dtype


def static_str(value, what: str, choices: tuple[str, ...] | None = None,
               *, upper: bool = False) -> str:
    """One string, optionally one of `choices` (compared in upper case if `upper`)."""
    if not isinstance(value, str):
        raise _type_error(what, value, "a string" + (
            f" (one of {', '.join(choices)})" if choices else ""),
            f"Pass one of {', '.join(map(repr, choices))}." if choices else "Pass a string.")
    key = value.upper() if upper else value
    if choices is not None and key not in choices:
        name, where = api_call_site(2)
        raise FungradValueError(f"{name}: {what} must be one of "
                                f"{', '.join(map(repr, choices))}, got {value!r}, at {where}.")
    return key


def static_callable(value, what: str):
    """A function (a branch, a loop body)."""
    if not callable(value):
        raise _type_error(what, value, "a function",
                          "Pass a Python function (def or lambda).")
    return value


def static_dot_dimension_numbers(value, what: str = "dimension_numbers"):
    """dot_general's ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)), as ints."""
    fix = ("Pass ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch)), e.g. "
           "(((1,), (0,)), ((), ())).")
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in value)):
        raise _type_error(what, value, "a pair of pairs of axis tuples", fix)
    (cx, cy), (bx, by) = value
    return ((static_ints(cx, what), static_ints(cy, what)),
            (static_ints(bx, what), static_ints(by, what)))


def at_call_site(message: str) -> str:
    """`message` with ", at file:line (in f)" of the user's call appended."""
    return f"{message}, at {api_call_site(2)[1]}"
