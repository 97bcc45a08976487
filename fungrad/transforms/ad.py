"""Reverse mode: `vjp_jaxpr`, partial evaluation into forward and backward
jaxprs, and the differentiation API (grad, value_and_grad, vjp, jvp, linearize,
jacfwd, jacrev, jacobian, hessian)."""
from __future__ import annotations

from typing import Sequence


from ..core import Jaxpr, ShapedArray, Var
from ..errors import FungradValueError
from ..primitives.elementwise import add
from ..tracing import aval_of
from .simplify import dce_jaxpr
from .util import Zero, build_jaxpr, instantiate, read_atom, rebinding

__all__ = ["vjp_eval", "vjp_jaxpr", "grad_jaxpr", "partial_eval_jaxpr", "nonlinear_use"]


def _linear_use(prim, flags: list, strict: bool) -> bool:
    """Is `prim` linear in its input-dependent operands (`flags`), by its declared
    `linear_in`?  Undeclared elementwise primitives are nonlinear; other undeclared
    primitives are trusted, unless `strict`."""
    if prim.linear_in is None:
        return not strict and prim.kind != "elementwise"
    if prim.linear_in == "all":
        return True
    if prim.linear_in == "each":     # a product: one dependent factor at most
        return sum(flags) <= 1
    return all(i in prim.linear_in for i, f in enumerate(flags) if f)


def nonlinear_use(jaxpr: Jaxpr, dependent: Sequence[Var], strict: bool = False):
    """The first equation that is visibly nonlinear in the values that depend on
    `dependent` (a known nonlinear primitive, or a product of two dependent values),
    or None.  `strict`: primitives that declare no linearity count as nonlinear."""
    dep: set = set(dependent)
    for eqn in jaxpr.eqns:
        flags = [type(a) is Var and a in dep for a in eqn.inputs]
        if not any(flags):
            continue
        if not _linear_use(eqn.prim, flags, strict):
            return eqn
        dep.update(eqn.outputs)
    return None


def _is_float(aval: ShapedArray) -> bool:
    return aval.dtype.kind in "fc"


# ---------------------------------------------------------------------------
# the backward interpreter
# ---------------------------------------------------------------------------

def vjp_eval(jaxpr: Jaxpr, consts: Sequence, primals: Sequence, wrt: Sequence[bool],
             cts_out: Sequence) -> tuple[list, list]:
    """Evaluate the program forward, then pull `cts_out` back through it.

    Returns (outputs, cotangents of the inputs marked in `wrt`); cotangents may be
    `Zero` where nothing flows."""
    primal: dict = {}
    active: set = set()        # vars that depend on a differentiated input
    for v, x in zip(jaxpr.constvars, consts, strict=True):
        primal[v] = x
    for v, x, w in zip(jaxpr.invars, primals, wrt, strict=True):
        primal[v] = x
        if w and _is_float(v.aval):
            active.add(v)

    with rebinding() as rb:
        for eqn in jaxpr.eqns:
            rb.at(eqn)
            prim = eqn.prim
            outs = prim.bind(*[read_atom(primal, a) for a in eqn.inputs], **eqn.params)
            for v, o in zip(eqn.outputs, outs if prim.multiple_results else (outs,), strict=True):
                primal[v] = o
            if any(type(a) is Var and a in active for a in eqn.inputs):
                active.update(v for v in eqn.outputs if _is_float(v.aval))

        ct_env: dict = {}

        def accumulate(v, ct, prim_name):
            if aval_of(ct) != v.aval:
                raise AssertionError(
                    f"vjp rule of '{prim_name}' returned a {aval_of(ct)} cotangent for "
                    f"a {v.aval} input")
            prev = ct_env.get(v)
            ct_env[v] = ct if prev is None else add(prev, ct)

        for v, ct in zip(jaxpr.outvars, cts_out, strict=True):
            if type(v) is Var and v in active and not isinstance(ct, Zero):
                accumulate(v, ct, "output")

        for eqn in reversed(jaxpr.eqns):
            prim = eqn.prim
            if prim.multiple_results:
                cts = [ct_env.pop(v, None) for v in eqn.outputs]
                if all(c is None for c in cts):
                    continue
                ct = tuple(instantiate(Zero(v.aval)) if c is None else c
                           for v, c in zip(eqn.outputs, cts))
                out = tuple(primal[v] for v in eqn.outputs)
            else:
                ct = ct_env.pop(eqn.outputs[0], None)
                if ct is None:
                    continue
                out = primal[eqn.outputs[0]]
            if not any(type(a) is Var and a in active for a in eqn.inputs):
                continue
            rb.at(eqn)
            if prim.vjp_nondifferentiable:
                continue
            rule = prim.rule("vjp")
            xs = [read_atom(primal, a) for a in eqn.inputs]
            if prim.vjp_wants_active:  # call primitives skip inactive inputs
                active_in = tuple(type(a) is Var and a in active for a in eqn.inputs)
                cts_in = rule(ct, *xs, out=out, active=active_in, **eqn.params)
            else:
                cts_in = rule(ct, *xs, out=out, **eqn.params)
            if cts_in is None:
                continue
            for a, c in zip(eqn.inputs, cts_in, strict=True):
                if c is not None and type(a) is Var and a in active and not isinstance(c, Zero):
                    accumulate(a, c, prim.name)

    ys = [read_atom(primal, a) for a in jaxpr.outvars]
    cts_in = [ct_env.get(v, Zero(v.aval)) for v, w in zip(jaxpr.invars, wrt) if w]
    return ys, cts_in


def vjp_jaxpr(jaxpr: Jaxpr, wrt: Sequence[bool], n_main: int | None = None) -> Jaxpr:
    """The joint program (consts; xs, cts_out[:n_main]) -> (ys, cts_in[wrt]).

    Outputs past `n_main` (aux outputs; default: none) get no cotangent input."""
    n, k = len(jaxpr.invars), len(jaxpr.constvars)
    out_avals = [v.aval for v in jaxpr.outvars]
    n_main = len(out_avals) if n_main is None else n_main

    def run(*args):
        consts, xs, cts = args[:k], args[k:k + n], list(args[k + n:])
        cts = cts + [Zero(a) for a in out_avals[n_main:]]
        ys, cts_in = vjp_eval(jaxpr, consts, xs, wrt, cts)
        return list(ys) + [instantiate(c) for c in cts_in]

    return build_jaxpr(run, [v.aval for v in jaxpr.constvars],
                       [v.aval for v in jaxpr.invars] + out_avals[:n_main])


def grad_jaxpr(jaxpr: Jaxpr, wrt: Sequence[bool], keep_value: bool = True) -> Jaxpr:
    """(consts; xs) -> (ys, d ys[0] / d xs[wrt]): the cotangent of the first output
    is 1, the other outputs (aux) get none.  keep_value=False drops ys[0] from the
    outputs (what `grad` needs), so its computation can be eliminated."""
    n, k = len(jaxpr.invars), len(jaxpr.constvars)
    out_avals = [v.aval for v in jaxpr.outvars]

    def run(*args):
        consts, xs = args[:k], args[k:]
        one = out_avals[0].dtype.type(1)
        cts = [one] + [Zero(a) for a in out_avals[1:]]
        ys, cts_in = vjp_eval(jaxpr, consts, xs, wrt, cts)
        return list(ys if keep_value else ys[1:]) + [instantiate(c) for c in cts_in]

    return build_jaxpr(run, [v.aval for v in jaxpr.constvars], [v.aval for v in jaxpr.invars])


# ---------------------------------------------------------------------------
# partial evaluation: split a program into what is known now and what later
# ---------------------------------------------------------------------------

def partial_eval_jaxpr(jaxpr: Jaxpr, unknowns: Sequence[bool],
                       out_unknowns: Sequence[bool]) -> tuple[Jaxpr, Jaxpr, int]:
    """Split `(consts; xs) -> outs` by which inputs are known.

    Returns (known, unknown, n_residuals):
      known:   (consts; xs_known) -> (outs_known..., residuals...)
      unknown: (; residuals..., xs_unknown) -> outs_unknown
    Equations whose inputs are all known run in `known`; `out_unknowns` says which
    outputs the caller wants from `unknown` (a known value there becomes a residual)."""
    unknown_vars: set = {v for v, u in zip(jaxpr.invars, unknowns, strict=True) if u}
    known_eqns, unknown_eqns = [], []
    for eqn in jaxpr.eqns:
        if any(type(a) is Var and a in unknown_vars for a in eqn.inputs):
            unknown_eqns.append(eqn)
            unknown_vars.update(eqn.outputs)
        else:
            known_eqns.append(eqn)
    # residuals: known vars read by the unknown side
    defined_unknown = set(v for v, u in zip(jaxpr.invars, unknowns) if u)
    for eqn in unknown_eqns:
        defined_unknown.update(eqn.outputs)
    residuals: list = []
    seen: set = set()

    def need(a):
        if type(a) is Var and a not in defined_unknown and a not in seen:
            seen.add(a)
            residuals.append(a)

    for eqn in unknown_eqns:
        for a in eqn.inputs:
            need(a)
    for v, u in zip(jaxpr.outvars, out_unknowns, strict=True):
        if u:
            need(v)
    known_outs = [v for v, u in zip(jaxpr.outvars, out_unknowns) if not u]
    for v in known_outs:
        if type(v) is Var and v in defined_unknown:
            raise FungradValueError("partial_eval: an output marked known depends on an "
                                    "unknown input")
    known = dce_jaxpr(Jaxpr(jaxpr.constvars,
                            [v for v, u in zip(jaxpr.invars, unknowns) if not u],
                            known_eqns, known_outs + residuals))
    # the unknown side binds fresh copies of the residual vars as its inputs
    unknown = Jaxpr((), residuals + [v for v, u in zip(jaxpr.invars, unknowns) if u],
                    unknown_eqns, [v for v, u in zip(jaxpr.outvars, out_unknowns) if u])
    return known, dce_jaxpr(unknown), len(residuals)


# ---------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------
