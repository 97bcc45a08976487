"""Pictures of jaxprs: Graphviz DOT text, rendered with the `dot` program when it
is installed (`apt-get install graphviz`, `brew install graphviz`, or
`conda install graphviz`), written as DOT text otherwise.

    >>> import fungrad as fg, fungrad.numpy as fnp
    >>> from fungrad import viz
    >>> text = viz.to_dot(fg.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(1.0))
    >>> viz.draw_vjp(loss, w, b, path="loss_grad.svg")   # forward and backward apart

Nodes: inputs (green), constants captured from closures (grey), one box per
equation labelled with the primitive, its parameters, literal operands and its
output type, outputs (red).  Edges carry the printer's variable names, so a
picture reads side by side with `print(jaxpr)`.  For a derivative, `draw_vjp`
puts the forward pass and the backward pass (the pullback) in two clusters
of different colours, joined by the residuals the backward pass reads.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .core import ClosedJaxpr, Jaxpr, Literal, Var, _fmt_param, register_svg_renderer, var_names
from .errors import FungradTypeError, FungradValueError
from .core import _names
from .tracing import make_jaxpr
from .transforms.ad import partial_eval_jaxpr, vjp_jaxpr
from .transforms.simplify import simplify_jaxpr

__all__ = ["to_dot", "to_svg", "draw", "vjp_to_dot", "draw_vjp", "have_graphviz"]

# colours: forward (blue), backward (orange), inputs, constants, outputs
_STYLE = {
    "forward": {"fill": "#dbe9f6", "edge": "#3b6ea5", "cluster": "#f3f8fd"},
    "backward": {"fill": "#fde3c8", "edge": "#c0651b", "cluster": "#fff6ec"},
    "input": "#d5f0d5", "residual": "#7a4f9a", "const": "#e6e6e6", "output": "#f8d0d0", "cotangent": "#f2e0f7",
}
_MAX_PARAM_CHARS = 40


def have_graphviz() -> bool:
    """Whether the Graphviz `dot` program is on PATH."""
    return shutil.which("dot") is not None


def _jaxpr_of(j: Any) -> tuple[Jaxpr, list]:
    if isinstance(j, ClosedJaxpr):
        return j.jaxpr, list(j.consts)
    if isinstance(j, Jaxpr):
        return j, []
    raise FungradTypeError(f"viz: expected a Jaxpr or ClosedJaxpr (e.g. from "
                           f"fungrad.make_jaxpr(f)(x)), got {type(j).__name__}")


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(text: str, limit: int = _MAX_PARAM_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _const_preview(value: Any) -> str:
    arr = np.asarray(value)
    if arr.size <= 4:
        return np.array2string(arr, precision=4, separator=",", threshold=4)
    return f"{arr.min():.3g}..{arr.max():.3g}"


def _literal_text(x: Literal) -> str:
    return repr(bool(x.val)) if x.aval.dtype == np.bool_ else repr(x.val.item())


class _Graph:
    """Collects DOT statements; one instance per picture."""

    def __init__(self, title: str | None):
        self.lines: list[str] = []
        self.title = title

    def emit_jaxpr(self, jaxpr: Jaxpr, consts: Sequence, prefix: str, part: str | None,
                   in_labels: Sequence[str] | None = None,
                   out_labels: Sequence[str] | None = None,
                   forward_eqns: set[int] | None = None,
                   external: dict[int, tuple[str, str]] | None = None,
                   names: dict[int, str] | None = None,
                   indent: str = "  ") -> tuple[list[str], list[str]]:
        """Emit nodes and edges of one jaxpr; returns (input node ids, output node
        ids).  `part` colours every equation ("forward"/"backward"); with
        `forward_eqns` (indices) equations are coloured one by one instead.
        `external` maps input positions to (node id, name) of another part of the
        picture (residuals): no input node is drawn, edges come from there, dashed."""
        names = names if names is not None else var_names(jaxpr)
        producer: dict[int, tuple[str, str]] = {}   # id(var) -> (node id, var name)
        add = self.lines.append
        in_ids, out_ids = [], []
        external = external or {}
        dashed: set[str] = set()

        for i, (v, c) in enumerate(zip(jaxpr.constvars, consts or [None] * len(
                jaxpr.constvars), strict=True)):
            node = f"{prefix}c{i}"
            preview = "" if c is None else "\n" + _short(_const_preview(c), 24)
            text = f"const {names[id(v)]}: {v.aval}{preview}"
            add(f'{indent}{node} [label={_q(text)}, '
                f'shape=box, style="rounded,filled,dashed", fillcolor="{_STYLE["const"]}"];')
            producer[id(v)] = (node, names[id(v)])
        for i, v in enumerate(jaxpr.invars):
            node = f"{prefix}in{i}"
            in_ids.append(node)
            producer[id(v)] = (node, names[id(v)])
            if i in external:
                src, src_name = external[i]
                producer[id(v)] = (src, f"{names[id(v)]} (residual)")
                dashed.add(src)
                continue
            label = in_labels[i] if in_labels and i < len(in_labels) else f"input {i}"
            text = f"{label}\n{names[id(v)]}: {v.aval}".lstrip("\n")
            add(f'{indent}{node} [label={_q(text)}, '
                f'shape=box, style="rounded,filled", fillcolor="{_STYLE["input"]}"];')

        for k, eqn in enumerate(jaxpr.eqns):
            node = f"{prefix}e{k}"
            lines = [eqn.prim.name]
            if any(isinstance(x, Literal) for x in eqn.inputs):
                # show the operands in order, so `sub(1.0, b)` reads as 1 - b
                operands = [_short(_literal_text(x), 12) if isinstance(x, Literal)
                            else names.get(id(x), "?") for x in eqn.inputs]
                lines = [f"{eqn.prim.name}({', '.join(operands)})"]
            if eqn.params:
                params = " ".join(f"{key}={_fmt_param(val)}" for key, val in eqn.params.items())
                lines.append(_short(params))
            lines.append(" ".join(f"{names[id(o)]}: {o.aval}" for o in eqn.outputs))
            which = part
            if forward_eqns is not None:
                which = "forward" if k in forward_eqns else "backward"
            fill = _STYLE[which]["fill"] if which else "#eef1f5"
            add(f'{indent}{node} [label={_q(chr(10).join(lines))}, shape=box, '
                f'style="rounded,filled", fillcolor="{fill}"];')
            for x in eqn.inputs:
                if isinstance(x, Var) and id(x) in producer:
                    src, vname = producer[id(x)]
                    color = _STYLE[which]["edge"] if which else "#555555"
                    style = ""
                    if src in dashed and "residual" in vname:
                        color, style = _STYLE["residual"], ", style=dashed"
                    add(f'{indent}{src} -> {node} [label={_q(vname)}, color="{color}", '
                        f'fontcolor="{color}"{style}];')
            for o in eqn.outputs:
                producer[id(o)] = (node, names[id(o)])

        for i, v in enumerate(jaxpr.outvars):
            node = f"{prefix}out{i}"
            out_ids.append(node)
            label = out_labels[i] if out_labels and i < len(out_labels) else f"output {i}"
            if label is None:
                continue
            if isinstance(v, Literal):
                text = f"{label}\n{v}"
            else:
                text = f"{label}\n{names[id(v)]}: {v.aval}"
            add(f'{indent}{node} [label={_q(text)}, shape=box, style="rounded,filled,bold", '
                f'fillcolor="{_STYLE["output"]}"];')
            if isinstance(v, Var) and id(v) in producer:
                src, vname = producer[id(v)]
                add(f'{indent}{src} -> {node} [label={_q(vname)}];')
        self._producer = producer
        return in_ids, out_ids

    def text(self, body: list[str] | None = None) -> str:
        head = ["digraph jaxpr {", "  rankdir=TB;", '  graph [fontname="Helvetica"];',
                '  node [fontname="Helvetica", fontsize=10];',
                '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];']
        if self.title:
            head.append(f"  label={_q(self.title)}; labelloc=t; fontsize=14; "
                        'fontname="Helvetica-Bold";')
        return "\n".join(head + (body if body is not None else self.lines) + ["}"]) + "\n"


def to_dot(jaxpr: Jaxpr | ClosedJaxpr, *, title: str | None = None,
           arg_names: Sequence[str] | None = None, out_names: Sequence[str] | None = None,
           split: int | Iterable[int] | None = None) -> str:
    """Graphviz DOT text for a jaxpr.

    Args:
      jaxpr: a `Jaxpr` or `ClosedJaxpr` (e.g. `fungrad.make_jaxpr(f)(x)`).
      title: a caption above the graph.
      arg_names, out_names: labels for the inputs / outputs (default "input i").
      split: mark the forward part of a derivative jaxpr: an int n (the first n
        equations are forward) or the indices of the forward equations; the
        forward equations are drawn blue, the others orange.
    Returns:
      the DOT source text.

    >>> import fungrad as fg, fungrad.numpy as fnp
    >>> "sin" in to_dot(fg.make_jaxpr(fnp.sin)(1.0))
    True
    """
    j, consts = _jaxpr_of(jaxpr)
    forward = None
    if split is not None:
        if isinstance(split, (int, np.integer)):
            if not 0 <= split <= len(j.eqns):
                raise FungradValueError(f"to_dot: split={split} but the jaxpr has "
                                        f"{len(j.eqns)} equations")
            forward = set(range(int(split)))
        else:
            forward = set(int(k) for k in split)
    g = _Graph(title)
    g.emit_jaxpr(j, consts, "n", None, arg_names, out_names, forward_eqns=forward)
    return g.text()


def vjp_to_dot(fun: Callable, *primals: Any, title: str | None = None,
               arg_names: Sequence[str] | None = None) -> str:
    """DOT text of `fun`'s reverse-mode derivative as fungrad runs it: the forward
    jaxpr (inputs -> outputs and residuals) and the backward jaxpr (residuals and
    the output cotangent -> input cotangents) in two clusters, joined by the
    residual edges (dashed).  The same split `fungrad.vjp` executes.

    >>> import fungrad.numpy as fnp
    >>> "cluster_backward" in vjp_to_dot(lambda x: fnp.sum(fnp.sin(x)), np.ones(3))
    True
    """
    fwd, bwd, n_res, n_out, n_wrt = _vjp_parts(fun, primals)
    if arg_names is None:
        code = getattr(fun, "__code__", None)
        if code is not None and code.co_argcount == len(primals) and len(fwd.jaxpr.invars) \
                == len(primals):
            arg_names = list(code.co_varnames[:code.co_argcount])
    g = _Graph(title)
    g.lines.append('  subgraph cluster_forward {')
    g.lines.append(f'    label="forward pass: runs once, keeps {n_res} residual(s)"; '
                   f'style="rounded,filled"; fillcolor="{_STYLE["forward"]["cluster"]}"; '
                   f'color="{_STYLE["forward"]["edge"]}"; fontcolor="{_STYLE["forward"]["edge"]}";')
    out_labels = [f"output {i}" for i in range(n_out)] + [None] * n_res
    _, fwd_outs = g.emit_jaxpr(fwd.jaxpr, fwd.consts, "f", "forward", arg_names, out_labels,
                               indent="    ")
    fwd_producer = g._producer
    g.lines.append("  }")
    g.lines.append('  subgraph cluster_backward {')
    g.lines.append('    label="backward pass (the pullback): residuals + output cotangent -> '
                   f'gradients"; style="rounded,filled"; fillcolor="{_STYLE["backward"]["cluster"]}"; '
                   f'color="{_STYLE["backward"]["edge"]}"; fontcolor="{_STYLE["backward"]["edge"]}";')
    wrt_names = arg_names if arg_names else [f"input {i}" for i in range(n_wrt)]
    grad_labels = [f"gradient of {wrt_names[i] if i < len(wrt_names) else i}"
                   for i in range(len(bwd.outvars))]
    ct_labels = [f"cotangent of output {i}" for i in range(len(bwd.invars) - n_res)]
    # residuals: values the forward pass computed (or its constants), read backward
    external = {}
    for r in range(n_res):
        fwd_var = fwd.jaxpr.outvars[n_out + r]
        if isinstance(fwd_var, Var) and id(fwd_var) in fwd_producer:
            external[r] = fwd_producer[id(fwd_var)]
    bwd_ins, _ = g.emit_jaxpr(bwd, [], "b", "backward", [f"residual {r}" for r in range(n_res)]
                              + ct_labels, grad_labels, external=external,
                              names=_continued_names(fwd.jaxpr, bwd, n_out, n_res),
                              indent="    ")
    for i in range(n_res, len(bwd.invars)):
        g.lines.append(f'    {bwd_ins[i]} [fillcolor="{_STYLE["cotangent"]}"];')
    g.lines.append("  }")
    return g.text()


def _continued_names(fwd: Jaxpr, bwd: Jaxpr, n_out: int, n_res: int) -> dict[int, str]:
    """Names for the backward jaxpr: residuals keep their forward names, new
    variables continue after the forward's last name (no name means two things)."""
    fwd_names = var_names(fwd)
    names: dict[int, str] = {}
    for r in range(n_res):
        src = fwd.outvars[n_out + r]
        if isinstance(src, Var):
            names[id(bwd.invars[r])] = fwd_names[id(src)]
    gen = _names()
    for _ in range(len(fwd_names)):
        next(gen)
    for v in bwd.invars[n_res:]:
        names[id(v)] = next(gen)
    for eqn in bwd.eqns:
        for v in eqn.outputs:
            names.setdefault(id(v), next(gen))
    for r in range(n_res):
        names.setdefault(id(bwd.invars[r]), next(gen))
    return names


def _vjp_parts(fun, primals):
    """(forward ClosedJaxpr, backward Jaxpr, n_residuals, n_outputs, n_wrt), built
    exactly as `fungrad.vjp` builds them."""
    closed = make_jaxpr(fun)(*primals)
    j = closed.jaxpr
    n_in, n_out = len(j.invars), len(j.outvars)
    wrt = [np.issubdtype(v.aval.dtype, np.inexact) for v in j.invars]
    joint = simplify_jaxpr(vjp_jaxpr(j, wrt, n_out))
    fwd, bwd, n_res = partial_eval_jaxpr(joint, [False] * n_in + [True] * n_out,
                                         [False] * n_out + [True] * sum(wrt))
    return ClosedJaxpr(fwd, closed.consts), bwd, n_res, n_out, sum(wrt)


def _render(dot_text: str, fmt: str) -> bytes:
    proc = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(), capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise FungradValueError(f"viz: Graphviz dot failed: {proc.stderr.decode().strip()}")
    return proc.stdout


def to_svg(jaxpr: Jaxpr | ClosedJaxpr | str, **kwargs: Any) -> str | None:
    """SVG text of the picture (a jaxpr, or DOT text), or None when Graphviz's `dot`
    is not installed (notebooks then show the printed jaxpr instead)."""
    dot_text = jaxpr if isinstance(jaxpr, str) else to_dot(jaxpr, **kwargs)
    if not have_graphviz():
        return None
    return _render(dot_text, "svg").decode()


def draw(jaxpr: Jaxpr | ClosedJaxpr | str, path: str | os.PathLike, *, quiet: bool = False,
         **kwargs: Any) -> Path:
    """Write a picture of `jaxpr` (or of DOT text) to `path`; the format follows the
    extension (.svg, .png, .pdf, ... rendered by Graphviz; .dot or .gv: DOT text).

    Without Graphviz the DOT text is written to `path` with its suffix replaced by
    `.dot`, and a line on stderr says so (unless quiet=True).  Returns the path
    actually written.  Keyword arguments go to `to_dot`.
    """
    dot_text = jaxpr if isinstance(jaxpr, str) else to_dot(jaxpr, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "dot"
    if fmt in ("dot", "gv"):
        path.write_text(dot_text)
        return path
    if not have_graphviz():
        fallback = path.with_suffix(".dot")
        fallback.write_text(dot_text)
        if not quiet:
            print(f"fungrad.viz: Graphviz 'dot' not found, wrote DOT text to {fallback} "
                  f"instead of {path.name} (install graphviz to render it)", file=sys.stderr)
        return fallback
    path.write_bytes(_render(dot_text, fmt))
    return path


def draw_vjp(fun: Callable, *primals: Any, path: str | os.PathLike, quiet: bool = False,
             title: str | None = None) -> Path:
    """`draw` for `vjp_to_dot(fun, *primals)`: the forward and backward passes of
    `fun`'s derivative in one picture.  Returns the path written."""
    return draw(vjp_to_dot(fun, *primals, title=title), path, quiet=quiet)


register_svg_renderer(to_svg)  # notebooks show a ClosedJaxpr as this picture
