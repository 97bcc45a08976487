"""Sparsity detection, colorings, and the sparse jacobian / hessian built on them.

Detected patterns are compared with the nonzeros of dense jacobians at random
points: always a superset, and equal for elementwise, shape and indexing
programs.  Colorings are checked for validity on drawn patterns, and sparse
derivatives against the dense `jacfwd` / `hessian` to 1e-12 relative."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.transforms import coloring
from fungrad.transforms.sparsity import has_rule, jaxpr_sparsity

RNG = np.random.default_rng(0)


def dense_pattern(jac: np.ndarray) -> np.ndarray:
    return np.asarray(jac).reshape(jac.shape[0], -1) != 0


def detected(fun, *args) -> np.ndarray:
    return fg.jacobian_sparsity(fun)(*args).toarray()


def assert_close(sparse, dense):
    dense = np.asarray(dense).reshape(sparse.shape)
    got = sparse.toarray()
    scale = max(np.abs(dense).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(got, dense, rtol=1e-12, atol=1e-12 * scale)


# ---------------------------------------------------------------------------
# drawn programs: a chain of steps over 1-D values
# ---------------------------------------------------------------------------

# each step: (name, exact?, function of (current value, first input, rng-drawn constants))
def _steps():
    return {
        # elementwise (exact)
        "sin": (True, lambda v, x, c: fnp.sin(v)),
        "exp": (True, lambda v, x, c: fnp.exp(0.1 * v)),
        "square": (True, lambda v, x, c: v * v),
        "tanh_plus": (True, lambda v, x, c: fnp.tanh(v) + v ** 3),
        "scale_const": (True, lambda v, x, c: v * c["mask"][: v.shape[0]]),
        "where_const": (True, lambda v, x, c: fnp.where(c["mask"][: v.shape[0]] > 0, fnp.sin(v),
                                                        v ** 2)),
        # shape (exact)
        "shift_diff": (True, lambda v, x, c: v[1:] - 2.0 * v[:-1] if v.shape[0] > 1 else v),
        "flip": (True, lambda v, x, c: fnp.flip(v) * fnp.cos(v)),
        "roll": (True, lambda v, x, c: fnp.roll(v, 1) * v),
        "concat": (True, lambda v, x, c: fnp.concatenate([v, fnp.sin(v[:2])])),
        "stride": (True, lambda v, x, c: v[::2] * v[-1]),
        "reshape_t": (True, lambda v, x, c: (v[: (v.shape[0] // 2) * 2].reshape(2, -1).T
                                             * 1.5).reshape(-1) if v.shape[0] >= 2 else v),
        # indexing (exact)
        "gather": (True, lambda v, x, c: fnp.sin(v[c["perm"] % v.shape[0]])),
        "scatter_add": (True, lambda v, x, c: v.at[c["perm"][:3] % v.shape[0]].add(v[:1] ** 2)),
        "scatter_set": (True, lambda v, x, c: v.at[c["perm"][:2] % v.shape[0]].set(
            fnp.cos(v[-1]))),
        "mix_input": (True, lambda v, x, c: v * x[: v.shape[0]] if v.shape[0] <= x.shape[0]
                      else v),
        # reductions and products (superset)
        "cumsum": (True, lambda v, x, c: fnp.cumsum(fnp.sin(v))),
        "sum": (True, lambda v, x, c: v * fnp.sum(v ** 2)),
        "max": (False, lambda v, x, c: v + fnp.max(v)),
        "matvec": (True, lambda v, x, c: c["band"][: v.shape[0], : v.shape[0]] @ fnp.tanh(v)),
        "dyn_gather": (False, lambda v, x, c: v[fnp.argmax(v)] * v),
    }


STEPS = _steps()


@st.composite
def programs(draw):
    n = draw(st.integers(2, 7), label="n")
    names = draw(st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=4),
                 label="steps")
    seed = draw(st.integers(0, 2 ** 16), label="seed")
    rng = np.random.default_rng(seed)
    m = 2 * n + 4
    band = np.triu(np.tril(rng.normal(size=(m, m)), 1), -1)
    consts = {"mask": rng.integers(0, 2, m).astype(float), "perm": rng.permutation(m),
              "band": band}

    def fun(x):
        v = x
        for name in names:
            v = STEPS[name][1](v, x, consts)
        return v
    exact = all(STEPS[name][0] for name in names)
    x = rng.normal(size=n)
    return fun, x, exact, names


@given(programs())
def test_detected_pattern_covers_and_matches_the_dense_jacobian(program):
    fun, x, exact, names = program
    pattern = detected(fun, x)
    for _ in range(2):
        point = x + RNG.normal(size=x.shape) * 0.3
        nz = dense_pattern(fg.jacfwd(fun)(point))
        assert pattern.shape == nz.shape
        assert not (nz & ~pattern).any(), f"missed entries for {names}"
    if exact:
        # two random points: the union of their nonzeros is the generic pattern
        nz = dense_pattern(fg.jacfwd(fun)(x)) | dense_pattern(
            fg.jacfwd(fun)(x + RNG.normal(size=x.shape)))
        np.testing.assert_array_equal(pattern, nz, err_msg=f"not exact for {names}")


@given(programs(), st.sampled_from(["fwd", "rev", "auto"]))
def test_sparse_jacobian_equals_dense(program, mode):
    fun, x, _, _ = program
    assert_close(fg.sparse_jacobian(fun, mode=mode)(x), fg.jacfwd(fun)(x))


@given(programs())
def test_sparse_hessian_equals_dense(program):
    fun, x, _, names = program

    def energy(y):
        return fnp.sum(fnp.sin(fun(y)) * fun(y)) + fnp.sum(y[1:] * y[:-1] ** 2)
    h = fg.sparse_hessian(energy)(x)
    dense = fg.hessian(energy)(x)
    assert_close(h, dense)
    pattern = fg.hessian_sparsity(energy)(x).toarray()
    assert not (dense_pattern(dense) & ~pattern).any()
    assert (pattern == pattern.T).all()


# ---------------------------------------------------------------------------
# colorings
# ---------------------------------------------------------------------------

@st.composite
def patterns(draw, square=False):
    m = draw(st.integers(1, 30), label="m")
    n = m if square else draw(st.integers(1, 30), label="n")
    density = draw(st.floats(0.0, 0.5), label="density")
    seed = draw(st.integers(0, 2 ** 16), label="seed")
    dense = np.random.default_rng(seed).random((m, n)) < density
    if square:
        dense = dense | dense.T
    csr = scipy.sparse.csr_array(dense)
    csr.sort_indices()
    return dense, csr.indptr.astype(np.int64), csr.indices.astype(np.int64)


@given(patterns(), st.sampled_from(coloring.ORDERS))
def test_column_and_row_colorings_are_valid(pattern, order):
    dense, indptr, indices = pattern
    m, n = dense.shape
    cols = coloring.column_coloring(indptr, indices, n, order)
    assert cols.shape == (n,)
    for i in range(m):
        used = cols[dense[i]]
        assert len(set(used.tolist())) == used.size, "two columns of one color share a row"
    rows = coloring.row_coloring(indptr, indices, n, order)
    for j in range(n):
        used = rows[dense[:, j]]
        assert len(set(used.tolist())) == used.size, "two rows of one color share a column"
    # the greedy coloring never needs more colors than max degree of the graph + 1
    assert cols.max(initial=-1) + 1 <= max(int((dense.T.astype(int) @ dense).astype(bool)
                                               .sum(1).max(initial=0)), 1)


def _bicolored_p4(adj: np.ndarray, colors: np.ndarray) -> bool:
    n = len(colors)
    nbrs = [np.nonzero(adj[v])[0] for v in range(n)]
    for b in range(n):
        for c in nbrs[b]:
            for a in nbrs[b]:
                if a == c:
                    continue
                for d in nbrs[c]:
                    if d in (a, b):
                        continue
                    if colors[a] == colors[c] and colors[b] == colors[d]:
                        return True
    return False


@given(patterns(square=True), st.sampled_from(coloring.ORDERS))
def test_star_coloring_is_a_star_coloring_and_recovers_symmetric_matrices(pattern, order):
    dense, indptr, indices = pattern
    n = dense.shape[0]
    colors = coloring.star_coloring(indptr, indices, order)
    adj = dense & ~np.eye(n, dtype=bool)
    assert not (adj & (colors[:, None] == colors[None, :])).any(), "not distance-1"
    assert not _bicolored_p4(adj, colors)
    # recover a random symmetric matrix with this pattern from H @ S
    h = np.random.default_rng(1).normal(size=(n, n))
    h = np.where(dense, h + h.T, 0.0)
    k = colors.max(initial=-1) + 1
    seeds = np.zeros((n, k))
    seeds[np.arange(n), colors] = 1
    compressed = (h @ seeds).T.ravel()      # B[c, r] at c * n + r
    where = coloring.symmetric_recovery(indptr, indices, colors)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    np.testing.assert_allclose(compressed[where], h[rows, indices], rtol=1e-12, atol=1e-12)


def test_tridiagonal_needs_three_colors_and_banded_star_coloring_is_small():
    n = 1000
    dense = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1
    csr = scipy.sparse.csr_array(dense)
    indptr, indices = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
    assert coloring.column_coloring(indptr, indices, n).max() + 1 == 3
    assert coloring.row_coloring(indptr, indices, n).max() + 1 == 3
    assert coloring.star_coloring(indptr, indices).max() + 1 <= 3
    # pentadiagonal without the modular fast path: the greedy orders still find 5
    dense5 = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 2
    csr5 = scipy.sparse.csr_array(dense5)
    graph = coloring.intersection_graph(csr5.indptr.astype(np.int64),
                                        csr5.indices.astype(np.int64), n)
    assert graph is not None
    for order in coloring.ORDERS:
        assert coloring._greedy(*graph, order).max() + 1 <= 6


def test_arrowhead_hessian_star_coloring_beats_column_coloring():
    # a dense first row/column: column coloring needs n colors, a star coloring 2
    def energy(x):
        return x[0] * fnp.sum(x[1:] ** 2) + fnp.sum(fnp.sin(x))
    x = RNG.normal(size=40)
    plan = fg.sparse_hessian(energy).plan(x)
    assert plan.mode == "star" and plan.n_colors == 2
    assert_close(fg.sparse_hessian(energy)(x), fg.hessian(energy)(x))


# ---------------------------------------------------------------------------
# the tridiagonal PDE residual
# ---------------------------------------------------------------------------

def pde_residual(n):
    h = 1.0 / (n + 1)
    source = np.linspace(0.0, 1.0, n)

    def residual(u):
        inner = (u[:-2] - 2 * u[1:-1] + u[2:]) / h ** 2 + u[1:-1] ** 3 - source[1:-1]
        return fnp.concatenate([u[:1], inner, u[-1:]])
    return residual


def test_tridiagonal_residual_n_1e4_three_colors_exact_pattern():
    n = 10_000
    residual = pde_residual(n)
    u = RNG.random(n)
    plan = fg.sparse_jacobian(residual).plan(u)
    assert plan.n_colors == 3 and plan.mode == "fwd"
    assert plan.nnz == 3 * (n - 2) + 2
    assert plan.detect_seconds < 5.0      # milliseconds unloaded; generous for shared CI
    jac = fg.sparse_jacobian(residual)(u)
    assert isinstance(jac, scipy.sparse.csr_array) and jac.shape == (n, n)
    h2 = (n + 1) ** 2
    np.testing.assert_allclose(jac.diagonal()[1:-1], -2 * h2 + 3 * u[1:-1] ** 2, rtol=1e-12)
    np.testing.assert_allclose(jac.diagonal(1)[1:], np.full(n - 2, h2), rtol=1e-12)
    assert jac[0, 0] == 1.0 and jac[0, 1] == 0.0


def test_small_residual_matches_dense_in_every_mode():
    residual = pde_residual(12)
    u = RNG.random(12)
    for mode in ("fwd", "rev", "auto"):
        assert_close(fg.sparse_jacobian(residual, mode=mode)(u), fg.jacfwd(residual)(u))


# ---------------------------------------------------------------------------
# rules: constants, indexing, linear algebra, control flow, custom rules
# ---------------------------------------------------------------------------

def test_constant_matrix_zeros_refine_the_pattern_and_changed_constants_are_seen():
    a = np.diag(np.arange(1.0, 6.0)) + np.diag(np.ones(4), 1)

    def f(x):
        return a @ fnp.sin(x)
    x = RNG.normal(size=5)
    np.testing.assert_array_equal(detected(f, x), a != 0)
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))
    # the same program with other constant values: the cached pattern must not be reused
    a[4, 0] = 3.0
    np.testing.assert_array_equal(detected(f, x), a != 0)
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_changed_index_constants_are_seen():
    idx = np.array([0, 2])

    def f(x):
        return x[idx] * 2.0
    x = RNG.normal(size=4)
    sj = fg.sparse_jacobian(f)
    assert_close(sj(x), fg.jacfwd(f)(x))
    idx[:] = [3, 1]
    assert_close(sj(x), fg.jacfwd(f)(x))


def test_mul_by_a_constant_with_zeros_drops_those_entries():
    mask = np.array([1.0, 0.0, 2.0, 0.0])
    pattern = detected(lambda x: x * mask, np.ones(4))
    np.testing.assert_array_equal(pattern, np.diag(mask != 0))


def test_dynamic_indices_are_conservative():
    def f(x):
        return x[fnp.argsort(x)] * x
    x = RNG.normal(size=5)
    pattern = detected(f, x)
    assert pattern.all()      # any element may be read: dense, and still correct
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_solve_is_dense_and_correct():
    a = np.eye(4) * 3 + RNG.normal(size=(4, 4)) * 0.1

    def f(x):
        return fnp.linalg.solve(a + fnp.diag(x), fnp.sin(x))
    x = RNG.normal(size=4)
    assert detected(f, x).all()
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_cond_unions_branches_and_a_known_index_picks_one():
    def f(x):
        return lax.cond(x[0] > 0, lambda v: v * v[0], lambda v: fnp.sin(v), x)
    x = RNG.normal(size=4)
    pattern = detected(f, x)
    expected = np.eye(4, dtype=bool)
    expected[:, 0] = True
    np.testing.assert_array_equal(pattern, expected)
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))

    def g(x):
        return lax.cond(True, lambda v: fnp.sin(v), lambda v: v * v[0], x)
    np.testing.assert_array_equal(detected(g, x), np.eye(4, dtype=bool))


def test_while_loop_reaches_a_fixed_point():
    def f(x):
        def body(state):
            i, v = state
            return i + 1, v + 0.1 * fnp.roll(v, 1) ** 2
        return lax.while_loop(lambda s: s[0] < 2, body, (0, x))[1]
    x = RNG.normal(size=6)
    pattern = detected(f, x)
    nz = dense_pattern(fg.jacfwd(f)(x))
    assert not (nz & ~pattern).any()
    assert pattern.all()      # conservative: the fixed point over any trip count
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_scan_is_exact_when_unrolled_and_a_superset_when_long():
    def step(carry, xt):
        new = carry * 0.5 + fnp.sin(xt)
        return new, new * xt

    def f(x):
        carry, ys = lax.scan(step, x[0], x[1:])
        return fnp.concatenate([ys, carry[None]])
    x = RNG.normal(size=6)
    pattern = detected(f, x)
    np.testing.assert_array_equal(pattern, dense_pattern(fg.jacfwd(f)(x)))
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))
    x_long = RNG.normal(size=3000)
    p_long = fg.jacobian_sparsity(f)(x_long)
    dense_long_rows = dense_pattern(fg.jacfwd(lambda y: f(y)[:5])(x_long))
    assert not (dense_long_rows & ~p_long[:5].toarray()).any()


def test_fori_loop_and_checkpoint():
    def f(x):
        return lax.fori_loop(0, 3, lambda i, v: v + fnp.sin(v), x)
    x = RNG.normal(size=5)
    np.testing.assert_array_equal(detected(f, x), np.eye(5, dtype=bool))
    g = fg.checkpoint(lambda v: fnp.sin(v[1:]) * v[:-1])
    np.testing.assert_array_equal(detected(g, x), dense_pattern(fg.jacfwd(g)(x)))
    assert_close(fg.sparse_jacobian(g)(x), fg.jacfwd(g)(x))


def test_custom_jvp_and_custom_vjp_rules_are_linearized():
    @fg.custom_jvp
    def softclip(v):
        return v / (1 + fnp.abs(v))

    @softclip.defjvp
    def softclip_jvp(primals, tangents):
        (v,), (t,) = primals, tangents
        return softclip(v), t / (1 + fnp.abs(v)) ** 2

    @fg.custom_vjp
    def cube(v):
        return v ** 3

    cube.defvjp(lambda v: (v ** 3, v), lambda v, ct: (3 * v ** 2 * ct,))

    def f(x):
        return softclip(x) + cube(x[::-1])
    x = RNG.normal(size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no dense fallback
        pattern = detected(f, x)
    np.testing.assert_array_equal(pattern, np.eye(5, dtype=bool) | np.eye(5, dtype=bool)[::-1])
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_stop_gradient_and_integer_paths_carry_no_dependence():
    def f(x):
        return fnp.sin(x) * lax.stop_gradient(x[0]) + fnp.floor(x)
    np.testing.assert_array_equal(detected(f, np.ones(3)), np.eye(3, dtype=bool))


def test_pattern_of_jaxpr_reports_read_constants():
    idx = np.array([1, 0])
    closed = fg.make_jaxpr(lambda x: x[idx] + 1.0)(np.ones(2))
    (pattern,), read = jaxpr_sparsity(closed.jaxpr, closed.consts, [True])
    assert read == {0}
    np.testing.assert_array_equal(pattern.indices, [1, 0])


# ---------------------------------------------------------------------------
# the API: pytrees, argnums, given patterns, jit/vmap, dtypes, errors
# ---------------------------------------------------------------------------

def test_pytree_inputs_and_outputs_are_raveled_and_concatenated():
    def f(params, scale):
        a, b = params["a"], params["b"]
        return {"p": fnp.sin(a) * b[0], "q": b * scale}
    params = {"a": RNG.normal(size=3), "b": RNG.normal(size=2)}
    jac = fg.sparse_jacobian(f)(params, 2.0)
    dense = fg.jacfwd(lambda a, b: fnp.concatenate([fnp.sin(a) * b[0], b * 2.0]),
                      argnums=(0, 1))(params["a"], params["b"])
    assert_close(jac, np.concatenate(dense, axis=1))
    # argnums: with respect to `scale` only
    jac_s = fg.sparse_jacobian(f, argnums=1)(params, 2.0)
    assert jac_s.shape == (5, 1)
    np.testing.assert_allclose(jac_s.toarray().ravel(), [0, 0, 0, *params["b"]])


def test_given_pattern_skips_detection():
    residual = pde_residual(8)
    u = RNG.random(8)
    pattern = scipy.sparse.diags([1, 1, 1], [-1, 0, 1], shape=(8, 8))
    jac = fg.sparse_jacobian(residual, sparsity=pattern)(u)
    assert_close(jac, fg.jacfwd(residual)(u))
    with pytest.raises(ValueError, match=r"sparsity has shape \(3, 3\)"):
        fg.sparse_jacobian(residual, sparsity=np.eye(3))(u)


def test_composes_with_jit_and_vmap():
    residual = pde_residual(6)
    u = RNG.random(6)
    jitted = fg.jit(fg.sparse_jacobian(residual))(u)
    assert isinstance(jitted, scipy.sparse.csr_array)
    assert_close(jitted, fg.jacfwd(residual)(u))
    assert_close(fg.sparse_jacobian(fg.jit(residual))(u), fg.jacfwd(residual)(u))
    us = RNG.random((3, 6))
    batched = fg.vmap(fg.sparse_jacobian(residual))(us)
    assert isinstance(batched, fg.sparse.CSR) and batched.data.shape[0] == 3
    for k in range(3):
        single = fg.sparse_jacobian(residual)(us[k])
        np.testing.assert_allclose(batched.data[k], single.data, rtol=1e-12)
    # differentiable: the gradient of a function of the jacobian's entries
    g = fg.grad(lambda v: fnp.sum(fg.sparse_jacobian(residual)(v).data ** 2))(u)
    g_dense = fg.grad(lambda v: fnp.sum(fg.jacfwd(residual)(v) ** 2))(u)
    np.testing.assert_allclose(g, g_dense, rtol=1e-10)


def test_float32_stays_float32():
    jac = fg.sparse_jacobian(lambda x: fnp.sin(x) * x[0])(np.ones(3, np.float32))
    assert jac.dtype == np.float32


def test_result_is_a_fresh_matrix_each_call():
    residual = pde_residual(5)
    u = RNG.random(5)
    sj = fg.sparse_jacobian(residual)
    first = sj(u)
    first.indices[:] = 0         # the caller may mangle its matrix ...
    assert_close(sj(u), fg.jacfwd(residual)(u))   # ... the cached plan is untouched


def test_errors_name_the_function_and_say_what_to_do():
    def residual(u):
        return u * 2
    with pytest.raises(ValueError, match="mode must be one of"):
        fg.sparse_jacobian(residual, mode="sideways")
    with pytest.raises(TypeError, match=r"sparse_jacobian\(residual .*dtype int64"):
        fg.sparse_jacobian(residual)(np.arange(3))
    with pytest.raises(TypeError, match=r"sparse_hessian\(residual .*must return a scalar"):
        fg.sparse_hessian(residual)(np.ones(3))
    with pytest.raises(TypeError, match="floating-point outputs"):
        fg.sparse_jacobian(lambda u: fnp.argmax(u))(np.ones(3))


def test_graph_laplacian_energy_hessian():
    rng = np.random.default_rng(3)
    n = 60
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n)
                      if rng.random() < 0.05])
    lap = np.zeros((n, n))
    lap[edges[:, 0], edges[:, 1]] = lap[edges[:, 1], edges[:, 0]] = -1
    lap[np.arange(n), np.arange(n)] = -lap.sum(1)

    def energy(x):
        return 0.5 * x @ (lap @ x) + fnp.sum(fnp.cosh(x))
    x = rng.normal(size=n)
    h = fg.sparse_hessian(energy)(x)
    assert_close(h, fg.hessian(energy)(x))
    np.testing.assert_array_equal(fg.hessian_sparsity(energy)(x).toarray(),
                                  (lap != 0) | np.eye(n, dtype=bool))
    # the same energy written as a sum over the edge list (gather + scatter in the gradient)

    def edge_energy(x):
        d = x[edges[:, 0]] - x[edges[:, 1]]
        return 0.5 * fnp.sum(d * d) + fnp.sum(fnp.cosh(x))
    assert_close(fg.sparse_hessian(edge_energy)(x), fg.hessian(edge_energy)(x))
    np.testing.assert_array_equal(fg.hessian_sparsity(edge_energy)(x).toarray(),
                                  (lap != 0) | np.eye(n, dtype=bool))


def test_clique_bound_is_a_lower_bound_and_skips_the_star_coloring_of_blocks():
    blocks = np.kron(np.eye(5, dtype=bool), np.ones((4, 4), bool))
    csr = scipy.sparse.csr_array(blocks)
    indptr, indices = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
    assert coloring.clique_bound(indptr, indices) == 4
    assert coloring.star_coloring(indptr, indices).max() + 1 == 4
    arrow = np.eye(6, dtype=bool)
    arrow[0] = arrow[:, 0] = True
    csr = scipy.sparse.csr_array(arrow)
    assert coloring.clique_bound(csr.indptr.astype(np.int64), csr.indices.astype(np.int64)) == 2

    def energy(x):
        return fnp.sum(fnp.tanh(x.reshape(-1, 4) @ np.ones((4, 4))) ** 2)
    x = RNG.normal(size=20)
    plan = fg.sparse_hessian(energy).plan(x)
    assert plan.mode == "column" and plan.n_colors == 4
    assert_close(fg.sparse_hessian(energy)(x), fg.hessian(energy)(x))


def test_products_of_two_input_dependent_operands():
    def f(x):
        m = fnp.outer(x[:3], x[3:])
        return m @ fnp.sin(x[3:]) + x[:3] @ m
    x = RNG.normal(size=6)
    np.testing.assert_array_equal(detected(f, x)[:3], np.ones((3, 6), bool))
    assert_close(fg.sparse_jacobian(f)(x), fg.jacfwd(f)(x))


def test_every_primitive_has_a_sparsity_rule():
    # a rule of its own or of its kind; the rest are linearized through their jvp
    # rule (while_tape_vjp, in gradients of while loops: tested by the hessian below)
    missing = [p.name for p in lax.ALL_PRIMITIVES
               if not has_rule(p) and not p.jvp_nondifferentiable]
    assert missing == ["while_tape_vjp"]


def test_hessians_through_while_scan_and_custom_vjp_need_no_dense_fallback():
    @fg.custom_vjp
    def cube(v):
        return v ** 3

    cube.defvjp(lambda v: (v ** 3, v), lambda v, ct: (3 * v ** 2 * ct,))

    def f(x):
        def body(state):
            i, v = state
            return i + 1, v * 0.9 + 0.1 * fnp.sin(fnp.roll(v, 1))
        v = lax.while_loop(lambda s: s[0] < 3, body, (0, x))[1]
        carry, ys = lax.scan(lambda c, xt: (c * xt + fnp.sin(xt), c * xt), 1.0, x)
        return fnp.sum(v ** 2) + fnp.sum(ys ** 2) + carry + fnp.sum(cube(x[1:]) * x[:-1])
    x = RNG.normal(size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(fg.sparse_hessian(f)(x), fg.hessian(f)(x))

    def g(x):
        return fnp.sum(cube(x[1:]) * x[:-1])
    expected = np.eye(6, k=1, dtype=bool) | np.eye(6, k=-1, dtype=bool)
    expected[1:, 1:] |= np.eye(5, dtype=bool)
    np.testing.assert_array_equal(fg.hessian_sparsity(g)(x).toarray(), expected)
