"""Complex numbers: JAX's derivative conventions, checked against JAX's own numbers
(complex_reference.json, made by make_complex_reference.py) and against finite
differences in both real directions of each complex input."""
import json
import os

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
import fungrad.numpy as fnp
from complex_programs import HOLOMORPHIC, LINALG, MIXED, REAL  # tests/api/complex_programs.py

with open(os.path.join(os.path.dirname(__file__), "complex_reference.json")) as _fh:
    REF = json.load(_fh)


def dec(d):
    re = np.asarray(d["re"], dtype=np.float64)
    return re + 1j * np.asarray(d["im"]) if "im" in d else re


def close(a, b, rtol=1e-9, atol=1e-11):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# --- against JAX --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REAL))
def test_real_valued_programs_match_jax(name):
    ref, f = REF["real"][name], REAL[name]
    z, t = dec(ref["z"]), dec(ref["t"])
    fz = lambda z: f(fnp, z)  # noqa: E731
    close(fz(z), dec(ref["value"]))
    close(fg.grad(fz)(z), dec(ref["grad"]))
    close(fg.jit(fg.grad(fz))(z), dec(ref["grad"]))
    _, tangent = fg.jvp(fz, (z,), (t,))
    close(tangent, dec(ref["jvp"]))


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC))
def test_holomorphic_programs_match_jax(name):
    ref, f = REF["holomorphic"][name], HOLOMORPHIC[name]
    z, t, ct = dec(ref["z"]), dec(ref["t"]), dec(ref["ct"])
    fz = lambda z: f(fnp, z)  # noqa: E731
    close(fz(z), dec(ref["value"]))
    close(fg.jacfwd(fz, holomorphic=True)(z), dec(ref["jacfwd"]))
    close(fg.jacrev(fz, holomorphic=True)(z), dec(ref["jacrev"]))
    close(fg.grad(lambda z: fnp.sum(fz(z)), holomorphic=True)(z), dec(ref["grad_sum"]))
    _, tangent = fg.jvp(fz, (z,), (t,))
    close(tangent, dec(ref["jvp"]))
    _, pullback = fg.vjp(fz, z)
    close(pullback(ct)[0], dec(ref["vjp"]))
    close(fg.jit(lambda z, ct: fg.vjp(fz, z)[1](ct)[0])(z, ct), dec(ref["vjp"]))


@pytest.mark.parametrize("name", sorted(MIXED))
def test_real_inputs_through_complex_intermediates_match_jax(name):
    ref, f = REF["mixed"][name], MIXED[name]
    x = dec(ref["x"])
    fx = lambda x: f(fnp, x)  # noqa: E731
    close(fx(x), dec(ref["value"]))
    close(fg.grad(fx)(x), dec(ref["grad"]))
    close(fg.hessian(fx)(x), dec(ref["hessian"]), rtol=1e-8)


# --- exact values of the conventions ----------------------------------------------

def test_grad_of_real_function_of_complex_is_the_conjugate_gradient():
    assert fg.grad(lambda z: fnp.abs(z) ** 2)(1 + 2j) == 2 - 4j
    assert fg.grad(lambda z: fnp.real(z * z))(1 + 2j) == 2 + 4j
    np.testing.assert_allclose(fg.grad(lambda z: fnp.angle(z))(1 + 2j), -0.4 - 0.2j)
    assert fg.grad(lambda z: fnp.abs(z))(0j) == 0     # a zero wins at the kink, as JAX


def test_vjp_is_the_transpose_not_the_conjugate_transpose():
    assert fg.vjp(lambda z: 3j * z, 1.0 + 0j)[1](1.0 + 0j)[0] == 3j
    assert fg.vjp(fnp.conj, 1 + 2j)[1](1j)[0] == -1j
    assert fg.vjp(fnp.imag, 1 + 2j)[1](1.0)[0] == -1j
    assert fg.vjp(fnp.real, 1 + 2j)[1](1.0)[0] == 1
    assert fg.vjp(lambda x: x * (1 + 1j), 2.0)[1](1 + 1j)[0] == 0.0   # Re((1+i)(1+i))


def test_holomorphic_grad_and_hessian():
    assert fg.grad(lambda z: z * z, holomorphic=True)(1 + 2j) == 2 + 4j
    assert fg.value_and_grad(lambda z: z * z, holomorphic=True)(1 + 2j) == (-3 + 4j, 2 + 4j)
    np.testing.assert_allclose(fg.hessian(lambda z: z ** 3, holomorphic=True)(1 + 2j), 6 + 12j)
    z = np.array([1 + 2j, 2j])
    expected = np.diag(2 * z)
    np.testing.assert_allclose(fg.jacfwd(lambda z: z * z, holomorphic=True)(z), expected)
    np.testing.assert_allclose(fg.jacrev(lambda z: z * z, holomorphic=True)(z), expected)


@pytest.mark.parametrize("call, message", [
    (lambda: fg.grad(lambda z: z * z)(1 + 2j), "requires real-valued outputs"),
    (lambda: fg.grad(lambda z: z * z, holomorphic=True)(1.0), "requires inputs with complex"),
    (lambda: fg.grad(lambda z: fnp.abs(z), holomorphic=True)(1j), "requires outputs with complex"),
    (lambda: fg.jacfwd(lambda z: z * z)(np.array([1j])), "requires real-valued inputs"),
    (lambda: fg.jacrev(lambda z: z * z)(np.array([1j])), "requires real-valued outputs"),
    (lambda: fg.value_and_grad(lambda z: z)(1j), "pass holomorphic=True"),
])
def test_complex_errors_follow_jax_and_name_the_function(call, message):
    with pytest.raises(TypeError, match=message) as info:
        call()
    assert "test_complex.py" in str(info.value)


def test_complex_parts_and_names():
    z = np.array([1 + 2j, -3 - 1j, 2.0 + 0j])
    for fn in (fnp.real, fnp.imag, fnp.conj, fnp.angle, fnp.iscomplex, fnp.isreal, fnp.abs,
               fnp.sign):
        expected = getattr(np, fn.__name__ if fn.__name__ != "conjugate" else "conj")(z)
        np.testing.assert_allclose(fn(z), expected)
        np.testing.assert_allclose(fg.jit(fn)(z), expected)
    np.testing.assert_allclose(fnp.angle(z, deg=True), np.angle(z, deg=True))
    np.testing.assert_allclose(fnp.angle(np.array([-1.0, 2.0])), np.angle([-1.0, 2.0]))
    assert fnp.iscomplexobj(z) and not fnp.iscomplexobj(z.real) and fnp.isrealobj(1.0)
    assert fnp.real_if_close(np.array([1 + 1e-16j])).dtype == np.float64
    assert fnp.real_if_close(np.array([1 + 1e-3j])).dtype == np.complex128
    assert fnp.vdot(z, z) == np.vdot(z, z)
    assert str(fg.make_jaxpr(lambda z: z.real)(z)).count("f64[3] = real a") == 1
    assert "c64[3]" in str(fg.make_jaxpr(lambda z: z * 2)(z.astype(np.complex64)))


def test_promotion_follows_numpy():
    x32 = np.ones(2, np.float32)
    assert fg.jit(lambda x: x * 1j)(x32).dtype == np.complex64
    assert fg.jit(lambda x: x + np.complex64(1j))(np.ones(2)).dtype == np.complex128
    assert fg.jit(lambda x: fnp.exp(x))(x32.astype(np.complex64)).dtype == np.complex64
    assert fg.grad(lambda z: fnp.abs(z * 2.0).sum())(np.ones(2, np.complex64)).dtype == \
        np.complex64


def test_real_only_primitives_refuse_complex():
    with pytest.raises(TypeError, match="real operands only"):
        fg.jit(lambda z: fnp.floor(z))(np.array([1j]))
    with pytest.raises(TypeError, match="real operands only"):
        fg.jit(lambda z: fnp.arctan2(z, z))(np.array([1j]))


# --- finite differences in both real directions --------------------------------------

H = 1e-6


def numerical_directional(f, z, t):
    return (np.asarray(f(z + H * t)) - np.asarray(f(z - H * t))) / (2 * H)


def check_jvp_vjp(f, z, t, ct, rtol=1e-5, atol=1e-6):
    """jvp against central differences along t, and vjp against jvp with the pairing
    Re(sum(u * v)) (the transpose, as JAX)."""
    y, tangent = fg.jvp(f, (z,), (t,))
    np.testing.assert_allclose(tangent, numerical_directional(f, z, t), rtol=rtol, atol=atol)
    _, pullback = fg.vjp(f, z)
    (z_bar,) = pullback(ct)
    lhs = np.real(np.sum(np.asarray(ct) * np.asarray(tangent)))
    rhs = np.real(np.sum(np.asarray(z_bar) * t))
    np.testing.assert_allclose(lhs, rhs, rtol=rtol, atol=atol)


UNARY = {
    "exp": fnp.exp, "log": fnp.log, "sqrt": fnp.sqrt, "sin": fnp.sin, "cos": fnp.cos,
    "tan": fnp.tan, "sinh": fnp.sinh, "cosh": fnp.cosh, "tanh": fnp.tanh,
    "arcsin": fnp.arcsin, "arccos": fnp.arccos, "arctan": fnp.arctan, "arcsinh": fnp.arcsinh,
    "arccosh": fnp.arccosh, "arctanh": fnp.arctanh, "expm1": fnp.expm1, "log1p": fnp.log1p,
    "exp2": fnp.exp2, "log2": fnp.log2, "log10": fnp.log10, "square": fnp.square,
    "reciprocal": fnp.reciprocal, "abs": fnp.abs, "real": fnp.real, "imag": fnp.imag,
    "conj": fnp.conj, "angle": fnp.angle, "cube": lambda z: z ** 3,
    "pow": lambda z: z ** (0.5 + 0.25j), "rpow": lambda z: (1.5 - 0.5j) ** z,
    "div": lambda z: (z + 1j) / (z * z + 2), "sum_abs": lambda z: fnp.sum(fnp.abs(z)),
    "logistic": lambda z: 1 / (1 + fnp.exp(-z)), "cumprod": fnp.cumprod,
}

# (real part, imaginary part) ranges away from branch cuts and poles
DOMAINS = {"arcsin": ((-0.8, 0.8), (-1.5, 1.5)), "arccos": ((-0.8, 0.8), (-1.5, 1.5)),
           "arctanh": ((-0.8, 0.8), (-1.5, 1.5)), "arccosh": ((1.2, 2.5), (-1.5, 1.5)),
           "tan": ((-1.2, 1.2), (-1.5, 1.5))}


def complex_in(re=(0.2, 1.5), im=(-1.5, 1.5)):
    return st.builds(complex, st.floats(*re), st.floats(*im))


complex_values = complex_in()
directions = st.builds(complex, st.floats(-1, 1), st.floats(-1, 1))


@settings(max_examples=15)
@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_complex_derivatives_agree_with_finite_differences(name, data):
    f = UNARY[name]
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), label="shape")
    elements = complex_in(*DOMAINS[name]) if name in DOMAINS else complex_values
    z = data.draw(hnp.arrays(np.complex128, shape, elements=elements), label="z")
    t_re = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1)), label="t_re")
    y_shape = np.shape(f(z))
    ct = data.draw(hnp.arrays(np.complex128, y_shape, elements=directions), label="ct")
    if not np.iscomplexobj(f(z)):
        ct = ct.real
    # both real directions of the input: along the real axis and along the imaginary one
    check_jvp_vjp(f, z, t_re.astype(np.complex128), ct)
    check_jvp_vjp(f, z, 1j * t_re, ct)


@settings(max_examples=20)
@given(data=st.data())
def test_conjugate_gradient_is_df_dx_minus_i_df_dy(data):
    z = data.draw(hnp.arrays(np.complex128, 4, elements=complex_values), label="z")

    def f(z):
        return fnp.sum(fnp.abs(fnp.sin(z) + z * z) + fnp.angle(z) * fnp.real(fnp.exp(z)))
    g = fg.grad(f)(z)
    for k in range(4):
        e = np.zeros(4, np.complex128)
        e[k] = 1
        df_dx = numerical_directional(f, z, e)
        df_dy = numerical_directional(f, z, 1j * e)
        np.testing.assert_allclose(g[k], df_dx - 1j * df_dy, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fg.jit(fg.grad(f))(z), g, rtol=1e-12)
    np.testing.assert_allclose(fg.vmap(fg.grad(f))(np.stack([z, z])), [g, g], rtol=1e-12)


@settings(max_examples=10)
@given(data=st.data())
def test_holomorphic_jacobians_agree_and_match_finite_differences(data):
    z = data.draw(hnp.arrays(np.complex128, 3, elements=complex_values), label="z")

    def f(z):
        return fnp.exp(z) * fnp.roll(z, 1) + fnp.sqrt(z) / (z + 2)
    jf = fg.jacfwd(f, holomorphic=True)(z)
    jr = fg.jacrev(f, holomorphic=True)(z)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)
    for k in range(3):
        e = np.zeros(3, np.complex128)
        e[k] = 1
        # holomorphic: the derivative along 1 and along i agree (Cauchy-Riemann)
        np.testing.assert_allclose(jf[:, k], numerical_directional(f, z, e), rtol=1e-5)
        np.testing.assert_allclose(1j * jf[:, k], numerical_directional(f, z, 1j * e), rtol=1e-5)


# --- complex linear algebra ------------------------------------------------------------

def _complex_matrix(seed, n=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)) + 3 * np.eye(n)


@pytest.mark.parametrize("name, f", [
    ("solve", lambda a: fnp.linalg.solve(a, fnp.arange(3.0) + 1j)),
    ("inv", fnp.linalg.inv),
    ("det", fnp.linalg.det),
    ("matrix_power", lambda a: fnp.linalg.matrix_power(a, -2)),
    ("norm", lambda a: fnp.linalg.norm(a)),
    ("norm_axis", lambda a: fnp.linalg.norm(a, ord=1.5, axis=0)),
    ("norm_inf", lambda a: fnp.linalg.norm(a, ord=np.inf)),
])
def test_complex_linalg_matches_numpy_and_finite_differences(name, f):
    from fungrad.testing import check_grads
    a = _complex_matrix(3)
    expected = {"solve": lambda a: np.linalg.solve(a, np.arange(3.0) + 1j),
                "inv": np.linalg.inv, "det": np.linalg.det,
                "matrix_power": lambda a: np.linalg.matrix_power(a, -2),
                "norm": np.linalg.norm,
                "norm_axis": lambda a: np.linalg.norm(a, ord=1.5, axis=0),
                "norm_inf": lambda a: np.linalg.norm(a, ord=np.inf)}[name](a)
    np.testing.assert_allclose(f(a), expected, rtol=1e-10)
    check_grads(f, (a,), order=2)       # random complex directions, both real parts


@pytest.mark.parametrize("name", sorted(LINALG))
def test_complex_linalg_matches_jax_and_finite_differences(name):
    ref, f = REF["linalg"][name], LINALG[name]
    z, t, ct = dec(ref["z"]), dec(ref["t"]), dec(ref["ct"])
    fz = lambda z: f(fnp, z)  # noqa: E731
    close(fz(z), dec(ref["value"]), rtol=1e-8, atol=1e-10)
    _, tangent = fg.jvp(fz, (z,), (t,))
    close(tangent, dec(ref["jvp"]), rtol=1e-8, atol=1e-10)
    _, pullback = fg.vjp(fz, z)
    close(pullback(ct)[0], dec(ref["vjp"]), rtol=1e-8, atol=1e-10)
    close(fg.jit(lambda z, ct: fg.vjp(fz, z)[1](ct)[0])(z, ct), dec(ref["vjp"]), rtol=1e-8,
          atol=1e-10)
    if np.ndim(ct) == 0 and not np.iscomplexobj(ct):   # a real loss: grad is vjp of 1
        close(fg.grad(fz)(z), dec(ref["vjp"]) / ct, rtol=1e-8, atol=1e-10)
    if name.startswith("raw_"):   # gauge-dependent: the transpose identity only
        lhs = np.real(np.sum(ct * np.asarray(tangent)))
        np.testing.assert_allclose(lhs, np.real(np.sum(pullback(ct)[0] * t)), rtol=1e-9)
        return
    # and against finite differences along both real directions of each input
    check_jvp_vjp(fz, z, t.real.astype(np.complex128), ct)
    check_jvp_vjp(fz, z, 1j * t.imag, ct)


def _hermitian_pd(seed, n=3, dtype=np.complex128):
    a = _complex_matrix(seed, n)
    return (a @ a.conj().T + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("name", ["cholesky", "slogdet", "eigh", "qr", "svd"])
def test_complex_decompositions_match_numpy(name):
    h, a = _hermitian_pd(1), _complex_matrix(2)[:, :2] + 1j
    if name == "cholesky":
        close(fnp.linalg.cholesky(h), np.linalg.cholesky(h))
        close(fnp.linalg.cholesky(h, upper=True), np.linalg.cholesky(h, upper=True))
        close(fg.jit(fnp.linalg.cholesky)(h), np.linalg.cholesky(h))
    elif name == "slogdet":
        sign, logabsdet = fnp.linalg.slogdet(h - 2j * np.eye(3))
        expected = np.linalg.slogdet(h - 2j * np.eye(3))
        assert sign.dtype == np.complex128 and logabsdet.dtype == np.float64
        close(sign, expected.sign)
        close(logabsdet, expected.logabsdet)
    elif name == "eigh":
        w, v = fnp.linalg.eigh(h)
        assert w.dtype == np.float64 and v.dtype == np.complex128
        close(w, np.linalg.eigvalsh(h))
        close(np.abs(v), np.abs(np.linalg.eigh(h)[1]))
        # without symmetrizing, UPLO picks the triangle read, as NumPy
        skew = np.tril(h) + 5 * np.triu(h, 1)
        for uplo in "LU":
            close(fnp.linalg.eigvalsh(skew, UPLO=uplo, symmetrize_input=False),
                  np.linalg.eigvalsh(skew, UPLO=uplo))
    elif name == "qr":
        for x in (a, a.T, h):
            q, r = fnp.linalg.qr(x)
            close(q, np.linalg.qr(x)[0])
            close(r, np.linalg.qr(x)[1])
    else:
        for x in (a, a.T, h):
            u, s, vh = fnp.linalg.svd(x, full_matrices=False)
            assert s.dtype == np.float64
            close(s, np.linalg.svd(x, compute_uv=False))
            close((u * s) @ vh, x)
            close(fnp.linalg.matrix_rank(x), np.linalg.matrix_rank(x))
            close(fnp.linalg.pinv(x), np.linalg.pinv(x))
            for ord in (2, -2, "nuc"):
                close(fnp.linalg.norm(x, ord), np.linalg.norm(x, ord))
        close(fnp.linalg.cond(h), np.linalg.cond(h))
        close(fnp.linalg.lstsq(a, np.ones(3) * 1j).x, np.linalg.lstsq(a, np.ones(3) * 1j)[0])
        close(fnp.linalg.lstsq(a, np.ones(3) * 1j).residuals,
              np.linalg.lstsq(a, np.ones(3) * 1j)[1])


def test_complex64_linalg_keeps_its_precision():
    h = _hermitian_pd(3, dtype=np.complex64)
    assert fnp.linalg.cholesky(h).dtype == np.complex64
    w, v = fnp.linalg.eigh(h)
    assert w.dtype == np.float32 and v.dtype == np.complex64
    assert fnp.linalg.svd(h)[1].dtype == np.float32
    assert [x.dtype for x in fnp.linalg.slogdet(h)] == [np.complex64, np.float32]
    assert fg.grad(lambda h: fnp.linalg.norm(h, 2))(h).dtype == np.complex64


@pytest.mark.parametrize("name, f", [
    ("cholesky", lambda a: fnp.linalg.cholesky(a)),
    ("slogdet", lambda a: fnp.linalg.slogdet(a)[1] + fnp.real(fnp.linalg.slogdet(a)[0])),
    ("eigh", lambda a: fnp.linalg.eigvalsh(a) + fnp.abs(fnp.linalg.eigh(a)[1][0]) ** 2),
    ("qr", lambda a: fnp.linalg.qr(a[:, :2])[0] * fnp.linalg.qr(a[:, :2])[1][0]),
    ("svd", lambda a: fnp.linalg.svd(a)[1] + fnp.abs(fnp.linalg.svd(a)[0][0]) ** 2),
])
def test_complex_decompositions_second_derivatives(name, f):
    from fungrad.testing import check_grads
    check_grads(f, (_hermitian_pd(4) + 0.5j * np.triu(np.ones((3, 3))),), order=2)


@pytest.mark.parametrize("is_complex", [False, True])
def test_eig_values_vectors_and_derivatives_where_eigenvalues_are_distinct(is_complex):
    from fungrad.testing import check_grads
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3)) + (1j * rng.normal(size=(3, 3)) if is_complex else 0)
    w, v = fnp.linalg.eig(a)
    expected_w, expected_v = np.linalg.eig(a)
    assert w.dtype == np.complex128 and v.dtype == np.complex128
    np.testing.assert_allclose(w, expected_w, rtol=1e-10)
    np.testing.assert_allclose(v, expected_v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fnp.linalg.eigvals(a), expected_w, rtol=1e-10)
    check_grads(fnp.linalg.eigvals, (a,), order=2)
    # the eigenvectors' phase is arbitrary: check phase-invariant functions of them
    check_grads(lambda a: fnp.abs(fnp.linalg.eig(a)[1]) ** 2, (a,), order=1)
    check_grads(lambda a: fnp.linalg.eig(a)[1] * fnp.conj(fnp.linalg.eig(a)[1][0]), (a,),
                order=1)


def test_complex_scipy_linalg_follows_scipy():
    import scipy.linalg as sl

    import fungrad.scipy.linalg as fsl
    from fungrad.testing import check_grads
    h, a = _hermitian_pd(5), _complex_matrix(6)
    b = np.array([1.0, 2j, -1 + 1j])
    t = np.tril(a)
    for lower in (True, False):
        close(fsl.cholesky(h, lower=lower), sl.cholesky(h, lower=lower))
        close(fsl.cho_solve(fsl.cho_factor(h, lower=lower), b),
              sl.cho_solve(sl.cho_factor(h, lower=lower), b))
    for trans in (0, 1, 2, "N", "T", "C"):
        close(fsl.solve_triangular(t, b, trans=trans, lower=True),
              sl.solve_triangular(t, b, trans=trans, lower=True))
    close(fsl.solve(h, b, assume_a="pos"), np.linalg.solve(h, b))
    check_grads(lambda h: fsl.solve(h, b, assume_a="pos"), (h,), order=1)
    check_grads(lambda t: fsl.solve_triangular(t, b, trans="C", lower=True), (t,), order=1)


# gauge-invariant functions of each decomposition of a complex (..., m, n) stack
def _projector(x):
    return x @ fnp.conj(fnp.swapaxes(x, -1, -2))


def _flat(x):
    return fnp.reshape(x, x.shape[:-2] + (-1,))


DECOMPOSITIONS = {
    "cholesky": (True, lambda a: fnp.linalg.cholesky(a)),
    "slogdet": (True, lambda a: fnp.linalg.slogdet(a)[0] * fnp.linalg.slogdet(a)[1]),
    "eigh": (True, lambda a: _projector(fnp.linalg.eigh(a)[1][..., :1])
             * fnp.linalg.eigvalsh(a)[..., :1, None]),
    "qr": (False, lambda a: fnp.linalg.qr(a)[0] * fnp.linalg.qr(a)[1][..., :1, :]),
    "svd": (False, lambda a: (lambda r: fnp.concatenate([
        _flat(_projector(r[0][..., :1]) * r[1][..., :1, None]),
        _flat(_projector(fnp.conj(fnp.swapaxes(r[2], -1, -2))[..., 1:2]))], axis=-1))(
        fnp.linalg.svd(a, full_matrices=False))),
    "norm_2": (False, lambda a: fnp.linalg.norm(a, 2, axis=(-2, -1))),
    "pinv": (False, fnp.linalg.pinv),
}


@settings(max_examples=6, deadline=None)
@pytest.mark.parametrize("name", sorted(DECOMPOSITIONS))
@given(data=st.data())
def test_complex_decompositions_of_stacks_agree_with_finite_differences(name, data):
    square, f = DECOMPOSITIONS[name]
    batch = data.draw(st.sampled_from([(), (2,)]), label="batch")
    n = data.draw(st.integers(2, 3), label="n")
    m = n if square else data.draw(st.integers(n, 4), label="m")
    if name == "pinv" and data.draw(st.booleans(), label="wide"):
        m, n = n, m
    seed = data.draw(st.integers(0, 2 ** 16), label="seed")
    rng = np.random.default_rng(seed)
    a = rng.normal(size=batch + (m, n)) + 1j * rng.normal(size=batch + (m, n))
    if square and name != "slogdet":     # Hermitian positive definite
        a = a @ np.conj(np.swapaxes(a, -1, -2)) + n * np.eye(n)
    t = rng.normal(size=a.shape) + 1j * rng.normal(size=a.shape)
    y = np.asarray(f(a))
    ct = rng.normal(size=y.shape) + (1j * rng.normal(size=y.shape) if np.iscomplexobj(y) else 0)
    # the interpreter only: each drawn shape is a new program, and compiling the glue
    # around the LAPACK calls would dominate (the compiled tier is checked above)
    with fg.config.override("disable_jit", True):
        _check_stack(f, a, t, ct, batch)


def _check_stack(f, a, t, ct, batch):
    check_jvp_vjp(f, a, t.real + 0j, ct, rtol=1e-4, atol=1e-6)
    check_jvp_vjp(f, a, 1j * t.imag, ct, rtol=1e-4, atol=1e-6)
    # vmap of the derivative over the batch is the loop of derivatives
    if batch:
        pull = lambda a, ct: fg.vjp(f, a)[1](ct)[0]  # noqa: E731
        np.testing.assert_allclose(fg.vmap(pull)(a[:, None], ct[:, None])[:, 0],
                                   np.stack([pull(a[i:i + 1], ct[i:i + 1])[0]
                                             for i in range(batch[0])]), rtol=1e-10, atol=1e-12)
