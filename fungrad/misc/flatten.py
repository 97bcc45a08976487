"""autograd's `flatten(value) -> (flat_vector, unflatten)`: `ravel_pytree` under
autograd's name (`from autograd.misc.flatten import flatten` becomes
`from fungrad.misc.flatten import flatten`)."""
from __future__ import annotations

from typing import Any, Callable

from ..flatten_util import ravel_pytree

__all__ = ["flatten"]


def flatten(value: Any) -> tuple[Any, Callable[[Any], Any]]:
    """`(flat, unflatten)`: the leaves of the pytree `value` raveled and concatenated
    into one vector, and the function rebuilding the pytree from such a vector.
    Leaves come in fungrad's tree order (dict keys sorted), as in autograd."""
    return ravel_pytree(value)
