"""`while_loop`: the `while` primitive, and reverse mode through it with a tape
(`while_tape`, `while_tape_vjp`)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..caches import new_cache
from ..core import ClosedJaxpr, Jaxpr, Primitive, ShapedArray, nondifferentiable
from ..errors import FungradTypeError, describe_function
from ..interpreter import eval_concrete
from ..primitives._static import static_callable
from ..primitives.base import bdim_to_front, broadcast_in_dim, convert_element_type, reduce_sum
from ..primitives.elementwise import add, gt, lt, select, sub
from ..pytree import PyTreeDef, tree_flatten
from ..tracing import aval_of
from ..transforms.ad import vjp_eval, vjp_jaxpr
from ..transforms.jvp import jvp_eval
from ..transforms.simplify import dce_jaxpr
from ..transforms.util import Zero, build_jaxpr, instantiate
from ..transforms.vmap import vmap_jaxpr
from .subjaxpr import _Traced, _as_operand, _closed, _inline, _is_float_aval, _split, _trace_fun, _types, _where, _zeros


# ---------------------------------------------------------------------------
# while_p: while cond(carry): carry = body(carry)
# ---------------------------------------------------------------------------

while_p = Primitive("while", kind="control", multiple_results=True)


def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    while bool(eval_concrete(cond_jaxpr.jaxpr, cond_consts + carry)[0]):
        carry = eval_concrete(body_jaxpr.jaxpr, body_consts + carry)
    return tuple(carry)


def _while_shape(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(avals, cond_nconsts, body_nconsts)
    if list(cond_jaxpr.in_avals) != cond_consts + carry:
        raise FungradTypeError(f"while: cond_fun takes {_types(cond_jaxpr.in_avals)}, "
                               f"given {_types(cond_consts + carry)}")
    if list(body_jaxpr.in_avals) != body_consts + carry:
        raise FungradTypeError(f"while: body_fun takes {_types(body_jaxpr.in_avals)}, "
                               f"given {_types(body_consts + carry)}")
    if list(cond_jaxpr.out_avals) != [ShapedArray((), np.bool_)]:
        raise FungradTypeError(f"while: cond_fun must return bool[], got "
                               f"{_types(cond_jaxpr.out_avals)}")
    if list(body_jaxpr.out_avals) != carry:
        raise FungradTypeError(f"while: body_fun returns {_types(body_jaxpr.out_avals)}, "
                               f"the carry is {_types(carry)}")
    return tuple(carry)


# d while(c) = while over (carry, tangent carry) of the body's jvp
def _while_jvp(*args, out, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    half = len(args) // 2
    _, t_body_consts, t_init = _split(args[:half], cond_nconsts, body_nconsts)
    cond_consts, body_consts, init = _split(args[half:], cond_nconsts, body_nconsts)
    t_consts = [t if _is_float_aval(aval_of(x)) else Zero(aval_of(x))
                for t, x in zip(t_body_consts, body_consts, strict=True)]
    floats = [_is_float_aval(aval_of(x)) for x in init]

    def cond_fun(state):
        carry, _ = state
        return _inline(cond_jaxpr.jaxpr, cond_consts + carry)[0]

    def body_fun(state):
        carry, t_carry = state
        it = iter(t_carry)
        ts = [next(it) if f else Zero(aval_of(x)) for x, f in zip(carry, floats)]
        new, t_new = jvp_eval(body_jaxpr.jaxpr, (), body_consts + carry, t_consts + ts)
        return list(new), [t for t, f in zip(t_new, floats, strict=True) if f]

    t0 = [t for t, f in zip(t_init, floats, strict=True) if f]
    _, t_out = while_loop(cond_fun, body_fun, (list(init), t0))
    it = iter(t_out)
    return tuple(next(it) if f else None for f in floats)


# Reference reverse mode (what the taped rules below must agree with, and how
# they are differentiated again): count the trips, then for k = n-1 .. 0
# recompute carry_k from the initial carry and pull the cotangent back through one
# body step.  Built only from while_p and elementwise primitives, so it composes
# with every transform (O(n^2) body evaluations, O(1) memory).
def _while_vjp_recompute(ct_float, cond_consts, body_consts, init, *, cond_jaxpr, body_jaxpr):
    """(cotangents of the float carries) -> [cts of the float body consts] +
    [cts of the float initial carries]."""
    init = list(init)
    floats = [_is_float_aval(aval_of(x)) for x in init]
    const_floats = [_is_float_aval(aval_of(c)) for c in body_consts]
    wrt = const_floats + floats

    def step(carry):
        return _inline(body_jaxpr.jaxpr, list(body_consts) + list(carry))

    def count_cond(state):
        _, carry = state
        return _inline(cond_jaxpr.jaxpr, list(cond_consts) + carry)[0]

    def count_body(state):
        k, carry = state
        return add(k, np.int64(1)), step(carry)

    trips, _ = while_loop(count_cond, count_body, (np.int64(0), init))

    def carry_at(k):
        """The carry after k trips, recomputed from the initial one."""
        def c(state):
            return lt(state[0], k)

        def b(state):
            i, carry = state
            return add(i, np.int64(1)), step(carry)
        return while_loop(c, b, (np.int64(0), init))[1]

    def back_cond(state):
        return gt(state[0], np.int64(0))

    def back_body(state):
        k, ct_carry, ct_consts = state
        k = sub(k, np.int64(1))
        carry = carry_at(k)
        it = iter(ct_carry)
        cts_out = [next(it) if f else Zero(aval_of(x)) for x, f in zip(init, floats)]
        _, cts_in = vjp_eval(body_jaxpr.jaxpr, (), list(body_consts) + carry, wrt, cts_out)
        cts_in = [instantiate(c) for c in cts_in]
        n_cf = sum(const_floats)
        step_consts, step_carry = cts_in[:n_cf], cts_in[n_cf:]
        ct_consts = [add(a, b) for a, b in zip(ct_consts, step_consts, strict=True)]
        return k, step_carry, ct_consts

    consts0 = [_zeros(aval_of(c)) for c, f in zip(body_consts, const_floats) if f]
    _, ct_init, ct_consts = while_loop(back_cond, back_body, (trips, list(ct_float), consts0))
    return list(ct_consts) + list(ct_init)


def _masked_loop(axis_size, args, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts,
                 body_nconsts):
    """The batched loop as (operands, while params): every carry batched at 0, run
    while any example is active; finished examples keep their carry."""
    cond_consts, body_consts, init = _split(args, cond_nconsts, body_nconsts)
    cc_dims, bc_dims, init_dims = _split(dims, cond_nconsts, body_nconsts)
    nc = len(init)
    init = [bdim_to_front(axis_size, x, d) for x, d in zip(init, init_dims, strict=True)]
    cond_b = vmap_jaxpr(cond_jaxpr.jaxpr, axis_size, cc_dims + [0] * nc, [0])
    body_b = vmap_jaxpr(body_jaxpr.jaxpr, axis_size, bc_dims + [0] * nc, [0] * nc)

    def active(carry):
        return _inline(cond_b, cond_consts + list(carry))[0]

    def any_active(carry):
        count = reduce_sum(convert_element_type(active(carry), np.int64), (0,))
        return gt(count, np.int64(0))

    def body_fun(carry):
        pred = active(carry)
        new = _inline(body_b, body_consts + list(carry))
        return [select(broadcast_in_dim(pred, aval_of(o).shape, (0,)), n, o)
                for n, o in zip(new, carry, strict=True)]

    cond_t, body_t = _trace_loop(any_active, body_fun, [aval_of(x) for x in init])
    params = dict(cond_jaxpr=_closed(cond_t.jaxpr), body_jaxpr=_closed(body_t.jaxpr),
                  cond_nconsts=len(cond_t.consts), body_nconsts=len(body_t.consts))
    return list(cond_t.consts) + list(body_t.consts) + init, params


def _while_vmap(axis_size, args, dims, **params):
    operands, batched = _masked_loop(axis_size, args, dims, **params)
    n_carry = len(args) - params["cond_nconsts"] - params["body_nconsts"]
    return list(while_p.bind(*operands, **batched)), [0] * n_carry


# reverse mode with a tape: one forward loop records every step's input carry,
# then the body's vjp runs backwards over the tape (O(n) body evaluations)
def _while_vjp(ct, *args, out, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    params = dict(cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr, cond_nconsts=cond_nconsts,
                  body_nconsts=body_nconsts)
    _, body_consts, init = _split(args, cond_nconsts, body_nconsts)
    floats = [_is_float_aval(aval_of(x)) for x in init]
    const_floats = [_is_float_aval(aval_of(c)) for c in body_consts]
    tape = while_tape_p.bind(*args, **params)
    ct_float = [c for c, f in zip(ct, floats, strict=True) if f]
    cts = iter(while_tape_vjp_p.bind(*args, tape, *ct_float, **params))
    return ((None,) * cond_nconsts + tuple(next(cts) if f else None for f in const_floats)
            + tuple(next(cts) if f else None for f in floats))


while_p.def_impl(_while_impl)
while_p.def_shape(_while_shape)
while_p.def_jvp(_while_jvp)
while_p.def_vjp(_while_vjp)
while_p.def_vmap(_while_vmap)


def _while_lower(gen, inputs, outputs, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """A kernel `while True:` loop that evaluates the cond sub-jaxpr and breaks."""
    ncc, nbc = cond_nconsts, body_nconsts
    cc, bc = inputs[:ncc], inputs[ncc:ncc + nbc]
    carry = inputs[ncc + nbc:]
    u = gen.uid()
    lines = gen.lines
    cvars = [f"_k{u}_{k}" for k in range(len(carry))]
    for c, x in zip(cvars, carry, strict=True):
        lines.append(f"    {c} = {gen.own(gen.name(x), x.aval, False)}")
    c_lines, (pred,), _ = gen.sub(cond_jaxpr, [gen.name(x) for x in cc] + cvars)
    b_lines, outs, fresh = gen.sub(body_jaxpr, [gen.name(x) for x in bc] + cvars)
    lines.append("    while True:")
    gen.emit_sub(c_lines, 1)
    lines.append(f"        if not {pred}:")
    lines.append("            break")
    gen.emit_sub(b_lines, 1)
    for c, o, x, f in zip(cvars, outs, carry, fresh, strict=True):
        lines.append(f"        {c} = {gen.own(o, x.aval, f)}")
    for c, o in zip(cvars, outputs, strict=True):
        lines.append(f"    {gen.name(o)} = {c}")
    gen.fresh.update(o for o in outputs if o.aval.shape != ())


while_p.def_lower(_while_lower)


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """`val = init_val; while cond_fun(val): val = body_fun(val); return val`.

    The carry `val` is a pytree of arrays; `body_fun` must return the same structure,
    shapes and dtypes, and `cond_fun` a boolean scalar.  Unlike JAX, reverse-mode
    derivatives work: the forward pass records each trip's carry on a tape and the
    backward pass walks it back (O(n) body evaluations and carries of memory).

    >>> while_loop(lambda x: x < 10, lambda x: x * 2, 1.0)    # 16.0
    """
    static_callable(cond_fun, "cond_fun")
    static_callable(body_fun, "body_fun")
    return _while_loop(cond_fun, body_fun, init_val, _where())


def _while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any, where: str,
                context: tuple | None = None) -> Any:
    leaves, tree = tree_flatten(init_val)
    leaves = [_as_operand(x) for x in leaves]
    avals = [aval_of(x) for x in leaves]
    cond_t, body_t = _trace_loop(cond_fun, body_fun, avals, tree, where, context)
    outs = while_p.bind(*cond_t.consts, *body_t.consts, *leaves,
                        cond_jaxpr=_closed(cond_t.jaxpr), body_jaxpr=_closed(body_t.jaxpr),
                        cond_nconsts=len(cond_t.consts), body_nconsts=len(body_t.consts))
    return tree.unflatten(outs)


def _trace_loop(cond_fun: Callable, body_fun: Callable, avals: Sequence[ShapedArray],
                tree: PyTreeDef | None = None, where: str = "",
                context: tuple | None = None) -> tuple[_Traced, _Traced]:
    """Trace a while loop's cond_fun(val) and body_fun(val) on the carry's types."""
    if tree is None:
        tree = tree_flatten(list(range(len(avals))))[1]
    carry_tree = _tuple_tree(tree)
    cond_t = _trace_fun(cond_fun, carry_tree, avals)
    if cond_t.out_tree.node_type is not None or cond_t.out_avals != [ShapedArray((), np.bool_)]:
        raise FungradTypeError(
            f"while_loop at {where}: cond_fun ({describe_function(cond_fun)}) must return a "
            f"boolean scalar, but it returned {_types(cond_t.out_avals)}.\n"
            "  Compare with <, == ... and reduce arrays with .any() or .all().")
    body_t = _trace_fun(body_fun, carry_tree, avals, out_dtypes=[a.dtype for a in avals])
    api, user_fun, pick = context or ("while_loop", body_fun, None)
    _check_carry(api, where, user_fun, "body_fun", tree, avals, body_t.out_tree,
                 body_t.out_avals, pick)
    return cond_t, body_t


def _tuple_tree(tree: PyTreeDef) -> PyTreeDef:
    """The tree of the 1-tuple `(val,)`, so the function is called as fun(val)."""
    return tree_flatten((tree.unflatten([0] * tree.num_leaves),))[1]


def _check_carry(api: str, where: str, fun: Callable, role: str, tree: PyTreeDef, avals,
                 out_tree: PyTreeDef, out_avals, pick: int | None = None) -> None:
    """The loop body must return the carry's type; `pick` names the element of a
    tuple carry that holds the user's value (fori_loop adds its counters)."""
    if out_tree == tree and list(out_avals) == list(avals):
        return
    if pick is not None and out_tree.node_type is tuple and len(out_tree.children) > pick:
        tree, out_tree = tree.children[pick], out_tree.children[pick]
        avals, out_avals = avals[pick:], out_avals[pick:]
    raise FungradTypeError(
        f"{api} at {where}: {role} ({describe_function(fun)}) must return the carry's "
        f"structure and types {tree} {_types(avals)}, but it returned {out_tree} "
        f"{_types(out_avals)}.\n  Keep the carry's shapes and dtypes fixed across "
        "iterations (e.g. start from 0.0 rather than 0 for a float accumulator).")


# ---------------------------------------------------------------------------
# while_tape_p / while_tape_vjp_p: reverse mode of while_p
# ---------------------------------------------------------------------------
# The tape is an opaque value (a 0-d object array holding the list of the carries
# each trip started from); nothing but `while_tape_vjp_p` reads it.  Transforms
# of the backward pass (higher derivatives, batching) do not read the tape: they
# use `_while_vjp_recompute`, which computes the same cotangents from the loop's
# inputs with composable primitives.

TAPE_AVAL = ShapedArray((), np.dtype(object))

while_tape_p = Primitive("while_tape", kind="control")


def _while_tape_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    steps = []
    while bool(eval_concrete(cond_jaxpr.jaxpr, cond_consts + carry)[0]):
        steps.append(carry)
        carry = eval_concrete(body_jaxpr.jaxpr, body_consts + carry)
    tape = np.empty((), dtype=object)
    tape[()] = steps
    return tape


def _while_tape_shape(*avals, **params):
    _while_shape(*avals, **params)
    return TAPE_AVAL


def _while_tape_vmap(axis_size, args, dims, **params):
    operands, batched = _masked_loop(axis_size, args, dims, **params)
    return while_tape_p.bind(*operands, **batched), None


while_tape_p.def_impl(_while_tape_impl)
while_tape_p.def_shape(_while_tape_shape)
# the tape is not differentiable (its dtype is object)
while_tape_p.def_jvp(nondifferentiable)
while_tape_p.def_vjp(nondifferentiable)
while_tape_p.def_vmap(_while_tape_vmap)

while_tape_vjp_p = Primitive("while_tape_vjp", kind="control", multiple_results=True)
_BODY_VJP_CACHE = new_cache("hop.while_body_vjp", 256)


def _split_tape_vjp(args, cond_nconsts, body_nconsts, body_jaxpr):
    """(cond consts, body consts, init, tape, float carry cotangents)."""
    n_carry = len(body_jaxpr.out_avals)
    cc, bc, init, rest = _split(args, cond_nconsts, body_nconsts, n_carry)
    return cc, bc, init, rest[0], rest[1:]


def _body_vjp_jaxpr(body_jaxpr: ClosedJaxpr, n_consts: int) -> Jaxpr:
    """(body consts, carry, carry cts) -> (cts of float consts, cts of float carries)."""
    key = id(body_jaxpr.jaxpr)
    hit = _BODY_VJP_CACHE.get(key)
    if hit is not None and hit[0] is body_jaxpr.jaxpr:
        return hit[1]
    jaxpr = body_jaxpr.jaxpr
    wrt = [_is_float_aval(a) for a in jaxpr.in_avals]
    joint = vjp_jaxpr(jaxpr, wrt)
    n_out = len(jaxpr.outvars)
    result = dce_jaxpr(Jaxpr(joint.constvars, joint.invars, joint.eqns, joint.outvars[n_out:]))
    _BODY_VJP_CACHE.put(key, (jaxpr, result))
    return result


def _while_tape_vjp_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    _, body_consts, init, tape, ct_float = _split_tape_vjp(args, cond_nconsts, body_nconsts,
                                                           body_jaxpr)
    vjp_body = _body_vjp_jaxpr(body_jaxpr, body_nconsts)
    floats = [_is_float_aval(aval_of(x)) for x in init]
    const_floats = [_is_float_aval(aval_of(c)) for c in body_consts]
    n_cf = sum(const_floats)
    ct_consts = [np.zeros(np.shape(c), aval_of(c).dtype)
                 for c, f in zip(body_consts, const_floats) if f]
    ct_carry = list(ct_float)
    for carry in reversed(tape[()]):
        it = iter(ct_carry)
        cts_out = [next(it) if f else np.zeros(np.shape(x), aval_of(x).dtype)
                   for x, f in zip(carry, floats)]
        cts_in = eval_concrete(vjp_body, list(body_consts) + list(carry) + cts_out)
        ct_consts = [a + b for a, b in zip(ct_consts, cts_in[:n_cf], strict=True)]
        ct_carry = cts_in[n_cf:]
    return tuple(ct_consts) + tuple(ct_carry)


def _while_tape_vjp_shape(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc, init, tape, ct_float = _split_tape_vjp(avals, cond_nconsts, body_nconsts,
                                                   body_jaxpr)
    _while_shape(*cc, *bc, *init, cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                 cond_nconsts=cond_nconsts, body_nconsts=body_nconsts)
    float_init = [a for a in init if _is_float_aval(a)]
    if tape != TAPE_AVAL or list(ct_float) != float_init:
        raise FungradTypeError(f"while_tape_vjp: expected a tape and cotangents "
                               f"{_types(float_init)}, got {tape} and {_types(ct_float)}")
    return tuple(a for a in bc if _is_float_aval(a)) + tuple(float_init)


def _tape_free(args, params):
    """The inputs without the tape, and a function computing the same cotangents
    from them with composable primitives (`_while_vjp_recompute`)."""
    cc, bc, init, _, ct_float = _split_tape_vjp(args, params["cond_nconsts"],
                                                params["body_nconsts"], params["body_jaxpr"])

    def reference(*xs):
        cc_, bc_, init_, ct_ = _split(xs, len(cc), len(bc), len(init))
        return _while_vjp_recompute(ct_, cc_, bc_, init_, cond_jaxpr=params["cond_jaxpr"],
                                    body_jaxpr=params["body_jaxpr"])
    return cc + bc + init + ct_float, reference


def _reference_jaxpr(inputs, reference) -> Jaxpr:
    return build_jaxpr(reference, [], [aval_of(x) for x in inputs])


# derivatives of the backward pass: those of the recomputing reference
def _while_tape_vjp_jvp(*args, out, **params):
    half = len(args) // 2
    xs, reference = _tape_free(args[half:], params)
    ts, _ = _tape_free(args[:half], params)
    ts = [t if _is_float_aval(aval_of(x)) else Zero(aval_of(x)) for t, x in zip(ts, xs)]
    _, t_out = jvp_eval(_reference_jaxpr(xs, reference), (), xs, ts)
    return tuple(t_out)


def _while_tape_vjp_vjp(ct, *args, out, **params):
    xs, reference = _tape_free(args, params)
    wrt = [_is_float_aval(aval_of(x)) for x in xs]
    _, cts_in = vjp_eval(_reference_jaxpr(xs, reference), (), xs, wrt, list(ct))
    it = iter(instantiate(c) for c in cts_in)
    per_input = [next(it) if w else None for w in wrt]
    n_loop = params["cond_nconsts"] + params["body_nconsts"] + len(params["body_jaxpr"].out_avals)
    return tuple(per_input[:n_loop]) + (None,) + tuple(per_input[n_loop:])


# batched: every float body constant and carry is batched (each example gets its own
# cotangents), the masked batched loop records a fresh tape
def _while_tape_vjp_vmap(axis_size, args, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts,
                         body_nconsts):
    params = dict(cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr, cond_nconsts=cond_nconsts,
                  body_nconsts=body_nconsts)
    cc, bc, init, _, ct_float = _split_tape_vjp(args, cond_nconsts, body_nconsts, body_jaxpr)
    cc_d, bc_d, init_d, _, ct_d = _split_tape_vjp(dims, cond_nconsts, body_nconsts,
                                                  body_jaxpr)
    const_floats = [_is_float_aval(aval_of(c)) for c in bc]
    bc = [bdim_to_front(axis_size, c, d) if f else c
          for c, d, f in zip(bc, bc_d, const_floats, strict=True)]
    bc_d = [0 if f else d for d, f in zip(bc_d, const_floats)]
    loop_args = list(cc) + bc + list(init)
    operands, batched = _masked_loop(axis_size, loop_args, list(cc_d) + bc_d + list(init_d),
                                     **params)
    tape = while_tape_p.bind(*operands, **batched)
    ct_b = [bdim_to_front(axis_size, c, d) for c, d in zip(ct_float, ct_d, strict=True)]
    outs = while_tape_vjp_p.bind(*operands, tape, *ct_b, **batched)
    # the batched loop's constants are the tracers it closed over: find ours among them
    n_cc = batched["cond_nconsts"]
    masked_bc = operands[n_cc:n_cc + batched["body_nconsts"]]
    masked_floats = [_is_float_aval(aval_of(c)) for c in masked_bc]
    ct_of = {}
    k = 0
    for c, f in zip(masked_bc, masked_floats):
        if f:
            ct_of.setdefault(id(c), outs[k])
            k += 1
    results = []
    for c, f in zip(bc, const_floats):
        if f:
            hit = ct_of.get(id(c))
            results.append(hit if hit is not None else _zeros(aval_of(c)))
    results.extend(outs[k:])
    return results, [0] * len(results)


while_tape_vjp_p.def_impl(_while_tape_vjp_impl)
while_tape_vjp_p.def_shape(_while_tape_vjp_shape)
while_tape_vjp_p.def_jvp(_while_tape_vjp_jvp)
while_tape_vjp_p.def_vjp(_while_tape_vjp_vjp)
while_tape_vjp_p.def_vmap(_while_tape_vjp_vmap)
