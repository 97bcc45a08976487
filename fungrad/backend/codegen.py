"""Jaxpr -> Python source of one numba kernel.

The kernel takes flat array parameters (constvars, then invars) named like the
printer names them, and returns a tuple with one value per output.  0-d values
are scalars inside the kernel (the caller passes NumPy scalars and wraps 0-d
results).  Every generated statement sits under a comment with its equation:

    def kernel_3f2a9c(a, b):
        # c:f64[3] = sin a
        # d:f64[3] = mul b c
        c = np.empty((3,), np.float64)
        for _i0 in range(3):
            c_ = np.sin(a[_i0])
            d_ = (b[_i0] * c_)
            ...

Fusion: elementwise equations over one iteration space (its dimensions other
than 1; 0-d operands, `iota` and reshapes that only add or drop 1-dims
included) join one loop nest; reductions with an `accumulate` rule (sum, prod,
max, min, and, or) of a value of that nest accumulate inside it.  Primitives
with a `loop` rule (broadcast_in_dim, transpose, slice, rev, reshape,
concatenate, pad, gather, outer products) are loop members that read their
operand at mapped positions, so the operand is an array first.  A value of a
nest is written to an array only when something outside the nest reads it.  A
primitive with a `lower` rule writes its own statements (`dot_general` calls
BLAS through `np.dot`, scatters loop over their updates, control flow below);
any other primitive is one whole-array statement from its `emit` rule.  This
module tests no primitive names: it reads the rules and options each primitive
declares in its own block (core.Primitive).

Control flow lowers (by the `lower` rules in hop/) to real loops and branches
(nothing is unrolled): `scan` is a `for` loop (carries are local variables, each
step reads row `t` of its xs and writes row `t` of preallocated ys;
`reverse=True` counts down), `while` is a `while True:` loop that evaluates the
cond sub-jaxpr and breaks, `cond` is `if/elif/else` on the clamped index.  Sub-jaxprs are generated inline by a nested
generator whose names carry a unique prefix (`_s3_a`).  `while_tape` and
`while_tape_vjp` (reverse mode of while_loop) keep an opaque Python tape: they
have no emit rule, so they run in the interpreter between kernels (backend/segments.py).
(Loops rather than numba's array methods: transposes, reshapes and
slice assignments of arbitrary layouts take numba seconds to compile.)

Kernels shared across shapes: no dimension size is written into the text.  The
generator works on a copy of the jaxpr whose avals (and the shape-valued params
`_DIM_PARAMS`, sub-jaxprs included) hold `Dim`s: ints whose value every decision
of the generator and the rules uses as before, but whose text is a symbol, one
per distinct size >= 2 (`_d0`, `_d1`: equal sizes share a symbol, so the text
shows which sizes are equal), or an expression of symbols that arithmetic on
them builds (`(_d0 * _d1)` for a stride, `(_d0 - 1)` in `rev`).  0 and 1 stay
literal: the generator treats them structurally (size-1 dimensions leave the
iteration space, size 0 allocates nothing).  Rules print sizes as they always
did (`f"range({n})"`, `{shape!r}`) and get symbols for free; a size turned
into a plain int (`int(n)`, `np.prod`; `_util.size_product` keeps the symbols)
prints as a literal, which is still correct, only not shared.  A float literal
equal to +-a product of sizes or its reciprocal (what a mean and its derivative
divide by) is printed as that expression when the expression rounds to exactly
the literal's value (`_Dims.size_literal`; never 2.0 or 0.5, which are mostly
constants).  The symbols of the finished text are renumbered in order of
appearance; each one the code (not only a comment) uses is read from an input's
shape at the top of the kernel (`_d0 = a.shape[1]`) or, when no input has that
size, is an extra int64 parameter after the arrays, whose values
`KernelSource.dims` keeps (such a kernel is not called directly by `jit`).

Correctness does not depend on which programs end up sharing a text: every
symbol is bound, per program, to the value the generator gave it for that
program, so the text with that program's bindings is exactly the kernel the
generator would have written with literal sizes.  Two programs that differ only
in shapes (with the same pattern of equal, 0 and 1 sizes) get the same text,
so one numba dispatcher and one disk-cache artefact serve them all.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import numpy as np

from ..core import ClosedJaxpr, Eqn, Jaxpr, Literal, ShapedArray, Var, pp_eqn, var_names
from ..errors import CodegenError
from ..primitives._util import np_dtype, reshape_index
from ..primitives.base import WIDE_ACCUMULATOR
from ..transforms.inline import inline_calls_jaxpr
from . import vecmath

__all__ = ["KernelSource", "generate", "CodegenError", "HELPERS", "CODEGEN_VERSION", "Dim"]

CODEGEN_VERSION = "4"


class KernelSource:
    """Generated source: `name` (a function defined by `source`), `digest` (a
    content hash of the text, which holds no dimension size), the concrete
    `in_avals`/`out_avals`, and `dims`: the values of the size parameters that
    follow the arrays (the sizes no input's shape gives)."""

    def __init__(self, name, source, digest, in_avals, out_avals, literal_outs, dims=(),
                 helpers=""):
        self.name, self.source, self.digest = name, source, digest
        self.in_avals, self.out_avals = in_avals, out_avals
        self.literal_outs = literal_outs  # position -> NumPy scalar (outputs that are literals)
        self.dims = tuple(dims)
        self.helpers = helpers  # source of the helper functions its `lower` rules asked for


# ---------------------------------------------------------------------------
# symbolic dimension sizes
# ---------------------------------------------------------------------------

class Dim(int):
    """A dimension size inside the generator: its int value for every decision,
    `text` (a symbol such as `_d0`, or an expression of symbols) when printed.
    + - * // % with ints or Dims give Dims whose text is the expression."""

    def __new__(cls, value: int, text: str):
        self = int.__new__(cls, value)
        self.text = text
        return self

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.text if not spec else format(int(self), spec)

    def __reduce__(self):   # copies and pickles are plain ints (the text is local)
        return int, (int(self),)

    def __add__(self, other):
        if type(other) is int and other == 0:
            return self
        return _dim_op(self, other, "+", int.__add__)

    def __radd__(self, other):
        if type(other) is int and other == 0:
            return self
        return _dim_op(other, self, "+", int.__add__)

    def __sub__(self, other):
        if type(other) is int and other == 0:
            return self
        return _dim_op(self, other, "-", int.__sub__)

    def __rsub__(self, other):
        return _dim_op(other, self, "-", int.__sub__)

    def __mul__(self, other):
        if type(other) is int and other in (0, 1):
            return self if other else 0
        return _dim_op(self, other, "*", int.__mul__)

    def __rmul__(self, other):
        if type(other) is int and other in (0, 1):
            return self if other else 0
        return _dim_op(other, self, "*", int.__mul__)

    def __floordiv__(self, other):
        if type(other) is int and other == 1:
            return self
        return _dim_op(self, other, "//", int.__floordiv__)

    def __rfloordiv__(self, other):
        return _dim_op(other, self, "//", int.__floordiv__)

    def __mod__(self, other):
        return _dim_op(self, other, "%", int.__mod__)

    def __rmod__(self, other):
        return _dim_op(other, self, "%", int.__mod__)

    def __neg__(self):
        return Dim(-int(self), f"(-{self.text})")

    def __pos__(self):
        return self


def _dim_op(a, b, op: str, fn):
    """a op b as a Dim (NotImplemented for operands other than ints: NumPy scalars
    then compute a plain value, printed as a literal)."""
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or \
            isinstance(b, bool):
        return NotImplemented
    return Dim(fn(int(a), int(b)), f"({a!r} {op} {b!r})")


# params whose ints are dimension sizes (printed by rules and in comments)
_DIM_PARAMS = frozenset({"shape", "new_sizes", "length", "limit_indices", "fft_lengths"})


class _Dims:
    """The symbols of one kernel: one Dim per distinct size >= 2, and the copy of
    the jaxpr (sub-jaxprs included) whose avals and shape params hold them (an int
    of a shape param that is no aval's size, such as a fori_loop's trip count or
    the limit of x[1:-1], stays literal)."""

    def __init__(self):
        self.by_value: dict[int, Dim] = {}
        self.sizes: set = set()    # every size of an aval of the program
        self.avals: dict = {}      # (shape, dtype, weak_type) -> its symbolic aval

    def symbolic(self, jaxpr: Jaxpr) -> Jaxpr:
        """The copy of `jaxpr` the generator works on."""
        self.collect(jaxpr)
        return self.jaxpr(jaxpr)

    def collect(self, jaxpr: Jaxpr) -> None:
        sizes = self.sizes
        for v in (*jaxpr.constvars, *jaxpr.invars):
            sizes.update(v.aval.shape)
        for e in jaxpr.eqns:
            for o in e.outputs:
                sizes.update(o.aval.shape)
            for v in e.params.values():
                for sub in (v if type(v) is tuple else (v,)):
                    if isinstance(sub, ClosedJaxpr):
                        self.collect(sub.jaxpr)
                    elif isinstance(sub, Jaxpr):
                        self.collect(sub)

    def dim(self, n):
        if type(n) is not int:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                return n
            n = int(n)
        if n < 2:
            return n
        d = self.by_value.get(n)
        if d is None:
            d = self.by_value[n] = Dim(n, f"_d{len(self.by_value)}")
        return d

    def aval(self, aval: ShapedArray) -> ShapedArray:
        key = (aval.shape, aval.dtype, aval.weak_type)
        out = self.avals.get(key)
        if out is None:
            out = aval
            if any(n >= 2 for n in aval.shape):
                out = ShapedArray(aval.shape, aval.dtype, aval.weak_type)
                out.shape = tuple(self.dim(n) for n in aval.shape)   # (hash: the int shape's)
            self.avals[key] = out
        return out

    def param(self, key: str, v):
        if isinstance(v, ClosedJaxpr):
            return ClosedJaxpr(self.jaxpr(v.jaxpr), v.consts)
        if isinstance(v, Jaxpr):
            return self.jaxpr(v)
        if type(v) is tuple:
            return tuple(self.param(key, x) for x in v)
        if key in _DIM_PARAMS and type(v) is int and v in self.sizes:
            return self.dim(v)
        return v

    def jaxpr(self, jaxpr: Jaxpr) -> Jaxpr:
        env: dict = {}

        def var(x):
            if type(x) is not Var:
                return x
            v = env.get(x)
            if v is None:
                v = env[x] = Var(self.aval(x.aval))
            return v
        constvars = [var(v) for v in jaxpr.constvars]
        invars = [var(v) for v in jaxpr.invars]
        eqns = []
        for e in jaxpr.eqns:
            ins = [var(x) for x in e.inputs]
            outs = [var(o) for o in e.outputs]
            params = {k: self.param(k, v) for k, v in e.params.items()} if e.params else e.params
            eqns.append(Eqn(e.prim, ins, outs, params, e.source_info))
        return Jaxpr(constvars, invars, eqns, [var(v) for v in jaxpr.outvars])

    def size_literal(self, val: float, dtype) -> str | None:
        """The text of a float literal equal to +-(a product of the kernel's sizes) or
        +-its reciprocal (`(1.0 / (_d0 * _d1))`: what a mean and its derivative
        divide by), when that expression computed in float64 and rounded to `dtype`
        is exactly `val`; else None.  Products equal to 2 are left out: 2.0 and 0.5
        are far more often constants of the program (the derivative of a square)
        than sizes, and writing them as sizes would split the texts of the same
        program at other shapes."""
        if not self.by_value or not math.isfinite(val) or val == 0:
            return None
        products = self.products()
        if not products:
            return None
        sign = "-" if val < 0 else ""
        mag = abs(val)
        if not 1e-15 < mag < 1e15:        # no product of sizes (and 1 / mag may overflow)
            return None
        k = round(mag)
        if k > 2 and k == mag and k in products:
            text = f"float({products[k]})"
            exact = float(k)
        else:
            k = round(1.0 / mag)
            if k <= 2 or k not in products:
                return None
            text = f"(1.0 / {products[k]})"
            exact = 1.0 / k
        if sign:
            text, exact = f"(-{text})", -exact
        dtype = np.dtype(dtype)
        if float(dtype.type(exact)) != float(dtype.type(val)):
            return None
        return text if dtype == np.float64 else f"{np_dtype(dtype)}({text})"

    def products(self) -> dict[int, str]:
        """size -> text for every size and product of two or three sizes (what a mean
        divides by), the expression of fewest factors first."""
        cached = getattr(self, "_products", None)
        if cached is not None and cached[0] == len(self.by_value):
            return cached[1]
        dims = sorted(self.by_value.values(), key=lambda d: d.text)
        out: dict[int, str] = {}
        for d in dims:
            out.setdefault(int(d), d.text)
        if len(dims) > 24:     # products of many sizes: too many (literals stay literal)
            dims = []
        for i, a in enumerate(dims):       # fewer factors first
            for b in dims[i:]:
                out.setdefault(int(a) * int(b), f"({a.text} * {b.text})")
        for i, a in enumerate(dims):
            for j, b in enumerate(dims[i:], i):
                for c in dims[j:]:
                    out.setdefault(int(a) * int(b) * int(c), f"({a.text} * {b.text} * {c.text})")
        self._products = (len(self.by_value), out)
        return out


_SYMBOL = re.compile(r"(?<![\w])_d(\d+)(?![\w])")


# Helper functions the kernels may call; they live in every kernel module.
HELPERS = '''
@numba.njit(cache=CACHE, error_model="numpy")
def _idiv(x, y):
    # signed integer division truncating toward zero (lax.div), as NumPy: x / 0 is 0,
    # MIN / -1 wraps to MIN (the caller casts the result to the operands' dtype)
    if y == 0:
        return x - x
    if y == -1:
        return -x
    q = x // y
    if q < 0 and q * y != x:
        q += 1
    return q


@numba.njit(cache=CACHE, error_model="numpy")
def _irem(x, y):
    # signed integer remainder with the sign of the dividend (lax.rem, np.fmod):
    # x rem 0 and x rem -1 are 0 (numba's fmod of integers has Python's sign)
    if y == 0 or y == -1:
        return x - x
    r = x % y
    if r != 0 and (r < 0) != (x < 0):
        r -= y
    return r


@numba.njit(cache=CACHE, error_model="numpy")
def _powi(x, n, one):
    # integer x ** n by binary exponentiation, exact and wrapping like NumPy's once
    # the caller casts (numba's integer ** goes through floats for large n)
    if n < 0:
        raise ValueError("Integers to negative integer powers are not allowed.")
    acc = one
    first = True
    while n > 0:
        if n & 1:
            if first:
                acc = one * x
                first = False
            else:
                acc = acc * x
        n >>= 1
        if n > 0:
            x = x * x
    return acc


@numba.njit(cache=CACHE, error_model="numpy")
def _wrap(i, n):
    # a traced index: negative wraps like NumPy, out of bounds raises
    if i < 0:
        i += n
    if i < 0 or i >= n:
        raise IndexError("index out of bounds")
    return i


@numba.njit(cache=CACHE, error_model="numpy")
def _erfinv(y):
    # Giles' single-precision start, then Newton steps on erf (float64 accurate)
    if y <= -1.0:
        return -np.inf if y == -1.0 else np.nan
    if y >= 1.0:
        return np.inf if y == 1.0 else np.nan
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        p = 3.43273939e-07 + p * w
        p = -3.5233877e-06 + p * w
        p = -4.39150654e-06 + p * w
        p = 0.00021858087 + p * w
        p = -0.00125372503 + p * w
        p = -0.00417768164 + p * w
        p = 0.246640727 + p * w
        p = 1.50140941 + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        p = 0.000100950558 + p * w
        p = 0.00134934322 + p * w
        p = -0.00367342844 + p * w
        p = 0.00573950773 + p * w
        p = -0.0076224613 + p * w
        p = 0.00943887047 + p * w
        p = 1.00167406 + p * w
        p = 2.83297682 + p * w
    x = p * y
    for _ in range(3):
        err = math.erf(x) - y
        x -= err / (1.1283791670955126 * math.exp(-x * x))
    return x
'''
HELPERS += vecmath.HELPERS   # inline vectorisable exp, log, tanh, ... (backend/vecmath.py)


# ---------------------------------------------------------------------------
# primitive families
# ---------------------------------------------------------------------------

def literal_text(val: Any, dtype) -> str:
    """A typed scalar constant numba reads back exactly."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "True" if bool(val) else "False"
    if np.issubdtype(dtype, np.floating):
        v = float(val)
        if math.isnan(v):
            text = "np.nan"
        elif math.isinf(v):
            text = "np.inf" if v > 0 else "(-np.inf)"
        else:
            text = repr(v)
        return text if dtype == np.float64 else f"{np_dtype(dtype)}({text})"
    if np.issubdtype(dtype, np.complexfloating):
        return f"{np_dtype(dtype)}({complex(val)!r})"
    return f"{np_dtype(dtype)}({int(val)})"


def _scalar_emit(eqn, ins: list[str]) -> str:
    """Scalar expression for an elementwise equation (inside a loop or on 0-d values):
    the primitive's `scalar_emit` rule where it gives one, else its `emit` rule."""
    prim = eqn.prim
    out = eqn.outputs[0].aval
    if prim.has_rule("scalar_emit"):
        text = prim.rule("scalar_emit")(*ins, out=out, in_avals=[x.aval for x in eqn.inputs],
                                        **eqn.params)
    else:
        text = None
    if text is None:
        text = prim.rule("emit")(*ins, **eqn.params)
    if out.dtype.kind in "iuf" and out.dtype not in (np.float64, np.int64):
        # numba computes small integers in int64 and mixes float64 constants into
        # float32: cast each value to its dtype, so integers wrap as NumPy's do and
        # float32 values are rounded at every step as the interpreter rounds them
        text = f"{np_dtype(out.dtype)}({text})"
    return text


def _accumulator_dtype(eqn) -> np.dtype:
    """The dtype a reduction accumulates in: float64 for float16/float32 values of a
    primitive declared with def_accumulate(..., wide=True), else its own dtype."""
    dtype = eqn.outputs[0].aval.dtype
    if eqn.prim.accumulate_wide:
        return WIDE_ACCUMULATOR.get(dtype, dtype)
    return dtype


def _is_fusable(eqn) -> bool:
    """Computable per element of its output inside a loop nest: an elementwise
    primitive with an emit rule, or one with a `loop` rule (index-mapping)."""
    prim = eqn.prim
    if prim.multiple_results or len(eqn.outputs) != 1:
        return False
    if prim.kind == "elementwise":
        return prim.has_rule("emit") and all(
            x.aval.shape in ((), eqn.outputs[0].aval.shape) for x in eqn.inputs)
    if not prim.has_rule("loop"):
        return False
    return prim.loop_when is None or prim.loop_when(*[x.aval for x in eqn.inputs],
                                                    **eqn.params)


def _reads_whole_operands(eqn) -> bool:
    """Index-mapping members read their operands at other positions: the operands
    must be arrays before the loop nest starts."""
    if _is_relabel(eqn):
        return False
    return eqn.prim.has_rule("loop")


def _accumulates(eqn) -> bool:
    """A reduction of a whole array that accumulates inside a loop nest."""
    return eqn.prim.has_rule("accumulate") and eqn.inputs[0].aval.shape != () and isinstance(
        eqn.inputs[0], Var)


def _group_key(shape: tuple) -> tuple:
    """The iteration space of a shape: its dimensions other than 1 (so (n,), (n, 1)
    and (1, n) share one loop nest); shapes of size-1 dims only keep their own."""
    squeezed = tuple(n for n in shape if n != 1)
    return squeezed if squeezed else tuple(shape)


def _loop_index(shape: tuple, key: tuple) -> list[str]:
    """Index expressions of an array of `shape` inside the loop nest over `key`."""
    if tuple(shape) == key:
        return [f"_i{k}" for k in range(len(key))]
    out, k = [], 0
    for n in shape:
        if n == 1:
            out.append("0")
        else:
            out.append(f"_i{k}")
            k += 1
    return out


def _is_relabel(eqn) -> bool:
    """An equation of a primitive declared with def_loop(..., relabels=True) (reshape,
    squeeze, broadcast_in_dim) that only inserts or removes size-1 dimensions."""
    if not eqn.prim.loop_relabels:
        return False
    x = eqn.inputs[0]
    out = eqn.outputs[0].aval
    if x.aval.shape == () or out.shape == () or x.aval.size != out.size:
        return False
    return _group_key(x.aval.shape) == _group_key(out.shape)


# numba has no float16 arithmetic: such programs run in the interpreter
_UNSUPPORTED_DTYPES = (np.dtype(np.float16),)


def _refuse_unsupported_dtypes(eqn) -> None:
    for x in (*eqn.inputs, *eqn.outputs):
        if x.aval.dtype in _UNSUPPORTED_DTYPES:
            raise CodegenError(
                f"{x.aval.dtype.name} values ({x.aval}) are not supported by numba kernels; "
                f"pass float32 arrays instead for compiled speed", eqn.prim.name)


# ---------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------

class _Group:
    """An open loop nest over `shape`: its member equations and reductions."""

    def __init__(self, shape: tuple):
        self.shape = shape
        self.eqns: list = []          # member equations, in order
        self.members: set = set()     # Vars computed per element
        self.reductions: list = []    # reduction equations accumulated here


class _Gen:
    def __init__(self, jaxpr: Jaxpr, prefix: str = "", counter: list | None = None,
                 dims: _Dims | None = None, helpers: dict | None = None):
        self.jaxpr = jaxpr
        self.dims = dims if dims is not None else _Dims()
        # helper functions (source text) that `lower` rules asked for, shared with sub-jaxprs
        self.helpers = {} if helpers is None else helpers
        # sub-jaxprs (loop bodies, branches) are generated inline with prefixed names
        self.names = {k: prefix + v for k, v in var_names(jaxpr).items()}
        self.counter = [0] if counter is None else counter
        self.lines: list[str] = []
        self.groups: dict[tuple, _Group] = {}
        self.home: dict[Var, _Group] = {}     # open-group member or pending reduction -> group
        self.fresh: set = set()               # Vars held in arrays allocated by the kernel
        self.uses: dict[Var, list] = {}
        for eqn in jaxpr.eqns:
            for x in eqn.inputs:
                if isinstance(x, Var):
                    self.uses.setdefault(x, []).append(eqn)
        self.outset = {v for v in jaxpr.outvars if isinstance(v, Var)}

    def name(self, x) -> str:
        if isinstance(x, Literal):
            return self.literal(x) or literal_text(x.val, x.aval.dtype)
        return self.names[id(x)]

    def literal(self, x: Literal) -> str | None:
        """A float literal's text as a product of sizes (see _Dims.size_literal)."""
        if x.aval.dtype.kind != "f" or x.aval.dtype == np.float16:
            return None
        return self.dims.size_literal(float(x.val), x.aval.dtype)

    def comment(self, eqn, indent: str) -> str:
        def name(a):
            if isinstance(a, Literal):
                sym = self.literal(a)
                return str(a) if sym is None else f"{sym}:{a.aval}"
            return self.names[id(a)]
        text = pp_eqn(eqn, name)
        text = " ".join(text.split())
        if len(text) > 300:
            text = text[:297] + "..."
        return f"{indent}# {text}"

    # --- flushing -----------------------------------------------------------------

    def flush_for(self, eqn, keep: _Group | None = None) -> None:
        """Close the open groups whose values `eqn` reads (except `keep`)."""
        for x in eqn.inputs:
            g = self.home.get(x) if isinstance(x, Var) else None
            if g is not None and (g is not keep or x not in g.members):
                self.flush(g)

    def flush(self, g: _Group) -> None:
        """Close the loop nest of `g` (once: an equation may read two of its values,
        and a value's home stays its closed group, whose results are arrays)."""
        if self.groups.get(g.shape) is not g:
            return
        del self.groups[g.shape]
        member_set = set(g.eqns) | set(g.reductions)
        lines = self.lines
        materialize = []
        for eqn in g.eqns:
            v = eqn.outputs[0]
            if v in self.outset or any(u not in member_set for u in self.uses.get(v, ())):
                materialize.append(v)
        for v in materialize:
            lines.append(f"    {self.name(v)} = np.empty({v.aval.shape!r}, "
                         f"{np_dtype(v.aval.dtype)})")
            self.fresh.add(v)
        for r in g.reductions:
            o = r.outputs[0]
            acc_dtype = _accumulator_dtype(r)
            init = literal_text(r.prim.accumulate_identity(o.aval.dtype), acc_dtype)
            if o.aval.shape == ():
                lines.append(f"    {self.accumulator(r)} = {init}")
            else:
                lines.append(f"    {self.accumulator(r)} = np.full({o.aval.shape!r}, {init}, "
                             f"{np_dtype(acc_dtype)})")
                self.fresh.add(o)
        indent = "    "
        for k, n in enumerate(g.shape):
            lines.append(f"{indent}for _i{k} in range({n}):")
            indent += "    "
        order = sorted(member_set, key=self.position)
        for eqn in order:
            lines.append(self.comment(eqn, indent))
            if eqn.prim.has_rule("accumulate"):
                (x,) = eqn.inputs
                o = eqn.outputs[0]
                val = self.read_in_group(x, g)
                target = self.accumulator(eqn)
                if o.aval.shape != ():
                    x_idx = _loop_index(x.aval.shape, g.shape)
                    kept = [x_idx[d] for d in range(x.aval.ndim) if d not in eqn.params["axes"]]
                    target += f"[{', '.join(kept)}]"
                if eqn.prim.accumulate_reads_twice:
                    lines.append(f"{indent}{self.name(o)}_v = {val}")
                    val = f"{self.name(o)}_v"
                lines.append(indent + eqn.prim.rule("accumulate")(target, val,
                                                                  _accumulator_dtype(eqn)))
                continue
            v = eqn.outputs[0]
            lines.append(f"{indent}{self.name(v)}_ = {self.member_expr(eqn, g)}")
            if v in materialize:
                v_idx = ", ".join(_loop_index(v.aval.shape, g.shape))
                lines.append(f"{indent}{self.name(v)}[{v_idx}] = {self.name(v)}_")
        for r in g.reductions:   # wide accumulators round once, after the loop nest
            o = r.outputs[0]
            if _accumulator_dtype(r) != o.aval.dtype:
                cast = (f"{np_dtype(o.aval.dtype)}({self.accumulator(r)})" if o.aval.shape == ()
                        else f"{self.accumulator(r)}.astype({np_dtype(o.aval.dtype)})")
                lines.append(f"    {self.name(o)} = {cast}")
        for eqn in g.eqns:
            self.home.pop(eqn.outputs[0], None)
        for r in g.reductions:
            self.home.pop(r.outputs[0], None)

    def accumulator(self, r) -> str:
        """The variable a reduction accumulates in (its own, unless it is widened)."""
        o = r.outputs[0]
        return self.name(o) + ("_w" if _accumulator_dtype(r) != o.aval.dtype else "")

    def position(self, eqn) -> int:
        return self._pos[id(eqn)]

    # --- reading values -------------------------------------------------------------

    def read_in_group(self, x, g: _Group) -> str:
        if isinstance(x, Literal):
            return self.name(x)
        if x in g.members:
            return f"{self.name(x)}_"
        if x.aval.shape == ():
            return self.name(x)
        assert _group_key(x.aval.shape) == g.shape, (x.aval, g.shape)
        return f"{self.name(x)}[{', '.join(_loop_index(x.aval.shape, g.shape))}]"

    def member_expr(self, eqn, g: _Group) -> str:
        if _is_relabel(eqn):
            return self.read_in_group(eqn.inputs[0], g)
        if eqn.prim.kind == "elementwise":
            return _scalar_emit(eqn, [self.read_in_group(x, g) for x in eqn.inputs])
        out = eqn.outputs[0].aval
        return self.loop_expr(eqn, _loop_index(out.shape, g.shape))

    def loop_expr(self, eqn, idx: list[str]) -> str:
        """The element `idx` of an index-mapping equation, from its `loop` rule
        (its operands are materialized arrays or scalars)."""
        def at(k, index):
            return self.at(eqn.inputs[k], index)
        return eqn.prim.rule("loop")(at, idx, *[x.aval for x in eqn.inputs],
                                     out=eqn.outputs[0].aval, **eqn.params)

    def at(self, x, index: list[str]) -> str:
        """Element `index` of a materialized operand (0-d operands are scalars)."""
        if isinstance(x, Literal) or x.aval.shape == ():
            return self.name(x)
        return f"{self.name(x)}[{', '.join(index)}]"

    # --- equations ----------------------------------------------------------------------

    def add(self, eqn) -> None:
        _refuse_unsupported_dtypes(eqn)
        out = eqn.outputs[0].aval if eqn.outputs else None
        if _is_fusable(eqn) and out.shape != ():
            key = _group_key(out.shape)
            g = self.groups.get(key)
            # the operands must be materialized if it reads them whole; otherwise only
            # the groups it reads a non-member of (a reduction's result) close, and that
            # may be the group of its own shape: join the group open after flushing
            self.flush_for(eqn, keep=None if _reads_whole_operands(eqn) else g)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = _Group(key)
            g.eqns.append(eqn)
            g.members.add(eqn.outputs[0])
            self.home[eqn.outputs[0]] = g
            return
        if _accumulates(eqn):
            x = eqn.inputs[0]
            g = self.home.get(x)
            if g is None or x not in g.members:
                if g is not None:
                    self.flush(g)
                key = _group_key(x.aval.shape)
                g = self.groups.get(key)
                if g is None:
                    g = self.groups[key] = _Group(key)
            g.reductions.append(eqn)
            self.home[eqn.outputs[0]] = g
            return
        self.flush_for(eqn)
        self.lines.append(self.comment(eqn, "    "))
        if _is_fusable(eqn):  # 0-d: a scalar statement
            if eqn.prim.kind == "elementwise":
                text = _scalar_emit(eqn, [self.name(x) for x in eqn.inputs])
            else:
                text = self.loop_expr(eqn, [])
            self.lines.append(f"    {self.name(eqn.outputs[0])} = {text}")
            return
        if eqn.prim.has_rule("lower"):
            eqn.prim.rule("lower")(self, eqn.inputs, eqn.outputs, **eqn.params)
            return
        text, fresh = self.whole_array(eqn)
        outs = ", ".join(self.name(o) for o in eqn.outputs)
        if eqn.prim.multiple_results:
            outs += ","
        if text != outs:
            self.lines.append(f"    {outs} = {text}")
        if fresh:
            self.fresh.update(eqn.outputs)

    def arr(self, x) -> str:
        """An operand as an array (0-d values are scalars inside the kernel)."""
        if isinstance(x, Literal) or x.aval.shape == ():
            return f"np.full((), {self.name(x)})"
        return self.name(x)

    def whole_array(self, eqn) -> tuple[str, bool]:
        """(expression, whether it allocates a new array) for a non-fused equation."""
        name = eqn.prim.name
        if eqn.prim.has_rule("emit"):
            try:
                text = eqn.prim.rule("emit")(*[self.arr(x) for x in eqn.inputs], **eqn.params)
            except Exception as e:  # noqa: BLE001 - reported as a codegen error
                raise CodegenError(f"emit rule of '{name}' failed: {e}", name) from e
            return text, False
        raise CodegenError(f"primitive '{name}' has no emit rule", name)

    # --- for `lower` rules (primitive blocks that write statements) ------------------

    def assign(self, outputs, text: str) -> None:
        """outputs = text, a new array the kernel allocated."""
        outs = ", ".join(self.name(o) for o in outputs)
        if text != outs:
            self.lines.append(f"    {outs} = {text}")
        self.fresh.update(outputs)

    def helper(self, source: str) -> None:
        """Put the numba helper functions of `source` (module-level text written by a
        primitive's block, `@numba.njit(cache=CACHE, error_model="numpy")` decorated) in
        this kernel's module, once."""
        self.helpers.setdefault(source, None)

    def loops(self, shape, body: str) -> None:
        """`body` inside a loop nest over `shape` (indices _i0, _i1, ...)."""
        indent = "    "
        for q, n in enumerate(shape):
            self.lines.append(f"{indent}for _i{q} in range({n}):")
            indent += "    "
        self.lines.append(indent + body)

    def copy_loop(self, dst: str, shape3, x, perm, dt) -> None:
        """dst = x transposed by `perm`, reshaped to `shape3`, as a new C array."""
        self.lines.append(f"    {dst} = np.empty({tuple(shape3)!r}, {dt})")
        permuted = [x.aval.shape[d] for d in perm]
        idx = [f"_i{q}" for q in range(3)]
        p_idx = reshape_index(permuted, shape3, idx)
        x_idx = ["0"] * x.aval.ndim
        for q, d in enumerate(perm):
            x_idx[d] = p_idx[q]
        self.loops(shape3, f"{dst}[{', '.join(idx)}] = {self.name(x)}[{', '.join(x_idx)}]")

    # --- control flow: real loops and branches, sub-jaxprs generated inline -----------

    def uid(self) -> int:
        self.counter[0] += 1
        return self.counter[0]

    def sub(self, closed, in_exprs: list[str]) -> tuple[list[str], list[str], list[bool]]:
        """Inline code of a sub-jaxpr (a loop body, a branch) reading `in_exprs`:
        (lines at the kernel's base indent, output expressions, whether each output is
        an array the sub-code allocated)."""
        jaxpr = inline_calls_jaxpr(closed.jaxpr)
        if jaxpr.constvars or getattr(closed, "consts", ()):
            raise CodegenError("a control-flow sub-jaxpr with constants is not compiled",
                               "control flow")
        g = _Gen(jaxpr, prefix=f"_s{self.uid()}_", counter=self.counter, dims=self.dims,
                 helpers=self.helpers)
        for v, expr in zip(jaxpr.invars, in_exprs, strict=True):
            g.lines.append(f"    {g.name(v)} = {expr}")
        g.run()
        outs = [g.name(v) for v in jaxpr.outvars]
        fresh = [isinstance(v, Var) and v in g.fresh for v in jaxpr.outvars]
        return g.lines, outs, fresh

    def emit_sub(self, lines: list[str], depth: int) -> None:
        pad = "    " * depth
        self.lines.extend(pad + line for line in lines)

    @staticmethod
    def own(expr: str, aval, fresh: bool) -> str:
        """An array value the loop may keep: a C-contiguous array (one numba type)."""
        if aval.shape == () or fresh:
            return expr
        return f"{expr}.copy()"

    def store_rows(self, dst: str, row: str, y: str, aval, indent: str) -> None:
        """dst[row] = y (element by element: slice assignment compiles slowly)."""
        if aval.shape == ():
            self.lines.append(f"{indent}{dst}[{row}] = {y}")
            return
        u = self.uid()
        idx = [f"_j{u}_{q}" for q in range(aval.ndim)]
        for q, n in enumerate(aval.shape):
            self.lines.append(f"{indent}for {idx[q]} in range({n}):")
            indent += "    "
        self.lines.append(f"{indent}{dst}[{row}, {', '.join(idx)}] = {y}[{', '.join(idx)}]")

    def run(self) -> None:
        self._pos = {id(e): i for i, e in enumerate(self.jaxpr.eqns)}
        for eqn in self.jaxpr.eqns:
            self.add(eqn)
        for g in list(self.groups.values()):
            self.flush(g)

    def generate(self) -> tuple[list[str], dict]:
        self.run()
        rets, literal_outs, seen = [], {}, set()
        for i, v in enumerate(self.jaxpr.outvars):
            if isinstance(v, Literal):
                literal_outs[i] = v.val
                rets.append("0")
            elif v.aval.shape == ():
                rets.append(self.name(v))
            elif v in self.fresh and v not in seen:
                rets.append(self.name(v))
                seen.add(v)
            else:
                rets.append(f"{self.name(v)}.copy()")
        return rets, literal_outs


def _bind_symbols(body: str, dims: _Dims, inputs: list) -> tuple[str, list, list, list]:
    """Renumber the symbols of `body` in order of appearance; bind each one its code
    uses: (body, lines reading sizes from the inputs' shapes, names of the size
    parameters, their values).  `inputs`: (parameter name, concrete shape) pairs."""
    value = {d.text: int(d) for d in dims.by_value.values()}
    order: dict[str, str] = {}
    used: dict[str, None] = {}
    code = [True]

    def rename(m):
        old = m.group(0)
        new = order.get(old)
        if new is None:
            if old not in value:      # not a symbol (a name in a comment): as it is
                return old
            new = order[old] = f"_d{len(order)}"
        if code[0]:
            used.setdefault(new)
        return new
    lines = body.split("\n")
    for j, line in enumerate(lines):
        if "_d" in line:
            code[0] = not line.lstrip().startswith("#")
            lines[j] = _SYMBOL.sub(rename, line)
    body = "\n".join(lines)
    new_value = {order[old]: value[old] for old in order}
    reads, params, values = [], [], []
    for sym in sorted(used, key=lambda t: int(t[2:])):
        n = new_value[sym]
        where = next(((name, k) for name, shape in inputs for k, m in enumerate(shape)
                      if m == n), None)
        if where is not None:
            reads.append(f"    {sym} = {where[0]}.shape[{where[1]}]")
        else:
            params.append(sym)
            values.append(n)
    return body, reads, params, values


def generate(jaxpr: Jaxpr) -> KernelSource:
    """The kernel source of `jaxpr` (raises CodegenError for an equation it cannot lower)."""
    jaxpr = inline_calls_jaxpr(jaxpr)
    dims = _Dims()
    sym = dims.symbolic(jaxpr)
    gen = _Gen(sym, dims=dims)
    body_rets, literal_outs = gen.generate()
    in_vars = (*sym.constvars, *sym.invars)
    params = [gen.names[id(v)] for v in in_vars]
    body = "\n".join(gen.lines)
    ret = ", ".join(body_rets) + ("," if len(body_rets) == 1 else "")
    concrete = (*jaxpr.constvars, *jaxpr.invars)
    inputs = [(name, v.aval.shape) for name, v in zip(params, concrete, strict=True)]
    body, reads, size_params, size_values = _bind_symbols(body, dims, inputs)
    if reads:
        body = "\n".join(reads) + "\n" + body
    text = f"({', '.join(params + size_params)}):\n{body}\n    return ({ret})\n"
    helpers = "\n\n".join(gen.helpers)
    digest = hashlib.sha256((CODEGEN_VERSION + helpers + text).encode()).hexdigest()[:16]
    name = f"kernel_{digest}"
    source = f"def {name}{text}"
    in_avals = [v.aval for v in concrete]
    out_avals = [v.aval for v in jaxpr.outvars]
    return KernelSource(name, source, digest, in_avals, out_avals, literal_outs, size_values,
                        helpers)

