"""A program as several kernels: per-equation fallback and a size cap.

`compile_program(jaxpr)` gives what runs a program once it is hot: one `Kernel`
when the code generator lowers every equation and the program is within
`config.kernel_max_equations` (counting the equations of loop bodies and branches),
else a `SegmentedKernel`: the equations in program order, cut into segments.  A
run of equations the generator lowers becomes one kernel; an equation it cannot
lower (a `pure_callback`, a `while_tape`, ...) runs in the interpreter, alone or
with its uncompilable neighbours, so one such equation no longer sends the whole
program to the interpreter.  A program over the cap is cut into pieces of at most
the cap, each cut placed (in the second half of the piece) where the fewest values
cross it; compile time and memory then grow with the pieces, not with the
program (a numba compile grows faster than linearly in the kernel's length).

Values crossing segments are passed as arrays (C-contiguous into a kernel, so a
segment's kernel has one signature).  When an equation stays interpreted, one
`FungradKernelWarning` says so at the user's line of that equation.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from ..config import config, settings
from ..core import Jaxpr, Literal, Var
from ..errors import CodegenError, user_location
from ..interpreter import eval_jaxpr, owned_array
from ..transforms.inline import inline_calls_jaxpr
from . import numba_jit
from .codegen import generate
from .numba_jit import FungradKernelWarning, Kernel, stats

__all__ = ["compile_program", "SegmentedKernel", "warn_at"]

config.define("kernel_max_equations", 300, env="FUNGRAD_KERNEL_MAX_EQUATIONS", parse=int,
              doc="the most equations (loop bodies and branches included) one numba kernel "
                  "holds; a larger program is compiled as several kernels (0: no limit)")


def warn_at(msg: str, where) -> None:
    """A FungradKernelWarning at `where` (filename, lineno, ...), else at the user's
    innermost line; collected instead when a background compile is under way (the
    caller's thread issues it: backend/execution.py)."""
    deferred = getattr(numba_jit._deferred, "messages", None)
    if deferred is not None:
        deferred.append((msg, where))
        return
    issue_warning(msg, where)


def issue_warning(msg: str, where=None) -> None:
    if where is not None:
        filename, lineno, *_ = where
    if where is None or lineno is None:
        loc = user_location()
        if loc is None:
            warnings.warn(msg, FungradKernelWarning, stacklevel=3)
            return
        filename, lineno, _ = loc
    warnings.warn_explicit(msg, FungradKernelWarning, filename, lineno,
                           module=os.path.splitext(os.path.basename(filename))[0])


def _weight(eqn) -> int:
    """1 + the equations of the sub-jaxprs an equation runs (loop bodies, branches)."""
    total = 1
    for value in eqn.params.values():
        for item in (value if isinstance(value, (tuple, list)) else (value,)):
            body = getattr(item, "jaxpr", item)
            if isinstance(body, Jaxpr):
                total += sum(_weight(e) for e in body.eqns)
    return total


class _Segment:
    """Equations `eqns` reading `invars` and giving `outvars` (the values later
    segments or the program's outputs read); `kernel` None runs them interpreted."""
    __slots__ = ("eqns", "invars", "outvars", "kernel", "jaxpr")

    def __init__(self, eqns, invars, outvars, kernel, jaxpr):
        self.eqns, self.invars, self.outvars = eqns, invars, outvars
        self.kernel, self.jaxpr = kernel, jaxpr


class _Listing:
    """The text of a segmented program, for `lower(...).as_text()`."""

    def __init__(self, source: str):
        self.source = source


class SegmentedKernel:
    """A program run as segments (see the module docstring); called like a `Kernel`:
    `kernel(consts, args) -> list of owned ndarrays`."""
    __slots__ = ("jaxpr", "segments", "fallback", "fn", "direct", "__weakref__")

    def __init__(self, jaxpr: Jaxpr, segments: list):
        self.jaxpr, self.segments = jaxpr, segments
        self.fallback = None
        self.fn = None         # no single numba entry point
        self.direct = False

    @property
    def checked(self) -> bool:
        return all(s.kernel.checked or s.kernel.fallback is not None
                   for s in self.segments if s.kernel is not None)

    @property
    def kernels(self) -> list:
        return [s.kernel for s in self.segments if s.kernel is not None]

    @property
    def source(self) -> _Listing:
        parts = []
        for k, seg in enumerate(self.segments):
            if seg.kernel is not None and seg.kernel.source is not None:
                parts.append(f"# segment {k}: kernel\n{seg.kernel.source.source}")
            else:
                names = ", ".join(sorted({e.prim.name for e in seg.eqns}))
                parts.append(f"# segment {k}: {len(seg.eqns)} equations in the interpreter "
                             f"({names})\n")
        return _Listing("\n".join(parts))

    def _env(self, consts: Sequence, args: Sequence) -> dict:
        env = dict(zip(self.jaxpr.constvars, consts, strict=True))
        env.update(zip(self.jaxpr.invars, args, strict=True))
        return env

    def __call__(self, consts: Sequence, args: Sequence) -> list:
        env = self._env(consts, args)
        for seg in self.segments:
            ins = [env[v] for v in seg.invars]
            if seg.kernel is not None:
                outs = seg.kernel((), [_contiguous(x) for x in ins])
            else:
                with np.errstate(all="ignore"):
                    outs = eval_jaxpr(seg.jaxpr, (), *ins)
            env.update(zip(seg.outvars, outs, strict=True))
        # an output is a new array: never an argument, nor another output, again
        taken = {id(x) for x in (*consts, *args)}
        results = []
        for v in self.jaxpr.outvars:
            if isinstance(v, Literal):
                results.append(np.array(v.val, dtype=v.aval.dtype))
                continue
            out = owned_array(env[v])
            if id(out) in taken:
                out = out.copy()
            taken.add(id(out))
            results.append(out)
        return results

    def prepare(self, consts: Sequence, args: Sequence) -> bool:
        """Compile (or load) every segment's kernel for these arguments' types, with
        stand-in arrays for the values earlier segments compute; False if numba
        rejected one (that segment then runs in the interpreter, and has warned)."""
        env = self._env(consts, args)
        ok = True
        for seg in self.segments:
            if seg.kernel is None:
                continue
            ins = [_contiguous(env[v]) if v in env else np.empty(v.aval.shape, v.aval.dtype)
                   for v in seg.invars]
            ok = seg.kernel.prepare((), ins) and ok
        return ok


def _contiguous(x):
    if type(x) is np.ndarray and x.ndim and not x.flags.c_contiguous:
        return np.ascontiguousarray(x)
    return x


def _crossings(eqns, last_use: dict) -> list:
    """crossings[p]: how many values computed before equation p are read at or after p."""
    delta = [0] * (len(eqns) + 2)
    for d, eqn in enumerate(eqns):
        for v in eqn.outputs:
            end = last_use.get(v, -1)
            if end > d:
                delta[d + 1] += 1
                delta[end + 1] -= 1
    out, running = [], 0
    for p in range(len(eqns) + 1):
        running += delta[p]
        out.append(running)
    return out


def _pieces(eqns, weights, cap: int, crossings: list) -> list:
    """[start, end) ranges of at most `cap` weight (an equation heavier than the cap is
    a piece of its own), each cut at the fewest crossing values in the piece's
    second half."""
    ranges, start, n = [], 0, len(eqns)
    while start < n:
        total, end = 0, start
        while end < n and (total + weights[end] <= cap or end == start):
            total += weights[end]
            end += 1
        if end < n and end - start > 1:
            lo = start + max(1, (end - start) // 2)
            end = min(range(lo, end + 1), key=lambda p: (crossings[p], -p))
        ranges.append((start, end))
        start = end
    return ranges


def _boundary(eqns, start: int, end: int, last_use: dict) -> tuple[list, list]:
    """(values read by eqns[start:end] and computed before it, values it computes that
    are read after it), each in first-appearance order."""
    defined, ins, seen = set(), [], set()
    for eqn in eqns[start:end]:
        for x in eqn.inputs:
            if isinstance(x, Var) and x not in defined and x not in seen:
                seen.add(x)
                ins.append(x)
        defined.update(eqn.outputs)
    outs = [v for eqn in eqns[start:end] for v in eqn.outputs if last_use.get(v, -1) >= end]
    return ins, outs


def _try_generate(jaxpr: Jaxpr):
    try:
        return generate(jaxpr), None
    except CodegenError as e:
        return None, e


_warned: set = set()   # (primitives, file, line) already reported in this process


def compile_program(jaxpr: Jaxpr):
    """A `Kernel` for `jaxpr`, or a `SegmentedKernel` when an equation cannot be
    compiled or the program is larger than `config.kernel_max_equations`."""
    cap = settings().kernel_max_equations
    if cap <= 0 or sum(_weight(e) for e in jaxpr.eqns) <= cap:
        ks, error = _try_generate(jaxpr)
        if ks is not None:
            return Kernel(jaxpr, ks)
    flat = inline_calls_jaxpr(jaxpr)
    eqns = flat.eqns
    last_use: dict = {}
    for p, eqn in enumerate(eqns):
        for x in eqn.inputs:
            if isinstance(x, Var):
                last_use[x] = p
    for v in flat.outvars:
        if isinstance(v, Var):
            last_use[v] = len(eqns)
    weights = [_weight(e) for e in eqns]
    cap = cap if cap > 0 else max(1, sum(weights))
    runs = []            # (start, end, KernelSource or None, CodegenError or None)
    for start, end in _pieces(eqns, weights, cap, _crossings(eqns, last_use)):
        ks, error = _try_generate(_sub_jaxpr(eqns, start, end, last_use))
        if ks is not None:
            runs.append((start, end, ks, None))
            continue
        runs.extend(_split_uncompilable(eqns, start, end, last_use))
    segments, failed = [], []
    for start, end, ks, error in _merge_interpreted(runs):
        ins, outs = _boundary(eqns, start, end, last_use)
        sub = Jaxpr((), ins, eqns[start:end], outs)
        if ks is None:
            failed.append((eqns[start:end], error))
        segments.append(_Segment(eqns[start:end], ins, outs,
                                 Kernel(sub, ks) if ks is not None else None, sub))
    if failed:
        _report(failed, segments)
    return SegmentedKernel(flat, segments)


def _sub_jaxpr(eqns, start: int, end: int, last_use: dict) -> Jaxpr:
    ins, outs = _boundary(eqns, start, end, last_use)
    return Jaxpr((), ins, eqns[start:end], outs)


def _split_uncompilable(eqns, start: int, end: int, last_use: dict) -> list:
    """A piece the generator rejects, as runs: the equations it lowers one by one,
    grouped into compiled runs, and the others (with the error) interpreted."""
    marks = []
    for p in range(start, end):
        _, error = _try_generate(_sub_jaxpr(eqns, p, p + 1, last_use))
        marks.append(error)
    runs, p = [], start
    while p < end:
        q = p + 1
        while q < end and (marks[q - start] is None) == (marks[p - start] is None):
            q += 1
        if marks[p - start] is not None:
            runs.append((p, q, None, marks[p - start]))
        else:
            ks, error = _try_generate(_sub_jaxpr(eqns, p, q, last_use))
            runs.append((p, q, ks, error))
        p = q
    return runs


def _merge_interpreted(runs: list) -> list:
    merged = []
    for run in runs:
        if merged and run[2] is None and merged[-1][2] is None:
            start, _, _, error = merged[-1]
            merged[-1] = (start, run[1], None, error)
        else:
            merged.append(run)
    return merged


def _report(failed: list, segments: list) -> None:
    """One warning per program: which primitives run in the interpreter, and where
    (the user's line of the first of them)."""
    error = failed[0][1]
    names = sorted({e.prim.name for eqns, _ in failed for e in eqns})
    where = next((e.source_info for eqns, _ in failed for e in eqns
                  if e.source_info is not None), None)
    key = (tuple(names), tuple(where)[:2] if where is not None else None)
    stats["fallbacks"] += 1
    if key in _warned:
        return
    _warned.add(key)
    kernels = sum(1 for s in segments if s.kernel is not None)
    interpreted = sum(len(eqns) for eqns, _ in failed)
    quoted = ", ".join(f"'{n}'" for n in names)
    warn_at(f"fungrad: cannot compile primitive {quoted} ({error}); {interpreted} "
            f"equation(s) run in the interpreter, the rest of the program in {kernels} "
            "kernel(s) (results are the same)", where)
