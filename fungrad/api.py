"""Every user-facing transform in one module: `grad`, `value_and_grad`, `vjp`, `jvp`,
`linearize`, `jacfwd`, `jacrev`, `jacobian`, `hessian`, `vmap`, `jit`,
`linear_transpose` and `make_jaxpr`.

Each wrapper flattens pytrees, traces the user's function (`tracing`), rewrites
the jaxpr (`transforms/`), caches the rewrite by the program's structure
(`api_util.cached_rewrite`) and runs it: inlined into an enclosing trace, or on
the backend's one execution policy (`backend.execution`).  Nothing below this
module sees a pytree or a user's function signature.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from . import api_util
from .core import Jaxpr, ShapedArray, Var
from .errors import FungradTypeError, FungradValueError, describe_function, format_location
from .jitted import JittedFunction
from .primitives.base import convert_element_type, reshape, transpose
from .primitives.elementwise import add, eq
from .primitives.shape import concatenate, iota
from .pytree import flatten_up_to, tree_flatten, tree_map, tree_structure
from .tracing import Tracer, as_value, aval_of, current_trace, make_jaxpr, trace_to_jaxpr
from .transforms.ad import (_is_float, grad_jaxpr, nonlinear_use, partial_eval_jaxpr, vjp_eval,
                            vjp_jaxpr)
from .transforms.jvp import jvp_jaxpr
from .transforms.simplify import simplify_jaxpr
from .transforms.util import Zero, build_jaxpr, instantiate
from .transforms.vmap import vmap_jaxpr

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "jacfwd", "jacrev", "jacobian",
           "hessian", "vmap", "jit", "linear_transpose", "make_jaxpr"]


# ---------------------------------------------------------------------------
# reverse and forward mode
# ---------------------------------------------------------------------------

def _check_float_inputs(where: str, fun: Callable, leaves: Sequence, wrt: Sequence[bool],
                        allow_int: bool, call: Any = None) -> None:
    for i, (x, w) in enumerate(zip(leaves, wrt)):
        if w and not _is_float(aval_of(x)) and not allow_int:
            raise FungradTypeError(
                f"{where}({describe_function(fun)}): differentiating with respect to "
                f"{_argument_name(fun, call, i)}, an input of dtype {aval_of(x).dtype} "
                f"({aval_of(x)}); only floating-point inputs can be differentiated.\n  Pass a "
                "float array (e.g. 2.0 instead of 2), or leave the argument out of argnums.")


def _check_holomorphic_inputs(where: str, fun: Callable, leaves: Sequence, wrt: Sequence[bool],
                              holomorphic: bool) -> None:
    """JAX's rule on complex inputs: `holomorphic=True` needs complex inputs, and jacfwd
    without it needs real ones (its basis would miss the imaginary directions)."""
    for x, w in zip(leaves, wrt):
        dtype = aval_of(x).dtype
        if not w:
            continue
        if holomorphic and dtype.kind != "c":
            raise FungradTypeError(
                f"{where}({describe_function(fun)}) with holomorphic=True requires inputs "
                f"with complex dtype, but got {dtype}.\n  Pass complex inputs (e.g. "
                "x.astype(complex)), or leave holomorphic unset for a real function.")
        if not holomorphic and where == "jacfwd" and dtype.kind == "c":
            raise FungradTypeError(
                f"jacfwd({describe_function(fun)}) requires real-valued inputs (input dtype "
                f"that is a sub-dtype of np.floating), but got {dtype}.\n  For holomorphic "
                "differentiation, pass holomorphic=True. For differentiation of "
                "non-holomorphic functions involving complex inputs, use jvp directly.")


def _check_holomorphic_outputs(where: str, fun: Callable, out_avals: Sequence[ShapedArray],
                               holomorphic: bool) -> None:
    """JAX's rule on outputs: reverse mode without `holomorphic=True` needs real outputs
    (grad's seed 1.0 would only pull back the real part); with it, complex outputs."""
    for aval in out_avals:
        if holomorphic and aval.dtype.kind != "c":
            raise FungradTypeError(
                f"{where}({describe_function(fun)}) with holomorphic=True requires outputs "
                f"with complex dtype, but got {aval.dtype}.")
        if not holomorphic and where != "jacfwd" and aval.dtype.kind == "c":
            raise FungradTypeError(
                f"{where}({describe_function(fun)}) requires real-valued outputs (output "
                f"dtype that is a sub-dtype of np.floating), but got {aval.dtype}.\n  For "
                "holomorphic differentiation, pass holomorphic=True. For differentiation of "
                "non-holomorphic functions involving complex outputs, use vjp directly "
                "(or differentiate a real function of the output, such as abs(out) ** 2).")


def _argument_name(fun: Callable, call: Any, leaf_index: int) -> str:
    """`argument 1 ('n')` for the positional argument holding a flat leaf."""
    if call is None:
        return "an argument"
    for pos, (lo, hi) in enumerate(call.arg_slices):
        if lo <= leaf_index < hi:
            import inspect
            try:
                params = list(inspect.signature(fun).parameters)
                name = f" ({params[pos]!r})" if pos < len(params) else ""
            except (TypeError, ValueError):
                name = ""
            return f"argument {pos}{name}"
    return "an argument"


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   holomorphic: bool = False, allow_int: bool = False) -> Callable:
    """Return a function computing `(fun(*args), gradient of fun w.r.t. args[argnums])`.

    `fun` must return a real scalar (or `(scalar, aux)` with `has_aux=True`); with
    `holomorphic=True`, a complex scalar of complex inputs (see `grad`).
    >>> value_and_grad(lambda x: x * x)(3.0)     # (9.0, 6.0)
    """
    return _value_and_grad(fun, argnums, has_aux, allow_int, keep_value=True,
                           holomorphic=holomorphic)


def _value_and_grad(fun, argnums, has_aux, allow_int, keep_value, holomorphic=False):
    name = "value_and_grad" if keep_value else "grad"
    api_util.check_function(name, fun)
    api_util.check_argnums(name, fun, argnums)

    def value_and_grad_f(*args, **kwargs):
        call = api_util.prepare_call(name, fun, args, kwargs, argnums)
        _check_float_inputs(name, fun, call.leaves, call.wrt, allow_int, call)
        _check_holomorphic_inputs(name, fun, call.leaves, call.wrt, holomorphic)
        closed, out_tree = call.trace()
        api_util.check_scalar_output(name, fun, closed, out_tree, has_aux, holomorphic)
        derived = api_util.cached_rewrite(
            (name, tuple(call.wrt)), closed,
            lambda j: simplify_jaxpr(grad_jaxpr(j, call.wrt, keep_value)))
        outs = api_util.execute(derived, closed.consts, call.leaves)
        n_out = len(closed.out_avals) - (not keep_value)
        grads = call.unflatten_wrt(outs[n_out:])
        if not keep_value:
            value = (None, out_tree.children[1].unflatten(outs[:n_out])) if has_aux else None
        else:
            value = out_tree.unflatten(outs[:n_out])
        if has_aux:
            value, aux = value
            return (value, aux), grads
        return value, grads
    value_and_grad_f.__name__ = f"value_and_grad({getattr(fun, '__name__', 'fun')})"
    value_and_grad_f.__wrapped__ = fun
    return value_and_grad_f


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         holomorphic: bool = False, allow_int: bool = False) -> Callable:
    """Return a function computing the gradient of scalar-valued `fun`.

    With `argnums` a tuple, the result is a tuple of gradients; each has the pytree
    structure of its argument.  `has_aux=True`: fun returns `(value, aux)` and the
    result is `(gradient, aux)`.
    >>> grad(lambda x: (x + 2) ** 2 + 3)(2.0)    # 8.0

    Complex inputs follow JAX: for a real-valued `fun` of complex z = x + iy the
    result is df/dx - i df/dy, the conjugate of the steepest-ascent direction
    (`grad(lambda z: abs(z) ** 2)(1 + 2j) == 2 - 4j`).  `holomorphic=True`: `fun`
    is holomorphic with complex inputs and a complex output, and the result is the
    complex derivative f'(z) (`grad(lambda z: z * z, holomorphic=True)(1j) == 2j`).
    """
    vg = _value_and_grad(fun, argnums, has_aux, allow_int, keep_value=False,
                         holomorphic=holomorphic)

    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        if has_aux:
            return g, value[1]
        return g
    grad_f.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    grad_f.__wrapped__ = fun
    return grad_f


class _Pullback:
    """The function returned by `vjp`: maps output cotangents to input cotangents,
    any number of times, without recomputing the forward pass."""

    def __init__(self, fun, bwd: Jaxpr, residuals: list, out_tree, out_avals, in_tree_of_args,
                 n_args):
        self._fun, self._bwd, self._residuals = fun, bwd, residuals
        self._out_tree, self._out_avals = out_tree, out_avals
        self._args_tree, self._n_args = in_tree_of_args, n_args

    def __call__(self, cotangent: Any) -> tuple:
        leaves, tree = tree_flatten(cotangent)
        if tree != self._out_tree:
            raise FungradTypeError(
                f"vjp({describe_function(self._fun)}): the cotangent has structure {tree}, "
                f"but the function's output has structure {self._out_tree}")
        cts = []
        for ct, aval in zip(leaves, self._out_avals):
            ct = as_value(ct)
            if aval_of(ct).shape != aval.shape:
                raise FungradValueError(
                    f"vjp({describe_function(self._fun)}): a cotangent of shape "
                    f"{aval_of(ct).shape} was given for an output of shape {aval.shape}; "
                    "it must have the output's shape (e.g. ones_like(out))")
            if aval_of(ct).dtype != aval.dtype:
                ct = convert_element_type(ct, aval.dtype)
            cts.append(ct)
        outs = api_util.execute(self._bwd, [], list(self._residuals) + cts)
        return self._args_tree.unflatten(outs)


def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """`(fun(*primals), pullback)`; `pullback(ct)` returns a tuple with one
    cotangent per primal.  Call the pullback again with another cotangent to get
    another vector-Jacobian product (the forward pass is not recomputed).
    >>> out, pullback = vjp(lambda x: (x + 1) ** 2, np.eye(2))
    >>> pullback(np.ones((2, 2)))
    """
    call = api_util.prepare_call("vjp", fun, primals, {}, tuple(range(len(primals))))
    _check_float_inputs("vjp", fun, call.leaves, call.wrt, False, call)
    closed, out_tree = call.trace()
    main_tree, n_main = out_tree, len(closed.out_avals)
    if has_aux:
        n_main = api_util.aux_split("vjp", fun, out_tree)
        main_tree = out_tree.children[0]
    j = closed.jaxpr
    n_in, n_out = len(j.invars), len(j.outvars)

    def build(jaxpr):
        main = Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
        joint = simplify_jaxpr(vjp_jaxpr(main, call.wrt, n_main))
        unknowns = [False] * n_in + [True] * n_main
        out_unknowns = [False] * n_out + [True] * sum(call.wrt)
        return partial_eval_jaxpr(joint, unknowns, out_unknowns)

    fwd, bwd, n_res = api_util.cached_rewrite(("vjp", tuple(call.wrt), n_main), closed, build)
    outs = api_util.execute(fwd, closed.consts, call.leaves)
    ys, residuals = outs[:n_out], outs[n_out:]
    out = out_tree.unflatten(ys)
    pullback = _Pullback(fun, bwd, residuals, main_tree, closed.out_avals[:n_main],
                         tree_structure(tuple(primals)), len(primals))
    if has_aux:
        return out[0], pullback, out[1]
    return out, pullback


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False):
    """`(fun(*primals), J(primals) @ tangents)`: a forward-mode directional derivative.
    >>> jvp(fnp.sin, (0.0,), (1.0,))     # (0.0, 1.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise FungradTypeError("jvp: primals and tangents must be tuples or lists, "
                               f"got {type(primals).__name__} and {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise FungradValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    call = api_util.prepare_call("jvp", fun, tuple(primals), {}, tuple(range(len(primals))))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if t_tree != tree_structure(tuple(primals)):
        raise FungradTypeError(f"jvp: tangents have structure {t_tree}, primals "
                               f"{tree_structure(tuple(primals))}")
    t_leaves = [as_value(t) for t in t_leaves]
    for x, t in zip(call.leaves, t_leaves):
        if aval_of(x).shape != aval_of(t).shape:
            raise FungradValueError(
                f"jvp({describe_function(fun)}): a tangent of shape {aval_of(t).shape} was "
                f"given for a primal of shape {aval_of(x).shape}")
    wrt = [_is_float(aval_of(x)) for x in call.leaves]
    closed, out_tree = call.trace()
    derived = api_util.cached_rewrite(("jvp", tuple(wrt)), closed,
                                      lambda j: simplify_jaxpr(jvp_jaxpr(j, wrt)))
    tangents_in = []
    for x, t, w in zip(call.leaves, t_leaves, wrt):
        if w:
            if aval_of(t).dtype != aval_of(x).dtype:
                t = convert_element_type(t, aval_of(x).dtype)
            tangents_in.append(t)
    outs = api_util.execute(derived, closed.consts, list(call.leaves) + tangents_in)
    n = len(closed.out_avals)
    ys, ts = out_tree.unflatten(outs[:n]), out_tree.unflatten(outs[n:])
    if has_aux:
        return ys[0], ts[0], ys[1]
    return ys, ts


def linearize(fun: Callable, *primals: Any):
    """`(fun(*primals), f_jvp)` where `f_jvp(*tangents)` evaluates the jvp at the
    primals without recomputing the forward pass."""
    call = api_util.prepare_call("linearize", fun, primals, {}, tuple(range(len(primals))))
    _check_float_inputs("linearize", fun, call.leaves, call.wrt, False, call)
    closed, out_tree = call.trace()
    n_in, n_out = len(call.leaves), len(closed.out_avals)

    def build(jaxpr):
        joint = simplify_jaxpr(jvp_jaxpr(jaxpr, call.wrt))
        return partial_eval_jaxpr(joint, [False] * n_in + [True] * sum(call.wrt),
                                  [False] * n_out + [True] * n_out)

    fwd, lin, n_res = api_util.cached_rewrite(("linearize", tuple(call.wrt)), closed, build)
    outs = api_util.execute(fwd, closed.consts, call.leaves)
    ys, residuals = outs[:n_out], outs[n_out:]
    primals_tree = tree_structure(tuple(primals))

    def f_jvp(*tangents):
        t_leaves, t_tree = tree_flatten(tuple(tangents))
        if t_tree != primals_tree:
            raise FungradTypeError(f"linearize: tangents have structure {t_tree}, primals "
                                   f"{primals_tree}")
        ts = [as_value(t) for t, w in zip(t_leaves, call.wrt) if w]
        return out_tree.unflatten(api_util.execute(lin, [], list(residuals) + ts))
    return out_tree.unflatten(ys), f_jvp


# ---------------------------------------------------------------------------
# jacobians and hessians (one batched jvp / vjp over the identity basis)
# ---------------------------------------------------------------------------

def _std_basis(avals: Sequence[ShapedArray]) -> tuple[list, int]:
    """The identity basis over the concatenated flat leaves: one block per leaf of
    shape (total,) + leaf.shape.  Built from `iota` so that simplification can see
    it is an identity (a diagonal), not an opaque constant."""
    total = sum(a.size for a in avals)
    blocks, start = [], 0
    for a in avals:
        rows = iota(np.int64, (total, a.size), 0)
        cols = iota(np.int64, (total, a.size), 1)
        if start:
            cols = add(cols, np.int64(start))
        block = convert_element_type(eq(rows, cols), a.dtype)
        blocks.append(reshape(block, (total,) + a.shape))
        start += a.size
    return blocks, total


def _staged(where: str, fun: Callable, argnums, body: Callable,
            holomorphic: bool = False) -> Callable:
    """Run `body(call)` as one traced program: cached by structure, simplified as a
    whole (so the basis structure of a jacobian is visible), then executed.  Inside
    an enclosing trace the body simply runs (and is inlined)."""
    def staged(*args, **kwargs):
        call = api_util.prepare_call(where, fun, args, kwargs, argnums)
        _check_float_inputs(where, fun, call.leaves, call.wrt, False, call)
        _check_holomorphic_inputs(where, fun, call.leaves, call.wrt, holomorphic)
        if any(isinstance(x, Tracer) for x in call.leaves) or current_trace() is not None:
            return body(call)
        out_tree_box = []

        def flat_body(*leaves):
            out = body(call.with_leaves(leaves))
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        closed = trace_to_jaxpr(flat_body, [aval_of(x) for x in call.leaves],
                                sources=call.leaves)
        api_util.check_forward(closed, call.leaves)
        derived = api_util.cached_rewrite(
            (where, tuple(call.wrt)), closed,
            simplify_jaxpr)
        outs = api_util.execute(derived, closed.consts, call.leaves)
        return out_tree_box[0].unflatten(outs)
    staged.__name__ = f"{where}({getattr(fun, '__name__', 'fun')})"
    staged.__wrapped__ = fun
    return staged


def _check_chunk_size(where: str, chunk_size) -> None:
    if chunk_size is not None and (not api_util._is_int(chunk_size) or chunk_size < 1):
        raise FungradValueError(f"{where}: chunk_size must be a positive int or None, got "
                                f"{chunk_size!r}")


def _batched_over_basis(fn: Callable, basis: list, total: int, chunk_size: int | None,
                        out_axes):
    """vmap(fn) over the basis rows, all at once or `chunk_size` rows at a time
    (bounding the memory of the batched intermediates); results concatenated."""
    batched = vmap(fn, out_axes=out_axes)
    if chunk_size is None or chunk_size >= total:
        return batched(*basis)
    if chunk_size < 1:
        raise FungradValueError(f"chunk_size must be a positive int, got {chunk_size}")
    pieces = [batched(*[b[lo:lo + chunk_size] for b in basis])
              for lo in range(0, total, chunk_size)]
    axes_leaves = out_axes if isinstance(out_axes, tuple) else (out_axes,)

    def join(*parts, axis):
        return parts[0] if axis is None else concatenate(parts, axis)
    if not isinstance(out_axes, tuple):
        return tree_map(lambda *ps: join(*ps, axis=out_axes), *pieces)
    return tuple(tree_map(lambda *ps, a=a: join(*ps, axis=a), *[p[i] for p in pieces])
                 if a is not None else pieces[0][i] for i, a in enumerate(axes_leaves))


def move_axis_to_back(x, axis: int):
    """x with `axis` moved to the last position."""
    nd = aval_of(x).ndim
    return transpose(x, tuple(i for i in range(nd) if i != axis) + (axis,))


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False, chunk_size: int | None = None) -> Callable:
    """The Jacobian of `fun` by forward mode: one batched jvp over the input basis.

    For each output leaf and argument leaf the block has shape out.shape + in.shape;
    with `argnums` a tuple each output leaf holds a tuple of blocks.  `chunk_size`
    pushes that many basis vectors at a time (less memory, more passes).
    Inputs must be real unless `holomorphic=True` (complex inputs and outputs; the
    result is the complex derivative), as in JAX.
    >>> jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))    # [[2, 0], [0, 4]]
    """
    api_util.check_function("jacfwd", fun)
    api_util.check_argnums("jacfwd", fun, argnums)
    _check_chunk_size("jacfwd", chunk_size)

    def body(call):
        diff = [x for x, w in zip(call.leaves, call.wrt) if w]
        avals = [aval_of(x) for x in diff]
        basis, total = _std_basis(avals)

        def f_flat(*xs):
            return call.call_flat(call.merge(xs))

        def pushforward(*tangents):
            if has_aux:
                return jvp(f_flat, tuple(diff), tuple(tangents), has_aux=True)
            y, t = jvp(f_flat, tuple(diff), tuple(tangents))
            return y, t, None

        y, t_out, aux = _batched_over_basis(pushforward, basis, total, chunk_size,
                                            (None, 0, None))
        y_leaves, y_tree = tree_flatten(y)
        if holomorphic:
            _check_holomorphic_outputs("jacfwd", fun, [aval_of(v) for v in y_leaves], True)
        jac_leaves = []
        for yl, t in zip(y_leaves, tree_flatten(t_out)[0], strict=True):
            yshape = aval_of(yl).shape
            t = move_axis_to_back(t, 0)                     # out.shape + (total,)
            parts, start = [], 0
            for a in avals:
                parts.append(reshape(t[..., start:start + a.size], yshape + a.shape))
                start += a.size
            jac_leaves.append(call.unflatten_wrt(parts))
        result = y_tree.unflatten(jac_leaves)
        return (result, aux) if has_aux else result

    return _staged("jacfwd", fun, argnums, body, holomorphic)


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
           holomorphic: bool = False, chunk_size: int | None = None) -> Callable:
    """The Jacobian of `fun` by reverse mode: one batched vjp over the output basis
    (`chunk_size` basis vectors at a time if given).  Outputs must be real unless
    `holomorphic=True` (complex inputs and outputs), as in JAX; complex inputs of a
    real function give conjugate gradients, like `grad`.
    >>> jacrev(lambda x: fnp.stack([x[0] ** 2 + 3 * x[1], x[1] ** 2 + 2 * x[0]]))(
    ...     np.array([2.0, 3.0]))                            # [[4, 3], [2, 6]]
    """
    api_util.check_function("jacrev", fun)
    api_util.check_argnums("jacrev", fun, argnums)
    _check_chunk_size("jacrev", chunk_size)

    def body(call):
        diff = [x for x, w in zip(call.leaves, call.wrt) if w]
        avals = [aval_of(x) for x in diff]

        def f_flat(*xs):
            return call.call_flat(call.merge(xs))
        if has_aux:
            y, pullback, aux = vjp(f_flat, *diff, has_aux=True)
        else:
            y, pullback = vjp(f_flat, *diff)
        y_leaves, y_tree = tree_flatten(y)
        y_avals = [aval_of(v) for v in y_leaves]
        _check_holomorphic_outputs("jacrev", fun, y_avals, holomorphic)
        basis, total = _std_basis(y_avals)
        cts = _batched_over_basis(lambda *b: pullback(y_tree.unflatten(b)), basis, total,
                                  chunk_size, 0)              # per input: (total,) + in
        jac_leaves, start = [], 0
        for ya in y_avals:
            parts = [reshape(c[start:start + ya.size], ya.shape + a.shape)
                     for c, a in zip(cts, avals)]
            jac_leaves.append(call.unflatten_wrt(parts))
            start += ya.size
        result = y_tree.unflatten(jac_leaves)
        return (result, aux) if has_aux else result

    return _staged("jacrev", fun, argnums, body, holomorphic)


jacobian = jacrev


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
            holomorphic: bool = False) -> Callable:
    """The Hessian: `jacfwd(jacrev(fun))` (forward over reverse); `holomorphic=True`
    for a holomorphic function of complex inputs (both passes holomorphic)."""
    return jacfwd(jacrev(fun, argnums, has_aux=has_aux, holomorphic=holomorphic), argnums,
                  has_aux=has_aux, holomorphic=holomorphic)


# ---------------------------------------------------------------------------
# vmap
# ---------------------------------------------------------------------------

def _unbatched_aval(x, d: int | None) -> ShapedArray:
    aval = aval_of(x)
    if d is None:
        return aval
    return ShapedArray(aval.shape[:d] + aval.shape[d + 1:], aval.dtype)


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None,
         axis_name: Any = None) -> Callable:
    """Vectorize `fun` over a batch axis of its arguments.

    `in_axes` is an int, None, or a pytree prefix of the arguments (None: not
    batched); `out_axes` likewise for the outputs.
    >>> vmap(lambda x, y: x @ y, in_axes=(0, None))(xs, y)    # one matvec per row of xs
    """
    api_util.check_function("vmap", fun)
    api_util.check_axes_spec(f"vmap({describe_function(fun)})", "in_axes", in_axes)
    api_util.check_axes_spec(f"vmap({describe_function(fun)})", "out_axes", out_axes)
    if axis_size is not None and (not api_util._is_int(axis_size) or axis_size < 0):
        raise FungradValueError(f"vmap({describe_function(fun)}): axis_size must be a "
                                f"non-negative int, got {axis_size!r}")

    def vmapped(*args, **kwargs):
        where = f"vmap({describe_function(fun)})"
        axes_tree = in_axes if isinstance(in_axes, (list, tuple)) and not isinstance(
            in_axes, int) else (in_axes,) * len(args)
        if isinstance(in_axes, list):
            axes_tree = tuple(in_axes)
        if len(axes_tree) != len(args):
            raise FungradValueError(
                f"{where}: in_axes has {len(axes_tree)} entries but the function was called "
                f"with {len(args)} positional arguments")
        leaves, in_tree = tree_flatten((tuple(args), kwargs))
        leaves = [as_value(x) for x in leaves]
        dims: list = []
        for a, ax in zip(args, axes_tree):
            n_leaves = len(tree_flatten(a)[0])
            if ax is None or isinstance(ax, (int, np.integer)):
                dims.extend([ax] * n_leaves)
            else:
                sub = flatten_up_to(tree_flatten(ax, is_leaf=lambda x: x is None)[1], ax)
                arg_subtrees = flatten_up_to(tree_flatten(ax, is_leaf=lambda x: x is None)[1], a)
                for s_ax, s_arg in zip(sub, arg_subtrees):
                    dims.extend([s_ax] * len(tree_flatten(s_arg)[0]))
        dims.extend([0] * len(tree_flatten(kwargs)[0]))  # keyword arguments: axis 0, as JAX
        norm_dims = []
        sizes = set()
        for x, d in zip(leaves, dims):
            if d is None:
                norm_dims.append(None)
                continue
            nd = aval_of(x).ndim
            if not -nd <= d < nd:
                raise FungradValueError(
                    f"{where}: in_axes={d} for an argument of shape {aval_of(x).shape}")
            d = int(d) % nd
            norm_dims.append(d)
            sizes.add(aval_of(x).shape[d])
        if axis_size is not None:
            sizes.add(axis_size)
        if len(sizes) != 1:
            if not sizes:
                raise FungradValueError(
                    f"{where}: no argument is batched; give axis_size or an in_axes that is "
                    "not None")
            raise FungradValueError(
                f"{where}: batched arguments have different sizes along their in_axes: "
                f"{sorted(sizes)}")
        n = sizes.pop()
        out_tree_box = []

        def flat_fun(*tracers):
            a, kw = in_tree.unflatten(tracers)
            out = fun(*a, **kw)
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        per_example = [_unbatched_aval(x, d) for x, d in zip(leaves, norm_dims)]
        closed = trace_to_jaxpr(flat_fun, per_example)
        out_tree = out_tree_box[0]
        if isinstance(out_axes, (int, np.integer)) or out_axes is None:
            flat_out_axes = [out_axes] * out_tree.num_leaves
        else:
            flat_out_axes = []
            sub = flatten_up_to(tree_flatten(out_axes, is_leaf=lambda x: x is None)[1],
                                out_axes)
            subtrees = flatten_up_to(tree_flatten(out_axes, is_leaf=lambda x: x is None)[1],
                                     out_tree.unflatten([0] * out_tree.num_leaves))
            for s_ax, s in zip(sub, subtrees):
                flat_out_axes.extend([s_ax] * len(tree_flatten(s)[0]))
        norm_out = []
        for aval, a in zip(closed.out_avals, flat_out_axes):
            if a is not None and not -(aval.ndim + 1) <= a <= aval.ndim:
                raise FungradValueError(
                    f"{where}: out_axes={a} is out of range for an output of shape "
                    f"{aval.shape}, which has {aval.ndim + 1} dimensions once batched")
            norm_out.append(None if a is None else int(a) % (aval.ndim + 1))
        try:
            derived = api_util.cached_rewrite(
                ("vmap", n, tuple(norm_dims), tuple(norm_out)), closed,
                lambda j: simplify_jaxpr(vmap_jaxpr(j, n, norm_dims, norm_out)))
        except FungradValueError as e:   # the rewrite's own errors, with the user's function
            raise FungradValueError(f"{where}: {str(e).removeprefix('vmap: ')}") from None
        outs = api_util.execute(derived, closed.consts, leaves)
        return out_tree.unflatten(outs)
    vmapped.__name__ = f"vmap({getattr(fun, '__name__', 'fun')})"
    vmapped.__wrapped__ = fun
    return vmapped


# ---------------------------------------------------------------------------
# linear_transpose
# ---------------------------------------------------------------------------

def _check_linear(where: str, jaxpr: Jaxpr) -> None:
    """Raise if an equation is nonlinear in the inputs (a known nonlinear primitive,
    or a product of two input-dependent values); other primitives are trusted."""
    eqn = nonlinear_use(jaxpr, jaxpr.invars)
    if eqn is not None:
        raise FungradTypeError(
            f"{where}: the function is not linear in its inputs: primitive "
            f"'{eqn.prim.name}' at "
            f"{format_location(eqn.source_info)} is applied to an input-dependent value"
            + (" twice (a product of inputs)" if eqn.prim.linear_in == "each" else "")
            + ".\n  linear_transpose needs a linear function; for a nonlinear one use "
            "vjp(fun, *primals), whose pullback is the transposed linearization.")


def linear_transpose(fun: Callable, *primals: Any, reduce_axes: tuple = ()) -> Callable:
    """The transpose of the linear function `fun` (JAX's `jax.linear_transpose`).

    `primals` give the input shapes and dtypes (arrays, or objects with `.shape`
    and `.dtype`); their values are not used.  The result maps a cotangent with
    the structure of fun's output to a tuple of cotangents, one per primal.
    Raises `FungradTypeError` if `fun` is visibly nonlinear.

    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> f_t = linear_transpose(lambda x: A @ x, np.zeros(2))
    >>> f_t(np.array([1.0, 0.0]))       # (A.T @ [1, 0],) == (array([1., 2.]),)
    """
    where = f"linear_transpose({describe_function(fun)})"
    leaves, in_tree = tree_flatten(tuple(primals))
    avals = []
    for x in leaves:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            avals.append(ShapedArray(x.shape, x.dtype))
        else:
            avals.append(aval_of(as_value(x)))
    for a in avals:
        if not _is_float(a):
            raise FungradTypeError(f"{where}: inputs must be floating point, got {a}")
    out_box: list = []

    def flat_fun(*xs):
        out_leaves, out_tree = tree_flatten(fun(*in_tree.unflatten(list(xs))))
        out_box.append(out_tree)
        return out_leaves
    closed = trace_to_jaxpr(flat_fun, avals)
    out_tree = out_box[0]
    _check_linear(where, closed.jaxpr)
    jaxpr = closed.jaxpr
    k = len(jaxpr.constvars)
    out_avals = closed.out_avals

    def run(*args):
        consts, cts = args[:k], args[k:]
        zeros = [instantiate(Zero(a)) for a in avals]
        _, cts_in = vjp_eval(jaxpr, consts, zeros, [True] * len(avals), cts)
        return [instantiate(c) for c in cts_in]
    transposed = simplify_jaxpr(build_jaxpr(run, [v.aval for v in jaxpr.constvars], out_avals))

    def transposed_fun(out_cotangent):
        ct_leaves, ct_tree = tree_flatten(out_cotangent)
        if ct_tree != out_tree:
            raise FungradTypeError(f"{where}: the cotangent has structure {ct_tree}, but the "
                                   f"function's output has structure {out_tree}")
        cts = []
        for c, a in zip(ct_leaves, out_avals, strict=True):
            c = as_value(c)
            if aval_of(c).shape != a.shape:
                raise FungradValueError(
                    f"{where}: a cotangent of shape {aval_of(c).shape} was given for an "
                    f"output of shape {a.shape}")
            if aval_of(c).dtype != a.dtype:
                c = convert_element_type(c, a.dtype)
            cts.append(c)
        outs = api_util.execute(transposed, closed.consts, cts)
        return in_tree.unflatten(outs)
    transposed_fun.__name__ = f"linear_transpose({getattr(fun, '__name__', 'fun')})"
    return transposed_fun


# ---------------------------------------------------------------------------
# jit
# ---------------------------------------------------------------------------

def jit(fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = ()):
    """Compile `fun`: trace it once per (pytree structure, shapes/dtypes, static
    argument values) into a jaxpr, compile that into one numba kernel, cache it.

    Args:
      fun: a pure function of arrays (pytrees of arrays) returning arrays.
      static_argnums / static_argnames: arguments passed as Python values and
        hashed by value (each distinct value traces again), e.g. a shape or a flag.
      donate_argnums: accepted for JAX compatibility (kernels never write inputs).

    Returns:
      a `JittedFunction`; `.lower(*args).as_text()` shows the jaxpr and kernel.

    Under jit values are abstract: a Python `if` on a traced value raises
    `TracerBoolConversionError` (use `fungrad.numpy.where`).  Composes with every
    transform: `jit(grad(f))`, `grad(jit(f))`, `jit(vmap(f))`, `jit(jacrev(f))`.

    >>> import fungrad as fg, numpy as np
    >>> fg.jit(lambda x: x * 2.0)(np.ones(2))
    array([2., 2.])
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, donate_argnums=donate_argnums)
    return JittedFunction(fun, static_argnums, static_argnames, donate_argnums)
