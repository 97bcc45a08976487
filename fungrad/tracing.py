"""Tracing: run a Python function on `Tracer`s and record a `Jaxpr`.

`Primitive.bind` (core.py) is the one place where operations meet tracing:
outside any trace it runs the primitive's NumPy `impl`; inside one it calls
`Trace.process_primitive`, which appends an equation to the current `Trace`
(held in core's `ContextVar`) and returns a `Tracer`.

Nesting needs no tracer levels (see DESIGN.md): a transform called inside a
trace traces its function into a fresh inner jaxpr, in which tracers of the
outer trace are constants (constvars whose values are the outer tracers).
Evaluating the rewritten inner jaxpr on outer tracers binds its equations into
the outer trace.  Only one trace records at a time.

Concrete values: when a trace starts from concrete arguments (eager `grad(f)(x)`),
a tracer's value is computed on demand (`bool(x > 0)`, `float(x)`, `print(x)`) by
evaluating the equations recorded so far, so Python control flow works as in
autograd and PyTorch.  Under `jit` and `make_jaxpr` values are abstract.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable, Sequence

import numpy as np

from . import core
from .core import (AbstractTracer, ClosedJaxpr, Eqn, Jaxpr, Literal, ShapedArray, Var,
                   current_trace, trace_context)
from .errors import SourceInfo, _internal_code, _is_internal  # the frame walk in process_primitive
from .errors import (ConcretizationError, FungradTypeError, FungradValueError,
                     TracerArrayConversionError, TracerBoolConversionError,
                     TracerIntegerConversionError, UnexpectedTracerError, format_location,
                     int_overflow_error, user_location)
from .pytree import tree_flatten

__all__ = ["Trace", "Tracer", "trace_to_jaxpr", "make_jaxpr", "current_trace",
           "is_tracer", "aval_of", "as_value", "new_trace"]

_NO_VALUE = object()
_STORE_SUBSCR = __import__("dis").opmap["STORE_SUBSCR"]


class Trace:
    """The equations being recorded, and where the inputs' values come from."""

    def __init__(self, concrete: bool):
        self.eqns: list[Eqn] = []
        self.invars: list[Var] = []
        self.constvars: list[Var] = []
        self.const_values: list[Any] = []     # arrays, or tracers of an outer trace
        self._lifted: dict[int, Var] = {}     # id(outer tracer's var or array) -> constvar
        self._keepalive: list[Any] = []
        self.done = False
        self.concrete = concrete              # may values be computed on demand?
        self.values: dict[Var, Any] = {}      # known concrete values
        self.sources: dict[Var, Any] = {}     # var -> array or outer Tracer (lazy)
        self._eval_pos = 0
        # set by interpreters that re-bind an existing equation, so the new equations
        # keep the user's file:line of the equation they come from
        self.source_info: tuple | None = None
        # guards: a jit trace records here the Python decisions (bool/int/float of a
        # traced value) taken while tracing, as (predicate tracer of this trace,
        # expected value); None = this trace records no guards.
        self.guards: list | None = None
        self.parent: "Trace | None" = current_trace()
        # derivative tracking for Python conversions: the vars whose value depends
        # (differentiably) on an input being differentiated; see `perturbed`
        self._perturbed: set[Var] = set()
        self._perturbed_pos = 0
        # a custom_jvp/custom_vjp function's trace: its rules define the derivative
        # with respect to its inputs, so converting them drops nothing
        self.derivative_barrier = False

    # -- recording ------------------------------------------------------------
    def process_primitive(self, prim: core.Primitive, args: tuple, params: dict) -> Any:
        """`prim.bind(*args, **params)` inside this trace: append the equation, with
        the user's source line, and return tracers for its outputs."""
        atoms = []
        for a in args:
            if type(a) is Tracer and a._trace is self:
                atoms.append(a._var)
            else:
                atoms.append(self.to_atom(a))
        out_aval = prim.shape_rule(*[a.aval for a in atoms], **params)
        src = self.source_info
        if src is None:
            # the user's frame: the innermost one that is not fungrad's (inlined user_location)
            frame = sys._getframe(2)
            internal = _internal_code
            while frame is not None:
                code = frame.f_code
                flag = internal.get(code)
                if flag is None:
                    flag = _is_internal(code)
                if not flag:
                    src = SourceInfo(code, frame.f_lasti)
                    break
                frame = frame.f_back
        if prim.multiple_results:
            outvars = [Var(a) for a in out_aval]
            self.eqns.append(Eqn(prim, atoms, outvars, params, src))
            return tuple(Tracer(self, v) for v in outvars)
        outvar = Var(out_aval)
        self.eqns.append(Eqn(prim, atoms, (outvar,), params, src))
        return Tracer(self, outvar)

    # -- inputs ---------------------------------------------------------------
    def new_arg(self, aval: ShapedArray, source: Any = _NO_VALUE) -> "Tracer":
        var = Var(aval)
        self.invars.append(var)
        if source is not _NO_VALUE:
            self.sources[var] = source
        return Tracer(self, var)

    def to_atom(self, x: Any) -> core.Atom:
        """The jaxpr atom for a bind argument: own var, lifted constant, or literal."""
        if isinstance(x, Tracer):
            if x._trace is self:
                return x._var
            if x._trace.done:
                raise _leaked_tracer_error(x)
            return self._lift(x, id(x._var))
        if isinstance(x, (float, int, bool, complex, np.generic)):
            return Literal(x, ShapedArray.of(x))
        if isinstance(x, np.ndarray):
            if x.ndim == 0:
                return Literal(x[()], ShapedArray.of(x))
            return self._lift(x, id(x))
        if isinstance(x, (list, tuple)):
            raise FungradTypeError(
                f"a Python {type(x).__name__} was passed where an array was expected; "
                "wrap it with fungrad.numpy.asarray(...) or fungrad.numpy.stack(...)")
        arr = np.asarray(x)
        if arr.dtype == object:
            raise FungradTypeError(f"cannot use a value of type {type(x).__name__} as an array")
        return self.to_atom(arr)

    def constant_tracer(self, value: np.ndarray) -> "Tracer":
        """A tracer for a constant array (a constvar of this trace)."""
        return Tracer(self, self._lift(value, id(value)))

    def _lift(self, x: Any, key: int) -> Var:
        var = self._lifted.get(key)
        if var is None:
            var = Var(x.aval if isinstance(x, Tracer) else ShapedArray.of(x))
            self._lifted[key] = var
            self._keepalive.append(x)
            self.constvars.append(var)
            self.const_values.append(x)
            self.sources[var] = x
        return var

    # -- concrete values ------------------------------------------------------
    def value_of(self, atom: core.Atom) -> Any:
        """The concrete value of an atom of this trace, or `_NO_VALUE`."""
        if isinstance(atom, Literal):
            return atom.val
        v = self.values.get(atom, _NO_VALUE)
        if v is not _NO_VALUE:
            return v
        if atom in self.sources:
            src = self.sources[atom]
            v = src.concrete_value() if isinstance(src, Tracer) else src
            if v is not _NO_VALUE:
                self.values[atom] = v
            return v
        if not self.concrete:
            return _NO_VALUE
        # evaluate the recorded equations up to the one that defines `atom`
        while self._eval_pos < len(self.eqns):
            eqn = self.eqns[self._eval_pos]
            ins = [self.value_of(a) for a in eqn.inputs]
            if any(v is _NO_VALUE for v in ins):
                return _NO_VALUE
            self._eval_pos += 1
            outs = eqn.prim.impl(*ins, **eqn.params)
            if not eqn.prim.multiple_results:
                outs = (outs,)
            for var, val in zip(eqn.outputs, outs, strict=True):
                self.values[var] = val
            if atom in self.values:
                return self.values[atom]
        return self.values.get(atom, _NO_VALUE)

    # -- derivatives ----------------------------------------------------------
    def mark_differentiated(self, tracers: Sequence["Tracer"]) -> None:
        """These inputs (of this trace) are being differentiated: a Python conversion
        of a value depending on them would silently drop its derivative."""
        for t in tracers:
            if t.aval.dtype.kind in "fc":
                self._perturbed.add(t._var)

    def perturbed(self, var: Var) -> bool:
        """Does `var`'s value depend differentiably on an input being differentiated,
        here or in an enclosing trace?  (Equations whose jvp is `nondifferentiable`,
        like stop_gradient, and integer or bool results cut the dependence.)"""
        perturbed = self._perturbed
        while self._perturbed_pos < len(self.eqns):
            eqn = self.eqns[self._perturbed_pos]
            self._perturbed_pos += 1
            if eqn.prim.jvp_nondifferentiable:
                continue
            if any(type(a) is Var and (a in perturbed or self._source_perturbed(a))
                   for a in eqn.inputs):
                perturbed.update(o for o in eqn.outputs if o.aval.dtype.kind in "fc")
        return var in perturbed or self._source_perturbed(var)

    def _source_perturbed(self, var: Var) -> bool:
        if self.derivative_barrier and var in self.invars:
            return False
        src = self.sources.get(var)
        return (type(src) is Tracer and not src._trace.done
                and src._trace.perturbed(src._var))

    # -- results --------------------------------------------------------------
    def finish(self, outs: Sequence[Any]) -> ClosedJaxpr:
        out_atoms = [self.to_atom(x) for x in outs]
        self.done = True
        jaxpr = Jaxpr(self.constvars, self.invars, self.eqns, out_atoms)
        return ClosedJaxpr(jaxpr, self.const_values)


def _leaked_tracer_error(x: "Tracer") -> UnexpectedTracerError:
    made = next((e.source_info for e in x._trace.eqns if x._var in e.outputs), None)
    origin = (f" (it was created at {format_location(made)})" if made is not None else
              " (it was an argument of the transformed function)")
    return UnexpectedTracerError(
        f"a traced {x.aval} value escaped the transform that created it and was used "
        f"later, at {format_location(user_location(3))}{origin}.\n  Traced values exist only "
        "while their function is being transformed; return it from the function instead of "
        "storing it in a global or an outer variable.")


class Tracer(AbstractTracer):
    """A value during tracing: an aval, the jaxpr var that holds it, its trace.

    Array operators and methods (`+`, `@`, `x[1:]`, `.sum()`, ...) are installed
    by `fungrad.numpy`, which implements them."""
    # `_view` (unset unless needed) is fungrad.numpy's aliasing record for item assignment
    __slots__ = ("_trace", "_var", "_view", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, trace: Trace, var: Var):
        self._trace = trace
        self._var = var

    def leaked_error(self) -> UnexpectedTracerError:
        return _leaked_tracer_error(self)

    @property
    def aval(self) -> ShapedArray:
        return self._var.aval

    @property
    def shape(self) -> tuple:
        return self._var.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self._var.aval.dtype

    @property
    def ndim(self) -> int:
        return len(self._var.aval.shape)

    @property
    def size(self) -> int:
        return self._var.aval.size

    def __len__(self) -> int:
        if not self.shape:
            raise FungradTypeError("len() of a 0-d traced array")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise FungradTypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    # -- concrete values ------------------------------------------------------
    def concrete_value(self) -> Any:
        """The value, when the trace started from concrete inputs; else _NO_VALUE."""
        if self._trace.done:
            raise _leaked_tracer_error(self)
        return self._trace.value_of(self._var)

    def _concrete(self, what: str, error: type, fix: str, guard: bool = False,
                  drops_derivative: bool = False) -> Any:
        """The concrete value, for a Python conversion.  Under jit only control-flow
        conversions (`guard=True`: bool, int, index) have a value, recorded as a guard;
        others raise like under make_jaxpr.  A conversion to a Python number
        (`drops_derivative=True`) of a value being differentiated raises: the number
        would carry no derivative, and the result would be silently wrong."""
        if drops_derivative and self._trace.perturbed(self._var):
            raise ConcretizationError(
                f"a traced {self.aval} value that is being differentiated was converted to "
                f"{what} at {format_location(user_location(3))}.\n  A Python number carries "
                "no derivative, so the derivative through this value would silently be 0. "
                "Use the fungrad.numpy function instead (fnp.exp(x), not math.exp(x); keep "
                "x an array rather than float(x) or x.item()), or wrap the value in "
                "fungrad.lax.stop_gradient(x) if you mean it as a constant.")
        root = _guard_root(self._trace)
        v = _NO_VALUE if root is not None and not guard else self.concrete_value()
        if v is _NO_VALUE:
            raise error(
                f"a traced {self.aval} value was used as {what} at "
                f"{format_location(user_location(3))}.\n  Under jit and make_jaxpr values are "
                f"abstract (only shapes and dtypes are known). {fix}")
        if root is not None:
            _record_guard(self, v)
        return v

    def __bool__(self) -> bool:
        if self.size != 1:
            raise FungradValueError(
                f"the truth value of a traced {self.aval} array is ambiguous; "
                "use .any() or .all()")
        return bool(self._concrete(
            "a Python bool (`if`, `while`, `and`, `or`)", TracerBoolConversionError,
            "Use fungrad.numpy.where or fungrad.lax.cond, or make the argument static "
            "(jit(f, static_argnums=...)).", guard=True))

    def _refuse_implicit_store(self) -> None:
        """`numpy_array[i] = tracer` converts the tracer with float()/int() from C,
        which would silently drop its derivative: refuse it, naming the line."""
        frame = sys._getframe(2)
        code = frame.f_code.co_code
        if 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == _STORE_SUBSCR:
            raise FungradValueError(
                f"a traced {self.aval} value was stored into a NumPy array at "
                f"{format_location((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))}"
                ".\n  NumPy would keep only its number and drop its derivative. Create the "
                "array with fungrad.numpy (e.g. fnp.zeros) so the assignment is traced, or use "
                "x.at[i].set(value).")

    def __float__(self) -> float:
        self._refuse_implicit_store()
        return float(self._concrete(
            "a Python float (float(x), math.*)", ConcretizationError,
            "Keep it an array, or compute the float outside the transformed function.",
            drops_derivative=True))

    def __int__(self) -> int:
        self._refuse_implicit_store()
        return int(self._concrete(
            "a Python int (int(x))", TracerIntegerConversionError,
            "Keep it an array, or make the argument static (jit(f, static_argnums=...)).",
            guard=True, drops_derivative=True))

    def __complex__(self) -> complex:
        self._refuse_implicit_store()
        return complex(self._concrete("a Python complex (complex(x))", ConcretizationError,
                                      "Keep it an array.", drops_derivative=True))

    def __index__(self) -> int:
        if not np.issubdtype(self.dtype, np.integer):
            raise FungradTypeError(f"a traced {self.aval} value cannot be used as an index")
        return int(self._concrete(
            "a Python index (range(x), a list index, a shape)",
            TracerIntegerConversionError,
            "Use fungrad.lax.fori_loop for loops of traced length, or make the argument "
            "static (jit(f, static_argnums=...)).", guard=True))

    def item(self):
        return np.asarray(self._concrete("a Python scalar (x.item())", ConcretizationError,
                                         "Keep it an array.", drops_derivative=True)).item()

    def tolist(self):
        return np.asarray(self._concrete("a Python list (x.tolist())", ConcretizationError,
                                         "Keep it an array.", drops_derivative=True)).tolist()

    def __array__(self, dtype=None, copy=None):
        raise TracerArrayConversionError(
            f"a traced {self.aval} value was converted to a NumPy array (np.asarray, "
            f"np.array or a NumPy function fungrad does not know) at "
            f"{format_location(user_location(2))}.\n  NumPy cannot differentiate through it: "
            "use the function of the same name in fungrad.numpy instead.")

    def __repr__(self) -> str:
        try:
            v = self.concrete_value()
        except UnexpectedTracerError:
            v = _NO_VALUE
        if v is _NO_VALUE:
            return f"Traced<{self.aval}>"
        return f"Traced<{self.aval}>(value={np.array2string(np.asarray(v), separator=', ')})"

    def __str__(self) -> str:
        try:
            v = self.concrete_value()
        except UnexpectedTracerError:
            v = _NO_VALUE
        return f"Traced<{self.aval}>" if v is _NO_VALUE else str(np.asarray(v))

    def __format__(self, spec: str) -> str:
        # printing a value drops nothing: read it without the conversion checks
        if spec:
            v = self.concrete_value()
            if v is _NO_VALUE:
                return format(str(self), spec)
            v = np.asarray(v)
            return format(v.item() if v.size == 1 else v, spec)
        return str(self)

    def __hash__(self):
        raise FungradTypeError("traced arrays are unhashable (like NumPy arrays)")

    def __reduce__(self):
        raise FungradTypeError("traced arrays cannot be pickled")


def _guard_root(trace: Trace) -> Trace | None:
    while trace is not None:
        if trace.guards is not None:
            return trace
        trace = trace.parent
    return None


def _record_guard(x: "Tracer", value: Any) -> None:
    """Under a guard-recording (jit) trace, remember that the traced program took
    a decision on x's value: the predicate `x == value` becomes a guard output."""
    root = _guard_root(x._trace)
    if root is None:
        return
    lifted = _lift_to(x, root)
    if lifted is None:
        return
    root.guards.append((lifted, np.asarray(value)))


def _lift_to(x: "Tracer", root: Trace) -> "Tracer | None":
    """x's value expressed as a tracer of `root` (an ancestor of x's trace): replay
    the equations x depends on, with inputs replaced by their sources."""
    trace = x._trace
    if trace is root:
        return x
    # the equations of `trace` that x depends on, in order
    needed = {x._var}
    slice_ = []
    for eqn in reversed(trace.eqns):
        if any(o in needed for o in eqn.outputs):
            slice_.append(eqn)
            needed.update(a for a in eqn.inputs if isinstance(a, Var))
    slice_.reverse()
    env = {}
    for var in needed:
        if var in trace.sources:
            src = trace.sources[var]
            if isinstance(src, Tracer):
                lifted = _lift_to(src, root) if src._trace is not root else src
                if lifted is None:
                    return None
                env[var] = lifted
            else:
                env[var] = src
        elif not any(var in e.outputs for e in slice_):
            return None                     # an input without a known source
    with trace_context(root):
        for eqn in slice_:
            ins = [a.val if isinstance(a, Literal) else env[a] for a in eqn.inputs]
            outs = eqn.prim.bind(*ins, **eqn.params)
            outs = outs if eqn.prim.multiple_results else (outs,)
            for v, o in zip(eqn.outputs, outs, strict=True):
                env[v] = o
    out = env[x._var]
    return out if isinstance(out, Tracer) else None


def as_value(x: Any, what: str = "arguments") -> Any:
    """A leaf as fungrad sees it: tracers stay, everything else becomes an ndarray
    (`what` names the leaves in the error for a value that is not an array)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, np.ndarray):
        return x
    if type(x) is int and not _INT64_MIN <= x <= _INT64_MAX:
        raise int_overflow_error(x)
    arr = np.asarray(x)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise FungradTypeError(
            f"a value of type {type(x).__name__} is not an array; {what} must be "
            "arrays, scalars, or pytrees (tuple, list, dict) of them")
    return arr


def is_tracer(x: Any) -> bool:
    return isinstance(x, Tracer)


def aval_of(x: Any) -> ShapedArray:
    if isinstance(x, Tracer):
        return x._var.aval
    return ShapedArray.of(x)


class new_trace(trace_context):
    """Context manager: make `trace` the recording trace for the block; the trace is
    done (its tracers may no longer be used) when the block ends."""
    __slots__ = ()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.trace.done = True


def trace_to_jaxpr(fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray],
                   sources: Sequence[Any] | None = None,
                   guards: list | None = None,
                   differentiated: Sequence[bool] | None = None) -> ClosedJaxpr:
    """Trace `fun(*tracers) -> flat list of outputs` into a ClosedJaxpr.

    `sources` gives each input a concrete value (array or outer tracer) that
    can be read on demand; without it the trace is abstract.  `guards`: a list
    that receives the (predicate tracer, expected value) of every Python decision
    taken on a traced value (see `jit`); `fun` may append the predicates to its
    outputs.  `differentiated` flags the inputs being differentiated (a Python
    conversion of a value that depends on them raises)."""
    trace = Trace(concrete=sources is not None)
    trace.guards = guards
    with new_trace(trace):
        if sources is None:
            args = [trace.new_arg(a) for a in in_avals]
        else:
            args = [trace.new_arg(a, s) for a, s in zip(in_avals, sources, strict=True)]
        if differentiated is not None:
            trace.mark_differentiated([a for a, d in zip(args, differentiated, strict=True)
                                       if d])
        outs = fun(*args)
        closed = trace.finish(outs)
    return closed


# ---------------------------------------------------------------------------
# make_jaxpr
# ---------------------------------------------------------------------------

_NUMERIC_KINDS = "biufc"
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)   # bool, int, uint, float, complex: strings and objects are refused


def _leaf_aval(x: Any, where: str) -> ShapedArray:
    if isinstance(x, Tracer):
        return x._var.aval
    try:
        aval = ShapedArray.of(x)
    except Exception:  # noqa: BLE001
        aval = None
    if aval is None or aval.dtype.kind not in _NUMERIC_KINDS:
        raise FungradTypeError(
            f"{where}: an argument leaf of type {type(x).__name__} is not an array. "
            "Arguments must be arrays, scalars or pytrees (tuples, lists, dicts) of them; "
            "pass other values with static_argnums.")
    return aval


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = (),
               return_shape: bool = False) -> Callable[..., ClosedJaxpr]:
    """Return a function that traces `fun` on its arguments and returns the Jaxpr.

    >>> import fungrad as fg, fungrad.numpy as fnp
    >>> print(fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(1.0))
    { lambda ; a:f64[]. let
        b:f64[] = sin a
        c:f64[] = mul b 2.0:f64[]
      in (c) }
    """
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def make(*args, **kwargs):
        n = len(args)
        static_set = {i % n for i in static} if n else set()
        dyn_idx = [i for i in range(n) if i not in static_set]
        leaves, in_tree = tree_flatten(([args[i] for i in dyn_idx], kwargs))
        avals = [_leaf_aval(x, "make_jaxpr") for x in leaves]
        out_tree_box = []

        def flat_fun(*tracers):
            dyn_args, kw = in_tree.unflatten(tracers)
            full = list(args)
            for i, a in zip(dyn_idx, dyn_args):
                full[i] = a
            out = fun(*full, **kw)
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append((out_tree, out_leaves))
            return out_leaves

        closed = trace_to_jaxpr(flat_fun, avals)
        if return_shape:
            out_tree, _ = out_tree_box[0]
            shapes = out_tree.unflatten([types.SimpleNamespace(shape=a.shape, dtype=a.dtype)
                                         for a in closed.out_avals])
            return closed, shapes
        return closed
    make.__name__ = f"make_jaxpr({getattr(fun, '__name__', 'fun')})"
    return make
