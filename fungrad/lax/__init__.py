"""`fungrad.lax`: the primitives (one block each, with all their rules) and the
structured control flow built on them.  `ALL_PRIMITIVES` lists every primitive."""
from __future__ import annotations

from ..core import Primitive
from . import control_flow, elementwise, linalg, reduce, shape
from . import indexing
from .control_flow import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .elementwise import stop_gradient  # noqa: F401


def _collect() -> list[Primitive]:
    found = {}
    for module in (elementwise, shape, reduce, linalg, control_flow, indexing):
        for value in vars(module).values():
            if isinstance(value, Primitive):
                found[value.name] = value
    return list(found.values())


ALL_PRIMITIVES: list[Primitive] = _collect()
