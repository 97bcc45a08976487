"""`fungrad.random`: JAX's counter-based random numbers (`jax.random`), bit for bit.

Keys are values: a key is a `uint32[2]` array (JAX's raw `PRNGKey`), and every
function is a pure function of its key, written with fungrad primitives, so it
traces, `jit`s and `vmap`s like any other code, and reparameterised samples
(`normal`, `uniform` with traced bounds, `multivariate_normal`, `laplace`, ...)
are differentiable with respect to their parameters.

The generator is Threefry-2x32 (20 rounds) with JAX's current default key
derivation, `jax_threefry_partitionable=True` (the default since JAX 0.5):
`split`, `fold_in` and the random bits hash a 64-bit counter per output element.
So a program ported from JAX draws the same numbers for the same key:

* `bits`, `split`, `fold_in`, `uniform`, `randint`, `permutation`, `choice`
  (without `p`), `bernoulli` give exactly JAX's values;
* `normal`, `truncated_normal`, `exponential`, `laplace`, `logistic`, `gumbel`,
  `cauchy`, `categorical`, `multivariate_normal` are JAX's formulas applied to
  the same uniform bits; they agree with JAX within a few ulps (the transcendental
  functions are NumPy's/SciPy's rather than XLA's);
* `gamma`, `beta`, `dirichlet`, `poisson` use rejection sampling: they follow the
  same distribution as JAX's samplers (checked by moment and Kolmogorov-Smirnov
  tests), not the same stream.

`key(seed)` returns the same raw `uint32[2]` array as `PRNGKey(seed)` (there is no
typed key dtype); `key_data` and `wrap_key_data` are identities.  Like JAX with
`jax_enable_x64` (fungrad's default precision), floats default to float64 and
`bits` to uint64.

    >>> import fungrad.random as fr
    >>> k = fr.PRNGKey(0)
    >>> k1, k2 = fr.split(k)
    >>> x = fr.normal(k1, (3,))
"""
from __future__ import annotations

import builtins
import math
from typing import Sequence

import numpy as np

from . import lax
from . import numpy as fnp
from .errors import FungradTypeError, FungradValueError, format_location, user_location
from .tracing import Tracer, aval_of

__all__ = [
    "PRNGKey", "key", "key_data", "wrap_key_data", "split", "fold_in", "bits", "uniform",
    "normal", "bernoulli", "categorical", "choice", "permutation", "randint",
    "truncated_normal", "gamma", "loggamma", "beta", "dirichlet", "multivariate_normal",
    "laplace", "gumbel", "logistic", "exponential", "poisson", "cauchy", "lognormal",
    "rademacher", "chisquare", "t", "threefry_2x32",
]

_U32 = np.dtype(np.uint32)
_UINT = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16), 32: np.dtype(np.uint32),
         64: np.dtype(np.uint64)}


def _where() -> str:
    return format_location(user_location(3))


def _shape(name: str, shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(_index(s)) for s in shape)
    except TypeError:
        raise FungradTypeError(
            f"random.{name} at {_where()}: shape must be a tuple of ints, got {shape!r}"
        ) from None
    if any(s < 0 for s in shape):
        raise FungradValueError(f"random.{name} at {_where()}: negative size in shape {shape}")
    return shape


def _index(s):
    if isinstance(s, Tracer):
        raise FungradTypeError("a traced value cannot be used as a shape; shapes are static "
                               "(pass them as Python ints, or mark them static in jit)")
    return np.asarray(s).item() if isinstance(s, np.ndarray) else s.__index__()


def _check_key(name: str, key):
    """The key as a uint32[2] array, or an error naming the user's line."""
    if isinstance(key, (list, tuple)):
        key = np.asarray(key, dtype=_U32)
    elif not isinstance(key, Tracer):
        key = np.asarray(key)
    aval = aval_of(key)
    if aval.dtype != _U32 or aval.shape != (2,):
        hint = ("; a batch of keys (from split(key, n)) is used with fungrad.vmap"
                if aval.dtype == _U32 and aval.shape[-1:] == (2,) else
                "; make one with fungrad.random.PRNGKey(seed)")
        raise FungradTypeError(
            f"random.{name} at {_where()}: expected a single key, a uint32 array of shape "
            f"(2,), but got {aval.str_short() if hasattr(aval, 'str_short') else aval}{hint}")
    return key


def _float_dtype(name: str, dtype) -> np.dtype:
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    if dtype.kind != "f":
        raise FungradTypeError(
            f"random.{name} at {_where()}: dtype must be a floating-point dtype, got {dtype}")
    return dtype


# --- Threefry-2x32 -----------------------------------------------------------------

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x, r: int):
    return lax.bitwise_or(lax.shift_left(x, np.uint32(r)),
                          lax.shift_right_logical(x, np.uint32(32 - r)))


def threefry_2x32(k1, k2, x1, x2):
    """The Threefry-2x32 block cipher (20 rounds) of the counters (x1, x2) under the key
    (k1, k2): uint32 operands (0-d keys apply to every element); returns two uint32
    arrays shaped like x1.  The same bits as JAX's `threefry2x32_p`."""
    ks = (k1, k2, lax.bitwise_xor(lax.bitwise_xor(k1, k2), np.uint32(0x1BD11BDA)))
    x = [lax.add(x1, ks[0]), lax.add(x2, ks[1])]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x[0] = lax.add(x[0], x[1])
            x[1] = lax.bitwise_xor(x[0], _rotate_left(x[1], r))
        x[0] = lax.add(x[0], ks[(i + 1) % 3])
        x[1] = lax.add(lax.add(x[1], ks[(i + 2) % 3]), np.uint32(i + 1))
    return x[0], x[1]


def _key_words(key):
    k = fnp.asarray(key)
    return k[0], k[1]


def _counters(shape: tuple):
    """The 64-bit counter of each element in C order, as (high, low) uint32 words."""
    size = math.prod(shape)
    if size > 2 ** 32:
        raise FungradValueError(
            f"random at {_where()}: more than 2**32 values ({size}) in one draw is not "
            "supported; split the key and draw in parts")
    if not shape:
        zero = np.uint32(0)
        return zero, zero
    low = lax.reshape(lax.iota(_U32, (size,)), shape) if len(shape) > 1 else lax.iota(_U32, shape)
    return lax.full(shape, 0, _U32), low


def _hash_counters(key, shape: tuple):
    k1, k2 = _key_words(key)
    high, low = _counters(shape)
    return threefry_2x32(k1, k2, high, low)


def _random_bits(key, bit_width: int, shape: tuple):
    bits1, bits2 = _hash_counters(key, shape)
    if bit_width == 64:
        high = lax.convert_element_type(bits1, np.uint64)
        low = lax.convert_element_type(bits2, np.uint64)
        return lax.bitwise_or(lax.shift_left(high, np.uint64(32)), low)
    mixed = lax.bitwise_xor(bits1, bits2)
    return mixed if bit_width == 32 else lax.convert_element_type(mixed, _UINT[bit_width])


# --- keys --------------------------------------------------------------------------------

def PRNGKey(seed) -> np.ndarray:
    """A key (uint32[2]) from an integer seed: the high and low 32 bits of the seed as
    a 64-bit integer, like `jax.random.PRNGKey` with x64 enabled.

    >>> PRNGKey(42)
    array([ 0, 42], dtype=uint32)
    """
    if isinstance(seed, Tracer):
        dt = aval_of(seed).dtype
        if dt.kind not in "iu" or aval_of(seed).shape != ():
            raise FungradTypeError(
                f"PRNGKey at {_where()}: the seed must be an integer scalar, got "
                f"{aval_of(seed)}")
        nbits = dt.itemsize * 8
        high = lax.convert_element_type(
            lax.shift_right_logical(seed, dt.type(32)) if nbits == 64 else
            lax.full((), 0, dt), _U32)
        low = lax.convert_element_type(seed, _U32)
        return fnp.stack([high, low])
    arr = np.asarray(seed)
    if arr.shape != ():
        raise FungradTypeError(
            f"PRNGKey at {_where()}: the seed must be a scalar, got shape {arr.shape}; "
            "use fungrad.vmap(PRNGKey) for a batch of seeds")
    if arr.dtype.kind not in "iub":
        raise FungradTypeError(
            f"PRNGKey at {_where()}: the seed must be an integer, got {arr.dtype} ({seed!r})")
    value = int(arr)
    if not -2 ** 63 <= value < 2 ** 64:
        raise OverflowError(f"PRNGKey at {_where()}: seed {value} does not fit in 64 bits")
    value %= 2 ** 64
    return np.array([value >> 32, value & 0xFFFFFFFF], dtype=_U32)


def key(seed) -> np.ndarray:
    """`jax.random.key`: in fungrad the same raw uint32[2] key as `PRNGKey(seed)`."""
    return PRNGKey(seed)


def key_data(keys):
    """The uint32 data of keys: keys are raw data already, so this is the identity."""
    return keys


def wrap_key_data(key_bits_array, *, impl=None):
    """Keys from uint32 data (shape (..., 2)); the identity, after a check."""
    if impl not in (None, "threefry2x32"):
        raise FungradValueError(f"wrap_key_data at {_where()}: only impl='threefry2x32' "
                                f"exists in fungrad, got {impl!r}")
    aval = aval_of(key_bits_array if isinstance(key_bits_array, Tracer) else
                   np.asarray(key_bits_array))
    if aval.dtype != _U32 or aval.shape[-1:] != (2,):
        raise FungradTypeError(f"wrap_key_data at {_where()}: expected uint32 data of shape "
                               f"(..., 2), got {aval}")
    return key_bits_array


def split(key, num: int | Sequence[int] = 2):
    """`num` new keys (an array of shape (num, 2), or (*num, 2) for a tuple).

    >>> k1, k2 = split(PRNGKey(0))
    """
    key = _check_key("split", key)
    shape = _shape("split", num)
    bits1, bits2 = _hash_counters(key, shape)
    return fnp.stack([bits1, bits2], axis=len(shape))


def fold_in(key, data):
    """A new key from `key` and a 32-bit integer `data` (wrapped modulo 2**32)."""
    key = _check_key("fold_in", key)
    if isinstance(data, Tracer):
        if aval_of(data).shape != ():
            raise FungradTypeError(f"fold_in at {_where()}: data must be a scalar, got "
                                   f"{aval_of(data)}; use fungrad.vmap for a batch")
        word = lax.convert_element_type(data, _U32)
    else:
        arr = np.asarray(data)
        if arr.shape != ():
            raise FungradTypeError(f"fold_in at {_where()}: data must be a scalar, got shape "
                                   f"{arr.shape}; use fungrad.vmap for a batch")
        word = np.uint32(int(arr) % 2 ** 32)
    k1, k2 = _key_words(key)
    bits1, bits2 = threefry_2x32(k1, k2, np.uint32(0), word)
    return fnp.stack([bits1, bits2])


# --- uniform bits and floats ---------------------------------------------------------------

def bits(key, shape: Sequence[int] = (), dtype=None):
    """Uniform random bits as unsigned integers (uint64 by default, as JAX with x64)."""
    key = _check_key("bits", key)
    dtype = np.dtype(np.uint64 if dtype is None else dtype)
    if dtype.kind != "u":
        raise FungradTypeError(
            f"random.bits at {_where()}: dtype must be an unsigned integer dtype, got {dtype}")
    return _random_bits(key, dtype.itemsize * 8, _shape("bits", shape))


def _as_float(x, dtype):
    if isinstance(x, Tracer):
        return lax.convert_element_type(x, dtype)
    return np.asarray(x, dtype=dtype)


def _check_param_shape(name, shape, *params):
    """JAX's rule: the parameters must broadcast to `shape` (not enlarge it)."""
    param_shapes = [np.shape(p) if not isinstance(p, Tracer) else aval_of(p).shape
                    for p in params]
    try:
        result = np.broadcast_shapes(shape, *param_shapes)
    except ValueError:
        result = None
    if result != tuple(shape):
        raise FungradValueError(
            f"random.{name} at {_where()}: shape {tuple(shape)} is incompatible with the "
            f"parameter shapes {param_shapes}; they must broadcast to the requested shape")


def _param_shape(*params):
    return np.broadcast_shapes(*[aval_of(p).shape if isinstance(p, Tracer) else np.shape(p)
                                 for p in params])


def _uniform(key, shape: tuple, dtype, minval, maxval):
    finfo = np.finfo(dtype)
    nbits, nmant = finfo.bits, finfo.nmant
    rng_bits = 8 if nmant < 8 else nbits
    uint = _UINT[nbits]
    raw = _random_bits(key, rng_bits, shape)
    if rng_bits != nbits:
        raw = lax.convert_element_type(raw, uint)
    # random mantissa bits under the exponent of 1.0 give a float in [1, 2)
    mantissa = lax.shift_right_logical(raw, uint.type(rng_bits - nmant))
    one_bits = np.array(1.0, dtype).view(uint)[()]
    floats = lax.sub(lax.bitcast_convert_type(lax.bitwise_or(mantissa, one_bits), dtype),
                     dtype.type(1))
    minval, maxval = _as_float(minval, dtype), _as_float(maxval, dtype)
    if _is_constant(minval, 0) and _is_constant(maxval, 1):
        scaled = floats                        # fma(f, 1, 0) == f
    else:
        scaled = _fma(floats, fnp.subtract(maxval, minval), minval)
    return fnp.maximum(minval, fnp.broadcast_to(scaled, shape))


def _is_constant(x, value) -> bool:
    return not isinstance(x, Tracer) and np.shape(x) == () and x == value


def _fma(a, b, c):
    """a * b + c rounded once, as XLA fuses it (uniform's scaling must match JAX's bits):
    the error-free product (Veltkamp-Dekker) and sum (Knuth), then one final rounding.
    Where the splitting overflows (|b| near the largest float) the plain a * b + c."""
    dtype = aval_of(fnp.asarray(a)).dtype
    factor = dtype.type(2.0 ** ((np.finfo(dtype).nmant + 2) // 2) + 1)

    def halves(x):
        t = fnp.multiply(factor, x)
        hi = fnp.subtract(t, fnp.subtract(t, x))
        return hi, fnp.subtract(x, hi)

    p = fnp.multiply(a, b)
    a_hi, a_lo = halves(a)
    b_hi, b_lo = halves(b)
    e = fnp.add(fnp.add(fnp.add(fnp.subtract(fnp.multiply(a_hi, b_hi), p),
                                fnp.multiply(a_hi, b_lo)), fnp.multiply(a_lo, b_hi)),
                fnp.multiply(a_lo, b_lo))
    s = fnp.add(p, c)
    bv = fnp.subtract(s, p)
    t = fnp.add(fnp.subtract(p, fnp.subtract(s, bv)), fnp.subtract(c, bv))
    fused = fnp.add(s, fnp.add(t, e))
    return fnp.where(fnp.isfinite(fused), fused, s)


def uniform(key, shape: Sequence[int] = (), dtype=None, minval=0.0, maxval=1.0):
    """Floats uniform in [minval, maxval) (float64 by default).  Bit-identical to JAX;
    differentiable with respect to minval and maxval."""
    key = _check_key("uniform", key)
    dtype = _float_dtype("uniform", dtype)
    shape = _shape("uniform", shape)
    _check_param_shape("uniform", shape, minval, maxval)
    return _uniform(key, shape, dtype, minval, maxval)


def _normal(key, shape: tuple, dtype):
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = _uniform(key, shape, dtype, lo, dtype.type(1))
    return lax.mul(dtype.type(np.sqrt(2)), lax.erf_inv(u))


def normal(key, shape: Sequence[int] = (), dtype=None):
    """Standard normal samples: sqrt(2) erfinv(u) for u uniform in (-1, 1), as JAX."""
    key = _check_key("normal", key)
    return _normal(key, _shape("normal", shape), _float_dtype("normal", dtype))


def truncated_normal(key, lower, upper, shape: Sequence[int] | None = None, dtype=None):
    """Standard normal samples conditioned on lower < x < upper (inverse CDF method)."""
    key = _check_key("truncated_normal", key)
    dtype = _float_dtype("truncated_normal", dtype)
    shape = _param_shape(lower, upper) if shape is None else _shape("truncated_normal", shape)
    _check_param_shape("truncated_normal", shape, lower, upper)
    sqrt2 = dtype.type(np.sqrt(2))
    lower, upper = _as_float(lower, dtype), _as_float(upper, dtype)
    a = fnp.asarray(lax.erf(fnp.divide(lower, sqrt2)))
    b = fnp.asarray(lax.erf(fnp.divide(upper, sqrt2)))
    u = _uniform(key, shape, dtype, a, b)
    out = lax.mul(sqrt2, lax.erf_inv(u))
    lo = fnp.nextafter(lax.stop_gradient(lower), dtype.type(np.inf))
    hi = fnp.nextafter(lax.stop_gradient(upper), dtype.type(-np.inf))
    return fnp.clip(out, lo, hi)


def bernoulli(key, p=0.5, shape: Sequence[int] | None = None, mode: str = "low"):
    """Booleans that are True with probability p (uniform(key) < p, as JAX)."""
    key = _check_key("bernoulli", key)
    p = p if isinstance(p, Tracer) else np.asarray(p)
    if not np.issubdtype(aval_of(p).dtype, np.floating):
        p = np.asarray(p, np.float64)
    dtype = aval_of(p).dtype
    shape = tuple(aval_of(p).shape) if shape is None else _shape("bernoulli", shape)
    _check_param_shape("bernoulli", shape, p)
    if mode == "high":
        u1, u2 = _uniform(key, (2, *shape), dtype, dtype.type(0), dtype.type(1))
        u2 = fnp.multiply(u2, dtype.type(2.0 ** -np.finfo(dtype).nmant))
        return fnp.less(u2, fnp.subtract(p, u1))
    if mode != "low":
        raise FungradValueError(f"bernoulli at {_where()}: mode must be 'low' or 'high', "
                                f"got {mode!r}")
    return fnp.less(_uniform(key, shape, dtype, dtype.type(0), dtype.type(1)), p)


def rademacher(key, shape: Sequence[int] = (), dtype=np.int64):
    """-1 or +1 with equal probability."""
    key = _check_key("rademacher", key)
    dtype = np.dtype(dtype)
    b = fnp.asarray(bernoulli(key, 0.5, _shape("rademacher", shape)), dtype)
    return fnp.subtract(fnp.multiply(b, dtype.type(2)), dtype.type(1))


# --- integers, permutations, choices ---------------------------------------------------------

def _convert_and_clip(val, dtype):
    """val converted to the integer dtype, clipped to its range rather than wrapped."""
    src = aval_of(val).dtype
    info, src_info = np.iinfo(dtype), np.iinfo(src)
    lo, hi = builtins.max(info.min, src_info.min), builtins.min(info.max, src_info.max)
    return fnp.asarray(fnp.clip(val, src.type(lo), src.type(hi)), dtype)


def randint(key, shape: Sequence[int], minval, maxval, dtype=np.int64):
    """Integers uniform in [minval, maxval) (JAX's algorithm and values: 2 x nbits random
    bits reduced modulo the span)."""
    key = _check_key("randint", key)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise FungradTypeError(f"randint at {_where()}: dtype must be an integer dtype, got "
                               f"{dtype}")
    shape = _shape("randint", shape)
    _check_param_shape("randint", shape, minval, maxval)
    minval, maxval = fnp.asarray(minval), fnp.asarray(maxval)
    if aval_of(minval).dtype.kind not in "iu":
        minval = fnp.asarray(minval, np.int64)
    if aval_of(maxval).dtype.kind not in "iu":
        maxval = fnp.asarray(maxval, np.int64)
    top = np.iinfo(dtype).max
    mdt = aval_of(maxval).dtype
    top_in_max = mdt.type(builtins.min(top, np.iinfo(mdt).max))
    maxval_out_of_range = fnp.greater(maxval, top_in_max)
    minval = _convert_and_clip(minval, dtype)
    maxval = _convert_and_clip(maxval, dtype)
    nbits = dtype.itemsize * 8
    k1, k2 = split(key)
    higher_bits = _random_bits(k1, nbits, shape)
    lower_bits = _random_bits(k2, nbits, shape)
    unsigned = _UINT[nbits]
    span = fnp.broadcast_to(fnp.asarray(fnp.subtract(maxval, minval), unsigned), shape)
    # span 1 when maxval <= minval (minval is returned); one larger when maxval is out of
    # the dtype's range (wrapping to 0 at the full range, where the remainder is a no-op)
    span = fnp.where(fnp.less_equal(maxval, minval), unsigned.type(1), span)
    span = fnp.where(fnp.logical_and(maxval_out_of_range, fnp.greater(maxval, minval)),
                     lax.add(span, unsigned.type(1)), span)
    # (a 2^n + b) mod span without overflow: multiplier = 2^nbits mod span
    multiplier = _urem(lax.full(shape, 2 ** (nbits // 2), unsigned), span)
    multiplier = _urem(lax.mul(multiplier, multiplier), span)
    offset = lax.add(lax.mul(_urem(higher_bits, span), multiplier),
                     _urem(lower_bits, span))
    offset = _urem(offset, span)
    return fnp.add(minval, fnp.asarray(offset, dtype))


def _urem(x, span):
    """x mod span, and x where span == 0 (XLA's remainder by zero, which randint's
    full-range span relies on)."""
    zero = aval_of(span).dtype.type(0)
    is_zero = lax.eq(span, zero)
    safe = lax.select(is_zero, lax.full(aval_of(span).shape, 1, aval_of(span).dtype), span)
    return lax.select(is_zero, x, lax.rem(x, safe))


def _shuffle(key, x, axis: int):
    size = math.prod(aval_of(x).shape)
    num_rounds = int(np.ceil(3 * np.log(builtins.max(1, size)) / np.log(np.iinfo(np.uint32).max)))
    for _ in range(num_rounds):
        key, subkey = split(key)
        sort_keys = _random_bits(subkey, 32, tuple(aval_of(x).shape))
        order = fnp.argsort(sort_keys, axis=axis)
        x = fnp.take_along_axis(x, order, axis=axis)
    return x


def permutation(key, x, axis: int = 0, independent: bool = False):
    """A random permutation of `arange(x)` (an int x) or of `x` along `axis` (JAX's
    values: stable sorts by random 32-bit keys)."""
    key = _check_key("permutation", key)
    if isinstance(x, (int, np.integer)):
        return _shuffle(key, fnp.arange(int(x)), 0)
    x = fnp.asarray(x)
    nd = aval_of(x).ndim
    if nd == 0:
        raise FungradTypeError(f"permutation at {_where()}: x must be an int or an array of "
                               "at least one dimension")
    axis = axis % nd
    if independent or nd == 1:
        return _shuffle(key, x, axis)
    order = _shuffle(key, fnp.arange(aval_of(x).shape[axis]), 0)
    return fnp.take(x, order, axis=axis)


def choice(key, a, shape: Sequence[int] = (), replace: bool = True, p=None, axis: int = 0,
           mode: str | None = None):
    """Random draws from `a` (an int n means arange(n)), with or without replacement,
    optionally with probabilities p (JAX's values)."""
    key = _check_key("choice", key)
    shape = _shape("choice", shape)
    if isinstance(a, (int, np.integer)):
        arr, n_inputs = None, int(a)
    else:
        arr = fnp.asarray(a)
        if aval_of(arr).ndim == 0:
            raise FungradValueError(f"choice at {_where()}: a must be an int or an array of "
                                    "at least one dimension")
        axis = axis % aval_of(arr).ndim
        n_inputs = aval_of(arr).shape[axis]
    n_draws = math.prod(shape)
    if n_draws == 0:
        return fnp.zeros(shape, np.int64 if arr is None else aval_of(arr).dtype)
    if n_inputs <= 0:
        raise FungradValueError(f"choice at {_where()}: a must be greater than 0 unless no "
                                "samples are taken")
    if not replace and n_draws > n_inputs:
        raise FungradValueError(
            f"choice at {_where()}: cannot take a larger sample (size {n_draws}) than the "
            f"population (size {n_inputs}) with replace=False")
    if p is None:
        if replace:
            ind = randint(key, shape, 0, n_inputs)
            result = ind if arr is None else fnp.take(arr, ind, axis=axis)
        else:
            perm = permutation(key, n_inputs if arr is None else arr, axis)
            result = _take_first(perm, n_draws, 0 if arr is None else axis)
    else:
        p = fnp.asarray(p)
        if aval_of(p).dtype.kind != "f":
            p = fnp.asarray(p, np.float64)
        if aval_of(p).shape != (n_inputs,):
            raise FungradValueError(
                f"choice at {_where()}: p must be None or a 1-d vector with the size of "
                f"a.shape[axis] ({n_inputs}); got shape {aval_of(p).shape}")
        if replace:
            p_cuml = fnp.cumsum(p)
            dt = aval_of(p_cuml).dtype
            r = fnp.multiply(p_cuml[-1], fnp.subtract(dt.type(1), _uniform(
                key, shape, dt, dt.type(0), dt.type(1))))
            # searchsorted(p_cuml, r, side='left') = how many cumulative sums are < r
            ind = fnp.sum(fnp.less(p_cuml, fnp.expand_dims(r, -1)), axis=-1).astype(np.int64)
        else:
            g = fnp.add(gumbel(key, (n_inputs,), aval_of(p).dtype, mode=mode), fnp.log(p))
            ind = _take_first(fnp.argsort(fnp.negative(g)), n_draws, 0)
        result = ind if arr is None else fnp.take(arr, ind, axis=axis)
    if arr is None:
        return fnp.reshape(result, shape)
    ashape = aval_of(arr).shape
    return fnp.reshape(result, ashape[:axis] + tuple(shape) + ashape[axis + 1:])


def _take_first(x, n: int, axis: int):
    index = [slice(None)] * aval_of(x).ndim
    index[axis] = slice(0, n)
    return x[tuple(index)]


# --- simple transforms of uniforms -----------------------------------------------------------

def exponential(key, shape: Sequence[int] = (), dtype=None):
    """Exponential(1) samples, -log1p(-u)."""
    key = _check_key("exponential", key)
    dtype = _float_dtype("exponential", dtype)
    u = _uniform(key, _shape("exponential", shape), dtype, dtype.type(0), dtype.type(1))
    return lax.neg(lax.log1p(lax.neg(u)))


def laplace(key, shape: Sequence[int] = (), dtype=None):
    """Laplace(0, 1) samples."""
    key = _check_key("laplace", key)
    dtype = _float_dtype("laplace", dtype)
    finfo = np.finfo(dtype)
    u = _uniform(key, _shape("laplace", shape), dtype, dtype.type(-1.0 + finfo.epsneg),
                 dtype.type(1))
    return lax.mul(lax.sign(u), lax.log1p(lax.neg(lax.abs(u))))


def logistic(key, shape: Sequence[int] = (), dtype=None):
    """Logistic(0, 1) samples, log(u) - log1p(-u)."""
    key = _check_key("logistic", key)
    dtype = _float_dtype("logistic", dtype)
    x = _uniform(key, _shape("logistic", shape), dtype, dtype.type(np.finfo(dtype).tiny),
                 dtype.type(1))
    return lax.sub(lax.log(x), lax.log1p(lax.neg(x)))


def gumbel(key, shape: Sequence[int] = (), dtype=None, mode: str | None = None):
    """Gumbel(0, 1) samples, -log(-log(u)) (mode 'high' resolves the upper tail better)."""
    key = _check_key("gumbel", key)
    dtype = _float_dtype("gumbel", dtype)
    shape = _shape("gumbel", shape)
    tiny = dtype.type(np.finfo(dtype).tiny)
    if mode in ("high", "highest"):
        high, low = _uniform(key, (2, *shape), dtype, dtype.type(0), dtype.type(1))
        x = fnp.where(fnp.greater_equal(high, dtype.type(0.5)), high,
                      fnp.add(fnp.add(high, fnp.multiply(
                          dtype.type(2.0 ** -np.finfo(dtype).nmant), low)), tiny))
        return fnp.negative(fnp.log(fnp.negative(fnp.log1p(fnp.negative(x)))))
    if mode not in (None, "low"):
        raise FungradValueError(f"gumbel at {_where()}: mode must be 'low' or 'high', got "
                                f"{mode!r}")
    u = _uniform(key, shape, dtype, tiny, dtype.type(1))
    return fnp.negative(fnp.log(fnp.negative(fnp.log(u))))


def cauchy(key, shape: Sequence[int] = (), dtype=None):
    """Standard Cauchy samples, tan(pi (u - 1/2))."""
    key = _check_key("cauchy", key)
    dtype = _float_dtype("cauchy", dtype)
    u = _uniform(key, _shape("cauchy", shape), dtype, dtype.type(np.finfo(dtype).eps),
                 dtype.type(1))
    return lax.tan(lax.mul(dtype.type(np.pi), lax.sub(u, dtype.type(0.5))))


def lognormal(key, sigma=1.0, shape: Sequence[int] | None = None, dtype=None):
    """exp(sigma * normal) samples."""
    key = _check_key("lognormal", key)
    dtype = _float_dtype("lognormal", dtype)
    shape = _param_shape(sigma) if shape is None else _shape("lognormal", shape)
    return fnp.exp(fnp.multiply(_normal(key, shape, dtype), _as_float(sigma, dtype)))


def categorical(key, logits, axis: int = -1, shape: Sequence[int] | None = None,
                replace: bool = True, mode: str | None = None):
    """Category indices drawn with probabilities softmax(logits) along `axis` (the Gumbel-max
    trick, as JAX: the same indices for the same key)."""
    key = _check_key("categorical", key)
    logits = fnp.asarray(logits)
    if aval_of(logits).dtype.kind != "f":
        logits = fnp.asarray(logits, np.float64)
    lshape = tuple(aval_of(logits).shape)
    nd = len(lshape)
    if nd == 0:
        raise FungradValueError(f"categorical at {_where()}: logits must have at least one "
                                "dimension")
    axis = axis % nd
    batch_shape = lshape[:axis] + lshape[axis + 1:]
    shape = batch_shape if shape is None else _shape("categorical", shape)
    if tuple(shape[len(shape) - len(batch_shape):]) != batch_shape:
        raise FungradValueError(
            f"categorical at {_where()}: shape {shape} must end with the batch shape of the "
            f"logits {batch_shape}")
    prefix = shape[:len(shape) - len(batch_shape)]
    dtype = aval_of(logits).dtype
    if replace:
        logits_shape = list(shape[len(shape) - len(batch_shape):])
        logits_shape.insert(axis, lshape[axis])
        g = gumbel(key, (*prefix, *logits_shape), dtype, mode=mode)
        expanded = fnp.reshape(logits, (1,) * len(prefix) + lshape)
        return fnp.argmax(fnp.add(g, expanded), axis=len(prefix) + axis)
    perturbed = fnp.add(logits, gumbel(key, lshape, dtype, mode=mode))
    k = math.prod(prefix)
    if k > lshape[axis]:
        raise FungradValueError(f"categorical at {_where()}: the number of samples without "
                                f"replacement ({k}) exceeds the number of categories "
                                f"({lshape[axis]})")
    order = fnp.argsort(fnp.negative(fnp.moveaxis(perturbed, axis, -1)), axis=-1)
    top = _take_first(order, k, -1 % nd)          # batch_shape + (k,)
    top = fnp.moveaxis(top, -1, 0)
    return fnp.reshape(top, shape)


def multivariate_normal(key, mean, cov, shape: Sequence[int] | None = None, dtype=None,
                        method: str = "cholesky"):
    """Samples of N(mean, cov): mean + factor @ z with factor from cholesky (default),
    eigh or svd of cov (JAX's formula on JAX's normal draws)."""
    key = _check_key("multivariate_normal", key)
    dtype = _float_dtype("multivariate_normal", dtype)
    mean, cov = _as_float(mean, dtype), _as_float(cov, dtype)
    mshape, cshape = aval_of(fnp.asarray(mean)).shape, aval_of(fnp.asarray(cov)).shape
    if len(mshape) < 1 or len(cshape) < 2:
        raise FungradValueError(f"multivariate_normal at {_where()}: mean needs ndim >= 1 "
                                f"and cov ndim >= 2, got {mshape} and {cshape}")
    n = mshape[-1]
    if cshape[-2:] != (n, n):
        raise FungradValueError(f"multivariate_normal at {_where()}: cov must have shape "
                                f"(..., {n}, {n}), got {cshape}")
    if shape is None:
        shape = np.broadcast_shapes(mshape[:-1], cshape[:-2])
    else:
        shape = _shape("multivariate_normal", shape)
        _check_param_shape("multivariate_normal", shape, np.empty(mshape[:-1]),
                           np.empty(cshape[:-2]))
    if method == "svd":
        u, s, _ = fnp.linalg.svd(cov)
        factor = fnp.multiply(u, fnp.expand_dims(fnp.sqrt(s), -2))
    elif method == "eigh":
        w, v = fnp.linalg.eigh(cov)
        factor = fnp.multiply(v, fnp.expand_dims(fnp.sqrt(w), -2))
    elif method == "cholesky":
        factor = fnp.linalg.cholesky(cov)
    else:
        raise FungradValueError(f"multivariate_normal at {_where()}: method must be "
                                f"'cholesky', 'eigh' or 'svd', got {method!r}")
    z = _normal(key, tuple(shape) + (n,), dtype)
    return fnp.add(mean, fnp.einsum("...ij,...j->...i", factor, z))


# --- rejection samplers (same distributions as JAX, not the same streams) -----------------

def _gamma_marsaglia_tsang(key, alpha, log_space: bool):
    """Gamma(alpha) samples (alpha > 0, an array), Marsaglia & Tsang's squeeze method
    vectorised: every element draws until accepted, the loop runs until all are."""
    dtype = aval_of(alpha).dtype
    shape = tuple(aval_of(alpha).shape)
    one = dtype.type(1)
    boost = fnp.greater_equal(alpha, one)
    boosted = fnp.where(boost, alpha, fnp.add(alpha, one))
    d = fnp.subtract(boosted, dtype.type(1 / 3))
    c = fnp.divide(dtype.type(1 / 3), fnp.sqrt(d))
    key, boost_key = split(key)

    def cond(state):
        return fnp.logical_not(fnp.all(state[1]))

    def body(state):
        k, done, log_v = state
        k, kx, ku = split(k, 3)
        x = _normal(kx, shape, dtype)
        v = fnp.add(one, fnp.multiply(c, x))
        v3 = fnp.multiply(fnp.multiply(v, v), v)
        u = _uniform(ku, shape, dtype, dtype.type(0), one)
        x2 = fnp.multiply(x, x)
        safe_v3 = fnp.where(fnp.greater(v3, dtype.type(0)), v3, one)
        accept = fnp.logical_and(
            fnp.greater(v, dtype.type(0)),
            fnp.logical_or(
                fnp.less(u, fnp.subtract(one, fnp.multiply(dtype.type(0.0331),
                                                           fnp.multiply(x2, x2)))),
                fnp.less(fnp.log(u), fnp.add(fnp.multiply(dtype.type(0.5), x2), fnp.multiply(
                    d, fnp.add(fnp.subtract(one, safe_v3), fnp.log(safe_v3)))))))
        take = fnp.logical_and(accept, fnp.logical_not(done))
        log_v = fnp.where(take, fnp.log(safe_v3), log_v)
        return k, fnp.logical_or(done, accept), log_v

    init = (key, fnp.zeros(shape, np.bool_), fnp.zeros(shape, dtype))
    _, _, log_v = lax.while_loop(cond, body, init)
    log_sample = fnp.add(fnp.log(d), log_v)
    # alpha < 1: Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha), with log U = -Exponential
    log_u = fnp.negative(exponential(boost_key, shape, dtype))
    log_boost = fnp.where(boost, dtype.type(0), fnp.divide(log_u, alpha))
    log_sample = fnp.add(log_sample, log_boost)
    return log_sample if log_space else fnp.exp(log_sample)


def _gamma_args(name, key, a, shape, dtype):
    key = _check_key(name, key)
    dtype = _float_dtype(name, dtype)
    shape = _param_shape(a) if shape is None else _shape(name, shape)
    _check_param_shape(name, shape, a)
    a = fnp.broadcast_to(_as_float(a, dtype), shape)
    return key, a


def gamma(key, a, shape: Sequence[int] | None = None, dtype=None):
    """Gamma(a, 1) samples (rejection sampling: JAX's distribution, not its stream)."""
    key, a = _gamma_args("gamma", key, a, shape, dtype)
    return _gamma_marsaglia_tsang(key, lax.stop_gradient(a), log_space=False)


def loggamma(key, a, shape: Sequence[int] | None = None, dtype=None):
    """log of Gamma(a, 1) samples, accurate for tiny a where the sample underflows."""
    key, a = _gamma_args("loggamma", key, a, shape, dtype)
    return _gamma_marsaglia_tsang(key, lax.stop_gradient(a), log_space=True)


def beta(key, a, b, shape: Sequence[int] | None = None, dtype=None):
    """Beta(a, b) samples, G_a / (G_a + G_b) computed from log-gamma samples."""
    key = _check_key("beta", key)
    dtype = _float_dtype("beta", dtype)
    shape = _param_shape(a, b) if shape is None else _shape("beta", shape)
    _check_param_shape("beta", shape, a, b)
    key_a, key_b = split(key)
    log_a = loggamma(key_a, fnp.broadcast_to(_as_float(a, dtype), shape), shape, dtype)
    log_b = loggamma(key_b, fnp.broadcast_to(_as_float(b, dtype), shape), shape, dtype)
    log_max = fnp.maximum(log_a, log_b)
    ga, gb = fnp.exp(fnp.subtract(log_a, log_max)), fnp.exp(fnp.subtract(log_b, log_max))
    return fnp.divide(ga, fnp.add(ga, gb))


def dirichlet(key, alpha, shape: Sequence[int] | None = None, dtype=None):
    """Dirichlet(alpha) samples on the last axis: softmax of log-gamma samples."""
    key = _check_key("dirichlet", key)
    dtype = _float_dtype("dirichlet", dtype)
    alpha = _as_float(alpha, dtype)
    ashape = tuple(aval_of(fnp.asarray(alpha)).shape)
    if len(ashape) < 1:
        raise FungradValueError(f"dirichlet at {_where()}: alpha needs ndim >= 1, got a scalar")
    shape = ashape[:-1] if shape is None else _shape("dirichlet", shape)
    _check_param_shape("dirichlet", shape, np.empty(ashape[:-1]))
    full_shape = tuple(shape) + ashape[-1:]
    log_g = loggamma(key, fnp.broadcast_to(alpha, full_shape), full_shape, dtype)
    shifted = fnp.subtract(log_g, lax.stop_gradient(fnp.max(log_g, axis=-1, keepdims=True)))
    e = fnp.exp(shifted)
    return fnp.divide(e, fnp.sum(e, axis=-1, keepdims=True))


def chisquare(key, df, shape: Sequence[int] | None = None, dtype=None):
    """Chi-square(df) samples, 2 Gamma(df / 2)."""
    key, df = _gamma_args("chisquare", key, df, shape, dtype)
    return fnp.multiply(2.0, _gamma_marsaglia_tsang(key, fnp.multiply(0.5, df), False))


def t(key, df, shape: Sequence[int] | None = None, dtype=None):
    """Student t(df) samples, normal * sqrt(df / (2 Gamma(df / 2)))."""
    key, df = _gamma_args("t", key, df, shape, dtype)
    key_n, key_g = split(key)
    dt = aval_of(df).dtype
    n = _normal(key_n, tuple(aval_of(df).shape), dt)
    two = dt.type(2)
    g = _gamma_marsaglia_tsang(key_g, fnp.divide(df, two), False)
    return fnp.multiply(n, fnp.sqrt(fnp.divide(df, fnp.multiply(two, g))))


def poisson(key, lam, shape: Sequence[int] | None = None, dtype=np.int64):
    """Poisson(lam) counts: Knuth's method for lam < 10, Hormann's transformed rejection
    above (JAX's and NumPy's choice); the same distribution as JAX."""
    key = _check_key("poisson", key)
    dtype = np.dtype(dtype)
    shape = _param_shape(lam) if shape is None else _shape("poisson", shape)
    _check_param_shape("poisson", shape, lam)
    lam = fnp.broadcast_to(lax.stop_gradient(_as_float(lam, np.float64)), shape)
    use_knuth = fnp.logical_or(fnp.isnan(lam), fnp.less(lam, 10.0))
    lam_knuth = fnp.where(use_knuth, lam, 0.0)
    lam_rejection = fnp.where(use_knuth, 1e5, lam)
    knuth = _poisson_knuth(key, lam_knuth, shape)
    rejection = _poisson_rejection(key, lam_rejection, shape)
    result = fnp.where(use_knuth, knuth, rejection)
    return fnp.asarray(fnp.where(fnp.equal(lam, 0.0), 0.0, result), dtype)


def _poisson_knuth(key, lam, shape):
    def cond(state):
        return fnp.any(fnp.greater(state[2], fnp.negative(lam)))

    def body(state):
        k_out, rng, log_prod = state
        rng, subkey = split(rng)
        k_out = fnp.where(fnp.greater(log_prod, fnp.negative(lam)), fnp.add(k_out, 1.0), k_out)
        u = _uniform(subkey, shape, np.dtype(np.float64), 0.0, 1.0)
        return k_out, rng, fnp.add(log_prod, fnp.log(u))

    init = (fnp.zeros(shape), key, fnp.zeros(shape))
    k_out = lax.while_loop(cond, body, init)[0]
    return fnp.subtract(k_out, 1.0)


def _poisson_rejection(key, lam, shape):
    log_lam = fnp.log(lam)
    b = fnp.add(0.931, fnp.multiply(2.53, fnp.sqrt(lam)))
    a = fnp.add(-0.059, fnp.multiply(0.02483, b))
    inv_alpha = fnp.add(1.1239, fnp.divide(1.1328, fnp.subtract(b, 3.4)))
    v_r = fnp.subtract(0.9277, fnp.divide(3.6224, fnp.subtract(b, 2.0)))
    f64 = np.dtype(np.float64)

    def cond(state):
        return fnp.logical_not(fnp.all(state[1]))

    def body(state):
        k_out, accepted, rng = state
        rng, k0, k1 = split(rng, 3)
        u = fnp.subtract(_uniform(k0, shape, f64, 0.0, 1.0), 0.5)
        v = _uniform(k1, shape, f64, 0.0, 1.0)
        u_shifted = fnp.subtract(0.5, fnp.abs(u))
        k = fnp.floor(fnp.add(fnp.add(fnp.multiply(fnp.add(fnp.divide(fnp.multiply(2.0, a),
                                                                       u_shifted), b), u),
                                      lam), 0.43))
        s = fnp.log(fnp.divide(fnp.multiply(v, inv_alpha),
                               fnp.add(fnp.divide(a, fnp.multiply(u_shifted, u_shifted)), b)))
        t_ = fnp.subtract(fnp.add(fnp.negative(lam), fnp.multiply(k, log_lam)),
                          lax.lgamma(fnp.add(k, 1.0)))
        accept1 = fnp.logical_and(fnp.greater_equal(u_shifted, 0.07), fnp.less_equal(v, v_r))
        reject = fnp.logical_or(fnp.less(k, 0.0), fnp.logical_and(
            fnp.less(u_shifted, 0.013), fnp.greater(v, u_shifted)))
        accept = fnp.logical_or(accept1, fnp.logical_and(fnp.logical_not(reject),
                                                         fnp.less_equal(s, t_)))
        take = fnp.logical_and(accept, fnp.logical_not(accepted))
        return fnp.where(take, k, k_out), fnp.logical_or(accepted, accept), rng

    init = (fnp.full(shape, -1.0), fnp.zeros(shape, np.bool_), key)
    return lax.while_loop(cond, body, init)[0]
