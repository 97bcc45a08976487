"""The fast Fourier transform, one primitive as in `jax.lax.fft`: `fft_type` (FFT, IFFT,
RFFT, IRFFT) over the last `len(fft_lengths)` axes, computed by NumPy's pocketfft.

Every FFT is linear, so its jvp is the same FFT of the tangent; its vjp is the
transpose for the real pairing Re(sum u v) that every complex rule uses (JAX's
convention): the DFT matrix is symmetric, so FFT and IFFT are their own transposes;
RFFT (= a complex FFT of a real input, truncated) transposes to the real part of an
FFT of the zero-padded cotangent; IRFFT to the conjugate of an RFFT of the cotangent
with the bins that appear twice in the Hermitian spectrum counted twice.

Inside a compiled kernel numba has no FFT: the lowering calls NumPy's pocketfft out of
the kernel (`numba.objmode`), so the rest of the program stays compiled.
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import FungradTypeError, FungradValueError
from ._static import static_ints, static_str
from ._util import complex_dtype, real_dtype
from ..tracing import aval_of
from .base import broadcast_in_dim, convert_element_type, full, move_axis_to_front
from .elementwise import bitwise_or, conj, eq, mul, real, select
from .shape import iota, pad

__all__ = ["fft", "fft_p", "FFT_TYPES"]

FFT_TYPES = ("FFT", "IFFT", "RFFT", "IRFFT")


def _axes(ndim: int, fft_lengths) -> tuple[int, ...]:
    return tuple(range(ndim - len(fft_lengths), ndim))


def _fft_impl(x, *, fft_type, fft_lengths):
    x = np.asarray(x)
    axes = _axes(x.ndim, fft_lengths)
    if fft_type == "FFT":
        out = np.fft.fftn(x, axes=axes)
        dtype = x.dtype
    elif fft_type == "IFFT":
        out = np.fft.ifftn(x, axes=axes)
        dtype = x.dtype
    elif fft_type == "RFFT":
        out = np.fft.rfftn(x, axes=axes)
        dtype = complex_dtype(x.dtype)
    else:
        out = np.fft.irfftn(x, s=fft_lengths, axes=axes)
        dtype = real_dtype(x.dtype)
    return out.astype(dtype, copy=False)


def _fft_shape(x: ShapedArray, *, fft_type, fft_lengths) -> ShapedArray:
    k = len(fft_lengths)
    if fft_type not in FFT_TYPES:
        raise FungradValueError(f"fft: fft_type must be one of {FFT_TYPES}, got {fft_type!r}")
    if not 1 <= k <= x.ndim:
        raise FungradTypeError(f"fft: {k} fft_lengths for an operand {x} (1 to {x.ndim})")
    if min(fft_lengths) < 1:
        raise FungradValueError(f"fft: fft_lengths must be positive, got {fft_lengths}")
    lead, last = x.shape[:-k], x.shape[-k:]
    if fft_type in ("FFT", "IFFT"):
        if x.dtype.kind != "c":
            raise FungradTypeError(f"fft: {fft_type} needs a complex operand, got {x}")
        if tuple(last) != tuple(fft_lengths):
            raise FungradTypeError(f"fft: {fft_type} of {x} with fft_lengths={fft_lengths}: "
                                   "the last axes must have those lengths")
        return x
    if fft_type == "RFFT":
        if x.dtype.kind != "f":
            raise FungradTypeError(f"fft: RFFT needs a real floating-point operand, got {x}")
        if tuple(last) != tuple(fft_lengths):
            raise FungradTypeError(f"fft: RFFT of {x} with fft_lengths={fft_lengths}: the "
                                   "last axes must have those lengths")
        shape = lead + tuple(fft_lengths[:-1]) + (fft_lengths[-1] // 2 + 1,)
        return ShapedArray(shape, complex_dtype(x.dtype))
    if x.dtype.kind != "c":
        raise FungradTypeError(f"fft: IRFFT needs a complex operand, got {x}")
    expected = tuple(fft_lengths[:-1]) + (fft_lengths[-1] // 2 + 1,)
    if tuple(last) != expected:
        raise FungradTypeError(f"fft: IRFFT of {x} with fft_lengths={fft_lengths}: the last "
                               f"axes must have lengths {expected}")
    return ShapedArray(lead + tuple(fft_lengths), real_dtype(x.dtype))


def _fft_transpose(ct, x, *, out, fft_type, fft_lengths):
    if fft_type in ("FFT", "IFFT"):
        return (fft(ct, fft_type, fft_lengths),)
    if fft_type == "RFFT":
        # x -> FFT(complex(x))[..., :n//2+1]: pad the cotangent back, FFT, real part
        n = fft_lengths[-1]
        ct_aval = aval_of(ct)
        cfg = [(0, 0, 0)] * (ct_aval.ndim - 1) + [(0, n - (n // 2 + 1), 0)]
        padded = pad(ct, ct_aval.dtype.type(0), cfg)
        return (real(fft(padded, "FFT", fft_lengths)),)
    # IRFFT: scale 1/N, bins other than 0 and (for even n) n/2 count twice
    n = fft_lengths[-1]
    spectrum = fft(ct, "RFFT", fft_lengths)
    s_aval = aval_of(spectrum)
    m = s_aval.shape[-1]
    is_odd = n % 2
    rdt = real_dtype(s_aval.dtype)
    scale = 1.0 / float(np.prod(fft_lengths))
    bins = iota(np.int64, (m,), 0)
    once = eq(bins, np.int64(0))
    if not is_odd:
        once = bitwise_or(once, eq(bins, np.int64(m - 1)))
    weights = select(once, full((m,), scale, rdt), full((m,), 2 * scale, rdt))
    w = broadcast_in_dim(convert_element_type(weights, s_aval.dtype), s_aval.shape,
                         (s_aval.ndim - 1,))
    return (conj(mul(spectrum, w)),)


def _fft_vmap(axis_size, args, dims, *, fft_type, fft_lengths):
    (x,), (d,) = args, dims
    return fft(move_axis_to_front(x, d), fft_type, fft_lengths), 0


def _objmode_type(aval: ShapedArray) -> str:
    return f"{aval.dtype.name}[{', '.join([':'] * aval.ndim)}]"


def _fft_lower(gen, inputs, outputs, *, fft_type, fft_lengths):
    """An out-of-kernel call of pocketfft (numba has no FFT); the kernel stays compiled."""
    (x,), (o,) = inputs, outputs
    name = gen.name(o)
    axes = _axes(x.aval.ndim, fft_lengths)
    fn = {"FFT": "np.fft.fftn", "IFFT": "np.fft.ifftn", "RFFT": "np.fft.rfftn",
          "IRFFT": "np.fft.irfftn"}[fft_type]
    size = f"s={tuple(fft_lengths)!r}, " if fft_type == "IRFFT" else ""
    gen.lines.append(f"    with numba.objmode({name}={_objmode_type(o.aval)!r}):")
    gen.lines.append(f"        {name} = np.ascontiguousarray({fn}(np.asarray({gen.name(x)}), "
                     f"{size}axes={axes!r}).astype(np.{o.aval.dtype.name}))")
    gen.fresh.update(outputs)


fft_p = Primitive("fft", linear_in="all")
fft_p.def_impl(_fft_impl)
fft_p.def_shape(_fft_shape)
fft_p.def_vmap(_fft_vmap)
fft_p.def_jvp(lambda t, x, *, out, fft_type, fft_lengths: fft(t, fft_type, fft_lengths))
fft_p.def_vjp(_fft_transpose)
fft_p.def_lower(_fft_lower)


def fft(x, fft_type: str, fft_lengths):
    """lax.fft: the `fft_type` transform ("FFT", "IFFT", "RFFT" or "IRFFT"; JAX's
    FftType names are accepted too) over the last len(fft_lengths) axes of x."""
    fft_type = static_str(getattr(fft_type, "name", fft_type), "fft_type", FFT_TYPES,
                          upper=True)
    return fft_p.bind(x, fft_type=fft_type,
                      fft_lengths=static_ints(fft_lengths, "fft_lengths", minimum=0))
