"""Gather and scatter: the primitives behind NumPy advanced indexing and `x.at[...]`.

One index form serves every primitive here.  `indices` is an integer array of
shape `batch + (k,)` and `axes` names the k dimensions of the operand it
indexes (distinct, in the order of the index's last dimension):

    gather(x, indices, axes)[b, *rest] == moved(x)[indices[b, 0], ..., indices[b, k-1], *rest]

where `moved(x)` puts the dimensions `axes` first and `rest` runs over the other
dimensions of x in order.  So the result (and a scatter's `updates`) has shape
`batch + x.shape without axes`.  This is simpler than JAX's
`GatherDimensionNumbers` but enough for NumPy advanced indexing: basic slices
are applied before a gather (or become index arrays before a scatter).

Semantics (JAX differs: it clamps or drops out-of-bounds indices silently):
  * negative indices wrap like NumPy;
  * out-of-bounds indices raise `IndexError`, at trace time when the indices
    are concrete, else when the program runs;
  * duplicate indices: `scatter` (set) keeps the last update, `scatter_add` /
    `scatter_mul` / `scatter_min` / `scatter_max` combine all of them.

Gradients: gather's vjp is a scatter_add; scatter's vjp masks the overwritten
positions (only the update that lands gets a cotangent, also with duplicates);
scatter_min/max split the cotangent evenly among tied candidates, like `max`.
No `emit` rules: numba does not check bounds, so kernels containing these
primitives run their NumPy impl (the interpreter).
"""
from __future__ import annotations

import builtins

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import CodegenError, FungradIndexError, FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of
from ._static import static_ints
from .base import (bdim_to_front, broadcast_in_dim, convert_element_type, full, move_axis_to_front,
                   reshape, transpose)
from .elementwise import add, div, eq, mul, ne, select, sub
from .reduce import _max_update, _min_update
from .shape import concatenate, iota

__all__ = ["gather", "scatter", "scatter_add", "scatter_mul", "scatter_min", "scatter_max",
           "gather_p", "scatter_p", "scatter_add_p", "scatter_mul_p", "scatter_min_p",
           "scatter_max_p"]


# ---------------------------------------------------------------------------
# shared helpers: index checks, shapes, batching
# ---------------------------------------------------------------------------

def _prod(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _check_index_array(name: str, indices, operand_shape, axes) -> np.ndarray:
    """Concrete indices wrapped like NumPy (negative counts from the end); raises
    IndexError naming the first out-of-bounds index."""
    indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise FungradIndexError(f"{name}: indices must be integers, got dtype {indices.dtype}")
    sizes = np.array([operand_shape[a] for a in axes], dtype=np.int64)
    idx = indices.astype(np.int64, copy=False)
    if idx.size:
        bad = (idx < -sizes) | (idx >= sizes)
        if bad.any():
            pos = tuple(int(p[0]) for p in np.nonzero(bad))
            j = pos[-1]
            raise FungradIndexError(
                f"{name}: index {int(idx[pos])} is out of bounds for axis {axes[j]} with size "
                f"{int(sizes[j])}")
    return np.where(idx < 0, idx + sizes, idx)


def _concrete_source(x):
    """The value of concrete indices, or of a tracer whose value is at hand (a
    constant such as fnp.array([...]) inside a trace, an eager argument); else None."""
    if isinstance(x, Tracer):
        src = x._trace.sources.get(x._var)
        return src if isinstance(src, np.ndarray) else None
    return np.asarray(x)


def _prepare_indices(name: str, operand, indices, axes):
    """(indices, axes) normalized; concrete indices are checked and wrapped now."""
    shape = aval_of(operand).shape
    nd = len(shape)
    axes = static_ints(axes, "axes")
    aval_of(indices)   # refuses a string, None, an object
    for a in axes:
        if not -nd <= a < nd:
            raise FungradValueError(f"{name}: axis {a} is out of range for an operand of "
                                    f"shape {shape}")
    axes = tuple(a % nd for a in axes)
    value = _concrete_source(indices)
    if value is not None:
        if value.ndim == 0 or value.shape[-1] != len(axes):
            raise FungradValueError(
                f"{name}: indices must have shape batch + ({len(axes)},) for axes={axes}, "
                f"got {value.shape}")
        checked = _check_index_array(name, value, shape, axes)
        if not isinstance(indices, Tracer):     # a traced index stays traced (wrapped later)
            indices = checked
    return indices, axes


def _check_index_form(name: str, x: ShapedArray, idx: ShapedArray, axes) -> tuple:
    """The batch shape of a well-formed (operand, indices, axes); else a TypeError."""
    if not np.issubdtype(idx.dtype, np.integer):
        raise FungradTypeError(f"{name}: indices must be integers, got {idx}")
    if idx.ndim < 1 or idx.shape[-1] != len(axes):
        raise FungradTypeError(f"{name}: indices must have shape batch + ({len(axes)},) "
                               f"for axes={axes}, got {idx}")
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise FungradTypeError(f"{name}: axes={axes} must be distinct dimensions of {x}")
    return idx.shape[:-1]


def _rest_shape(shape, axes) -> tuple:
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _runtime_indices(name, x, idx, axes):
    """Indices checked and wrapped when the program runs (traced indices)."""
    return _check_index_array(name, idx, np.shape(x), axes)


def _move_dim(x, src: int, dst: int):
    """Transpose moving dimension src of x to position dst."""
    nd = aval_of(x).ndim
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return transpose(x, perm)


def _index_with_batch(axis_size, idx, d_idx, axes):
    """Batched indices -> indices of a batched operand (batch first): the batch
    position joins the index as one more column, indexing the operand's dim 0."""
    idx = move_axis_to_front(idx, d_idx)
    shape = aval_of(idx).shape
    column = iota(aval_of(idx).dtype, shape[:-1] + (1,), 0)
    return concatenate([idx, column], len(shape) - 1), tuple(a + 1 for a in axes) + (0,)


def _zeros(aval: ShapedArray):
    return full(aval.shape, 0, aval.dtype)


def _batch_dims(idx) -> tuple:
    return tuple(range(aval_of(idx).ndim - 1))


def _spread(v, idx, target_shape):
    """A batch-shaped value (one per index row) broadcast over the update's rest dims."""
    return broadcast_in_dim(v, target_shape, _batch_dims(idx))


# ---------------------------------------------------------------------------
# gather
# ---------------------------------------------------------------------------

def _gather_shape(x, idx, *, axes):
    batch = _check_index_form("gather", x, idx, axes)
    return ShapedArray(batch + _rest_shape(x.shape, axes), x.dtype)


def _gather_impl(x, idx, *, axes):
    x = np.asarray(x)
    idx = _runtime_indices("gather", x, idx, axes)
    k = len(axes)
    if k == 0:
        return np.broadcast_to(x, idx.shape[:-1] + x.shape).copy()
    moved = np.moveaxis(x, axes, tuple(range(k)))
    return moved[tuple(idx[..., j] for j in range(k))]


def _gather_vjp(ct, x, idx, *, out, axes):
    # the transpose of reading positions is adding into them (duplicates accumulate)
    return (scatter_add(_zeros(aval_of(x)), idx, ct, axes), None)


def _gather_vmap(axis_size, args, dims, *, axes):
    (x, idx), (dx, di) = args, dims
    if di is None:
        # the batch dimension of x is one more un-indexed dimension
        new_axes = tuple(a + (a >= dx) for a in axes)
        batch_nd = aval_of(idx).ndim - 1
        rest_before = dx - builtins.sum(1 for a in new_axes if a < dx)
        return gather(x, idx, new_axes), batch_nd + rest_before
    if dx is None:
        return gather(x, move_axis_to_front(idx, di), axes), 0
    idx, new_axes = _index_with_batch(axis_size, idx, di, axes)
    return gather(move_axis_to_front(x, dx), idx, new_axes), 0


def gather_index(at_indices, x_shape, n_batch, axes, idx) -> list[str]:
    """Kernel text: x's index for element `idx` of gather(x, indices, axes), which is
    also scatter's target index of update element `idx`; `at_indices(index)` reads
    `indices` (a traced index wraps like NumPy and raises out of bounds)."""
    batch, rest = idx[:n_batch], iter(idx[n_batch:])
    out = []
    for d, n in enumerate(x_shape):
        if d in axes:
            out.append(f"_wrap({at_indices(batch + [str(axes.index(d))])}, {n})")
        else:
            out.append(next(rest))
    return out


def _gather_loop(at, idx, x, indices, *, out, axes):
    return at(0, gather_index(lambda i: at(1, i), x.shape, indices.ndim - 1, axes, idx))


gather_p = Primitive("gather", kind="indexing", linear_in=(0,))
gather_p.def_impl(_gather_impl)
gather_p.def_shape(_gather_shape)
gather_p.def_jvp(lambda tx, ti, x, idx, *, out, axes: gather(tx, idx, axes))
gather_p.def_vjp(_gather_vjp)
gather_p.def_vmap(_gather_vmap)
gather_p.def_loop(_gather_loop)


def gather(operand, indices, axes):
    """Read `operand` at integer positions: `out[b, *rest] = moved[indices[b], *rest]`.

    Args:
      operand: array of any shape.
      indices: integer array of shape `batch + (len(axes),)`; negative entries
        wrap like NumPy, out-of-bounds entries raise IndexError.
      axes: the dimensions of `operand` that `indices[..., j]` index.
    Returns:
      an array of shape `batch + operand.shape without axes`.

    (Not JAX's `lax.gather(operand, start_indices, dimension_numbers, ...)`.)

    >>> gather(np.arange(6.).reshape(2, 3), np.array([[2], [0]]), axes=(1,))  # x[:, [2, 0]].T
    array([[2., 5.],
           [0., 3.]])
    """
    indices, axes = _prepare_indices("gather", operand, indices, axes)
    return gather_p.bind(operand, indices, axes=axes)


# ---------------------------------------------------------------------------
# the scatter family: shared shape rule, impl and batching rule
# ---------------------------------------------------------------------------

def _scatter_shape(name):
    def rule(x, idx, u, *, axes):
        batch = _check_index_form(name, x, idx, axes)
        expected = batch + _rest_shape(x.shape, axes)
        if u.shape != expected or u.dtype != x.dtype:
            raise FungradTypeError(
                f"{name}: updates must be {ShapedArray(expected, x.dtype)} (batch + operand "
                f"shape without axes {axes}), got {u}")
        return x
    return rule


def _set_last_wins(flat, positions, updates):
    """flat[positions[i]] = updates[i], the last of duplicate positions winning."""
    if positions.size == 0:
        return
    reverse = positions[::-1]
    _, first_in_reverse = np.unique(reverse, return_index=True)
    keep = positions.size - 1 - first_in_reverse
    flat[positions[keep]] = updates[keep]


_COMBINE = {
    "scatter": _set_last_wins,
    "scatter_add": lambda flat, pos, upd: np.add.at(flat, pos, upd),
    "scatter_mul": lambda flat, pos, upd: np.multiply.at(flat, pos, upd),
    "scatter_min": lambda flat, pos, upd: np.minimum.at(flat, pos, upd),
    "scatter_max": lambda flat, pos, upd: np.maximum.at(flat, pos, upd),
}


def _scatter_impl(name):
    combine = _COMBINE[name]

    def impl(x, idx, u, *, axes):
        x = np.asarray(x)
        idx = _runtime_indices(name, x, idx, axes)
        k = len(axes)
        moved = np.moveaxis(x, axes, tuple(range(k))).copy(order="C")
        sizes, rest = moved.shape[:k], moved.shape[k:]
        flat = moved.reshape((_prod(sizes),) + rest)          # a view of `moved`
        n_rows = _prod(idx.shape[:-1])
        if k == 0:
            positions = np.zeros(n_rows, dtype=np.intp)
        else:
            positions = np.ravel_multi_index(
                tuple(idx[..., j].reshape(-1).astype(np.intp) for j in range(k)), sizes)
        combine(flat, positions, np.asarray(u, dtype=x.dtype).reshape((n_rows,) + rest))
        return np.moveaxis(moved, tuple(range(k)), axes)
    return impl


def _scatter_vmap(bind):
    def rule(axis_size, args, dims, *, axes):
        (x, idx, u), (dx, di, du) = args, dims
        x = bdim_to_front(axis_size, x, dx)
        if di is None:
            # x's batch dimension (now 0) is the first un-indexed one: in the updates it
            # comes right after the index batch
            batch_nd = aval_of(idx).ndim - 1
            if du is None:
                u_shape = aval_of(u).shape
                target = u_shape[:batch_nd] + (axis_size,) + u_shape[batch_nd:]
                dims_u = tuple(i for i in range(len(target)) if i != batch_nd)
                u = broadcast_in_dim(u, target, dims_u)
            else:
                u = _move_dim(u, du, batch_nd)
            return bind(x, idx, u, tuple(a + 1 for a in axes)), 0
        idx, new_axes = _index_with_batch(axis_size, idx, di, axes)
        return bind(x, idx, bdim_to_front(axis_size, u, du), new_axes), 0
    return rule


def _scatter_lower(name, update):
    """Kernel lines of a scatter: copy the operand, then one loop over the updates
    writing each with the statement operator `update` ("=", "+=", "*="), or with the
    statement `update(destination, value, dtype)` builds (scatter_min, scatter_max)."""
    def lower(gen, inputs, outputs, *, axes):
        x, ind, u = inputs
        if not x.aval.ndim:
            raise CodegenError(f"primitive '{name}' has no emit rule", name)
        o = gen.name(outputs[0])
        gen.lines.append(f"    {o} = {gen.name(x)}.copy()")
        idx = [f"_i{q}" for q in range(u.aval.ndim)]
        target = gather_index(lambda i: gen.at(ind, i), x.aval.shape, ind.aval.ndim - 1, axes,
                              idx)
        dest = f"{o}[{', '.join(target)}]"
        if callable(update):   # a statement of (destination, value, dtype)
            if x.aval.dtype.kind == "c":
                raise CodegenError(f"'{name}' of complex values is not compiled", name)
            body = update(dest, gen.at(u, idx), x.aval.dtype)
        else:
            body = f"{dest} {update} {gen.at(u, idx)}"
        gen.loops(u.aval.shape, body)
        gen.fresh.update(outputs)
    return lower


def _scatter_family(name, doc, **props):
    p = Primitive(name, kind="indexing", **props)
    p.def_impl(_scatter_impl(name))
    p.def_shape(_scatter_shape(name))

    def bind(operand, indices, updates, axes):
        indices, axes = _prepare_indices(name, operand, indices, axes)
        return p.bind(operand, indices, updates, axes=axes)
    bind.__name__ = name
    bind.__doc__ = doc
    p.def_vmap(_scatter_vmap(bind))
    return p, bind


_SCATTER_DOC = """{what}

    Args:
      operand: the array to update (it is not modified; a new array is returned).
      indices: integer array of shape `batch + (len(axes),)`, as in `gather`;
        negative entries wrap, out-of-bounds entries raise IndexError.
      updates: array of shape `batch + operand.shape without axes`, operand's dtype.
      axes: the dimensions of `operand` that `indices[..., j]` index.
    Returns:
      the updated array, with operand's shape and dtype.

    >>> {example}
    """

scatter_p, scatter = _scatter_family("scatter", _SCATTER_DOC.format(
    what="Write `updates` at the positions `indices`; for duplicate positions the last wins.",
    example="scatter(np.zeros(3), np.array([[0], [0]]), np.array([1., 2.]), (0,))  # [2, 0, 0]"))
scatter_add_p, scatter_add = _scatter_family("scatter_add", _SCATTER_DOC.format(
    what="Add `updates` at the positions `indices`; duplicates accumulate (np.add.at).",
    example="scatter_add(np.zeros(3), np.array([[0], [0]]), np.array([1., 2.]), (0,))"
            "  # [3, 0, 0]"), linear_in=(0, 2))
scatter_mul_p, scatter_mul = _scatter_family("scatter_mul", _SCATTER_DOC.format(
    what="Multiply by `updates` at the positions `indices`; duplicates multiply in turn.",
    example="scatter_mul(np.ones(3), np.array([[0], [0]]), np.array([2., 3.]), (0,))  # [6, 1, 1]"))
scatter_min_p, scatter_min = _scatter_family("scatter_min", _SCATTER_DOC.format(
    what="Take the minimum with `updates` at the positions `indices` (np.minimum.at).",
    example="scatter_min(np.zeros(3), np.array([[1]]), np.array([-2.]), (0,))  # [0, -2, 0]"))
scatter_max_p, scatter_max = _scatter_family("scatter_max", _SCATTER_DOC.format(
    what="Take the maximum with `updates` at the positions `indices` (np.maximum.at).",
    example="scatter_max(np.zeros(3), np.array([[1]]), np.array([2.]), (0,))  # [0, 2, 0]"))


# --- scatter (set): linear in (x, u) for fixed indices ---------------------------------

def _landed(x, idx, axes):
    """Bool per index row: True where that row's update is the one that lands (the
    last writer of its position), found by scattering the row numbers."""
    batch = aval_of(idx).shape[:-1]
    rows = reshape(iota(np.int64, (_prod(batch),), 0), batch)
    k = len(axes)
    sizes = tuple(aval_of(x).shape[a] for a in axes)
    board = scatter(full(sizes, -1, np.int64), idx, rows, tuple(range(k)))
    return eq(gather(board, idx, tuple(range(k))), rows)


def _scatter_set_vjp(ct, x, idx, u, *, out, axes):
    u_aval = aval_of(u)
    # overwritten positions of x get no cotangent; an update gets it only if it landed
    ct_x = scatter(ct, idx, _zeros(u_aval), axes)
    landed = _spread(_landed(x, idx, axes), idx, u_aval.shape)
    ct_u = select(landed, gather(ct, idx, axes), _zeros(u_aval))
    return (ct_x, None, ct_u)


scatter_p.def_lower(_scatter_lower("scatter", "="))
scatter_p.def_jvp(lambda tx, ti, tu, x, idx, u, *, out, axes: scatter(tx, idx, tu, axes))
scatter_p.def_vjp(_scatter_set_vjp)


# --- scatter_add: linear --------------------------------------------------------------

scatter_add_p.def_lower(_scatter_lower("scatter_add", "+="))
scatter_add_p.def_jvp(lambda tx, ti, tu, x, idx, u, *, out, axes: scatter_add(tx, idx, tu, axes))
scatter_add_p.def_vjp(lambda ct, x, idx, u, *, out, axes: (ct, None, gather(ct, idx, axes)))


# --- scatter_mul ------------------------------------------------------------------------

def _mul_partials(x, idx, u, axes):
    """d out[pos(b)] / d u[b] = x[pos] * (product of the other updates at pos), without
    dividing by zero: per position, the product of the nonzero updates, the number of
    zero updates and their sum (0 in value, but it carries their derivative, so that
    the second derivative is right where one other update is zero)."""
    x_aval, u_aval = aval_of(x), aval_of(u)
    zero_u = _zeros(u_aval)
    nonzero = ne(u, u_aval.dtype.type(0))
    u_safe = select(nonzero, u, full(u_aval.shape, 1, u_aval.dtype))
    u_zeros = select(nonzero, zero_u, u)
    prod_nonzero = scatter_mul(full(x_aval.shape, 1, x_aval.dtype), idx, u_safe, axes)
    zero_count = scatter_add(full(x_aval.shape, 0, np.int64), idx,
                             convert_element_type(eq(nonzero, False), np.int64), axes)
    zero_sum = scatter_add(_zeros(x_aval), idx, u_zeros, axes)
    # the same three, without update b itself
    prod_others = div(gather(prod_nonzero, idx, axes), u_safe)
    zeros_others = sub(gather(zero_count, idx, axes), convert_element_type(eq(nonzero, False),
                                                                           np.int64))
    sum_others = sub(gather(zero_sum, idx, axes), u_zeros)
    others = select(eq(zeros_others, 0), prod_others,
                    select(eq(zeros_others, 1), mul(prod_others, sum_others), zero_u))
    return mul(gather(x, idx, axes), others)


def _scatter_mul_jvp(tx, ti, tu, x, idx, u, *, out, axes):
    t_from_u = scatter_add(_zeros(aval_of(x)), idx, mul(tu, _mul_partials(x, idx, u, axes)),
                           axes)
    return add(scatter_mul(tx, idx, u, axes), t_from_u)


def _scatter_mul_vjp(ct, x, idx, u, *, out, axes):
    # out = x * P(pos): d/dx = P, which scatter_mul applies to ct directly
    ct_u = mul(gather(ct, idx, axes), _mul_partials(x, idx, u, axes))
    return (scatter_mul(ct, idx, u, axes), None, ct_u)


scatter_mul_p.def_lower(_scatter_lower("scatter_mul", "*="))
scatter_mul_p.def_jvp(_scatter_mul_jvp)
scatter_mul_p.def_vjp(_scatter_mul_vjp)


# --- scatter_min / scatter_max: the winners share, like lax.max's 0.5 / 0.5 ------------

def _extremum_weights(x, idx, u, out, axes):
    """Weights of x and of each update in the result: 1/count for every candidate
    equal to the result at its position (x itself included), 0 for the others."""
    x_aval, u_aval = aval_of(x), aval_of(u)
    dtype = x_aval.dtype
    x_wins = eq(x, out)
    u_wins = eq(u, gather(out, idx, axes))
    count = scatter_add(convert_element_type(x_wins, dtype), idx,
                        convert_element_type(u_wins, dtype), axes)
    one = dtype.type(1)
    w_x = select(x_wins, div(one, count), _zeros(x_aval))
    w_u = select(u_wins, div(one, gather(count, idx, axes)), _zeros(u_aval))
    return w_x, w_u


def _extremum_jvp(tx, ti, tu, x, idx, u, *, out, axes):
    w_x, w_u = _extremum_weights(x, idx, u, out, axes)
    return add(mul(w_x, tx), scatter_add(_zeros(aval_of(x)), idx, mul(w_u, tu), axes))


def _extremum_vjp(ct, x, idx, u, *, out, axes):
    w_x, w_u = _extremum_weights(x, idx, u, out, axes)
    return (mul(ct, w_x), None, mul(gather(ct, idx, axes), w_u))


for _p in (scatter_min_p, scatter_max_p):
    _p.def_jvp(_extremum_jvp)
    _p.def_vjp(_extremum_vjp)
del _p
# np.minimum.at / np.maximum.at: a NaN wins and stays (reduce_min's and reduce_max's folds)
scatter_min_p.def_lower(_scatter_lower("scatter_min", _min_update))
scatter_max_p.def_lower(_scatter_lower("scatter_max", _max_update))
