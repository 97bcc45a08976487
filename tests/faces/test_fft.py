"""fungrad.numpy.fft against numpy.fft (values over shapes, n / s, axes and norms),
round trips, and derivatives against finite differences in both real directions."""
import warnings

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import lax
from fungrad.testing import check_grads

NORMS = st.sampled_from([None, "backward", "ortho", "forward"])
ONE_D = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
N_D = ["fftn", "ifftn", "rfftn", "irfftn", "fft2", "ifft2", "rfft2", "irfft2"]
REAL_INPUT = {"rfft", "ihfft", "rfftn", "rfft2"}


def draw_input(data, name, shape):
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)), label="x re")
    if name in REAL_INPUT:
        return x
    y = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)), label="x im")
    return x + 1j * y


@settings(max_examples=8)
@pytest.mark.parametrize("name", ONE_D)
@given(data=st.data())
def test_one_dimensional_transforms_match_numpy_and_differentiate(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5),
                      label="shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    n = data.draw(st.none() | st.integers(2, 7), label="n")
    norm = data.draw(NORMS, label="norm")
    x = draw_input(data, name, shape)
    f = lambda x: getattr(fnp.fft, name)(x, n=n, axis=axis, norm=norm)  # noqa: E731
    expected = getattr(np.fft, name)(x, n=n, axis=axis, norm=norm)
    out = f(x)
    assert np.asarray(out).dtype == expected.dtype and np.shape(out) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fg.jit(f)(x), expected, rtol=1e-10, atol=1e-10)
    check_grads(f, (x,), order=1, modes=("fwd", "rev"))
    if np.iscomplexobj(x):   # the imaginary direction too
        check_grads(lambda y: f(x.real + 1j * y), (x.imag,), order=1)


@settings(max_examples=6)
@pytest.mark.parametrize("name", N_D)
@given(data=st.data())
def test_n_dimensional_transforms_match_numpy_and_differentiate(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=4),
                      label="shape")
    nd = len(shape)
    if name.endswith("2"):
        axes = data.draw(st.sampled_from([(-2, -1), (0, 1), (1, 0)]), label="axes")
    else:
        axes = data.draw(st.none() | st.permutations(range(nd)).flatmap(
            lambda p: st.integers(1, nd).map(lambda k: tuple(p[:k]))), label="axes")
    k = nd if axes is None else len(axes)
    s = data.draw(st.none() | st.lists(st.integers(2, 5), min_size=k, max_size=k), label="s")
    norm = data.draw(NORMS, label="norm")
    x = draw_input(data, name, shape)
    kwargs = dict(s=s, norm=norm) if axes is None else dict(s=s, axes=axes, norm=norm)
    f = lambda x: getattr(fnp.fft, name)(x, **kwargs)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = getattr(np.fft, name)(x, **kwargs)
    np.testing.assert_allclose(f(x), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fg.jit(f)(x), expected, rtol=1e-10, atol=1e-10)
    check_grads(f, (x,), order=1, modes=("fwd", "rev"))
    if np.iscomplexobj(x):
        check_grads(lambda y: f(x.real + 1j * y), (x.imag,), order=1)


@settings(max_examples=10)
@given(data=st.data())
def test_round_trips(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
                      label="shape")
    norm = data.draw(NORMS, label="norm")
    z = data.draw(hnp.arrays(np.complex128, shape, elements=st.complex_numbers(
        max_magnitude=3, allow_nan=False, allow_infinity=False)), label="z")
    np.testing.assert_allclose(fnp.fft.ifft(fnp.fft.fft(z, norm=norm), norm=norm), z,
                               atol=1e-12)
    np.testing.assert_allclose(fnp.fft.ifftn(fnp.fft.fftn(z, norm=norm), norm=norm), z,
                               atol=1e-12)
    x = z.real
    n = shape[-1]
    np.testing.assert_allclose(fnp.fft.irfft(fnp.fft.rfft(x, norm=norm), n=n, norm=norm), x,
                               atol=1e-12)
    np.testing.assert_allclose(fnp.fft.irfftn(fnp.fft.rfftn(x, norm=norm), s=shape, norm=norm),
                               x, atol=1e-12)
    np.testing.assert_allclose(fnp.fft.ifftshift(fnp.fft.fftshift(z)), z)


@pytest.mark.parametrize("fft_type, shape, lengths", [
    ("FFT", (3, 4), (4,)), ("FFT", (2, 3, 4), (3, 4)), ("IFFT", (3, 5), (5,)),
    ("RFFT", (3, 4), (4,)), ("RFFT", (3, 5), (3, 5)), ("IRFFT", (3, 3), (4,)),
    ("IRFFT", (3, 3), (5,)), ("IRFFT", (2, 3), (2, 4)),
])
def test_lax_fft_derivatives_to_second_order_and_vmap(fft_type, shape, lengths):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    if fft_type != "RFFT":
        x = x + 1j * rng.normal(size=shape)
    f = lambda x: lax.fft(x, fft_type, lengths)  # noqa: E731
    check_grads(f, (x,), order=2)
    batch = np.stack([x, 2 * x, x[::-1]])
    np.testing.assert_allclose(fg.vmap(f)(batch), np.stack([f(b) for b in batch]), atol=1e-12)
    np.testing.assert_allclose(fg.vmap(f, in_axes=1, out_axes=1)(batch.swapaxes(0, 1)),
                               np.stack([f(b) for b in batch], 1), atol=1e-12)


def test_grad_through_a_spectral_loss_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=16)

    def loss(x):
        spectrum = fnp.fft.rfft(fnp.tanh(x), norm="ortho")
        return fnp.sum(fnp.abs(spectrum[1:5]) ** 2) + fnp.real(fnp.fft.ifft(spectrum)).sum()
    check_grads(loss, (x,), order=2)
    np.testing.assert_allclose(fg.jit(fg.grad(loss))(x), fg.grad(loss)(x), rtol=1e-12)


@pytest.mark.kernels
def test_jit_keeps_the_program_compiled_around_an_fft():
    x = np.linspace(0, 1, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no fallback warning
        f = fg.jit(lambda x: fnp.abs(fnp.fft.fft(fnp.sin(x) * 2)) ** 2)
        np.testing.assert_allclose(f(x), np.abs(np.fft.fft(np.sin(x) * 2)) ** 2, rtol=1e-12)
    assert "objmode" in f.lower(x).as_text()


def test_dtypes_and_frequencies():
    assert fnp.fft.fft(np.ones(4, np.float32)).dtype == np.complex64
    assert fnp.fft.rfft(np.ones(4, np.float32)).dtype == np.complex64
    assert fnp.fft.irfft(np.ones(3, np.complex64)).dtype == np.float32
    assert fnp.fft.fft(np.arange(4)).dtype == np.complex128
    for n in (1, 4, 5):
        np.testing.assert_allclose(fnp.fft.fftfreq(n, 0.1), np.fft.fftfreq(n, 0.1))
        np.testing.assert_allclose(fnp.fft.rfftfreq(n, 0.1), np.fft.rfftfreq(n, 0.1))
    np.testing.assert_allclose(fg.grad(lambda d: fnp.fft.fftfreq(4, d).sum())(0.5),
                               -np.fft.fftfreq(4, 1.0).sum() / 0.25)
    x = np.arange(12.0).reshape(3, 4)
    for axes in (None, 0, (1,), (0, 1)):
        np.testing.assert_array_equal(fnp.fft.fftshift(x, axes), np.fft.fftshift(x, axes))
        np.testing.assert_array_equal(fnp.fft.ifftshift(x, axes), np.fft.ifftshift(x, axes))


def test_errors():
    with pytest.raises(ValueError, match="Invalid norm"):
        fnp.fft.fft(np.ones(3), norm="bogus")
    with pytest.raises(ValueError, match="real input"):
        fnp.fft.rfft(np.ones(3) * 1j)
    with pytest.raises(ValueError, match="invalid number of data points"):
        fnp.fft.fft(np.ones(3), n=0)
    with pytest.raises(np.exceptions.AxisError):
        fnp.fft.fft(np.ones(3), axis=1)
