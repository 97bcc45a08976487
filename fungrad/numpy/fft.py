"""`fungrad.numpy.fft`: NumPy's FFT functions (n / s, axis / axes, norm), built on the
one primitive `lax.fft` and differentiable in every argument that NumPy's are.

Each function moves the transformed axes last, crops or zero-pads them to the
requested lengths (`n`, `s`), applies `lax.fft`, scales by `norm` ("backward":
1 forward, 1/n inverse; "ortho": 1/sqrt(n) both ways; "forward": 1/n forward, 1
inverse) and moves the axes back.  Integer and bool inputs become float64 (as NumPy
does); float32 and complex64 stay single precision.
"""
from __future__ import annotations

import numpy as np

from .. import lax
from ..errors import FungradValueError
from ..primitives._util import complex_dtype, real_dtype
from ..tracing import Tracer, aval_of
from ._coercion import _as_array
from ._promotion import _convert, result_type
from ._elementwise import conjugate, multiply
from ._shape import moveaxis, roll

__all__ = ["fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn",
           "rfftn", "irfftn", "hfft", "ihfft", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

_NORMS = (None, "backward", "ortho", "forward")


def _inexact(a, want_complex: bool):
    x = _as_array(a)
    dt = result_type(x)
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    dt = complex_dtype(dt) if want_complex else dt
    return _convert(x, dt)


def _real_input(a, where: str):
    x = _inexact(a, False)
    if result_type(x).kind == "c":
        # NumPy's rfft discards the imaginary part with a warning; JAX raises
        raise FungradValueError(f"fft.{where}: needs a real input, got {aval_of(x)}; "
                                "take fungrad.numpy.real(x) first, or use fft.fft")
    return x


def _norm_scale(norm, n: int, inverse: bool) -> float:
    if norm not in _NORMS:
        raise FungradValueError(f'Invalid norm value {norm!r}; should be "backward", '
                                '"ortho" or "forward".')
    norm = norm or "backward"
    if norm == "ortho":
        return 1.0 / np.sqrt(n)
    if (norm == "backward") == inverse:
        return 1.0 / n
    return 1.0


def _axes_and_sizes(x, s, axes, where: str):
    nd = aval_of(x).ndim
    if axes is None:
        axes = list(range(nd - len(s), nd)) if s is not None else list(range(nd))
    axes = [int(a) for a in np.atleast_1d(axes)] if not isinstance(axes, int) else [axes]
    for a in axes:
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(f"fft.{where}: axis {a} is out of bounds for an array "
                                          f"of dimension {nd}")
    axes = [a % nd for a in axes]
    if len(set(axes)) != len(axes):
        raise FungradValueError(f"fft.{where}: repeated axes {tuple(axes)}")
    if s is None:
        s = [aval_of(x).shape[a] for a in axes]
    s = [int(n) for n in np.atleast_1d(s)]
    if len(s) != len(axes):
        raise FungradValueError(f"fft.{where}: s has {len(s)} entries for {len(axes)} axes")
    for n in s:
        if n < 1:
            raise FungradValueError(f"fft.{where}: invalid number of data points ({n}) "
                                    "specified")
    return axes, s


def _fit(x, axis: int, n: int):
    """x cropped or zero-padded to length n along axis."""
    aval = aval_of(x)
    have = aval.shape[axis]
    if have == n:
        return x
    cfg = [(0, 0, 0)] * aval.ndim
    cfg[axis] = (0, n - have, 0)
    return lax.pad(x, aval.dtype.type(0), cfg)


def _transform(x, fft_type: str, axes, lengths, in_lengths, norm, inverse: bool):
    """lax.fft over `axes` (moved last, then back), inputs fitted to `in_lengths`."""
    for a, n in zip(axes, in_lengths, strict=True):
        x = _fit(x, a, n)
    k = len(axes)
    nd = aval_of(x).ndim
    last = list(range(nd - k, nd))
    x = moveaxis(x, axes, last)
    y = lax.fft(x, fft_type, tuple(lengths))
    y = moveaxis(y, last, axes)
    n = int(np.prod(lengths))
    # lax's IFFT and IRFFT already divide by n (NumPy's "backward" norm)
    scale = _norm_scale(norm, n, inverse) * (n if inverse else 1)
    if scale != 1.0:
        y = multiply(y, real_dtype(result_type(y)).type(scale))
    return y


def fftn(a, s=None, axes=None, norm=None):
    """The n-dimensional discrete Fourier transform over `axes` (default: all, or the
    last len(s)), each cropped or zero-padded to the lengths `s`."""
    x = _inexact(a, True)
    axes, s = _axes_and_sizes(x, s, axes, "fftn")
    return _transform(x, "FFT", axes, s, s, norm, inverse=False)


def ifftn(a, s=None, axes=None, norm=None):
    """The inverse of `fftn`."""
    x = _inexact(a, True)
    axes, s = _axes_and_sizes(x, s, axes, "ifftn")
    return _transform(x, "IFFT", axes, s, s, norm, inverse=True)


def rfftn(a, s=None, axes=None, norm=None):
    """`fftn` of a real input, keeping the non-negative frequencies of the last axis
    (length s[-1] // 2 + 1)."""
    x = _real_input(a, "rfftn")
    axes, s = _axes_and_sizes(x, s, axes, "rfftn")
    return _transform(x, "RFFT", axes, s, s, norm, inverse=False)


def irfftn(a, s=None, axes=None, norm=None):
    """The inverse of `rfftn`: a real output with lengths `s` (default: the input's, the
    last one 2 * (m - 1)).  Imaginary parts that a Hermitian spectrum cannot have
    (the zero and, for even lengths, the last bin) are ignored, as in NumPy."""
    x = _inexact(a, True)
    if s is None:
        axes_, _ = _axes_and_sizes(x, None, axes, "irfftn")
        s = [aval_of(x).shape[ax] for ax in axes_]
        s[-1] = 2 * (s[-1] - 1)
        if s[-1] < 1:
            raise FungradValueError(f"fft.irfftn: invalid number of data points ({s[-1]}) "
                                    "specified")
        axes = axes_
    axes, s = _axes_and_sizes(x, s, axes, "irfftn")
    in_lengths = list(s[:-1]) + [s[-1] // 2 + 1]
    return _transform(x, "IRFFT", axes, s, in_lengths, norm, inverse=True)


def fft(a, n=None, axis=-1, norm=None):
    """The one-dimensional discrete Fourier transform along `axis` (length `n`)."""
    return fftn(a, None if n is None else [n], [axis], norm)


def ifft(a, n=None, axis=-1, norm=None):
    """The inverse of `fft`."""
    return ifftn(a, None if n is None else [n], [axis], norm)


def rfft(a, n=None, axis=-1, norm=None):
    """`fft` of a real input: the n // 2 + 1 non-negative frequencies."""
    return rfftn(a, None if n is None else [n], [axis], norm)


def irfft(a, n=None, axis=-1, norm=None):
    """The inverse of `rfft`: a real output of length n (default 2 * (m - 1))."""
    return irfftn(a, None if n is None else [n], [axis], norm)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    """`fftn` over two axes (the last two by default)."""
    return fftn(a, s, axes, norm)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """`ifftn` over two axes (the last two by default)."""
    return ifftn(a, s, axes, norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """`rfftn` over two axes (the last two by default)."""
    return rfftn(a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """`irfftn` over two axes (the last two by default)."""
    return irfftn(a, s, axes, norm)


_SWAP = {None: "forward", "backward": "forward", "ortho": "ortho", "forward": "backward"}


def hfft(a, n=None, axis=-1, norm=None):
    """The FFT of a signal with Hermitian symmetry, given by its first half `a`: a real
    output of length n (default 2 * (m - 1)); irfft(conj(a)) with the norm swapped."""
    if norm not in _NORMS:
        _norm_scale(norm, 1, False)
    return irfft(conjugate(_inexact(a, True)), n, axis, _SWAP[norm])


def ihfft(a, n=None, axis=-1, norm=None):
    """The inverse of `hfft`: conj(rfft(a)) with the norm swapped."""
    if norm not in _NORMS:
        _norm_scale(norm, 1, False)
    return conjugate(rfft(a, n, axis, _SWAP[norm]))


def _frequencies(k: np.ndarray, n: int, d, dtype):
    if isinstance(d, Tracer):   # a traced spacing: the result stays differentiable in d
        return multiply(np.asarray(k / n, np.float64), lax.div(1.0, _inexact(d, False)))
    return np.asarray(k / (n * np.asarray(d)), dtype=dtype or np.float64)


def fftfreq(n, d=1.0, *, dtype=None):
    """The sample frequencies of an n-point FFT with sample spacing d
    ([0, 1, ..., n/2 - 1, -n/2, ..., -1] / (d n) for even n)."""
    n = int(n)
    if n < 1:
        raise FungradValueError(f"fft.fftfreq: n must be positive, got {n}")
    k = np.concatenate([np.arange(0, (n - 1) // 2 + 1), np.arange(-(n // 2), 0)])
    return _frequencies(k, n, d, dtype)


def rfftfreq(n, d=1.0, *, dtype=None):
    """The sample frequencies of `rfft` ([0, 1, ..., n // 2] / (d n))."""
    n = int(n)
    if n < 1:
        raise FungradValueError(f"fft.rfftfreq: n must be positive, got {n}")
    return _frequencies(np.arange(0, n // 2 + 1), n, d, dtype)


def _shift(x, axes, sign: int):
    x = _as_array(x)
    shape = aval_of(x).shape
    if axes is None:
        axes = list(range(len(shape)))
    axes = [axes] if isinstance(axes, int) else list(axes)
    return roll(x, [sign * (shape[a] // 2) for a in axes], axes)


def fftshift(x, axes=None):
    """The zero frequency moved to the centre (a roll by n // 2 along each of `axes`)."""
    return _shift(x, axes, 1)


def ifftshift(x, axes=None):
    """The inverse of `fftshift` (a roll by -(n // 2))."""
    return _shift(x, axes, -1)
