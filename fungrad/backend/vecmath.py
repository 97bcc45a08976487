"""Vectorisable elementary functions for numba kernels.

numba compiles `np.exp(x)` on a scalar to a call of the C library's `exp`, one
element at a time, so a kernel loop with a transcendental never vectorises (the
pip builds of llvmlite have no SVML).  The functions here are straight-line
float64 code: range reduction (Cody-Waite with a two-part ln 2), a polynomial or
rational approximation (fdlibm's, whose error bounds are published), and the
special cases (NaN, +-inf, +-0, subnormal inputs and outputs, overflow and
underflow) chosen with selects rather than branches, so LLVM inlines them into a
kernel's loop and vectorises it (packed `vmulpd`/`vfmadd...pd` on `ymm`/`zmm`).
Scaling by 2^k and reading an exponent use the bits of a float64 through two
tiny numba intrinsics (`_vm_bits`, `_vm_float`).

float32 arguments are computed through the float64 code and rounded once, which
keeps them within 1 ulp (usually correctly rounded) including float32
subnormals.

`SOURCE` is their text; `kernel_functions()` compiles it once per process into
numba overloads with `inline="always"` (of stub functions), and `HELPERS`, part
of every kernel module (codegen.HELPERS), binds their names there.  Overloads
rather than `numba.njit` functions: a kernel referring to a dispatcher holds
its address (a "dynamic global" that only LLVM's optimisation removes), so at
NUMBA_OPT=0 it could not be cached on disk; and numba-level inlining is needed
anyway, LLVM does not inline the larger ones.  The `scalar_emit` rules of the
elementwise primitives ask `scalar_call` for a call of one of these functions.  `config.vector_math` (`FUNGRAD_VECTOR_MATH`, on by
default) switches them off for kernels generated afterwards; the interpreter
always uses NumPy.  Measured accuracy against mpmath is in
tests/backend/test_vecmath.py (the tolerances there are the bound this module
promises: 2 ulp).
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from ..primitives._vecnames import FUNCTIONS, scalar_call

__all__ = ["HELPERS", "SOURCE", "FUNCTIONS", "scalar_call", "kernel_functions"]

# FUNCTIONS, scalar_call and the `vector_math` option live with the primitives that
# ask for them (primitives/_vecnames.py: no numba there)


SOURCE = '''
from numba.core import types as _vm_types
from numba.core.extending import intrinsic as _vm_intrinsic


@_vm_intrinsic
def _vm_bits(typingctx, x):
    # the bits of a float64 as an int64 (a bit cast, no conversion)
    if x != _vm_types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(_vm_types.int64))
    return _vm_types.int64(_vm_types.float64), codegen


@_vm_intrinsic
def _vm_float(typingctx, i):
    # the float64 whose bits are the int64 i
    if i != _vm_types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(_vm_types.float64))
    return _vm_types.float64(_vm_types.int64), codegen


@_vm_intrinsic
def _vm_fma(typingctx, a, b, c):
    # a * b + c rounded once (llvm.fma: one instruction where the CPU has FMA)
    if not (a == b == c == _vm_types.float64):
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)
    return _vm_types.float64(_vm_types.float64, _vm_types.float64, _vm_types.float64), codegen


@numba.njit(cache=CACHE, error_model="numpy")
def _vm_pow2(k):
    # 2.0 ** k for an int64 k in [-1022, 1023], from its exponent bits
    return _vm_float((k + 1023) << 52)


@numba.njit(cache=CACHE, error_model="numpy")
def _vm_exp(x):
    # fdlibm e_exp.c (< 1 ulp): x = k ln2 + r, |r| <= ln2/2, with ln2 in two parts;
    # exp(r) = 1 + r + r c / (2 - c) with c = r - r^2 P(r^2); exp(x) = 2^k exp(r).
    # x is clamped to [-746, 710] so that 2^k, applied in two halves, covers every
    # result from the subnormals (rounded once, at the last product) to overflow.
    xc = x if x < 710.0 else 710.0
    xc = xc if xc > -746.0 else -746.0
    shifted = xc * 1.44269504088896338700e+00 + 6755399441055744.0   # 1.5 * 2^52
    k = _vm_bits(shifted) - 0x4338000000000000                        # round(x / ln2)
    kf = shifted - 6755399441055744.0
    hi = xc - kf * 6.93147180369123816490e-01
    lo = kf * 1.90821492927058770002e-10
    r = hi - lo
    t = r * r
    c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03 + t * (
        6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06
                                          + t * 4.13813679705723846039e-08))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k1 = ((k + 2048) >> 1) - 1024          # floor(k / 2) without an arithmetic shift
    out = y * _vm_pow2(k1) * _vm_pow2(k - k1)
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy")
def _vm_log_core(f, dk, c):
    # fdlibm e_log.c / s_log1p.c: log(2^k (1 + f)) + c for sqrt(2)/2 <= 1 + f < sqrt(2),
    # with s = f / (2 + f) and log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2))
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                                              + w * 1.531383769920937332e-01))
    t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01 + w * (
        1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
    big_r = t2 + t1
    return (s * (hfsq + big_r) + (dk * 1.90821492927058770002e-10 + c) - hfsq + f
            + dk * 6.93147180369123816490e-01)


@numba.njit(cache=CACHE, error_model="numpy")
def _vm_log(x):
    # x = 2^k m with sqrt(2)/2 <= m < sqrt(2) read from the bits (subnormals scaled
    # by 2^54 first); log x = k ln2 + log(m)
    sub = x < 2.2250738585072014e-308
    scaled = x * 18014398509481984.0
    xs = scaled if sub else x
    bits = _vm_bits(xs)
    hx = (bits >> 32) + (0x3ff00000 - 0x3fe6a09e)
    k = (hx >> 20) - 0x3ff
    k_sub = k - 54
    k = k_sub if sub else k
    hx = (hx & 0x000fffff) + 0x3fe6a09e
    m = _vm_float((hx << 32) | (bits & 0xffffffff))
    dk = _vm_float(k + 0x4338000000000000) - 6755399441055744.0   # float(k)
    out = _vm_log_core(m - 1.0, dk, 0.0)
    out = out if x < np.inf else x                          # +inf (and NaN) stay
    bad = -np.inf if x == 0.0 else np.nan
    out = out if x > 0.0 else bad
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_log1p(x):
    # fdlibm s_log1p.c: u = 1 + x = 2^k m; log1p x = k ln2 + log(m) + c, where
    # c = (x - (u - 1)) / u (or (1 - (u - x)) / u for k >= 2) restores what rounding
    # 1 + x lost; for sqrt(2)/2 - 1 <= x < sqrt(2) - 1, k = 0 and f = x exactly
    u = 1.0 + x
    bits = _vm_bits(u)
    hu = (bits >> 32) + (0x3ff00000 - 0x3fe6a09e)
    k = (hu >> 20) - 0x3ff
    c_big = 1.0 - (u - x)                 # (each value is computed, then selected:
    c_small = x - (u - 1.0)               # a branch would stop the vectoriser)
    c = (c_big if k >= 2 else c_small) / u
    c = c if k < 54 else 0.0
    hu = (hu & 0x000fffff) + 0x3fe6a09e
    f = _vm_float((hu << 32) | (bits & 0xffffffff)) - 1.0
    near = (x < 0.41421356237309503) & (x >= -0.2928932188134524)
    f = x if near else f
    c = 0.0 if near else c
    k = 0 if near else k
    dk = _vm_float(k + 0x4338000000000000) - 6755399441055744.0
    out = _vm_log_core(f, dk, c)
    out = out if x < np.inf else x
    out = out if abs(x) >= 1.1102230246251565e-16 else x    # |x| < 2^-53: x (and +-0)
    bad = -np.inf if x == -1.0 else np.nan
    out = out if x > -1.0 else bad
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_expm1(x):
    # fdlibm s_expm1.c with its branches as selects: x = k ln2 + r (r = hi - lo, with
    # the rounding error c of r), expm1(r) from a rational approximation, then the
    # case of k that avoids cancellation
    xc = x if x < 710.0 else 710.0
    xc = xc if xc > -60.0 else -60.0        # expm1 is -1 to float64 below -38
    shifted = xc * 1.44269504088896338700e+00 + 6755399441055744.0
    k = _vm_bits(shifted) - 0x4338000000000000
    kf = shifted - 6755399441055744.0
    hi = xc - kf * 6.93147180369123816490e-01
    lo = kf * 1.90821492927058770002e-10
    r = hi - lo
    c = (hi - r) - lo
    hfx = 0.5 * r
    hxs = r * hfx
    r1 = 1.0 + hxs * (-3.33333333333331316428e-02 + hxs * (
        1.58730158725481460165e-03 + hxs * (-7.93650757867487942473e-05 + hxs * (
            4.00821782732936239552e-06 + hxs * -2.01099218183624371326e-07))))
    t = 3.0 - r1 * hfx
    e = hxs * ((r1 - t) / (6.0 - r * t))
    small = r - (r * e - hxs)                      # k == 0 (c is 0 there)
    e = r * (e - c) - c
    e = e - hxs
    k1 = ((k + 2048) >> 1) - 1024
    p1 = _vm_pow2(k1)
    p2 = _vm_pow2(k - k1)                          # 2^k = p1 p2 (2^1024 overflows)
    twopk = p1 * p2                                # used where k <= 56
    kc = k if k < 56 else 56
    kc = kc if kc > 1 else 1
    twomk = _vm_pow2(-kc)
    far = (r - e + 1.0) * p1 * p2 - 1.0            # k <= -2 or k > 56
    low = (r - e + (1.0 - twomk)) * twopk          # 2 <= k < 20
    high = (r - (e + twomk) + 1.0) * twopk         # 20 <= k <= 56
    out = high if k >= 20 else low
    out = far if (k <= -2) | (k > 56) else out
    one_low = -2.0 * (e - (r + 0.5))
    one_high = 1.0 + 2.0 * (r - e)
    one = one_low if r < -0.25 else one_high       # k == 1
    out = one if k == 1 else out
    minus_one = 0.5 * (r - e) - 0.5                # k == -1
    out = minus_one if k == -1 else out
    out = small if k == 0 else out
    out = out if abs(x) >= 5.551115123125783e-17 else x      # |x| < 2^-54: x
    out = out if x <= 7.09782712893383973096e+02 else np.inf
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_tanh(x):
    # |x| < 0.625: Cephes tanh.c's rational form x + x z P(z) / Q(z), z = x^2 (the
    # last addition dominates the error: < 1 ulp); else 1 - 2 / (e + 1) with
    # e = exp(2 min(|x|, 22)), which is 1 for large |x|; e + 1 is s + err exactly
    # (Fast2Sum) and 2 / (s + err) = q + (rem - q err) / s with rem = 2 - q s (one
    # fma), so only e's error and the last subtraction count; tanh x = x below 2^-27
    ax = abs(x)
    z = x * x
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z \
        - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z \
        + 4.84406305325125486048e3
    small = x + x * (z * p / q)
    e = _vm_exp(2.0 * min(ax, 22.0))                    # tanh is 1 to float64 from 19.1
    s = e + 1.0
    err = (e - s) + 1.0
    two_over = 2.0 / s
    rem = _vm_fma(-two_over, s, 2.0)
    large = math.copysign(1.0 - (two_over + (rem - two_over * err) / s), x)
    out = small if ax < 0.625 else large
    out = out if ax >= 7.450580596923828e-09 else x      # |x| < 2^-27: x (and -0.0)
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy")
def _vm_logistic(x):
    # 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with e = exp(-|x|) <= 1: no
    # overflow, and subnormal results for x < -708 come out of e itself.  1 + e is
    # s + err exactly (Fast2Sum); with q = num / s and its exact remainder
    # rem = num - q s (one fma), num / (s + err) = q + (rem - q err) / s to first
    # order: only e's error and the last addition count
    e = _vm_exp(-abs(x))
    s = 1.0 + e
    err = (1.0 - s) + e
    num = 1.0 if x >= 0.0 else e
    q = num / s
    rem = _vm_fma(-q, s, num)
    out = q + (rem - q * err) / s
    return out if x == x else x


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_exp_f32(x):
    return np.float32(_vm_exp(np.float64(x)))


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_log_f32(x):
    return np.float32(_vm_log(np.float64(x)))


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_log1p_f32(x):
    return np.float32(_vm_log1p(np.float64(x)))


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_expm1_f32(x):
    return np.float32(_vm_expm1(np.float64(x)))


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_tanh_f32(x):
    return np.float32(_vm_tanh(np.float64(x)))


@numba.njit(cache=CACHE, error_model="numpy", inline="always")
def _vm_logistic_f32(x):
    return np.float32(_vm_logistic(np.float64(x)))
'''


# what kernels call: each function for float64 and float32
_ENTRY_POINTS = [f"{helper}{suffix}" for helper in FUNCTIONS.values() for suffix in ("", "_f32")]

# the kernel modules' lines (codegen.HELPERS): bind the compiled functions' names
HELPERS = (f"\n\nfrom fungrad.backend.vecmath import kernel_functions as _vm_kernel_functions\n"
           f"{', '.join(_ENTRY_POINTS)} = _vm_kernel_functions()\n")

_lock = threading.Lock()
_compiled: tuple | None = None


class _Overloads:
    """Stands for `numba` while SOURCE runs: `numba.njit(...)` registers the function
    as the inline="always" overload of a stub, and returns the stub, so the
    functions that call it see the stub too."""

    @staticmethod
    def njit(**options):
        from numba.core.extending import overload

        def register(impl):
            def stub(*args):
                raise TypeError(f"{impl.__name__}: runs inside numba kernels only")
            stub.__name__ = stub.__qualname__ = impl.__name__

            @functools.wraps(impl)          # the same signature as the implementation
            def typer(*args):
                return impl
            overload(stub, inline=options.get("inline", "never"))(typer)
            return stub
        return register


def kernel_functions() -> tuple:
    """The functions kernels call (numba overloads; in the order of `HELPERS`),
    compiled from SOURCE once per process."""
    global _compiled
    with _lock:
        if _compiled is None:
            namespace = {"np": np, "math": math, "numba": _Overloads}
            exec(SOURCE.replace("CACHE", "False"), namespace)   # noqa: S102 - our own text
            _compiled = tuple(namespace[name] for name in _ENTRY_POINTS)
        return _compiled
