"""`fungrad.numpy.linalg`: NumPy's linear-algebra functions on fungrad primitives.

Every function takes stacks of matrices (leading batch dimensions broadcast, as in
NumPy), promotes integers to float64 and keeps float32 as float32 (and complex as
complex, with JAX's derivative conventions), is
differentiable to any order (the rules live with the primitives in
`fungrad/primitives/linalg.py`), and on concrete inputs outside any trace simply
computes and returns NumPy arrays.

Conventions: `norm` has gradient zero (never NaN) at the zero vector or matrix
("a zero cotangent wins"); max/min-based norms split ties evenly.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import lax
from ..errors import (ConcretizationError, FungradNotImplementedError, FungradTypeError,
                      FungradValueError)
from ..tracing import Tracer, aval_of
from . import _coercion, _creation, _diagonals, _products, _shape
from ._checks import axis_index

__all__ = ["norm", "vector_norm", "matrix_norm", "det", "slogdet", "inv", "solve",
           "cholesky", "eig", "eigvals", "eigh", "eigvalsh", "qr", "svd", "svdvals", "pinv", "cond",
           "matrix_rank",
           "matrix_power", "multi_dot", "matmul", "outer", "tensordot", "trace", "diagonal",
           "matrix_transpose", "lstsq", "cross", "vecdot", "LinAlgError"]

LinAlgError = np.linalg.LinAlgError


class SlogdetResult(NamedTuple):
    sign: object
    logabsdet: object


class EighResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class EigResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class QRResult(NamedTuple):
    Q: object
    R: object


class SVDResult(NamedTuple):
    U: object
    S: object
    Vh: object


def _float_array(x, where: str):
    """x as an array (tracer or ndarray) of an inexact dtype (ints become float64; complex
    stays complex: every function here takes it)."""
    x = _coercion.asarray(x)
    dtype = aval_of(x).dtype
    if not np.issubdtype(dtype, np.inexact):
        x = _coercion.asarray(x, dtype=np.float64)
    return x


def _square(x, where: str):
    aval = aval_of(x)
    if aval.ndim < 2:
        raise LinAlgError(f"{aval.ndim}-dimensional array given. Array must be at least "
                          f"two-dimensional (linalg.{where})")
    if aval.shape[-1] != aval.shape[-2]:
        raise LinAlgError(f"Last 2 dimensions of the array must be square (linalg.{where}, "
                          f"got {aval})")
    return x


def _broadcast_batch(a, b, b_core: int):
    """Broadcast the batch dims of a (..., n, n) and b (..., core dims)."""
    a_shape, b_shape = aval_of(a).shape, aval_of(b).shape
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:len(b_shape) - b_core])
    except ValueError:
        raise FungradValueError(
            f"linalg.solve: batch dimensions do not broadcast: {a_shape} and {b_shape}") from None
    a = _shape.broadcast_to(a, batch + a_shape[-2:])
    b = _shape.broadcast_to(b, batch + b_shape[len(b_shape) - b_core:])
    return a, b


def _promote_pair(a, b, where):
    a, b = _float_array(a, where), _float_array(b, where)
    dtype = np.result_type(aval_of(a).dtype, aval_of(b).dtype)
    return lax.convert_element_type(a, dtype), lax.convert_element_type(b, dtype)


def solve(a, b):
    """The solution x of a @ x = b (NumPy 2 semantics: b is a vector only when 1-D).

    a: (..., n, n); b: (n,) or (..., n, m); batch dims broadcast.
    >>> solve(np.array([[3., 1.], [1., 2.]]), np.array([9., 8.]))   # array([2., 3.])
    """
    a, b = _promote_pair(a, b, "solve")
    _square(a, "solve")
    if aval_of(b).ndim == 1:
        a, b = _broadcast_batch(a, lax.reshape(b, aval_of(b).shape + (1,)), 2)
        x = lax.solve(a, b)
        return lax.reshape(x, aval_of(x).shape[:-1])
    a, b = _broadcast_batch(a, b, 2)
    return lax.solve(a, b)


def inv(a):
    """The inverse of a square matrix (or of each in a stack); NaNs where singular.

    >>> inv(np.array([[2., 0.], [0., 4.]]))   # [[0.5, 0.], [0., 0.25]]
    """
    a = _square(_float_array(a, "inv"), "inv")
    return lax.inv(a)


def det(a):
    """The determinant of a square matrix (or of each in a stack).

    >>> det(np.array([[1., 2.], [3., 4.]]))   # -2.0
    """
    a = _square(_float_array(a, "det"), "det")
    return lax.det(a)


def slogdet(a):
    """(sign, log|det a|) as a named tuple, like NumPy 2; the log is differentiable (and the
    sign, for complex a, as in JAX).  A singular a gives sign 0 and logabsdet -inf, and
    a gradient of +-inf (NaN where the cofactor is 0), as JAX.

    >>> slogdet(np.array([[1., 2.], [3., 4.]]))   # SlogdetResult(sign=-1.0, logabsdet=0.693...)
    """
    a = _square(_float_array(a, "slogdet"), "slogdet")
    sign, logabsdet = lax.slogdet(a)
    return SlogdetResult(sign, logabsdet)


def cholesky(a, /, *, upper: bool = False, symmetrize_input: bool = True):
    """Cholesky factor of a symmetric (Hermitian) positive-definite matrix: L with
    a = L @ L^H (or U = L^H with a = U^H @ U when `upper`).  The input is symmetrized,
    (a + a^H) / 2, so its gradient is symmetric (as JAX; with symmetrize_input=False
    only the lower triangle is read); NaNs if a is not positive definite.

    >>> cholesky(np.array([[4., 2.], [2., 2.]]))   # [[2., 0.], [1., 1.]]
    """
    a = _square(_float_array(a, "cholesky"), "cholesky")
    factor = lax.cholesky(a, symmetrize_input=symmetrize_input)
    if upper:
        return _conj_t(factor)
    return factor


def _conj_t(x):
    """The conjugate transpose of the last two axes."""
    xt = _shape.swapaxes(x, -1, -2)
    return lax.conj(xt) if aval_of(x).dtype.kind == "c" else xt


def eigh(a, UPLO: str | None = None, symmetrize_input: bool = True):
    """Eigenvalues (ascending, real) and eigenvectors (columns) of a symmetric or Hermitian
    matrix or stack, as EighResult(eigenvalues, eigenvectors).  As in JAX, the input is
    symmetrized, (a + a^H) / 2, so UPLO does not matter and the gradient is symmetric;
    with symmetrize_input=False only the UPLO ('L', the default, or 'U') triangle is
    read, as NumPy.  Eigenvalue derivatives exist at repeated eigenvalues too;
    eigenvector derivatives there are inf, unless the eigenvectors' cotangent vanishes
    in the repeated eigenspace (then finite: a zero cotangent wins).

    >>> eigh(np.array([[2., 1.], [1., 2.]])).eigenvalues   # [1., 3.]
    """
    if UPLO not in (None, "L", "U"):
        raise FungradValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = _square(_float_array(a, "eigh"), "eigh")
    if not symmetrize_input and UPLO == "U":
        a = _conj_t(a)     # the Hermitian matrix of a's upper triangle: read from below
    w, v = lax.eigh(a, symmetrize_input=symmetrize_input)
    return EighResult(w, v)


def eig(a):
    """Eigenvalues and unit eigenvectors (columns) of a general square matrix (or of each
    in a stack), always complex, as an EigResult(eigenvalues, eigenvectors) named tuple.
    Derivatives follow JAX and exist where the eigenvalues are distinct; the
    eigenvectors' phase is LAPACK's, so only phase-invariant functions of them (such
    as abs(v) or v w v^-1) have meaningful gradients.

    >>> eig(np.array([[2., 0.], [0., 3.]]))   # EigResult(eigenvalues=[2+0j, 3+0j], ...)
    """
    a = _square(_float_array(a, "eig"), "eig")
    w, v = lax.eig(a)
    return EigResult(w, v)


def eigvals(a):
    """The (complex) eigenvalues of a general square matrix; see `eig`."""
    return eig(a).eigenvalues


def eigvalsh(a, UPLO: str | None = None, symmetrize_input: bool = True):
    """Eigenvalues (ascending, real) of a symmetric or Hermitian matrix or stack; always
    differentiable."""
    return eigh(a, UPLO, symmetrize_input).eigenvalues


def qr(a, mode: str = "reduced"):
    """QR decomposition, as QRResult(Q, R) (mode 'reduced', or 'complete' for m <= n)
    or R alone (mode 'r').  Derivatives need m >= n.

    >>> qr(np.array([[3., 0.], [4., 5.]])).R   # [[-5., -4.], [0., 3.]]
    """
    a = _float_array(a, "qr")
    if aval_of(a).ndim < 2:
        raise LinAlgError("linalg.qr: needs at least a two-dimensional array")
    m, n = aval_of(a).shape[-2:]
    if mode not in ("reduced", "complete", "r"):
        raise FungradValueError(f"linalg.qr: unsupported mode {mode!r}; use 'reduced', "
                                "'complete' or 'r'")
    if mode == "complete" and m > n:
        raise FungradNotImplementedError(
            "linalg.qr: mode='complete' of a tall matrix is not supported; use 'reduced'")
    q, r = lax.qr(a)
    return r if mode == "r" else QRResult(q, r)


def svd(a, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False):
    """Singular value decomposition, as SVDResult(U, S, Vh) with S descending, or S alone
    when not compute_uv.  Under a transform full_matrices=True needs a square matrix
    (pass full_matrices=False); derivatives of U and Vh are undefined at repeated
    singular values, those of S always exist.

    >>> svd(np.array([[3., 0.], [0., -4.]])).S   # [4., 3.]
    """
    a = _float_array(a, "svd")
    aval = aval_of(a)
    if aval.ndim < 2:
        raise LinAlgError("linalg.svd: needs at least a two-dimensional array")
    m, n = aval.shape[-2:]
    if compute_uv and full_matrices and m != n:
        if not isinstance(a, Tracer):
            return SVDResult(*np.linalg.svd(a, full_matrices=True))
        raise FungradNotImplementedError(
            f"linalg.svd: full_matrices=True of a non-square {aval} is not differentiable; "
            "pass full_matrices=False")
    u, s, vt = lax.svd(a)
    return SVDResult(u, s, vt) if compute_uv else s


def svdvals(x, /):
    """Singular values (descending) of a matrix or stack."""
    return svd(x, compute_uv=False)


# --- norms ----------------------------------------------------------------------------

def _safe_root(s, p: float):
    """s ** (1/p) for s >= 0 with a zero derivative at s == 0 (not inf * 0 = NaN):
    the root is taken of 1 where s is 0, and that branch is then discarded."""
    dtype = aval_of(s).dtype
    is_zero = lax.eq(s, dtype.type(0))
    s_safe = lax.select(is_zero, dtype.type(1), s)
    root = lax.sqrt(s_safe) if p == 2 else lax.pow(s_safe, dtype.type(1.0 / p))
    return lax.select(is_zero, dtype.type(0), root)


def _keep(out, shape, axes, keepdims):
    if not keepdims:
        return out
    return lax.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _normalize_axis_tuple(axis, nd, where):
    axes = tuple(int(a) for a in ((axis,) if np.isscalar(axis) else axis))
    for a in axes:
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(f"linalg.{where}: axis {a} is out of bounds for "
                                          f"array of dimension {nd}")
    axes = tuple(a % nd for a in axes)
    if len(set(axes)) != len(axes):
        raise FungradValueError(f"linalg.{where}: duplicate axes {axis}")
    return axes


def _vector_norm(x, ord, axes):
    dtype = aval_of(x).dtype
    if ord is None or ord == 2:
        return _safe_root(lax.reduce_sum(lax.mul(x, x), axes), 2)
    absx = lax.abs(x)
    if ord == np.inf:
        return lax.reduce_max(absx, axes)
    if ord == -np.inf:
        return lax.reduce_min(absx, axes)
    if ord == 0:
        nonzero = lax.convert_element_type(lax.ne(x, dtype.type(0)), dtype)
        return lax.stop_gradient(lax.reduce_sum(nonzero, axes))
    if ord == 1:
        return lax.reduce_sum(absx, axes)
    if isinstance(ord, str):
        raise FungradValueError(f"linalg.norm: invalid norm order {ord!r} for vectors")
    p = float(ord)
    return _safe_root(lax.reduce_sum(lax.pow(absx, dtype.type(p)), axes), p)


def _matrix_norm(x, ord, row, col):
    complex_x = aval_of(x).dtype.kind == "c"
    if complex_x and ord not in (2, -2, "nuc"):
        x = lax.abs(x)     # these are the same norms of |x|
    if ord in (None, "fro", "f"):
        return _safe_root(lax.reduce_sum(lax.mul(x, x), (row, col)), 2)
    absx = lax.abs(x)
    if ord in (1, -1):
        sums, other = lax.reduce_sum(absx, (row,)), col - (row < col)
    elif ord in (np.inf, -np.inf):
        sums, other = lax.reduce_sum(absx, (col,)), row - (col < row)
    elif ord in (2, -2, "nuc"):
        nd = aval_of(x).ndim
        rest = tuple(i for i in range(nd) if i not in (row, col))
        moved = lax.transpose(x, rest + (row, col))
        # a zero matrix has no defined singular vectors: decompose ones there instead and
        # return 0, so the gradient at zero is zero
        dtype = aval_of(x).dtype
        size = lax.abs(moved) if complex_x else lax.mul(moved, moved)
        zero = lax.eq(lax.reduce_sum(size, (nd - 2, nd - 1)), aval_of(size).dtype.type(0))
        zero_b = lax.broadcast_in_dim(zero, aval_of(moved).shape, tuple(range(nd - 2)))
        s = lax.svd(lax.select(zero_b, dtype.type(1), moved))[1]
        dtype = aval_of(s).dtype
        k = aval_of(s).shape[-1]
        if ord == "nuc":
            out = lax.reduce_sum(s, (len(rest),))
        elif k == 0:
            raise FungradValueError(f"linalg.norm: ord={ord} of an empty matrix is undefined")
        else:
            pick = 0 if ord == 2 else k - 1
            start, limit = [0] * aval_of(s).ndim, list(aval_of(s).shape)
            start[-1], limit[-1] = pick, pick + 1
            out = lax.reshape(lax.slice(s, start, limit), aval_of(s).shape[:-1])
        return lax.select(zero, dtype.type(0), out)
    else:
        raise FungradValueError(f"linalg.norm: invalid norm order {ord!r} for matrices")
    return lax.reduce_max(sums, (other,)) if ord in (1, np.inf) else lax.reduce_min(
        sums, (other,))


def norm(x, ord=None, axis=None, keepdims: bool = False):
    """Vector or matrix norm, as numpy.linalg.norm.

    ord: None (2-norm of the flattened array, or Frobenius for matrices), 'fro', 1, -1,
    2 (vectors), inf, -inf, 0 (count of nonzeros, not differentiable) or any p for
    vectors.  axis: None, an int (vector norms) or a pair (matrix norms).  The gradient
    at zero is zero, never NaN.

    >>> norm(np.array([3., 4.]))   # 5.0
    """
    x = _float_array(x, "norm")
    if aval_of(x).dtype.kind == "c":
        # every norm but the spectral ones is the same norm of |x| (real, with the
        # conjugate gradient conj(x) / |x| of abs); those take the complex svd
        spectral = ord in (2, -2, "nuc") and (aval_of(x).ndim == 2 and axis is None or
                                              axis is not None and np.ndim(axis) == 1
                                              and len(axis) == 2)
        if not spectral:
            x = lax.abs(x)
    shape = aval_of(x).shape
    nd = len(shape)
    if axis is None:
        if ord is None:
            axes = tuple(range(nd))
            if not axes:
                return _keep(lax.abs(x), shape, axes, keepdims)
            return _keep(_vector_norm(x, None, axes), shape, axes, keepdims)
        if nd == 1:
            axes = (0,)
        elif nd == 2:
            axes = (0, 1)
        else:
            raise FungradValueError("linalg.norm: improper number of dimensions to norm "
                                    f"({nd}); pass axis= for stacks")
    else:
        axes = _normalize_axis_tuple(axis, nd, "norm")
    if len(axes) == 1:
        out = _vector_norm(x, ord, axes)
    elif len(axes) == 2:
        out = _matrix_norm(x, ord, *axes)
    else:
        raise FungradValueError("linalg.norm: improper number of dimensions to norm "
                                f"(axis={axis})")
    return _keep(out, shape, axes, keepdims)


def vector_norm(x, /, *, axis=None, keepdims: bool = False, ord=2):
    """numpy.linalg.vector_norm: the vector p-norm over `axis` (all axes if None)."""
    x = _float_array(x, "vector_norm")
    if aval_of(x).dtype.kind == "c":
        x = lax.abs(x)
    shape = aval_of(x).shape
    axes = tuple(range(len(shape))) if axis is None else _normalize_axis_tuple(
        axis, len(shape), "vector_norm")
    if not axes:
        return lax.abs(x)
    return _keep(_vector_norm(x, ord, axes), shape, axes, keepdims)


def matrix_norm(x, /, *, keepdims: bool = False, ord="fro"):
    """numpy.linalg.matrix_norm: the norm of each matrix in a (..., m, n) stack."""
    x = _float_array(x, "matrix_norm")
    shape = aval_of(x).shape
    if len(shape) < 2:
        raise FungradValueError("linalg.matrix_norm: needs at least 2 dimensions")
    axes = (len(shape) - 2, len(shape) - 1)
    return _keep(_matrix_norm(x, ord, *axes), shape, axes, keepdims)



# --- composites ---------------------------------------------------------------------------

def pinv(a, rcond=None, hermitian: bool = False, *, rtol=None):
    """Moore-Penrose pseudo-inverse via the SVD, V S^-1 U^H: singular values at or below
    rcond * max(s) (default max(m, n) * eps) are treated as zero.

    >>> pinv(np.array([[1., 0.], [0., 0.]]))   # [[1., 0.], [0., 0.]]
    """
    a = _float_array(a, "pinv")
    aval = aval_of(a)
    m, n = aval.shape[-2:]
    dtype = np.finfo(aval.dtype).dtype     # of the singular values
    cutoff_ratio = rtol if rtol is not None else rcond
    if cutoff_ratio is None:
        cutoff_ratio = max(m, n) * np.finfo(dtype).eps
    u, s, vt = lax.svd(a)
    if aval_of(s).shape[-1] == 0:
        return lax.transpose(lax.mul(a, aval.dtype.type(0)), tuple(range(aval.ndim - 2)) + (
            aval.ndim - 1, aval.ndim - 2))
    top = lax.reduce_max(s, (aval_of(s).ndim - 1,))
    cutoff = lax.mul(lax.broadcast_in_dim(top, aval_of(s).shape, tuple(range(aval_of(s).ndim - 1))),
                     dtype.type(cutoff_ratio))
    keep = lax.gt(s, cutoff)
    s_inv = lax.select(keep, lax.div(dtype.type(1), lax.select(keep, s, dtype.type(1))),
                       dtype.type(0))
    v = _conj_t(vt)
    batch_dims = tuple(range(aval_of(s).ndim - 1))
    s_inv = lax.convert_element_type(s_inv, aval.dtype)
    v_scaled = lax.mul(v, lax.broadcast_in_dim(s_inv, aval_of(v).shape, batch_dims + (
        aval.ndim - 1,)))
    return _products.matmul(v_scaled, _conj_t(u))


def cond(x, p=None):
    """Condition number: s_max / s_min for p None, 2 (-2: the inverse), else
    norm(x, p) * norm(inv(x), p)."""
    x = _float_array(x, "cond")
    if p in (None, 2, -2):
        s = svdvals(x)
        last = aval_of(s).ndim - 1
        ratio = lax.div(lax.reduce_max(s, (last,)), lax.reduce_min(s, (last,)))
        return ratio if p != -2 else lax.div(aval_of(ratio).dtype.type(1), ratio)
    x = _square(x, "cond")
    axes = (aval_of(x).ndim - 2, aval_of(x).ndim - 1)
    return lax.mul(norm(x, p, axis=axes), norm(inv(x), p, axis=axes))


def matrix_rank(A, tol=None, hermitian: bool = False, *, rtol=None):
    """Number of singular values above tol (default max(s) * max(m, n) * eps); an int,
    not differentiable."""
    A = _float_array(A, "matrix_rank")
    aval = aval_of(A)
    if aval.ndim < 2:
        return lax.convert_element_type(lax.reduce_or(lax.ne(A, aval.dtype.type(0)),
                                                      tuple(range(aval.ndim))), np.int64)
    s = lax.stop_gradient(svdvals(A))
    last = aval_of(s).ndim - 1
    s_dtype = aval_of(s).dtype
    if tol is None:
        ratio = rtol if rtol is not None else max(aval.shape[-2:]) * np.finfo(aval.dtype).eps
        tol = lax.mul(lax.reduce_max(s, (last,)), s_dtype.type(ratio))
    tol = lax.convert_element_type(_coercion.asarray(tol), s_dtype)
    tol_b = lax.broadcast_in_dim(tol, aval_of(s).shape, tuple(range(aval_of(tol).ndim)))
    return lax.reduce_sum(lax.convert_element_type(lax.gt(s, tol_b), np.int64), (last,))


def matrix_power(a, n: int):
    """a @ a @ ... (n times) by repeated squaring; n < 0 uses inv(a), n == 0 the identity."""
    a = _square(_coercion.asarray(a), "matrix_power")
    n = int(n)
    if n < 0:
        a, n = inv(a), -n
    aval = aval_of(a)
    if n == 0:
        return _shape.broadcast_to(_creation.eye(aval.shape[-1], dtype=aval.dtype), aval.shape)
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else _products.matmul(result, base)
        n >>= 1
        if n:
            base = _products.matmul(base, base)
    return result


def multi_dot(arrays):
    """matmul of a sequence of arrays (the first may be 1-D, the last too), left to right."""
    if not isinstance(arrays, (list, tuple)):
        raise FungradTypeError(f"linalg.multi_dot: arrays must be a list or tuple of arrays, "
                               f"got {type(arrays).__name__}")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise FungradValueError("linalg.multi_dot: needs at least two arrays")
    out = arrays[0]
    for b in arrays[1:]:
        out = _products.matmul(out, b)
    return out


def matmul(x1, x2, /):
    """The matrix product (numpy.linalg.matmul = numpy.matmul)."""
    return _products.matmul(x1, x2)


def outer(x1, x2, /):
    """Outer product of two vectors."""
    return _products.outer(x1, x2)


def tensordot(x1, x2, /, *, axes=2):
    """numpy.linalg.tensordot = numpy.tensordot."""
    return _products.tensordot(x1, x2, axes)


def trace(x, /, *, offset: int = 0, dtype=None):
    """Trace of each matrix in a (..., m, n) stack (over the last two axes)."""
    return _diagonals.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


def diagonal(x, /, *, offset: int = 0):
    """Diagonal of each matrix in a (..., m, n) stack (over the last two axes)."""
    return _diagonals.diagonal(x, offset=offset, axis1=-2, axis2=-1)


def matrix_transpose(x, /):
    """Swap the last two axes."""
    return _shape.swapaxes(x, -1, -2)


class LstsqResult(NamedTuple):
    x: object
    residuals: object
    rank: object
    s: object


def lstsq(a, b, rcond=None):
    """Least-squares solution of a @ x = b via the pseudo-inverse, as NumPy's
    (x, residuals, rank, s); residuals are the squared residual norms when a has full
    column rank and m > n (else empty; under `jit`, where the rank is not known, they
    are always returned, as in JAX).  x and the residuals are differentiable.

    >>> lstsq(np.array([[1., 0.], [0., 1.], [1., 1.]]), np.array([1., 2., 3.])).x  # [1., 2.]
    """
    a, b = _promote_pair(a, b, "lstsq")
    m, n = aval_of(a).shape[-2:] if aval_of(a).ndim == 2 else (None, None)
    if m is None:
        raise LinAlgError("linalg.lstsq: a must be two-dimensional")
    vector = aval_of(b).ndim == 1
    if aval_of(b).shape[0] != m:
        raise LinAlgError(f"linalg.lstsq: incompatible dimensions {aval_of(a)} and {aval_of(b)}")
    ratio = np.finfo(aval_of(a).dtype).eps * max(m, n) if rcond is None else rcond
    x = _products.matmul(pinv(a, rcond=ratio), b)
    s = svdvals(a)
    rank = matrix_rank(a, tol=None if rcond is None else lax.mul(
        lax.reduce_max(s, (0,)), aval_of(s).dtype.type(ratio))) if min(m, n) else np.int64(0)
    residual = lax.sub(_products.matmul(a, x), b)
    if aval_of(residual).dtype.kind == "c":
        residual = lax.abs(residual)
    squares = lax.reduce_sum(lax.mul(residual, residual), (0,))
    squares = lax.reshape(squares, (1,)) if vector else squares
    try:
        full_rank = int(rank) == n
    except ConcretizationError:   # under jit the rank is unknown: JAX's choice, keep them
        full_rank = True
    residuals = squares if full_rank and m > n else np.zeros((0,), aval_of(s).dtype)
    return LstsqResult(x, residuals, rank, s)


def cross(x1, x2, /, *, axis: int = -1):
    """Cross product of 3-vectors along `axis` (numpy.linalg.cross)."""
    a, b = _shape.broadcast_arrays(*_promote_pair(x1, x2, "cross"))
    nd = aval_of(a).ndim
    ax = axis_index(axis, nd)
    if aval_of(a).shape[ax] != 3:
        raise FungradValueError("linalg.cross: both inputs must have 3 elements along axis")

    def part(v, i):
        start, limit = [0] * nd, list(aval_of(v).shape)
        start[ax], limit[ax] = i, i + 1
        return lax.slice(v, start, limit)
    a0, a1, a2 = (part(a, i) for i in range(3))
    b0, b1, b2 = (part(b, i) for i in range(3))
    return lax.concatenate([lax.sub(lax.mul(a1, b2), lax.mul(a2, b1)),
                            lax.sub(lax.mul(a2, b0), lax.mul(a0, b2)),
                            lax.sub(lax.mul(a0, b1), lax.mul(a1, b0))], ax)


def vecdot(x1, x2, /, *, axis: int = -1):
    """Dot product of vectors along `axis`, broadcasting the rest (numpy.linalg.vecdot)."""
    a, b = _shape.broadcast_arrays(*_promote_pair(x1, x2, "vecdot"))
    return lax.reduce_sum(lax.mul(a, b), (axis_index(axis, aval_of(a).ndim),))
