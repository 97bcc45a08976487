"""`fungrad.debug`: JAX's `jax.debug.print` and `jax.debug.callback`.

    @fg.jit
    def f(x):
        fg.debug.print("x = {x}", x=x)       # prints on every call, with that call's x
        return x * 2

Values are printed when the program runs (not when it is traced), inside `jit`,
`grad` and `vmap` (where the whole batch is printed at once).  A program with a
print runs in the NumPy interpreter under `jit` (a numba kernel cannot call
Python); fungrad warns once per process.
"""
from __future__ import annotations

import builtins
from typing import Any, Callable

from .primitives.callback import debug_callback

__all__ = ["print", "callback"]


def callback(callback: Callable, *args: Any, **kwargs: Any) -> None:
    """`callback(*args, **kwargs)` on the concrete values each time the program runs."""
    debug_callback(callback, *args, **kwargs)


def print(fmt: str, *args: Any, **kwargs: Any) -> None:  # noqa: A001 - JAX's name
    """`print(fmt.format(*args, **kwargs))` with the values of this call.

    >>> fg.jit(lambda x: fg.debug.print("x is {}", x) or x)(3.0)    # prints: x is 3.0
    """
    def show(*values, **named):
        builtins.print(fmt.format(*values, **named))
    show.__qualname__ = f"debug.print({fmt!r})"
    debug_callback(show, *args, **kwargs)
