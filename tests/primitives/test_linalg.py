"""fungrad.numpy.linalg and the linalg primitives: values against NumPy/SciPy,
gradients against finite differences and closed forms, dtypes, batching, errors."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
import fungrad.numpy.linalg as fla
from fungrad import lax
from fungrad.errors import FungradNotImplementedError


def numerical_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def well_conditioned(rng, n, batch=()):
    a = rng.uniform(-1, 1, batch + (n, n))
    return a + (n + 1) * np.eye(n) * rng.choice([-1, 1], batch + (n,))[..., None]


def spd(rng, n, batch=()):
    m = rng.uniform(-1, 1, batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + (n + 1) * np.eye(n)


matrices = st.integers(1, 4).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2 ** 32 - 1)))


# --- values ------------------------------------------------------------------------------

def test_module_is_importable_both_ways():
    assert fnp.linalg is fla


def test_values_match_numpy_on_concrete_inputs():
    rng = np.random.default_rng(0)
    a, b = well_conditioned(rng, 3, (2,)), rng.normal(size=(2, 3, 2))
    s = spd(rng, 3)
    for got, expected in [(fla.det(a), np.linalg.det(a)), (fla.inv(a), np.linalg.inv(a)),
                          (fla.solve(a, b), np.linalg.solve(a, b)),
                          (fla.slogdet(a).logabsdet, np.linalg.slogdet(a).logabsdet),
                          (fla.slogdet(a).sign, np.linalg.slogdet(a).sign),
                          (fla.cholesky(s), np.linalg.cholesky(s)),
                          (fla.cholesky(s, upper=True), np.linalg.cholesky(s).T)]:
        assert isinstance(got, (np.ndarray, np.generic))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_exact_small_values():
    assert fla.det(np.array([[1., 2.], [3., 4.]])) == pytest.approx(-2.0)
    assert fla.det(np.array([[1, 2], [3, 4]])).dtype == np.float64      # ints promote
    np.testing.assert_allclose(fla.solve(np.array([[3., 1.], [1., 2.]]), np.array([9., 8.])),
                               [2., 3.])
    np.testing.assert_allclose(fla.cholesky(np.array([[4., 2.], [2., 2.]])), [[2., 0.], [1., 1.]])
    assert fla.norm(np.array([3., 4.])) == 5.0


def test_solve_follows_numpy2_vector_rule_and_broadcasts_batches():
    rng = np.random.default_rng(1)
    a = well_conditioned(rng, 3, (4,))
    v = rng.normal(size=3)
    np.testing.assert_allclose(fla.solve(a, v), np.linalg.solve(a, v))      # b 1-D: a vector
    b = rng.normal(size=(3, 2))
    np.testing.assert_allclose(fla.solve(a, b), np.linalg.solve(a, b))      # batch broadcast
    np.testing.assert_allclose(fla.solve(a[0], rng.normal(size=(5, 3, 1)))[..., 0].shape, (5, 3))


@pytest.mark.parametrize("ord", [None, 1, 2, 3, 0.5, 0, np.inf, -np.inf])
def test_vector_norms_match_numpy(ord):
    x = np.random.default_rng(2).normal(size=(3, 4))
    np.testing.assert_allclose(fla.norm(x, ord, axis=1), np.linalg.norm(x, ord, axis=1))
    np.testing.assert_allclose(fla.norm(x, ord, axis=0, keepdims=True),
                               np.linalg.norm(x, ord, axis=0, keepdims=True))


@pytest.mark.parametrize("ord", [None, "fro", 1, -1, np.inf, -np.inf])
def test_matrix_norms_match_numpy(ord):
    x = np.random.default_rng(3).normal(size=(2, 3, 4))
    np.testing.assert_allclose(fla.norm(x[0], ord), np.linalg.norm(x[0], ord))
    np.testing.assert_allclose(fla.norm(x, ord, axis=(2, 1)), np.linalg.norm(x, ord, axis=(2, 1)))
    np.testing.assert_allclose(fla.norm(x, ord, axis=(0, 2), keepdims=True),
                               np.linalg.norm(x, ord, axis=(0, 2), keepdims=True))
    np.testing.assert_allclose(fla.matrix_norm(x, ord="fro" if ord is None else ord),
                               np.linalg.matrix_norm(x, ord="fro" if ord is None else ord))
    np.testing.assert_allclose(fla.norm(x), np.linalg.norm(x))              # flattened


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("transpose_a", [True, False])
@pytest.mark.parametrize("left_side", [True, False])
@pytest.mark.parametrize("unit_diagonal", [True, False])
def test_triangular_solve_matches_scipy(lower, transpose_a, left_side, unit_diagonal):
    rng = np.random.default_rng(4)
    a = well_conditioned(rng, 3)
    b = rng.normal(size=(3, 2) if left_side else (2, 3))
    got = lax.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                               unit_diagonal=unit_diagonal)
    if left_side:
        expected = scipy.linalg.solve_triangular(a, b, lower=lower, trans=int(transpose_a),
                                                 unit_diagonal=unit_diagonal)
    else:   # X op(A) = B  <=>  op(A)^T X^T = B^T
        expected = scipy.linalg.solve_triangular(a, b.T, lower=lower, trans=int(not transpose_a),
                                                 unit_diagonal=unit_diagonal).T
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_singular_inputs_give_nan_or_zero_not_exceptions():
    singular = np.array([[1., 2.], [2., 4.]])
    assert fla.det(singular) == 0.0
    assert fla.slogdet(singular) == (0.0, -np.inf)
    assert np.all(np.isnan(fla.solve(singular, np.ones(2))) | np.isinf(
        fla.solve(singular, np.ones(2))))
    assert np.all(np.isnan(fla.cholesky(-np.eye(2))))


def test_errors_say_what_is_wrong():
    with pytest.raises(fla.LinAlgError, match="square"):
        fla.det(np.ones((2, 3)))
    with pytest.raises(fla.LinAlgError, match="two-dimensional"):
        fla.inv(np.ones(3))
    with pytest.raises(ValueError, match="invalid norm order"):
        fla.norm(np.ones(3), "fro")


# --- derivatives ---------------------------------------------------------------------------

@settings(max_examples=10)
@given(case=matrices)
def test_det_and_logdet_gradients_are_the_inverse_transpose(case):
    n, seed = case
    a = well_conditioned(np.random.default_rng(seed), n)
    inv_t = np.linalg.inv(a).T
    np.testing.assert_allclose(fg.grad(fla.det)(a), np.linalg.det(a) * inv_t, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(fg.grad(lambda a: fla.slogdet(a).logabsdet)(a), inv_t,
                               rtol=1e-9, atol=1e-12)


@settings(max_examples=10)
@given(case=matrices)
def test_gradients_match_finite_differences(case):
    n, seed = case
    rng = np.random.default_rng(seed)
    a, s, b = well_conditioned(rng, n), spd(rng, n), rng.normal(size=(n, 2))
    w_inv, w_chol = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    functions = {
        "inv": (lambda a: fnp.sum(fla.inv(a) * w_inv), a),
        "solve_a": (lambda a: fnp.sum(fla.solve(a, b) ** 2), a),
        "solve_b": (lambda b: fnp.sum(fla.solve(a, b) ** 2), b),
        "cholesky": (lambda s: fnp.sum(fla.cholesky(s) * w_chol), s),
        "det": (fla.det, a),
        "norm": (lambda a: fla.norm(a, axis=0)[0], a),
        "fro": (lambda a: fla.norm(a), a),
        "norm_inf": (lambda a: fla.norm(a, np.inf), a),
    }
    for name, (f, x) in functions.items():
        np.testing.assert_allclose(fg.grad(f)(x), numerical_grad(f, x), rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_cholesky_gradient_is_symmetric():
    rng = np.random.default_rng(5)
    s, w = spd(rng, 4), rng.normal(size=(4, 4))
    g = fg.grad(lambda s: fnp.sum(fla.cholesky(s) * w))(s)
    np.testing.assert_allclose(g, g.T, atol=1e-12)


def test_hessians_are_symmetric_and_match_finite_differences():
    rng = np.random.default_rng(6)
    a = well_conditioned(rng, 3)
    for f in (lambda a: fla.slogdet(a).logabsdet, lambda a: fnp.sum(fla.inv(a))):
        h = fg.hessian(f)(a)
        np.testing.assert_allclose(h, h.transpose(2, 3, 0, 1), atol=1e-10)
        t = rng.normal(size=a.shape)
        expected = numerical_grad(lambda x: np.vdot(fg.grad(f)(x), t), a)
        np.testing.assert_allclose(np.einsum("ijkl,kl->ij", h, t), expected, rtol=1e-5,
                                   atol=1e-7)


def test_jacfwd_equals_jacrev():
    a = well_conditioned(np.random.default_rng(7), 3)
    np.testing.assert_allclose(fg.jacfwd(fla.inv)(a), fg.jacrev(fla.inv)(a), atol=1e-12)
    np.testing.assert_allclose(fg.jacfwd(fla.cholesky)(spd(np.random.default_rng(8), 3)),
                               fg.jacrev(fla.cholesky)(spd(np.random.default_rng(8), 3)),
                               atol=1e-12)


@pytest.mark.parametrize("ord", [None, 2, 3, 1.5, "fro"])
def test_norm_gradient_at_zero_is_zero_never_nan(ord):
    x = np.zeros((3, 2)) if ord == "fro" else np.zeros(3)
    g = fg.grad(lambda x: fla.norm(x, ord))(x)
    np.testing.assert_array_equal(g, np.zeros_like(x))
    assert np.all(np.isfinite(fg.hessian(lambda x: fla.norm(x, ord))(x)))
    # and under vmap, next to nonzero rows
    rows = np.array([[0., 0., 0.], [3., 4., 0.]])
    np.testing.assert_allclose(fg.vmap(fg.grad(fla.norm))(rows), [[0., 0., 0.], [.6, .8, 0.]])


def test_norm_gradient_is_the_unit_vector():
    x = np.array([3., -4.])
    np.testing.assert_allclose(fg.grad(fla.norm)(x), x / 5)
    np.testing.assert_allclose(fg.grad(lambda x: fla.norm(x, 1))(x), np.sign(x))
    np.testing.assert_allclose(fg.grad(lambda x: fla.norm(x, np.inf))(np.array([3., -3.])),
                               [0.5, -0.5])       # ties split evenly


@pytest.mark.parametrize("f", [fla.det, fla.inv, lambda a: fla.slogdet(a).logabsdet,
                               lambda a: fla.solve(a, np.ones(3, np.float32)),
                               fla.norm,
                               lambda a: fla.cholesky(a @ a.T + 4 * np.eye(3, dtype=np.float32))])
def test_float32_stays_float32(f):
    a = (np.eye(3) * 2 + 0.1).astype(np.float32)
    assert np.asarray(f(a)).dtype == np.float32
    _, pullback = fg.vjp(f, a)
    out = f(a)
    (g,) = pullback(np.ones_like(np.asarray(out)))
    assert g.dtype == np.float32


@settings(max_examples=8)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 3))
def test_vmap_agrees_with_a_loop(seed, n):
    rng = np.random.default_rng(seed)
    a, s, b = well_conditioned(rng, n, (3,)), spd(rng, n, (3,)), rng.normal(size=(3, n))
    for f, args in [(fla.det, (a,)), (fla.inv, (a,)), (fla.cholesky, (s,)),
                    (fla.solve, (a, b)), (fg.grad(fla.det), (a,)),
                    (lambda a: fla.slogdet(a).logabsdet, (a,))]:
        got = fg.vmap(f)(*args)
        expected = np.stack([f(*[x[i] for x in args]) for i in range(3)])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # batch axis elsewhere, with an unbatched operand
    got = fg.vmap(fla.solve, in_axes=(None, 1))(a[0], b.T)
    np.testing.assert_allclose(got, np.linalg.solve(a[0], b.T).T, rtol=1e-10)


def test_traced_program_shows_the_linalg_primitives():
    a = well_conditioned(np.random.default_rng(9), 2)
    text = str(fg.make_jaxpr(fg.value_and_grad(lambda a: fla.slogdet(a).logabsdet))(a))
    assert "slogdet" in text and "solve" in text
    # the gradient: one solve against the identity (slogdet's sign says where the matrix
    # is singular, and the SVD cofactor replaces the solve there)
    text = str(fg.make_jaxpr(fg.grad(lambda a: fla.slogdet(a).logabsdet))(a))
    assert text.count("slogdet") == 1 and text.count("solve") == 1


# --- eigh, qr, svd ----------------------------------------------------------------------------

def test_decompositions_match_numpy():
    rng = np.random.default_rng(10)
    s, a = spd(rng, 4, (2,)), rng.normal(size=(2, 5, 3))
    w, v = fla.eigh(s)
    np.testing.assert_allclose(w, np.linalg.eigvalsh(s), rtol=1e-12)
    np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), s, atol=1e-12)
    q, r = fla.qr(a)
    np.testing.assert_allclose(q @ r, a, atol=1e-12)
    np.testing.assert_allclose(np.abs(r), np.abs(np.linalg.qr(a).R), atol=1e-12)
    np.testing.assert_allclose(fla.qr(a, mode="r"), r)
    u, sv, vh = fla.svd(a, full_matrices=False)
    np.testing.assert_allclose(sv, np.linalg.svd(a, compute_uv=False), rtol=1e-12)
    np.testing.assert_allclose((u * sv[..., None, :]) @ vh, a, atol=1e-12)
    np.testing.assert_allclose(fla.svdvals(a), sv)
    assert fla.svd(a[0]).U.shape == (5, 5)           # full_matrices on concrete input: NumPy's
    for ord in (2, -2, "nuc"):
        np.testing.assert_allclose(fla.norm(a, ord, axis=(1, 2)),
                                   np.linalg.norm(a, ord, axis=(1, 2)), rtol=1e-12)


def test_eigenvalue_and_singular_value_gradients_have_closed_forms():
    rng = np.random.default_rng(11)
    s, a = spd(rng, 3), rng.normal(size=(4, 3))
    w, v = np.linalg.eigh(s)
    for i in range(3):
        g = fg.grad(lambda s: fla.eigvalsh(s)[i])(s)
        np.testing.assert_allclose(g, np.outer(v[:, i], v[:, i]), atol=1e-10)
    u, sv, vh = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(fg.grad(lambda a: fla.norm(a, 2))(a), np.outer(u[:, 0], vh[0]),
                               atol=1e-10)
    np.testing.assert_allclose(fg.grad(lambda a: fla.norm(a, "nuc"))(a), u @ vh, atol=1e-10)


@settings(max_examples=8)
@given(seed=st.integers(0, 2 ** 32 - 1), shape=st.sampled_from([(3, 3), (4, 2), (2, 4)]))
def test_decomposition_gradients_match_finite_differences(seed, shape):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, shape) + 2 * np.eye(*shape)
    s = spd(rng, 3)
    wu, wv, wq = rng.normal(size=(shape[0],) * 2), rng.normal(size=(shape[1],) * 2), rng.normal(
        size=shape)
    we = rng.normal(size=(3, 3))
    functions = {
        # sign-invariant functions of the singular / eigen vectors
        "svd": (lambda a: fnp.sum((fla.svd(a, full_matrices=False).U
                                   @ fla.svd(a, full_matrices=False).U.T) * wu)
                + fnp.sum(fla.svd(a, full_matrices=False).Vh.T
                          @ (fla.svd(a, full_matrices=False).S[:, None]
                             * fla.svd(a, full_matrices=False).Vh) * wv), a),
        "eigh": (lambda s: fnp.sum(fla.eigh(s).eigenvectors ** 2 * we
                                   * fla.eigh(s).eigenvalues), s),
        "nuc": (lambda a: fla.norm(a, "nuc"), a),
        "-2": (lambda a: fla.norm(a, -2), a),
    }
    if shape[0] >= shape[1]:
        functions["qr"] = (lambda a: fnp.sum(fla.qr(a).Q * wq[:, :min(shape)])
                           + fnp.sum(fla.qr(a).R ** 2), a)
    for name, (f, x) in functions.items():
        np.testing.assert_allclose(fg.grad(f)(x), numerical_grad(f, x), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def test_norm_of_a_zero_matrix_has_zero_gradient_for_every_order():
    for ord in (2, -2, "nuc", "fro", 1, np.inf):
        g = fg.grad(lambda a: fla.norm(a, ord))(np.zeros((2, 3)))
        np.testing.assert_array_equal(g, np.zeros((2, 3)), err_msg=str(ord))


def test_decomposition_limits_are_reported():
    with pytest.raises(FungradNotImplementedError, match="full_matrices=False"):
        fg.grad(lambda a: fnp.sum(fla.svd(a).U))(np.ones((3, 2)))
    with pytest.raises(FungradNotImplementedError, match="m >= n"):
        fg.grad(lambda a: fnp.sum(fla.qr(a).R))(np.ones((2, 3)))


def test_composites_match_numpy():
    rng = np.random.default_rng(12)
    a, sq = rng.normal(size=(2, 4, 3)), well_conditioned(rng, 3)
    np.testing.assert_allclose(fla.pinv(a), np.linalg.pinv(a), atol=1e-12)
    np.testing.assert_allclose(fla.pinv(np.diag([2., 0.])), np.diag([.5, 0.]))
    for p in (None, 1, np.inf, "fro", -2):
        np.testing.assert_allclose(fla.cond(sq, p), np.linalg.cond(sq, p), rtol=1e-10)
    assert fla.matrix_rank(np.array([[1., 2.], [2., 4.]])) == 1
    np.testing.assert_array_equal(fla.matrix_rank(a), np.linalg.matrix_rank(a))
    for n in (-2, 0, 1, 3, 6):
        np.testing.assert_allclose(fla.matrix_power(sq, n), np.linalg.matrix_power(sq, n),
                                   rtol=1e-10)
    np.testing.assert_allclose(fla.multi_dot([sq, sq, sq[0]]),
                               np.linalg.multi_dot([sq, sq, sq[0]]))
    np.testing.assert_allclose(fla.trace(a[:, :3]), np.linalg.trace(a[:, :3]))
    np.testing.assert_allclose(fla.diagonal(a), np.linalg.diagonal(a))
    np.testing.assert_allclose(fla.matrix_transpose(a), np.swapaxes(a, -1, -2))


def test_pinv_gradient_matches_finite_differences():
    rng = np.random.default_rng(13)
    a, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 4))
    f = lambda a: fnp.sum(fla.pinv(a) * w)  # noqa: E731
    np.testing.assert_allclose(fg.grad(f)(a), numerical_grad(f, a), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3), (3, 3)])
def test_lstsq_matches_numpy_and_is_differentiable(shape):
    rng = np.random.default_rng(14)
    a = rng.normal(size=shape)
    for b in (rng.normal(size=shape[0]), rng.normal(size=(shape[0], 2))):
        got, expected = fla.lstsq(a, b), np.linalg.lstsq(a, b)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    b = rng.normal(size=shape[0])
    f = lambda a: fnp.sum(fla.lstsq(a, b).x ** 2)  # noqa: E731
    np.testing.assert_allclose(fg.grad(f)(a), numerical_grad(f, a), rtol=1e-5, atol=1e-7)


def test_cross_and_vecdot_match_numpy():
    rng = np.random.default_rng(15)
    x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_allclose(fla.cross(x1, x2), np.linalg.cross(x1, x2))
    np.testing.assert_allclose(fla.cross(x1.T, x2[:, None], axis=0),
                               np.linalg.cross(x1.T, x2[:, None], axis=0))
    np.testing.assert_allclose(fla.vecdot(x1, x2), np.linalg.vecdot(x1, x2))
    # d (a x b) . w / da = b x w
    w = rng.normal(size=3)
    np.testing.assert_allclose(fg.grad(lambda a: fnp.sum(fla.cross(a, x2) * w))(x1[0]),
                               np.cross(x2, w))


# --- conventions at singular and degenerate inputs (docs/sharp-bits.md's table) ----------------

def _cofactor(a):
    """The cofactor matrix by minors (the textbook definition)."""
    n = a.shape[-1]
    out = np.zeros_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, 0), j, 1)
            out[i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return out


RANK_DEFICIENT = {
    "rank n-1 real": np.array([[1.0, 2.0], [2.0, 4.0]]),
    "rank n-1 real 3x3": np.arange(1.0, 10.0).reshape(3, 3),
    "rank n-1 complex": np.outer([1 + 1j, 2], [1, 1 - 2j]),
    "rank n-1 complex 3x3": np.outer([1j, 2, 3], [1, 1j, 2]) + np.outer([1, 0, 1j], [2, 1, 1]),
    "rank n-2 real": np.outer([1.0, 2.0, 3.0], [1.0, 0.0, 2.0]),
    "rank n-2 complex": np.outer([1j, 2, 3], [1, 1j, 2]),
    "zero": np.zeros((3, 3)),
}


@pytest.mark.parametrize("name", sorted(RANK_DEFICIENT))
def test_det_gradient_at_singular_matrices_is_the_cofactor_in_every_mode(name):
    a = RANK_DEFICIENT[name]
    expected = _cofactor(a)          # 0 for rank <= n - 2
    assert np.linalg.matrix_rank(a) < a.shape[0]
    if np.iscomplexobj(a):
        # grad of Re(det) is JAX's conjugate gradient d/dx - i d/dy, which for the real
        # part of a holomorphic function is its derivative itself
        for mode in (fg.grad, lambda f: fg.jit(fg.grad(f))):
            np.testing.assert_allclose(mode(lambda a: fnp.real(fla.det(a)))(a), expected,
                                       atol=1e-9)
        np.testing.assert_allclose(fg.jacfwd(fla.det, holomorphic=True)(a), expected, atol=1e-9)
        np.testing.assert_allclose(fg.jacrev(fla.det, holomorphic=True)(a), expected, atol=1e-9)
    else:
        for mode in (fg.grad, fg.jacfwd, fg.jacrev, lambda f: fg.jit(fg.grad(f))):
            np.testing.assert_allclose(mode(fla.det)(a), expected, atol=1e-9)


# (the complex 3x3 rank n-1 matrix is not exactly singular to LU: slogdet is finite there)
@pytest.mark.parametrize("name", sorted(set(RANK_DEFICIENT) - {"rank n-1 complex 3x3"}))
def test_slogdet_at_singular_matrices_follows_jax(name):
    a = RANK_DEFICIENT[name]
    sign, logabsdet = fla.slogdet(a)
    assert sign == 0 and logabsdet == -np.inf
    g = fg.grad(lambda a: fla.slogdet(a).logabsdet)(a)
    if np.iscomplexobj(a) or np.linalg.matrix_rank(a) < a.shape[0] - 1:
        assert np.all(np.isnan(g))          # JAX: NaN
    else:                                   # JAX: +-inf with the cofactor's signs
        expected = np.sign(_cofactor(a)) * np.inf
        np.testing.assert_array_equal(g, np.where(_cofactor(a) == 0, np.nan, expected))
        np.testing.assert_array_equal(fg.jacfwd(lambda a: fla.slogdet(a).logabsdet)(a), g)
        np.testing.assert_array_equal(fg.jacrev(lambda a: fla.slogdet(a).logabsdet)(a), g)
        np.testing.assert_array_equal(fg.jit(fg.grad(lambda a: fla.slogdet(a).logabsdet))(a), g)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_slogdet_gradient_away_from_singular_is_the_inverse_transpose(dtype):
    a = (np.array([[2.0, 1.0], [1.0, 3.0]]) + (0.5j * np.eye(2) if dtype == np.complex128
                                               else 0)).astype(dtype)
    g = fg.grad(lambda a: fla.slogdet(a).logabsdet)(a)
    # log|det A| = Re(log det A): the gradient is d log det A / dA = A^-T (see above)
    np.testing.assert_allclose(g, np.linalg.inv(a).T, rtol=1e-12)
    # only the sign used: its zero cotangent of logabsdet wins over nothing infinite
    assert np.all(np.isfinite(fg.grad(lambda a: fnp.real(fla.slogdet(a).sign))(a)))


@pytest.mark.parametrize("name", ["rank n-1 real", "rank n-1 complex", "rank n-2 real"])
def test_inv_and_solve_at_singular_matrices_give_nan(name):
    # NumPy raises LinAlgError; JAX returns inf/NaN from its LU; fungrad returns NaN
    a = RANK_DEFICIENT[name]
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.inv(a) if "real" in name else np.linalg.solve(
            np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2))
    assert np.all(np.isnan(fla.inv(a)))
    assert np.all(np.isnan(fla.solve(a, np.ones(a.shape[0]))))
    assert np.all(np.isnan(fg.jit(fla.inv)(a)))
    assert np.all(np.isnan(fg.grad(lambda a: fnp.real(fnp.sum(fla.inv(a))))(a)))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_eigh_with_repeated_eigenvalues(dtype):
    a = np.diag([1.0, 1.0, 2.0]).astype(dtype)
    weights = np.array([0.0, 1.0, 2.0])
    # eigenvalue gradients are finite (JAX gives the same numbers), in every mode
    expected = np.diag(weights)
    loss = lambda a: fnp.sum(fla.eigvalsh(a) * weights)  # noqa: E731
    np.testing.assert_allclose(fg.grad(loss)(a), expected, atol=1e-12)
    if dtype == np.float64:
        np.testing.assert_allclose(fg.jacfwd(loss)(a), expected, atol=1e-12)
        np.testing.assert_allclose(np.einsum("kij,k->ij", fg.jacrev(fla.eigvalsh)(a), weights),
                                   expected, atol=1e-12)
    # the eigenvector of the distinct eigenvalue: finite (JAX: NaN, because its rule
    # multiplies the repeated pair's 1 / (w_j - w_i) = inf by a zero cotangent)
    def isolated(a):   # a weighted sum of the entries of its projector v v^H
        v = fla.eigh(a)[1][:, 2:]
        return fnp.real(fnp.sum((v @ fnp.conj(v).T) * np.array([[0, 1, 2], [1, 0, 3],
                                                                   [2, 3, 0.5]])))
    g = fg.grad(isolated)(a)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 1
    h = 1e-6
    direction = np.array([[0.0, 0.3, 1.0], [0.3, 0.0, 0.5], [1.0, 0.5, 0.2]]).astype(dtype)
    fd = (isolated(a + h * direction) - isolated(a - h * direction)) / (2 * h)
    np.testing.assert_allclose(np.real(np.sum(g * direction)), fd, rtol=1e-5, atol=1e-8)
    # a cotangent inside the repeated eigenspace has no finite derivative: inf or NaN
    mixed = lambda a: fnp.sum(fnp.abs(fla.eigh(a)[1][:, 0] + np.array([0, 0.5, 0])) ** 2)  # noqa
    assert not np.all(np.isfinite(fg.grad(mixed)(a)))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("ord", [None, "fro", 2, -2, "nuc", 1, np.inf])
def test_norm_gradient_at_zero_is_zero_in_every_mode(dtype, ord):
    # JAX gives NaN for the 2-norm and Frobenius norm at 0, 0.25 I for ord=2 and I for
    # 'nuc'; fungrad gives the least-norm subgradient 0 (a zero wins), everywhere
    for x in (np.zeros(3, dtype), np.zeros((2, 2), dtype)):
        if x.ndim == 1 and ord in ("fro", "nuc", -2):
            continue
        f = lambda x: fla.norm(x, ord)  # noqa: E731
        assert f(x) == 0
        np.testing.assert_array_equal(fg.grad(f)(x), np.zeros_like(x))
        if dtype == np.float64:
            np.testing.assert_array_equal(fg.jacfwd(f)(x), np.zeros_like(x))
            np.testing.assert_array_equal(fg.jacrev(f)(x), np.zeros_like(x))
