"""Convolution and windowed reduction: `conv_general_dilated` (and `conv`) and
`reduce_window`, with JAX's signatures and semantics.

Both are compositions of first-order primitives rather than primitives of their own: the
(dilated, padded) input is read once per kernel offset by a strided `slice`, and the
slices are contracted with the kernel taps by `dot_general` (or combined by the
reduction).  So every transform applies without new rules: jvp, vjp (slice transposes
to pad), vmap, jit (slice, pad and dot_general have kernel emits), and higher
derivatives.  The cost is one contraction per kernel tap (9 for a 3x3 kernel), which is
what an im2col convolution does too, without materialising the columns.
"""
from __future__ import annotations

import builtins
import itertools
from typing import Sequence

import numpy as np

from ..errors import FungradNotImplementedError, FungradTypeError, FungradValueError
from ..tracing import aval_of
from ._static import (at_call_site, static_callable, static_int, static_int_pairs, static_ints,
                      static_str)
from .base import convert_element_type, full, reshape, transpose
from .elementwise import add
from .linalg import dot_general
from .shape import pad, slice

__all__ = ["conv_general_dilated", "conv", "conv_with_general_padding", "reduce_window",
           "conv_dimension_numbers", "padtype_to_pads"]


def conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers):
    """(lhs_perm, rhs_perm, out_perm): the axes of (batch, feature, *spatial) of the input,
    (out feature, in feature, *spatial) of the kernel and (batch, feature, *spatial) of the
    output.  `dimension_numbers` is None (NCHW, OIHW, NCHW), a triple of strings such as
    ('NHWC', 'HWIO', 'NHWC'), or a triple of such permutations."""
    lhs_shape = static_ints(lhs_shape, "lhs_shape", minimum=0)
    static_ints(rhs_shape, "rhs_shape", minimum=0)
    nd = len(lhs_shape)
    if dimension_numbers is None:
        iota = tuple(range(nd))
        return iota, iota, iota
    if not isinstance(dimension_numbers, (tuple, list)) or len(dimension_numbers) != 3:
        raise FungradTypeError(at_call_site(
            f"conv_general_dilated: dimension_numbers must be None or a triple such as "
            f"('NCHW', 'OIHW', 'NCHW'), got {dimension_numbers!r:.60}"))
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    if all(isinstance(s, str) for s in (lhs_spec, rhs_spec, out_spec)):
        if not len(lhs_spec) == len(rhs_spec) == len(out_spec) == nd:
            raise FungradValueError(
                f"conv_general_dilated: dimension_numbers {dimension_numbers} must each have "
                f"{nd} letters (the operand rank)")
        spatial = [c for c in rhs_spec if c not in "OI"]
        try:
            lhs_perm = (lhs_spec.index("N"), lhs_spec.index("C")) + tuple(
                lhs_spec.index(c) for c in spatial)
            rhs_perm = (rhs_spec.index("O"), rhs_spec.index("I")) + tuple(
                rhs_spec.index(c) for c in spatial)
            out_perm = (out_spec.index("N"), out_spec.index("C")) + tuple(
                out_spec.index(c) for c in spatial)
        except ValueError:
            raise FungradValueError(
                f"conv_general_dilated: dimension_numbers {dimension_numbers} must name N and "
                "C in the input and output, O and I in the kernel, and the same spatial "
                "letters in all three") from None
        return lhs_perm, rhs_perm, out_perm
    perms = tuple(static_ints(spec, "dimension_numbers") for spec in
                  (lhs_spec, rhs_spec, out_spec))
    if any(sorted(perm) != list(range(nd)) for perm in perms):
        raise FungradValueError(at_call_site(
            f"conv_general_dilated: dimension_numbers {dimension_numbers} must be three "
            f"permutations of range({nd}) (or three layout strings such as 'NCHW')"))
    return perms


def padtype_to_pads(in_shape, window_shape, window_strides, padding: str):
    """Explicit (low, high) pads for 'VALID', 'SAME' (extra on the high side) or
    'SAME_LOWER' (extra on the low side)."""
    kind = static_str(padding, "padding", ("SAME", "SAME_LOWER", "VALID"), upper=True)
    in_shape = static_ints(in_shape, "in_shape", minimum=0)
    if kind == "VALID":
        return [(0, 0)] * len(in_shape)
    window_shape = static_ints(window_shape, "window_shape", minimum=1)
    window_strides = static_ints(window_strides, "window_strides", minimum=1)
    if not len(in_shape) == len(window_shape) == len(window_strides):
        raise FungradValueError(at_call_site(
            f"padtype_to_pads: in_shape, window_shape and window_strides must have one entry "
            f"per dimension, got {in_shape}, {window_shape}, {window_strides}"))
    pads = []
    for n, k, s in zip(in_shape, window_shape, window_strides, strict=True):
        out = -(-n // s)
        total = builtins.max((out - 1) * s + k - n, 0)
        low = total // 2 if kind == "SAME" else (total + 1) // 2
        pads.append((low, total - low))
    return pads


def _pairs(padding, nspatial, in_shape, window, strides, where):
    if isinstance(padding, str):
        return padtype_to_pads(in_shape, window, strides, padding)
    pads = list(static_int_pairs(padding, "padding"))
    if len(pads) != nspatial:
        raise FungradValueError(f"{where}: padding must be a string or {nspatial} (low, high) "
                                f"pairs, got {padding!r}")
    return pads


def _ints(values, n, default, name, where):
    if values is None:
        return (default,) * n
    values = static_ints(values, name)
    if len(values) != n or any(v < 1 for v in values):
        raise FungradValueError(f"{where}: {name} must be {n} positive ints, got {values}")
    return values


def _window_slices(x, spatial_axes, window, strides, window_dilation):
    """For each window offset: the strided slice of x whose element j (per spatial axis)
    is x[j * stride + offset * dilation]; and the output spatial shape."""
    shape = aval_of(x).shape
    out_shape = []
    for ax, k, s, d in zip(spatial_axes, window, strides, window_dilation, strict=True):
        span = (k - 1) * d + 1
        out_shape.append(builtins.max(0, (shape[ax] - span) // s + 1))
    if 0 in out_shape:
        return                          # an empty output: the callers build it
    for offset in itertools.product(*[range(k) for k in window]):
        start, limit, step = [0] * len(shape), list(shape), [1] * len(shape)
        for q, ax in enumerate(spatial_axes):
            start[ax] = offset[q] * window_dilation[q]
            limit[ax] = start[ax] + (out_shape[q] - 1) * strides[q] + 1
            step[ax] = strides[q]
        yield offset, slice(x, start, limit, step)


def conv_general_dilated(lhs, rhs, window_strides: Sequence[int], padding,
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None):
    """lax.conv_general_dilated: an N-d cross-correlation (the kernel is not flipped).

    lhs: input (batch, feature, *spatial) in the layout of `dimension_numbers`; rhs: kernel
    (out feature, in feature / feature_group_count, *window); padding: 'SAME', 'VALID',
    'SAME_LOWER' or (low, high) per spatial dimension (negative pads crop); lhs_dilation
    (transposed convolution) and rhs_dilation (atrous) insert holes.

    >>> x = np.ones((1, 1, 4, 4)); w = np.ones((1, 1, 3, 3))
    >>> conv_general_dilated(x, w, (1, 1), "VALID").shape
    (1, 1, 2, 2)
    """
    where = "conv_general_dilated"
    la, ra = aval_of(lhs), aval_of(rhs)
    if la.ndim != ra.ndim or la.ndim < 2:
        raise FungradTypeError(f"{where}: lhs and rhs must have the same rank >= 2, got {la} "
                               f"and {ra}")
    if la.dtype != ra.dtype:
        raise FungradTypeError(f"{where}: lhs and rhs dtypes must match, got {la} and {ra}")
    if batch_group_count != 1:
        raise FungradNotImplementedError(f"{where}: batch_group_count other than 1 is not "
                                         "supported")
    lhs_perm, rhs_perm, out_perm = conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    x = transpose(lhs, lhs_perm) if lhs_perm != tuple(range(la.ndim)) else lhs
    w = transpose(rhs, rhs_perm) if rhs_perm != tuple(range(ra.ndim)) else rhs
    n, c, *in_spatial = aval_of(x).shape
    o, i, *window = aval_of(w).shape
    nsp = len(window)
    strides = _ints(window_strides, nsp, 1, "window_strides", where)
    lhs_dil = _ints(lhs_dilation, nsp, 1, "lhs_dilation", where)
    rhs_dil = _ints(rhs_dilation, nsp, 1, "rhs_dilation", where)
    g = static_int(feature_group_count, "feature_group_count")
    if g < 1 or c % g or o % g or c // g != i:
        raise FungradValueError(
            f"{where}: with feature_group_count={g} the input features ({c}) must be "
            f"{g} x the kernel's input features ({i}), and the output features ({o}) a "
            f"multiple of {g}")
    dilated = [(s - 1) * d + 1 if s else 0 for s, d in zip(in_spatial, lhs_dil)]
    eff_window = [(k - 1) * d + 1 for k, d in zip(window, rhs_dil)]
    pads = _pairs(padding, nsp, dilated, eff_window, strides, where)
    zero = aval_of(x).dtype.type(0)
    if any(p != (0, 0) for p in pads) or any(d != 1 for d in lhs_dil):
        x = pad(x, zero, [(0, 0, 0), (0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in
                                                    zip(pads, lhs_dil)])
    spatial_axes = list(range(2, 2 + nsp))
    # x: (n, g, i, *out) per tap; w: (g, o/g, i) per tap -> (g, n, *out, o/g) summed over taps
    total = None
    out_spatial = None
    for offset, xs in _window_slices(x, spatial_axes, window, strides, rhs_dil):
        out_spatial = aval_of(xs).shape[2:]
        xg = reshape(xs, (n, g, i) + tuple(out_spatial))
        tap = slice(w, (0, 0) + offset, (o, i) + tuple(k + 1 for k in offset))
        wg = reshape(tap, (g, o // g, i))
        term = dot_general(xg, wg, (((2,), (2,)), ((1,), (0,))))
        total = term if total is None else add(total, term)
    if total is None:                   # an empty window
        out_spatial = tuple(builtins.max(0, (d + lo + hi - k) // s + 1) for d, (lo, hi), k, s
                            in zip(dilated, pads, eff_window, strides))
        out = full((n, o) + tuple(out_spatial), 0, aval_of(x).dtype)
    else:
        # (g, n, *out, o/g) -> (n, g, o/g, *out) -> (n, o, *out)
        perm = (1, 0, 2 + nsp) + tuple(range(2, 2 + nsp))
        out = reshape(transpose(total, perm), (n, o) + tuple(out_spatial))
    if out_perm != tuple(range(la.ndim)):
        out = transpose(out, tuple(np.argsort(out_perm)))
    if preferred_element_type is not None:
        out = convert_element_type(out, preferred_element_type)
    return out


def conv(lhs, rhs, window_strides: Sequence[int], padding, precision=None,
         preferred_element_type=None):
    """lax.conv: conv_general_dilated with NCHW / OIHW layouts and no dilation."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, precision=precision,
                                preferred_element_type=preferred_element_type)


def conv_with_general_padding(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                              precision=None, preferred_element_type=None):
    return conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                precision=precision,
                                preferred_element_type=preferred_element_type)


def reduce_window(operand, init_value, computation, window_dimensions: Sequence[int],
                  window_strides: Sequence[int], padding, base_dilation=None,
                  window_dilation=None):
    """lax.reduce_window: reduce each window of `operand` with the binary `computation`
    (lax.add, lax.max, lax.min, lax.mul, or any elementwise binary function), starting
    from `init_value`, which also fills the padding and the holes of `base_dilation`.

    Max/min pooling gradients split ties evenly (fungrad's max/min rule), where XLA's
    select-and-scatter gives the whole cotangent to the first maximum.

    >>> reduce_window(np.arange(4.0), -np.inf, lax.max, (2,), (1,), "VALID")
    array([1., 2., 3.])
    """
    where = "reduce_window"
    x = operand
    shape = aval_of(x).shape
    nd = len(shape)
    window = _ints(window_dimensions, nd, 1, "window_dimensions", where)
    strides = _ints(window_strides, nd, 1, "window_strides", where)
    base = _ints(base_dilation, nd, 1, "base_dilation", where)
    wdil = _ints(window_dilation, nd, 1, "window_dilation", where)
    static_callable(computation, "computation")
    if aval_of(init_value).shape != ():
        raise FungradTypeError(at_call_site(f"{where}: init_value must be a scalar, got "
                                            f"{aval_of(init_value)}"))
    dtype = aval_of(x).dtype
    init = init_value if hasattr(init_value, "aval") else dtype.type(np.asarray(init_value))
    dilated = [(s - 1) * d + 1 if s else 0 for s, d in zip(shape, base)]
    eff = [(k - 1) * d + 1 for k, d in zip(window, wdil)]
    pads = _pairs(padding, nd, dilated, eff, strides, where)
    if any(p != (0, 0) for p in pads) or any(d != 1 for d in base):
        x = pad(x, init, [(lo, hi, d - 1) for (lo, hi), d in zip(pads, base)])
    acc = None
    for _, xs in _window_slices(x, list(range(nd)), window, strides, wdil):
        acc = xs if acc is None else computation(acc, xs)
    if acc is None:
        out_shape = tuple(builtins.max(0, (aval_of(x).shape[a] - eff[a]) // strides[a] + 1)
                          for a in range(nd))
        return full(out_shape, init, dtype)
    return computation(full(aval_of(acc).shape, init, dtype), acc) if not _neutral(
        computation, init) else acc


def _neutral(computation, init) -> bool:
    """Whether init is the identity of a known reduction (then it need not be applied)."""
    try:
        v = float(init)
    except TypeError:
        return False
    name = getattr(computation, "__name__", "")
    return ((name == "add" and v == 0.0) or (name == "mul" and v == 1.0)
            or (name == "max" and v == -np.inf) or (name == "min" and v == np.inf))
