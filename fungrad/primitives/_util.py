"""Shape and rule helpers for the primitive blocks that need no primitive (the batching
helpers, which do, are in base.py)."""
from __future__ import annotations

import numpy as np

from ..core import ShapedArray, nondifferentiable
from ..errors import FungradTypeError
from ..tracing import Tracer, aval_of

__all__ = ["same_shape", "binary_shape", "bool_shape", "coerce_scalars", "nondifferentiable",
           "is_float", "is_complex", "real_dtype", "complex_dtype", "np_dtype", "affine",
           "strides", "reshape_index", "size_product"]


def is_float(dtype) -> bool:
    """Inexact: real floating point or complex (what can be differentiated)."""
    return np.dtype(dtype).kind in "fc"


def is_complex(dtype) -> bool:
    return np.dtype(dtype).kind == "c"


def real_dtype(dtype) -> np.dtype:
    """The real dtype of a complex dtype's parts (complex64 -> float32); others as they are."""
    dtype = np.dtype(dtype)
    return np.finfo(dtype).dtype if dtype.kind == "c" else dtype


def complex_dtype(dtype) -> np.dtype:
    """The complex dtype with parts of `dtype` (float32 -> complex64; others complex128)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return dtype
    return np.dtype(np.complex64) if dtype in (np.float32, np.float16) else np.dtype(np.complex128)


def same_shape(x: ShapedArray, **params) -> ShapedArray:
    return x


def binary_shape(name: str):
    """Shape rule of a strict binary elementwise primitive: one dtype, equal shapes,
    or one operand 0-d (a scalar applies to every element)."""
    def rule(x: ShapedArray, y: ShapedArray, **params) -> ShapedArray:
        if x.dtype != y.dtype:
            raise FungradTypeError(f"{name}: dtypes must match, got {x} and {y}")
        if x.shape == y.shape or not y.shape:
            return x
        if not x.shape:
            return y
        raise FungradTypeError(f"{name}: shapes must match, got {x} and {y}")
    return rule


def bool_shape(rule):
    """Wrap a binary shape rule so the result is bool (comparisons)."""
    def shape(x, y, **params):
        return rule(x, y).update(dtype=np.bool_)
    return shape


def coerce_scalars(*args):
    """Give Python scalars the dtype of the array operands (weak typing at lax level)."""
    dtype = None
    for a in args:
        if isinstance(a, (Tracer, np.ndarray, np.generic)):
            dtype = aval_of(a).dtype
            break
    if dtype is None:
        return tuple(np.asarray(a) for a in args)
    return tuple(dtype.type(a) if isinstance(a, (int, float, bool, complex)) else a
                 for a in args)


# --- text for generated kernels (loop and emit rules) ----------------------------

def np_dtype(dtype) -> str:
    """The NumPy name of `dtype` in kernel text (`np.float32`, `np.bool_`)."""
    dtype = np.dtype(dtype)
    return "np.bool_" if dtype == np.bool_ else f"np.{dtype.name}"


def affine(lo: int, step: int, i: str) -> str:
    """The text of lo + step * i."""
    text = i if step == 1 else f"{step} * {i}"
    return f"({lo} + {text})" if lo else text


def size_product(sizes) -> int:
    """The product of dimension sizes for kernel text: a loop of `*`, so symbolic
    sizes of the code generator (backend/codegen.py `Dim`) give an expression of
    symbols; math.prod and np.prod would print the value (correct, but then the
    kernel text, and its compile, is not shared across shapes)."""
    out = 1
    for n in sizes:
        out = out * n
    return out


def strides(shape) -> list[int]:
    """Element strides of a C-ordered array of `shape`."""
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


def reshape_index(in_shape, out_shape, idx) -> list[str]:
    """Index of `in_shape` holding the element at `idx` of the reshaped `out_shape`."""
    kept_in = [d for d, n in enumerate(in_shape) if n != 1]
    kept_out = [k for k, n in enumerate(out_shape) if n != 1]
    if [in_shape[d] for d in kept_in] == [out_shape[k] for k in kept_out]:
        # only size-1 dimensions inserted or removed
        sub = ["0"] * len(in_shape)
        for d, k in zip(kept_in, kept_out, strict=True):
            sub[d] = idx[k]
        return sub
    ostr = strides(out_shape)
    terms = [i if st == 1 else f"{i} * {st}" for i, st, n in zip(idx, ostr, out_shape,
                                                                 strict=True) if n != 1]
    linear = " + ".join(terms) or "0"
    istr = strides(in_shape)
    sub = []
    for d, (n, st) in enumerate(zip(in_shape, istr, strict=True)):
        if n == 1:
            sub.append("0")
            continue
        t = f"({linear})" if st == 1 else f"(({linear}) // {st})"
        sub.append(t if d == 0 else f"({t} % {n})")
    return sub
