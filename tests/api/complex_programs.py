"""Fixed complex programs shared by the JAX reference generator
(tests/api/make_complex_reference.py, run with JAX) and tests/api/test_complex.py.

Each program is `f(m, z)` where `m` is a NumPy-like module (jax.numpy or
fungrad.numpy) and z a complex128 vector of length 6 with positive real parts
(away from the branch cuts of log and sqrt).  REAL programs return a real scalar,
HOLOMORPHIC ones a complex vector that is a holomorphic function of z; MIXED
programs take a real float64 vector and return a real scalar through complex
intermediates.
"""

def _matrix(m, z):
    """A well-conditioned complex 2x2 matrix from z[:4]."""
    return z[:4].reshape(2, 2) + 2 * m.eye(2)


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
