"""`cond` and `switch`: the `cond` primitive runs branches[index](*operands)."""
from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np

from ..core import Jaxpr, Primitive, Var
from ..errors import ConcretizationError, FungradTypeError, FungradValueError, describe_function
from ..interpreter import eval_concrete
from ..primitives._static import static_callable
from ..primitives.base import broadcast_in_dim, convert_element_type, move_axis_to_front
from ..primitives.elementwise import eq, ne, select
from ..primitives.elementwise import max as lax_max, min as lax_min
from ..pytree import tree_flatten
from ..tracing import Tracer, aval_of
from ..transforms.ad import vjp_eval
from ..transforms.jvp import jvp_eval
from ..transforms.util import Zero, instantiate
from ..transforms.vmap import vmap_jaxpr
from .subjaxpr import _as_operand, _closed, _inline, _is_float_aval, _trace_fun, _types, _where


# ---------------------------------------------------------------------------
# cond_p: run branches[index](*operands)
# ---------------------------------------------------------------------------

cond_p = Primitive("cond", kind="control", multiple_results=True)


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


def _cond_lower(gen, inputs, outputs, *, branches):
    """Kernel `if/elif/else` on the index, clamped like lax.switch."""
    index, operands = inputs[0], inputs[1:]
    ins = [gen.name(x) for x in operands]
    i = gen.name(index)
    lines = gen.lines
    n = len(branches)
    for k, b in enumerate(branches):
        body, outs, fresh = gen.sub(b, ins)
        if n == 1:
            lines.append("    if True:")
        elif k == 0:
            lines.append(f"    if {i} <= 0:")
        elif k < n - 1:
            lines.append(f"    elif {i} == {k}:")
        else:
            lines.append("    else:")
        gen.emit_sub(body, 1)
        for o, expr, f in zip(outputs, outs, fresh, strict=True):
            lines.append(f"        {gen.name(o)} = {gen.own(expr, o.aval, f)}")
    gen.fresh.update(o for o in outputs if o.aval.shape != ())


cond_p.def_lower(_cond_lower)


def _trace_branches(branches: Sequence[Callable], operands: tuple,
                    names: Sequence[str] | None, where: str | None) -> tuple[list, list]:
    """Trace every branch on the operands' types and check that they return the same
    structure, shapes and dtypes; returns (traced branches, operand leaves)."""
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
    return traced, op_leaves


def _run_concrete(i: int, branches: Sequence[Callable], operands: tuple,
                  names: Sequence[str] | None, where: str) -> Any:
    """A concrete index runs branch i, and checks, as JAX does, that the other
    branches return the same types: they are traced on the operands' types (not run).
    A branch that cannot be traced without values (Python control flow on them) is
    not compared."""
    op_leaves, op_tree = tree_flatten(operands)
    # operands are arrays, as in a traced cond: a Python scalar in the result is then one
    # the branch wrote (weakly typed), never an operand or arithmetic on one
    op_leaves = [_as_operand(x) for x in op_leaves]
    result = branches[i](*op_tree.unflatten(op_leaves))
    if len(branches) == 1:
        return result
    res_leaves, res_tree = tree_flatten(result)
    weak = [type(x) in (bool, int, float, complex) for x in res_leaves]   # not np.float64
    res_avals = [aval_of(_as_operand(x)) for x in res_leaves]
    avals = [aval_of(x) for x in op_leaves]
    label = names or [f"branches[{k}]" for k in range(len(branches))]
    for k, b in enumerate(branches):
        if k == i:
            continue
        try:
            t = _trace_fun(b, op_tree, avals)
        except ConcretizationError:
            continue
        same = t.out_tree == res_tree and all(
            a.shape == r.shape and (a.dtype == r.dtype or w or tw)
            for a, r, w, tw in zip(t.out_avals, res_avals, weak, t.weak))
        if not same:
            raise FungradTypeError(
                f"{'cond' if names else 'switch'} at {where}: the branches must return the "
                f"same structure, shapes and dtypes, but {label[i]} "
                f"({describe_function(branches[i])}) returned {res_tree} of types "
                f"{_types(res_avals)} and {label[k]} ({describe_function(b)}) returned "
                f"{t.out_tree} of types {_types(t.out_avals)}.\n"
                "  Make every branch return the same pytree of arrays (cast with .astype, "
                "broadcast with fungrad.numpy.broadcast_to).")
    return result


def _switch_traced(index, branches: Sequence[Callable], operands: tuple,
                   names: Sequence[str] | None = None, where: str | None = None) -> Any:
    """Bind `cond_p` for traced `index`: trace every branch on the operands' types."""
    traced, op_leaves = _trace_branches(branches, operands, names, where)
    first = traced[0]
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
    if not isinstance(branches, (list, tuple)) or not all(callable(b) for b in branches):
        raise FungradTypeError(f"switch at {_where()}: branches must be a list or tuple of "
                               f"functions, got {branches!r:.60}")
    branches = list(branches)
    if not branches:
        raise FungradValueError("switch: branches must be a non-empty sequence of functions")
    if not isinstance(index, Tracer):
        i = np.asarray(index)
        if i.shape != () or not np.issubdtype(i.dtype, np.integer):
            raise FungradTypeError(f"switch at {_where()}: the index must be an integer scalar, "
                                   f"got {i!r}")
        return _run_concrete(builtins.min(builtins.max(int(i), 0), len(branches) - 1),
                             branches, operands, None, _where())
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
    for fun, what in ((true_fun, "true_fun"), (false_fun, "false_fun")):
        static_callable(fun, what)
    if not isinstance(pred, Tracer):
        aval_of(pred)   # refuses a string, None, an object
        p = np.asarray(pred)
        if p.shape != ():
            raise FungradTypeError(
                f"cond at {_where()}: the predicate must be a scalar, got shape {p.shape}.\n"
                "  For elementwise choices use fungrad.numpy.where (or lax.select).")
        return _run_concrete(int(bool(p)), [false_fun, true_fun], operands,
                             ["false_fun", "true_fun"], _where())
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
