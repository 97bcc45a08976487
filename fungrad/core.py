"""The IR: typed variables, equations over primitives, jaxprs, and the printer.

A `Jaxpr` is a straight-line program in single-assignment form:

    { lambda a:f64[5,3] ; b:f64[5] c:f64[3] . let
        d:f64[3] = dot_general[contract=((0,), (0,)) batch=((), ())] b a
        e:f64[3] = add d c
      in (e) }

`constvars` (before the `;`) receive values captured from the traced function's
closure, `invars` its arguments.  `ShapedArray` is a type, never a value.
The current trace (a `ContextVar`) lives here too, so that `Primitive.bind` can
dispatch without knowing how a trace records: outside any trace a primitive
runs its NumPy `impl`; inside one, the trace's `process_primitive` records it
(`tracing.Trace`).  Only `errors` and `config` are imported from fungrad.
"""
from __future__ import annotations

import contextvars
import importlib
import itertools
import math
import pickle
import sys
from typing import Any, Callable, Sequence

import numpy as np

from .arrays import as_array
from .caches import new_cache
from .config import settings
from .errors import (FungradFloatingPointError, FungradNotImplementedError, FungradTypeError,
                     format_location, int_overflow_error, user_location)

__all__ = [
    "ShapedArray", "Var", "Literal", "Atom", "Eqn", "Jaxpr", "ClosedJaxpr", "Primitive",
    "typecheck", "dtype_name", "jaxpr_key", "JaxprTypeError", "AbstractTracer",
    "current_trace", "trace_context", "outside_trace", "check_outputs", "register_svg_renderer",
    "nondifferentiable",
]


# ---------------------------------------------------------------------------
# types
# ---------------------------------------------------------------------------

_DTYPE_NAMES = {
    np.dtype("float64"): "f64", np.dtype("float32"): "f32", np.dtype("float16"): "f16",
    np.dtype("int64"): "i64", np.dtype("int32"): "i32", np.dtype("int16"): "i16",
    np.dtype("int8"): "i8", np.dtype("uint64"): "u64", np.dtype("uint32"): "u32",
    np.dtype("uint16"): "u16", np.dtype("uint8"): "u8", np.dtype("bool"): "bool",
    np.dtype("complex128"): "c128", np.dtype("complex64"): "c64",
}


def dtype_name(dtype: np.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype))


class ShapedArray:
    """The type of an array value: a shape (tuple of ints) and a NumPy dtype.

    `weak_type=True` marks the type of a Python scalar passed to `jit`: promotion
    treats its value like the Python scalar (`float32_array * n` stays float32).  It
    is not part of equality; results of primitives are never weak."""
    __slots__ = ("shape", "dtype", "_hash", "weak_type")

    def __init__(self, shape: Sequence[int], dtype: Any, weak_type: bool = False):
        if type(shape) is not tuple or not all(type(d) is int for d in shape):
            shape = tuple(int(d) for d in shape)
        self.shape = shape
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self._hash = hash((shape, self.dtype))
        self.weak_type = weak_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ShapedArray) and self.shape == other.shape
                and self.dtype == other.dtype)

    def __hash__(self) -> int:
        return self._hash

    def str_short(self) -> str:
        return f"{dtype_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    __str__ = str_short

    def __repr__(self) -> str:
        return f"ShapedArray({self.shape}, {self.dtype})"

    def update(self, shape=None, dtype=None) -> "ShapedArray":
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype)

    @staticmethod
    def of(value: Any) -> "ShapedArray":
        """The type of a concrete value (array, NumPy scalar, Python scalar)."""
        if isinstance(value, np.ndarray):
            key = (value.shape, value.dtype)
            aval = _AVALS.get(key)
            if aval is None:
                if value.dtype.kind != "O":     # (object: the while-loop tape, internal)
                    _check_operand_dtype(value, value.dtype)
                aval = _AVALS.put(key, ShapedArray(value.shape, value.dtype))
            return aval
        if isinstance(value, np.generic):
            aval = _SCALAR_AVALS.get(value.dtype)
            if aval is None:
                _check_operand_dtype(value, value.dtype)
                aval = _SCALAR_AVALS.put(value.dtype, ShapedArray((), value.dtype))
            return aval
        if isinstance(value, bool):
            return _PY_SCALAR_AVALS[bool]
        if isinstance(value, int):
            if not -2 ** 63 <= value < 2 ** 63:
                raise int_overflow_error(value)
            return _PY_SCALAR_AVALS[int]
        if isinstance(value, float):
            return _PY_SCALAR_AVALS[float]
        if isinstance(value, complex):
            return _PY_SCALAR_AVALS[complex]
        aval = getattr(value, "aval", None)
        if isinstance(aval, ShapedArray):
            return aval
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as e:   # ragged nested lists
            _check_operand_dtype(value, None, str(e))
        _check_operand_dtype(value, arr.dtype)
        return ShapedArray(arr.shape, arr.dtype)


def _check_operand_dtype(value, dtype, why: str = "") -> None:
    """Refuse an operand that is not a numeric array (a string, None, an object):
    the error names the value and the user's line, before NumPy's internals see it."""
    if dtype is not None and dtype.kind in "biufc":
        return
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise FungradTypeError(
        f"an operand is {shown} of type {type(value).__name__}"
        + (f" with dtype {dtype}" if dtype is not None else f" ({why})")
        + f", which is not a numeric array, at {format_location(user_location())}.\n  "
        "fungrad operations take bool, integer, float or complex arrays and scalars.")


_AVALS = new_cache("core.avals", 4096)   # interned avals of arrays (ShapedArray is immutable)
_SCALAR_AVALS = new_cache("core.scalar_avals", 64)
_PY_SCALAR_AVALS = {bool: ShapedArray((), np.bool_), int: ShapedArray((), np.int64),
                    float: ShapedArray((), np.float64), complex: ShapedArray((), np.complex128)}


class Var:
    """A variable of a jaxpr; compared by identity, named only when printed."""
    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Var({self.aval})"


class Literal:
    """An inline scalar constant in an equation's inputs."""
    __slots__ = ("val", "aval")

    def __init__(self, val: Any, aval: ShapedArray):
        assert aval.shape == (), "literals are scalars"
        self.val = aval.dtype.type(val)
        self.aval = aval

    def __repr__(self) -> str:
        return f"Literal({self.val!r}:{self.aval})"

    def __str__(self) -> str:
        v = self.val
        text = repr(bool(v)) if self.aval.dtype == np.bool_ else repr(v.item())
        return f"{text}:{self.aval}"


Atom = Var | Literal


class Eqn:
    """`outputs = prim[params](*inputs)`, with the user's source location."""
    __slots__ = ("prim", "inputs", "outputs", "params", "source_info")

    def __init__(self, prim: "Primitive", inputs: Sequence[Atom], outputs: Sequence[Var],
                 params: dict, source_info: tuple | None = None):
        self.prim = prim
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.params = params
        self.source_info = source_info

    def __repr__(self) -> str:
        return f"Eqn({self.prim.name}, {len(self.inputs)} in, {len(self.outputs)} out)"


class Jaxpr:
    """A typed straight-line program: constvars, invars, eqns, outvars."""
    __slots__ = ("constvars", "invars", "eqns", "outvars", "__weakref__")

    def __init__(self, constvars: Sequence[Var], invars: Sequence[Var], eqns: Sequence[Eqn],
                 outvars: Sequence[Atom]):
        self.constvars = tuple(constvars)
        self.invars = tuple(invars)
        self.eqns = tuple(eqns)
        self.outvars = tuple(outvars)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self) -> str:
        return pp_jaxpr(self)

    def pretty(self, source: bool = False, names: dict | None = None) -> str:
        """The printed program; `source=True` adds each equation's file:line."""
        return pp_jaxpr(self, source=source, names=names)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars."""
    __slots__ = ("jaxpr", "consts")

    def __init__(self, jaxpr: Jaxpr, consts: Sequence[Any]):
        assert len(jaxpr.constvars) == len(consts)
        self.jaxpr = jaxpr
        self.consts = list(consts)

    @property
    def in_avals(self):
        return self.jaxpr.in_avals

    @property
    def out_avals(self):
        return self.jaxpr.out_avals

    @property
    def eqns(self):
        return self.jaxpr.eqns

    def pretty(self, source: bool = False) -> str:
        return self.jaxpr.pretty(source=source)

    def __str__(self) -> str:
        return str(self.jaxpr)

    __repr__ = __str__

    def _repr_svg_(self):
        """Jupyter's picture of the program, drawn by the renderer `fungrad.viz` registers."""
        if _svg_renderer is None:
            return None
        return _svg_renderer(self.jaxpr)


_svg_renderer: Callable[[Jaxpr], str] | None = None


def register_svg_renderer(render: Callable[[Jaxpr], str]) -> None:
    """Let notebooks show a `ClosedJaxpr` as a picture (`fungrad.viz` registers one)."""
    global _svg_renderer
    _svg_renderer = render


# ---------------------------------------------------------------------------
# the current trace
# ---------------------------------------------------------------------------

_current_trace: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "fungrad_trace", default=None)


def current_trace() -> Any:
    """The trace recording primitive applications now (`tracing.Trace`), or None."""
    return _current_trace.get()


class trace_context:
    """Context manager: make `trace` the current trace for the block (None: evaluate
    eagerly).  A class, not a generator: transforms enter one per call."""
    __slots__ = ("trace", "_token")

    def __init__(self, trace: Any):
        self.trace = trace

    def __enter__(self) -> Any:
        self._token = _current_trace.set(self.trace)
        return self.trace

    def __exit__(self, *exc: Any) -> None:
        _current_trace.reset(self._token)


def outside_trace():
    """Evaluate the block on concrete values whatever trace is current: primitives
    run their NumPy `impl` (a rule that needs a sub-program's value, or a tracer's
    value read on demand, computes it here)."""
    return trace_context(None)


class AbstractTracer:
    """The base of `tracing.Tracer`: what `Primitive.bind` needs to know of it."""
    __slots__ = ()

    def leaked_error(self) -> Exception:  # pragma: no cover - Tracer implements it
        raise NotImplementedError


# ---------------------------------------------------------------------------
# primitives
# ---------------------------------------------------------------------------

RULE_KINDS = ("impl", "shape", "jvp", "vjp", "vmap", "emit")
# optional rules, read only by the passes that know them (codegen):
#   scalar_emit  (*input_names, out, in_avals, **params) -> text, or None for `emit`
#   loop         (at, idx, *in_avals, out, **params) -> text of one output element
#   accumulate   (acc, value, dtype) -> statement folding `value` into `acc`
#   lower        (gen, inputs, outputs, **params) -> None; writes the kernel lines
OPTIONAL_RULE_KINDS = ("scalar_emit", "loop", "accumulate", "lower")

# linear_in= of a primitive: "all" (a linear function of all operands together),
# "each" (linear in each operand while the others are fixed: a product), or a tuple
# of operand positions it is linear in while the others are fixed
LINEARITY = ("all", "each")

# what a primitive is (Primitive(kind=...)): elementwise maps, structural shape
# changes, reductions and cumulative scans, gather/scatter, linear algebra, calls of a
# sub-jaxpr (custom rules, checkpoint), structured control flow, and anything else
KINDS = ("elementwise", "shape", "reduction", "cumulative", "indexing", "linalg", "call",
         "control", "other")


# every primitive by (declaring module, name): the target of unpickling
_PRIMITIVES: dict[tuple[str, str], "Primitive"] = {}


def _primitive_by_name(module: str, name: str) -> "Primitive":
    """The primitive `name` declared in `module` (imported here if it is not yet)."""
    key = (module, name)
    if key not in _PRIMITIVES:
        importlib.import_module(module)
    try:
        return _PRIMITIVES[key]
    except KeyError:
        raise pickle.UnpicklingError(
            f"no primitive named {name!r} is declared by module {module}") from None


def nondifferentiable(*args, **params):
    """jvp/vjp rule of a primitive whose output is piecewise constant (or opaque):
    `p.def_jvp(nondifferentiable)` declares that no tangent flows through it."""
    return None


class Primitive:
    """A named operation; its rules are attached right below its definition.

    | rule  | signature                                   | returns               |
    | impl  | (*arrays, **params)                         | NumPy array           |
    | shape | (*avals, **params)                          | ShapedArray           |
    | jvp   | (t_1..t_n, x_1..x_n, *, out, **params)      | output tangent        |
    | vjp   | (ct, x_1..x_n, *, out, **params)            | cotangent per input   |
    | vmap  | (axis_size, args, dims, **params)           | (out, out_dim)        |
    | emit  | (*input_names, **params)                    | expression text       |

    A primitive with `multiple_results=True` returns a tuple from impl/shape,
    and its jvp/vjp rules take and return tuples for the outputs.

    `kind` says what the primitive is, so that passes dispatch on declared data
    instead of names (one of `KINDS`): an "elementwise" primitive maps each
    element (or a 0-d operand, to every element) on its own, so it fuses into
    loops; a "call" primitive evaluates the sub-jaxpr in its `call_jaxpr_param`
    parameter and may be inlined by it.  Algebraic properties are declared too:
    `commutative=True` (CSE orders the operands), `value_preserving=True` (every
    output element is an input element: constant folding keeps a uniform value),
    `linear_in=` ("all", "each" or operand positions; see `LINEARITY`, read by
    linear_transpose).  `effectful=True` marks a primitive run for its effect (a
    debug print): dead-code elimination keeps it and CSE never merges two.

    Codegen reads optional rules (`OPTIONAL_RULE_KINDS`) and their options:
    def_scalar_emit, def_loop(when=, relabels=), def_accumulate(identity=,
    reads_twice=), def_lower.  `def_jvp(nondifferentiable)` and
    `def_vjp(nondifferentiable)` declare that no derivative flows through.
    """

    def __init__(self, name: str, *, kind: str = "other", multiple_results: bool = False,
                 call_jaxpr_param: str | None = None, commutative: bool = False,
                 value_preserving: bool = False, linear_in: str | tuple | None = None,
                 effectful: bool = False):
        if kind not in KINDS:
            raise FungradTypeError(
                f"Primitive({name!r}): kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if (kind == "call") != (call_jaxpr_param is not None):
            raise FungradTypeError(
                f"Primitive({name!r}): a kind='call' primitive names its sub-jaxpr parameter "
                "with call_jaxpr_param=..., and only such a primitive")
        self.name = name
        # where it was declared: a pickled primitive is looked up by (module, name)
        self.module = sys._getframe(1).f_globals.get("__name__", "__main__")
        _PRIMITIVES.setdefault((self.module, name), self)
        self.kind = kind
        self.multiple_results = multiple_results
        self.call_jaxpr_param = call_jaxpr_param
        self.rules: dict[str, Callable] = {}
        self.impl: Callable | None = None
        self.shape_rule: Callable | None = None
        # rule options, declared with the rule (def_jvp(..., symbolic_zeros=True))
        self.jvp_symbolic_zeros = False   # the jvp rule takes `Zero` tangents as they are
        self.vjp_wants_active = False     # the vjp rule takes `active=` (which inputs need one)
        self.jvp_nondifferentiable = False  # def_jvp(nondifferentiable): no tangent flows
        self.vjp_nondifferentiable = False  # def_vjp(nondifferentiable): no cotangent flows
        self.loop_when: Callable | None = None  # def_loop(..., when=): which equations fuse
        self.loop_relabels = False        # def_loop(..., relabels=True)
        self.accumulate_identity: Callable | None = None  # def_accumulate(..., identity=)
        self.accumulate_reads_twice = False  # def_accumulate(..., reads_twice=True)
        self.accumulate_wide = False         # def_accumulate(..., wide=True)
        # algebraic properties (simplify, linear_transpose)
        if linear_in is not None and linear_in not in LINEARITY and not isinstance(
                linear_in, tuple):
            raise FungradTypeError(
                f"Primitive({name!r}): linear_in must be one of {LINEARITY} or a tuple of "
                f"operand positions, got {linear_in!r}")
        self.commutative = commutative          # op(a, b) == op(b, a)
        self.value_preserving = value_preserving  # every output element is an input element
        self.linear_in = linear_in
        # effectful=True: the equation does something besides computing its outputs
        # (fungrad.debug.print), so dce keeps it and cse never merges two of them
        self.effectful = effectful

    def __repr__(self) -> str:
        return f"Primitive({self.name})"

    def __reduce__(self):
        # by reference, as functions and classes pickle: the rules are code, and the
        # receiving process gets them by importing the module that declares them
        if _PRIMITIVES.get((self.module, self.name)) is not self:
            raise pickle.PicklingError(
                f"Primitive({self.name!r}) cannot be pickled: module {self.module} declares "
                "another primitive of the same name first.  Give each primitive a unique "
                "name within its module.")
        return _primitive_by_name, (self.module, self.name)

    def bind(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive: record it in the current trace, or compute it."""
        trace = _current_trace.get()
        if trace is not None:
            return trace.process_primitive(self, args, params)
        for a in args:
            if isinstance(a, AbstractTracer):
                raise a.leaked_error()
        # the same typing rules as under tracing (a strict primitive never promotes)
        self.shape_rule(*[ShapedArray.of(a) for a in args], **params)
        s = settings()   # this thread's settings
        if s.debug_nans or s.debug_infs:  # eager op under fungrad.config checks
            with np.errstate(all="ignore"):
                out = self.impl(*args, **params)
            check_outputs(self, args, out, user_location(2), s.debug_nans, s.debug_infs)
            return as_array(out)
        return as_array(self.impl(*args, **params))

    def _def(self, kind: str, fn: Callable) -> Callable:
        self.rules[kind] = fn
        return fn

    def def_impl(self, fn: Callable) -> Callable:
        self.impl = fn
        return self._def("impl", fn)

    def def_shape(self, fn: Callable) -> Callable:
        self.shape_rule = fn
        return self._def("shape", fn)

    def def_jvp(self, fn: Callable, *, symbolic_zeros: bool = False) -> Callable:
        """`fn` may be `nondifferentiable`: the transforms then skip the equation."""
        self.jvp_symbolic_zeros = symbolic_zeros
        self.jvp_nondifferentiable = fn is nondifferentiable
        return self._def("jvp", fn)

    def def_vjp(self, fn: Callable, *, wants_active: bool = False) -> Callable:
        """`fn` may be `nondifferentiable`: the transforms then skip the equation."""
        self.vjp_wants_active = wants_active
        self.vjp_nondifferentiable = fn is nondifferentiable
        return self._def("vjp", fn)

    def def_vmap(self, fn: Callable) -> Callable:
        return self._def("vmap", fn)

    def def_emit(self, fn: Callable) -> Callable:
        return self._def("emit", fn)

    # --- codegen: how the primitive lowers inside a numba kernel ----------------

    def def_scalar_emit(self, fn: Callable) -> Callable:
        """The scalar form of an elementwise primitive inside a loop, when it differs
        from `emit`: `fn(*input_names, out, in_avals, **params)` returns the text, or
        None to use `emit`."""
        return self._def("scalar_emit", fn)

    def def_loop(self, fn: Callable, *, when: Callable | None = None,
                 relabels: bool = False) -> Callable:
        """A member of a fused loop nest that reads its operands at mapped positions:
        `fn(at, idx, *in_avals, out, **params)` returns the output element at the
        index expressions `idx`, where `at(k, index)` is the text of operand k at
        `index`.  `when(*in_avals, **params)` says which equations can be members
        (default: all); `relabels=True` says that an equation keeping every
        dimension other than 1 reads its operand at the same loop position."""
        self.loop_when = when
        self.loop_relabels = relabels
        return self._def("loop", fn)

    def def_accumulate(self, fn: Callable, *, identity: Callable,
                       reads_twice: bool = False, wide: bool = False) -> Callable:
        """A reduction that accumulates inside a fused loop nest: `fn(acc, value,
        dtype)` is the statement folding `value` into `acc`, `identity(dtype)` the
        starting value; `reads_twice=True` names the value first; `wide=True` says
        float16/float32 values accumulate in float64, rounded once at the end (as the
        primitive's impl does)."""
        self.accumulate_identity = identity
        self.accumulate_reads_twice = reads_twice
        self.accumulate_wide = wide
        return self._def("accumulate", fn)

    def def_lower(self, fn: Callable) -> Callable:
        """Statements of the kernel instead of one expression (control flow, BLAS
        calls): `fn(gen, inputs, outputs, **params)` writes the lines with the code
        generator `gen` (backend/codegen.py `_Gen`)."""
        return self._def("lower", fn)

    def has_rule(self, kind: str) -> bool:
        return kind in self.rules

    def rule(self, kind: str) -> Callable:
        """The rule of one kind, or an error that says where to add it."""
        fn = self.rules.get(kind)
        if fn is None:
            raise FungradNotImplementedError(
                f"{kind}: primitive '{self.name}' has no {kind} rule.\n"
                f"  Add one below its definition with {self.name}_p.def_{kind}(...)"
                + (", or mark it non-differentiable with "
                   f"{self.name}_p.def_{kind}(nondifferentiable)" if kind in ("jvp", "vjp")
                   else "") + ".")
        return fn


def _bad_values(values: Sequence, nans: bool, infs: bool) -> str | None:
    """'NaN' or 'inf' if a floating-point value holds one (checked in that order)."""
    for v in values:
        a = np.asarray(v)
        if not np.issubdtype(a.dtype, np.inexact):
            continue
        if nans and np.isnan(a).any():
            return "NaN"
        if infs and np.isinf(a).any():
            return "inf"
    return None


def check_outputs(prim: Primitive, ins: Sequence, outs: Any, source_info, nans: bool,
                  infs: bool, equation: str | None = None) -> None:
    """Raise `FungradFloatingPointError` if `outs` (one primitive application's
    result) holds a NaN (`nans`) or an inf (`infs`), naming the primitive and the
    user's file:line.  Used by eager operations and by the checked interpreter."""
    out_list = outs if prim.multiple_results else (outs,)
    bad = _bad_values(out_list, nans, infs)
    if bad is None:
        return
    had = _bad_values(ins, nans, infs)
    option = "debug_nans" if bad == "NaN" else "debug_infs"
    raise FungradFloatingPointError(
        f"{option}: primitive '{prim.name}' produced {bad} at {format_location(source_info)}\n"
        + (f"  equation: {equation}\n" if equation else "")
        + (f"  (its inputs already contained {had}: look at where they come from)\n"
           if had else "")
        + f"  Turn the check off with fungrad.config.update({option!r}, False).")


# ---------------------------------------------------------------------------
# type checking
# ---------------------------------------------------------------------------

class JaxprTypeError(FungradTypeError):
    pass


def typecheck(jaxpr: Jaxpr) -> None:
    """Check single assignment and re-run every shape rule; raise `JaxprTypeError`
    with the jaxpr printed and the offending equation marked."""
    defined: set[int] = set()

    def fail(msg: str, eqn: Eqn | None = None):
        text = pp_jaxpr(jaxpr, mark=eqn, source=eqn is not None)
        raise JaxprTypeError(f"typecheck: {msg}\n{text}")

    def define(v: Var, eqn: Eqn | None = None):
        if not isinstance(v, Var):
            fail(f"{v!r} bound where a Var was expected", eqn)
        if id(v) in defined:
            fail(f"variable {v!r} is bound twice", eqn)
        defined.add(id(v))

    keep = []  # keep vars alive so ids stay unique
    for v in itertools.chain(jaxpr.constvars, jaxpr.invars):
        define(v)
        keep.append(v)
    for eqn in jaxpr.eqns:
        for x in eqn.inputs:
            if isinstance(x, Var) and id(x) not in defined:
                fail(f"{eqn.prim.name}: input {x!r} is used before it is defined", eqn)
        in_avals = [x.aval for x in eqn.inputs]
        try:
            out = eqn.prim.shape_rule(*in_avals, **eqn.params)
        except Exception as e:  # noqa: BLE001 - reported with context
            fail(f"{eqn.prim.name}: shape rule failed: {e}", eqn)
        outs = out if eqn.prim.multiple_results else (out,)
        if len(outs) != len(eqn.outputs):
            fail(f"{eqn.prim.name}: {len(eqn.outputs)} outputs bound, rule gives {len(outs)}", eqn)
        for o, aval in zip(eqn.outputs, outs):
            if o.aval != aval:
                fail(f"{eqn.prim.name}: output typed {o.aval}, shape rule gives {aval}", eqn)
            define(o, eqn)
            keep.append(o)
    for v in jaxpr.outvars:
        if isinstance(v, Var) and id(v) not in defined:
            fail(f"output {v!r} is not defined")


# ---------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------

def _names():
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from letters
    for n in itertools.count(1):
        for c in letters:
            yield f"{c}{n}"


def var_names(jaxpr: Jaxpr) -> dict[int, str]:
    """Printer names in binding order: a..z, then a1..z1, a2... (never `np`)."""
    gen = _names()
    names: dict[int, str] = {}
    for v in itertools.chain(jaxpr.constvars, jaxpr.invars):
        names.setdefault(id(v), next(gen))
    for eqn in jaxpr.eqns:
        for v in eqn.outputs:
            names.setdefault(id(v), next(gen))
    return names


def _fmt_param(v: Any) -> str:
    if isinstance(v, np.dtype):
        return dtype_name(v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return dtype_name(np.dtype(v))
    if isinstance(v, Jaxpr):
        return " ".join(str(v).split())
    if isinstance(v, ClosedJaxpr):
        return _fmt_param(v.jaxpr)
    if isinstance(v, tuple):
        inner = ",".join(_fmt_param(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if callable(v):
        return getattr(v, "__name__", repr(v))
    return str(v)


def pp_eqn(eqn: Eqn, name: Callable[[Atom], str]) -> str:
    outs = " ".join(f"{name(o)}:{o.aval}" for o in eqn.outputs)
    params = ""
    if eqn.params:
        params = "[" + " ".join(f"{k}={_fmt_param(v)}" for k, v in eqn.params.items()) + "]"
    ins = " ".join(name(x) for x in eqn.inputs)
    return f"{outs} = {eqn.prim.name}{params} {ins}".rstrip()


def pp_jaxpr(jaxpr: Jaxpr, source: bool = False, mark: Eqn | None = None,
             names: dict | None = None) -> str:
    names = names if names is not None else var_names(jaxpr)

    def name(x: Atom) -> str:
        if isinstance(x, Literal):
            return str(x)
        return names.get(id(x), "?")

    def binder(v: Var) -> str:
        return f"{name(v)}:{v.aval}"

    consts = " ".join(binder(v) for v in jaxpr.constvars)
    ins = " ".join(binder(v) for v in jaxpr.invars)
    lines = [f"{{ lambda {consts}{' ' if consts else ''}; {ins}{' ' if ins else ''}. let"]
    for eqn in jaxpr.eqns:
        text = pp_eqn(eqn, name)
        if source and eqn.source_info is not None:
            text = f"{text:<48}  # {format_location(eqn.source_info)}"
        prefix = ">>> " if eqn is mark else "    "
        lines.append(prefix + text)
    lines.append(f"  in ({' '.join(name(v) for v in jaxpr.outvars)}) }}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# structural keys (for caches of rewrites and kernels)
# ---------------------------------------------------------------------------

def _param_key(v: Any) -> Any:
    if type(v) is float:   # by its bits: 0.0 and -0.0 differ, a NaN equals itself
        return (float, v.hex())
    if isinstance(v, ClosedJaxpr):
        return ("closed_jaxpr", jaxpr_key(v.jaxpr), len(v.consts))
    if isinstance(v, Jaxpr):
        return ("jaxpr", jaxpr_key(v))
    if type(v) is tuple:
        return tuple(_param_key(x) for x in v)
    return v


_SIMPLE = (int, str, bool, np.dtype, type(None))   # their own key (floats: _param_key)


_PLAIN = new_cache("core.plain_params", 65536)   # nested tuples of plain values (their own key)


def _params_key(params: dict) -> tuple:
    out = []
    for k, v in params.items():
        tv = type(v)
        if tv in _SIMPLE:
            out.append((k, v))
        elif tv is tuple:
            plain = _PLAIN.get(v)
            if plain is None:
                plain = _param_key(v)
                if plain == v:
                    _PLAIN.put(v, v)
            out.append((k, plain))
        else:
            out.append((k, _param_key(v)))
    return tuple(out)


def _literal_key(x: Literal) -> tuple:
    """A literal by its dtype and bits: 0.0 and -0.0 are different programs (1 / (x * s)
    is +inf or -inf), and a NaN literal is the same program as itself."""
    return (x.aval.dtype, x.val.tobytes())


def jaxpr_key(jaxpr: Jaxpr, with_source: bool = False) -> tuple:
    """A hashable key equal for two jaxprs iff they are the same program up to
    variable names (the text the printer shows, without building the text).
    `with_source=True` also distinguishes the equations' user file:line (for
    caches whose results carry source locations into error messages)."""
    index: dict = {}
    n = 0
    for v in jaxpr.constvars:
        index[v] = n
        n += 1
    for v in jaxpr.invars:
        index[v] = n
        n += 1
    parts: list = [tuple(v.aval for v in jaxpr.constvars), tuple(v.aval for v in jaxpr.invars)]
    append = parts.append
    for eqn in jaxpr.eqns:
        ins = []
        for x in eqn.inputs:
            i = index.get(x)
            ins.append(i if i is not None else _literal_key(x))
        outs = []
        for o in eqn.outputs:
            index[o] = n
            n += 1
            outs.append(o.aval)
        append((eqn.prim, tuple(ins), _params_key(eqn.params) if eqn.params else (),
                tuple(outs), eqn.source_info if with_source else None))
    outs = []
    for x in jaxpr.outvars:
        i = index.get(x)
        outs.append(i if i is not None else _literal_key(x))
    append(tuple(outs))
    return tuple(parts)
