"""lax.conv_general_dilated, lax.conv and lax.reduce_window: values against a direct
NumPy loop (hypothesis over strides, padding, dilations, groups, layouts), derivatives
against finite differences, jit against the interpreter, vmap against a loop."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.testing import check_grads


def naive_conv(x, w, strides, pads, lhs_dil, rhs_dil, groups):
    """Direct definition: x (N, C, *sp), w (O, I, *win); output (N, O, *out)."""
    n, c, *sp = x.shape
    o, i, *win = w.shape
    nd = len(sp)
    dil_shape = [(s - 1) * d + 1 for s, d in zip(sp, lhs_dil)]
    xd = np.zeros((n, c, *dil_shape))
    xd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in lhs_dil)] = x
    padded = [d + lo + hi for d, (lo, hi) in zip(dil_shape, pads)]
    xp = np.zeros((n, c, *padded))
    # negative pads crop
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for d, (lo, hi) in zip(dil_shape, pads):
        src.append(slice(max(0, -lo), d - max(0, -hi)))
        dst.append(slice(max(0, lo), max(0, lo) + d - max(0, -lo) - max(0, -hi)))
    xp[tuple(dst)] = xd[tuple(src)]
    eff = [(k - 1) * d + 1 for k, d in zip(win, rhs_dil)]
    out_sp = [max(0, (p - e) // s + 1) for p, e, s in zip(padded, eff, strides)]
    out = np.zeros((n, o, *out_sp))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for pos in itertools.product(*[range(m) for m in out_sp]):
            sl = tuple(slice(p * s, p * s + e, d) for p, s, e, d in zip(pos, strides, eff,
                                                                            rhs_dil))
            patch = xp[(slice(None), slice(g * i, (g + 1) * i)) + sl]
            out[(slice(None), oc) + pos] = np.sum(patch * w[oc], axis=tuple(range(1, nd + 2)))
    return out


@st.composite
def conv_cases(draw):
    nd = draw(st.integers(1, 2), label="spatial dims")
    groups = draw(st.sampled_from([1, 2]), label="groups")
    i = draw(st.integers(1, 2), label="in per group")
    o = groups * draw(st.integers(1, 2), label="out per group")
    win = [draw(st.integers(1, 3)) for _ in range(nd)]
    sp = [draw(st.integers(1, 6)) for _ in range(nd)]
    strides = [draw(st.integers(1, 2)) for _ in range(nd)]
    lhs_dil = [draw(st.integers(1, 2)) for _ in range(nd)]
    rhs_dil = [draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [(draw(st.integers(-1, 2)), draw(st.integers(-1, 2))) for _ in range(nd)]
    # a padded size below 0 is an error (as in XLA); 0 gives an empty output
    assume(all((s - 1) * d + 1 + lo + hi >= 0 for s, d, (lo, hi) in zip(sp, lhs_dil, pads)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16), label="seed"))
    x = rng.normal(size=(2, groups * i, *sp))
    w = rng.normal(size=(o, i, *win))
    return x, w, strides, pads, lhs_dil, rhs_dil, groups


@settings(max_examples=40)
@given(case=conv_cases())
def test_conv_general_dilated_matches_the_definition(case):
    x, w, strides, pads, lhs_dil, rhs_dil, groups = case
    got = lax.conv_general_dilated(x, w, strides, pads, lhs_dil, rhs_dil,
                                   feature_group_count=groups)
    want = naive_conv(x, w, strides, pads, lhs_dil, rhs_dil, groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=3)
@given(case=conv_cases())
def test_conv_gradients_match_finite_differences(case):
    x, w, strides, pads, lhs_dil, rhs_dil, groups = case

    def f(x, w):
        return fnp.sum(fnp.sin(lax.conv_general_dilated(x, w, strides, pads, lhs_dil, rhs_dil,
                                                        feature_group_count=groups)))
    check_grads(f, (x, w), order=2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("padding", ["SAME", "VALID", "SAME_LOWER"])
def test_string_padding_and_nhwc_layout(padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 5))
    w = rng.normal(size=(4, 3, 3, 2))
    strides = (2, 1)
    nchw = lax.conv_general_dilated(x, w, strides, padding)
    if padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        pads = lax.padtype_to_pads((7, 5), (3, 2), strides, padding)
    np.testing.assert_allclose(nchw, naive_conv(x, w, strides, pads, (1, 1), (1, 1), 1),
                               rtol=1e-12)
    if padding == "SAME":
        assert nchw.shape[2:] == (4, 5) and pads == [(1, 1), (0, 1)]
    if padding == "SAME_LOWER":
        assert pads == [(1, 1), (1, 0)]
    nhwc = lax.conv_general_dilated(np.transpose(x, (0, 2, 3, 1)), np.transpose(w, (2, 3, 1, 0)),
                                    strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(nhwc, np.transpose(nchw, (0, 2, 3, 1)), rtol=1e-12)
    np.testing.assert_allclose(lax.conv(x, w, strides, padding), nchw, rtol=1e-12)


@pytest.mark.kernels
def test_conv_jit_vmap_and_float32():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 2, 6, 6))
    w = rng.normal(size=(3, 2, 3, 3))

    def loss(w):
        return fnp.sum(fnp.tanh(lax.conv(x, w, (1, 1), "SAME")))
    np.testing.assert_allclose(fg.jit(loss)(w), loss(w), rtol=1e-13)
    np.testing.assert_allclose(fg.jit(fg.grad(loss))(w), fg.grad(loss)(w), rtol=1e-12)
    xs = rng.normal(size=(4, 1, 2, 5, 5))
    batched = fg.vmap(lambda xx: lax.conv(xx, w, (1, 1), "VALID"))(xs)
    np.testing.assert_allclose(batched, np.stack([lax.conv(xx, w, (1, 1), "VALID") for xx in xs]),
                               rtol=1e-13)
    ws = rng.normal(size=(2, 3, 2, 3, 3))
    batched_w = fg.vmap(lambda ww: lax.conv(x, ww, (1, 1), "VALID"))(ws)
    np.testing.assert_allclose(batched_w, np.stack([lax.conv(x, ww, (1, 1), "VALID")
                                                    for ww in ws]), rtol=1e-13)
    out32 = lax.conv(x.astype(np.float32), w.astype(np.float32), (1, 1), "SAME")
    assert out32.dtype == np.float32


def test_conv_errors_name_the_problem():
    x, w = np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match="feature_group_count"):
        lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=3)
    with pytest.raises(ValueError, match="padding"):
        lax.conv_general_dilated(x, np.ones((4, 2, 3, 3)), (1, 1), "HALF",
                                 feature_group_count=2)
    with pytest.raises(TypeError, match="dtypes"):
        lax.conv(x.astype(np.float32), w[:, :4 // 2], (1, 1), "SAME")


def naive_reduce_window(x, init, op, window, strides, pads):
    xp = np.pad(x, pads, constant_values=init)
    out_shape = [(p - k) // s + 1 for p, k, s in zip(xp.shape, window, strides)]
    out = np.full(out_shape, init, dtype=x.dtype)
    for pos in itertools.product(*[range(m) for m in out_shape]):
        sl = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, window))
        out[pos] = op.reduce(np.concatenate([[init], xp[sl].ravel()]))
    return out


@pytest.mark.parametrize("op,np_op,init", [(lax.max, np.maximum, -np.inf),
                                            (lax.add, np.add, 0.0), (lax.min, np.minimum, np.inf),
                                            (lax.add, np.add, 1.5)])
@settings(max_examples=15)
@given(data=st.data())
def test_reduce_window_matches_the_definition(op, np_op, init, data):
    nd = data.draw(st.integers(1, 3), label="ndim")
    shape = [data.draw(st.integers(1, 5)) for _ in range(nd)]
    window = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    strides = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(nd)]
    if any(s + lo + hi < k for s, (lo, hi), k in zip(shape, pads, window)):
        return
    x = np.random.default_rng(data.draw(st.integers(0, 999))).normal(size=shape)
    got = lax.reduce_window(x, init, op, window, strides, pads)
    np.testing.assert_allclose(got, naive_reduce_window(x, init, np_op, window, strides, pads),
                               rtol=1e-12)


def test_reduce_window_gradients_pooling():
    x = np.random.default_rng(3).normal(size=(2, 6, 5))

    def max_pool(x):
        return fnp.sum(lax.reduce_window(x, -np.inf, lax.max, (1, 2, 2), (1, 2, 2), "SAME") ** 2)

    def avg_pool(x):
        return fnp.sum(fnp.sin(lax.reduce_window(x, 0.0, lax.add, (1, 3, 3), (1, 1, 1),
                                                 "SAME") / 9.0))
    check_grads(max_pool, (x,), order=1)
    check_grads(avg_pool, (x,), order=2)
    g = fg.grad(max_pool)(x)
    # each 2x2 window routes its cotangent to its maximum only
    assert np.count_nonzero(g) == 2 * 3 * 3
    np.testing.assert_allclose(fg.jit(fg.grad(avg_pool))(x), fg.grad(avg_pool)(x), rtol=1e-12)


def test_reduce_window_base_and_window_dilation():
    x = np.arange(5.0)
    # base dilation 2: [0, i, 1, i, 2, i, 3, i, 4] with i = init = 0
    out = lax.reduce_window(x, 0.0, lax.add, (3,), (1,), "VALID", base_dilation=(2,))
    np.testing.assert_allclose(out, [1, 1, 3, 2, 5, 3, 7])
    out = lax.reduce_window(x, 0.0, lax.add, (2,), (1,), "VALID", window_dilation=(2,))
    np.testing.assert_allclose(out, [2, 4, 6])
