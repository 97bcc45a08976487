"""Higher-order primitives: those whose rules need the transforms, so they sit above
`transforms/` (first-order primitives in `primitives/` sit below it).

- structured control flow: `branching.py` (cond, switch), `while_loops.py` (while_loop,
  and reverse mode through it with a tape), `scans.py` (scan, fori_loop, map), on the
  helpers of `subjaxpr.py`;
- `custom_derivatives.py`: custom_jvp, custom_vjp;
- `checkpointing.py`: checkpoint / remat.

`fungrad.lax` re-exports the control flow (`fungrad.lax.cond`), as JAX does.

Structured control flow: `cond`, `switch`, `while_loop`, `fori_loop`, `scan`, `map`.

Each user function (a branch, a loop body) is traced once into a sub-jaxpr that
is stored as an equation parameter (a `ClosedJaxpr` without constants).  Values
the function closes over (arrays, or tracers of the enclosing trace) become
leading inputs of the sub-jaxpr and explicit operands of the equation, so the
enclosing trace sees the dependency and derivatives flow to them:

    >>> print(make_jaxpr(lambda x: fori_loop(0, 3, lambda i, a: a * x, 1.))(2.))
    { lambda ; a:f64[] . let
        b:i64[] c:f64[] = scan[jaxpr={ { lambda ; a:f64[] b:i64[] c:f64[] . let
          d:i64[] = add b 1:i64[] e:f64[] = mul c a in (d e) } } num_consts=1
          num_carry=2 length=3 reverse=False] a 0:i64[] 1.0:f64[]
      in (c) }

Three primitives carry it: `cond_p` (switch over branch jaxprs), `while_p` and
`scan_p`; `fori_loop` lowers to `scan_p` when its trip count is a Python int and
to `while_p` otherwise, `map` to `scan_p`.  Their `impl`s are real loops over
`interpreter.eval_jaxpr` of the body on NumPy arrays (nothing is unrolled).

Rules are written with these same functions: the jvp of a loop is a loop over
the body's jvp, the vjp of `scan` is a forward scan that stacks the carries and
a reverse scan of the body's vjp, so derivatives are differentiable again.
Reverse mode through `while_loop` (which JAX refuses) records a tape:
`while_tape_p` runs the loop once and keeps the carry each trip started from,
`while_tape_vjp_p` runs the body's vjp backwards over it (O(n) body evaluations,
O(n) carries of memory).  Batching the backward pass records a fresh tape of the
batched loop; differentiating it again (grad of grad) uses a reference that
recomputes each step's carry from the initial one (O(n^2) body evaluations,
every shape static), so all transforms compose.
"""
from __future__ import annotations

from . import branching, checkpointing, custom_derivatives, scans, subjaxpr, while_loops
from .branching import cond, cond_p, switch
from .checkpointing import checkpoint, checkpoint_p, checkpoint_policies, remat
from .custom_derivatives import custom_jvp, custom_vjp
from .scans import fori_loop, map, scan, scan_p
from .while_loops import while_loop, while_p, while_tape_p, while_tape_vjp_p

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map", "custom_jvp",
           "custom_vjp", "checkpoint", "remat", "checkpoint_policies", "cond_p", "while_p",
           "scan_p", "while_tape_p", "while_tape_vjp_p", "checkpoint_p"]
