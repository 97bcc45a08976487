"""`fungrad.extend`: the public API for defining new primitives.

A primitive is a named operation with one rule per transform, declared in one
block (see docs/extending.md for the full walk-through):

    import numpy as np
    import fungrad as fg, fungrad.numpy as fnp
    from fungrad import lax
    from fungrad.extend import Primitive, elementwise_vmap, same_shape

    softclip_p = Primitive("softclip", kind="elementwise")             # softclip(x) = x / (1 + |x|)

    def softclip(x):
        return softclip_p.bind(x)

    softclip_p.def_impl(lambda x: x / (1.0 + np.abs(x)))           # NumPy, concrete
    softclip_p.def_shape(same_shape)                               # avals -> aval
    # d softclip(x) = dx / (1 + |x|)^2; rules use fungrad ops, so they differentiate again
    softclip_p.def_jvp(lambda t, x, *, out: t / (1.0 + fnp.abs(x)) ** 2)
    softclip_p.def_vjp(lambda ct, x, *, out: (ct / (1.0 + fnp.abs(x)) ** 2,))
    softclip_p.def_vmap(elementwise_vmap(softclip_p))              # batch dim passes through
    softclip_p.def_emit(lambda x: f"({x} / (1.0 + np.abs({x})))")  # numba code for jit

Rule signatures (the same for every primitive):

| rule  | signature                               | returns                          |
| ----- | --------------------------------------- | -------------------------------- |
| impl  | (*arrays, **params)                     | NumPy array                      |
| shape | (*avals, **params)                      | ShapedArray                      |
| jvp   | (t_1..t_n, x_1..x_n, *, out, **params)  | output tangent (None: zero)      |
| vjp   | (ct, x_1..x_n, *, out, **params)        | a cotangent per input (None: 0)  |
| vmap  | (axis_size, args, dims, **params)       | (out, out_dim)                   |
| emit  | (*input_names, **params)                | NumPy expression text for numba  |

Declare what the primitive is with `Primitive(name, kind=...)` (`core.KINDS`): a
`kind="elementwise"` primitive with an `emit` rule fuses into compiled loops.
A primitive without an `emit` rule still runs under `jit` (its program runs in
the interpreter, with a warning); one without a jvp/vjp rule raises an error
naming the missing rule when differentiated.
"""
from __future__ import annotations

from .core import ClosedJaxpr, Jaxpr, Primitive, ShapedArray
from .primitives._util import is_float, nondifferentiable, same_shape
from .primitives.base import bdim_to_front, elementwise_vmap, move_axis_to_front
from .tracing import aval_of, is_tracer
from .transforms.util import Zero

__all__ = ["Primitive", "ShapedArray", "Jaxpr", "ClosedJaxpr", "same_shape",
           "elementwise_vmap", "bdim_to_front", "move_axis_to_front", "nondifferentiable",
           "is_float", "aval_of", "is_tracer", "Zero"]
