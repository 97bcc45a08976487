"""Simplification passes: pure Jaxpr -> Jaxpr functions.

Each pass preserves the meaning of the program on every input (the interpreter
gives the same outputs); `FUNGRAD_PRINT_PASSES=1` prints the jaxpr after each.
"""
from __future__ import annotations

import os

from ..core import Jaxpr, Var

__all__ = ["dce_jaxpr", "simplify_jaxpr"]


def dce_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Dead-code elimination: drop equations none of whose outputs is used.
    Keeps every input (the signature does not change)."""
    live: set = {v for v in jaxpr.outvars if isinstance(v, Var)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(o in live for o in eqn.outputs):
            kept.append(eqn)
            live.update(x for x in eqn.inputs if isinstance(x, Var))
    if len(kept) == len(jaxpr.eqns):
        return jaxpr
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, kept, jaxpr.outvars)


PASSES = [("dce", dce_jaxpr)]


def simplify_jaxpr(jaxpr: Jaxpr) -> Jaxpr:
    """Run every pass in PASSES in order."""
    show = os.environ.get("FUNGRAD_PRINT_PASSES") == "1"
    for name, fn in PASSES:
        jaxpr = fn(jaxpr)
        if show:
            print(f"--- after {name} ({len(jaxpr.eqns)} equations)\n{jaxpr}")
    return jaxpr
