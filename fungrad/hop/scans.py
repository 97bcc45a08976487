"""`scan`, `fori_loop` and `map`: the `scan` primitive, a loop over the leading
axis of its xs."""
from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np

from ..caches import new_cache
from ..core import Jaxpr, Primitive, ShapedArray
from ..errors import FungradTypeError, FungradValueError, describe_function
from ..interpreter import eval_concrete
from ..primitives._static import static_callable, static_int
from ..primitives._util import np_dtype
from ..primitives.base import bdim_to_front, convert_element_type, reshape, transpose
from ..primitives.elementwise import add, lt
from ..primitives.shape import concatenate, slice as lax_slice
from ..pytree import tree_flatten, tree_map
from ..tracing import Tracer, aval_of
from ..transforms.ad import partial_eval_jaxpr, vjp_jaxpr
from ..transforms.jvp import jvp_eval
from ..transforms.util import Zero
from ..transforms.vmap import vmap_jaxpr
from .subjaxpr import _as_operand, _closed, _inline, _is_float_aval, _split, _trace_fun, _types, _where, _zeros
from .while_loops import _check_carry, _while_loop


# ---------------------------------------------------------------------------
# scan_p: carry, ys = loop over the leading axis of xs
# ---------------------------------------------------------------------------

scan_p = Primitive("scan", kind="control", multiple_results=True)


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


_SPLIT_CACHE = new_cache("hop.scan_body_vjp", 256)


def _split_body_vjp(body: Jaxpr, wrt: Sequence[bool], num_consts: int):
    """(known, unknown, const_res) for the body's vjp:
        known:   (consts, carry, x) -> (carry_out, y, residuals)
        unknown: (residuals, cts of carry_out and y) -> cts of the inputs in wrt
    const_res[i] is j when residual i is the body's constant input j, else None."""
    key = (id(body), tuple(wrt))
    hit = _SPLIT_CACHE.get(key)
    if hit is not None and hit[0] is body:
        return hit[1]
    joint = vjp_jaxpr(body, wrt)
    n_in, n_out = len(body.invars), len(body.outvars)
    known, unknown, n_res = partial_eval_jaxpr(
        joint, [False] * n_in + [True] * n_out, [False] * n_out + [True] * sum(wrt))
    const_index = {id(v): j for j, v in enumerate(known.invars[:num_consts])}
    const_res = [const_index.get(id(v)) for v in known.outvars[n_out:]]
    result = (known, unknown, const_res)
    _SPLIT_CACHE.put(key, (body, result))
    return result


# batched: every carry is batched at 0; xs batched along axis 1 (axis 0 is scanned)
def _scan_vmap(axis_size, args, dims, *, jaxpr, num_consts, num_carry, length, reverse):
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


def _scan_lower(gen, inputs, outputs, *, jaxpr, num_consts, num_carry, length, reverse):
    """A kernel `for` loop: carries are local variables, each step reads row `t` of
    its xs and writes row `t` of preallocated ys (`reverse=True` counts down)."""
    nc, nk = num_consts, num_carry
    consts, carry, xs = inputs[:nc], inputs[nc:nc + nk], inputs[nc + nk:]
    u = gen.uid()
    lines = gen.lines
    cvars = [f"_k{u}_{k}" for k in range(nk)]
    for c, x in zip(cvars, carry, strict=True):
        lines.append(f"    {c} = {gen.own(gen.name(x), x.aval, False)}")
    y_avals = [v.aval for v in jaxpr.jaxpr.outvars[nk:]]
    yvars = [gen.name(o) for o in outputs[nk:]]
    for y, a in zip(yvars, y_avals, strict=True):
        lines.append(f"    {y} = np.empty({(length,) + tuple(a.shape)!r}, {np_dtype(a.dtype)})")
    t = f"_t{u}"
    steps = f"range({length - 1}, -1, -1)" if reverse else f"range({length})"
    ins = [gen.name(x) for x in consts] + cvars + [f"{gen.name(x)}[{t}]" for x in xs]
    body, outs, fresh = gen.sub(jaxpr, ins)
    lines.append(f"    for {t} in {steps}:")
    gen.emit_sub(body, 1)
    for y, o, a in zip(yvars, outs[nk:], y_avals, strict=True):
        gen.store_rows(y, t, o, a, "        ")
    for c, o, x, f in zip(cvars, outs[:nk], carry, fresh[:nk], strict=True):
        lines.append(f"        {c} = {gen.own(o, x.aval, f)}")
    for c, o in zip(cvars, outputs[:nk], strict=True):
        lines.append(f"    {gen.name(o)} = {c}")
    gen.fresh.update(o for o in outputs if o.aval.shape != ())


scan_p.def_lower(_scan_lower)


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
    static_callable(f, "f")
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
        length = static_int(length, "length", minimum=0)
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
    static_callable(body_fun, "body_fun")
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
    static_callable(f, "f")
    if batch_size is not None:
        batch_size = static_int(batch_size, "batch_size", minimum=1)
    if batch_size is None:
        _, ys = scan(lambda carry, x: (carry, f(x)), (), xs)
        return ys
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

    batched_f = _vmapped(f)
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


def _vmapped(f: Callable) -> Callable:
    """`f` vectorized over the leading axis of every leaf of its one argument: traced
    per example, rewritten by `vmap_jaxpr` and inlined where it is called."""
    def batched(xs):
        leaves, tree = tree_flatten((xs,))
        leaves = [_as_operand(x) for x in leaves]
        n = aval_of(leaves[0]).shape[0]
        per_example = [ShapedArray(aval_of(x).shape[1:], aval_of(x).dtype) for x in leaves]
        traced = _trace_fun(f, tree, per_example)
        n_consts = len(traced.consts)
        in_dims = [None] * n_consts + [0] * len(leaves)
        jaxpr = vmap_jaxpr(traced.jaxpr, n, in_dims, [0] * len(traced.jaxpr.outvars))
        return traced.out_tree.unflatten(_inline(jaxpr, list(traced.consts) + leaves))
    return batched
