"""Gather / scatter primitives, NumPy advanced indexing, `x.at[...]` and item
assignment on traced arrays (fungrad/primitives/indexing.py, fungrad/numpy/_indexing.py)."""
from __future__ import annotations

import inspect
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.core import typecheck
from fungrad.interpreter import eval_jaxpr
from fungrad.testing import check_grads

SCATTERS = {"set": lax.scatter, "add": lax.scatter_add, "mul": lax.scatter_mul,
            "min": lax.scatter_min, "max": lax.scatter_max}


# ---------------------------------------------------------------------------
# references: plain Python loops over the index rows
# ---------------------------------------------------------------------------

def ref_gather(x, idx, axes):
    k = len(axes)
    moved = np.moveaxis(x, axes, tuple(range(k)))
    batch = idx.shape[:-1]
    out = np.empty(batch + moved.shape[k:], x.dtype)
    for b in np.ndindex(*batch):
        out[b] = moved[tuple(int(i) for i in idx[b])]
    return out


def ref_scatter(kind, x, idx, u, axes):
    x = x.copy()
    k = len(axes)
    moved = np.moveaxis(x, axes, tuple(range(k)))      # a view: writes land in x
    for b in np.ndindex(*idx.shape[:-1]):
        pos = tuple(int(i) for i in idx[b])
        if kind == "set":
            moved[pos] = u[b]                          # in order: the last write wins
        elif kind == "add":
            moved[pos] = moved[pos] + u[b]
        elif kind == "mul":
            moved[pos] = moved[pos] * u[b]
        elif kind == "min":
            moved[pos] = np.minimum(moved[pos], u[b])
        else:
            moved[pos] = np.maximum(moved[pos], u[b])
    return x


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

@st.composite
def index_cases(draw, min_k=0):
    """(x shape, axes, indices) with duplicates and negative indices."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), label="shape")
    k = draw(st.integers(min_k, len(shape)), label="k")
    axes = tuple(draw(st.permutations(range(len(shape))), label="perm")[:k])
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3), label="batch")
    cols = [draw(hnp.arrays(np.int64, batch, elements=st.integers(-shape[a], shape[a] - 1)),
                 label=f"column {j}") for j, a in enumerate(axes)]
    idx = np.stack(cols, axis=-1) if cols else np.zeros(batch + (0,), np.int64)
    return shape, axes, idx


def traced(f):
    """f traced abstractly (like jit, so indices passed as arguments are traced),
    typechecked and run by the interpreter: no numba compile per hypothesis example."""
    def run(*args):
        closed = fg.make_jaxpr(f)(*args)
        typecheck(closed.jaxpr)
        outs = eval_jaxpr(closed.jaxpr, closed.consts, *args)
        return outs[0] if len(outs) == 1 else outs
    return run


def _values(data, shape, label, zeros=False):
    """Random float64 values without ties (drawn from a seed)."""
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label=f"{label} seed")
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    v = rng.standard_normal(shape)
    if zeros:
        v = np.where(rng.random(shape) < 0.3, 0.0, v)
    return v


def _wrapped(idx, shape, axes):
    sizes = np.array([shape[a] for a in axes], dtype=np.int64)
    return np.where(idx < 0, idx + sizes, idx) if idx.size else idx


def _update_shape(shape, axes, idx):
    return idx.shape[:-1] + tuple(d for i, d in enumerate(shape) if i not in axes)


# ---------------------------------------------------------------------------
# the primitives: values
# ---------------------------------------------------------------------------

@given(case=index_cases(), data=st.data())
def test_gather_agrees_with_a_loop(case, data):
    shape, axes, idx = case
    x = _values(data, shape, "x")
    expected = ref_gather(x, _wrapped(idx, shape, axes), axes)
    np.testing.assert_array_equal(lax.gather(x, idx, axes), expected)
    np.testing.assert_array_equal(traced(lambda x, i: lax.gather(x, i, axes))(x, idx), expected)


@pytest.mark.parametrize("kind", SCATTERS)
@given(case=index_cases(), data=st.data())
def test_scatter_agrees_with_a_loop(kind, case, data):
    shape, axes, idx = case
    x = _values(data, shape, "x")
    u = _values(data, _update_shape(shape, axes, idx), "updates")
    expected = ref_scatter(kind, x, _wrapped(idx, shape, axes), u, axes)
    np.testing.assert_array_equal(SCATTERS[kind](x, idx, u, axes), expected)
    got = traced(lambda x, i, u: SCATTERS[kind](x, i, u, axes))(x, idx, u)
    np.testing.assert_array_equal(got, expected)


def test_scatter_family_agrees_with_numpy_ufunc_at():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    rows = np.array([4, 0, 4, 4, 1, -1])
    u = rng.standard_normal((6, 3))
    for kind, ufunc in (("add", np.add), ("mul", np.multiply), ("min", np.minimum),
                        ("max", np.maximum)):
        expected = x.copy()
        ufunc.at(expected, rows, u)
        np.testing.assert_allclose(SCATTERS[kind](x, rows[:, None], u, (0,)), expected,
                                   rtol=1e-15)


def test_duplicate_indices_last_write_wins_for_set_and_accumulate_for_add():
    x = np.zeros(3)
    idx = np.array([[0], [2], [0]])
    np.testing.assert_array_equal(lax.scatter(x, idx, np.array([1., 2., 3.]), (0,)), [3, 0, 2])
    np.testing.assert_array_equal(lax.scatter_add(x, idx, np.array([1., 2., 3.]), (0,)),
                                  [4, 0, 2])
    np.testing.assert_array_equal(fnp.at(x)[[0, 0, 1]].set([1., 2., 3.]), [2, 3, 0])
    np.testing.assert_array_equal(fnp.at(x)[[0, 0, 1]].add([1., 2., 3.]), [3, 3, 0])
    np.testing.assert_array_equal(x, 0)          # never mutated


def test_gather_with_no_axes_broadcasts_the_operand():
    x = np.arange(3.)
    np.testing.assert_array_equal(lax.gather(x, np.zeros((2, 0), np.int64), ()), [x, x])


# ---------------------------------------------------------------------------
# the primitives: derivatives and batching
# ---------------------------------------------------------------------------

@settings(max_examples=12)
@given(case=index_cases(), data=st.data())
def test_gather_gradients_agree_with_finite_differences(case, data):
    shape, axes, idx = case
    x = _values(data, shape, "x")
    check_grads(lambda x: lax.gather(x, idx, axes), (x,), order=2)


@settings(max_examples=10)
@pytest.mark.parametrize("kind", SCATTERS)
@given(case=index_cases(), data=st.data())
def test_scatter_gradients_agree_with_finite_differences(kind, case, data):
    shape, axes, idx = case
    x = _values(data, shape, "x")
    u = _values(data, _update_shape(shape, axes, idx), "updates", zeros=kind == "mul")
    check_grads(lambda x, u: SCATTERS[kind](x, idx, u, axes), (x, u), order=2)


def test_scatter_set_gradient_goes_only_to_the_update_that_lands():
    w = np.array([10., 20., 30.])

    def f(x, u):
        return fnp.sum(w * lax.scatter(x, np.array([[0], [0], [2]]), u, (0,)))
    gx, gu = fg.grad(f, argnums=(0, 1))(np.ones(3), np.array([1., 2., 3.]))
    np.testing.assert_array_equal(gx, [0, 20, 0])
    np.testing.assert_array_equal(gu, [0, 10, 30])


def test_scatter_max_and_min_split_ties_evenly_like_max():
    idx = np.array([[0], [0], [1]])
    gx, gu = fg.grad(lambda x, u: fnp.sum(lax.scatter_max(x, idx, u, (0,))), argnums=(0, 1))(
        np.array([1., 5.]), np.array([1., 1., 2.]))
    np.testing.assert_allclose(gx, [1 / 3, 1])
    np.testing.assert_allclose(gu, [1 / 3, 1 / 3, 0])
    gx, gu = fg.grad(lambda x, u: fnp.sum(lax.scatter_min(x, idx, u, (0,))), argnums=(0, 1))(
        np.array([1., 5.]), np.array([1., 0., 2.]))
    np.testing.assert_allclose(gx, [0, 0])
    np.testing.assert_allclose(gu, [0, 1, 1])
    # lax.max splits 0.5 / 0.5: a single tied update agrees with it
    g_scatter = fg.grad(lambda x: fnp.sum(lax.scatter_max(x, np.array([[0]]), x, (0,))))(
        np.array([2.]))
    g_max = fg.grad(lambda x: fnp.sum(lax.max(x, x)))(np.array([2.]))
    np.testing.assert_allclose(g_scatter, g_max)


def test_scatter_mul_gradient_with_zero_updates_is_finite_and_exact():
    idx = np.array([[0], [0], [0], [1]])

    def f(u):
        return fnp.sum(lax.scatter_mul(np.array([2., 3.]), idx, u, (0,)))
    g = fg.grad(f)(np.array([0., 4., 5., 0.]))
    # d/du0 of 2*u0*u1*u2 = 2*4*5; the others hold the zero u0; d/du3 3*u3 = 3
    np.testing.assert_array_equal(g, [40., 0., 0., 3.])
    g = fg.grad(f)(np.array([0., 0., 5., 1.]))
    np.testing.assert_array_equal(g, [0., 0., 0., 3.])


def _batched(data, arrays, label):
    """Random in_axes (or None) for the operands, at least one batched."""
    axes = [data.draw(st.one_of(st.none(), st.integers(0, np.ndim(a))), label=f"{label} {i}")
            for i, a in enumerate(arrays)]
    if all(a is None for a in axes):
        axes[0] = 0
    return axes


@settings(max_examples=25)
@pytest.mark.parametrize("kind", ["gather"] + list(SCATTERS))
@given(case=index_cases(), data=st.data())
def test_vmap_agrees_with_a_loop(kind, case, data):
    shape, axes, idx = case
    n = data.draw(st.integers(1, 3), label="batch size")
    xs = [_values(data, shape, f"x{b}") for b in range(n)]
    idxs = [np.stack([data.draw(hnp.arrays(np.int64, idx.shape[:-1], elements=st.integers(
        -shape[a], shape[a] - 1)), label=f"idx{b} col{j}") for j, a in enumerate(axes)], -1)
        if axes else idx for b in range(n)]
    if kind == "gather":
        def op(x, i):
            return lax.gather(x, i, axes)
        per_example = [(x, i) for x, i in zip(xs, idxs)]
    else:
        us = [_values(data, _update_shape(shape, axes, idx), f"u{b}") for b in range(n)]

        def op(x, i, u):
            return SCATTERS[kind](x, i, u, axes)
        per_example = list(zip(xs, idxs, us))
    in_axes = _batched(data, per_example[0], "in_axis")
    stacked = [np.stack([ex[j] for ex in per_example], axis=ax) if ax is not None
               else per_example[0][j] for j, ax in enumerate(in_axes)]
    loop = [op(*[ex[j] if ax is not None else per_example[0][j] for j, ax in enumerate(in_axes)])
            for ex in per_example]
    np.testing.assert_array_equal(fg.vmap(op, in_axes=tuple(in_axes))(*stacked), np.stack(loop))


# ---------------------------------------------------------------------------
# out-of-bounds indices
# ---------------------------------------------------------------------------

def test_out_of_bounds_concrete_indices_raise_index_error_at_trace_time():
    x = np.arange(4.)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
        fnp.getitem(x, [0, 4])
    with pytest.raises(IndexError, match="out of bounds"):
        fg.make_jaxpr(lambda x: x[np.array([-5])])(x)
    with pytest.raises(IndexError, match="out of bounds"):
        fg.make_jaxpr(lambda x: x.at[[1, 7]].add(1.0))(x)
    with pytest.raises(IndexError, match="out of bounds"):
        fg.make_jaxpr(lambda x: x.at[9].set(1.0))(x)
    with pytest.raises(IndexError, match="out of bounds"):
        lax.scatter_add(x, np.array([[4]]), np.ones(1), (0,))


def test_out_of_bounds_traced_indices_raise_index_error_when_run():
    x = np.arange(4.)
    with pytest.raises(IndexError, match="out of bounds"):
        fg.jit(lambda x, i: x[i])(x, np.array([1, 4]))
    with pytest.raises(IndexError, match="out of bounds"):
        fg.jit(lambda x, i: x.at[i].set(0.0))(x, np.array([-5]))
    with pytest.raises(IndexError, match="out of bounds"):
        fg.grad(lambda x, i: x[i].sum())(x, np.array([2, 4]))
    with pytest.raises(IndexError, match="out of bounds"):
        fg.vmap(lambda x, i: x[i])(np.ones((2, 4)), np.array([0, 4]))
    # in bounds, negative indices wrap like NumPy
    np.testing.assert_array_equal(fg.jit(lambda x, i: x[i])(x, np.array([-1, -4])), [3, 0])


# ---------------------------------------------------------------------------
# NumPy advanced indexing
# ---------------------------------------------------------------------------

@st.composite
def numpy_indices(draw, allow_mask=True):
    """(shape, index tuple) mixing int arrays, ints, slices, None, Ellipsis, masks."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), label="shape")
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), label="batch")
    nd = len(shape)
    use_ellipsis = draw(st.booleans(), label="ellipsis")
    n_head = draw(st.integers(0 if use_ellipsis else 1, nd), label="head dims")
    n_tail = draw(st.integers(0, nd - n_head), label="tail dims") if use_ellipsis else 0
    state = {"masks": 0}

    def item(dim, force_array=False):
        kinds = ["array", "int", "slice", "none"] + (["mask"] if allow_mask else [])
        kind = "array" if force_array else draw(st.sampled_from(kinds), label="kind")
        size = shape[dim]
        if kind == "array":
            k = draw(st.integers(0, len(batch)), label="array ndim")
            sub = tuple(1 if draw(st.booleans(), label="stretch") else b for b in batch[k:])
            return draw(hnp.arrays(np.int64, sub, elements=st.integers(-size, size - 1)),
                        label="int array")
        if kind == "int":
            return draw(st.integers(-size, size - 1), label="int")
        if kind == "slice":
            bound = st.one_of(st.none(), st.integers(-size - 1, size + 1))
            step = draw(st.one_of(st.none(), st.sampled_from([1, 2, -1, -2])), label="step")
            return slice(draw(bound, label="start"), draw(bound, label="stop"), step)
        if kind == "mask" and state["masks"] == 0:
            state["masks"] += 1
            return draw(hnp.arrays(np.bool_, (size,)), label="mask")
        return None

    def items_for(dims, force_first):
        out = []
        for j, dim in enumerate(dims):
            it = item(dim, force_array=force_first and j == 0)
            while it is None:               # a None consumes no dimension: keep it, draw again
                out.append(None)
                it = item(dim)
            out.append(it)
        return out
    head_dims = list(range(n_head))
    tail_dims = list(range(nd - n_tail, nd))
    force_head = bool(head_dims) and draw(st.booleans(), label="array first")
    head = items_for(head_dims, force_head)
    tail = items_for(tail_dims, not force_head and bool(tail_dims))
    if not any(isinstance(i, np.ndarray) for i in head + tail):
        # no advanced index was drawn: make the first indexed dimension one
        head = items_for(head_dims, True) if head_dims else head
    items = head + ([Ellipsis] if use_ellipsis else []) + tail
    if not any(isinstance(i, np.ndarray) for i in items):     # the index was just `...`
        items = [np.array([0, -1]), Ellipsis]
    return shape, tuple(items)


@given(case=numpy_indices(), data=st.data())
def test_advanced_getitem_agrees_with_numpy(case, data):
    shape, idx = case
    x = _values(data, shape, "x")
    expected = x[idx]
    got = fnp.getitem(x, idx)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # traced operand, concrete indices
    np.testing.assert_array_equal(traced(lambda x: x[idx])(x), expected)
    # traced integer arrays
    arrays = [i for i in idx if isinstance(i, np.ndarray) and i.dtype != np.bool_]

    def with_traced(x, *traced):
        it = iter(traced)
        return x[tuple(next(it) if isinstance(i, np.ndarray) and i.dtype != np.bool_ else i
                       for i in idx)]
    np.testing.assert_array_equal(traced(with_traced)(x, *arrays), expected)


@settings(max_examples=15)
@given(case=numpy_indices(), data=st.data())
def test_advanced_getitem_gradient_is_scatter_add(case, data):
    shape, idx = case
    x = _values(data, shape, "x")
    ct = _values(data, x[idx].shape, "ct")
    expected = np.zeros_like(x)
    np.add.at(expected, idx, ct)
    _, pullback = fg.vjp(lambda x: x[idx], x)
    np.testing.assert_allclose(pullback(ct)[0], expected, rtol=1e-14)
    check_grads(lambda x: x[idx], (x,), order=1)


@pytest.mark.parametrize("kind", ["set", "add", "multiply", "min", "max"])
@given(case=numpy_indices(allow_mask=False), data=st.data())
def test_at_updates_agree_with_numpy(kind, case, data):
    shape, idx = case
    x = _values(data, shape, "x")
    target = x[idx].shape
    v_shape = target[data.draw(st.integers(0, len(target)), label="values ndim cut"):]
    v = _values(data, v_shape, "values")
    expected = x.copy()
    if kind == "set":
        expected[idx] = v
    else:
        ufunc = {"add": np.add, "multiply": np.multiply, "min": np.minimum,
                 "max": np.maximum}[kind]
        ufunc.at(expected, idx, np.broadcast_to(v, target))
    x_before = x.copy()
    np.testing.assert_allclose(getattr(fnp.at(x)[idx], kind)(v), expected, rtol=1e-15)
    np.testing.assert_array_equal(x, x_before)                 # not mutated
    got = traced(lambda x, v: getattr(x.at[idx], kind)(v))(x, v)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    # the integer arrays traced too
    arrays = [i for i in idx if isinstance(i, np.ndarray)]

    def with_traced(x, v, *traced_arrays):
        it = iter(traced_arrays)
        index = tuple(next(it) if isinstance(i, np.ndarray) else i for i in idx)
        return getattr(x.at[index], kind)(v)
    np.testing.assert_allclose(traced(with_traced)(x, v, *arrays), expected, rtol=1e-15)


@settings(max_examples=10)
@given(case=numpy_indices(allow_mask=False), data=st.data())
def test_at_set_and_add_gradients_agree_with_finite_differences(case, data):
    shape, idx = case
    x = _values(data, shape, "x")
    v = _values(data, x[idx].shape, "values")
    check_grads(lambda x, v: fnp.at(x)[idx].set(v * v), (x, v), order=1)
    check_grads(lambda x, v: fnp.at(x)[idx].add(fnp.sin(v)) * x, (x, v), order=1)


def test_boolean_mask_indexing_and_its_errors():
    x = np.arange(6.).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    np.testing.assert_array_equal(traced(lambda x: x[mask])(x), x[mask])
    np.testing.assert_array_equal(fg.grad(lambda x: x[mask].sum())(x), mask.astype(float))
    with pytest.raises(IndexError, match="boolean index did not match"):
        fnp.getitem(x, np.array([True, False, True]))
    with pytest.raises(IndexError, match="fungrad.numpy.where"):
        fg.grad(lambda x: x[x > 2].sum())(x)


def test_traced_mask_assignment_is_a_select():
    def relu_in_place(x):
        y = x * 1.0
        y[y < 0] = 0.0
        return y
    x = np.array([-1., 2., -3., 4.])
    np.testing.assert_array_equal(traced(relu_in_place)(x), [0, 2, 0, 4])
    np.testing.assert_array_equal(fg.grad(lambda x: relu_in_place(x).sum())(x), [0, 1, 0, 1])
    rows = np.array([[1., -2.], [-3., 4.]])
    np.testing.assert_array_equal(
        traced(lambda a: a.at[a[:, 0] > 0].add(np.array([10., 20.])))(rows),
        [[11., 18.], [-3., 4.]])
    with pytest.raises(IndexError, match="traced boolean mask"):
        fg.jit(lambda a: a.at[a > 0].set(np.array([1., 2.])))(np.ones(2))


def test_index_errors_and_bad_index_types():
    x = np.ones((2, 3))
    with pytest.raises(IndexError, match="too many indices"):
        fnp.getitem(x, (0, [0], 1))
    with pytest.raises(IndexError, match="could not be broadcast"):
        fnp.getitem(x, ([0, 1], [0, 1, 2]))
    with pytest.raises(IndexError, match="valid indices"):
        fnp.getitem(x, np.array([0.5]))
    with pytest.raises(NotImplementedError, match="mode='clip'"):
        fnp.at(x)[[0]].get(mode="clip")


# ---------------------------------------------------------------------------
# item assignment on traced arrays: the seed's k/x exercise
# ---------------------------------------------------------------------------

def k(x):
    out = fnp.zeros(2)
    out[0] = x[0] ** 2 + 3 * x[1]
    out[1] = x[1] ** 2 + 2 * x[0]
    return out


K_JACOBIAN = np.array([[4., 3.], [2., 6.]])


@pytest.mark.parametrize("transform", [
    fg.jacobian, fg.jacrev, fg.jacfwd,
    lambda f: fg.jit(fg.jacrev(f)), lambda f: fg.jit(fg.jacfwd(f)),
    lambda f: fg.jacrev(fg.jit(f)), lambda f: fg.jacfwd(fg.jit(f)),
], ids=["jacobian", "jacrev", "jacfwd", "jit(jacrev)", "jit(jacfwd)", "jacrev(jit)",
        "jacfwd(jit)"])
def test_seed_k_jacobian_with_item_assignment(transform):
    np.testing.assert_array_equal(transform(k)(np.array([2., 3.])), K_JACOBIAN)


def test_seed_k_under_vmap_grad_and_hessian():
    xs = np.array([[2., 3.], [1., -1.], [0., 5.]])
    np.testing.assert_array_equal(fg.vmap(k)(xs), np.stack([k(x) for x in xs]))
    np.testing.assert_array_equal(fg.vmap(fg.jacrev(k))(xs),
                                  np.stack([fg.jacrev(k)(x) for x in xs]))
    np.testing.assert_array_equal(fg.grad(lambda x: k(x)[1])(np.array([2., 3.])), [2., 6.])
    np.testing.assert_array_equal(fg.hessian(lambda x: k(x)[0])(np.array([2., 3.])),
                                  [[2., 0.], [0., 0.]])
    np.testing.assert_array_equal(k(np.array([2., 3.])), [13., 13.])   # plain NumPy too


def test_augmented_assignment_and_last_write_wins():
    def f(x, y):
        out = fnp.zeros(4)
        out[1:] += y
        out[::2] *= x[:2]
        out[[0, 0, 3]] = x[1:]          # duplicates: the last value lands
        out[-1] -= 1.0
        return out

    def f_numpy(x, y):
        out = np.zeros(4)
        out[1:] += y
        out[::2] *= x[:2]
        out[[0, 0, 3]] = x[1:]
        out[-1] -= 1.0
        return out
    x, y = np.array([2., 3., 5., 7.]), np.array([1., 2., 3.])
    np.testing.assert_array_equal(fg.jit(f)(x, y), f_numpy(x, y))
    check_grads(f, (x, y), order=2)
    # x[[0, 0]] += 1 adds once in NumPy (buffered), and so here
    def g(x):
        x = x * 1.0
        x[[0, 0]] += 1.0
        return x
    np.testing.assert_array_equal(fg.jit(g)(np.zeros(2)), [1., 0.])


def test_assignment_into_a_view_raises_naming_the_line():
    def f(a):
        v = a[1:]
        line = inspect.currentframe().f_lineno + 1
        v[0] = 5.0
        return v.sum(), line
    with pytest.raises(TypeError, match=r"\.at\[idx\]\.set") as info:
        fg.grad(lambda a: f(a)[0])(np.arange(4.))
    line = inspect.getsourcelines(f)[1] + 3
    assert f"test_indexing.py:{line}" in str(info.value)
    assert "view (x[1:])" in str(info.value)

    def g(a):
        b = fnp.ones((2, 3)) * a
        r = b.reshape(3, 2)
        r[0, 0] = 1.0
        return r
    with pytest.raises(TypeError, match="view"):
        fg.jit(g)(2.0)
    with pytest.raises(TypeError, match="view"):
        fg.jit(lambda a: (lambda t: t.__setitem__(0, 1.0))(a.T))(np.ones((2, 2)))


def test_assignment_into_a_view_of_a_dead_array_is_fine():
    def f(x):
        out = fnp.zeros(6).reshape(2, 3)     # the base is a temporary: nothing aliases
        out[1, :] = x
        return out
    np.testing.assert_array_equal(traced(f)(np.arange(3.)), [[0, 0, 0], [0, 1, 2]])


def test_assignment_into_a_base_updates_its_views_like_numpy():
    def f(a, numpy_like):
        b = a * 1.0
        v = b[:3]
        w = v[::-1]
        b[1] = 100.0
        b[2] += 1.0
        return v * w

    a = np.arange(5.)
    np.testing.assert_array_equal(traced(lambda a: f(a, fnp))(a), f(a, np))
    g = fg.grad(lambda a: f(a, fnp).sum())(a)
    np.testing.assert_allclose(g, [2 * (a[2] + 1), 0, 2 * a[0], 0, 0])


def test_copies_do_not_alias():
    def f(a):
        b = a.copy()
        c = a.astype(a.dtype)
        d = +a
        b[0] = 1.0
        c[1] = 2.0
        d[2] = 3.0
        return a + b + c + d
    np.testing.assert_array_equal(traced(f)(np.zeros(3)), [1., 2., 3.])


def test_assignment_into_an_outer_value_raises():
    def outer(x):
        def inner(y):
            x[0] = y
            return x.sum()
        return fg.grad(inner)(1.0)
    with pytest.raises(TypeError, match="another"):
        fg.grad(outer)(np.ones(3))


def test_at_on_tracers_returns_new_arrays():
    def f(x):
        y = x.at[0].set(10.0)
        z = x.at[[1, 1]].add(1.0)
        return x, y, z, x.at[1:].get(), x.at[0].multiply(3.0), x.at[0].divide(2.0), \
            x.at[2].min(-1.0), x.at[2].max(9.0), x.at[0].subtract(1.0)
    out = fg.jit(f)(np.array([1., 2., 3.]))
    expected = [[1, 2, 3], [10, 2, 3], [1, 4, 3], [2, 3], [3, 2, 3], [0.5, 2, 3], [1, 2, -1],
                [1, 2, 9], [0, 2, 3]]
    for o, e in zip(out, expected, strict=True):
        np.testing.assert_array_equal(o, e)


def test_integer_arrays_and_dtype_casts():
    x = np.arange(5)
    np.testing.assert_array_equal(traced(lambda x: x.at[[0, 4]].add(2.7))(x), [2, 1, 2, 3, 6])
    np.testing.assert_array_equal(fnp.at(x)[1:3].max(np.array([0, 9])), [0, 1, 9, 3, 4])


def test_traced_scalar_indices_in_loops():
    x = np.array([1., 2., 3., 4.])

    def dot_reversed(x):
        return lax.fori_loop(0, 4, lambda i, acc: acc + x[i] * x[3 - i], 0.0)

    def squares(x):
        def body(i, out):
            out[i] = x[i] ** 2
            return out
        return lax.fori_loop(0, 4, body, fnp.zeros(4))
    np.testing.assert_array_equal(fg.grad(dot_reversed)(x), 2 * x[::-1])
    np.testing.assert_array_equal(fg.jit(fg.grad(dot_reversed))(x), 2 * x[::-1])
    np.testing.assert_array_equal(fg.jacrev(squares)(x), np.diag(2 * x))
    np.testing.assert_array_equal(fg.jacfwd(squares)(x), np.diag(2 * x))


def test_cross_entropy_style_row_picking():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 4))
    labels = np.array([3, 0, 0, 2, 1])

    def loss(logits, labels):
        shifted = logits - fnp.max(logits, axis=1, keepdims=True)
        logp = shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=1, keepdims=True))
        return -fnp.mean(logp[fnp.arange(5), labels])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = (p - np.eye(4)[labels]) / 5
    np.testing.assert_allclose(fg.grad(loss)(logits, labels), expected, rtol=1e-12)
    np.testing.assert_allclose(traced(fg.grad(loss))(logits, labels), expected, rtol=1e-12)
    per_example = fg.vmap(fg.grad(lambda row, y: loss(fnp.broadcast_to(row, (5, 4)),
                                                       fnp.broadcast_to(y, (5,)))))(
        logits, labels)
    np.testing.assert_allclose(per_example, (p - np.eye(4)[labels]), rtol=1e-12)


def test_take_and_take_along_axis_agree_with_numpy():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4, 5))
    i = rng.integers(-4, 4, size=(3, 2, 1))
    np.testing.assert_array_equal(fnp.take_along_axis(a, i, 1), np.take_along_axis(a, i, 1))
    np.testing.assert_array_equal(traced(lambda a, i: fnp.take_along_axis(a, i, 1))(a, i),
                                  np.take_along_axis(a, i, 1))
    i0 = rng.integers(0, 3, size=(1, 4, 5))
    np.testing.assert_array_equal(fnp.take_along_axis(a, i0, 0), np.take_along_axis(a, i0, 0))
    np.testing.assert_array_equal(fnp.take(a, [1, -1], axis=2), np.take(a, [1, -1], axis=2))
    np.testing.assert_array_equal(traced(lambda a: a.take(np.array([[1, 7]])))(a),
                                  np.take(a, [[1, 7]]))
    with pytest.raises(IndexError):
        fnp.take(a, [5], axis=1)


@st.composite
def basic_slices(draw, shape, label):
    return tuple(slice(draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)), label=f"{label} lo"),
                       draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)), label=f"{label} hi"),
                       draw(st.sampled_from([None, 1, 2, -1]), label=f"{label} step"))
                 for n in shape)


@settings(max_examples=30)
@given(case=numpy_indices(allow_mask=False), augmented=st.booleans(), data=st.data())
def test_assignment_updates_live_views_like_numpy(case, augmented, data):
    shape, idx = case
    x = _values(data, shape, "x")
    v = _values(data, x[idx].shape, "values")
    s1 = data.draw(basic_slices(shape, "view"), label="view")
    s2 = data.draw(basic_slices(x[s1].shape, "view of view"), label="view of view")

    def program(x, v):
        a = x * 1.0
        v1 = a[s1]
        v2 = v1[s2]
        if augmented:
            a[idx] += v
        else:
            a[idx] = v
        return a * 1.0, v1 * 1.0, v2 * 1.0
    for got, expected in zip(traced(program)(x, v), program(x, v), strict=True):
        np.testing.assert_array_equal(got, expected)
