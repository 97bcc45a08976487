"""Linear algebra primitives.

dot_general: batched tensor contraction; matmul, dot, tensordot and the common
einsum forms are all written with it.  Output dimensions are ordered
(batch..., lhs free..., rhs free...), as in lax.dot_general.

Then the matrix functions on stacks of matrices (..., m, n), each a primitive for
speed (LAPACK) or stability: cholesky, triangular_solve, solve, det, slogdet,
eigh, qr, svd; inv is solve against the identity.  Their jvp and vjp rules are
written with these primitives and dot_general, so they differentiate again.
"""
from __future__ import annotations

import numpy as np

from ..core import Primitive, ShapedArray
from ..errors import CodegenError, FungradNotImplementedError, FungradTypeError
from ..tracing import aval_of
from ._util import is_float, np_dtype, reshape_index, size_product
from .base import (bdim_to_front, broadcast_in_dim, convert_element_type, full,
                   move_axis_to_front, reduce_sum, transpose, zeros_like_aval)
from ._util import complex_dtype, is_complex, real_dtype
from .elementwise import (add, conj, div, eq, ge, imag, is_finite, le, mul, ne, neg, real,
                          safe_mul, select, stop_gradient, sub)
from .elementwise import bitwise_and as bool_and
from .reduce import reduce_and, reduce_max, reduce_prod
from .shape import iota

__all__ = ["dot_general", "dot_general_p", "cholesky", "triangular_solve", "solve", "inv", "det",
           "slogdet", "eigh", "qr", "svd", "cholesky_p", "triangular_solve_p", "solve_p",
           "det_p", "slogdet_p", "eigh_p", "qr_p", "svd_p", "eig", "eig_p"]


def _free(ndim, contract, batch):
    return tuple(i for i in range(ndim) if i not in contract and i not in batch)


def _dot_shape(x, y, *, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    if x.dtype != y.dtype:
        raise FungradTypeError(f"dot_general: dtypes must match, got {x} and {y}")
    if len(cx) != len(cy) or len(bx) != len(by):
        raise FungradTypeError(f"dot_general: unbalanced dimension_numbers {dimension_numbers}")
    for a, b in zip(cx + bx, cy + by):
        if not (0 <= a < x.ndim and 0 <= b < y.ndim) or x.shape[a] != y.shape[b]:
            raise FungradTypeError(
                f"dot_general: cannot contract {x} with {y} using dimension_numbers="
                f"{dimension_numbers}")
    shape = ([x.shape[i] for i in bx] + [x.shape[i] for i in _free(x.ndim, cx, bx)]
             + [y.shape[i] for i in _free(y.ndim, cy, by)])
    return ShapedArray(shape, x.dtype)


def _dot_impl(x, y, *, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    x, y = np.asarray(x), np.asarray(y)
    if not bx:
        if x.ndim <= 2 and y.ndim <= 2 and cx == ((x.ndim - 1,) if x.ndim else ()) and cy == (
                (0,) if y.ndim else ()) and x.ndim and y.ndim:
            return np.dot(x, y)              # the matmul / matvec / vecmat / inner case
        if not cx:
            return np.multiply.outer(x, y)   # outer product
        return np.tensordot(x, y, axes=(cx, cy))
    fx, fy = _free(x.ndim, cx, bx), _free(y.ndim, cy, by)
    xt = x.transpose(bx + fx + cx)
    yt = y.transpose(by + cy + fy)
    nb = int(np.prod([x.shape[i] for i in bx], dtype=np.int64))
    m = int(np.prod([x.shape[i] for i in fx], dtype=np.int64))
    k = int(np.prod([x.shape[i] for i in cx], dtype=np.int64))
    n = int(np.prod([y.shape[i] for i in fy], dtype=np.int64))
    out = np.matmul(xt.reshape(nb, m, k), yt.reshape(nb, k, n))
    return out.reshape([x.shape[i] for i in bx] + [x.shape[i] for i in fx]
                       + [y.shape[i] for i in fy])


def _ranks(values):
    return tuple(np.argsort(values).tolist())


def _dot_transpose_lhs(ct, x_aval, y, dimension_numbers):
    """Cotangent of x in dot_general(x, y): contract ct with y over y's free dims."""
    (cx, cy), (bx, by) = dimension_numbers
    y_aval = aval_of(y)
    nb = len(bx)
    fx, fy = _free(x_aval.ndim, cx, bx), _free(y_aval.ndim, cy, by)
    ct_yfree = tuple(range(nb + len(fx), nb + len(fx) + len(fy)))
    res = dot_general(ct, y, ((ct_yfree, fy), (tuple(range(nb)), by)))
    # res dims: batch, x free, then y's contracting dims in increasing y order
    order = sorted(range(len(cy)), key=lambda j: cy[j])
    res_as_x = list(bx) + list(fx) + [cx[j] for j in order]
    return transpose(res, _ranks(res_as_x))


def _dot_transpose_rhs(ct, x, y_aval, dimension_numbers):
    (cx, cy), (bx, by) = dimension_numbers
    x_aval = aval_of(x)
    nb = len(bx)
    fx, fy = _free(x_aval.ndim, cx, bx), _free(y_aval.ndim, cy, by)
    ct_xfree = tuple(range(nb, nb + len(fx)))
    res = dot_general(ct, x, ((ct_xfree, fx), (tuple(range(nb)), bx)))
    # res dims: batch, y free, then x's contracting dims in increasing x order
    order = sorted(range(len(cx)), key=lambda j: cx[j])
    res_as_y = list(by) + list(fy) + [cy[j] for j in order]
    return transpose(res, _ranks(res_as_y))


def _dot_vmap(axis_size, args, dims, *, dimension_numbers):
    (x, y), (dx, dy) = args, dims
    (cx, cy), (bx, by) = dimension_numbers
    shift = lambda t: tuple(i + 1 for i in t)  # noqa: E731
    if dx is not None and dy is not None:
        x, y = move_axis_to_front(x, dx), move_axis_to_front(y, dy)
        dn = ((shift(cx), shift(cy)), ((0,) + shift(bx), (0,) + shift(by)))
        return dot_general(x, y, dn), 0
    if dx is not None:
        x = move_axis_to_front(x, dx)
        dn = ((shift(cx), cy), (shift(bx), by))
        return dot_general(x, y, dn), len(bx)  # the batch dim is x's first free dim
    y = move_axis_to_front(y, dy)
    x_aval = aval_of(x)
    dn = ((cx, shift(cy)), (bx, shift(by)))
    return dot_general(x, y, dn), len(bx) + len(_free(x_aval.ndim, cx, bx))


def _is_outer(x, y, *, dimension_numbers):
    """An outer product (no contraction, no batch): a member of a fused loop nest."""
    (cx, _), (bx, _) = dimension_numbers
    return not cx and not bx and x.ndim > 0 and y.ndim > 0


def _dot_loop(at, idx, x, y, *, out, dimension_numbers):
    return f"({at(0, idx[:x.ndim])} * {at(1, idx[x.ndim:])})"


def _dot_lower(gen, inputs, outputs, *, dimension_numbers):
    """np.dot (BLAS) on C-contiguous operands, straight for the matrix layouts and
    after copying to (batch, free, contract) x (batch, contract, free) otherwise."""
    x, y = inputs
    xa, ya = x.aval, y.aval
    (cx, cy), (bx, by) = dimension_numbers
    out = outputs[0].aval
    o = gen.name(outputs[0])
    if not np.issubdtype(out.dtype, np.inexact):
        raise CodegenError("dot_general on integers is not compiled", "dot_general")
    X, Y = gen.name(x), gen.name(y)
    if xa.ndim == 0 or ya.ndim == 0:
        # nothing to contract: a scalar times an array (0-d values are kernel scalars)
        return gen.assign(outputs, f"{X} * {Y}" if out.shape == () else
                          f"np.ascontiguousarray({X} * {Y})")
    if not bx and xa.ndim <= 2 and ya.ndim <= 2 and cx == (xa.ndim - 1,) and cy == (0,):
        return gen.assign(outputs, f"np.dot(np.ascontiguousarray({X}), np.ascontiguousarray({Y}))")
    if not bx and xa.ndim == 2 and ya.ndim <= 2 and cx == (0,) and cy == (0,):
        # x^T y: BLAS reads the transposed view directly (F layout)
        return gen.assign(outputs, f"np.dot({X}.T, np.ascontiguousarray({Y}))" if ya.ndim == 2
                          else f"np.dot(np.ascontiguousarray({Y}), np.ascontiguousarray({X}))")
    if not bx and xa.ndim <= 2 and ya.ndim == 2 and cx == (xa.ndim - 1,) and cy == (1,):
        return gen.assign(outputs, f"np.dot(np.ascontiguousarray({X}), {Y}.T)")
    # general: copy to (batch, free, contract) x (batch, contract, free) with loops,
    # then one BLAS product per batch element (loops compile far faster than
    # numba's transpose/reshape of arbitrary layouts)
    fx = tuple(i for i in range(xa.ndim) if i not in cx and i not in bx)
    fy = tuple(i for i in range(ya.ndim) if i not in cy and i not in by)
    size = lambda a, dims: size_product(a.shape[i] for i in dims)  # noqa: E731
    nb, m, k, n = size(xa, bx), size(xa, fx), size(xa, cx), size(ya, fy)
    dt = np_dtype(out.dtype)
    gen.copy_loop(f"{o}_x", (nb, m, k), x, bx + fx + cx, dt)
    gen.copy_loop(f"{o}_y", (nb, k, n), y, by + cy + fy, dt)
    lines = gen.lines
    lines.append(f"    {o}_o = np.empty(({nb}, {m}, {n}), {dt})")
    # (assigning a whole array to a slice is slow to compile in numba: copy by loop)
    lines.append(f"    for _b in range({nb}):")
    lines.append(f"        {o}_t = np.dot({o}_x[_b], {o}_y[_b])")
    lines.append(f"        for _r in range({m}):")
    lines.append(f"            for _c in range({n}):")
    lines.append(f"                {o}_o[_b, _r, _c] = {o}_t[_r, _c]")
    if out.shape == ():
        return gen.assign(outputs, f"{o}_o[0, 0, 0]")
    lines.append(f"    {o} = np.empty({out.shape!r}, {dt})")
    idx = [f"_i{q}" for q in range(out.ndim)]
    src = reshape_index((nb, m, n), out.shape, idx)
    gen.loops(out.shape, f"{o}[{', '.join(idx)}] = {o}_o[{', '.join(src)}]")
    return gen.assign(outputs, o)


dot_general_p = Primitive("dot_general", kind="linalg", linear_in="each")
dot_general_p.def_impl(_dot_impl)
dot_general_p.def_shape(_dot_shape)
# bilinear: d(x . y) = dx . y + x . dy
dot_general_p.def_jvp(lambda tx, ty, x, y, *, out, dimension_numbers: add(
    dot_general(tx, y, dimension_numbers), dot_general(x, ty, dimension_numbers)))
dot_general_p.def_vjp(lambda ct, x, y, *, out, dimension_numbers: (
    _dot_transpose_lhs(ct, aval_of(x), y, dimension_numbers),
    _dot_transpose_rhs(ct, x, aval_of(y), dimension_numbers)))
dot_general_p.def_vmap(_dot_vmap)
dot_general_p.def_loop(_dot_loop, when=_is_outer)
dot_general_p.def_lower(_dot_lower)


def dot_general(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    """lax.dot_general: dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))."""
    (cx, cy), (bx, by) = dimension_numbers
    dn = ((tuple(map(int, cx)), tuple(map(int, cy))), (tuple(map(int, bx)), tuple(map(int, by))))
    return dot_general_p.bind(x, y, dimension_numbers=dn)


# ---------------------------------------------------------------------------------
# Matrix functions on stacks of matrices (..., m, n).  Each is a primitive because
# LAPACK does it faster and more stably than a composite: solve (LU with pivoting),
# det and slogdet (LU; det is its own primitive because sign * exp(logdet) loses
# accuracy and over/underflows), cholesky, triangular_solve, eigh, qr, svd.
# Batch (leading) dimensions of the operands must be equal; fungrad.numpy.linalg
# broadcasts them.
# ---------------------------------------------------------------------------------


def _mT(x):
    """Swap the last two axes."""
    nd = aval_of(x).ndim
    return transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _conj(x):
    """conj(x) for complex x; real x as it is."""
    return conj(x) if is_complex(aval_of(x).dtype) else x


def _mH(x):
    """The conjugate transpose of the last two axes (the transpose for real x)."""
    return _conj(_mT(x))


def _to(x, dtype):
    """x (real) as `dtype` (complex for complex operands): the imaginary part is 0."""
    return convert_element_type(x, dtype)


def _mm(x, y):
    """Batched matrix product (..., n, k) @ (..., k, m) with equal batch dims."""
    nd = aval_of(x).ndim
    batch = tuple(range(nd - 2))
    return dot_general(x, y, (((nd - 1,), (nd - 2,)), (batch, batch)))


def _tri_mask(aval, k=0, lower=True):
    """bool mask of the lower (col <= row + k) or upper (col >= row + k) triangle."""
    rows = iota(np.int64, aval.shape, aval.ndim - 2)
    cols = iota(np.int64, aval.shape, aval.ndim - 1)
    shifted = add(rows, np.int64(k))
    return le(cols, shifted) if lower else ge(cols, shifted)


def _where_mask(mask, x):
    return select(mask, x, zeros_like_aval(aval_of(x)))


def _eye(aval):
    rows = iota(np.int64, aval.shape, aval.ndim - 2)
    cols = iota(np.int64, aval.shape, aval.ndim - 1)
    return convert_element_type(eq(rows, cols), aval.dtype)


def _trace(x):
    nd = aval_of(x).ndim
    return reduce_sum(mul(x, _eye(aval_of(x))), (nd - 2, nd - 1))


def _expand_matrix(s, like_aval):
    """A (...,) value broadcast over the trailing (n, n) of like_aval."""
    return broadcast_in_dim(s, like_aval.shape, tuple(range(like_aval.ndim - 2)))


def _square_shape(name, x):
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise FungradTypeError(f"{name}: needs a (..., n, n) stack of square matrices, got {x}")
    if not is_float(x.dtype):
        raise FungradTypeError(f"{name}: needs a floating-point operand, got {x}; "
                               "convert it first (fungrad.numpy does)")


def _solve_shape(name, a, b):
    _square_shape(name, a)
    if b.dtype != a.dtype:
        raise FungradTypeError(f"{name}: dtypes must match, got {a} and {b}")
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
        raise FungradTypeError(
            f"{name}: b must be (..., n, m) with the batch dims of a (..., n, n), "
            f"got {a} and {b}")
    return b


def _stack_vmap(prim):
    """Batching rule of a primitive on stacks of matrices: the batch dim goes first,
    an unbatched operand is broadcast to the batch."""
    def rule(axis_size, args, dims, **params):
        moved = [bdim_to_front(axis_size, x, d) for x, d in zip(args, dims, strict=True)]
        out = prim.bind(*moved, **params)
        return out, ((0,) * len(out) if prim.multiple_results else 0)
    return rule


def _nan_on_failure(fn, x, *rest):
    """fn on each matrix of a stack; a LinAlgError gives NaNs (like lax) instead of raising."""
    try:
        return fn(x, *rest)
    except np.linalg.LinAlgError:
        pass
    shape = rest[0].shape[-2:] if rest else x.shape[-2:]
    out = np.full(x.shape[:-2] + tuple(shape), np.nan, dtype=x.dtype)
    for idx in np.ndindex(*x.shape[:-2]):
        try:
            out[idx] = fn(x[idx], *(a[idx] for a in rest))
        except np.linalg.LinAlgError:
            pass
    return out


# --- inside numba kernels ----------------------------------------------------------------
# Each matrix function lowers to a helper call on (batch, rows, cols) C-contiguous copies
# of its operands, made and unmade with loops (the kernel text prints no reshape).
# eigh, svd, qr and cholesky call numba's np.linalg per matrix: the LAPACK routines the
# interpreter's NumPy calls (syevd, gesdd, geqrf/orgqr, potrf), so results agree to
# rounding.  solve, det and slogdet use an LU with LAPACK getf2's pivots, and
# triangular_solve a substitution, written as loops: numba's np.linalg.solve alone
# takes ~7 s of CPU to compile, these ~1 s.  Wherever the interpreter answers otherwise
# than a plain factorization would (a singular or not positive definite matrix, an inf
# or nan read, an empty svd), a helper raises LinAlgError and the kernel's caller reruns
# that call in the interpreter (backend/numba_jit.py): a kernel never returns what the
# interpreter would not.

_KERNEL_HELPERS = """
@numba.njit(cache=CACHE, error_model="numpy")
def _fg_finite(x, lower, upper):
    # LinAlgError (the call reruns in the interpreter) if a value read is inf or nan:
    # the lower and/or upper triangle of each (r, c) matrix of x
    nb, r, c = x.shape
    for s in range(nb):
        for i in range(r):
            for j in range(c):
                if (lower and j <= i) or (upper and j >= i):
                    if not np.isfinite(x[s, i, j]):
                        raise np.linalg.LinAlgError("an inf or nan operand")


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_lu(a, s, piv):
    # in-place LU with partial pivoting of matrix s of the stack a, with the pivots of
    # LAPACK's getf2 (the first largest |re| + |im|); False at an exactly zero pivot
    n = a.shape[1]
    for k in range(n):
        p = k
        best = abs(a[s, k, k].real) + abs(a[s, k, k].imag)
        for i in range(k + 1, n):
            v = abs(a[s, i, k].real) + abs(a[s, i, k].imag)
            if v > best:
                best = v
                p = i
        piv[k] = p
        if best == 0:
            return False
        if p != k:
            for j in range(n):
                t = a[s, k, j]
                a[s, k, j] = a[s, p, j]
                a[s, p, j] = t
        d = a[s, k, k]
        for i in range(k + 1, n):
            f = a[s, i, k] / d
            a[s, i, k] = f
            for j in range(k + 1, n):
                a[s, i, j] -= f * a[s, k, j]
    return True


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_solve(a, b):
    # x = a^-1 b for stacks a (nb, n, n) and b (nb, n, m); both are overwritten
    _fg_finite(a, True, True)
    _fg_finite(b, True, True)
    nb, n, m = b.shape
    piv = np.empty(n, np.int64)
    for s in range(nb):
        if not _fg_lu(a, s, piv):
            raise np.linalg.LinAlgError("a singular matrix")
        for k in range(n):
            p = piv[k]
            if p != k:
                for j in range(m):
                    t = b[s, k, j]
                    b[s, k, j] = b[s, p, j]
                    b[s, p, j] = t
        for i in range(n):
            for q in range(i):
                f = a[s, i, q]
                for j in range(m):
                    b[s, i, j] -= f * b[s, q, j]
        for i in range(n - 1, -1, -1):
            for q in range(i + 1, n):
                f = a[s, i, q]
                for j in range(m):
                    b[s, i, j] -= f * b[s, q, j]
            d = a[s, i, i]
            for j in range(m):
                b[s, i, j] = b[s, i, j] / d
    return b


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_slogdet(a):
    # (sign, log|det|) of each matrix of a (nb, n, n), overwritten; NumPy's (0, -inf)
    # for a singular one, (1, 0) for a 0 x 0 one
    _fg_finite(a, True, True)
    nb, n, _ = a.shape
    sign = np.ones(nb, a.dtype)
    logdet = np.zeros(nb, a.dtype)
    piv = np.empty(n, np.int64)
    for s in range(nb):
        if not _fg_lu(a, s, piv):
            sign[s] = 0
            logdet[s] = -np.inf
            continue
        sg = sign[s]
        acc = logdet[s]
        for k in range(n):
            if piv[k] != k:
                sg = -sg
            d = a[s, k, k]
            ad = abs(d)
            sg = sg * (d / ad)
            acc += np.log(ad)
        sign[s] = sg
        logdet[s] = acc
    return sign, logdet


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_det(a):
    # NumPy's det: sign * exp(log|det|)
    sign, logdet = _fg_slogdet(a)
    return sign * np.exp(logdet)


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_trisolve(a, b, lower, trans):
    # op(a) x = b, a triangular (only its lower or upper triangle is read), op(a) = a
    # or a^T, for stacks a (nb, n, n) and b (nb, n, m); b is overwritten with x
    _fg_finite(a, lower, not lower)
    _fg_finite(b, True, True)
    nb, n, m = b.shape
    forward = lower != trans
    for s in range(nb):
        for i in range(n):
            if a[s, i, i] == 0:
                raise np.linalg.LinAlgError("a singular triangular matrix")
        for t in range(n):
            i = t if forward else n - 1 - t
            lo = 0 if forward else i + 1
            hi = i if forward else n
            for q in range(lo, hi):
                f = a[s, q, i] if trans else a[s, i, q]
                for j in range(m):
                    b[s, i, j] -= f * b[s, q, j]
            d = a[s, i, i]
            for j in range(m):
                b[s, i, j] = b[s, i, j] / d
    return b


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_cholesky(a):
    # lower Cholesky factors of a (nb, n, n) (its lower triangles are read), by LAPACK's
    # potrf; LinAlgError for a matrix that is not positive definite
    _fg_finite(a, True, False)
    nb, n, _ = a.shape
    out = np.zeros((nb, n, n), a.dtype)
    for s in range(nb):
        low = np.linalg.cholesky(a[s])
        for i in range(n):
            for j in range(i + 1):
                out[s, i, j] = low[i, j]
    return out


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_eigh(a):
    # eigenvalues (ascending) and eigenvectors of a (nb, n, n) (lower triangles read)
    nb, n, _ = a.shape
    w = np.empty((nb, n), a.dtype)
    v = np.empty((nb, n, n), a.dtype)
    for s in range(nb):
        ws, vs = np.linalg.eigh(a[s])
        for i in range(n):
            w[s, i] = ws[i]
            for j in range(n):
                v[s, i, j] = vs[i, j]
    return w, v


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_svd(a):
    # thin SVD of each matrix of a (nb, m, n): u (nb, m, k), s (nb, k), vt (nb, k, n)
    nb, m, n = a.shape
    if a.size == 0:
        raise np.linalg.LinAlgError("an empty matrix")
    k = min(m, n)
    u = np.empty((nb, m, k), a.dtype)
    sv = np.empty((nb, k), a.dtype)
    vt = np.empty((nb, k, n), a.dtype)
    for s in range(nb):
        us, ss, vts = np.linalg.svd(a[s], full_matrices=False)
        for i in range(k):
            sv[s, i] = ss[i]
            for r in range(m):
                u[s, r, i] = us[r, i]
            for c in range(n):
                vt[s, i, c] = vts[i, c]
    return u, sv, vt


@numba.njit(cache=CACHE, error_model="numpy")
def _fg_qr(a):
    # reduced QR of each matrix of a (nb, m, n): q (nb, m, k), r (nb, k, n)
    nb, m, n = a.shape
    k = min(m, n)
    q = np.empty((nb, m, k), a.dtype)
    r = np.empty((nb, k, n), a.dtype)
    for s in range(nb):
        qs, rs = np.linalg.qr(a[s])
        for i in range(k):
            for j in range(m):
                q[s, j, i] = qs[j, i]
            for j in range(n):
                r[s, i, j] = rs[i, j]
    return q, r
"""


def _dims(*sizes) -> str:
    """A shape as kernel text (the one place the linalg rules print sizes)."""
    return repr(tuple(int(n) for n in sizes))


def _stack_shape(aval) -> tuple:
    """(batch, rows, cols) of a (..., rows, cols) stack."""
    nb = int(np.prod(aval.shape[:-2], dtype=np.int64))
    return (nb,) + tuple(aval.shape[-2:])


def _stack_in(gen, x, name: str) -> str:
    """`name` = a fresh C-contiguous (batch, rows, cols) copy of operand x."""
    gen.copy_loop(name, _stack_shape(x.aval), x, tuple(range(x.aval.ndim)),
                  np_dtype(x.aval.dtype))
    return name


def _stack_out(gen, out, src: str, src_shape: tuple) -> None:
    """out = the stacked result `src` (of shape src_shape) in out's shape."""
    o = gen.name(out)
    shape = tuple(out.aval.shape)
    if shape == ():
        gen.lines.append(f"    {o} = {src}[{', '.join(['0'] * len(src_shape))}]")
        return
    if shape == tuple(src_shape):
        gen.lines.append(f"    {o} = {src}")
    else:
        gen.lines.append(f"    {o} = np.empty({_dims(*shape)}, {np_dtype(out.aval.dtype)})")
        idx = [f"_i{q}" for q in range(len(shape))]
        src_idx = reshape_index(src_shape, shape, idx)
        gen.loops(shape, f"{o}[{', '.join(idx)}] = {src}[{', '.join(src_idx)}]")
    gen.fresh.add(out)


def _helper_lower(helper: str, flags=None):
    """The `lower` rule of a matrix function: stacked copies of the operands, one call
    of kernel helper `helper` (one stacked array per output), the results unstacked.
    `flags(**params)` gives the literal arguments that follow the operands."""
    def lower(gen, inputs, outputs, **params):
        for x in inputs:
            if not np.issubdtype(x.aval.dtype, np.inexact):
                raise CodegenError(f"{helper[4:]} of a {x.aval} operand is not compiled",
                                   helper[4:])
        base = gen.name(outputs[0])
        args = [_stack_in(gen, x, f"{base}_in{k}") for k, x in enumerate(inputs)]
        args += [repr(bool(v)) for v in (flags(**params) if flags else ())]
        gen.helper(_KERNEL_HELPERS)
        results = [f"{base}_r{k}" for k in range(len(outputs))]
        gen.lines.append(f"    {', '.join(results)} = {helper}({', '.join(args)})")
        nb = _stack_shape(inputs[0].aval)[0]
        batch_nd = inputs[0].aval.ndim - 2
        for out, res in zip(outputs, results, strict=True):
            _stack_out(gen, out, res, (nb,) + tuple(out.aval.shape[batch_nd:]))
    return lower


# --- cholesky ------------------------------------------------------------------------

def _cholesky_shape(a):
    _square_shape("cholesky", a)
    return a


def _cholesky_impl(a):
    a = np.asarray(a)
    return _nan_on_failure(np.linalg.cholesky, a).astype(a.dtype, copy=False)


def _phi(x):
    """The lower triangle of x with its diagonal halved."""
    aval = aval_of(x)
    half = mul(x, aval.dtype.type(0.5))
    return select(_tri_mask(aval, -1), x, select(_tri_mask(aval, 0), half,
                                                       zeros_like_aval(aval)))


def _symmetric_from_lower(t):
    """The symmetric (Hermitian, for complex t) matrix whose lower triangle is t's: what
    LAPACK reads (the imaginary part of a complex diagonal is ignored)."""
    aval = aval_of(t)
    if is_complex(aval.dtype):
        diag = _to(real(t), aval.dtype)
        return select(_tri_mask(aval, -1), t, select(_tri_mask(aval, 0), diag, _mH(t)))
    return select(_tri_mask(aval, 0), t, _mT(t))


def _cholesky_jvp(t, a, *, out):
    # A = L L^H:  dL = L phi(L^-1 dA L^-H)
    sym = _symmetric_from_lower(t)
    left = triangular_solve(out, sym, left_side=True, lower=True)           # L^-1 dA
    middle = triangular_solve(out, _mH(left), left_side=True, lower=True)   # L^-1 dA L^-H
    return _mm(out, _phi(middle))


def _cholesky_vjp(ct, a, *, out):
    # the transpose of the jvp: S = L^-T phi(L^T L_bar) conj(L)^-1; the impl reads a's
    # lower triangle (Hermitian), so the cotangent of A is S + S^H below the diagonal
    # and Re(S) on it (for real A: sym(S) on the diagonal and 2 sym(S) below it)
    g = _phi(_mm(_mT(out), ct))
    left = triangular_solve(out, g, left_side=True, lower=True, transpose_a=True)
    s = _mT(triangular_solve(_conj(out), _mT(left), left_side=True, lower=True,
                             transpose_a=True))
    both = add(s, _mH(s))        # 2 sym(S)
    aval = aval_of(both)
    return (select(_tri_mask(aval, -1), both,
                      select(_tri_mask(aval, 0), mul(both, aval.dtype.type(0.5)),
                                zeros_like_aval(aval))),)


cholesky_p = Primitive("cholesky", kind="linalg")
cholesky_p.def_impl(_cholesky_impl)
cholesky_p.def_shape(_cholesky_shape)
cholesky_p.def_jvp(_cholesky_jvp)
cholesky_p.def_vjp(_cholesky_vjp)
cholesky_p.def_vmap(_stack_vmap(cholesky_p))
cholesky_p.def_lower(_helper_lower("_fg_cholesky"))


def cholesky(a, symmetrize_input: bool = True):
    """Lower Cholesky factor L of a symmetric (Hermitian) positive-definite (..., n, n)
    stack, A = L L^T (L L^H).

    With `symmetrize_input` the factor of (A + A^H) / 2 is taken, so the gradient is
    symmetric; otherwise only the lower triangle of `a` is read.  A matrix that is not
    positive definite gives NaNs.

    >>> cholesky(np.array([[4., 2.], [2., 2.]]))   # [[2., 0.], [1., 1.]]
    """
    if symmetrize_input:
        a = mul(add(a, _mH(a)), aval_of(a).dtype.type(0.5))
    return cholesky_p.bind(a)


# --- triangular_solve ------------------------------------------------------------------

def _trisolve_shape(a, b, *, lower, transpose_a):
    return _solve_shape("triangular_solve", a, b)


def _trisolve_impl(a, b, *, lower, transpose_a):
    import scipy.linalg
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.zeros(b.shape, b.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            x = scipy.linalg.solve_triangular(a, b, trans=1 if transpose_a else 0, lower=lower,
                                              check_finite=False)
        except np.linalg.LinAlgError:   # an exactly singular triangle: inf/nan, like lax
            tri = np.tril(a) if lower else np.triu(a)
            op = np.swapaxes(tri, -1, -2) if transpose_a else tri
            x = np.full(b.shape, np.nan, b.dtype)
            for idx in np.ndindex(*a.shape[:-2]):
                try:
                    x[idx] = np.linalg.solve(op[idx], b[idx])
                except np.linalg.LinAlgError:
                    pass
    return np.asarray(x, dtype=b.dtype)


def _tri_part(x, lower):
    return _where_mask(_tri_mask(aval_of(x), 0, lower), x)


def _trisolve_jvp(ta, tb, a, b, *, out, lower, transpose_a):
    # x = op(A)^-1 b:  dx = op(A)^-1 (db - op(dA) x), dA restricted to the triangle read
    ta = _tri_part(ta, lower)
    op_ta = _mT(ta) if transpose_a else ta
    rhs = sub(tb, _mm(op_ta, out))
    return triangular_solve_p.bind(a, rhs, lower=lower, transpose_a=transpose_a)


def _trisolve_vjp(ct, a, b, *, out, lower, transpose_a):
    # b_bar = op(A)^-T x_bar;  A_bar = -b_bar x^T (or -x b_bar^T when op is a transpose)
    b_bar = triangular_solve_p.bind(a, ct, lower=lower, transpose_a=not transpose_a)
    a_bar = _mm(out, _mT(b_bar)) if transpose_a else _mm(b_bar, _mT(out))
    return (_tri_part(neg(a_bar), lower), b_bar)


triangular_solve_p = Primitive("triangular_solve", kind="linalg")
triangular_solve_p.def_impl(_trisolve_impl)
triangular_solve_p.def_shape(_trisolve_shape)
triangular_solve_p.def_jvp(_trisolve_jvp)
triangular_solve_p.def_vjp(_trisolve_vjp)
triangular_solve_p.def_vmap(_stack_vmap(triangular_solve_p))
triangular_solve_p.def_lower(_helper_lower(
    "_fg_trisolve", lambda *, lower, transpose_a: (lower, transpose_a)))


def triangular_solve(a, b, left_side: bool = False, lower: bool = False,
                     transpose_a: bool = False, conjugate_a: bool = False,
                     unit_diagonal: bool = False):
    """lax.linalg.triangular_solve: solve op(A) X = B (left_side) or X op(A) = B, with A
    triangular (only its `lower` or upper triangle is read) and op(A) = A or A^T
    (conjugated first with `conjugate_a`).

    a: (..., n, n); b: (..., n, m) if left_side else (..., m, n), same batch dims.
    >>> triangular_solve(np.array([[2., 0.], [1., 1.]]), np.array([[2.], [2.]]),
    ...                  left_side=True, lower=True)   # [[1.], [1.]]
    """
    if conjugate_a and is_complex(aval_of(a).dtype):
        a = conj(a)
    if unit_diagonal:
        eye = _eye(aval_of(a))
        a = select(eq(eye, 1), eye, a)
    if left_side:
        return triangular_solve_p.bind(a, b, lower=bool(lower), transpose_a=bool(transpose_a))
    # X op(A) = B  <=>  op(A)^T X^T = B^T
    xt = triangular_solve_p.bind(a, _mT(b), lower=bool(lower), transpose_a=not transpose_a)
    return _mT(xt)


# --- solve ---------------------------------------------------------------------------

def _solve_impl(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.zeros(b.shape, b.dtype)
    return _nan_on_failure(np.linalg.solve, a, b).astype(b.dtype, copy=False)


def _solve_jvp(ta, tb, a, b, *, out):
    # x = A^-1 b:  dx = A^-1 (db - dA x)
    return solve_p.bind(a, sub(tb, _mm(ta, out)))


def _solve_vjp(ct, a, b, *, out):
    # b_bar = A^-T x_bar;  A_bar = -b_bar x^T
    b_bar = solve_p.bind(_mT(a), ct)
    return (neg(_mm(b_bar, _mT(out))), b_bar)


solve_p = Primitive("solve", kind="linalg")
solve_p.def_impl(_solve_impl)
solve_p.def_shape(lambda a, b: _solve_shape("solve", a, b))
solve_p.def_jvp(_solve_jvp)
solve_p.def_vjp(_solve_vjp)
solve_p.def_vmap(_stack_vmap(solve_p))
solve_p.def_lower(_helper_lower("_fg_solve"))


def solve(a, b):
    """X with A X = B for a (..., n, n) stack A and B of shape (..., n, m) (LU with
    partial pivoting).  An exactly singular A gives NaNs."""
    return solve_p.bind(a, b)


def inv(a):
    """Inverse of a (..., n, n) stack: solve(A, I)."""
    return solve_p.bind(a, _eye(aval_of(a)))


# --- det / slogdet ---------------------------------------------------------------------

def _det_shape(a):
    _square_shape("det", a)
    return ShapedArray(a.shape[:-2], a.dtype)


def _det_impl(a):
    a = np.asarray(a)
    return np.asarray(np.linalg.det(a), dtype=a.dtype)[()]


def _det_cofactor(a, out):
    """d det A / dA = adj(A)^T, the cofactor matrix: det A A^-T where that is finite;
    at a singular A (det 0, or an inverse that overflows) the SVD form
    det(U) det(V^T) U diag(prod_{j != i} s_j) V^T (conjugated for complex A = U S V^H),
    which is finite there (and 0 for rank <= n - 2).  The SVD form is a constant
    (stop_gradient): higher derivatives at a singular A are not taken through it."""
    a_aval = aval_of(a)
    nd = a_aval.ndim
    direct = mul(_expand_matrix(out, a_aval), solve_p.bind(_mT(a), _eye(a_aval)))
    # det == 0 exactly (an LU pivot was 0) makes `direct` 0, not the cofactor
    regular = bool_and(reduce_and(is_finite(direct), (nd - 2, nd - 1)),
                       ne(out, a_aval.dtype.type(0)))
    cofactor = _svd_cofactor(stop_gradient(a))
    return select(_expand_matrix(regular, a_aval), direct, cofactor)


def _svd_cofactor(a0):
    """The cofactor matrix of a (constant) stack by its SVD, finite everywhere; singular
    values at rounding level (<= n eps max(s)) count as 0, so a rank <= n - 2 matrix
    has the exact cofactor 0."""
    a_aval = aval_of(a0)
    nd = a_aval.ndim
    u, s, vt = svd_p.bind(a0)
    s_dtype = aval_of(s).dtype
    top = reduce_max(s, (nd - 2,))
    tol = mul(broadcast_in_dim(top, aval_of(s).shape, tuple(range(nd - 2))),
              s_dtype.type(a_aval.shape[-1] * np.finfo(s_dtype).eps))
    s = select(le(s, tol), zeros_like_aval(aval_of(s)), s)
    s_aval = a_aval.update(dtype=aval_of(s).dtype)
    s_rows = broadcast_in_dim(s, s_aval.shape, tuple(range(nd - 2)) + (nd - 1,))
    eye = _eye(s_aval)
    ones = full(s_aval.shape, 1, s_aval.dtype)
    others = reduce_prod(select(eq(eye, s_aval.dtype.type(1)), ones, s_rows), (nd - 1,))
    others = _to(others, a_aval.dtype)
    scaled_u = mul(u, broadcast_in_dim(others, a_aval.shape, tuple(range(nd - 2)) + (nd - 1,)))
    sign = mul(det_p.bind(u), det_p.bind(vt))
    return mul(_expand_matrix(sign, a_aval), _conj(_mm(scaled_u, vt)))


def _det_jvp(t, a, *, out):
    # d det A = tr(adj(A) dA) = sum(cofactor(A) * dA)
    nd = aval_of(a).ndim
    return reduce_sum(mul(_det_cofactor(a, out), t), (nd - 2, nd - 1))


def _det_vjp(ct, a, *, out):
    # A_bar = ct cofactor(A)   (= ct det A A^-T for a regular A)
    return (mul(_expand_matrix(ct, aval_of(a)), _det_cofactor(a, out)),)


det_p = Primitive("det", kind="linalg")
det_p.def_impl(_det_impl)
det_p.def_shape(_det_shape)
det_p.def_jvp(_det_jvp)
det_p.def_vjp(_det_vjp)
det_p.def_vmap(_stack_vmap(det_p))
det_p.def_lower(_helper_lower("_fg_det"))


def det(a):
    """Determinant of a (..., n, n) stack (LU)."""
    return det_p.bind(a)


def _slogdet_shape(a):
    _square_shape("slogdet", a)
    sign = ShapedArray(a.shape[:-2], a.dtype)
    return (sign, sign.update(dtype=real_dtype(a.dtype)))


def _slogdet_impl(a):
    a = np.asarray(a)
    sign, logabsdet = np.linalg.slogdet(a)
    return (np.asarray(sign, dtype=a.dtype)[()],
            np.asarray(logabsdet, dtype=real_dtype(a.dtype))[()])


def _log_det_gradient(a, sign):
    """d log det A / dA = A^-T; at a singular A (sign 0) JAX's values: for real A
    cofactor(A) * inf, +-inf where the cofactor is nonzero (rank n - 1) and NaN where
    it is 0 (rank <= n - 2); NaN for complex A."""
    a_aval = aval_of(a)
    nd = a_aval.ndim
    direct = solve_p.bind(_mT(a), _eye(a_aval))
    regular = bool_and(reduce_and(is_finite(direct), (nd - 2, nd - 1)),
                       ne(sign, a_aval.dtype.type(0)))
    if is_complex(a_aval.dtype):
        singular = full(a_aval.shape, complex(np.nan, np.nan), a_aval.dtype)
    else:
        singular = mul(_svd_cofactor(stop_gradient(a)), a_aval.dtype.type(np.inf))
    return select(_expand_matrix(regular, a_aval), direct, singular)


def _slogdet_jvp(t, a, *, out):
    # T = d log det A = tr(A^-1 dA):  d log|det A| = Re T,  d sign = i Im(T) sign
    # (the sign of a real A is piecewise constant)
    sign, _ = out
    nd = aval_of(a).ndim
    # (safe_mul: a zero tangent entry wins over an infinite gradient at a singular A,
    # so jacfwd gives grad's +-inf)
    rate = reduce_sum(safe_mul(t, _log_det_gradient(a, sign)), (nd - 2, nd - 1))
    if not is_complex(aval_of(a).dtype):
        return (None, rate)
    dtype = aval_of(a).dtype
    return (mul(mul(_to(imag(rate), dtype), dtype.type(1j)), sign), real(rate))


def _slogdet_vjp(ct, a, *, out):
    # the transpose of the jvp: A_bar = (ct_log + i Im(ct_sign sign)) A^-T
    ct_sign, ct_logabsdet = ct
    a_aval = aval_of(a)
    scale = ct_logabsdet
    if is_complex(a_aval.dtype):
        i_im = mul(_to(imag(mul(ct_sign, out[0])), a_aval.dtype), a_aval.dtype.type(1j))
        scale = add(_to(ct_logabsdet, a_aval.dtype), i_im)
    return (safe_mul(_expand_matrix(scale, a_aval), _log_det_gradient(a, out[0])),)


slogdet_p = Primitive("slogdet", kind="linalg", multiple_results=True)
slogdet_p.def_impl(_slogdet_impl)
slogdet_p.def_shape(_slogdet_shape)
slogdet_p.def_jvp(_slogdet_jvp)
slogdet_p.def_vjp(_slogdet_vjp)
slogdet_p.def_vmap(_stack_vmap(slogdet_p))
slogdet_p.def_lower(_helper_lower("_fg_slogdet"))


def slogdet(a):
    """(sign, log|det A|) of a (..., n, n) stack; sign is 0 and logabsdet -inf when
    A is singular.  For complex A the sign is complex (|sign| = 1) and log|det A|
    real."""
    return tuple(slogdet_p.bind(a))


# --- helpers of the decompositions ----------------------------------------------------------

def _diag_part(m):
    """(..., n, n) -> (..., n): the diagonal."""
    nd = aval_of(m).ndim
    return reduce_sum(mul(m, _eye(aval_of(m))), (nd - 1,))


def _along(v, shape, last: bool):
    """v (..., k) broadcast to (..., k, k): v_j at [i, j] if `last`, else v_i at [i, j]."""
    nd = len(shape)
    return broadcast_in_dim(v, shape, tuple(range(nd - 2)) + ((nd - 1,) if last else (nd - 2,)))


def _diag_matrix(v, shape):
    return mul(_along(v, shape, True), _eye(ShapedArray(shape, aval_of(v).dtype)))


def _lower_adjoint(g):
    """Cotangent of A for a primitive that reads only A's lower triangle, given the
    cotangent g of the symmetric (Hermitian) matrix built from it: tril(g + g^T) with the
    diagonal g's (tril(g + g^H) with the diagonal Re(g) for complex g)."""
    both = add(g, _mH(g))
    aval = aval_of(both)
    return select(_tri_mask(aval, -1), both,
                     select(_tri_mask(aval, 0), mul(both, aval.dtype.type(0.5)),
                               zeros_like_aval(aval)))


def _inverse_gaps(values, shape, squared=False):
    """F[i, j] = 1 / (v_j - v_i) (or 1 / (v_j^2 - v_i^2)) off the diagonal, 0 on it.
    Equal values give inf; callers multiply with safe_mul so a zero cotangent wins."""
    row, col = _along(values, shape, True), _along(values, shape, False)
    gaps = mul(add(row, col), sub(row, col)) if squared else sub(row, col)
    dtype = aval_of(values).dtype
    on_diag = eq(_eye(ShapedArray(shape, dtype)), dtype.type(1))
    return select(on_diag, dtype.type(0), div(dtype.type(1), select(
        on_diag, dtype.type(1), gaps)))



# --- eigh -----------------------------------------------------------------------------------

def _eigh_shape(a):
    _square_shape("eigh", a)
    return (ShapedArray(a.shape[:-1], real_dtype(a.dtype)), a)


def _eigh_impl(a):
    a = np.asarray(a)
    w, v = np.linalg.eigh(a, UPLO="L")
    return (w.astype(real_dtype(a.dtype), copy=False), v.astype(a.dtype, copy=False))


def _eigh_jvp(t, a, *, out):
    # M = V^H dA V:  dw = Re diag(M),  dV = V (F o M) with F_ij = 1 / (w_j - w_i) (JAX's
    # rule; dV has a zero diagonal in V's basis, which fixes the phase of complex V)
    w, v = out
    dtype = aval_of(v).dtype
    shape = aval_of(v).shape
    m = _mm(_mH(v), _mm(_symmetric_from_lower(t), v))
    dw = _diag_part(m)
    dw = real(dw) if is_complex(dtype) else dw
    return (dw, _mm(v, safe_mul(m, _to(_inverse_gaps(w, shape), dtype))))


def _eigh_vjp(ct, a, *, out):
    # the transpose of the jvp: A_bar = conj(V) (diag(w_bar) + F o (V^T V_bar)) V^T,
    # folded onto the lower triangle read (for real A: V (...) V^T)
    w, v = out
    ct_w, ct_v = ct
    dtype = aval_of(v).dtype
    shape = aval_of(v).shape
    inner = add(_diag_matrix(_to(ct_w, dtype), shape),
                safe_mul(_mm(_mT(v), ct_v), _to(_inverse_gaps(w, shape), dtype)))
    return (_lower_adjoint(_mm(_conj(v), _mm(inner, _mT(v)))),)


eigh_p = Primitive("eigh", kind="linalg", multiple_results=True)
eigh_p.def_impl(_eigh_impl)
eigh_p.def_shape(_eigh_shape)
eigh_p.def_jvp(_eigh_jvp)
eigh_p.def_vjp(_eigh_vjp)
eigh_p.def_vmap(_stack_vmap(eigh_p))
eigh_p.def_lower(_helper_lower("_fg_eigh"))


def eigh(a, symmetrize_input: bool = True):
    """(w, v): eigenvalues (ascending, real) and eigenvectors (columns) of a symmetric or
    Hermitian (..., n, n) stack.  Eigenvalue derivatives always exist; eigenvector
    derivatives are inf at repeated eigenvalues unless the cotangent of v vanishes in
    that eigenspace (then 0: a zero cotangent wins).  With `symmetrize_input`,
    (a + a^H) / 2 is decomposed."""
    if symmetrize_input:
        a = mul(add(a, _mH(a)), aval_of(a).dtype.type(0.5))
    return tuple(eigh_p.bind(a))


# --- qr -------------------------------------------------------------------------------------

def _qr_shape(a):
    if a.ndim < 2 or not is_float(a.dtype):
        raise FungradTypeError(f"qr: needs a (..., m, n) floating-point stack, got {a}")
    m, n = a.shape[-2:]
    k = min(m, n)
    return (a.update(shape=a.shape[:-1] + (k,)), a.update(shape=a.shape[:-2] + (k, n)))


def _qr_impl(a):
    a = np.asarray(a)
    q, r = np.linalg.qr(a, mode="reduced")
    return (q.astype(a.dtype, copy=False), r.astype(a.dtype, copy=False))


def _qr_check(a):
    m, n = aval_of(a).shape[-2:]
    if m < n:
        raise FungradNotImplementedError(
            f"qr: derivatives need m >= n (a tall or square matrix), got {aval_of(a)}")


def _imag_diagonal(k):
    """i Im(diag(k)) as a diagonal matrix (0 for real k)."""
    dtype = aval_of(k).dtype
    return mul(sub(k, _to(real(k), dtype)), _eye(aval_of(k)))


def _qr_jvp(t, a, *, out):
    # dx R^-1 = C; Q^H C = K; dO = tril(K, -1) - tril(K, -1)^H + i Im(diag K) (JAX's rule;
    # the last term is 0 for real A);  dQ = Q (dO - K) + C, dR = (K - dO) R
    _qr_check(a)
    q, r = out
    c = triangular_solve(r, t, left_side=False, lower=False)
    k = _mm(_mH(q), c)
    low = _where_mask(_tri_mask(aval_of(k), -1), k)
    d_omega = sub(low, _mH(low))
    if is_complex(aval_of(k).dtype):
        d_omega = add(d_omega, _imag_diagonal(k))
    return (add(_mm(q, sub(d_omega, k)), c), _mm(sub(k, d_omega), r))


def _qr_vjp(ct, a, *, out):
    # the transpose of the jvp: G = R_bar R^T - Q^T Q_bar;  K_bar = G above the diagonal,
    # G^H below it, Re(G) on it;  A_bar = (Q_bar + conj(Q) K_bar) R^-T
    # (for real A: M = G^T and K_bar = copyltu(M)^T)
    _qr_check(a)
    q, r = out
    ct_q, ct_r = ct
    g = sub(_mm(ct_r, _mT(r)), _mm(_mT(q), ct_q))
    aval = aval_of(g)
    k_bar = select(_tri_mask(aval, -1), _mH(g), g)
    if is_complex(aval.dtype):
        k_bar = sub(k_bar, _imag_diagonal(g))
    b = add(ct_q, _mm(_conj(q), k_bar))
    return (triangular_solve(r, b, left_side=False, lower=False, transpose_a=True),)


qr_p = Primitive("qr", kind="linalg", multiple_results=True)
qr_p.def_impl(_qr_impl)
qr_p.def_shape(_qr_shape)
qr_p.def_jvp(_qr_jvp)
qr_p.def_vjp(_qr_vjp)
qr_p.def_vmap(_stack_vmap(qr_p))
qr_p.def_lower(_helper_lower("_fg_qr"))


def qr(a):
    """Reduced QR of a (..., m, n) stack: q (..., m, k) with orthonormal columns and upper
    triangular r (..., k, n), k = min(m, n).  Differentiable for m >= n."""
    return tuple(qr_p.bind(a))


# --- svd ------------------------------------------------------------------------------------

def _svd_shape(a):
    if a.ndim < 2 or not is_float(a.dtype):
        raise FungradTypeError(f"svd: needs a (..., m, n) floating-point stack, got {a}")
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.shape[:-2]
    return (a.update(shape=batch + (m, k)),
            a.update(shape=batch + (k,), dtype=real_dtype(a.dtype)),
            a.update(shape=batch + (k, n)))


def _svd_impl(a):
    a = np.asarray(a)
    m, n = a.shape[-2:]
    if a.size == 0:
        k = min(m, n)
        batch = a.shape[:-2]
        eye = lambda r, c: np.broadcast_to(np.eye(r, c, dtype=a.dtype), batch + (r, c))  # noqa
        return (eye(m, k).copy(), np.zeros(batch + (k,), real_dtype(a.dtype)),
                eye(k, n).copy())
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return (u.astype(a.dtype, copy=False), s.astype(real_dtype(a.dtype), copy=False),
            vt.astype(a.dtype, copy=False))


def _safe_inverse(s):
    dtype = aval_of(s).dtype
    zero = eq(s, dtype.type(0))
    return select(zero, dtype.type(0), div(dtype.type(1), select(zero, dtype.type(1), s)))


def _svd_jvp(t, a, *, out):
    # JAX's rule.  dS = U^H dA V; ds = Re diag(dS); dU = U (F o (dS S + S dS^H) + D) (+ the
    # part of dA V outside span U when m > n); dV = V (F o (S dS + dS^H S)) (+ likewise);
    # F_ij = 1 / (s_j^2 - s_i^2); D = diag(i Im(dS_ii) / s_i) fixes the phase of complex
    # U's columns (0 for real A)
    u, s, vt = out
    dtype = aval_of(a).dtype
    v = _mH(vt)
    m, n = aval_of(a).shape[-2:]
    k_shape = aval_of(s).shape + aval_of(s).shape[-1:]
    f = _to(_inverse_gaps(s, k_shape, squared=True), dtype)
    ds_full = _mm(_mH(u), _mm(t, v))
    s_c = _to(s, dtype)
    s_row, s_col = _along(s_c, k_shape, True), _along(s_c, k_shape, False)
    dss = mul(ds_full, s_row)
    sds = mul(ds_full, s_col)
    du_inner = safe_mul(add(dss, _mH(dss)), f)
    if is_complex(dtype):
        s_inv_row = _along(_to(_safe_inverse(s), dtype), k_shape, True)
        du_inner = add(du_inner, mul(_imag_diagonal(ds_full), s_inv_row))
    du = _mm(u, du_inner)
    dv = _mm(v, safe_mul(add(sds, _mH(sds)), f))
    if m > n:
        dav = _mm(t, v)
        s_inv_u = _along(_to(_safe_inverse(s), dtype), aval_of(u).shape, True)
        du = add(du, mul(sub(dav, _mm(u, _mm(_mH(u), dav))), s_inv_u))
    if n > m:
        dau = _mm(_mH(t), u)
        s_inv_v = _along(_to(_safe_inverse(s), dtype), aval_of(v).shape, True)
        dv = add(dv, mul(sub(dau, _mm(v, _mm(vt, dau))), s_inv_v))
    ds = _diag_part(ds_full)
    return (du, real(ds) if is_complex(dtype) else ds, _mH(dv))


def _svd_vjp(ct, a, *, out):
    # the transpose of _svd_jvp: with X = F o (U^T U_bar), Y = F o (V^T V_bar),
    # V_bar = Vt_bar^H, the cotangent of dS is
    #   dS_bar = diag(s_bar) + (X + X^H) S + S (Y + Y^H) + diag(i Im(U^T U_bar)_ii / s_i)
    # and A_bar = conj(U) dS_bar V^T + projections (for real A: U dS_bar V^T)
    u, s, vt = out
    ct_u, ct_s, ct_vt = ct
    dtype = aval_of(a).dtype
    v, ct_v = _mH(vt), _mH(ct_vt)
    m, n = aval_of(a).shape[-2:]
    k_shape = aval_of(s).shape + aval_of(s).shape[-1:]
    f = _to(_inverse_gaps(s, k_shape, squared=True), dtype)
    s_c = _to(s, dtype)
    ut_ct_u = _mm(_mT(u), ct_u)
    x = safe_mul(ut_ct_u, f)
    y = safe_mul(_mm(_mT(v), ct_v), f)
    inner = add(_diag_matrix(_to(ct_s, dtype), k_shape),
                add(mul(add(x, _mH(x)), _along(s_c, k_shape, True)),
                    mul(add(y, _mH(y)), _along(s_c, k_shape, False))))
    if is_complex(dtype):
        s_inv_row = _along(_to(_safe_inverse(s), dtype), k_shape, True)
        inner = add(inner, mul(_imag_diagonal(ut_ct_u), s_inv_row))
    a_bar = _mm(_conj(u), _mm(inner, _mT(v)))
    if m > n:
        scaled = mul(ct_u, _along(_to(_safe_inverse(s), dtype), aval_of(u).shape, True))
        a_bar = add(a_bar, _mm(sub(scaled, _mm(_conj(u), _mm(_mT(u), scaled))), _mT(v)))
    if n > m:
        scaled = mul(ct_v, _along(_to(_safe_inverse(s), dtype), aval_of(v).shape, True))
        z = _mm(sub(scaled, _mm(_conj(v), _mm(_mT(v), scaled))), _mT(u))
        a_bar = add(a_bar, _mH(z))
    return (a_bar,)


svd_p = Primitive("svd", kind="linalg", multiple_results=True)
svd_p.def_impl(_svd_impl)
svd_p.def_shape(_svd_shape)
svd_p.def_jvp(_svd_jvp)
svd_p.def_vjp(_svd_vjp)
svd_p.def_vmap(_stack_vmap(svd_p))
svd_p.def_lower(_helper_lower("_fg_svd"))


def svd(a):
    """Thin SVD of a (..., m, n) stack: (u (..., m, k), s (..., k) real and descending,
    vt (..., k, n)), k = min(m, n); a = u diag(s) vt (vt = V^H for complex a).  Derivatives of u and vt are undefined (inf) at repeated singular
    values unless their cotangents vanish there; those of s always exist."""
    return tuple(svd_p.bind(a))



# --- eig (general matrices) --------------------------------------------------------------
# The eigenvalues and unit eigenvectors of a general matrix are complex.  Derivatives
# exist where the eigenvalues are distinct (JAX's rule): with M = V^-1 dA V,
# dw = diag(M) and dV = V (F o M) - V diag(Re(diag(V^H V (F o M)))), F_ij = 1/(w_j - w_i);
# the second term keeps the columns at unit norm.  Repeated eigenvalues give inf/nan
# unless the eigenvectors' cotangent vanishes there (a zero wins).

def _eig_shape(a):
    _square_shape("eig", a)
    cdt = complex_dtype(a.dtype)
    return (ShapedArray(a.shape[:-1], cdt), ShapedArray(a.shape, cdt))


def _eig_impl(a):
    a = np.asarray(a)
    cdt = complex_dtype(a.dtype)
    if a.size == 0:
        return (np.zeros(a.shape[:-1], cdt), np.zeros(a.shape, cdt))
    w, v = np.linalg.eig(a)
    return (w.astype(cdt), v.astype(cdt))


def _column_sums(x):
    return reduce_sum(x, (aval_of(x).ndim - 2,))


def _eig_jvp(t, a, *, out):
    w, v = out
    shape = aval_of(v).shape
    t = convert_element_type(t, aval_of(v).dtype)
    m = solve_p.bind(v, _mm(t, v))
    dv = _mm(v, safe_mul(m, _inverse_gaps(w, shape)))
    norms = convert_element_type(real(_column_sums(mul(conj(v), dv))), aval_of(v).dtype)
    return (_diag_part(m), sub(dv, mul(v, _along(norms, shape, True))))


def _eig_vjp(ct, a, *, out):
    # the transpose of the jvp: A_bar = V^-T (diag(w_bar) + F o (V^T V_bar')) V^T, where
    # V_bar' = V_bar - conj(V) diag(Re(colsum(V_bar o V))) transposes the normalization
    w, v = out
    ct_w, ct_v = ct
    shape = aval_of(v).shape
    scale = convert_element_type(real(_column_sums(mul(ct_v, v))), aval_of(v).dtype)
    ct_v = sub(ct_v, mul(conj(v), _along(scale, shape, True)))
    inner = add(_diag_matrix(ct_w, shape), safe_mul(_mm(_mT(v), ct_v), _inverse_gaps(w, shape)))
    a_bar = solve_p.bind(_mT(v), _mm(inner, _mT(v)))
    return (convert_element_type(a_bar, aval_of(a).dtype),)


eig_p = Primitive("eig", kind="linalg", multiple_results=True)
eig_p.def_impl(_eig_impl)
eig_p.def_shape(_eig_shape)
eig_p.def_jvp(_eig_jvp)
eig_p.def_vjp(_eig_vjp)
eig_p.def_vmap(_stack_vmap(eig_p))


def eig(a):
    """(w, v): the complex eigenvalues and unit eigenvectors (columns) of a general
    (..., n, n) stack, in LAPACK's order and phase.  Differentiable where the
    eigenvalues are distinct."""
    return tuple(eig_p.bind(a))
