"""NumPy indexing, `x.at[idx]` updates and item assignment on traced arrays.

* `getitem(x, idx)`: basic indexing (ints, slices, None, Ellipsis) as slice, rev and
  reshape; anything else goes to `advanced_getitem`.
* `advanced_getitem(x, idx)`: integer arrays (concrete or traced), concrete boolean
  masks, mixed with ints, slices, None and Ellipsis, with NumPy's rule for where
  the advanced dimensions go (in place if the advanced indices are adjacent,
  else first).  Slices are applied first, then one `lax.gather`.
* `x.at[idx].set/add/subtract/multiply/divide/min/max/get(...)` (JAX's API) on
  traced arrays, and `fungrad.numpy.at(x)[idx]...` on any array: a new array,
  never a mutation.  Lowered to the `lax.scatter*` family; partial slices become
  index arrays, whole dimensions stay whole.
* `tracer[idx] = v` and `tracer[idx] += v` inside a traced function: the tracer is
  rebound to the scatter's result (NumPy's in-place semantics, as a pure
  program).  Assigning into a *view* (a basic slice, reshape or transpose of
  another live traced array, which NumPy would alias) raises, suggesting `.at[]`;
  assigning into the base array updates its views, as NumPy's aliasing does.

Out-of-bounds indices raise IndexError (never clamped); duplicate indices: the
last write wins for `set` and for assignment, `add` accumulates (np.add.at).
"""
from __future__ import annotations

import builtins
import weakref
import numpy as np

from .. import lax
from ..errors import (FungradIndexError, FungradNotImplementedError, FungradTypeError,
                      FungradValueError, format_location, user_location)
from ..tracing import Tracer, aval_of, current_trace
from ._checks import axis_index
from ._promotion import _convert
from ._coercion import _as_array, _as_operand, _contains_tracer, array, ravel
from ._shape import broadcast_to
from ._elementwise import negative, reciprocal

__all__ = ["getitem", "advanced_getitem", "at", "index_update", "take", "take_along_axis"]

_BAD_INDEX = ("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
              "integer or boolean arrays are valid indices")


# ---------------------------------------------------------------------------
# basic indexing
# ---------------------------------------------------------------------------

def _normalize_index(idx, shape):
    """Split a basic index into per-dimension slices/ints, plus None positions."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_ellipsis = builtins.sum(1 for i in idx if i is Ellipsis)
    if n_ellipsis > 1:
        raise FungradIndexError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(1 for i in idx if i is not None and i is not Ellipsis)
    if n_real > len(shape):
        raise FungradIndexError(f"too many indices for array: array is {len(shape)}-"
                                f"dimensional, but {n_real} were indexed")
    expanded = []
    for i in idx:
        if i is Ellipsis:
            expanded.extend([builtins.slice(None)] * (len(shape) - n_real))
        else:
            expanded.append(i)
    if n_ellipsis == 0:
        expanded.extend([builtins.slice(None)] * (len(shape) - n_real))
    return expanded


def _is_basic(i):
    return i is None or i is Ellipsis or isinstance(i, (builtins.slice, int, np.integer)) \
        and not isinstance(i, bool)


def getitem(x, idx):
    """NumPy indexing: basic (ints, slices, None, ...) as slice/rev/reshape;
    integer-array and boolean indices as gather (see fungrad.numpy._indexing)."""
    x = _as_array(x)
    items = idx if isinstance(idx, tuple) else (idx,)
    if not builtins.all(_is_basic(i) for i in items):
        return advanced_getitem(x, idx)
    shape = aval_of(x).shape
    expanded = _normalize_index(idx, shape)
    starts, limits, strides, flips, out_shape = [], [], [], [], []
    dim = 0
    for i in expanded:
        if i is None:
            out_shape.append(1)
            continue
        size_d = shape[dim]
        if isinstance(i, builtins.slice):
            lo, hi, st = i.indices(size_d)
            if st > 0:
                n = builtins.max(0, -(-(hi - lo) // st))
                starts.append(lo)
                limits.append(lo + (n - 1) * st + 1 if n else lo)
                strides.append(st)
            else:
                n = builtins.max(0, -(-(lo - hi) // -st))
                last = lo + (n - 1) * st if n else lo
                starts.append(last if n else 0)
                limits.append(lo + 1 if n else 0)
                strides.append(-st)
                flips.append(dim)
            out_shape.append(n)
        else:
            k = int(i)
            if not -size_d <= k < size_d:
                raise FungradIndexError(
                    f"index {k} is out of bounds for axis {dim} with size {size_d}")
            k %= size_d
            starts.append(k)
            limits.append(k + 1)
            strides.append(1)
        dim += 1
    out = lax.slice(x, starts, limits, strides)
    if flips:
        out = lax.rev(out, flips)
    return lax.reshape(out, out_shape)


# ---------------------------------------------------------------------------
# parsing an index
# ---------------------------------------------------------------------------

class _Index:
    """A NumPy index resolved against a shape.

    entries: in index order, ('none',), ('ell',), ('slice', dim, slice) or
      ('adv', dim, int array) -- int arrays are checked and wrapped when concrete.
    batch: the broadcast shape of the advanced indices.
    adjacent: whether the advanced entries are consecutive (their result
      dimensions then stay in place; otherwise they go first)."""

    def __init__(self, entries, batch, traced_mask):
        self.entries = entries
        self.batch = batch
        self.traced_mask = traced_mask
        positions = [i for i, e in enumerate(entries) if e[0] == "adv"]
        self.adjacent = positions == list(range(positions[0], positions[0] + len(positions))) \
            if positions else True

    @property
    def adv(self):
        return [e for e in self.entries if e[0] == "adv"]

    @property
    def slices(self):
        return [e for e in self.entries if e[0] == "slice"]

    def layout(self) -> list:
        """The result's dimensions in order: 'B' (the advanced block), ('s', dim) for a
        sliced dimension of x, 'N' for a None."""
        out: list = []
        placed = False
        if self.adv and not self.adjacent:
            out.append("B")
            placed = True
        for e in self.entries:
            if e[0] == "none":
                out.append("N")
            elif e[0] == "slice":
                out.append(("s", e[1]))
            elif e[0] == "adv" and not placed:
                out.append("B")
                placed = True
        return out


def _classify(item) -> tuple:
    """One non-basic index item: ('int', array or tracer), ('mask', bool array) or
    ('tmask', traced bool)."""
    if isinstance(item, Tracer):
        if item.dtype == np.bool_:
            return ("tmask", item)
        if np.issubdtype(item.dtype, np.integer):
            return ("int", item)
        raise FungradIndexError(f"{_BAD_INDEX}; got a traced {item.aval} value")
    if isinstance(item, (bool, np.bool_)):
        raise FungradIndexError(
            "boolean scalar indices (x[True]) are not supported; use x[None] to add an axis")
    if isinstance(item, (list, tuple)) and _contains_tracer(item):
        return _classify(array(item))
    arr = np.asarray(item)
    if arr.dtype == np.bool_:
        if arr.ndim == 0:
            return _classify(bool(arr))
        return ("mask", arr)
    if arr.dtype != object and np.issubdtype(arr.dtype, np.integer):
        return ("int", arr.astype(np.int64, copy=False))
    if arr.size == 0 and arr.dtype != object:
        return ("int", arr.astype(np.int64))      # x[[]] selects nothing, like NumPy
    raise FungradIndexError(f"{_BAD_INDEX}; got {type(item).__name__} of dtype {arr.dtype}")


def _check_int(arr, size: int, dim: int):
    """A concrete index array checked against a dimension and wrapped like NumPy."""
    if isinstance(arr, Tracer):
        return arr
    bad = (arr < -size) | (arr >= size)
    if bad.any():
        raise FungradIndexError(
            f"index {int(arr[bad].flat[0])} is out of bounds for axis {dim} with size {size}")
    return np.where(arr < 0, arr + size, arr)


def _parse(shape: tuple, idx) -> _Index:
    items = idx if isinstance(idx, tuple) else (idx,)
    raw = []
    for item in items:
        if item is None:
            raw.append(("none",))
        elif item is Ellipsis:
            raw.append(("ell",))
        elif isinstance(item, builtins.slice):
            raw.append(("slice", item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            raw.append(("int", np.asarray(item, dtype=np.int64)))
        else:
            raw.append(_classify(item))
    if builtins.sum(1 for r in raw if r[0] == "ell") > 1:
        raise FungradIndexError("an index can only have a single ellipsis ('...')")
    consumed = builtins.sum(aval_of(r[1]).ndim if r[0] in ("mask", "tmask") else
                            1 if r[0] in ("slice", "int") else 0 for r in raw)
    if consumed > len(shape):
        raise FungradIndexError(f"too many indices for array: array is {len(shape)}-"
                                f"dimensional, but {consumed} were indexed")
    if not any(r[0] == "ell" for r in raw):
        raw.append(("ell",))
        implicit_ellipsis = True
    else:
        implicit_ellipsis = False
    entries: list = []
    traced_mask = None
    dim = 0
    for r in raw:
        kind = r[0]
        if kind == "none":
            entries.append(("none",))
        elif kind == "ell":
            if not implicit_ellipsis:
                entries.append(("ell",))
            for _ in range(len(shape) - consumed):
                entries.append(("slice", dim, builtins.slice(None)))
                dim += 1
        elif kind == "slice":
            entries.append(("slice", dim, r[1]))
            dim += 1
        elif kind == "int":
            entries.append(("adv", dim, _check_int(r[1], shape[dim], dim)))
            dim += 1
        elif kind == "mask":
            mask = r[1]
            for j, n in enumerate(mask.shape):
                if n != shape[dim + j]:
                    raise FungradIndexError(
                        f"boolean index did not match indexed array along axis {dim + j}; "
                        f"size of axis is {shape[dim + j]} but size of corresponding boolean "
                        f"axis is {n}")
            for coords in np.nonzero(mask):
                entries.append(("adv", dim, coords.astype(np.int64)))
                dim += 1
        else:  # a traced mask: its number of True entries decides the shape
            traced_mask = (r[1], dim)
            entries.append(("tmask", dim, r[1]))
            dim += r[1].ndim
    adv_shapes = [aval_of(e[2]).shape for e in entries if e[0] == "adv"]
    try:
        batch = tuple(np.broadcast_shapes(*adv_shapes)) if adv_shapes else ()
    except ValueError:
        raise FungradIndexError(
            "shape mismatch: indexing arrays could not be broadcast together with shapes "
            + " ".join(str(s) for s in adv_shapes)) from None
    return _Index(entries, batch, traced_mask)


def _traced_mask_error(where: str) -> FungradIndexError:
    return FungradIndexError(
        f"{where}: a traced boolean mask was used as an index at "
        f"{format_location(user_location(3))}.\n  The number of True entries decides the "
        "result's shape, which is not known while tracing. Use fungrad.numpy.where(mask, x, "
        "0) (or x.at[mask].set(v) with a scalar v), or make the mask concrete.")


def _stack_columns(columns: list, batch: tuple):
    """Index columns (each broadcastable to `batch`) -> one int array batch + (k,)."""
    if builtins.all(not isinstance(c, Tracer) for c in columns):
        if not columns:
            return np.zeros(batch + (0,), dtype=np.int64)
        return np.stack([np.broadcast_to(c, batch) for c in columns], axis=-1)
    cols = []
    for c in columns:
        c = lax.convert_element_type(c, np.int64) if isinstance(c, Tracer) else \
            np.asarray(c, dtype=np.int64)
        c = lax.broadcast_to(c, batch)
        cols.append(lax.expand_dims(c, (len(batch),)))
    return lax.concatenate(cols, len(batch))


def _arrange(g, index: _Index, block: tuple, src_labels: list):
    """Transpose `g` (dims labelled by src_labels; 'B' expands to block) into the
    NumPy result layout, then insert the None dimensions."""
    def expand(labels):
        out = []
        for lab in labels:
            if lab == "B":
                out.extend(("B", i) for i in range(len(block)))
            elif lab != "N":
                out.append(lab)
        return out
    layout = index.layout()
    src, dst = expand(src_labels), expand(layout)
    perm = [src.index(lab) for lab in dst]
    out = lax.transpose(g, perm)
    sizes = dict(zip(src, aval_of(g).shape, strict=True))
    final = []
    for lab in layout:
        if lab == "B":
            final.extend(block)
        elif lab == "N":
            final.append(1)
        else:
            final.append(sizes[lab])
    return lax.reshape(out, final)


# ---------------------------------------------------------------------------
# reading: x[idx]
# ---------------------------------------------------------------------------

def advanced_getitem(x, idx):
    """`x[idx]` for an index with integer arrays, boolean masks or traced integers.

    Follows NumPy: integer scalars among array indices count as 0-d arrays; the
    advanced dimensions replace the indexed ones in place when the advanced
    indices are adjacent, else they come first.  Negative indices wrap;
    out-of-bounds indices raise IndexError.

    >>> advanced_getitem(np.arange(12).reshape(3, 4), (slice(None), [3, 0]))
    array([[ 3,  0], [ 7,  4], [11,  8]])
    """
    x = _as_array(x)
    shape = aval_of(x).shape
    index = _parse(shape, idx)
    if index.traced_mask is not None:
        raise _traced_mask_error("indexing")
    if not index.adv:
        return getitem(x, tuple(e[2] if e[0] == "slice" else None for e in index.entries
                                     if e[0] in ("slice", "none")))
    by_dim = sorted((e for e in index.entries if e[0] in ("slice", "adv")), key=lambda e: e[1])
    y = getitem(x, tuple(e[2] if e[0] == "slice" else builtins.slice(None)
                              for e in by_dim))
    stacked = _stack_columns([e[2] for e in index.adv], index.batch)
    g = lax.gather(y, stacked, tuple(e[1] for e in index.adv))
    src = ["B"] + [("s", e[1]) for e in by_dim if e[0] == "slice"]
    return _arrange(g, index, index.batch, src)


# ---------------------------------------------------------------------------
# updating: x.at[idx].op(v)
# ---------------------------------------------------------------------------

_SCATTER = {"set": lax.scatter, "add": lax.scatter_add, "mul": lax.scatter_mul,
            "min": lax.scatter_min, "max": lax.scatter_max}


def _result_shape(index: _Index, shape: tuple) -> tuple:
    sizes = {}
    for e in index.slices:
        lo, hi, st = e[2].indices(shape[e[1]])
        sizes[("s", e[1])] = len(range(lo, hi, st))
    out = []
    for lab in index.layout():
        if lab == "B":
            out.extend(index.batch)
        elif lab == "N":
            out.append(1)
        else:
            out.append(sizes[lab])
    return tuple(out)


def _fit_values(values, dtype, target: tuple, where: str):
    """`values` in x's dtype, broadcast to the selected shape (NumPy's assignment rule;
    leading size-1 dimensions beyond the target are dropped)."""
    v = _convert(_as_operand(values), dtype)
    v_shape = aval_of(v).shape
    while len(v_shape) > len(target) and v_shape[0] == 1:
        v_shape = v_shape[1:]
    if v_shape != aval_of(v).shape:
        v = lax.reshape(v, v_shape)
    try:
        ok = np.broadcast_shapes(v_shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise FungradValueError(f"{where}: could not broadcast values of shape {v_shape} to "
                                f"the indexed shape {target}")
    return lax.broadcast_to(v, target)


def _masked_update(x, index: _Index, values, kind: str, where: str):
    """x.at[mask].op(v) for a traced mask: a select, when v does not depend on which
    entries are selected (it broadcasts over the dimensions after the mask)."""
    mask, dim = index.traced_mask
    others = [e for e in index.entries if e[0] not in ("tmask", "ell")]
    if dim != 0 or any(e[0] != "slice" or e[2] != builtins.slice(None) for e in others):
        raise _traced_mask_error(where)
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    rest = shape[mask.ndim:]
    v = _convert(_as_operand(values), dtype)
    try:
        ok = np.broadcast_shapes(aval_of(v).shape, rest) == rest
    except ValueError:
        ok = False
    if not ok:
        raise FungradIndexError(
            f"{where}: with a traced boolean mask the values must broadcast to {rest} (the "
            f"dimensions after the mask), got shape {aval_of(v).shape}; the number of "
            "selected entries is not known while tracing.")
    v = lax.broadcast_to(v, shape)
    full_mask = lax.broadcast_in_dim(mask, shape, tuple(range(mask.ndim)))
    return lax.select(full_mask, _COMBINE[kind](x, v), x)


def index_update(x, idx, values, kind: str = "set"):
    """A new array equal to `x` with `x[idx]` combined with `values`.

    kind: 'set' (last write wins for duplicate indices), 'add' (duplicates
    accumulate, like np.add.at), 'mul', 'min' or 'max'.  `values` broadcasts to
    the shape of `x[idx]` and is cast to x's dtype.  x is never modified.

    >>> index_update(np.zeros(3), [0, 0, 2], 1.0, "add")
    array([2., 0., 1.])
    """
    where = f"x.at[...].{kind}"
    x = _as_array(x)
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    index = _parse(shape, idx)
    if index.traced_mask is not None:
        return _masked_update(x, index, values, kind, where)
    if builtins.all(e[0] != "adv" or (not isinstance(e[2], Tracer) and np.ndim(e[2]) == 0)
                    for e in index.entries):
        return _basic_update(x, index, values, kind, where)
    # partial slices become index columns; whole dimensions stay whole
    partial, whole = [], []
    for e in index.slices:
        lo, hi, st = e[2].indices(shape[e[1]])
        if (lo, hi, st) == (0, shape[e[1]], 1):
            whole.append(e[1])
        else:
            partial.append((e[1], np.arange(lo, hi, st, dtype=np.int64)))
    batch = index.batch
    grid = batch + tuple(len(r) for _, r in partial)
    columns = []
    for e in index.adv:
        a = e[2]
        padded = aval_of(a).shape
        a = lax.reshape(a, padded + (1,) * len(partial)) if isinstance(a, Tracer) else \
            np.reshape(a, padded + (1,) * len(partial))
        columns.append(a)
    for j, (_, r) in enumerate(partial):
        dims = [1] * len(grid)
        dims[len(batch) + j] = len(r)
        columns.append(r.reshape(dims))
    stacked = _stack_columns(columns, grid)
    axes = tuple(e[1] for e in index.adv) + tuple(d for d, _ in partial)
    # values: NumPy's layout of x[idx] -> the scatter's (batch, partial, whole) layout
    v = _fit_values(values, dtype, _result_shape(index, shape), where)
    labels = _labels(index)
    kept = [lab for lab in labels if lab != "N"]
    v = lax.reshape(v, [n for n, lab in zip(aval_of(v).shape, labels, strict=True)
                        if lab != "N"])
    dst = [("B", i) for i in range(len(batch))] + [("s", d) for d, _ in partial] + \
        [("s", d) for d in whole]
    v = lax.transpose(v, [kept.index(lab) for lab in dst])
    return _SCATTER[kind](x, stacked, v, axes)


def _labels(index: _Index) -> list:
    """Per dimension of x[idx]: ('B', i) for the i-th advanced one, ('s', dim) for a
    sliced dimension of x, 'N' for a None."""
    out = []
    for lab in index.layout():
        out.extend([("B", i) for i in range(len(index.batch))] if lab == "B" else [lab])
    return out


_COMBINE = {"set": lambda x, v: v, "add": lax.add, "mul": lax.mul, "min": lax.min,
            "max": lax.max}


def _basic_update(x, index: _Index, values, kind: str, where: str):
    """An update at ints and slices only: the values are padded into place and selected
    (pad and select compile with numba and need no index arrays)."""
    shape, dtype = aval_of(x).shape, aval_of(x).dtype
    v = _fit_values(values, dtype, _result_shape(index, shape), where)
    block, flips, config = [], [], []
    for e in sorted((e for e in index.entries if e[0] in ("adv", "slice")), key=lambda e: e[1]):
        d, size = e[1], shape[e[1]]
        if e[0] == "adv":
            lo, n, step = int(e[2]), 1, 1
        else:
            start, stop, step = e[2].indices(size)
            n = len(range(start, stop, step))
            lo = start if step > 0 else start + (n - 1) * step
            if step < 0:
                flips.append(d)
                step = -step
        if n == 0:
            return x          # nothing is selected
        block.append(n)
        config.append((lo, size - (lo + (n - 1) * step + 1), step - 1))
    v = lax.reshape(v, block)       # ints become size-1 dimensions, Nones disappear
    if flips:
        v = lax.rev(v, flips)
    placed = lax.pad(v, dtype.type(0), config)
    mask = lax.pad(lax.full(block, True, np.bool_), np.bool_(False), config)
    return lax.select(mask, _COMBINE[kind](x, placed), x)


_MODES = (None, "promise_in_bounds", "raise")


def _check_mode(mode, where):
    if mode not in _MODES:
        raise FungradNotImplementedError(
            f"{where}: mode={mode!r} is not supported; fungrad raises IndexError for "
            "out-of-bounds indices (mode=None). Clip the indices yourself with "
            "fungrad.numpy.clip if that is what you want.")


class _IndexUpdateRef:
    """`x.at[idx]`: the functional counterpart of `x[idx] = ...` (JAX's API)."""
    __slots__ = ("array", "index")

    def __init__(self, array, index):
        self.array, self.index = array, index

    def __repr__(self) -> str:
        return f"_IndexUpdateRef({self.array!r}, {self.index!r})"

    def get(self, *, indices_are_sorted=False, unique_indices=False, mode=None,
            fill_value=None):
        """`x[idx]` (out-of-bounds indices raise IndexError)."""
        _check_mode(mode, "x.at[...].get")
        return getitem(self.array, self.index)

    def set(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with x[idx] = values; for duplicate indices the last one wins."""
        _check_mode(mode, "x.at[...].set")
        return index_update(self.array, self.index, values, "set")

    def add(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with values added at idx; duplicate indices accumulate."""
        _check_mode(mode, "x.at[...].add")
        return index_update(self.array, self.index, values, "add")

    def subtract(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with values subtracted at idx; duplicate indices accumulate."""
        _check_mode(mode, "x.at[...].subtract")
        return index_update(self.array, self.index, negative(values), "add")

    def multiply(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x multiplied by values at idx; duplicate indices multiply in turn."""
        _check_mode(mode, "x.at[...].multiply")
        return index_update(self.array, self.index, values, "mul")

    mul = multiply

    def divide(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x divided by values at idx (multiplies by 1 / values)."""
        _check_mode(mode, "x.at[...].divide")
        if not np.issubdtype(aval_of(_as_array(self.array)).dtype, np.inexact):
            raise FungradTypeError("x.at[...].divide needs a floating-point x")
        return index_update(self.array, self.index, reciprocal(
            _convert(_as_operand(values), aval_of(_as_array(self.array)).dtype)),
            "mul")

    def min(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with x[idx] = minimum(x[idx], values), duplicates included."""
        _check_mode(mode, "x.at[...].min")
        return index_update(self.array, self.index, values, "min")

    def max(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with x[idx] = maximum(x[idx], values), duplicates included."""
        _check_mode(mode, "x.at[...].max")
        return index_update(self.array, self.index, values, "max")


class _IndexUpdateHelper:
    """`x.at`: index it (`x.at[idx]`) to get the update methods."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getitem__(self, index) -> _IndexUpdateRef:
        return _IndexUpdateRef(self.array, index)

    def __repr__(self) -> str:
        return f"_IndexUpdateHelper({self.array!r})"


def at(x) -> _IndexUpdateHelper:
    """JAX's `x.at` for any array (NumPy arrays have no `.at` attribute).

    >>> fnp.at(np.zeros(3))[1].set(5.0)        # array([0., 5., 0.]); x is unchanged
    >>> x_tracer.at[idx].add(v)                 # the same, on traced values
    """
    return _IndexUpdateHelper(x)


def take(a, indices, axis=None, mode=None):
    """Elements of `a` at `indices` along `axis` (the flattened array if None), like
    NumPy; out-of-bounds indices raise IndexError (mode=None or 'raise').

    >>> take(np.array([[1., 2.], [3., 4.]]), [1, 0], axis=1)   # [[2, 1], [4, 3]]
    """
    _check_mode(mode, "take")
    a = _as_array(a)
    if axis is None:
        return getitem(ravel(a), _as_index(indices))
    nd = aval_of(a).ndim
    axis = _axis(axis, nd, "take")
    return getitem(a, (builtins.slice(None),) * axis + (_as_index(indices),))


def take_along_axis(arr, indices, axis, mode=None):
    """`out[..., i, ...] = arr[..., indices[..., i, ...], ...]` along `axis`, with the
    other dimensions of `indices` and `arr` broadcast (NumPy's take_along_axis).

    >>> take_along_axis(np.array([[10., 30., 20.]]), np.array([[1, 2]]), axis=1)  # [[30, 20]]
    """
    _check_mode(mode, "take_along_axis")
    arr = _as_array(arr)
    indices = _as_index(indices)
    if axis is None:
        return take(arr, ravel(indices) if isinstance(indices, Tracer) else
                    np.ravel(indices))
    nd = aval_of(arr).ndim
    if aval_of(indices).ndim != nd:
        raise FungradTypeError(f"take_along_axis: indices must have {nd} dimensions like arr, "
                               f"got {aval_of(indices).ndim}")
    axis = _axis(axis, nd, "take_along_axis")
    shape = np.broadcast_shapes(
        tuple(s for i, s in enumerate(aval_of(arr).shape) if i != axis),
        tuple(s for i, s in enumerate(aval_of(indices).shape) if i != axis))
    index = []
    for d in range(nd):
        if d == axis:
            index.append(indices)
        else:
            n = shape[d - (d > axis)]
            view = [1] * nd
            view[d] = n
            index.append(np.arange(n).reshape(view))
    if any(aval_of(arr).shape[d] != shape[d - (d > axis)] for d in range(nd) if d != axis):
        arr = broadcast_to(arr, tuple(shape[:axis]) + (aval_of(arr).shape[axis],)
                                + tuple(shape[axis:]))
    return getitem(arr, tuple(index))


def _as_index(indices):
    if isinstance(indices, Tracer):
        return indices
    if isinstance(indices, (list, tuple)) and _contains_tracer(indices):
        return array(indices)
    return np.asarray(indices)


def _axis(axis, nd, where):
    return axis_index(axis, nd)


# ---------------------------------------------------------------------------
# item assignment on tracers, and views
# ---------------------------------------------------------------------------

class _ViewInfo:
    """Aliasing record of a tracer: `root` (weak) is the live array it is a view of,
    `redo(root)` recomputes it; `children` (weak) are the views of this array."""
    __slots__ = ("root", "redo", "children", "how", "prune_at")

    def __init__(self, root=None, redo=None, how=""):
        self.root = root
        self.redo = redo
        self.how = how
        self.children: list = []
        self.prune_at = 32


def _info(t: Tracer) -> _ViewInfo | None:
    return getattr(t, "_view", None)


def _live_root(t: Tracer):
    info = _info(t)
    return None if info is None or info.root is None else info.root()


def _mark_view(view, parent: Tracer, redo, how: str):
    """Record that `view` aliases `parent` (NumPy would return a view)."""
    if not isinstance(view, Tracer) or view is parent or view._trace is not parent._trace:
        return view
    root = _live_root(parent)
    if root is not None:
        parent_redo = _info(parent).redo
        full_redo = lambda r: redo(parent_redo(r))  # noqa: E731
    else:
        root, full_redo = parent, redo
    root_info = _info(root)
    if root_info is None:
        root_info = root._view = _ViewInfo()
    if len(root_info.children) >= root_info.prune_at:    # drop dead views (amortized)
        root_info.children = [c for c in root_info.children if c() is not None]
        root_info.prune_at = builtins.max(32, 2 * len(root_info.children))
    root_info.children.append(weakref.ref(view))
    view._view = _ViewInfo(weakref.ref(root), full_redo, how)
    return view


def _setitem(self: Tracer, idx, value) -> None:
    """`tracer[idx] = value`: rebind this tracer to the scatter's result."""
    trace = current_trace()
    if self._trace is not trace:
        raise FungradTypeError(
            f"item assignment at {format_location(user_location(2))} into a traced "
            f"{self.aval} value that belongs to another (enclosing or finished) "
            "transformation.\n  Only arrays created or traced inside the function being "
            "transformed can be assigned to; use y = x.at[idx].set(value) instead.")
    root = _live_root(self)
    if root is not None:
        raise FungradTypeError(
            f"item assignment at {format_location(user_location(2))} into a traced "
            f"{self.aval} array that is a view ({_info(self).how}) of another traced array "
            f"of shape {root.shape}.\n  NumPy would write through to that array as well, "
            "which fungrad's traced arrays cannot do. Use y = x.at[idx].set(value) (a new "
            "array), or assign into the base array and slice it afterwards.")
    new = index_update(self, idx, value, "set")
    self._var = new._var
    info = _info(self)
    if info is not None:     # views of this array see the write, as in NumPy
        for ref in list(info.children):
            child = ref()
            if child is not None and _live_root(child) is self:
                child._var = _info(child).redo(self)._var


def _view_method(name: str, fn, how: str):
    def method(self, *args, **kwargs):
        out = fn(self, *args, **kwargs)
        return _mark_view(out, self, lambda base: fn(base, *args, **kwargs), how)
    method.__name__ = name
    return method


def _fresh(fn):
    """A method whose NumPy result is a new array: never return `self` itself."""
    def method(self, *args, **kwargs):
        out = fn(self, *args, **kwargs)
        return Tracer(self._trace, self._var) if out is self else out
    method.__name__ = getattr(fn, "__name__", "method")
    return method


def _getitem(self, idx):
    out = getitem(self, idx)
    items = idx if isinstance(idx, tuple) else (idx,)
    if builtins.all(_is_basic(i) for i in items):   # basic indexing gives a view
        return _mark_view(out, self, lambda base: getitem(base, idx), f"x[{_fmt(idx)}]")
    return out


def _fmt(idx) -> str:
    items = idx if isinstance(idx, tuple) else (idx,)

    def one(i):
        if i is None:
            return "None"
        if i is Ellipsis:
            return "..."
        if isinstance(i, builtins.slice):
            return ":".join("" if v is None else str(v) for v in (i.start, i.stop)) + (
                f":{i.step}" if i.step is not None else "")
        return str(i)
    return ", ".join(one(i) for i in items)

