"""Tracing the user functions of control flow (branches, loop bodies) into
sub-jaxprs, and the small helpers every control-flow primitive shares."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core import ClosedJaxpr, Jaxpr, ShapedArray
from ..errors import format_location, user_location
from ..interpreter import eval_jaxpr
from ..primitives._util import is_float
from ..primitives.base import full
from ..pytree import PyTreeDef, tree_flatten
from ..tracing import as_value, trace_to_jaxpr
from ..transforms.simplify import dce_jaxpr


# ---------------------------------------------------------------------------
# tracing user functions into sub-jaxprs
# ---------------------------------------------------------------------------

def _as_operand(x: Any) -> Any:
    """A pytree leaf as an operand: tracers stay, anything else becomes an ndarray."""
    return as_value(x, "loop carries and operands")


def _where() -> str:
    return format_location(user_location(3))


class _Traced:
    """A user function traced on avals: its jaxpr takes (consts..., args...)."""
    __slots__ = ("jaxpr", "consts", "out_tree", "weak")

    def __init__(self, jaxpr: Jaxpr, consts: list, out_tree: PyTreeDef, weak: list[bool]):
        self.jaxpr, self.consts, self.out_tree, self.weak = jaxpr, consts, out_tree, weak

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.jaxpr.outvars]


def _trace_fun(fun: Callable, in_tree: PyTreeDef, in_avals: Sequence[ShapedArray],
               out_dtypes: Sequence | None = None) -> _Traced:
    """Trace `fun(*in_tree.unflatten(args))`; closed-over values become leading inputs.

    Python scalars returned by `fun` are weakly typed: with `out_dtypes` given, they
    take the dtype at their position (as a carry of that dtype would)."""
    box = []

    def flat(*tracers):
        out = fun(*in_tree.unflatten(tracers))
        leaves, out_tree = tree_flatten(out)
        weak = [isinstance(x, (bool, int, float, complex)) for x in leaves]
        if out_dtypes is not None and len(out_dtypes) == len(leaves):
            leaves = [np.asarray(x, dtype=d) if w and d is not None else x
                      for x, w, d in zip(leaves, weak, out_dtypes, strict=True)]
        box.append((out_tree, weak))
        return [_as_operand(x) for x in leaves]

    closed = trace_to_jaxpr(flat, list(in_avals))
    j = closed.jaxpr
    jaxpr = dce_jaxpr(Jaxpr((), j.constvars + j.invars, j.eqns, j.outvars))
    out_tree, weak = box[0]
    return _Traced(jaxpr, list(closed.consts), out_tree, weak)


def _types(avals: Sequence[ShapedArray]) -> str:
    return "(" + ", ".join(str(a) for a in avals) + ")"




def _inline(jaxpr: Jaxpr, args: Sequence) -> list:
    """Evaluate a sub-jaxpr on values of the current trace (binds its equations)."""
    return eval_jaxpr(jaxpr, (), *args)


def _closed(jaxpr: Jaxpr) -> ClosedJaxpr:
    return ClosedJaxpr(jaxpr, ())


def _zeros(aval: ShapedArray):
    return full(aval.shape, 0, aval.dtype)


def _is_float_aval(aval: ShapedArray) -> bool:
    return is_float(aval.dtype)


def _split(seq: Sequence, *sizes: int) -> list[list]:
    out, pos = [], 0
    for n in sizes:
        out.append(list(seq[pos:pos + n]))
        pos += n
    out.append(list(seq[pos:]))
    return out
