"""User-defined derivative rules: `custom_jvp` and `custom_vjp` (JAX semantics).

    @fg.custom_jvp
    def log1pexp(x):
        return fnp.log1p(fnp.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * fg.nn.sigmoid(x)

How it works: calling a custom function inside a transform traces the function
and its rules into jaxprs and binds one equation of `custom_jvp_call` (or
`custom_vjp_call`) whose params hold those jaxprs.  Values the function or its
rules close over (arrays, tracers of an enclosing transform) become explicit
operands of the equation (the first `num_consts`), so rules never hold on to
stale tracers.  The equation evaluates the traced function; its jvp, vjp and vmap
rules use the user's rules:

* custom_jvp: jvp runs the rule; vjp transposes the rule (the tangent outputs
  are linear in the tangent inputs, so their vjp with respect to the tangents
  at zero is the transpose); vmap batches the function and the rule.
* custom_vjp: vjp runs `fwd` then `bwd`; jvp transposes `bwd` (a vjp of `bwd`
  with respect to its cotangent input gives J t exactly); vmap batches all three.

Derivatives with respect to closed-over traced values (not arguments) are taken
by differentiating the function itself, as if the value were an argument
without a custom rule.  Higher-order derivatives differentiate the rules.

Rules usually call their own function (`return f(x), ...`): such nested calls
get their rules traced eagerly up to `_EAGER_DEPTH` levels and lazily beyond
(`_Rules`), so tracing terminates.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from typing import Any, Callable, Sequence

import numpy as np

from ..core import ClosedJaxpr, Jaxpr, Primitive, ShapedArray, Var, jaxpr_key
from ..errors import (FungradNotImplementedError, FungradTypeError, describe_function,
                      format_location)
from ..interpreter import eval_concrete, eval_jaxpr
from ..primitives.base import convert_element_type, full, reduce_sum, zeros_like_aval
from ..primitives.elementwise import add
from ..pytree import tree_flatten, tree_map
from ..tracing import Trace, Tracer, as_value, aval_of, current_trace, new_trace
from ..transforms.ad import nonlinear_use, vjp_eval
from ..transforms.jvp import jvp_eval
from ..transforms.util import Zero, build_jaxpr, instantiate
from ..transforms.vmap import _batched_aval, moveaxis_value, vmap_eval

__all__ = ["custom_jvp", "custom_vjp", "custom_jvp_call_p", "custom_vjp_call_p",
           "eval_concrete", "batch_jaxpr", "call_primitive", "trace_with_consts"]

_NO_SOURCE = object()


# ---------------------------------------------------------------------------
# helpers shared with checkpoint.py
# ---------------------------------------------------------------------------

def _is_float(aval: ShapedArray) -> bool:
    return np.issubdtype(aval.dtype, np.inexact)




def _inline(jaxpr: Jaxpr, args: Sequence, consts: Sequence = ()) -> list:
    """Evaluate `jaxpr` on values of the current trace (binds its equations there)."""
    return eval_jaxpr(jaxpr, consts, *args)


class _Rules:
    """The traced rules of one call of a custom function: an equation param.

    Eager rules were traced when the function was called; each jaxpr takes the
    equation's operands `(*consts, *inputs, ...)` and has no constants of its own.
    Lazy rules (a custom function called while one of its own rules is traced,
    e.g. `f(x)` inside f's jvp rule) are traced on first use; each gets its own
    closure constants.  Eager rules compare by structure, so rewrites are cached."""

    def __init__(self, names: tuple, jaxprs: Sequence | None = None,
                 make: Callable | None = None, lazy_key: tuple | None = None):
        self.names = names
        self._jaxprs = None if jaxprs is None else [(j, []) for j in jaxprs]
        self._make = make
        # lazy: ids of the custom function, its rules and Python arguments (all kept
        # alive by `make`), and the argument types: equal keys trace the same rules
        self._key = lazy_key

    @property
    def lazy(self) -> bool:
        return self._make is not None

    def get(self, name: str) -> tuple[Jaxpr, list]:
        """(jaxpr, its own constants) of rule `name`, traced now if lazy."""
        if self._jaxprs is None:
            jaxprs = self._make()
            if any(isinstance(c, np.ndarray) for _, consts in jaxprs for c in consts):
                raise FungradNotImplementedError(
                    f"a custom derivative rule that calls its own function and closes over "
                    f"arrays was needed at a nesting depth above {_EAGER_DEPTH} (a derivative "
                    f"of order {_EAGER_DEPTH + 2} or more).\n  Pass the arrays to the function "
                    "as arguments instead of closing over them.")
            self._jaxprs = jaxprs
        return self._jaxprs[self.names.index(name)]

    def _structure(self):
        if self._key is None:  # eager: the rules' programs
            self._key = tuple(jaxpr_key(j) for j, _ in self._jaxprs)
        return self._key

    def __hash__(self) -> int:
        return hash(self._structure())

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Rules) or self.lazy != other.lazy:
            return False
        return self.names == other.names and self._structure() == other._structure()

    def __str__(self) -> str:
        if self.lazy and self._jaxprs is None:
            return f"<{'/'.join(self.names)} traced on first use>"
        return " ".join(f"{n}={{ {' '.join(str(j).split())} }}"
                        for n, (j, _) in zip(self.names, self._jaxprs))

    __repr__ = __str__


_rules_being_traced: contextvars.ContextVar[tuple] = contextvars.ContextVar(
    "fungrad_custom_rules_being_traced", default=())

# A custom function called inside its own rule gets eagerly traced rules up to
# this nesting depth, lazily traced ones beyond (eager tracing of a rule that
# calls its function would recurse forever).  Eager rules turn closed-over arrays
# and tracers into operands; a lazy rule traced inside a later rewrite cannot, so
# derivatives up to order _EAGER_DEPTH + 1 support any closure.
_EAGER_DEPTH = 3


def _trace_rules_eagerly(fn: Any) -> bool:
    return _rules_being_traced.get().count(id(fn)) < _EAGER_DEPTH


@contextlib.contextmanager
def _tracing_rules_of(fn: Any):
    """Within the block, the rules of custom function `fn` are being traced."""
    token = _rules_being_traced.set(_rules_being_traced.get() + (id(fn),))
    try:
        yield
    finally:
        _rules_being_traced.reset(token)


def _with_leading_inputs(jaxpr: Jaxpr, avals: Sequence[ShapedArray]) -> Jaxpr:
    """`jaxpr` taking extra (unused) leading inputs of types `avals`."""
    return Jaxpr(jaxpr.constvars, [Var(a) for a in avals] + list(jaxpr.invars), jaxpr.eqns,
                 jaxpr.outvars)


def _batch_rules(rules: _Rules, axis_size: int, dims: Sequence, spec: Callable) -> _Rules:
    """`rules` batched; `spec(name, jaxpr) -> (in_dims, out_dims)` for each rule.
    Lazy rules stay lazy (batched when first used), so a rule that calls its own
    function does not unfold forever."""
    def make():
        batched = []
        for name in rules.names:
            jaxpr, consts = rules.get(name)
            in_dims, out_dims = spec(name, jaxpr)
            k = len(jaxpr.constvars)
            opened = Jaxpr((), list(jaxpr.constvars) + list(jaxpr.invars), jaxpr.eqns,
                           jaxpr.outvars)
            b = batch_jaxpr(opened, axis_size, [None] * k + list(in_dims), out_dims)
            batched.append((Jaxpr(b.invars[:k], b.invars[k:], b.eqns, b.outvars), consts))
        return batched
    if rules.lazy:
        return _Rules(rules.names, make=make,
                      lazy_key=("vmap", rules._structure(), axis_size, tuple(dims)))
    return _Rules(rules.names, [j for j, _ in make()])


def _trace(fn: Callable, avals: Sequence[ShapedArray], sources: Sequence) -> ClosedJaxpr:
    """Trace `fn(*tracers) -> flat outputs`; an input whose source is not
    `_NO_SOURCE` can give its concrete value on demand (eager Python control flow)."""
    trace = Trace(concrete=any(s is not _NO_SOURCE for s in sources))
    trace.derivative_barrier = True     # the custom rules give the derivative
    with new_trace(trace):
        args = [trace.new_arg(a) if s is _NO_SOURCE else trace.new_arg(a, s)
                for a, s in zip(avals, sources, strict=True)]
        return trace.finish(list(fn(*args)))


def _const_key(x: Any) -> int:
    return id(x._var) if isinstance(x, Tracer) else id(x)


def trace_with_consts(closeds: Sequence[ClosedJaxpr]) -> tuple[list, list[Jaxpr]]:
    """Make the closed-over values of several traced jaxprs explicit and shared.

    Returns (consts, jaxprs): each jaxpr takes `(*consts, *its own inputs)` and has
    no constvars; a value closed over by several of them appears once in consts."""
    consts: list = []
    index: dict[int, int] = {}
    for closed in closeds:
        for c in closed.consts:
            k = _const_key(c)
            if k not in index:
                index[k] = len(consts)
                consts.append(c)
    jaxprs = []
    for closed in closeds:
        local = {_const_key(c): v for v, c in zip(closed.jaxpr.constvars, closed.consts)}
        const_vars = []
        for c in consts:
            v = local.get(_const_key(c))
            const_vars.append(Var(aval_of(c)) if v is None else v)
        j = closed.jaxpr
        jaxprs.append(Jaxpr((), const_vars + list(j.invars), j.eqns, j.outvars))
    return consts, jaxprs


def batch_jaxpr(jaxpr: Jaxpr, axis_size: int, in_dims: Sequence[int | None],
                out_dims: Sequence[int | None]) -> Jaxpr:
    """`jaxpr` (no constvars) batched: inputs have batch dims `in_dims`, output i
    gets its batch dim at `out_dims[i]`; `None` there means "unbatched": a batched
    result is summed over the batch (what a cotangent of an unbatched input needs)."""

    def run(*args):
        outs, dims = vmap_eval(jaxpr, axis_size, [], args, in_dims)
        result = []
        for o, d, target in zip(outs, dims, out_dims, strict=True):
            if target is None and d is not None:
                o = reduce_sum(o, (d,))
            elif target is not None:
                o = moveaxis_value(o, d, target, axis_size)
            result.append(o)
        return result

    in_avals = [_batched_aval(v.aval, d, axis_size)
                for v, d in zip(jaxpr.invars, in_dims, strict=True)]
    return build_jaxpr(run, [], in_avals)


def _zero(aval: ShapedArray):
    return Zero(aval)


def _is_zero(x) -> bool:
    return isinstance(x, Zero)


def _instantiate(x):
    return instantiate(x)


def _add_tangents(a, b):
    if _is_zero(a):
        return b
    if _is_zero(b):
        return a
    return add(a, b)


def _out_avals(jaxpr: Jaxpr) -> list[ShapedArray]:
    return [v.aval for v in jaxpr.outvars]


def _check_in_avals(name: str, jaxpr: Jaxpr, avals: Sequence[ShapedArray]) -> None:
    expected = [v.aval for v in jaxpr.invars]
    if list(avals) != expected:
        raise FungradTypeError(
            f"{name}: operands typed ({', '.join(map(str, avals))}) but the traced function "
            f"takes ({', '.join(map(str, expected))})")


def call_primitive(prim: Primitive) -> Primitive:
    """The impl and shape rules of a call primitive (declared with kind="call",
    call_jaxpr_param="call_jaxpr"): its `call_jaxpr` param, applied to the
    equation's operands, gives its outputs (backends and debug_nans may look inside it)."""
    assert prim.call_jaxpr_param == "call_jaxpr", prim
    prim.def_impl(lambda *args, call_jaxpr, **params: tuple(eval_concrete(call_jaxpr, args)))

    def shape(*avals, call_jaxpr, **params):
        _check_in_avals(prim.name, call_jaxpr, avals)
        return tuple(_out_avals(call_jaxpr))
    prim.def_shape(shape)
    return prim


def _jvp_through_consts(where: str, call_jaxpr: Jaxpr, xs: Sequence,
                        const_ts: Sequence) -> list:
    """Output tangents from tangents of the closed-over values only, by ordinary
    forward-mode differentiation of the function itself."""
    try:
        _, ts_out = jvp_eval(call_jaxpr, [], xs, list(const_ts) + [
            _zero(v.aval) for v in call_jaxpr.invars[len(const_ts):]], instantiate_out=False)
    except FungradNotImplementedError as e:
        raise FungradNotImplementedError(
            f"{where}: the function closes over a traced value that is being "
            f"differentiated; its derivative is taken by differentiating the function "
            f"itself, which failed:\n  {e}\n  Pass the value as an explicit argument so "
            "the custom rule covers it.") from e
    return ts_out


def _vjp_through_consts(where: str, call_jaxpr: Jaxpr, xs: Sequence, want: Sequence[bool],
                        cts_out: Sequence) -> list:
    """Cotangents of the closed-over values marked in `want` (reverse mode through
    the function itself)."""
    n_x = len(call_jaxpr.invars) - len(want)
    try:
        _, cts = vjp_eval(call_jaxpr, [], xs, list(want) + [False] * n_x, cts_out)
    except FungradNotImplementedError as e:
        raise FungradNotImplementedError(
            f"{where}: the function closes over a traced value that is being "
            f"differentiated; its derivative is taken by differentiating the function "
            f"itself, which failed:\n  {e}\n  Pass the value as an explicit argument so "
            "the custom rule covers it.") from e
    return cts


def _output_cts(ct: Sequence, avals: Sequence[ShapedArray]) -> list:
    """Cotangents for the outputs; non-float outputs get symbolic zeros."""
    return [c if _is_float(a) else _zero(a) for c, a in zip(ct, avals, strict=True)]


# ---------------------------------------------------------------------------
# calling a custom function: arguments, tracing, checks
# ---------------------------------------------------------------------------

class _Call:
    """One call of a custom function: the differentiable leaves and how to rebuild
    the user's arguments from them (non-differentiable arguments stay Python values)."""

    def __init__(self, where: str, fun: Callable, args: tuple, kwargs: dict,
                 nondiff_argnums: tuple[int, ...]):
        if kwargs:
            try:
                bound = inspect.signature(fun).bind(*args, **kwargs)
            except (TypeError, ValueError) as e:
                raise FungradTypeError(f"{where}: {e}") from e
            if bound.kwargs:
                raise FungradTypeError(
                    f"{where}: keyword-only arguments are not supported by custom rules; "
                    "pass them positionally")
            args = bound.args
        n = len(args)
        for i in nondiff_argnums:
            if not -n <= i < n:
                raise FungradTypeError(
                    f"{where}: nondiff_argnums={nondiff_argnums} but the function was "
                    f"called with {n} positional arguments")
        self.nondiff = tuple(sorted(i % n for i in nondiff_argnums)) if n else ()
        self.args = args
        self.dyn_pos = [i for i in range(n) if i not in self.nondiff]
        leaves, self.in_tree = tree_flatten(tuple(args[i] for i in self.dyn_pos))
        self.leaves = [as_value(x) for x in leaves]
        self.avals = [aval_of(x) for x in self.leaves]

    @property
    def nondiff_args(self) -> tuple:
        return tuple(self.args[i] for i in self.nondiff)

    def dyn_args(self, leaves: Sequence) -> tuple:
        return self.in_tree.unflatten(list(leaves))

    def full_args(self, leaves: Sequence) -> list:
        full = list(self.args)
        for i, a in zip(self.dyn_pos, self.dyn_args(leaves), strict=True):
            full[i] = a
        return full

    def sources(self) -> list:
        return list(self.leaves)


def _lazy_key(fn: Any, rules: tuple, call: "_Call", const_avals: Sequence) -> tuple:
    return ("lazy", id(fn), tuple(id(r) for r in rules),
            tuple(id(a) for a in call.nondiff_args), call.in_tree, tuple(call.avals),
            tuple(const_avals))


def _needs_trace(leaves: Sequence) -> bool:
    return current_trace() is not None or any(isinstance(x, Tracer) for x in leaves)


def _flatten_out(where: str, out: Any, box: list) -> list:
    leaves, tree = tree_flatten(out)
    for x in leaves:
        if not isinstance(x, (Tracer, np.ndarray, np.generic, float, int, bool, complex)):
            raise FungradTypeError(f"{where}: returned a {type(x).__name__}; outputs must be "
                                   "arrays or pytrees of arrays")
    box.append(tree)
    return leaves


def _trace_fun(where: str, fun: Callable, call: _Call) -> tuple[ClosedJaxpr, Any]:
    box: list = []

    def flat(*xs):
        return _flatten_out(where, fun(*call.full_args(xs)), box)
    closed = _trace(flat, call.avals, call.sources())
    return closed, box[0]


def _match_tangent(where: str, rule: Callable, t: Any, aval: ShapedArray, i: int):
    """A tangent output of a jvp rule, checked against its primal output's type."""
    t_aval = aval_of(t)
    if t_aval.shape != aval.shape:
        raise FungradTypeError(
            f"{where}: the jvp rule {describe_function(rule)} returned a tangent of type "
            f"{t_aval} for output {i} of type {aval}; tangents must have the shape of "
            "their primal output")
    if t_aval.dtype != aval.dtype and _is_float(aval):
        t = convert_element_type(t, aval.dtype)
    return t


# ---------------------------------------------------------------------------
# custom_jvp
# ---------------------------------------------------------------------------

custom_jvp_call_p = call_primitive(Primitive(
    "custom_jvp_call", kind="call", multiple_results=True, call_jaxpr_param="call_jaxpr"))


def _custom_jvp_call_jvp(*args, out, call_jaxpr, rules, num_consts, const_diff, name):
    # ts for the arguments go through the user's rule; ts for closed-over values
    # through ordinary differentiation of the function
    n = len(call_jaxpr.invars)
    ts, xs = args[:n], args[n:]
    out_avals = _out_avals(call_jaxpr)
    n_out = len(out_avals)
    t_out = [_zero(a) for a in out_avals]
    ts_x = ts[num_consts:]
    if any(not _is_zero(t) for t in ts_x):
        jvp_jaxpr, rule_consts = rules.get("jvp")
        rule_out = _inline(jvp_jaxpr, list(xs) + [_instantiate(t) for t in ts_x], rule_consts)
        t_out = list(rule_out[n_out:])
    const_ts = [t if diff and not _is_zero(t) and _is_float(aval_of(x)) else _zero(aval_of(x))
                for t, x, diff in zip(ts[:num_consts], xs[:num_consts], const_diff,
                                      strict=True)]
    if any(not _is_zero(t) for t in const_ts):
        extra = _jvp_through_consts(f"custom_jvp({name})", call_jaxpr, xs, const_ts)
        t_out = [_add_tangents(a, b) for a, b in zip(t_out, extra, strict=True)]
    return tuple(None if _is_zero(t) or not _is_float(a) else t
                 for t, a in zip(t_out, out_avals, strict=True))




def _custom_jvp_call_vjp(ct, *xs, out, active, call_jaxpr, rules, num_consts, const_diff,
                         name):
    # (xs, ct) -> cts_xs by transposing the rule's tangent map: its vjp with respect
    # to the tangent inputs (at zero tangents; the map is linear in them)
    n = len(xs)
    in_avals = [v.aval for v in call_jaxpr.invars]
    out_avals = _out_avals(call_jaxpr)
    cts_in: list = [None] * n
    want_x = [active[i] and _is_float(in_avals[i]) for i in range(num_consts, n)]
    cts_out = _output_cts(ct, out_avals)
    if any(want_x):
        jvp_jaxpr, rule_consts = rules.get("jvp")
        zero_ts = [_instantiate(_zero(a)) for a in in_avals[num_consts:]]
        _, cts = vjp_eval(jvp_jaxpr, rule_consts, list(xs) + zero_ts, [False] * n + want_x,
                          [_zero(a) for a in out_avals] + cts_out)
        positions = [num_consts + i for i, w in enumerate(want_x) if w]
        for i, c in zip(positions, cts, strict=True):
            cts_in[i] = None if _is_zero(c) else c
    want_c = [active[i] and const_diff[i] and _is_float(in_avals[i]) for i in range(num_consts)]
    if any(want_c):
        cts = _vjp_through_consts(f"custom_jvp({name})", call_jaxpr, xs, want_c, cts_out)
        for i, c in zip([i for i, w in enumerate(want_c) if w], cts, strict=True):
            cts_in[i] = None if _is_zero(c) else c
    return tuple(cts_in)




def _custom_jvp_call_vmap(axis_size, args, dims, *, call_jaxpr, rules, num_consts,
                          const_diff, name):
    # batch the function and the rule; a tangent is batched like its primal
    n_out = len(call_jaxpr.outvars)
    dims = list(dims)
    new_call = batch_jaxpr(call_jaxpr, axis_size, dims, [0] * n_out)
    new_rules = _batch_rules(rules, axis_size, dims,
                             lambda name, j: (dims + dims[num_consts:], [0] * (2 * n_out)))
    outs = custom_jvp_call_p.bind(*args, call_jaxpr=new_call, rules=new_rules,
                                  num_consts=num_consts, const_diff=const_diff, name=name)
    return outs, [0] * n_out


custom_jvp_call_p.def_jvp(_custom_jvp_call_jvp, symbolic_zeros=True)
custom_jvp_call_p.def_vjp(_custom_jvp_call_vjp, wants_active=True)
custom_jvp_call_p.def_vmap(_custom_jvp_call_vmap)


class custom_jvp:
    """A function with a user-defined forward-mode derivative (JAX's `custom_jvp`).

    Decorate the function, then give the rule with `defjvp`:

        @custom_jvp
        def f(x, y):
            return fnp.sin(x) * y

        @f.defjvp
        def f_jvp(primals, tangents):
            (x, y), (x_dot, y_dot) = primals, tangents
            primal_out = f(x, y)
            return primal_out, fnp.cos(x) * x_dot * y + fnp.sin(x) * y_dot

    The rule gets tuples of primals and tangents (zeros where an input is not
    perturbed) and returns `(primal_out, tangent_out)` with the output's structure.
    Reverse mode (`grad`, `vjp`, `jacrev`) transposes the rule, so it must be linear
    in the tangents.  `vmap` batches the function and the rule.  Values the
    function closes over are differentiated through the function itself.

    Args:
      fun: the function.
      nondiff_argnums: positions of arguments that are not differentiated (Python
        values such as functions or flags); the rule receives them first:
        `rule(*nondiff_args, primals, tangents)`.
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp: Callable | None = None

    def defjvp(self, jvp: Callable, symbolic_zeros: bool = False) -> Callable:
        """Set the jvp rule `jvp(*nondiff_args, primals, tangents) -> (out, out_dot)`.
        Returns `jvp`, so it works as a decorator."""
        if symbolic_zeros:
            raise FungradNotImplementedError(
                "custom_jvp.defjvp: symbolic_zeros=True is not supported; zero tangents are "
                "passed to the rule as arrays of zeros")
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """One rule per argument: `jvp_i(t_i, primal_out, *primals) -> tangent_out`
        (None for an argument with zero derivative); the tangents are summed.

        >>> f.defjvps(lambda t, ans, x, y: fnp.cos(x) * t * y,
        ...           lambda t, ans, x, y: fnp.sin(x) * t)
        """
        if self.nondiff_argnums:
            raise FungradTypeError("custom_jvp.defjvps does not support nondiff_argnums; "
                                   "use defjvp")

        def jvp(primals, tangents):
            primal_out = self(*primals)
            total = None
            for rule, t in zip(jvps, tangents, strict=True):
                if rule is None:
                    continue
                term = rule(t, primal_out, *primals)
                total = term if total is None else tree_map(lambda a, b: a + b, total, term)
            if total is None:
                total = tree_map(lambda y: zeros_like_aval(aval_of(y)), primal_out)
            return primal_out, total
        jvp.__name__ = f"defjvps({getattr(self.fun, '__name__', 'fun')})"
        self.defjvp(jvp)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        where = f"custom_jvp({describe_function(self.fun)})"
        if self.jvp is None:
            raise FungradTypeError(
                f"{where}: no jvp rule was given; define one with @{self.__name__}.defjvp")
        call = _Call(where, self.fun, args, kwargs, self.nondiff_argnums)
        if not _needs_trace(call.leaves):
            return self.fun(*call.args)
        closed, out_tree = _trace_fun(where, self.fun, call)
        out_avals = closed.out_avals
        n_in = len(call.avals)
        rule = self.jvp

        def flat_rule(*xs_ts):
            xs, ts = xs_ts[:n_in], xs_ts[n_in:]
            result = rule(*call.nondiff_args, call.dyn_args(xs), call.dyn_args(ts))
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise FungradTypeError(
                    f"{where}: the jvp rule {describe_function(rule)} must return a pair "
                    f"(primal_out, tangent_out), got {type(result).__name__}")
            p_leaves, p_tree = tree_flatten(result[0])
            t_leaves, t_tree = tree_flatten(result[1])
            if p_tree != out_tree or t_tree != out_tree:
                raise FungradTypeError(
                    f"{where}: the jvp rule {describe_function(rule)} returned primal and "
                    f"tangent outputs with structures {p_tree} and {t_tree}; both must have "
                    f"the function's output structure {out_tree}")
            p_leaves = [_check_primal(where, rule, p, a, i)
                        for i, (p, a) in enumerate(zip(p_leaves, out_avals, strict=True))]
            t_leaves = [_match_tangent(where, rule, t, a, i)
                        for i, (t, a) in enumerate(zip(t_leaves, out_avals, strict=True))]
            return list(p_leaves) + list(t_leaves)

        if not _trace_rules_eagerly(self):
            consts, (call_jaxpr,) = trace_with_consts([closed])
            const_avals = [aval_of(c) for c in consts]

            def make():
                with _tracing_rules_of(self):
                    rc = _trace(flat_rule, call.avals + call.avals, [_NO_SOURCE] * (2 * n_in))
                return [(_with_leading_inputs(rc.jaxpr, const_avals), list(rc.consts))]
            rules = _Rules(("jvp",), make=make, lazy_key=_lazy_key(self, (rule,), call,
                                                                  const_avals))
        else:
            with _tracing_rules_of(self):
                rule_closed = _trace(flat_rule, call.avals + call.avals,
                                     call.sources() + [_NO_SOURCE] * n_in)
            consts, (call_jaxpr, jvp_jaxpr) = trace_with_consts([closed, rule_closed])
            rules = _Rules(("jvp",), [jvp_jaxpr])
        outs = custom_jvp_call_p.bind(*consts, *call.leaves, call_jaxpr=call_jaxpr, rules=rules,
                                      num_consts=len(consts),
                                      const_diff=tuple(isinstance(c, Tracer) for c in consts),
                                      name=getattr(self.fun, "__name__", "fun"))
        return out_tree.unflatten(list(outs))


def _check_primal(where: str, rule: Callable, p: Any, aval: ShapedArray, i: int):
    p_aval = aval_of(p)
    if p_aval.shape != aval.shape:
        raise FungradTypeError(
            f"{where}: the jvp rule {describe_function(rule)} returned a primal output of "
            f"type {p_aval} for output {i}, but the function returns {aval}")
    return p


# ---------------------------------------------------------------------------
# custom_vjp
# ---------------------------------------------------------------------------

custom_vjp_call_p = call_primitive(Primitive(
    "custom_vjp_call", kind="call", multiple_results=True, call_jaxpr_param="call_jaxpr"))


def _residuals(rules: _Rules, xs: Sequence, n_out: int) -> list:
    fwd_jaxpr, fwd_consts = rules.get("fwd")
    return _inline(fwd_jaxpr, xs, fwd_consts)[n_out:]


def _custom_vjp_call_vjp(ct, *xs, out, active, call_jaxpr, rules, num_consts, const_diff,
                         name):
    # (xs, ct) -> bwd(residuals of fwd(xs), ct); the fwd equations depend only on
    # primal values, so partial evaluation keeps them in the forward pass
    n = len(xs)
    in_avals = [v.aval for v in call_jaxpr.invars]
    out_avals = _out_avals(call_jaxpr)
    cts_in: list = [None] * n
    if any(active[num_consts:]):
        res = _residuals(rules, xs, len(out_avals))
        ct_values = [c if _is_float(a) else _instantiate(_zero(a))
                     for c, a in zip(ct, out_avals, strict=True)]
        bwd_jaxpr, bwd_consts = rules.get("bwd")
        cts_x = _inline(bwd_jaxpr, list(xs[:num_consts]) + list(res) + ct_values, bwd_consts)
        for i, c in enumerate(cts_x):
            if active[num_consts + i] and _is_float(in_avals[num_consts + i]):
                cts_in[num_consts + i] = c
    want_c = [active[i] and const_diff[i] and _is_float(in_avals[i]) for i in range(num_consts)]
    if any(want_c):
        cts = _vjp_through_consts(f"custom_vjp({name})", call_jaxpr, xs, want_c,
                                  _output_cts(ct, out_avals))
        for i, c in zip([i for i, w in enumerate(want_c) if w], cts, strict=True):
            cts_in[i] = None if _is_zero(c) else c
    return tuple(cts_in)




def _check_bwd_linear(name: str, bwd_jaxpr: Jaxpr, n_out: int) -> None:
    """Forward mode transposes bwd, which is exact only if bwd is linear in the
    cotangent; a nonlinear bwd (gradient clipping, normalisation) would give a
    derivative that differs from reverse mode, so it raises, as JAX does for any
    custom_vjp under forward mode."""
    cts = bwd_jaxpr.invars[len(bwd_jaxpr.invars) - n_out:]
    eqn = nonlinear_use(bwd_jaxpr, cts, strict=True)
    if eqn is not None:
        raise FungradTypeError(
            f"jvp of custom_vjp({name}): forward mode (jvp, jacfwd, hessian, linearize) of "
            f"a custom_vjp function transposes its bwd rule, but bwd is not known to be "
            f"linear in the cotangent: primitive '{eqn.prim.name}' at "
            f"{format_location(eqn.source_info)} is applied to it"
            + ("" if eqn.prim.linear_in is not None or eqn.prim.kind == "elementwise" else
               f" ('{eqn.prim.name}' declares no linear_in=)")
            + ".\n  A nonlinear bwd (e.g. gradient clipping) has no forward "
            "mode that agrees with grad; use grad/jacrev/vjp, or define the derivative with "
            "custom_jvp, which supports both modes.")


def _custom_vjp_call_jvp(*args, out, call_jaxpr, rules, num_consts, const_diff, name):
    # J t by transposing bwd: bwd(ct) = J^T ct is linear in ct, so the vjp of
    # bwd with respect to ct, applied to t, is J t (exact, no extra user rule)
    n = len(call_jaxpr.invars)
    ts, xs = args[:n], args[n:]
    in_avals = [v.aval for v in call_jaxpr.invars]
    out_avals = _out_avals(call_jaxpr)
    n_out = len(out_avals)
    t_out = [_zero(a) for a in out_avals]
    ts_x = [t if _is_float(a) else _zero(a) for t, a in zip(ts[num_consts:],
                                                           in_avals[num_consts:])]
    if any(not _is_zero(t) for t in ts_x):
        bwd_jaxpr, bwd_consts = rules.get("bwd")
        _check_bwd_linear(name, bwd_jaxpr, n_out)
        res = _residuals(rules, xs, n_out)
        zero_cts = [_instantiate(_zero(a)) for a in out_avals]
        wrt = [False] * (num_consts + len(res)) + [_is_float(a) for a in out_avals]
        try:
            _, cts = vjp_eval(bwd_jaxpr, bwd_consts,
                              list(xs[:num_consts]) + list(res) + zero_cts, wrt, ts_x)
        except FungradNotImplementedError as e:
            raise FungradNotImplementedError(
                f"jvp of custom_vjp({name}): forward mode (jvp, jacfwd, hessian) of a "
                f"custom_vjp function is computed by transposing its bwd rule, which "
                f"failed:\n  {e}\n  Use jacrev/grad instead, or define the derivative with "
                "custom_jvp (which supports both modes).") from e
        float_outs = iter(cts)
        t_out = [next(float_outs) if _is_float(a) else _zero(a) for a in out_avals]
    const_ts = [t if diff and not _is_zero(t) and _is_float(aval_of(x)) else _zero(aval_of(x))
                for t, x, diff in zip(ts[:num_consts], xs[:num_consts], const_diff,
                                      strict=True)]
    if any(not _is_zero(t) for t in const_ts):
        extra = _jvp_through_consts(f"custom_vjp({name})", call_jaxpr, xs, const_ts)
        t_out = [_add_tangents(a, b) for a, b in zip(t_out, extra, strict=True)]
    return tuple(None if _is_zero(t) or not _is_float(a) else t
                 for t, a in zip(t_out, out_avals, strict=True))




def _custom_vjp_call_vmap(axis_size, args, dims, *, call_jaxpr, rules, num_consts, const_diff,
                          name):
    # outputs and residuals batched at 0; bwd's cotangent for an unbatched input is
    # summed over the batch
    n_out = len(call_jaxpr.outvars)
    dims = list(dims)
    new_call = batch_jaxpr(call_jaxpr, axis_size, dims, [0] * n_out)

    def spec(rule_name, jaxpr):
        if rule_name == "fwd":
            return dims, [0] * len(jaxpr.outvars)
        n_res = len(jaxpr.invars) - num_consts - n_out     # bwd: (consts, res, cts)
        return dims[:num_consts] + [0] * (n_res + n_out), dims[num_consts:]
    outs = custom_vjp_call_p.bind(*args, call_jaxpr=new_call,
                                  rules=_batch_rules(rules, axis_size, dims, spec),
                                  num_consts=num_consts, const_diff=const_diff, name=name)
    return outs, [0] * n_out


custom_vjp_call_p.def_jvp(_custom_vjp_call_jvp, symbolic_zeros=True)
custom_vjp_call_p.def_vjp(_custom_vjp_call_vjp, wants_active=True)
custom_vjp_call_p.def_vmap(_custom_vjp_call_vmap)


class custom_vjp:
    """A function with a user-defined reverse-mode derivative (JAX's `custom_vjp`).

        @custom_vjp
        def clip_gradient(x):
            return x

        def fwd(x):
            return x, None                      # (output, residuals)

        def bwd(res, g):
            return (fnp.clip(g, -1.0, 1.0),)    # one cotangent per argument

        clip_gradient.defvjp(fwd, bwd)

    `fwd(*args) -> (out, residuals)` runs in the forward pass; `bwd(*nondiff_args,
    residuals, out_cotangent)` returns a tuple with one cotangent per differentiable
    argument (None for zero).  Forward mode (`jvp`, `jacfwd`, `hessian`) transposes
    `bwd`, which is exact when `bwd` is linear in the cotangent; a `bwd` that is not
    (like this clipping) raises under forward mode rather than disagree with grad.  Values the function closes over are differentiated through
    the function itself.

    Args:
      fun: the function.
      nondiff_argnums: positions of arguments that are not differentiated; `bwd`
        receives them first.
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable, symbolic_zeros: bool = False) -> None:
        """Set the rules: `fwd(*args) -> (out, res)`, `bwd(*nondiff_args, res, g) -> cts`."""
        if symbolic_zeros:
            raise FungradNotImplementedError(
                "custom_vjp.defvjp: symbolic_zeros=True is not supported")
        self.fwd, self.bwd = fwd, bwd

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        where = f"custom_vjp({describe_function(self.fun)})"
        if self.fwd is None:
            raise FungradTypeError(
                f"{where}: no rules were given; define them with "
                f"{self.__name__}.defvjp(fwd, bwd)")
        call = _Call(where, self.fun, args, kwargs, self.nondiff_argnums)
        if not _needs_trace(call.leaves):
            return self.fun(*call.args)
        closed, out_tree = _trace_fun(where, self.fun, call)
        out_avals = closed.out_avals
        n_out = len(out_avals)
        fwd, bwd = self.fwd, self.bwd
        n_dyn = len(call.dyn_pos)

        def flat_fwd(res_box, *xs):
            result = fwd(*call.full_args(xs))
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise FungradTypeError(
                    f"{where}: fwd {describe_function(fwd)} must return a pair "
                    f"(output, residuals), got {type(result).__name__}")
            o_leaves, o_tree = tree_flatten(result[0])
            if o_tree != out_tree:
                raise FungradTypeError(
                    f"{where}: fwd {describe_function(fwd)} returned an output with "
                    f"structure {o_tree}, but the function returns {out_tree}")
            for i, (o, a) in enumerate(zip(o_leaves, out_avals, strict=True)):
                if aval_of(o).shape != a.shape:
                    raise FungradTypeError(
                        f"{where}: fwd {describe_function(fwd)} returned output {i} of type "
                        f"{aval_of(o)}, but the function returns {a}")
            r_leaves = _flatten_out(f"{where}: fwd's residuals", result[1], res_box)
            return list(o_leaves) + list(r_leaves)

        def flat_bwd(res_tree, n_res, *res_cts):
            res = res_tree.unflatten(list(res_cts[:n_res]))
            g = out_tree.unflatten(list(res_cts[n_res:]))
            cts = bwd(*call.nondiff_args, res, g)
            if isinstance(cts, list):
                cts = tuple(cts)
            if not isinstance(cts, tuple) or len(cts) != n_dyn:
                raise FungradTypeError(
                    f"{where}: bwd {describe_function(bwd)} must return a tuple with one "
                    f"cotangent per differentiable argument ({n_dyn}), got "
                    f"{type(cts).__name__}"
                    + (f" of length {len(cts)}" if isinstance(cts, tuple) else ""))
            return _bwd_leaves(where, bwd, cts, call)

        def trace_rules(sources):
            res_box: list = []
            with _tracing_rules_of(self):
                fwd_closed = _trace(functools.partial(flat_fwd, res_box), call.avals, sources)
                res_avals = fwd_closed.out_avals[n_out:]
                bwd_closed = _trace(functools.partial(flat_bwd, res_box[0], len(res_avals)),
                                    list(res_avals) + list(out_avals),
                                    [_NO_SOURCE] * (len(res_avals) + n_out))
            return fwd_closed, bwd_closed

        if not _trace_rules_eagerly(self):
            consts, (call_jaxpr,) = trace_with_consts([closed])
            const_avals = [aval_of(c) for c in consts]

            def make():
                fwd_closed, bwd_closed = trace_rules([_NO_SOURCE] * len(call.avals))
                return [(_with_leading_inputs(c.jaxpr, const_avals), list(c.consts))
                        for c in (fwd_closed, bwd_closed)]
            rules = _Rules(("fwd", "bwd"), make=make,
                           lazy_key=_lazy_key(self, (fwd, bwd), call, const_avals))
        else:
            fwd_closed, bwd_closed = trace_rules(call.sources())
            consts, (call_jaxpr, fwd_jaxpr, bwd_jaxpr) = trace_with_consts(
                [closed, fwd_closed, bwd_closed])
            rules = _Rules(("fwd", "bwd"), [fwd_jaxpr, bwd_jaxpr])
        outs = custom_vjp_call_p.bind(*consts, *call.leaves, call_jaxpr=call_jaxpr, rules=rules,
                                      num_consts=len(consts),
                                      const_diff=tuple(isinstance(c, Tracer) for c in consts),
                                      name=getattr(self.fun, "__name__", "fun"))
        return out_tree.unflatten(list(outs))


def _bwd_leaves(where: str, bwd: Callable, cts: tuple, call: _Call) -> list:
    """bwd's cotangents as flat leaves matching the differentiable inputs (None: zero)."""
    leaves = []
    avals = iter(call.avals)
    for pos, ct in zip(call.dyn_pos, cts, strict=True):
        arg_leaves, arg_tree = tree_flatten(call.args[pos])
        if ct is None:
            ct_leaves = [None] * len(arg_leaves)
        else:
            ct_leaves, ct_tree = tree_flatten(ct, is_leaf=lambda x: x is None)
            if len(ct_leaves) != len(arg_leaves):
                raise FungradTypeError(
                    f"{where}: bwd {describe_function(bwd)} returned a cotangent with "
                    f"structure {ct_tree} for argument {pos}, which has structure {arg_tree}")
        for c in ct_leaves:
            aval = next(avals)
            if c is None:
                leaves.append(full(aval.shape, 0, aval.dtype))
                continue
            c_aval = aval_of(c)
            if c_aval.shape != aval.shape:
                raise FungradTypeError(
                    f"{where}: bwd {describe_function(bwd)} returned a cotangent of type "
                    f"{c_aval} for an argument of type {aval}; cotangents must have their "
                    "argument's shape")
            if c_aval.dtype != aval.dtype:
                c = convert_element_type(c, aval.dtype) if _is_float(aval) else full(
                    aval.shape, 0, aval.dtype)
            leaves.append(c)
    return leaves
