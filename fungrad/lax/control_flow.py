"""Structured control flow: `cond`, `switch`, `while_loop`, `fori_loop`, `scan`, `map`.

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

import builtins
from typing import Any, Callable, Sequence

import numpy as np

from .. import tracing
from ..core import ClosedJaxpr, Jaxpr, Primitive, ShapedArray, Var
from ..errors import FungradTypeError, FungradValueError, describe_function, format_location, \
    user_location
from ..pytree import PyTreeDef, tree_flatten
from ..interpreter import eval_concrete
from ..tracing import Tracer, aval_of, trace_to_jaxpr
from ._util import bdim_to_front, is_float, move_axis_to_front

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map",
           "cond_p", "while_p", "scan_p", "while_tape_p", "while_tape_vjp_p"]


# ---------------------------------------------------------------------------
# tracing user functions into sub-jaxprs
# ---------------------------------------------------------------------------

def _as_operand(x: Any) -> Any:
    """A pytree leaf as an operand: tracers stay, anything else becomes an ndarray."""
    if isinstance(x, Tracer):
        return x
    arr = np.asarray(x)
    if arr.dtype == object:
        raise FungradTypeError(
            f"a value of type {type(x).__name__} is not an array; loop carries and operands "
            "must be arrays, scalars or pytrees (tuple, list, dict) of them")
    return arr


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
    from ..transforms.simplify import dce_jaxpr
    jaxpr = dce_jaxpr(Jaxpr((), j.constvars + j.invars, j.eqns, j.outvars))
    out_tree, weak = box[0]
    return _Traced(jaxpr, list(closed.consts), out_tree, weak)


def _types(avals: Sequence[ShapedArray]) -> str:
    return "(" + ", ".join(str(a) for a in avals) + ")"




def _inline(jaxpr: Jaxpr, args: Sequence) -> list:
    """Evaluate a sub-jaxpr on values of the current trace (binds its equations)."""
    from ..interpreter import eval_jaxpr
    return eval_jaxpr(jaxpr, (), *args)


def _closed(jaxpr: Jaxpr) -> ClosedJaxpr:
    return ClosedJaxpr(jaxpr, ())


def _zeros(aval: ShapedArray):
    from .shape import full
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


# ---------------------------------------------------------------------------
# cond_p: run branches[index](*operands)
# ---------------------------------------------------------------------------

cond_p = Primitive("cond", multiple_results=True)


def _cond_impl(index, *operands, branches):
    i = builtins.min(builtins.max(int(index), 0), len(branches) - 1)
    return tuple(eval_concrete(branches[i].jaxpr, operands))


def _cond_shape(index, *operands, branches):
    if index.shape != () or not np.issubdtype(index.dtype, np.integer):
        raise FungradTypeError(f"cond: the branch index must be an integer scalar, got {index}")
    out = branches[0].out_avals
    for b in branches:
        if list(b.in_avals) != list(operands):
            raise FungradTypeError(f"cond: a branch takes {_types(b.in_avals)}, "
                                   f"operands are {_types(operands)}")
        if list(b.out_avals) != list(out):
            raise FungradTypeError(f"cond: branches return {_types(out)} and "
                                   f"{_types(b.out_avals)}")
    return tuple(out)


# d cond(i, xs) = cond(i, jvp of each branch)
def _cond_jvp(*args, out, branches):
    from ..transforms.jvp import jvp_eval
    from ..transforms.util import Zero
    n = len(branches[0].in_avals)
    tangents, index, operands = args[1:1 + n], args[1 + n], list(args[2 + n:])
    ts = [t if _is_float_aval(aval_of(x)) else Zero(aval_of(x))
          for t, x in zip(tangents, operands, strict=True)]

    float_pos = [i for i, t in enumerate(ts) if not isinstance(t, Zero)]

    def make(jaxpr):
        def branch(xs, ts_float):
            full = list(ts)
            for i, t in zip(float_pos, ts_float, strict=True):
                full[i] = t
            return jvp_eval(jaxpr, (), xs, full)[1]
        return branch

    funs = [make(b.jaxpr) for b in branches]
    t_out = _switch_traced(index, funs, (operands, [ts[i] for i in float_pos]))
    return tuple(t if _is_float_aval(aval_of(t)) else None for t in t_out)


# (ct, i, xs) -> cond(i, vjp of each branch)
def _cond_vjp(ct, index, *operands, out, branches):
    from ..transforms.ad import vjp_eval
    from ..transforms.util import Zero, instantiate
    operands = list(operands)
    wrt = [_is_float_aval(aval_of(x)) for x in operands]
    out_avals = branches[0].out_avals
    ct = [c if _is_float_aval(a) else Zero(a) for c, a in zip(ct, out_avals, strict=True)]
    ct_float = [c for c in ct if not isinstance(c, Zero)]

    def make(jaxpr):
        def branch(xs, cts_given):
            it = iter(cts_given)
            cts = [c if isinstance(c, Zero) else next(it) for c in ct]
            return [instantiate(c) for c in vjp_eval(jaxpr, (), xs, wrt, cts)[1]]
        return branch

    cts_in = iter(_switch_traced(index, [make(b.jaxpr) for b in branches], (operands, ct_float)))
    return (None,) + tuple(next(cts_in) if w else None for w in wrt)


def _cond_vmap(axis_size, args, dims, *, branches):
    from ..transforms.vmap import vmap_jaxpr
    from .elementwise import eq, select
    from .shape import broadcast_in_dim
    index, operands = args[0], list(args[1:])
    index_dim, op_dims = dims[0], list(dims[1:])
    n_out = len(branches[0].out_avals)
    batched = tuple(_closed(vmap_jaxpr(b.jaxpr, axis_size, op_dims, [0] * n_out))
                    for b in branches)
    if index_dim is None:
        return cond_p.bind(index, *operands, branches=batched), [0] * n_out
    # a batched predicate: compute every branch, then pick per example
    index = move_axis_to_front(index, index_dim)
    results = [_inline(b.jaxpr, operands) for b in batched]
    outs = list(results[0])
    for k in range(1, len(branches)):
        for j, (new, old) in enumerate(zip(results[k], outs, strict=True)):
            shape = aval_of(old).shape
            pred = broadcast_in_dim(eq(index, k), shape, (0,))
            outs[j] = select(pred, new, old)
    return outs, [0] * n_out


cond_p.def_impl(_cond_impl)
cond_p.def_shape(_cond_shape)
cond_p.def_jvp(_cond_jvp)
cond_p.def_vjp(_cond_vjp)
cond_p.def_vmap(_cond_vmap)


def _switch_traced(index, branches: Sequence[Callable], operands: tuple,
                   names: Sequence[str] | None = None, where: str | None = None) -> Any:
    """Bind `cond_p` for traced `index`: trace every branch on the operands' types."""
    op_leaves, op_tree = tree_flatten(operands)
    op_leaves = [_as_operand(x) for x in op_leaves]
    avals = [aval_of(x) for x in op_leaves]
    traced = [_trace_fun(b, op_tree, avals) for b in branches]
    # weakly typed Python scalars take the dtype a strongly typed branch gives
    n_outs = {len(t.out_avals) for t in traced}
    if len(n_outs) == 1 and any(any(t.weak) for t in traced):
        n = n_outs.pop()
        target = [None] * n
        for t in traced:
            for i, (a, w) in enumerate(zip(t.out_avals, t.weak)):
                if not w and target[i] is None:
                    target[i] = a.dtype
        traced = [_trace_fun(b, op_tree, avals, out_dtypes=target) if any(t.weak) else t
                  for b, t in zip(branches, traced, strict=True)]
    first = traced[0]
    for k, t in enumerate(traced[1:], start=1):
        if t.out_tree != first.out_tree or t.out_avals != first.out_avals:
            label = names or [f"branches[{i}]" for i in range(len(branches))]
            raise FungradTypeError(
                f"{'cond' if names else 'switch'} at {where or _where()}: the branches must "
                f"return the same structure, shapes and dtypes, but "
                f"{label[0]} ({describe_function(branches[0])}) returned "
                f"{first.out_tree} of types {_types(first.out_avals)} and "
                f"{label[k]} ({describe_function(branches[k])}) returned "
                f"{t.out_tree} of types {_types(t.out_avals)}.\n"
                "  Make every branch return the same pytree of arrays (cast with .astype, "
                "broadcast with fungrad.numpy.broadcast_to).")
    # every branch takes all branches' constants, then the operands
    const_avals = [[aval_of(c) for c in t.consts] for t in traced]
    jaxprs = []
    for k, t in enumerate(traced):
        own = t.jaxpr.invars[:len(t.consts)]
        invars = []
        for j, avals_j in enumerate(const_avals):
            invars.extend(own if j == k else [Var(a) for a in avals_j])
        invars.extend(t.jaxpr.invars[len(t.consts):])
        jaxprs.append(_closed(Jaxpr((), invars, t.jaxpr.eqns, t.jaxpr.outvars)))
    consts = [c for t in traced for c in t.consts]
    outs = cond_p.bind(index, *consts, *op_leaves, branches=tuple(jaxprs))
    return first.out_tree.unflatten(outs)


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """Apply `branches[index](*operands)`; `index` is clamped to `[0, len(branches) - 1]`.

    Every branch must return the same pytree of arrays (shapes and dtypes).  With a
    traced `index` all branches are traced and the choice is made when the program
    runs (under `vmap` with a batched index, each example picks its own branch).

    >>> switch(1, [lambda x: x + 1, lambda x: x * 10], 2.0)   # 20.0
    """
    from .elementwise import convert_element_type, max as lax_max, min as lax_min
    branches = list(branches)
    if not branches:
        raise FungradValueError("switch: branches must be a non-empty sequence of functions")
    if not isinstance(index, Tracer):
        i = np.asarray(index)
        if i.shape != () or not np.issubdtype(i.dtype, np.integer):
            raise FungradTypeError(f"switch at {_where()}: the index must be an integer scalar, "
                                   f"got {i!r}")
        return branches[builtins.min(builtins.max(int(i), 0), len(branches) - 1)](*operands)
    aval = index.aval
    if aval.shape != () or not np.issubdtype(aval.dtype, np.integer):
        raise FungradTypeError(
            f"switch at {_where()}: the index must be an integer scalar, got {aval}")
    index = convert_element_type(index, np.int64)
    index = lax_min(lax_max(index, np.int64(0)), np.int64(len(branches) - 1))
    return _switch_traced(index, branches, operands, where=_where())


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`, as one primitive.

    `pred` is a boolean (or numeric, nonzero = true) scalar.  Both branches must
    return the same pytree of arrays.  A concrete `pred` (a Python bool or an array)
    just calls the chosen branch; a traced one records both branches.

    >>> grad(lambda x: cond(x > 0, lambda y: y * y, lambda y: -y, x))(3.0)   # 6.0
    """
    from .elementwise import convert_element_type, ne
    if not isinstance(pred, Tracer):
        p = np.asarray(pred)
        if p.shape != ():
            raise FungradTypeError(f"cond: the predicate must be a scalar, got shape {p.shape}")
        return (true_fun if bool(p) else false_fun)(*operands)
    where = _where()
    aval = pred.aval
    if aval.shape != ():
        raise FungradTypeError(
            f"cond at {where}: the predicate must be a scalar, got {aval}.\n"
            "  For elementwise choices use fungrad.numpy.where (or lax.select).")
    if aval.dtype != np.bool_:
        pred = ne(pred, aval.dtype.type(0))
    index = convert_element_type(pred, np.int64)
    return _switch_traced(index, [false_fun, true_fun], operands,
                          names=["false_fun", "true_fun"], where=where)


# ---------------------------------------------------------------------------
# while_p: while cond(carry): carry = body(carry)
# ---------------------------------------------------------------------------

while_p = Primitive("while", multiple_results=True)


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
    from ..transforms.jvp import jvp_eval
    from ..transforms.util import Zero
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
    from ..transforms.ad import vjp_eval
    from ..transforms.util import Zero, instantiate
    from .elementwise import add, gt, lt, sub
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
    from ..transforms.vmap import vmap_jaxpr
    from .elementwise import convert_element_type, gt, select
    from .reduce import reduce_sum
    from .shape import broadcast_in_dim
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


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """`val = init_val; while cond_fun(val): val = body_fun(val); return val`.

    The carry `val` is a pytree of arrays; `body_fun` must return the same structure,
    shapes and dtypes, and `cond_fun` a boolean scalar.  Unlike JAX, reverse-mode
    derivatives work: the forward pass records each trip's carry on a tape and the
    backward pass walks it back (O(n) body evaluations and carries of memory).

    >>> while_loop(lambda x: x < 10, lambda x: x * 2, 1.0)    # 16.0
    """
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

while_tape_p = Primitive("while_tape")


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


def _no_derivative(*args, **params):
    """The tape is not differentiable (its dtype is object)."""
    return None


_no_derivative.nondiff = True

while_tape_p.def_impl(_while_tape_impl)
while_tape_p.def_shape(_while_tape_shape)
while_tape_p.def_jvp(_no_derivative)
while_tape_p.def_vjp(_no_derivative)
while_tape_p.def_vmap(_while_tape_vmap)

while_tape_vjp_p = Primitive("while_tape_vjp", multiple_results=True)
_BODY_VJP_CACHE: dict = {}


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
    from ..transforms.ad import vjp_jaxpr
    from ..transforms.simplify import dce_jaxpr
    jaxpr = body_jaxpr.jaxpr
    wrt = [_is_float_aval(a) for a in jaxpr.in_avals]
    joint = vjp_jaxpr(jaxpr, wrt)
    n_out = len(jaxpr.outvars)
    result = dce_jaxpr(Jaxpr(joint.constvars, joint.invars, joint.eqns, joint.outvars[n_out:]))
    if len(_BODY_VJP_CACHE) > 256:
        _BODY_VJP_CACHE.clear()
    _BODY_VJP_CACHE[key] = (jaxpr, result)
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
    from ..transforms.util import build_jaxpr
    return build_jaxpr(reference, [], [aval_of(x) for x in inputs])


# derivatives of the backward pass: those of the recomputing reference
def _while_tape_vjp_jvp(*args, out, **params):
    from ..transforms.jvp import jvp_eval
    from ..transforms.util import Zero
    half = len(args) // 2
    xs, reference = _tape_free(args[half:], params)
    ts, _ = _tape_free(args[:half], params)
    ts = [t if _is_float_aval(aval_of(x)) else Zero(aval_of(x)) for t, x in zip(ts, xs)]
    _, t_out = jvp_eval(_reference_jaxpr(xs, reference), (), xs, ts)
    return tuple(t_out)


def _while_tape_vjp_vjp(ct, *args, out, **params):
    from ..transforms.ad import vjp_eval
    from ..transforms.util import instantiate
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


# ---------------------------------------------------------------------------
# scan_p: carry, ys = loop over the leading axis of xs
# ---------------------------------------------------------------------------

scan_p = Primitive("scan", multiple_results=True)


def _scan_impl(*args, jaxpr, num_consts, num_carry, length, reverse):
    consts, carry, xs = _split(args, num_consts, num_carry)
    y_avals = jaxpr.out_avals[num_carry:]
    xs = [np.asarray(x) for x in xs]
    ys: list = [[] for _ in y_avals]
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        outs = eval_concrete(jaxpr.jaxpr, consts + carry + [x[i] for x in xs])
        carry = outs[:num_carry]
        for acc, y in zip(ys, outs[num_carry:], strict=True):
            acc.append(y)
    if reverse:
        for acc in ys:
            acc.reverse()
    stacked = [np.stack([np.asarray(v, dtype=a.dtype) for v in acc]) if acc
               else np.zeros((0,) + a.shape, a.dtype) for acc, a in zip(ys, y_avals)]
    return tuple(carry) + tuple(stacked)


def _scan_shape(*avals, jaxpr, num_consts, num_carry, length, reverse):
    consts, carry, xs = _split(avals, num_consts, num_carry)
    for x in xs:
        if not x.shape or x.shape[0] != length:
            raise FungradTypeError(f"scan: xs leaves must have leading dimension {length}, "
                                   f"got {x}")
    slices = [ShapedArray(x.shape[1:], x.dtype) for x in xs]
    if list(jaxpr.in_avals) != consts + carry + slices:
        raise FungradTypeError(f"scan: the body takes {_types(jaxpr.in_avals)}, given "
                               f"{_types(consts + carry + slices)}")
    outs = jaxpr.out_avals
    if list(outs[:num_carry]) != carry:
        raise FungradTypeError(f"scan: the body returns the carry as "
                               f"{_types(outs[:num_carry])}, the carry is {_types(carry)}")
    return tuple(carry) + tuple(ShapedArray((length,) + y.shape, y.dtype)
                                for y in outs[num_carry:])


# d scan = scan over (carry, tangent carry) and (xs, tangent xs) of the body's jvp
def _scan_jvp(*args, out, jaxpr, num_consts, num_carry, length, reverse):
    from ..transforms.jvp import jvp_eval
    from ..transforms.util import Zero
    half = len(args) // 2
    t_consts, t_init, t_xs = _split(args[:half], num_consts, num_carry)
    consts, init, xs = _split(args[half:], num_consts, num_carry)
    t_consts = [t if _is_float_aval(aval_of(c)) else Zero(aval_of(c))
                for t, c in zip(t_consts, consts, strict=True)]
    carry_f = [_is_float_aval(aval_of(x)) for x in init]
    xs_f = [_is_float_aval(aval_of(x)) for x in xs]
    y_avals = jaxpr.out_avals[num_carry:]
    y_f = [_is_float_aval(a) for a in y_avals]
    slice_avals = [ShapedArray(aval_of(x).shape[1:], aval_of(x).dtype) for x in xs]

    def body(state, x_in):
        carry, t_carry = state
        x, t_x = x_in
        it_c, it_x = iter(t_carry), iter(t_x)
        tc = [next(it_c) if f else Zero(aval_of(c)) for c, f in zip(carry, carry_f)]
        tx = [next(it_x) if f else Zero(a) for a, f in zip(slice_avals, xs_f)]
        outs, t_outs = jvp_eval(jaxpr.jaxpr, (), consts + list(carry) + list(x),
                                t_consts + tc + tx)
        new_t = [t for t, f in zip(t_outs[:num_carry], carry_f, strict=True) if f]
        t_ys = [t for t, f in zip(t_outs[num_carry:], y_f, strict=True) if f]
        return (list(outs[:num_carry]), new_t), (list(outs[num_carry:]), t_ys)

    t0 = [t for t, f in zip(t_init, carry_f, strict=True) if f]
    tx0 = [t for t, f in zip(t_xs, xs_f, strict=True) if f]
    (_, t_carry), (_, t_ys) = scan(body, (list(init), t0), (list(xs), tx0), length=length,
                                   reverse=reverse)
    it_c, it_y = iter(t_carry), iter(t_ys)
    return (tuple(next(it_c) if f else None for f in carry_f)
            + tuple(next(it_y) if f else None for f in y_f))


# reverse mode: the body's vjp is split (partial evaluation) into a forward part
# that computes the carry and the residuals the backward part needs, and that
# backward part.  A forward scan stacks the residuals of every step (residuals
# that are loop constants are passed once, not stacked); a reverse scan pulls the
# cotangents back: one forward and one backward evaluation of the body per step.
def _scan_vjp(ct, *args, out, jaxpr, num_consts, num_carry, length, reverse):
    from .elementwise import add
    consts, init, xs = _split(args, num_consts, num_carry)
    body = jaxpr.jaxpr
    const_f = [_is_float_aval(aval_of(c)) for c in consts]
    carry_f = [_is_float_aval(aval_of(x)) for x in init]
    xs_f = [_is_float_aval(aval_of(x)) for x in xs]
    out_avals = body.out_avals
    y_f = [_is_float_aval(a) for a in out_avals[num_carry:]]
    known, unknown, const_res = _split_body_vjp(body, const_f + carry_f + xs_f, num_consts)
    n_out = len(out_avals)

    def fwd(carry, x):
        outs = _inline(known, consts + list(carry) + list(x))
        residuals = [r for r, c in zip(outs[n_out:], const_res, strict=True) if c is None]
        return list(outs[:num_carry]), residuals

    _, stacked = scan(fwd, list(init), list(xs), length=length, reverse=reverse)

    def bwd(state, inp):
        ct_carry, ct_consts = state
        res_k, ct_y = inp
        it_r = iter(res_k)
        residuals = [next(it_r) if c is None else consts[c] for c in const_res]
        it_c, it_y = iter(ct_carry), iter(ct_y)
        cts_out = ([next(it_c) if f else _zeros(a)
                    for a, f in zip(out_avals[:num_carry], carry_f, strict=True)]
                   + [next(it_y) if f else _zeros(a)
                      for a, f in zip(out_avals[num_carry:], y_f, strict=True)])
        cts_in = _inline(unknown, residuals + cts_out)
        n_cf, n_carry_f = sum(const_f), sum(carry_f)
        ct_consts = [add(a, b) for a, b in zip(ct_consts, cts_in[:n_cf], strict=True)]
        return (cts_in[n_cf:n_cf + n_carry_f], ct_consts), cts_in[n_cf + n_carry_f:]

    ct_carry0 = [c for c, f in zip(ct[:num_carry], carry_f, strict=True) if f]
    ct_ys = [c for c, f in zip(ct[num_carry:], y_f, strict=True) if f]
    consts0 = [_zeros(aval_of(c)) for c, f in zip(consts, const_f) if f]
    (ct_init, ct_consts), ct_xs = scan(bwd, (ct_carry0, consts0), (stacked, ct_ys),
                                       length=length, reverse=not reverse)
    it_k, it_c, it_x = iter(ct_consts), iter(ct_init), iter(ct_xs)
    return (tuple(next(it_k) if f else None for f in const_f)
            + tuple(next(it_c) if f else None for f in carry_f)
            + tuple(next(it_x) if f else None for f in xs_f))


_SPLIT_CACHE: dict = {}


def _split_body_vjp(body: Jaxpr, wrt: Sequence[bool], num_consts: int):
    """(known, unknown, const_res) for the body's vjp:
        known:   (consts, carry, x) -> (carry_out, y, residuals)
        unknown: (residuals, cts of carry_out and y) -> cts of the inputs in wrt
    const_res[i] is j when residual i is the body's constant input j, else None."""
    key = (id(body), tuple(wrt))
    hit = _SPLIT_CACHE.get(key)
    if hit is not None and hit[0] is body:
        return hit[1]
    from ..transforms.ad import partial_eval_jaxpr, vjp_jaxpr
    joint = vjp_jaxpr(body, wrt)
    n_in, n_out = len(body.invars), len(body.outvars)
    known, unknown, n_res = partial_eval_jaxpr(
        joint, [False] * n_in + [True] * n_out, [False] * n_out + [True] * sum(wrt))
    const_index = {id(v): j for j, v in enumerate(known.invars[:num_consts])}
    const_res = [const_index.get(id(v)) for v in known.outvars[n_out:]]
    result = (known, unknown, const_res)
    if len(_SPLIT_CACHE) > 256:
        _SPLIT_CACHE.clear()
    _SPLIT_CACHE[key] = (body, result)
    return result


# batched: every carry is batched at 0; xs batched along axis 1 (axis 0 is scanned)
def _scan_vmap(axis_size, args, dims, *, jaxpr, num_consts, num_carry, length, reverse):
    from ..transforms.vmap import vmap_jaxpr
    from .shape import transpose
    consts, init, xs = _split(args, num_consts, num_carry)
    c_dims, init_dims, x_dims = _split(dims, num_consts, num_carry)
    init = [bdim_to_front(axis_size, x, d) for x, d in zip(init, init_dims, strict=True)]
    moved, slice_dims = [], []
    for x, d in zip(xs, x_dims, strict=True):
        if d is None:
            moved.append(x)
            slice_dims.append(None)
            continue
        ndim = aval_of(x).ndim
        if d != 1:
            perm = [i for i in range(ndim) if i != d]
            perm.insert(1, d)
            x = transpose(x, tuple(perm))
        moved.append(x)
        slice_dims.append(0)
    n_out = len(jaxpr.out_avals)
    body = vmap_jaxpr(jaxpr.jaxpr, axis_size, c_dims + [0] * num_carry + slice_dims,
                      [0] * n_out)
    outs = scan_p.bind(*consts, *init, *moved, jaxpr=_closed(body), num_consts=num_consts,
                       num_carry=num_carry, length=length, reverse=reverse)
    return outs, [0] * num_carry + [1] * (n_out - num_carry)


scan_p.def_impl(_scan_impl)
scan_p.def_shape(_scan_shape)
scan_p.def_jvp(_scan_jvp)
scan_p.def_vjp(_scan_vjp)
scan_p.def_vmap(_scan_vmap)


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False, unroll: int | bool = 1) -> tuple[Any, Any]:
    """Loop `carry, y = f(carry, x)` over the leading axis of `xs`, stacking the ys.

    Semantics (as `jax.lax.scan`):

        def scan(f, init, xs, length=None):
            carry, ys = init, []
            for x in xs:                      # or range(length) with xs=None
                carry, y = f(carry, x)
                ys.append(y)
            return carry, stack(ys)

    `init`, `xs` and the ys are pytrees of arrays; the carry keeps its structure,
    shapes and dtypes.  `reverse=True` runs from the last element to the first
    (the ys stay in input order).  `unroll` is accepted for compatibility; the
    loop always runs as a real loop.

    >>> scan(lambda c, x: (c + x, c * x), 0.0, fnp.arange(3.0))  # (3.0, [0., 1., 3.])
    """
    return _scan(f, init, xs, length, reverse, _where())


def _scan(f: Callable, init: Any, xs: Any, length: int | None, reverse: bool, where: str,
          context: tuple | None = None) -> tuple[Any, Any]:
    init_leaves, init_tree = tree_flatten(init)
    init_leaves = [_as_operand(x) for x in init_leaves]
    xs_leaves, xs_tree = tree_flatten(xs)
    xs_leaves = [_as_operand(x) for x in xs_leaves]
    lengths = set()
    for x in xs_leaves:
        shape = aval_of(x).shape
        if not shape:
            raise FungradValueError(
                f"scan at {where}: every leaf of xs needs a leading axis to scan over, got "
                f"a 0-d {aval_of(x)}")
        lengths.add(shape[0])
    if length is not None:
        length = int(length)
        lengths.add(length)
    if len(lengths) != 1:
        if not lengths:
            raise FungradValueError(f"scan at {where}: give xs or length")
        raise FungradValueError(
            f"scan at {where}: the leaves of xs have different leading lengths "
            f"{sorted(lengths)} (length={length})")
    n = lengths.pop()
    carry_avals = [aval_of(x) for x in init_leaves]
    slice_avals = [ShapedArray(aval_of(x).shape[1:], aval_of(x).dtype) for x in xs_leaves]
    in_tree = tree_flatten((init_tree.unflatten([0] * init_tree.num_leaves),
                            xs_tree.unflatten([0] * xs_tree.num_leaves)))[1]
    n_carry = len(carry_avals)
    traced = _trace_fun(f, in_tree, carry_avals + slice_avals,
                        out_dtypes=None)
    out_tree = traced.out_tree
    if out_tree.node_type not in (tuple, list) or len(out_tree.children) != 2:
        raise FungradTypeError(
            f"scan at {where}: f ({describe_function(f)}) must return a pair (carry, y), "
            f"but it returned {out_tree}")
    if any(traced.weak[:n_carry]):
        traced = _trace_fun(f, in_tree, carry_avals + slice_avals,
                            out_dtypes=[a.dtype for a in carry_avals]
                            + [None] * (len(traced.out_avals) - n_carry))
        out_tree = traced.out_tree
    carry_tree, y_tree = out_tree.children
    api, user_fun, role, pick = context or ("scan", f, "f", None)
    _check_carry(api, where, user_fun, role, init_tree, carry_avals, carry_tree,
                 traced.out_avals[:carry_tree.num_leaves], pick)
    consts = traced.consts
    outs = scan_p.bind(*consts, *init_leaves, *xs_leaves, jaxpr=_closed(traced.jaxpr),
                       num_consts=len(consts), num_carry=n_carry, length=n,
                       reverse=bool(reverse))
    return init_tree.unflatten(outs[:n_carry]), y_tree.unflatten(outs[n_carry:])


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any, *,
              unroll: int | bool | None = None) -> Any:
    """`val = init_val; for i in range(lower, upper): val = body_fun(i, val)`.

    With Python-int (static) bounds it is a `scan` of known length, so reverse-mode
    derivatives store one carry per step; traced bounds give a `while_loop`.

    >>> fori_loop(0, 3, lambda i, a: a * 2.0, 1.0)    # 8.0
    """
    from .elementwise import add, convert_element_type, lt
    where = _where()
    if not isinstance(lower, Tracer) and not isinstance(upper, Tracer):
        lo, hi = np.asarray(lower), np.asarray(upper)
        if lo.shape or hi.shape or not np.issubdtype(lo.dtype, np.integer) or \
                not np.issubdtype(hi.dtype, np.integer):
            raise FungradTypeError(f"fori_loop at {where}: lower and upper must be integer "
                                   f"scalars, got {lower!r} and {upper!r}")
        dtype = np.result_type(lo.dtype, hi.dtype)
        trips = builtins.max(int(hi) - int(lo), 0)

        def step(state, _):
            i, val = state
            return (add(i, dtype.type(1)), body_fun(i, val)), None

        (_, val), _ = _scan(step, (dtype.type(int(lo)), init_val), None, trips, False, where,
                            ("fori_loop", body_fun, "body_fun", 1))
        return val
    bounds = [_as_operand(b) for b in (lower, upper)]
    for b in bounds:
        a = aval_of(b)
        if a.shape or not np.issubdtype(a.dtype, np.integer):
            raise FungradTypeError(f"fori_loop at {where}: lower and upper must be integer "
                                   f"scalars, got {a}")
    dtype = np.result_type(*[aval_of(b).dtype for b in bounds])
    lo, hi = (convert_element_type(b, dtype) for b in bounds)

    def cond_fun(state):
        return lt(state[0], state[1])

    def body(state):
        i, u, val = state
        return add(i, dtype.type(1)), u, body_fun(i, val)

    return _while_loop(cond_fun, body, (lo, hi, init_val), where, ("fori_loop", body_fun, 2))[2]


def map(f: Callable, xs: Any, *, batch_size: int | None = None) -> Any:
    """`stack([f(x) for x in xs])` over the leading axis of the pytree `xs`, as a scan.

    With `batch_size`, `f` is vectorized (`vmap`) over chunks of that many elements
    and the scan runs over the chunks (the remainder is one more vmapped call).

    >>> map(lambda x: x.sum(), fnp.ones((3, 2)))    # [2., 2., 2.]
    """
    if batch_size is None:
        _, ys = scan(lambda carry, x: (carry, f(x)), (), xs)
        return ys
    from ..pytree import tree_map
    from ..transforms.vmap import vmap
    from .shape import concatenate, reshape, slice as lax_slice
    leaves, tree = tree_flatten(xs)
    leaves = [_as_operand(x) for x in leaves]
    if not leaves:
        raise FungradValueError("map: xs has no arrays to map over")
    n = aval_of(leaves[0]).shape[0] if aval_of(leaves[0]).shape else 0
    batch_size = int(batch_size)
    if batch_size < 1:
        raise FungradValueError(f"map: batch_size must be positive, got {batch_size}")
    n_chunks, rest = divmod(n, batch_size)

    def rows(x, lo, hi):
        shape = aval_of(x).shape
        return lax_slice(x, (lo,) + (0,) * (len(shape) - 1), (hi,) + shape[1:])

    batched_f = vmap(f)
    parts = []
    if n_chunks:
        chunks = [reshape(rows(x, 0, n_chunks * batch_size),
                          (n_chunks, batch_size) + aval_of(x).shape[1:]) for x in leaves]
        _, ys = scan(lambda carry, x: (carry, batched_f(x)), (), tree.unflatten(chunks))
        parts.append(tree_map(lambda y: reshape(y, (n_chunks * batch_size,)
                                                + aval_of(y).shape[2:]), ys))
    if rest:
        tail = [rows(x, n_chunks * batch_size, n) for x in leaves]
        parts.append(batched_f(tree.unflatten(tail)))
    if len(parts) == 1:
        return parts[0]
    y_leaves = [tree_flatten(p)[0] for p in parts]
    return tree_flatten(parts[0])[1].unflatten(
        [concatenate([a, b], 0) for a, b in zip(*y_leaves, strict=True)])
