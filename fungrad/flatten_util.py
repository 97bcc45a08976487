"""`fungrad.flatten_util.ravel_pytree`: a pytree of arrays as one flat vector
(JAX's `jax.flatten_util`; autograd's `autograd.misc.flatten`).

    flat, unravel = ravel_pytree({"w": np.ones((2, 2)), "b": np.zeros(2)})
    flat.shape          # (6,): b's 2 values, then w's 4 (leaves in tree order)
    unravel(flat)       # {'b': array([0., 0.]), 'w': array([[1., 1.], [1., 1.]])}

Both directions are fungrad operations, so they work on traced values (inside
`grad`, `jit`, `vmap`) and are differentiated like any other code.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import numpy as fnp
from .errors import FungradTypeError, FungradValueError
from .pytree import tree_flatten
from .tracing import aval_of

__all__ = ["ravel_pytree"]


def ravel_pytree(pytree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """`(flat, unravel)`: every leaf raveled (C order) and concatenated in tree order
    into one 1-d array of the leaves' common dtype (NumPy promotion; float64 for an
    empty tree), and the function mapping such a vector back to a pytree of the
    original structure, shapes and dtypes.

    >>> flat, unravel = ravel_pytree((1.0, np.arange(3.0)))
    >>> flat                          # array([1., 0., 1., 2.])
    >>> unravel(2 * flat)             # (array(2.), array([0., 2., 4.]))
    """
    leaves, treedef = tree_flatten(pytree)
    arrays = [fnp.asarray(x) for x in leaves]
    avals = [aval_of(a) for a in arrays]
    shapes = [a.shape for a in avals]
    dtypes = [a.dtype for a in avals]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    out_dtype = fnp.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    total = sum(sizes)
    if arrays:
        flat = fnp.concatenate([fnp.ravel(fnp.asarray(a, dtype=out_dtype)) for a in arrays])
    else:
        flat = fnp.zeros((0,), out_dtype)

    def unravel(flat_vector: Any) -> Any:
        vector = fnp.asarray(flat_vector)
        aval = aval_of(vector)
        if aval.shape != (total,):
            raise FungradValueError(
                f"ravel_pytree's unravel: expected a 1-d array of length {total} (the size of "
                f"the raveled tree), got shape {aval.shape}")
        if aval.dtype != out_dtype:
            raise FungradTypeError(
                f"ravel_pytree's unravel: expected an array of dtype {out_dtype} (the dtype "
                f"ravel_pytree returned), got {aval.dtype}; convert it with .astype first")
        pieces, start = [], 0
        for shape, dtype, size in zip(shapes, dtypes, sizes, strict=True):
            piece = fnp.reshape(vector[start:start + size], shape)
            pieces.append(piece if dtype == out_dtype else fnp.asarray(piece, dtype=dtype))
            start += size
        return treedef.unflatten(pieces)

    return flat, unravel
