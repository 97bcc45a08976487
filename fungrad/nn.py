"""`fungrad.nn`: activations and losses with JAX's names (`jax.nn`) and PyTorch's
loss conventions, written to be numerically stable in value AND gradient.

Every function is a plain composition of `fungrad.numpy` operations (no new
primitives), so every transform (grad, jvp, vmap, jit, nesting) applies.  The
formulas are chosen so that values and gradients stay finite at extreme inputs
(|z| = 17, 40, 100, 800 and inf, float64 and float32) wherever the mathematical
result is finite.  Three devices do the work:

* shifting by the maximum (under `stop_gradient`) before `exp`;
* `log1p(exp(-|z|))` instead of `log(1 + exp(z))`;
* the "double where": an expression that would produce `0 * inf` is computed
  on a safe substitute input and masked, so neither its value nor its
  cotangent (which `where` sets to 0 on the masked side) can become NaN.

Kinks follow fungrad's conventions: `relu'(0) = 0` (like JAX and PyTorch),
`|x|'(0) = 0`, `maximum`/`minimum` ties split the gradient 0.5 / 0.5.

    >>> import fungrad as fg
    >>> from fungrad import nn
    >>> float(nn.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    >>> fg.grad(nn.logsumexp)(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import lax
from . import numpy as fnp
from .errors import FungradTypeError, FungradValueError
from .numpy._checks import axis_index
from .primitives.elementwise import stop_gradient
from .tracing import Tracer, aval_of

__all__ = [
    "sigmoid", "log_sigmoid", "softplus", "logsumexp", "log_softmax", "softmax",
    "binary_cross_entropy_with_logits", "relu", "relu6", "gelu", "silu", "swish", "elu",
    "leaky_relu", "softmax_cross_entropy", "binary_cross_entropy", "mse_loss", "l1_loss",
    "huber_loss", "logaddexp", "xlogy", "xlog1py", "one_hot",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _float(x: Any):
    """`x` as a floating-point array (integers and bools become float64)."""
    x = fnp.asarray(x)
    if not np.issubdtype(aval_of(x).dtype, np.inexact):
        x = fnp.astype(x, np.float64)
    return x


def _promote_float(*xs):
    """Arrays of one floating dtype (Python scalars are weak: f32 array and 0.5 -> f32)."""
    avals = [aval_of(x) if isinstance(x, (Tracer, np.ndarray)) else None for x in xs]
    if None not in avals and avals[0].dtype.kind == "f" and all(
            a.dtype == avals[0].dtype for a in avals):
        return list(xs)              # already arrays of one float dtype
    for x in xs:
        aval_of(x)          # refuses a string, None, an object (result_type would not)
    dtype = fnp.result_type(*xs)
    xs = [fnp.asarray(x) for x in xs]
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.dtype(np.float64)
    return [x if aval_of(x).dtype == dtype else fnp.astype(x, dtype) for x in xs]


def _mul0(a, b):
    """`a * b`, but exactly 0 where `a == 0` (so 0 * inf is 0, not NaN)."""
    is_zero = fnp.equal(a, 0)
    return fnp.where(is_zero, 0.0, fnp.multiply(a, fnp.where(is_zero, 0.0, b)))


def _max(x, axis, keepdims: bool):
    """max reduction for the stabilising shift (its gradient is never used)."""
    return fnp.max(x, axis=axis, keepdims=keepdims)


def _shift(x, axis, keepdims=True):
    """max(x) along axis as a constant (stop_gradient), 0 where it is not finite."""
    m = stop_gradient(_max(x, axis, keepdims))
    return fnp.where(fnp.isfinite(m), m, 0.0)


def _reduce(loss, reduction: str, name: str):
    if reduction == "mean":
        return fnp.mean(loss)
    if reduction == "sum":
        return fnp.sum(loss)
    if reduction == "none":
        return loss
    raise FungradValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', "
                            f"got {reduction!r}")


def _finite_guard(fn, x, neg_inf_value):
    """fn(x) computed on finite inputs only: +inf maps to x itself (gradient 1),
    -inf to `neg_inf_value` (gradient 0), with no NaN in value or gradient."""
    finite = fnp.isfinite(x)
    safe = fnp.where(finite, x, 0.0)
    y = fn(safe)
    return fnp.where(finite, y, fnp.where(fnp.greater(x, 0), x, neg_inf_value))


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), elementwise (the `logistic` primitive).

    >>> sigmoid(0.0)
    0.5
    """
    return lax.logistic(_float(x))


def softplus(x):
    """log(1 + exp(x)), stable for every x (the `softplus` primitive).

    Its derivative is sigmoid(x), smooth at every order and finite at +-inf.
    >>> float(softplus(800.0))
    800.0
    """
    return lax.softplus(_float(x))


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|.

    >>> float(log_sigmoid(-800.0))
    -800.0
    """
    return fnp.negative(softplus(fnp.negative(_float(x))))


def relu(x):
    """max(x, 0); the gradient at 0 is 0 (as in JAX and PyTorch).

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    x = _float(x)
    return fnp.where(fnp.greater(x, 0), x, 0.0)


def relu6(x):
    """min(max(x, 0), 6); gradient 1 strictly inside (0, 6), 0 elsewhere.

    >>> relu6(np.array([-1.0, 3.0, 9.0]))
    array([0., 3., 6.])
    """
    x = _float(x)
    return fnp.where(fnp.greater(x, 0), fnp.where(fnp.less(x, 6), x, 6.0), 0.0)


def gelu(x, approximate: bool = True):
    """Gaussian error linear unit, x * Phi(x); `approximate=True` uses the tanh
    formula 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) like `jax.nn.gelu`.

    gelu(-inf) = 0 and gelu(inf) = inf with finite gradients (0 and 1).
    >>> round(float(gelu(1.0, approximate=False)), 6)
    0.841345
    """
    x = _float(x)

    def formula(v):
        if approximate:
            c = float(np.sqrt(2.0 / np.pi))
            inner = fnp.multiply(c, fnp.add(v, fnp.multiply(0.044715, fnp.power(v, 3))))
            return fnp.multiply(fnp.multiply(0.5, v), fnp.add(1.0, fnp.tanh(inner)))
        cdf = fnp.multiply(0.5, lax.erfc(fnp.multiply(fnp.negative(v), float(np.sqrt(0.5)))))
        return fnp.multiply(v, cdf)
    return _finite_guard(formula, x, 0.0)


def silu(x):
    """x * sigmoid(x) (also called swish); silu(-inf) = 0 with gradient 0.

    >>> round(float(silu(1.0)), 6)
    0.731059
    """
    x = _float(x)
    return _finite_guard(lambda v: fnp.multiply(v, sigmoid(v)), x, 0.0)


swish = silu


def elu(x, alpha: float = 1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    >>> float(elu(-np.inf))
    -1.0
    """
    x = _float(x)
    positive = fnp.greater(x, 0)
    negative_part = fnp.multiply(alpha, fnp.expm1(fnp.where(positive, 0.0, x)))
    return fnp.where(positive, x, negative_part)


def leaky_relu(x, negative_slope: float = 1e-2):
    """x for x >= 0, negative_slope * x otherwise (gradient 1 at 0, as in JAX).

    >>> leaky_relu(np.array([-2.0, 3.0]))
    array([-0.02,  3.  ])
    """
    x = _float(x)
    return fnp.where(fnp.greater_equal(x, 0), x, fnp.multiply(negative_slope, x))


# ---------------------------------------------------------------------------
# log-sum-exp family
# ---------------------------------------------------------------------------

def logsumexp(a, axis: int | Sequence[int] | None = None, b=None, keepdims: bool = False,
              return_sign: bool = False):
    """log(sum(b * exp(a))) over `axis`, shifted by the maximum for stability.

    Args:
      a: input array.
      axis: axis or axes to reduce (all by default).
      b: optional scale factors, broadcast against `a` (may be negative with
        `return_sign=True`).
      keepdims: keep the reduced axes with size 1.
      return_sign: also return the sign of the sum; the log is then of |sum|.
    Returns:
      the reduced array (and the sign array with `return_sign`).

    All -inf inputs give -inf with gradient zeros; the gradient is softmax(a).
    >>> float(logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    if b is None:
        a = _float(a)
    else:
        a, b = _promote_float(a, b)
        a, b = fnp.broadcast_arrays(a, b)
    shift = _shift(a, axis, keepdims=True)
    exps = fnp.exp(fnp.subtract(a, shift))
    if b is not None:
        exps = _mul0(b, exps)
    total = fnp.sum(exps, axis=axis, keepdims=True)
    sign = None
    if return_sign:
        sign = fnp.sign(total)
        total = fnp.abs(total)
    # double where: log(0) = -inf as the value, but no inf/NaN in the cotangent
    is_zero = fnp.equal(total, 0)
    log_total = fnp.where(is_zero, -np.inf, fnp.log(fnp.where(is_zero, 1.0, total)))
    out = fnp.add(log_total, shift)
    if not keepdims:
        axes = tuple(range(aval_of(out).ndim)) if axis is None else (
            (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis))
        axes = tuple(ax % max(aval_of(out).ndim, 1) for ax in axes)
        out = fnp.squeeze(out, axis=axes) if axes else out
        if sign is not None:
            sign = fnp.squeeze(sign, axis=axes) if axes else sign
    if return_sign:
        return out, sign
    return out


def log_softmax(x, axis: int | Sequence[int] | None = -1):
    """x - logsumexp(x, axis): log-probabilities, stable for large |x|.

    >>> np.exp(log_softmax(np.array([0.0, 0.0])))
    array([0.5, 0.5])
    """
    x = _float(x)
    shifted = fnp.subtract(x, _shift(x, axis, keepdims=True))
    total = fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True)
    return fnp.subtract(shifted, fnp.log(total))


def softmax(x, axis: int | Sequence[int] | None = -1):
    """exp(x) / sum(exp(x), axis), shifted by the maximum.

    >>> softmax(np.array([800.0, 800.0]))
    array([0.5, 0.5])
    """
    x = _float(x)
    unnormalized = fnp.exp(fnp.subtract(x, _shift(x, axis, keepdims=True)))
    return fnp.divide(unnormalized, fnp.sum(unnormalized, axis=axis, keepdims=True))


def logaddexp(x1, x2):
    """log(exp(x1) + exp(x2)) = max + log1p(exp(-|x1 - x2|)); ties give 0.5 / 0.5.

    >>> float(logaddexp(800.0, 800.0))
    800.6931471805599
    """
    x1, x2 = _promote_float(x1, x2)
    amax = fnp.maximum(x1, x2)
    delta = fnp.subtract(x1, x2)
    undefined = fnp.isnan(delta)      # inf - inf: both infinite with equal sign
    safe_delta = fnp.where(undefined, 0.0, delta)
    finite = fnp.add(amax, fnp.log1p(fnp.exp(fnp.negative(fnp.abs(safe_delta)))))
    return fnp.where(undefined, fnp.add(x1, x2), finite)


def xlogy(x, y):
    """x * log(y), with 0 where x == 0 (also at y == 0 or inf); gradients finite there.

    >>> float(xlogy(0.0, 0.0))
    0.0
    """
    x, y = _promote_float(x, y)
    return _xlog(x, y, lambda v: fnp.log(v), singular=(0.0, np.inf), safe=1.0)


def xlog1py(x, y):
    """x * log1p(y), with 0 where x == 0 (also at y == -1 or inf).

    >>> float(xlog1py(0.0, -1.0))
    0.0
    """
    x, y = _promote_float(x, y)
    return _xlog(x, y, lambda v: fnp.log1p(v), singular=(-1.0, np.inf), safe=0.0)


def _xlog(x, y, log, singular, safe):
    # d/dx = log(y) and d/dy = x / y stay exact except where x == 0 and log(y)
    # is infinite; there the value is 0 and both gradients are 0.
    masked = fnp.logical_and(fnp.equal(x, 0), fnp.logical_or(fnp.equal(y, singular[0]),
                                                             fnp.equal(y, singular[1])))
    log_y = fnp.where(masked, 0.0, log(fnp.where(masked, safe, y)))
    return fnp.multiply(x, log_y)


def one_hot(x, num_classes: int, *, dtype=np.float64, axis: int = -1):
    """One-hot encoding of integer labels along a new axis (out-of-range labels give
    all zeros, as in JAX).

    >>> one_hot(np.array([0, 2]), 3)
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    x = fnp.asarray(x)
    if not np.issubdtype(aval_of(x).dtype, np.integer):
        raise FungradTypeError(f"one_hot: labels must be integers, got {aval_of(x)}")
    ndim = aval_of(x).ndim
    axis = axis % (ndim + 1)
    classes = np.arange(num_classes, dtype=aval_of(x).dtype)
    classes = classes.reshape((1,) * axis + (num_classes,) + (1,) * (ndim - axis))
    labels = fnp.expand_dims(x, axis)
    return fnp.astype(fnp.equal(labels, classes), dtype)


# ---------------------------------------------------------------------------
# losses (PyTorch's conventions: reduction="mean" | "sum" | "none")
# ---------------------------------------------------------------------------

def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean"):
    """Binary cross-entropy on logits z with targets y in [0, 1]:
    softplus(z) - z * y per element, then reduced ("mean", "sum" or "none").

    One fused primitive (`lax.bce_with_logits`): finite at z = +-inf with y in
    {0, 1}; the gradient is (sigmoid(z) - y) / n for "mean".
    >>> float(binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3)))
    0.6931471805599453
    """
    z, y = _promote_float(logits, targets)
    if aval_of(z).shape != aval_of(y).shape:
        z, y = fnp.broadcast_arrays(z, y)
    loss = lax.bce_with_logits(z, y)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(probs, targets, reduction: str = "mean"):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 like PyTorch.

    Where a log is clamped its gradient is 0 (the clamped branch is constant).
    >>> float(binary_cross_entropy(np.array([0.0]), np.array([1.0])))
    100.0
    """
    p, y = _promote_float(probs, targets)
    p, y = fnp.broadcast_arrays(p, y)

    def clamped_log(v):
        positive = fnp.greater(v, 0)
        logv = fnp.log(fnp.where(positive, v, 1.0))
        return fnp.where(fnp.logical_and(positive, fnp.greater(logv, -100.0)), logv, -100.0)
    loss = fnp.negative(fnp.add(_mul0(y, clamped_log(p)),
                                _mul0(fnp.subtract(1.0, y), clamped_log(fnp.subtract(1.0, p)))))
    return _reduce(loss, reduction, "binary_cross_entropy")


def softmax_cross_entropy(logits, labels, axis: int = -1, reduction: str = "mean"):
    """Cross-entropy between softmax(logits) and `labels`.

    `labels` are integer class indices (shape logits.shape without `axis`) or
    float targets of logits' shape (one-hot or probabilities).  The per-example
    losses -sum(labels * log_softmax(logits)) are reduced like PyTorch's.
    >>> float(softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))
    0.6931471805599453
    """
    logits = _float(logits)
    labels = fnp.asarray(labels)
    n_classes = aval_of(logits).shape[axis_index(axis, aval_of(logits).ndim)]
    if np.issubdtype(aval_of(labels).dtype, np.integer):
        targets = one_hot(labels, n_classes, dtype=aval_of(logits).dtype, axis=axis)
    else:
        targets = labels
        if aval_of(targets).shape != aval_of(logits).shape:
            raise FungradValueError(
                f"softmax_cross_entropy: float targets must have the logits' shape "
                f"{aval_of(logits).shape}, got {aval_of(targets).shape}; pass integer "
                "class indices or one-hot targets")
        logits, targets = _promote_float(logits, targets)
    per_example = fnp.negative(fnp.sum(_mul0(targets, log_softmax(logits, axis=axis)),
                                       axis=axis))
    return _reduce(per_example, reduction, "softmax_cross_entropy")


def mse_loss(input, target, reduction: str = "mean"):
    """(input - target)^2, reduced.

    >>> float(mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0])))
    5.0
    """
    x, t = _promote_float(input, target)
    return _reduce(fnp.square(fnp.subtract(x, t)), reduction, "mse_loss")


def l1_loss(input, target, reduction: str = "mean"):
    """|input - target|, reduced (gradient 0 where they are equal).

    >>> float(l1_loss(np.array([1.0, -3.0]), np.array([0.0, 0.0])))
    2.0
    """
    x, t = _promote_float(input, target)
    return _reduce(fnp.abs(fnp.subtract(x, t)), reduction, "l1_loss")


def huber_loss(input, target, delta: float = 1.0, reduction: str = "mean"):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere, d = input - target.

    >>> float(huber_loss(np.array([0.5, 3.0]), np.zeros(2), reduction="sum"))
    2.625
    """
    x, t = _promote_float(input, target)
    d = fnp.subtract(x, t)
    small = fnp.less(fnp.abs(d), delta)
    d_small = fnp.where(small, d, 0.0)
    quadratic = fnp.multiply(0.5, fnp.square(d_small))
    linear = fnp.multiply(delta, fnp.subtract(fnp.abs(d), 0.5 * delta))
    return _reduce(fnp.where(small, quadratic, linear), reduction, "huber_loss")


# ---------------------------------------------------------------------------
# more of jax.nn's activations (compositions: their derivatives come for free)
# ---------------------------------------------------------------------------

def tanh(x):
    """Hyperbolic tangent (`jax.nn.tanh`, the same as fungrad.numpy.tanh)."""
    return fnp.tanh(_float(x))


def hard_tanh(x):
    """-1 below -1, x in [-1, 1], 1 above 1.

    >>> hard_tanh(np.array([-2.0, 0.5, 3.0]))      # array([-1. ,  0.5,  1. ])
    """
    return fnp.clip(_float(x), -1.0, 1.0)


def soft_sign(x):
    """x / (|x| + 1)."""
    x = _float(x)
    return x / (fnp.abs(x) + 1.0)


def selu(x):
    """Scaled ELU (Klambauer et al. 2017): scale * elu(x, alpha) with JAX's constants."""
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946
    return scale * elu(x, alpha)


def celu(x, alpha: float = 1.0):
    """Continuously differentiable ELU: max(x, 0) + alpha * min(exp(x / alpha) - 1, 0)."""
    x = _float(x)
    positive = fnp.greater(x, 0)
    return fnp.where(positive, x, alpha * fnp.expm1(fnp.where(positive, 0.0, x) / alpha))


def glu(x, axis: int = -1):
    """Gated linear unit: x split in two halves a, b along `axis`, a * sigmoid(b).

    >>> glu(np.array([1.0, 0.0]))                 # array([0.5])
    """
    x = _float(x)
    size = aval_of(x).shape[axis_index(axis, aval_of(x).ndim)]
    if size % 2:
        raise FungradValueError(f"glu: axis {axis} must have an even size, got {size}")
    a, b = fnp.split(x, 2, axis=axis)
    return a * sigmoid(b)


def standardize(x, axis=-1, mean=None, variance=None, epsilon: float = 1e-5, where=None):
    """(x - mean) / sqrt(variance + epsilon) along `axis`; mean and variance are
    computed from x when not given (`jax.nn.standardize`)."""
    if where is not None:
        raise FungradTypeError("standardize: where= is not supported; select with "
                               "fungrad.numpy.where before and after")
    x = _float(x)
    if mean is None:
        mean = fnp.mean(x, axis, keepdims=True)
    if variance is None:
        variance = fnp.mean(fnp.square(x), axis, keepdims=True) - fnp.square(mean)
    return (x - mean) * fnp.reciprocal(fnp.sqrt(variance + epsilon))


__all__ += ["tanh", "hard_tanh", "soft_sign", "selu", "celu", "glu", "standardize"]
