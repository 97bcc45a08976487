"""Pieces every transform shares: symbolic zeros and re-tracing a rewrite."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..core import ClosedJaxpr, Jaxpr, Literal, ShapedArray, Var
from ..primitives.base import full
from ..tracing import current_trace, trace_to_jaxpr

__all__ = ["Zero", "instantiate", "build_jaxpr", "read_atom", "rebinding", "dce_jaxpr"]


class Zero:
    """A symbolic zero tangent or cotangent: costs nothing until instantiated."""
    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Zero({self.aval})"


def instantiate(x: Any) -> Any:
    """A real array for a possibly symbolic zero."""
    if isinstance(x, Zero):
        return full(x.aval.shape, 0, x.aval.dtype)
    return x


def read_atom(env: dict, atom: Any) -> Any:
    return atom.val if type(atom) is Literal else env[atom]


def build_jaxpr(run: Callable[..., Sequence[Any]], const_avals: Sequence[ShapedArray],
                in_avals: Sequence[ShapedArray]) -> Jaxpr:
    """Trace `run(*consts, *args)` abstractly; the first len(const_avals) inputs
    become the constvars of the result."""
    closed: ClosedJaxpr = trace_to_jaxpr(run, list(const_avals) + list(in_avals))
    j = closed.jaxpr
    if j.constvars:
        raise AssertionError(
            "a rewrite captured array constants; rules must build arrays with fungrad "
            "operations (lax.full, lax.iota), not NumPy")
    k = len(const_avals)
    return Jaxpr(j.invars[:k], j.invars[k:], j.eqns, j.outvars)


class rebinding:
    """Within the block, equations bound into the current trace carry `eqn`'s
    source location (so derivative equations point at the user's line)."""
    __slots__ = ("trace", "saved")

    def __init__(self):
        self.trace = current_trace()
        self.saved = self.trace.source_info if self.trace is not None else None

    def at(self, eqn) -> None:
        if self.trace is not None:
            self.trace.source_info = eqn.source_info or self.saved

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.trace is not None:
            self.trace.source_info = self.saved


def dce_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Dead-code elimination: drop equations none of whose outputs is used.

    Preserves: the signature (every input is kept, used or not) and every output
    value; primitives are pure, so an unused equation has no effect, except those
    declared `effectful` (debug prints), which are always kept."""
    live: set = {v for v in jaxpr.outvars if isinstance(v, Var)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if eqn.prim.effectful or any(o in live for o in eqn.outputs):
            kept.append(eqn)
            live.update(x for x in eqn.inputs if isinstance(x, Var))
    if len(kept) == len(jaxpr.eqns):
        return jaxpr
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, kept, jaxpr.outvars)
