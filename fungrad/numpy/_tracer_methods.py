"""The operators and methods of `fungrad.tracing.Tracer` (`x + y`, `x @ y`, `x[i]`,
`x.sum()`, `x.at[i].set(v)`, ...) and NumPy's `__array_ufunc__`/`__array_function__`
protocols (`np.sin(x)` on a traced `x`), all running fungrad.numpy's functions.

`install()` sets them on `Tracer`; `fungrad.numpy` calls it once, on import.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import arrays
from ..arrays import as_array
from ..errors import TracerArrayConversionError, format_location, user_location
from ..tracing import Tracer
from . import (_coercion, _creation, _diagonals, _elementwise, _products, _promotion, _ranges,
               _reductions, _shape, _sorting, linalg)
from ._coercion import astype, ravel, reshape
from ._elementwise import (absolute, add, bitwise_and, bitwise_or, bitwise_xor, conjugate, equal,
                           floor_divide, greater, greater_equal, imag, invert, less, less_equal,
                           multiply, negative, not_equal, power, real, remainder, subtract,
                           true_divide)
from ._indexing import (_IndexUpdateHelper, _fresh, _getitem, _setitem, _view_method, at, getitem,
                        take, take_along_axis)
from ._products import dot, matmul
from ._shape import squeeze, swapaxes, transpose

__all__ = ["install"]

# fungrad.numpy's functions by name, for the methods and NumPy's protocols
_FUNCTIONS = {name: getattr(module, name)
              for module in (_promotion, _coercion, _shape, _creation, _elementwise, _reductions,
                             _ranges, _sorting, _diagonals, _products)
              for name in module.__all__}
# ... and those of _indexing that fungrad.numpy exports
_API = {**_FUNCTIONS, "getitem": getitem, "at": at, "take": take,
        "take_along_axis": take_along_axis}


def _reverse(fn):
    return lambda self, other: fn(other, self)


def install():
    """Set the operators and methods on `Tracer` (once: `fungrad.numpy` calls this)."""
    T = Tracer
    T.__add__ = lambda s, o: add(s, o)
    T.__radd__ = _reverse(add)
    T.__sub__ = lambda s, o: subtract(s, o)
    T.__rsub__ = _reverse(subtract)
    T.__mul__ = lambda s, o: multiply(s, o)
    T.__rmul__ = _reverse(multiply)
    T.__truediv__ = lambda s, o: true_divide(s, o)
    T.__rtruediv__ = _reverse(true_divide)
    T.__floordiv__ = lambda s, o: floor_divide(s, o)
    T.__rfloordiv__ = _reverse(floor_divide)
    T.__mod__ = lambda s, o: remainder(s, o)
    T.__rmod__ = _reverse(remainder)
    T.__divmod__ = lambda s, o: (floor_divide(s, o), remainder(s, o))
    T.__pow__ = lambda s, o: power(s, o)
    T.__rpow__ = _reverse(power)
    T.__matmul__ = lambda s, o: matmul(s, o)
    T.__rmatmul__ = _reverse(matmul)
    T.__neg__ = lambda s: negative(s)
    T.__pos__ = lambda s: s
    T.__abs__ = lambda s: absolute(s)
    T.__invert__ = lambda s: invert(s)
    T.__and__ = lambda s, o: bitwise_and(s, o)
    T.__rand__ = _reverse(bitwise_and)
    T.__or__ = lambda s, o: bitwise_or(s, o)
    T.__ror__ = _reverse(bitwise_or)
    T.__xor__ = lambda s, o: bitwise_xor(s, o)
    T.__rxor__ = _reverse(bitwise_xor)
    T.__eq__ = lambda s, o: equal(s, o)
    T.__ne__ = lambda s, o: not_equal(s, o)
    T.__lt__ = lambda s, o: less(s, o)
    T.__le__ = lambda s, o: less_equal(s, o)
    T.__gt__ = lambda s, o: greater(s, o)
    T.__ge__ = lambda s, o: greater_equal(s, o)
    T.__getitem__ = getitem
    T.T = property(lambda s: transpose(s))
    T.mT = property(lambda s: swapaxes(s, -1, -2))
    T.reshape = lambda s, *shape, order="C": reshape(
        s, shape[0] if len(shape) == 1 and not np.isscalar(shape[0]) else shape, order)
    T.transpose = lambda s, *axes: transpose(
        s, None if not axes else axes[0] if len(axes) == 1 and not np.isscalar(axes[0])
        else axes)
    T.astype = lambda s, dtype, **kw: astype(s, dtype)
    T.squeeze = lambda s, axis=None: squeeze(s, axis)
    T.ravel = lambda s, order="C": ravel(s, order)
    T.flatten = lambda s, order="C": ravel(s, order)
    T.dot = lambda s, other: dot(s, other)
    T.swapaxes = lambda s, a, b: swapaxes(s, a, b)
    T.copy = lambda s: s
    T.conj = T.conjugate = lambda s: conjugate(s)
    T.real = property(lambda s: real(s))
    T.imag = property(lambda s: imag(s))
    for name in ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "cumsum", "cumprod",
                 "var", "std", "all", "any", "clip", "round", "trace", "diagonal", "repeat",
                 "ptp", "nonzero", "flatten", "take", "sort", "argsort"):
        if name in _FUNCTIONS and name not in T.__dict__:
            setattr(T, name, _method(name))
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function
    _install_indexing_methods()
    arrays._at_helper[:] = [_ArrayIndexUpdateHelper]


class _ArrayIndexUpdateHelper:
    """`x.at` of a concrete `fungrad.Array`: the traced-array helper, with results
    returned as `fungrad.Array` so that updates chain (`x.at[0].set(1).at[1].set(2)`)."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getitem__(self, index) -> "_ArrayIndexUpdateRef":
        return _ArrayIndexUpdateRef(_IndexUpdateHelper(self.array)[index])


class _ArrayIndexUpdateRef:
    __slots__ = ("ref",)

    def __init__(self, ref):
        self.ref = ref

    def __getattr__(self, name):
        method = getattr(self.ref, name)
        return lambda *args, **kwargs: as_array(method(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self.ref)


def _install_indexing_methods():
    """Item assignment, `x.at[...]`, and the view bookkeeping of `_indexing` wrapped
    around the methods above (reshape, transpose, ... of a traced array are views)."""
    T = Tracer
    T.__getitem__ = _getitem
    T.__setitem__ = _setitem
    T.at = property(_IndexUpdateHelper, doc="JAX-style functional updates: x.at[idx].set(v)")
    for name, how in (("reshape", "x.reshape"), ("transpose", "x.transpose"),
                      ("ravel", "x.ravel"), ("squeeze", "x.squeeze"),
                      ("swapaxes", "x.swapaxes")):
        setattr(T, name, _view_method(name, getattr(T, name), how))
    for name, how in (("T", "x.T"), ("mT", "x.mT")):
        prop = getattr(T, name)
        setattr(T, name, property(_view_method(name, prop.fget, how)))
    for name in ("copy", "astype", "flatten", "conj", "conjugate", "__pos__"):
        if hasattr(T, name):
            setattr(T, name, _fresh(getattr(T, name)))
    if "take" not in T.__dict__:
        T.take = lambda self, indices, axis=None, mode=None: take(self, indices, axis, mode=mode)


def _method(name):
    def method(self, *args, **kwargs):
        return _FUNCTIONS[name](self, *args, **kwargs)
    method.__name__ = name
    return method


_UFUNC_NAMES = {"true_divide": "divide"}
# ufunc methods with a fungrad.numpy equivalent: (ufunc, method) -> function name
_UFUNC_METHODS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
                  ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
                  ("logical_and", "reduce"): "all", ("logical_or", "reduce"): "any",
                  ("add", "accumulate"): "cumsum", ("multiply", "accumulate"): "cumprod",
                  ("multiply", "outer"): "outer"}


_NOT_API = {"aval_of", "current_trace", "getitem"}


def _own_function(name):
    """fungrad.numpy's public function called `name`, or None."""
    fn = _API.get(name)
    if name.startswith("_") or name in _NOT_API or not callable(fn) or isinstance(fn, type) \
            or not (getattr(fn, "__module__", None) or "").startswith("fungrad"):
        return None
    return fn


def _unsupported(what, suggestion):
    return TracerArrayConversionError(
        f"{what} was called on a traced value at {format_location(user_location(3))}; NumPy "
        f"cannot trace or differentiate it. {suggestion}")


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NumPy ufuncs on traced values (np.sin(x), np.add.reduce(x)) run fungrad.numpy's."""
    name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
    out = kwargs.pop("out", None)
    if out is not None and builtins.any(o is not None for o in (
            out if isinstance(out, tuple) else (out,))):
        raise _unsupported(f"numpy.{ufunc.__name__} with out=",
                           f"Arrays are immutable: use y = fungrad.numpy.{name}(...) instead.")
    if method == "__call__":
        fn = _own_function(name)
        dtype = kwargs.pop("dtype", None)
        if fn is None or kwargs:
            raise _unsupported(
                f"numpy.{ufunc.__name__}" + (f" with {', '.join(kwargs)}=" if kwargs else ""),
                f"Use fungrad.numpy.{name} instead." if fn is not None else
                f"fungrad.numpy has no {name}; write it with fungrad.numpy operations.")
        res = fn(*inputs)
        return res if dtype is None else astype(res, dtype)
    target = _UFUNC_METHODS.get((name, method))
    if target is None:
        raise _unsupported(
            f"numpy.{ufunc.__name__}.{method}",
            "fungrad.numpy supports add/multiply/maximum/minimum/logical_and/logical_or "
            ".reduce, add/multiply .accumulate and multiply.outer; write it with "
            "fungrad.numpy operations.")
    if method == "reduce":
        kwargs.setdefault("axis", 0)
    if method == "accumulate":
        kwargs.setdefault("axis", 0)
    return _FUNCTIONS[target](*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    """NumPy functions (np.sum, np.stack, ...) on traced values run fungrad.numpy's."""
    name = func.__name__
    module = getattr(func, "__module__", "") or ""
    fn = None
    if module.startswith("numpy.linalg"):
        fn = getattr(linalg, name, None)
    else:
        fn = _own_function(name)
    if fn is None:
        parts = module.split(".")
        public = (module if len(parts) > 1 and not parts[1].startswith("_") else "numpy") + \
            "." + name
        raise _unsupported(public, f"fungrad.{public} does not exist; write it with "
                                   "fungrad.numpy operations.")
    return fn(*args, **kwargs)
