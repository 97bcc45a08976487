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
have no emit rule, so their kernels fall back to the interpreter.
(Loops rather than numba's array methods: transposes, reshapes and
slice assignments of arbitrary layouts take numba seconds to compile.)
"""
from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ..core import Jaxpr, Literal, Var, pp_eqn, var_names
from ..errors import CodegenError
from ..primitives._util import np_dtype, reshape_index
from ..primitives.base import WIDE_ACCUMULATOR
from ..transforms.inline import inline_calls_jaxpr
from . import vecmath

__all__ = ["KernelSource", "generate", "CodegenError", "HELPERS", "CODEGEN_VERSION"]

CODEGEN_VERSION = "3"


class KernelSource:
    """Generated source: `name` (a function defined by `source`), `digest` (a
    content hash), `zero_d_in`/`zero_d_out` (which parameters/results are 0-d)."""

    def __init__(self, name, source, digest, in_avals, out_avals, literal_outs):
        self.name, self.source, self.digest = name, source, digest
        self.in_avals, self.out_avals = in_avals, out_avals
        self.literal_outs = literal_outs  # position -> NumPy scalar (outputs that are literals)


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
    def __init__(self, jaxpr: Jaxpr, prefix: str = "", counter: list | None = None):
        self.jaxpr = jaxpr
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
            return literal_text(x.val, x.aval.dtype)
        return self.names[id(x)]

    def comment(self, eqn, indent: str) -> str:
        text = pp_eqn(eqn, lambda a: str(a) if isinstance(a, Literal) else self.names[id(a)])
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
        g = _Gen(jaxpr, prefix=f"_s{self.uid()}_", counter=self.counter)
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


def generate(jaxpr: Jaxpr) -> KernelSource:
    """The kernel source of `jaxpr` (raises CodegenError for an equation it cannot lower)."""
    jaxpr = inline_calls_jaxpr(jaxpr)
    gen = _Gen(jaxpr)
    body_rets, literal_outs = gen.generate()
    params = [gen.names[id(v)] for v in (*jaxpr.constvars, *jaxpr.invars)]
    body = "\n".join(gen.lines)
    ret = ", ".join(body_rets) + ("," if len(body_rets) == 1 else "")
    text = f"({', '.join(params)}):\n{body}\n    return ({ret})\n"
    digest = hashlib.sha256((CODEGEN_VERSION + text).encode()).hexdigest()[:16]
    name = f"kernel_{digest}"
    source = f"def {name}{text}"
    in_avals = [v.aval for v in (*jaxpr.constvars, *jaxpr.invars)]
    out_avals = [v.aval for v in jaxpr.outvars]
    return KernelSource(name, source, digest, in_avals, out_avals, literal_outs)

