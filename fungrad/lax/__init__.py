"""`fungrad.lax`: the primitives (one block each, with all their rules) and the
structured control flow built on them.  `ALL_PRIMITIVES` lists every primitive.

This package's modules are the first-order primitives (below `transforms/`); the
control flow is defined in `fungrad.hop` (above `transforms/`, because its rules
run the transforms on sub-programs) and re-exported here under JAX's names, so
this `__init__` is a face over both layers.  Code inside fungrad imports the
module that defines a name, never this package."""
from __future__ import annotations

from ..core import Primitive
from .. import hop
from ..hop import branching, scans, while_loops
from ..hop.branching import cond, cond_p, switch  # noqa: F401
from ..hop.scans import fori_loop, map, scan, scan_p  # noqa: F401
from ..hop.while_loops import while_loop, while_p, while_tape_p, while_tape_vjp_p  # noqa: F401
from . import base, elementwise, indexing, linalg, reduce, shape
from .base import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .elementwise import stop_gradient  # noqa: F401


def _collect() -> list[Primitive]:
    found = {}
    for module in (base, elementwise, shape, reduce, linalg, indexing, branching, while_loops,
                   scans):
        for value in vars(module).values():
            if isinstance(value, Primitive):
                found[value.name] = value
    return list(found.values())


ALL_PRIMITIVES: list[Primitive] = _collect()
