"""Reverse mode: `vjp_jaxpr`, partial evaluation into forward and backward
jaxprs, and the differentiation API (grad, value_and_grad, vjp, jvp, linearize,
jacfwd, jacrev, jacobian, hessian)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core import Jaxpr, Literal, ShapedArray, Var
from ..errors import FungradTypeError, FungradValueError, describe_function
from ..pytree import tree_flatten, tree_map, tree_structure, tree_unflatten
from ..tracing import Tracer, aval_of, current_trace, trace_to_jaxpr
from . import api_util
from .jvp import jvp_eval, jvp_jaxpr
from .simplify import dce_jaxpr, simplify_jaxpr
from .util import Zero, build_jaxpr, instantiate, read_atom, rebinding

__all__ = ["vjp_eval", "vjp_jaxpr", "grad_jaxpr", "partial_eval_jaxpr", "grad",
           "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "jacobian",
           "hessian"]


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
            from ..lax.elementwise import add
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
            rule = prim.rule("vjp")
            if getattr(rule, "nondiff", False):
                continue
            xs = [read_atom(primal, a) for a in eqn.inputs]
            if getattr(rule, "wants_active", False):  # call primitives skip inactive inputs
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

def _check_float_inputs(where: str, fun: Callable, leaves: Sequence, wrt: Sequence[bool],
                        allow_int: bool, call: Any = None) -> None:
    for i, (x, w) in enumerate(zip(leaves, wrt)):
        if w and not _is_float(aval_of(x)) and not allow_int:
            raise FungradTypeError(
                f"{where}({describe_function(fun)}): differentiating with respect to "
                f"{_argument_name(fun, call, i)}, an input of dtype {aval_of(x).dtype} "
                f"({aval_of(x)}); only floating-point inputs can be differentiated.\n  Pass a "
                "float array (e.g. 2.0 instead of 2), or leave the argument out of argnums.")


def _argument_name(fun: Callable, call: Any, leaf_index: int) -> str:
    """`argument 1 ('n')` for the positional argument holding a flat leaf."""
    if call is None:
        return "an argument"
    for pos, (lo, hi) in enumerate(call.arg_slices):
        if lo <= leaf_index < hi:
            import inspect
            try:
                params = list(inspect.signature(fun).parameters)
                name = f" ({params[pos]!r})" if pos < len(params) else ""
            except (TypeError, ValueError):
                name = ""
            return f"argument {pos}{name}"
    return "an argument"


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   allow_int: bool = False) -> Callable:
    """Return a function computing `(fun(*args), gradient of fun w.r.t. args[argnums])`.

    `fun` must return a real scalar (or `(scalar, aux)` with `has_aux=True`).
    >>> value_and_grad(lambda x: x * x)(3.0)     # (9.0, 6.0)
    """
    return _value_and_grad(fun, argnums, has_aux, allow_int, keep_value=True)


def _value_and_grad(fun, argnums, has_aux, allow_int, keep_value):
    name = "value_and_grad" if keep_value else "grad"

    def value_and_grad_f(*args, **kwargs):
        call = api_util.prepare_call(name, fun, args, kwargs, argnums)
        _check_float_inputs(name, fun, call.leaves, call.wrt, allow_int, call)
        closed, out_tree = call.trace()
        api_util.check_scalar_output(name, fun, closed, out_tree, has_aux)
        derived = api_util.cached_rewrite(
            (name, tuple(call.wrt)), closed,
            lambda j: simplify_jaxpr(grad_jaxpr(j, call.wrt, keep_value)))
        outs = api_util.execute(derived, closed.consts, call.leaves)
        n_out = len(closed.out_avals) - (not keep_value)
        grads = call.unflatten_wrt(outs[n_out:])
        if not keep_value:
            value = (None, out_tree.children[1].unflatten(outs[:n_out])) if has_aux else None
        else:
            value = out_tree.unflatten(outs[:n_out])
        if has_aux:
            value, aux = value
            return (value, aux), grads
        return value, grads
    value_and_grad_f.__name__ = f"value_and_grad({getattr(fun, '__name__', 'fun')})"
    value_and_grad_f.__wrapped__ = fun
    return value_and_grad_f


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         allow_int: bool = False) -> Callable:
    """Return a function computing the gradient of scalar-valued `fun`.

    With `argnums` a tuple, the result is a tuple of gradients; each has the pytree
    structure of its argument.  `has_aux=True`: fun returns `(value, aux)` and the
    result is `(gradient, aux)`.
    >>> grad(lambda x: (x + 2) ** 2 + 3)(2.0)    # 8.0
    """
    vg = _value_and_grad(fun, argnums, has_aux, allow_int, keep_value=False)

    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        if has_aux:
            return g, value[1]
        return g
    grad_f.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    grad_f.__wrapped__ = fun
    return grad_f


class _Pullback:
    """The function returned by `vjp`: maps output cotangents to input cotangents,
    any number of times, without recomputing the forward pass."""

    def __init__(self, fun, bwd: Jaxpr, residuals: list, out_tree, out_avals, in_tree_of_args,
                 n_args):
        self._fun, self._bwd, self._residuals = fun, bwd, residuals
        self._out_tree, self._out_avals = out_tree, out_avals
        self._args_tree, self._n_args = in_tree_of_args, n_args

    def __call__(self, cotangent: Any) -> tuple:
        leaves, tree = tree_flatten(cotangent)
        if tree != self._out_tree:
            raise FungradTypeError(
                f"vjp({describe_function(self._fun)}): the cotangent has structure {tree}, "
                f"but the function's output has structure {self._out_tree}")
        cts = []
        for ct, aval in zip(leaves, self._out_avals):
            ct = api_util.as_value(ct)
            if aval_of(ct).shape != aval.shape:
                raise FungradValueError(
                    f"vjp({describe_function(self._fun)}): a cotangent of shape "
                    f"{aval_of(ct).shape} was given for an output of shape {aval.shape}; "
                    "it must have the output's shape (e.g. ones_like(out))")
            if aval_of(ct).dtype != aval.dtype:
                from ..lax import convert_element_type
                ct = convert_element_type(ct, aval.dtype)
            cts.append(ct)
        outs = api_util.execute(self._bwd, [], list(self._residuals) + cts)
        return self._args_tree.unflatten(outs)


def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """`(fun(*primals), pullback)`; `pullback(ct)` returns a tuple with one
    cotangent per primal.  Call the pullback again with another cotangent to get
    another vector-Jacobian product (the forward pass is not recomputed).
    >>> out, pullback = vjp(lambda x: (x + 1) ** 2, np.eye(2))
    >>> pullback(np.ones((2, 2)))
    """
    call = api_util.prepare_call("vjp", fun, primals, {}, tuple(range(len(primals))))
    _check_float_inputs("vjp", fun, call.leaves, call.wrt, False, call)
    closed, out_tree = call.trace()
    main_tree, n_main = out_tree, len(closed.out_avals)
    if has_aux:
        n_main = api_util.aux_split("vjp", fun, out_tree)
        main_tree = out_tree.children[0]
    j = closed.jaxpr
    n_in, n_out = len(j.invars), len(j.outvars)

    def build(jaxpr):
        main = Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
        joint = simplify_jaxpr(vjp_jaxpr(main, call.wrt, n_main))
        unknowns = [False] * n_in + [True] * n_main
        out_unknowns = [False] * n_out + [True] * sum(call.wrt)
        return partial_eval_jaxpr(joint, unknowns, out_unknowns)

    fwd, bwd, n_res = api_util.cached_rewrite(("vjp", tuple(call.wrt), n_main), closed, build)
    outs = api_util.execute(fwd, closed.consts, call.leaves)
    ys, residuals = outs[:n_out], outs[n_out:]
    out = out_tree.unflatten(ys)
    pullback = _Pullback(fun, bwd, residuals, main_tree, closed.out_avals[:n_main],
                         tree_structure(tuple(primals)), len(primals))
    if has_aux:
        return out[0], pullback, out[1]
    return out, pullback


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False):
    """`(fun(*primals), J(primals) @ tangents)`: a forward-mode directional derivative.
    >>> jvp(fnp.sin, (0.0,), (1.0,))     # (0.0, 1.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise FungradTypeError("jvp: primals and tangents must be tuples or lists, "
                               f"got {type(primals).__name__} and {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise FungradValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    call = api_util.prepare_call("jvp", fun, tuple(primals), {}, tuple(range(len(primals))))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if t_tree != tree_structure(tuple(primals)):
        raise FungradTypeError(f"jvp: tangents have structure {t_tree}, primals "
                               f"{tree_structure(tuple(primals))}")
    t_leaves = [api_util.as_value(t) for t in t_leaves]
    for x, t in zip(call.leaves, t_leaves):
        if aval_of(x).shape != aval_of(t).shape:
            raise FungradValueError(
                f"jvp({describe_function(fun)}): a tangent of shape {aval_of(t).shape} was "
                f"given for a primal of shape {aval_of(x).shape}")
    wrt = [_is_float(aval_of(x)) for x in call.leaves]
    closed, out_tree = call.trace()
    derived = api_util.cached_rewrite(("jvp", tuple(wrt)), closed,
                                      lambda j: simplify_jaxpr(jvp_jaxpr(j, wrt)))
    tangents_in = []
    for x, t, w in zip(call.leaves, t_leaves, wrt):
        if w:
            if aval_of(t).dtype != aval_of(x).dtype:
                from ..lax import convert_element_type
                t = convert_element_type(t, aval_of(x).dtype)
            tangents_in.append(t)
    outs = api_util.execute(derived, closed.consts, list(call.leaves) + tangents_in)
    n = len(closed.out_avals)
    ys, ts = out_tree.unflatten(outs[:n]), out_tree.unflatten(outs[n:])
    if has_aux:
        return ys[0], ts[0], ys[1]
    return ys, ts


def linearize(fun: Callable, *primals: Any):
    """`(fun(*primals), f_jvp)` where `f_jvp(*tangents)` evaluates the jvp at the
    primals without recomputing the forward pass."""
    call = api_util.prepare_call("linearize", fun, primals, {}, tuple(range(len(primals))))
    _check_float_inputs("linearize", fun, call.leaves, call.wrt, False, call)
    closed, out_tree = call.trace()
    n_in, n_out = len(call.leaves), len(closed.out_avals)

    def build(jaxpr):
        joint = simplify_jaxpr(jvp_jaxpr(jaxpr, call.wrt))
        return partial_eval_jaxpr(joint, [False] * n_in + [True] * sum(call.wrt),
                                  [False] * n_out + [True] * n_out)

    fwd, lin, n_res = api_util.cached_rewrite(("linearize", tuple(call.wrt)), closed, build)
    outs = api_util.execute(fwd, closed.consts, call.leaves)
    ys, residuals = outs[:n_out], outs[n_out:]
    primals_tree = tree_structure(tuple(primals))

    def f_jvp(*tangents):
        t_leaves, t_tree = tree_flatten(tuple(tangents))
        if t_tree != primals_tree:
            raise FungradTypeError(f"linearize: tangents have structure {t_tree}, primals "
                                   f"{primals_tree}")
        ts = [api_util.as_value(t) for t, w in zip(t_leaves, call.wrt) if w]
        return out_tree.unflatten(api_util.execute(lin, [], list(residuals) + ts))
    return out_tree.unflatten(ys), f_jvp


# ---------------------------------------------------------------------------
# jacobians and hessians (one batched jvp / vjp over the identity basis)
# ---------------------------------------------------------------------------

def _std_basis(avals: Sequence[ShapedArray]) -> tuple[list, int]:
    """The identity basis over the concatenated flat leaves: one block per leaf of
    shape (total,) + leaf.shape.  Built from `iota` so that simplification can see
    it is an identity (a diagonal), not an opaque constant."""
    from ..lax import convert_element_type, eq, iota, reshape
    from ..lax.elementwise import add
    total = sum(a.size for a in avals)
    blocks, start = [], 0
    for a in avals:
        rows = iota(np.int64, (total, a.size), 0)
        cols = iota(np.int64, (total, a.size), 1)
        if start:
            cols = add(cols, np.int64(start))
        block = convert_element_type(eq(rows, cols), a.dtype)
        blocks.append(reshape(block, (total,) + a.shape))
        start += a.size
    return blocks, total


def _staged(where: str, fun: Callable, argnums, body: Callable) -> Callable:
    """Run `body(call)` as one traced program: cached by structure, simplified as a
    whole (so the basis structure of a jacobian is visible), then executed.  Inside
    an enclosing trace the body simply runs (and is inlined)."""
    def staged(*args, **kwargs):
        call = api_util.prepare_call(where, fun, args, kwargs, argnums)
        _check_float_inputs(where, fun, call.leaves, call.wrt, False, call)
        if any(isinstance(x, Tracer) for x in call.leaves) or current_trace() is not None:
            return body(call)
        out_tree_box = []

        def flat_body(*leaves):
            out = body(call.with_leaves(leaves))
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        closed = trace_to_jaxpr(flat_body, [aval_of(x) for x in call.leaves],
                                sources=call.leaves)
        derived = api_util.cached_rewrite(
            (where, tuple(call.wrt)), closed,
            simplify_jaxpr)
        outs = api_util.execute(derived, closed.consts, call.leaves)
        return out_tree_box[0].unflatten(outs)
    staged.__name__ = f"{where}({getattr(fun, '__name__', 'fun')})"
    staged.__wrapped__ = fun
    return staged


def _batched_over_basis(fn: Callable, basis: list, total: int, chunk_size: int | None,
                        out_axes):
    """vmap(fn) over the basis rows, all at once or `chunk_size` rows at a time
    (bounding the memory of the batched intermediates); results concatenated."""
    from .. import numpy as fnp
    from .vmap import vmap
    batched = vmap(fn, out_axes=out_axes)
    if chunk_size is None or chunk_size >= total:
        return batched(*basis)
    if chunk_size < 1:
        raise FungradValueError(f"chunk_size must be a positive int, got {chunk_size}")
    pieces = [batched(*[b[lo:lo + chunk_size] for b in basis])
              for lo in range(0, total, chunk_size)]
    axes_leaves = out_axes if isinstance(out_axes, tuple) else (out_axes,)

    def join(*parts, axis):
        return parts[0] if axis is None else fnp.concatenate(parts, axis=axis)
    if not isinstance(out_axes, tuple):
        return tree_map(lambda *ps: join(*ps, axis=out_axes), *pieces)
    return tuple(tree_map(lambda *ps, a=a: join(*ps, axis=a), *[p[i] for p in pieces])
                 if a is not None else pieces[0][i] for i, a in enumerate(axes_leaves))


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           chunk_size: int | None = None) -> Callable:
    """The Jacobian of `fun` by forward mode: one batched jvp over the input basis.

    For each output leaf and argument leaf the block has shape out.shape + in.shape;
    with `argnums` a tuple each output leaf holds a tuple of blocks.  `chunk_size`
    pushes that many basis vectors at a time (less memory, more passes).
    >>> jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))    # [[2, 0], [0, 4]]
    """
    from .. import numpy as fnp

    def body(call):
        diff = [x for x, w in zip(call.leaves, call.wrt) if w]
        avals = [aval_of(x) for x in diff]
        basis, total = _std_basis(avals)

        def f_flat(*xs):
            return call.call_flat(call.merge(xs))

        def pushforward(*tangents):
            if has_aux:
                return jvp(f_flat, tuple(diff), tuple(tangents), has_aux=True)
            y, t = jvp(f_flat, tuple(diff), tuple(tangents))
            return y, t, None

        y, t_out, aux = _batched_over_basis(pushforward, basis, total, chunk_size,
                                            (None, 0, None))
        y_leaves, y_tree = tree_flatten(y)
        jac_leaves = []
        for yl, t in zip(y_leaves, tree_flatten(t_out)[0], strict=True):
            yshape = aval_of(yl).shape
            t = fnp.moveaxis(t, 0, -1)                      # out.shape + (total,)
            parts, start = [], 0
            for a in avals:
                parts.append(fnp.reshape(t[..., start:start + a.size], yshape + a.shape))
                start += a.size
            jac_leaves.append(call.unflatten_wrt(parts))
        result = y_tree.unflatten(jac_leaves)
        return (result, aux) if has_aux else result

    return _staged("jacfwd", fun, argnums, body)


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           chunk_size: int | None = None) -> Callable:
    """The Jacobian of `fun` by reverse mode: one batched vjp over the output basis
    (`chunk_size` basis vectors at a time if given).
    >>> jacrev(lambda x: fnp.stack([x[0] ** 2 + 3 * x[1], x[1] ** 2 + 2 * x[0]]))(
    ...     np.array([2.0, 3.0]))                            # [[4, 3], [2, 6]]
    """
    from .. import numpy as fnp

    def body(call):
        diff = [x for x, w in zip(call.leaves, call.wrt) if w]
        avals = [aval_of(x) for x in diff]

        def f_flat(*xs):
            return call.call_flat(call.merge(xs))
        if has_aux:
            y, pullback, aux = vjp(f_flat, *diff, has_aux=True)
        else:
            y, pullback = vjp(f_flat, *diff)
        y_leaves, y_tree = tree_flatten(y)
        y_avals = [aval_of(v) for v in y_leaves]
        basis, total = _std_basis(y_avals)
        cts = _batched_over_basis(lambda *b: pullback(y_tree.unflatten(b)), basis, total,
                                  chunk_size, 0)              # per input: (total,) + in
        jac_leaves, start = [], 0
        for ya in y_avals:
            parts = [fnp.reshape(c[start:start + ya.size], ya.shape + a.shape)
                     for c, a in zip(cts, avals)]
            jac_leaves.append(call.unflatten_wrt(parts))
            start += ya.size
        result = y_tree.unflatten(jac_leaves)
        return (result, aux) if has_aux else result

    return _staged("jacrev", fun, argnums, body)


jacobian = jacrev


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Hessian: `jacfwd(jacrev(fun))` (forward over reverse)."""
    return jacfwd(jacrev(fun, argnums, has_aux=has_aux), argnums, has_aux=has_aux)
