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
included) join one loop nest; reductions (sum, prod, max, min, and, or) of a
value of that nest accumulate inside it.  Index-mapping operations
(broadcast_in_dim, transpose, slice, rev, reshape, concatenate, pad, outer
products) are loop members that read their operand at mapped positions, so the
operand is an array first.  A value of a nest is written to an array only when
something outside the nest reads it.  `dot_general` calls BLAS through
`np.dot`; any other primitive is one whole-array statement from its `emit`
rule.

Control flow lowers to real loops and branches (nothing is unrolled): `scan` is a
`for` loop (carries are local variables, each step reads row `t` of its xs and
writes row `t` of preallocated ys; `reverse=True` counts down), `while` is a
`while True:` loop that evaluates the cond sub-jaxpr and breaks, `cond` is
`if/elif/else` on the clamped index.  Sub-jaxprs are generated inline by a nested
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
from ..transforms.inline import inline_calls_jaxpr

__all__ = ["KernelSource", "generate", "CodegenError", "HELPERS", "CODEGEN_VERSION"]

CODEGEN_VERSION = "2"


class CodegenError(Exception):
    """The jaxpr has an equation this code generator cannot lower."""

    def __init__(self, msg: str, primitive: str):
        super().__init__(msg)
        self.primitive = primitive


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
    # integer division truncating toward zero (lax.div)
    q = x // y
    if q < 0 and q * y != x:
        q += 1
    return q


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


# ---------------------------------------------------------------------------
# primitive families
# ---------------------------------------------------------------------------

_NP_DTYPE = {np.dtype(np.bool_): "np.bool_"}


def np_dtype(dtype) -> str:
    dtype = np.dtype(dtype)
    return _NP_DTYPE.get(dtype, f"np.{dtype.name}")


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
    """Scalar expression for an elementwise equation (inside a loop or on 0-d values)."""
    name = eqn.prim.name
    out_dtype = eqn.outputs[0].aval.dtype
    in_dtype = eqn.inputs[0].aval.dtype if eqn.inputs else out_dtype
    if name == "select":
        p, x, y = ins
        return f"({x} if {p} else {y})"
    if name == "div" and np.issubdtype(out_dtype, np.integer):
        return f"_idiv({ins[0]}, {ins[1]})"
    if name == "not" and out_dtype == np.bool_:
        return f"(not {ins[0]})"
    if name == "convert_element_type":
        if out_dtype == np.bool_:
            return f"({ins[0]} != 0)"
        if in_dtype == out_dtype:
            return ins[0]
    text = eqn.prim.rule("emit")(*ins, **eqn.params)
    if np.issubdtype(out_dtype, np.floating) and out_dtype != np.float64:
        # keep float32 arithmetic in float32 (emit texts may hold float64 constants)
        text = f"{np_dtype(out_dtype)}({text})"
    return text


_GATHERS = ("broadcast_in_dim", "iota", "transpose", "slice", "rev", "reshape", "squeeze",
            "expand_dims", "concatenate", "pad", "gather")
_SCATTERS = {"scatter": "=", "scatter_add": "+=", "scatter_mul": "*="}
# control flow lowered to loops/branches of the kernel (while_tape/while_tape_vjp keep
# an opaque Python tape: they have no emit rule and fall back to the interpreter)
_CONTROL = {"scan": "lower_scan", "while": "lower_while", "cond": "lower_cond"}


def _is_outer(eqn) -> bool:
    (cx, _), (bx, _) = eqn.params["dimension_numbers"]
    return not cx and not bx and all(x.aval.ndim for x in eqn.inputs)


def _is_fusable(eqn) -> bool:
    """Computable per element of its output inside a loop nest."""
    name = eqn.prim.name
    if eqn.prim.multiple_results or len(eqn.outputs) != 1:
        return False
    if eqn.prim.kind == "elementwise":
        return eqn.prim.has_rule("emit") and all(
            x.aval.shape in ((), eqn.outputs[0].aval.shape) for x in eqn.inputs)
    if name == "dot_general":
        return _is_outer(eqn)
    return name in _GATHERS


def _reads_whole_operands(eqn) -> bool:
    """Index-mapping members read their operands at other positions: the operands
    must be arrays before the loop nest starts."""
    if _is_relabel(eqn):
        return False
    return eqn.prim.name in _GATHERS or eqn.prim.name == "dot_general"


def _max_update(t, v, dtype):
    if np.issubdtype(dtype, np.floating):   # NaN propagates, like np.max
        return f"if {v} > {t} or {v} != {v}: {t} = {v}"
    return f"if {v} > {t}: {t} = {v}"


def _min_update(t, v, dtype):
    if np.issubdtype(dtype, np.floating):
        return f"if {v} < {t} or {v} != {v}: {t} = {v}"
    return f"if {v} < {t}: {t} = {v}"


# fused reductions: primitive -> accumulator update statement
_REDUCTIONS = {
    "reduce_sum": lambda t, v, dtype: f"{t} += {v}",
    "reduce_prod": lambda t, v, dtype: f"{t} *= {v}",
    "reduce_max": _max_update,
    "reduce_min": _min_update,
    "reduce_and": lambda t, v, dtype: f"{t} = {t} and {v}",
    "reduce_or": lambda t, v, dtype: f"{t} = {t} or {v}",
}


def _reduction_init(name: str, dtype) -> str:
    dtype = np.dtype(dtype)
    if name == "reduce_sum":
        return literal_text(0, dtype)
    if name == "reduce_prod":
        return literal_text(1, dtype)
    if name in ("reduce_and", "reduce_or"):
        return "True" if name == "reduce_and" else "False"
    if np.issubdtype(dtype, np.floating):
        return literal_text(-np.inf if name == "reduce_max" else np.inf, dtype)
    if dtype == np.bool_:
        return "False" if name == "reduce_max" else "True"
    info = np.iinfo(dtype)
    return literal_text(info.min if name == "reduce_max" else info.max, dtype)


def _affine(lo: int, step: int, i: str) -> str:
    text = i if step == 1 else f"{step} * {i}"
    return f"({lo} + {text})" if lo else text


def _reshape_index(in_shape, out_shape, idx) -> list[str]:
    """Index of `in_shape` holding the element at `idx` of the reshaped `out_shape`."""
    kept_in = [d for d, n in enumerate(in_shape) if n != 1]
    kept_out = [k for k, n in enumerate(out_shape) if n != 1]
    if [in_shape[d] for d in kept_in] == [out_shape[k] for k in kept_out]:
        # only size-1 dimensions inserted or removed
        sub = ["0"] * len(in_shape)
        for d, k in zip(kept_in, kept_out, strict=True):
            sub[d] = idx[k]
        return sub
    ostr = _strides(out_shape)
    terms = [i if st == 1 else f"{i} * {st}" for i, st, n in zip(idx, ostr, out_shape,
                                                                 strict=True) if n != 1]
    linear = " + ".join(terms) or "0"
    istr = _strides(in_shape)
    sub = []
    for d, (n, st) in enumerate(zip(in_shape, istr, strict=True)):
        if n == 1:
            sub.append("0")
            continue
        t = f"({linear})" if st == 1 else f"(({linear}) // {st})"
        sub.append(t if d == 0 else f"({t} % {n})")
    return sub


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
    """A reshape/broadcast that only inserts or removes size-1 dimensions."""
    name = eqn.prim.name
    if name not in ("reshape", "squeeze", "expand_dims", "broadcast_in_dim"):
        return False
    x = eqn.inputs[0]
    out = eqn.outputs[0].aval
    if x.aval.shape == () or out.shape == ():
        return False
    if name == "broadcast_in_dim" and x.aval.size != out.size:
        return False
    return _group_key(x.aval.shape) == _group_key(out.shape)


def _strides(shape) -> list[int]:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


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
            init = _reduction_init(r.prim.name, o.aval.dtype)
            if o.aval.shape == ():
                lines.append(f"    {self.name(o)} = {init}")
            else:
                lines.append(f"    {self.name(o)} = np.full({o.aval.shape!r}, {init}, "
                             f"{np_dtype(o.aval.dtype)})")
                self.fresh.add(o)
        indent = "    "
        for k, n in enumerate(g.shape):
            lines.append(f"{indent}for _i{k} in range({n}):")
            indent += "    "
        order = sorted(member_set, key=self.position)
        for eqn in order:
            lines.append(self.comment(eqn, indent))
            if eqn.prim.name in _REDUCTIONS:
                (x,) = eqn.inputs
                o = eqn.outputs[0]
                val = self.read_in_group(x, g)
                target = self.name(o)
                if o.aval.shape != ():
                    x_idx = _loop_index(x.aval.shape, g.shape)
                    kept = [x_idx[d] for d in range(x.aval.ndim) if d not in eqn.params["axes"]]
                    target += f"[{', '.join(kept)}]"
                if eqn.prim.name in ("reduce_max", "reduce_min"):
                    lines.append(f"{indent}{self.name(o)}_v = {val}")
                    val = f"{self.name(o)}_v"
                lines.append(indent + _REDUCTIONS[eqn.prim.name](target, val, o.aval.dtype))
                continue
            v = eqn.outputs[0]
            lines.append(f"{indent}{self.name(v)}_ = {self.member_expr(eqn, g)}")
            if v in materialize:
                v_idx = ", ".join(_loop_index(v.aval.shape, g.shape))
                lines.append(f"{indent}{self.name(v)}[{v_idx}] = {self.name(v)}_")
        for eqn in g.eqns:
            self.home.pop(eqn.outputs[0], None)
        for r in g.reductions:
            self.home.pop(r.outputs[0], None)

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
        name = eqn.prim.name
        out = eqn.outputs[0].aval
        idx = _loop_index(out.shape, g.shape)
        p = eqn.params
        if name == "iota":
            return f"{np_dtype(out.dtype)}({idx[p['dimension']]})"
        if _is_relabel(eqn):
            return self.read_in_group(eqn.inputs[0], g)
        if eqn.prim.kind == "elementwise" and eqn.prim.has_rule("emit"):
            return _scalar_emit(eqn, [self.read_in_group(x, g) for x in eqn.inputs])
        x = eqn.inputs[0]
        if name == "broadcast_in_dim":
            return self.at(x, ["0" if x.aval.shape[k] == 1 and out.shape[d] != 1 else idx[d]
                               for k, d in enumerate(p["broadcast_dimensions"])])
        if name == "transpose":
            perm = p["permutation"]
            return self.at(x, [idx[perm.index(d)] for d in range(x.aval.ndim)])
        if name == "slice":
            return self.at(x, [_affine(lo, st, i) for lo, st, i in
                               zip(p["start_indices"], p["strides"], idx, strict=True)])
        if name == "rev":
            return self.at(x, [f"({n - 1} - {i})" if d in p["dimensions"] else i
                               for d, (n, i) in enumerate(zip(x.aval.shape, idx, strict=True))])
        if name in ("reshape", "squeeze", "expand_dims"):
            return self.at(x, _reshape_index(x.aval.shape, out.shape, idx))
        if name == "concatenate":
            d = p["dimension"]
            parts, off = [], 0
            for k, y in enumerate(eqn.inputs):
                n = y.aval.shape[d]
                sub = list(idx)
                sub[d] = f"({idx[d]} - {off})" if off else idx[d]
                parts.append((off + n, self.at(y, sub)))
                off += n
            text = parts[-1][1]
            for end, expr in reversed(parts[:-1]):
                text = f"({expr} if {idx[d]} < {end} else {text})"
            return text
        if name == "pad":
            v = self.read_in_group(eqn.inputs[1], g)
            conds, sub = [], []
            for (lo, hi, interior), n, i in zip(p["padding_config"], x.aval.shape, idx,
                                               strict=True):
                step = interior + 1
                j = f"({i} - {lo})" if lo else i
                if step == 1:
                    conds.append(f"0 <= {j} < {n}" if lo else f"{i} < {n}")
                    sub.append(j)
                else:
                    conds.append(f"0 <= {j} and {j} % {step} == 0 and {j} // {step} < {n}")
                    sub.append(f"{j} // {step}")
            if x.aval.size == 0:
                return v
            return f"({self.at(x, sub)} if {' and '.join(conds) or 'True'} else {v})"
        if name == "gather":
            return self.at(x, self.indexed(x, eqn.inputs[1], p["axes"], idx))
        if name == "dot_general":   # outer product: no contraction, no batch
            y = eqn.inputs[1]
            nx = x.aval.ndim
            return f"({self.at(x, idx[:nx])} * {self.at(y, idx[nx:])})"
        raise AssertionError(name)

    def indexed(self, x, ind, axes, idx: list[str]) -> list[str]:
        """x's index for element `idx` of gather(x, ind, axes) (= scatter's update index)."""
        nb = ind.aval.ndim - 1
        batch, rest = idx[:nb], iter(idx[nb:])
        out = []
        for d in range(x.aval.ndim):
            if d in axes:
                pos = self.at(ind, batch + [str(axes.index(d))])
                out.append(f"_wrap({pos}, {x.aval.shape[d]})")
            else:
                out.append(next(rest))
        return out

    def at(self, x, index: list[str]) -> str:
        """Element `index` of a materialized operand (0-d operands are scalars)."""
        if isinstance(x, Literal) or x.aval.shape == ():
            return self.name(x)
        return f"{self.name(x)}[{', '.join(index)}]"

    # --- equations ----------------------------------------------------------------------

    def add(self, eqn) -> None:
        name = eqn.prim.name
        out = eqn.outputs[0].aval if eqn.outputs else None
        if _is_fusable(eqn) and out.shape != ():
            key = _group_key(out.shape)
            g = self.groups.get(key)
            if _reads_whole_operands(eqn):
                self.flush_for(eqn)           # the operands must be materialized
                g = self.groups.get(key)
            else:
                self.flush_for(eqn, keep=g)
            if g is None:
                g = self.groups[key] = _Group(key)
            g.eqns.append(eqn)
            g.members.add(eqn.outputs[0])
            self.home[eqn.outputs[0]] = g
            return
        if name in _REDUCTIONS and eqn.inputs[0].aval.shape != () and isinstance(
                eqn.inputs[0], Var):
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
        if _is_fusable(eqn):  # 0-d elementwise: a scalar statement
            ins = [self.name(x) for x in eqn.inputs]
            if name == "iota":
                text = literal_text(0, out.dtype)
            elif name == "dot_general":
                text = f"({ins[0]} * {ins[1]})"
            elif name == "gather":
                x = eqn.inputs[0]
                text = self.at(x, self.indexed(x, eqn.inputs[1], eqn.params["axes"], []))
            elif name in _GATHERS:   # a single element of a size-1 operand
                x = eqn.inputs[0]
                text = ins[0] if x.aval.ndim == 0 else self.at(x, ["0"] * x.aval.ndim)
            else:
                text = _scalar_emit(eqn, ins)
            self.lines.append(f"    {self.name(eqn.outputs[0])} = {text}")
            return
        if name in _CONTROL:
            getattr(self, _CONTROL[name])(eqn)
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
        p = eqn.params
        ins = eqn.inputs
        out = eqn.outputs[0].aval
        if name == "dot_general":
            return self.dot(eqn), True
        if name in _SCATTERS and ins[0].aval.ndim:
            x, ind, u = ins
            o = self.name(eqn.outputs[0])
            self.lines.append(f"    {o} = {self.name(x)}.copy()")
            idx = [f"_i{q}" for q in range(u.aval.ndim)]
            target = ", ".join(self.indexed(x, ind, p["axes"], idx))
            self._loops(u.aval.shape, f"{o}[{target}] {_SCATTERS[name]} {self.at(u, idx)}")
            return o, True
        if eqn.prim.has_rule("emit"):
            try:
                text = eqn.prim.rule("emit")(*[self.arr(x) for x in ins], **p)
            except Exception as e:  # noqa: BLE001 - reported as a codegen error
                raise CodegenError(f"emit rule of '{name}' failed: {e}", name) from e
            return text, False
        raise CodegenError(f"primitive '{name}' has no emit rule", name)

    def dot(self, eqn) -> str:
        x, y = eqn.inputs
        xa, ya = x.aval, y.aval
        (cx, cy), (bx, by) = eqn.params["dimension_numbers"]
        out = eqn.outputs[0].aval
        if not np.issubdtype(out.dtype, np.floating) or xa.ndim == 0 or ya.ndim == 0:
            raise CodegenError("dot_general on integers or 0-d operands is not compiled",
                               "dot_general")
        X, Y = self.name(x), self.name(y)
        if not bx and xa.ndim <= 2 and ya.ndim <= 2 and cx == (xa.ndim - 1,) and cy == (0,):
            return f"np.dot(np.ascontiguousarray({X}), np.ascontiguousarray({Y}))"
        if not bx and xa.ndim == 2 and ya.ndim <= 2 and cx == (0,) and cy == (0,):
            # x^T y: BLAS reads the transposed view directly (F layout)
            return f"np.dot({X}.T, np.ascontiguousarray({Y}))" if ya.ndim == 2 else \
                f"np.dot(np.ascontiguousarray({Y}), np.ascontiguousarray({X}))"
        if not bx and xa.ndim <= 2 and ya.ndim == 2 and cx == (xa.ndim - 1,) and cy == (1,):
            return f"np.dot(np.ascontiguousarray({X}), {Y}.T)"
        # general: copy to (batch, free, contract) x (batch, contract, free) with loops,
        # then one BLAS product per batch element (loops compile far faster than
        # numba's transpose/reshape of arbitrary layouts)
        fx = tuple(i for i in range(xa.ndim) if i not in cx and i not in bx)
        fy = tuple(i for i in range(ya.ndim) if i not in cy and i not in by)
        size = lambda a, dims: int(np.prod([a.shape[i] for i in dims], dtype=np.int64))  # noqa
        nb, m, k, n = size(xa, bx), size(xa, fx), size(xa, cx), size(ya, fy)
        o = self.name(eqn.outputs[0])
        dt = np_dtype(out.dtype)
        self._copy_loop(f"{o}_x", (nb, m, k), x, bx + fx + cx, dt)
        self._copy_loop(f"{o}_y", (nb, k, n), y, by + cy + fy, dt)
        L = self.lines
        L.append(f"    {o}_o = np.empty(({nb}, {m}, {n}), {dt})")
        # (assigning a whole array to a slice is slow to compile in numba: copy by loop)
        L.append(f"    for _b in range({nb}):")
        L.append(f"        {o}_t = np.dot({o}_x[_b], {o}_y[_b])")
        L.append(f"        for _r in range({m}):")
        L.append(f"            for _c in range({n}):")
        L.append(f"                {o}_o[_b, _r, _c] = {o}_t[_r, _c]")
        if out.shape == ():
            return f"{o}_o[0, 0, 0]"
        L.append(f"    {o} = np.empty({out.shape!r}, {dt})")
        idx = [f"_i{q}" for q in range(out.ndim)]
        src = _reshape_index((nb, m, n), out.shape, idx)
        self._loops(out.shape, f"{o}[{', '.join(idx)}] = {o}_o[{', '.join(src)}]")
        return o

    def _loops(self, shape, body: str) -> None:
        indent = "    "
        for q, n in enumerate(shape):
            self.lines.append(f"{indent}for _i{q} in range({n}):")
            indent += "    "
        self.lines.append(indent + body)

    def _copy_loop(self, dst: str, shape3, x, perm, dt) -> None:
        """dst = x transposed by `perm`, reshaped to `shape3`, as a new C array."""
        self.lines.append(f"    {dst} = np.empty({tuple(shape3)!r}, {dt})")
        permuted = [x.aval.shape[d] for d in perm]
        idx = [f"_i{q}" for q in range(3)]
        p_idx = _reshape_index(permuted, shape3, idx)
        x_idx = ["0"] * x.aval.ndim
        for q, d in enumerate(perm):
            x_idx[d] = p_idx[q]
        self._loops(shape3, f"{dst}[{', '.join(idx)}] = {self.name(x)}[{', '.join(x_idx)}]")

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

    def lower_scan(self, eqn) -> None:
        p = eqn.params
        nc, nk, length = p["num_consts"], p["num_carry"], p["length"]
        consts, carry, xs = (eqn.inputs[:nc], eqn.inputs[nc:nc + nk], eqn.inputs[nc + nk:])
        u = self.uid()
        L = self.lines
        cvars = [f"_k{u}_{k}" for k in range(nk)]
        for c, x in zip(cvars, carry, strict=True):
            L.append(f"    {c} = {self.own(self.name(x), x.aval, False)}")
        y_avals = [v.aval for v in p["jaxpr"].jaxpr.outvars[nk:]]
        yvars = [self.name(o) for o in eqn.outputs[nk:]]
        for y, a in zip(yvars, y_avals, strict=True):
            L.append(f"    {y} = np.empty({(length,) + tuple(a.shape)!r}, {np_dtype(a.dtype)})")
        t = f"_t{u}"
        steps = f"range({length - 1}, -1, -1)" if p["reverse"] else f"range({length})"
        ins = [self.name(x) for x in consts] + cvars + [f"{self.name(x)}[{t}]" for x in xs]
        lines, outs, fresh = self.sub(p["jaxpr"], ins)
        L.append(f"    for {t} in {steps}:")
        self.emit_sub(lines, 1)
        for y, o, a in zip(yvars, outs[nk:], y_avals, strict=True):
            self.store_rows(y, t, o, a, "        ")
        for c, o, x, f in zip(cvars, outs[:nk], carry, fresh[:nk], strict=True):
            L.append(f"        {c} = {self.own(o, x.aval, f)}")
        for c, o in zip(cvars, eqn.outputs[:nk], strict=True):
            L.append(f"    {self.name(o)} = {c}")
        self.fresh.update(o for o in eqn.outputs if o.aval.shape != ())

    def lower_while(self, eqn) -> None:
        p = eqn.params
        ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
        cc, bc = eqn.inputs[:ncc], eqn.inputs[ncc:ncc + nbc]
        carry = eqn.inputs[ncc + nbc:]
        u = self.uid()
        L = self.lines
        cvars = [f"_k{u}_{k}" for k in range(len(carry))]
        for c, x in zip(cvars, carry, strict=True):
            L.append(f"    {c} = {self.own(self.name(x), x.aval, False)}")
        c_lines, (pred,), _ = self.sub(p["cond_jaxpr"], [self.name(x) for x in cc] + cvars)
        b_lines, outs, fresh = self.sub(p["body_jaxpr"], [self.name(x) for x in bc] + cvars)
        L.append("    while True:")
        self.emit_sub(c_lines, 1)
        L.append(f"        if not {pred}:")
        L.append("            break")
        self.emit_sub(b_lines, 1)
        for c, o, x, f in zip(cvars, outs, carry, fresh, strict=True):
            L.append(f"        {c} = {self.own(o, x.aval, f)}")
        for c, o in zip(cvars, eqn.outputs, strict=True):
            L.append(f"    {self.name(o)} = {c}")
        self.fresh.update(o for o in eqn.outputs if o.aval.shape != ())

    def lower_cond(self, eqn) -> None:
        branches = eqn.params["branches"]
        index, operands = eqn.inputs[0], eqn.inputs[1:]
        ins = [self.name(x) for x in operands]
        i = self.name(index)
        L = self.lines
        n = len(branches)
        for k, b in enumerate(branches):
            lines, outs, fresh = self.sub(b, ins)
            if n == 1:
                L.append("    if True:")
            elif k == 0:
                L.append(f"    if {i} <= 0:")     # the index is clamped, like lax.switch
            elif k < n - 1:
                L.append(f"    elif {i} == {k}:")
            else:
                L.append("    else:")
            self.emit_sub(lines, 1)
            for o, expr, f in zip(eqn.outputs, outs, fresh, strict=True):
                L.append(f"        {self.name(o)} = {self.own(expr, o.aval, f)}")
        self.fresh.update(o for o in eqn.outputs if o.aval.shape != ())

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

