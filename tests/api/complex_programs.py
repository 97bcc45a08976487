"""Fixed complex programs shared by the JAX reference generator
(tests/api/make_complex_reference.py, run with JAX) and tests/api/test_complex.py.

Each program is `f(m, z)` where `m` is a NumPy-like module (jax.numpy or
fungrad.numpy) and z a complex128 vector of length 6 with positive real parts
(away from the branch cuts of log and sqrt).  REAL programs return a real scalar,
HOLOMORPHIC ones a complex vector that is a holomorphic function of z; MIXED
programs take a real float64 vector and return a real scalar through complex
intermediates.  LINALG programs are complex linear algebra with real or complex
outputs that are neither holomorphic nor scalar (compared by value, jvp and vjp); the
outputs of the decompositions whose phase is a gauge (eigh, svd) enter only through
gauge-invariant functions (projectors, |v|, singular values), as in JAX's own tests.
"""

def _matrix(m, z):
    """A well-conditioned complex 2x2 matrix from z[:4]."""
    return z[:4].reshape(2, 2) + 2 * m.eye(2)


def _hermitian(m, z):
    """A Hermitian positive-definite 2x2 matrix from z[:4]."""
    x = z[:4].reshape(2, 2)
    return x @ m.conj(x).T + 2 * m.eye(2)


def _lowest_projector(v):
    return v[:, :1] @ v[:, :1].conj().T


REAL = {
    "abs2_sin": lambda m, z: m.sum(m.abs(m.sin(z)) ** 2),
    "real_imag": lambda m, z: m.sum(m.real(z * m.conj(z) * z) + m.imag(m.exp(z))),
    "angle_abs": lambda m, z: m.sum(m.angle(z) * m.abs(z)),
    "strided": lambda m, z: m.sum(m.abs(z[::2] * m.conj(z[1::2]))),
    "vdot": lambda m, z: m.real(m.vdot(z, m.cosh(z))),
    "where": lambda m, z: m.sum(m.real(m.where(m.real(z) > 0.8, z * z, m.conj(z)))),
    "matmul": lambda m, z: m.abs(m.sum(z.reshape(2, 3) @ m.conj(z.reshape(3, 2)))),
    "log_sqrt": lambda m, z: m.sum(m.imag(m.log(z) * m.sqrt(z)) + m.real(m.tanh(z)) ** 2),
    "mean_prod": lambda m, z: m.abs(m.prod(z)) + m.real(m.mean(z ** 3)),
    "parts": lambda m, z: m.sum(z.real * z.imag + m.abs(z.conj() - 1j)),
    "linalg": lambda m, z: (m.sum(m.abs(m.linalg.solve(_matrix(m, z), z[4:])) ** 2)
                            + m.abs(m.linalg.det(_matrix(m, z)))
                            + m.real(m.sum(m.linalg.inv(_matrix(m, z))))
                            + m.linalg.norm(z) + m.linalg.norm(_matrix(m, z), 1)
                            + m.linalg.norm(z, 3)),
    "eigvals": lambda m, z: (m.sum(m.abs(m.linalg.eigvals(_matrix(m, z))) ** 2)
                             + m.real(m.prod(m.linalg.eigvals(_matrix(m, z) * z[4])))),
}

HOLOMORPHIC = {
    "sin_exp": lambda m, z: m.sin(z) * m.exp(z) / (1 + z * z),
    "log_sqrt": lambda m, z: m.log(z) * m.sqrt(z) + m.tanh(z) ** 3,
    "poly": lambda m, z: z ** 3 - 2j * z + m.cumsum(z),
    "matvec": lambda m, z: z.reshape(2, 3).T @ z.reshape(2, 3) @ z[:3],
    "inverse_trig": lambda m, z: m.arctan(z / 3) + m.arcsinh(z) + m.arccosh(z + 2),
    "reversed": lambda m, z: m.flip(z) * m.cos(z) - m.concatenate([z[3:], z[:3]]),
    "linalg": lambda m, z: m.concatenate([m.linalg.solve(_matrix(m, z), z[4:]) *
                                          m.linalg.det(_matrix(m, z)),
                                          m.linalg.inv(_matrix(m, z)).ravel()]),
}

MIXED = {
    "phase": lambda m, x: m.sum(m.abs(m.exp(1j * x) + x) ** 2),
    "rotate": lambda m, x: m.real(m.sum((x + 2j) ** 2 * m.exp(-1j * x[::-1]))),
}

LINALG = {
    "cholesky": lambda m, z: m.linalg.cholesky(_hermitian(m, z)),
    "cholesky_symmetrized_upper": lambda m, z: m.linalg.cholesky(_matrix(m, z), upper=True),
    "slogdet_sign": lambda m, z: m.linalg.slogdet(_matrix(m, z))[0],
    "slogdet_log": lambda m, z: m.linalg.slogdet(_matrix(m, z) * z[5])[1],
    "eigvalsh": lambda m, z: m.linalg.eigvalsh(_matrix(m, z)),
    "eigh_projector": lambda m, z: _lowest_projector(m.linalg.eigh(_hermitian(m, z) * z[4].real)[1]),
    "eigh_abs": lambda m, z: m.abs(m.linalg.eigh(_matrix(m, z))[1]) ** 2,
    "qr_tall": lambda m, z: m.concatenate([x.ravel() for x in m.linalg.qr(z.reshape(3, 2))]),
    "qr_square": lambda m, z: m.concatenate([x.ravel() for x in m.linalg.qr(_matrix(m, z))]),
    "svdvals_tall": lambda m, z: m.linalg.svd(z.reshape(3, 2), compute_uv=False),
    "svd_u_projector": lambda m, z: (lambda r: r[0] @ m.conj(r[0]).T)(
        m.linalg.svd(z.reshape(3, 2), full_matrices=False)),
    "svd_v_projector_wide": lambda m, z: (lambda r: m.conj(r[2]).T @ r[2])(
        m.linalg.svd(z.reshape(2, 3), full_matrices=False)),
    "svd_rank1": lambda m, z: (lambda r: (r[0][:, :1] * r[1][0]) @ r[2][:1])(
        m.linalg.svd(z.reshape(2, 3), full_matrices=False)),
    "svd_phases": lambda m, z: (lambda r: r[0] * r[2].T)(m.linalg.svd(_matrix(m, z))),
    "norm_2": lambda m, z: m.linalg.norm(z.reshape(2, 3), 2),
    "norm_minus_2": lambda m, z: m.linalg.norm(z.reshape(3, 2), -2),
    "norm_nuc": lambda m, z: m.linalg.norm(z.reshape(3, 2), "nuc"),
    "pinv": lambda m, z: m.linalg.pinv(z.reshape(3, 2)),
    "cond": lambda m, z: m.linalg.cond(_matrix(m, z)),
    "lstsq": lambda m, z: m.linalg.lstsq(z.reshape(3, 2), m.arange(3.0) + 1j)[0],
    # raw gauge-dependent outputs: LAPACK gives JAX and NumPy the same phases, and the
    # derivative rules fix the phase of the tangent the same way (not checkable by
    # finite differences, which follow LAPACK's phase along the path)
    "raw_svd_tall": lambda m, z: m.concatenate([x.ravel() for x in m.linalg.svd(
        z.reshape(3, 2), full_matrices=False)]),
    "raw_svd_wide": lambda m, z: m.concatenate([x.ravel() for x in m.linalg.svd(
        z.reshape(2, 3), full_matrices=False)]),
    "raw_eigh": lambda m, z: m.linalg.eigh(_matrix(m, z))[1],
}
