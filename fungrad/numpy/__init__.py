"""`fungrad.numpy`: NumPy's API on top of the primitives.

Broadcasting and dtype promotion happen here (primitives are strict): NumPy 2's
rules, with Python scalars weak (`float32_array * 2.0` stays float32) and float64
the default float.  On concrete inputs outside any trace the functions simply
compute and return NumPy arrays.

The modules, each importing only those above it:

    _promotion       dtypes, weak Python scalars, promotion and broadcasting
    _coercion        array, asarray, astype, operand coercion (and the joins it needs)
    _shape           reshaping, transposing, broadcasting, joining and splitting
    _creation        full, zeros, ones, empty, *_like, eye, identity
    _elementwise     ufunc-like functions, where, clip
    _reductions      sum, mean, var, max, argmax, cumsum, all, allclose, diff, ...
    _ranges          arange, linspace, logspace, meshgrid
    _sorting         sort, argsort, median
    _diagonals       diagonal, diag, trace, tril, triu, tri
    _products        matmul, dot, inner, outer, tensordot, kron, einsum
    _indexing        getitem, advanced indexing, x.at[...], item assignment
    linalg           fungrad.numpy.linalg
    _tracer_methods  Tracer's operators and methods, NumPy's dispatch protocols
"""
from __future__ import annotations

import types as _types

# names fungrad.numpy has always had in its namespace
import builtins  # noqa: F401
import functools  # noqa: F401

import numpy as np  # noqa: F401

from .. import lax  # noqa: F401
from ..errors import FungradIndexError, FungradTypeError, FungradValueError  # noqa: F401
from ..tracing import Tracer, aval_of  # noqa: F401

from ._promotion import *  # noqa: F401,F403
from ._coercion import *  # noqa: F401,F403
from ._shape import *  # noqa: F401,F403
from ._creation import *  # noqa: F401,F403
from ._elementwise import *  # noqa: F401,F403
from ._reductions import *  # noqa: F401,F403
from ._ranges import *  # noqa: F401,F403
from ._sorting import *  # noqa: F401,F403
from ._diagonals import *  # noqa: F401,F403
from ._products import *  # noqa: F401,F403
from ._indexing import at, getitem, take, take_along_axis  # noqa: F401
from . import linalg  # noqa: F401  (fungrad.numpy.linalg)
from . import fft  # noqa: F401  (fungrad.numpy.fft)
from . import (_coercion, _creation, _diagonals, _elementwise, _products, _promotion, _ranges,
               _reductions, _shape, _sorting, _tracer_methods)

_tracer_methods.install()

# the functions call fungrad.numpy their home, as before the split into modules
for _module in (_promotion, _coercion, _shape, _creation, _elementwise, _reductions, _ranges,
                _sorting, _diagonals, _products):
    for _name in _module.__all__:
        _fn = getattr(_module, _name)
        if isinstance(_fn, _types.FunctionType) and _fn.__module__ == _module.__name__:
            _fn.__module__ = __name__
getitem.__module__ = __name__
del _module, _name, _fn
