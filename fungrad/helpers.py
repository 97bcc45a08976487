"""Helpers composed from the public transforms: `eval_shape`, Hessian-vector
products, and autograd's `elementwise_grad`.

    import fungrad as fg
    fg.hvp(f, (x,), (v,))                       # H(x) @ v, forward over reverse
    fg.eval_shape(f, fg.ShapeDtypeStruct((3,), np.float64))   # f's output shapes, no FLOPs
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import numpy as fnp
from .api import grad, jvp, vjp
from .core import ShapedArray
from .errors import FungradTypeError, describe_function
from .pytree import tree_flatten
from .tracing import Tracer, trace_to_jaxpr

__all__ = ["ShapeDtypeStruct", "eval_shape", "hvp", "hessian_vector_product", "elementwise_grad"]


class ShapeDtypeStruct:
    """A shape and a dtype, standing for an array in `eval_shape` (JAX's class).

    >>> fg.ShapeDtypeStruct((2, 3), np.float32)     # ShapeDtypeStruct(shape=(2, 3), dtype=float32)
    """
    __slots__ = ("shape", "dtype")

    def __init__(self, shape: Sequence[int], dtype: Any):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ShapeDtypeStruct) and (self.shape, self.dtype) == (
            other.shape, other.dtype)

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype))

    def __repr__(self) -> str:
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


def _leaf_aval(x: Any, where: str) -> ShapedArray:
    if isinstance(x, Tracer):
        return x.aval
    if isinstance(x, (np.ndarray, np.generic, bool, int, float, complex)):
        return ShapedArray.of(x)
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return ShapedArray(tuple(int(d) for d in x.shape), np.dtype(x.dtype))
    raise FungradTypeError(
        f"{where}: an argument leaf of type {type(x).__name__} is neither an array nor a "
        "ShapeDtypeStruct (anything with .shape and .dtype); close over other values instead")


def eval_shape(fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """The shapes and dtypes of `fun(*args, **kwargs)` as a pytree of
    `ShapeDtypeStruct`, found by tracing `fun` without computing anything.  Argument
    leaves may be arrays, tracers or `ShapeDtypeStruct`s.

    >>> fg.eval_shape(lambda x: x @ x.T, fg.ShapeDtypeStruct((3, 5), np.float32))
    ShapeDtypeStruct(shape=(3, 3), dtype=float32)
    """
    where = f"eval_shape({describe_function(fun)})"
    leaves, in_tree = tree_flatten((args, kwargs))
    avals = [_leaf_aval(x, where) for x in leaves]
    out_tree_box = []

    def flat_fun(*tracers):
        a, kw = in_tree.unflatten(list(tracers))
        out_leaves, out_tree = tree_flatten(fun(*a, **kw))
        out_tree_box.append(out_tree)
        return out_leaves

    closed = trace_to_jaxpr(flat_fun, avals)
    return out_tree_box[0].unflatten([ShapeDtypeStruct(a.shape, a.dtype)
                                      for a in closed.out_avals])


def hvp(fun: Callable, primals: Sequence, tangents: Sequence) -> Any:
    """The Hessian-vector product of scalar `fun` at `primals` along `tangents`:
    `jvp(grad(fun), primals, tangents)[1]` (forward over reverse, the cheapest form;
    one gradient's cost, never the Hessian).  With several primals, `grad` is taken
    with respect to the first, as in JAX's documentation.

    >>> fg.hvp(lambda x: fnp.sum(x ** 3), (np.array([1., 2.]),), (np.array([1., 0.]),))
    array([6., 0.])
    """
    return jvp(grad(fun), tuple(primals), tuple(tangents))[1]


def hessian_vector_product(fun: Callable, argnum: int = 0) -> Callable:
    """autograd's `hessian_vector_product` (alias `hessian_tensor_product`): a function
    `(*args, vector) -> H @ vector`, H the Hessian of scalar `fun` in argument `argnum`.
    Computed as `hvp` does (forward over reverse).

    >>> hv = fg.hessian_vector_product(lambda x: fnp.sum(x ** 3))
    >>> hv(np.array([1., 2.]), np.array([1., 0.]))     # array([6., 0.])
    """
    def hessian_times(*args_and_vector: Any) -> Any:
        *args, vector = args_and_vector
        args = list(args)

        def of_one(x):
            full = args[:argnum] + [x] + args[argnum + 1:]
            return fun(*full)
        return hvp(of_one, (args[argnum],), (vector,))
    hessian_times.__name__ = f"hessian_vector_product({describe_function(fun)})"
    return hessian_times


def elementwise_grad(fun: Callable, argnum: int = 0) -> Callable:
    """autograd's `elementwise_grad`: the vector-Jacobian product of `fun` with a
    cotangent of ones, which for an elementwise `fun` is the derivative at every
    element (for other functions: the gradient of the sum of the outputs).

    >>> fg.elementwise_grad(fnp.tanh)(np.array([0.0, 1.0]))    # 1 - tanh(x)**2
    """
    def derivative(*args: Any) -> Any:
        args = list(args)

        def of_one(x):
            return fun(*(args[:argnum] + [x] + args[argnum + 1:]))
        out, pullback = vjp(of_one, args[argnum])
        return pullback(fnp.ones_like(out))[0]
    derivative.__name__ = f"elementwise_grad({describe_function(fun)})"
    return derivative
