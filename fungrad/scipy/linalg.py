"""`fungrad.scipy.linalg`: SciPy's linear-algebra names (JAX's `jax.scipy.linalg`) over
fungrad's differentiable primitives."""
from __future__ import annotations

import numpy as np

from .. import lax
from .. import numpy as fnp
from ..errors import FungradValueError
from ..tracing import aval_of

__all__ = ["solve_triangular", "cholesky", "cho_factor", "cho_solve", "solve", "inv", "det",
           "eigh", "block_diag", "expm"]


def _float(x):
    x = fnp.asarray(x)
    return x if aval_of(x).dtype.kind in "fc" else fnp.asarray(x, np.float64)


def solve_triangular(a, b, trans=0, lower: bool = False, unit_diagonal: bool = False,
                     overwrite_b: bool = False, debug=None, check_finite: bool = True):
    """Solve op(a) x = b for triangular a; trans 0/'N', 1/'T', 2/'C' (the conjugate
    transpose; 'T' for reals)."""
    a, b = _float(a), _float(b)
    transpose = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}.get(trans)
    if transpose is None:
        raise FungradValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', "
                                f"got {trans!r}")
    vector = aval_of(b).ndim == aval_of(a).ndim - 1
    bb = fnp.expand_dims(b, -1) if vector else b
    x = lax.triangular_solve(a, bb, left_side=True, lower=lower, transpose_a=transpose,
                             conjugate_a=trans in (2, "C"), unit_diagonal=unit_diagonal)
    return x[..., 0] if vector else x


def cholesky(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """The Cholesky factor (upper by default, as SciPy: a = U^H U)."""
    c = fnp.linalg.cholesky(_float(a))
    return c if lower else fnp.conj(fnp.swapaxes(c, -1, -2))


def cho_factor(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """(factor, lower) for cho_solve."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b: bool = False, check_finite: bool = True):
    """Solve a x = b given cho_factor(a) (a = L L^H or U^H U)."""
    c, lower = c_and_lower
    if lower:
        y = solve_triangular(c, b, lower=True)
        return solve_triangular(c, y, trans="C", lower=True)
    y = solve_triangular(c, b, trans="C", lower=False)
    return solve_triangular(c, y, lower=False)


def solve(a, b, lower: bool = False, overwrite_a: bool = False, overwrite_b: bool = False,
          check_finite: bool = True, assume_a: str = "gen"):
    if assume_a == "pos":
        return cho_solve(cho_factor(a, lower=True), b)
    return fnp.linalg.solve(a, b)


def inv(a, overwrite_a: bool = False, check_finite: bool = True):
    return fnp.linalg.inv(a)


def det(a, overwrite_a: bool = False, check_finite: bool = True):
    return fnp.linalg.det(a)


def eigh(a, b=None, lower: bool = True, eigvals_only: bool = False, **kwargs):
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
    if b is not None:
        raise FungradValueError("eigh: the generalized problem (b=) is not supported")
    w, v = fnp.linalg.eigh(a, UPLO="L" if lower else "U")
    return w if eigvals_only else (w, v)


def block_diag(*arrs):
    """A block-diagonal matrix from 2-d (or smaller) blocks."""
    if not arrs:
        return fnp.zeros((1, 0))
    blocks = [fnp.atleast_2d(_float(a)) for a in arrs]
    dtype = np.result_type(*[aval_of(b).dtype for b in blocks])
    total_cols = sum(aval_of(b).shape[1] for b in blocks)
    rows, col = [], 0
    for blk in blocks:
        r, c = aval_of(blk).shape
        rows.append(lax.pad(fnp.asarray(blk, dtype), dtype.type(0),
                            [(0, 0, 0), (col, total_cols - col - c, 0)]))
        col += c
    return fnp.concatenate(rows, axis=0)


# Pade approximant coefficients of degree 13 (Higham 2005, "The scaling and squaring method
# for the matrix exponential revisited")
_B13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
        129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920.,
        40840800., 960960., 16380., 182., 1.)
_THETA13 = 5.371920351148152


def expm(A, *, upper_triangular: bool = False, max_squarings: int = 16):
    """The matrix exponential: scaling and squaring with the degree-13 Pade approximant
    (Higham 2005).  Traceable (jit, vmap) and differentiable: the number of squarings s is
    computed from the 1-norm of A and the `max_squarings` possible squarings are selected
    by s, so one program serves every A."""
    A = _float(A)
    dtype = aval_of(A).dtype
    norm = fnp.max(fnp.sum(fnp.abs(lax.stop_gradient(A)), axis=-2), axis=-1)
    s = fnp.clip(fnp.ceil(fnp.log2(fnp.maximum(norm, dtype.type(1e-300)) / _THETA13)), 0,
                 max_squarings)
    A = fnp.divide(A, fnp.expand_dims(fnp.exp2(s), (-1, -2)))
    n = aval_of(A).shape[-1]
    eye = fnp.broadcast_to(fnp.eye(n, dtype=dtype), aval_of(A).shape)
    A2 = fnp.matmul(A, A)
    A4 = fnp.matmul(A2, A2)
    A6 = fnp.matmul(A4, A2)
    b = _B13
    u_inner = fnp.add(fnp.add(fnp.multiply(b[13], A6), fnp.multiply(b[11], A4)),
                      fnp.multiply(b[9], A2))
    u = fnp.matmul(A, fnp.add(fnp.add(fnp.add(fnp.add(fnp.matmul(A6, u_inner),
                                                      fnp.multiply(b[7], A6)),
                                              fnp.multiply(b[5], A4)), fnp.multiply(b[3], A2)),
                              fnp.multiply(b[1], eye)))
    v_inner = fnp.add(fnp.add(fnp.multiply(b[12], A6), fnp.multiply(b[10], A4)),
                      fnp.multiply(b[8], A2))
    v = fnp.add(fnp.add(fnp.add(fnp.add(fnp.matmul(A6, v_inner), fnp.multiply(b[6], A6)),
                                fnp.multiply(b[4], A4)), fnp.multiply(b[2], A2)),
                fnp.multiply(b[0], eye))
    r = fnp.linalg.solve(fnp.subtract(v, u), fnp.add(v, u))
    for i in range(max_squarings):
        r = fnp.where(fnp.expand_dims(fnp.less(i, s), (-1, -2)), fnp.matmul(r, r), r)
    return r
