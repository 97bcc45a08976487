"""The structural primitives that every other primitive's rules use, and the
batching helpers built on them: convert_element_type, broadcast_in_dim (with
broadcast_to and full), reshape, transpose, and reduce_sum, the transpose of
broadcast_in_dim.  Their rules need only each other, so this module imports no
other primitive module; elementwise.py, shape.py, reduce.py, indexing.py and
linalg.py all build on it.
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradTypeError, FungradValueError
from ..tracing import Tracer, aval_of
from ._static import at_call_site, static_dtype, static_ints
from ._util import is_float, np_dtype, reshape_index

__all__ = ["convert_element_type", "broadcast_in_dim", "broadcast_to", "full", "reshape",
           "expand_dims", "transpose", "reduce_sum", "zeros_like_aval",
           "convert_element_type_p", "broadcast_in_dim_p", "reshape_p", "transpose_p",
           "reduce_sum_p", "move_axis_to_front", "bdim_to_front", "elementwise_vmap"]


# --- batching helpers -----------------------------------------------------------------

def move_axis_to_front(x, axis: int):
    """Move `axis` of x to position 0 (a transpose, or nothing)."""
    if axis == 0:
        return x
    perm = (axis,) + tuple(i for i in range(np.ndim(x) if not isinstance(x, Tracer)
                                           else x.ndim) if i != axis)
    return transpose(x, perm)


def bdim_to_front(axis_size: int, x, dim):
    """x with its batch dimension first; unbatched x is broadcast to the batch."""
    if dim is None:
        shape = aval_of(x).shape
        return broadcast_in_dim(x, (axis_size,) + shape,
                                          tuple(range(1, len(shape) + 1)))
    return move_axis_to_front(x, dim)


def elementwise_vmap(prim):
    """Batching rule for elementwise primitives (operands may be 0-d scalars)."""
    def rule(axis_size, args, dims, **params):
        ndims = [aval_of(a).ndim - (d is not None) for a, d in zip(args, dims)]
        most = max(ndims)
        moved = []
        for a, d, nd in zip(args, dims, ndims):
            if d is None and nd == 0:
                moved.append(a)          # an unbatched scalar applies to every element
            elif d is None:
                moved.append(bdim_to_front(axis_size, a, None))
            else:
                a = move_axis_to_front(a, d)
                if nd < most:            # a batched scalar against batched arrays
                    target = None
                    for b, dd, n2 in zip(args, dims, ndims):
                        if n2 == most:
                            target = aval_of(b).shape
                            if dd is not None:
                                target = target[:dd] + target[dd + 1:]
                            break
                    a = broadcast_in_dim(a, (axis_size,) + target, (0,))
                moved.append(a)
        return prim.bind(*moved, **params), 0
    return rule


# --- convert_element_type ---------------------------------------------------------

def _convert_impl(x, *, new_dtype):
    if np.iscomplexobj(x) and np.dtype(new_dtype).kind != "c":
        x = np.real(x)   # complex -> real keeps the real part (as JAX), without a warning
    return np.asarray(x).astype(new_dtype) if np.ndim(x) else np.dtype(new_dtype).type(x)


def _convert_tangent(t, new_dtype):
    if not is_float(new_dtype):
        return None
    return convert_element_type(t, new_dtype)


convert_element_type_p = Primitive("convert_element_type", kind="elementwise", linear_in="all")
convert_element_type_p.def_impl(_convert_impl)
convert_element_type_p.def_shape(lambda x, *, new_dtype: x.update(dtype=new_dtype))
convert_element_type_p.def_vmap(
    lambda n, args, dims, *, new_dtype: (convert_element_type(args[0], new_dtype), dims[0]))
convert_element_type_p.def_emit(
    lambda x, *, new_dtype: f"np.{np.dtype(new_dtype).name}({x})")


def _convert_scalar_emit(x, *, out, in_avals, new_dtype):
    if out.dtype == np.bool_:
        return f"({x} != 0)"
    if in_avals[0].dtype.kind == "c" and out.dtype.kind != "c":
        return f"np.{out.dtype.name}(({x}).real)"
    return x if in_avals[0].dtype == out.dtype else None


convert_element_type_p.def_scalar_emit(_convert_scalar_emit)
convert_element_type_p.def_jvp(lambda t, x, *, out, new_dtype: _convert_tangent(t, new_dtype))
convert_element_type_p.def_vjp(lambda ct, x, *, out, new_dtype: (
    convert_element_type(ct, aval_of(x).dtype) if is_float(aval_of(x).dtype) else None,))


def convert_element_type(x, new_dtype):
    new_dtype = new_dtype if isinstance(new_dtype, np.dtype) else static_dtype(new_dtype,
                                                                               "new_dtype")
    if aval_of(x).dtype == new_dtype and not isinstance(x, (int, float, bool, complex)):
        return x
    return convert_element_type_p.bind(x, new_dtype=new_dtype)


# --- broadcast_in_dim ---------------------------------------------------------------

def _broadcast_shape(x, *, shape, broadcast_dimensions):
    if len(broadcast_dimensions) != x.ndim:
        raise FungradTypeError(
            f"broadcast_in_dim: {x} needs {x.ndim} broadcast_dimensions, got "
            f"{broadcast_dimensions}")
    for d, target in zip(x.shape, broadcast_dimensions):
        if not 0 <= target < len(shape) or d not in (1, shape[target]):
            raise FungradTypeError(
                f"broadcast_in_dim: cannot broadcast {x} to shape {shape} "
                f"with broadcast_dimensions={broadcast_dimensions}")
    if list(broadcast_dimensions) != sorted(broadcast_dimensions):
        raise FungradTypeError("broadcast_in_dim: broadcast_dimensions must be increasing")
    return ShapedArray(shape, x.dtype)


def _broadcast_impl(x, *, shape, broadcast_dimensions):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for d, target in zip(x.shape, broadcast_dimensions):
        expanded[target] = d
    return np.broadcast_to(x.reshape(expanded), shape)


def _broadcast_vjp(ct, x, *, out, shape, broadcast_dimensions):
    x_aval = aval_of(x)
    kept = set(broadcast_dimensions)
    # sum over new dimensions and over dimensions that were size 1 in x
    summed = tuple(i for i in range(len(shape)) if i not in kept)
    stretched = tuple(t for d, t in zip(x_aval.shape, broadcast_dimensions)
                      if d == 1 and shape[t] != 1)
    ct_x = reduce_sum(ct, tuple(sorted(summed + stretched))) if summed or stretched else ct
    return (reshape(ct_x, x_aval.shape),)


def _broadcast_vmap(axis_size, args, dims, *, shape, broadcast_dimensions):
    (x,), (d,) = args, dims
    x = move_axis_to_front(x, d)
    return broadcast_in_dim(x, (axis_size,) + tuple(shape),
                            (0,) + tuple(b + 1 for b in broadcast_dimensions)), 0


def _broadcast_emit(x, *, shape, broadcast_dimensions):
    return f"np.broadcast_to({x}, {tuple(shape)!r})"  # codegen reshapes first when needed


def _broadcast_loop(at, idx, x, *, out, shape, broadcast_dimensions):
    return at(0, ["0" if x.shape[k] == 1 and out.shape[d] != 1 else idx[d]
                  for k, d in enumerate(broadcast_dimensions)])


broadcast_in_dim_p = Primitive("broadcast_in_dim", kind="shape", value_preserving=True,
                               linear_in="all")
broadcast_in_dim_p.def_impl(_broadcast_impl)
broadcast_in_dim_p.def_shape(_broadcast_shape)
broadcast_in_dim_p.def_jvp(lambda t, x, *, out, shape, broadcast_dimensions: broadcast_in_dim(
    t, shape, broadcast_dimensions))
broadcast_in_dim_p.def_vjp(_broadcast_vjp)
broadcast_in_dim_p.def_vmap(_broadcast_vmap)
broadcast_in_dim_p.def_emit(_broadcast_emit)
broadcast_in_dim_p.def_loop(_broadcast_loop, relabels=True)


def broadcast_in_dim(x, shape, broadcast_dimensions):
    """Broadcast `x` to `shape`; x's dimension i becomes dimension broadcast_dimensions[i]."""
    shape = static_ints(shape, "shape", minimum=0)
    broadcast_dimensions = static_ints(broadcast_dimensions, "broadcast_dimensions")
    if aval_of(x).shape == shape and broadcast_dimensions == tuple(range(len(shape))):
        return x
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=broadcast_dimensions)


def broadcast_to(x, shape):
    """NumPy-style broadcast of x (trailing alignment) to `shape`."""
    shape = static_ints(shape, "shape", minimum=0)
    nd = aval_of(x).ndim
    if nd > len(shape):
        raise FungradValueError(f"broadcast_to: cannot broadcast {aval_of(x)} to {shape}")
    return broadcast_in_dim(x, shape, tuple(range(len(shape) - nd, len(shape))))


def full(shape, fill_value, dtype):
    """An array of `shape` filled with a scalar (a broadcast literal)."""
    dtype = dtype if isinstance(dtype, np.dtype) else static_dtype(dtype)
    shape = static_ints(shape, "shape", minimum=0)
    if not hasattr(fill_value, "aval"):
        ShapedArray.of(fill_value)   # refuses a string, None, an object
        if np.ndim(fill_value):
            raise FungradTypeError(at_call_site(
                f"full: fill_value must be a scalar, got an array of shape "
                f"{np.shape(fill_value)}"))
    value = dtype.type(fill_value) if not hasattr(fill_value, "aval") and not isinstance(
        fill_value, np.ndarray) else fill_value
    if isinstance(value, np.ndarray) or hasattr(value, "aval"):
        value = convert_element_type(value, dtype)
    return broadcast_in_dim_p.bind(value, shape=shape, broadcast_dimensions=())


def zeros_like_aval(aval: ShapedArray):
    if not isinstance(aval, ShapedArray):
        raise FungradTypeError(at_call_site(
            f"zeros_like_aval: expected a ShapedArray (an aval), got {type(aval).__name__}; "
            "use fungrad.numpy.zeros_like for arrays"))
    return full(aval.shape, 0, aval.dtype)


# --- reshape ------------------------------------------------------------------------

def _reshape_shape(x, *, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise FungradTypeError(f"reshape: cannot reshape {x} to {tuple(new_sizes)}")
    return ShapedArray(new_sizes, x.dtype)


reshape_p = Primitive("reshape", kind="shape", value_preserving=True, linear_in="all")
reshape_p.def_impl(lambda x, *, new_sizes: np.reshape(x, new_sizes))
reshape_p.def_shape(_reshape_shape)
reshape_p.def_jvp(lambda t, x, *, out, new_sizes: reshape(t, new_sizes))
reshape_p.def_vjp(lambda ct, x, *, out, new_sizes: (reshape(ct, aval_of(x).shape),))
reshape_p.def_vmap(lambda n, args, dims, *, new_sizes: (
    reshape(move_axis_to_front(args[0], dims[0]), (n,) + tuple(new_sizes)), 0))
reshape_p.def_emit(lambda x, *, new_sizes: f"np.ascontiguousarray({x}).reshape({tuple(new_sizes)!r})")
reshape_p.def_loop(lambda at, idx, x, *, out, new_sizes: at(
    0, reshape_index(x.shape, out.shape, idx)), relabels=True)


def reshape(x, new_sizes):
    new_sizes = static_ints(new_sizes, "new_sizes", minimum=0)
    if aval_of(x).shape == new_sizes:
        return x
    return reshape_p.bind(x, new_sizes=new_sizes)


def expand_dims(x, dimensions):
    """Insert size-1 dimensions at the (output) positions `dimensions`."""
    dimensions = static_ints(dimensions, "dimensions")
    shape = list(aval_of(x).shape)
    ndim = len(shape) + len(dimensions)
    if any(not -ndim <= d < ndim for d in dimensions) or len(
            {d % ndim for d in dimensions}) != len(dimensions):
        raise FungradValueError(at_call_site(
            f"expand_dims: dimensions {dimensions} are out of range or repeated for a result "
            f"of {ndim} dimensions"))
    for d in sorted(d % ndim for d in dimensions):
        shape.insert(d, 1)
    return reshape(x, shape)


# --- transpose ----------------------------------------------------------------------

def _transpose_shape(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise FungradValueError(f"transpose: {permutation} is not a permutation of {x}'s axes")
    return ShapedArray([x.shape[p] for p in permutation], x.dtype)


transpose_p = Primitive("transpose", kind="shape", value_preserving=True, linear_in="all")
transpose_p.def_impl(lambda x, *, permutation: np.transpose(x, permutation))
transpose_p.def_shape(_transpose_shape)
transpose_p.def_jvp(lambda t, x, *, out, permutation: transpose(t, permutation))
transpose_p.def_vjp(lambda ct, x, *, out, permutation: (
    transpose(ct, tuple(np.argsort(permutation).tolist())),))
transpose_p.def_vmap(lambda n, args, dims, *, permutation: (
    transpose(move_axis_to_front(args[0], dims[0]), (0,) + tuple(p + 1 for p in permutation)),
    0))
transpose_p.def_emit(lambda x, *, permutation: f"np.transpose({x}, {tuple(permutation)!r})")
transpose_p.def_loop(lambda at, idx, x, *, out, permutation: at(
    0, [idx[permutation.index(d)] for d in range(x.ndim)]))


def transpose(x, permutation):
    permutation = static_ints(permutation, "permutation")
    if permutation == tuple(range(len(permutation))):
        return x
    return transpose_p.bind(x, permutation=permutation)


# --- reductions: shared helpers (reduce.py uses them too) ------------------------------

def _reduce_shape(name):
    def shape(x, *, axes):
        if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
            raise FungradValueError(f"{name}: axes {axes} are invalid for {x}")
        return ShapedArray([d for i, d in enumerate(x.shape) if i not in axes], x.dtype)
    return shape


def _kept_dims(x_aval, axes):
    return tuple(i for i in range(x_aval.ndim) if i not in axes)


def _normalize_axes(name, x, axes):
    axes = static_ints(axes, "axes")
    nd = aval_of(x).ndim
    if not nd:
        if axes:
            raise FungradValueError(at_call_site(f"{name}: axes {axes} are out of range for "
                                                 "a 0-d array"))
        return ()
    for a in axes:
        if not -nd <= a < nd:
            raise FungradValueError(f"{name}: axis {a} is out of range for {aval_of(x)}")
    normalized = tuple(sorted(a % nd for a in axes))
    if len(set(normalized)) != len(normalized):
        raise FungradValueError(f"{name}: repeated axis in {tuple(axes)} for {aval_of(x)}")
    return normalized


def _reduce_vmap(prim):
    """Batching rule of a reduction over `axes`: batch dim first, axes shifted by one."""
    def rule(axis_size, args, dims, *, axes):
        x = move_axis_to_front(args[0], dims[0])
        return prim.bind(x, axes=tuple(a + 1 for a in axes)), 0
    return rule


def _expand_to(ct, x_aval, axes):
    """Broadcast a reduced value back over the reduced axes of x."""
    return broadcast_in_dim(ct, x_aval.shape, _kept_dims(x_aval, axes))


# --- reduce_sum -------------------------------------------------------------------

# float16 and float32 sums accumulate in float64 and round once (in kernels too)
WIDE_ACCUMULATOR = {np.dtype(np.float16): np.dtype(np.float64),
                    np.dtype(np.float32): np.dtype(np.float64)}


def _sum_impl(x, *, axes):
    x = np.asarray(x)
    if not axes:
        return x
    wide = WIDE_ACCUMULATOR.get(x.dtype)
    if wide is None:
        return np.sum(x, axis=axes, dtype=x.dtype)
    return np.asarray(np.sum(x, axis=axes, dtype=wide)).astype(x.dtype)[()]


def narrow_accumulate(op):
    """The statement folding `v` into `acc` with `op` ('+', '*'): integers narrower
    than int64 wrap as NumPy's do (numba computes them in int64)."""
    def rule(acc, v, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind in "iu" and dtype != np.int64:
            return f"{acc} = {np_dtype(dtype)}({acc} {op} {v})"
        return f"{acc} {op}= {v}"
    return rule


def _sum_emit(x, *, axes):
    # numba's np.sum takes one int axis: sum the highest axis first
    text = x
    for a in sorted(axes, reverse=True):
        text = f"np.sum({text}, axis={a})"
    return text


reduce_sum_p = Primitive("reduce_sum", kind="reduction", linear_in="all")
reduce_sum_p.def_impl(_sum_impl)
reduce_sum_p.def_shape(_reduce_shape("reduce_sum"))
reduce_sum_p.def_jvp(lambda t, x, *, out, axes: reduce_sum(t, axes))
# the cotangent of a sum is the cotangent broadcast back over the summed axes
reduce_sum_p.def_vjp(lambda ct, x, *, out, axes: (_expand_to(ct, aval_of(x), axes),))
reduce_sum_p.def_vmap(_reduce_vmap(reduce_sum_p))
reduce_sum_p.def_emit(_sum_emit)
reduce_sum_p.def_accumulate(narrow_accumulate("+"), identity=lambda dtype: 0, wide=True)


def reduce_sum(x, axes):
    """Sum of `x` over `axes` (lax.reduce_sum); the dtype is kept."""
    axes = _normalize_axes("reduce_sum", x, axes)
    if not axes:
        return x
    return reduce_sum_p.bind(x, axes=axes)
