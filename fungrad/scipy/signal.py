"""`fungrad.scipy.signal`: convolution and correlation of N-d arrays (SciPy's and JAX's
`convolve`, `correlate`, `convolve2d`, `correlate2d`), on `lax.conv_general_dilated`, so
they are differentiable in both operands."""
from __future__ import annotations

import numpy as np

from .. import lax
from .. import numpy as fnp
from ..errors import FungradValueError
from ..tracing import aval_of

__all__ = ["convolve", "correlate", "convolve2d", "correlate2d"]


def _operands(in1, in2):
    in1, in2 = fnp.asarray(in1), fnp.asarray(in2)
    dtype = np.result_type(aval_of(in1).dtype, aval_of(in2).dtype)
    if dtype.kind not in "f":
        dtype = np.dtype(np.float64)
    return fnp.asarray(in1, dtype), fnp.asarray(in2, dtype)


def _conv(in1, in2, mode: str, flip: bool, where: str):
    in1, in2 = _operands(in1, in2)
    s1, s2 = aval_of(in1).shape, aval_of(in2).shape
    if len(s1) != len(s2):
        raise FungradValueError(f"{where}: in1 and in2 must have the same number of "
                                f"dimensions, got shapes {s1} and {s2}")
    if mode not in ("full", "same", "valid"):
        raise FungradValueError(f"{where}: mode must be 'full', 'same' or 'valid', got "
                                f"{mode!r}")
    if mode == "valid" and not (all(a >= b for a, b in zip(s1, s2))
                                or all(a <= b for a, b in zip(s1, s2))):
        raise FungradValueError(f"{where}: for mode='valid' one input must be at least as "
                                f"large as the other in every dimension, got {s1} and {s2}")
    if mode == "valid" and any(a < b for a, b in zip(s1, s2)):
        in1, in2 = in2, in1          # SciPy swaps so that in1 is the larger
        s1, s2 = s2, s1
        if not flip:
            # correlate(a, b) = reverse(correlate(b, a)) for swapped operands
            return fnp.flip(_conv(in1, in2, mode, flip, where))
    nd = len(s1)
    kernel = fnp.flip(in2) if flip else in2
    if mode == "full":
        padding = [(k - 1, k - 1) for k in s2]
    elif mode == "same":
        padding = [(k // 2, k - 1 - k // 2) for k in s2]     # the centre of 'full' 
    else:
        padding = [(0, 0)] * nd
    lhs = fnp.reshape(in1, (1, 1) + s1)
    rhs = fnp.reshape(kernel, (1, 1) + s2)
    out = lax.conv_general_dilated(lhs, rhs, (1,) * nd, padding)
    return fnp.reshape(out, aval_of(out).shape[2:])


def convolve(in1, in2, mode: str = "full", method: str = "auto", precision=None):
    """N-d convolution of in1 and in2 (mode 'full', 'same' or 'valid', as SciPy)."""
    return _conv(in1, in2, mode, True, "convolve")


def correlate(in1, in2, mode: str = "full", method: str = "auto", precision=None):
    """N-d cross-correlation of in1 and in2 (mode 'full', 'same' or 'valid', as SciPy)."""
    return _conv(in1, in2, mode, False, "correlate")


def convolve2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0,
               precision=None):
    if boundary != "fill" or fillvalue != 0:
        raise FungradValueError("convolve2d: only boundary='fill' with fillvalue=0 is supported")
    if aval_of(fnp.asarray(in1)).ndim != 2 or aval_of(fnp.asarray(in2)).ndim != 2:
        raise FungradValueError("convolve2d: inputs must be 2-d")
    return convolve(in1, in2, mode)


def correlate2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0,
                precision=None):
    if boundary != "fill" or fillvalue != 0:
        raise FungradValueError("correlate2d: only boundary='fill' with fillvalue=0 is "
                                "supported")
    if aval_of(fnp.asarray(in1)).ndim != 2 or aval_of(fnp.asarray(in2)).ndim != 2:
        raise FungradValueError("correlate2d: inputs must be 2-d")
    return correlate(in1, in2, mode)
