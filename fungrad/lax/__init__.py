"""`fungrad.lax`: JAX's namespace for the primitives (one block each, with all
their rules) and the structured control flow built on them.  `ALL_PRIMITIVES`
lists every primitive.

This package is a face: the first-order primitives are defined in
`fungrad.primitives` (below `transforms/`) and the control flow in `fungrad.hop`
(above `transforms/`, because its rules run the transforms on sub-programs).
Code inside fungrad imports the module that defines a name, never this package.
"""
from __future__ import annotations

from ..core import Primitive
from ..hop import branching, scans, while_loops
from ..hop.branching import cond, cond_p, switch  # noqa: F401
from ..hop.scans import fori_loop, map, scan, scan_p  # noqa: F401
from ..hop.while_loops import while_loop, while_p, while_tape_p, while_tape_vjp_p  # noqa: F401
from ..primitives import (base, callback as _callback_module, conv, elementwise,
                          fft as _fft_module, indexing, linalg, reduce, shape, special)
from ..primitives._static import static_dot_dimension_numbers
from ..primitives.fft import FFT_TYPES, fft, fft_p  # noqa: F401
from ..primitives.base import *  # noqa: F401,F403
from ..primitives.elementwise import *  # noqa: F401,F403
from ..primitives.indexing import *  # noqa: F401,F403
from ..primitives.linalg import *  # noqa: F401,F403
from ..primitives.reduce import *  # noqa: F401,F403
from ..primitives.shape import *  # noqa: F401,F403
from ..primitives.special import *  # noqa: F401,F403
from ..primitives.conv import *  # noqa: F401,F403
from ..primitives.elementwise import stop_gradient  # noqa: F401



def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """lax.dot_general: dimension_numbers = ((lhs_contract, rhs_contract), (lhs_batch,
    rhs_batch)); a malformed one is refused here, naming the caller's line."""
    return linalg.dot_general(lhs, rhs, static_dot_dimension_numbers(dimension_numbers),
                              precision, preferred_element_type)


# helpers for writing batching rules, not lax operations: they live in fungrad.extend
del move_axis_to_front, bdim_to_front, elementwise_vmap, zeros_like_aval  # noqa: F821

PRIMITIVE_MODULES = (base, elementwise, shape, reduce, linalg, indexing, _fft_module, special,
                     _callback_module, branching, while_loops, scans)


def _collect() -> list[Primitive]:
    found = {}
    for module in PRIMITIVE_MODULES:
        for value in vars(module).values():
            if isinstance(value, Primitive):
                found[value.name] = value
    return list(found.values())


ALL_PRIMITIVES: list[Primitive] = _collect()
