"""The `python -m fungrad` (or `fungrad`) command line.

    python -m fungrad grad "lambda x: (x + 2)**2 + 3" 2.0            # 8.0
    python -m fungrad jacobian "lambda x: fnp.stack([x[0]**2 + 3*x[1], x[1]**2 + 2*x[0]])" "[2, 3]"
    python -m fungrad hessian "lambda x: fnp.sum(x ** 3)" "[1, 2]"    # [[6, 0], [0, 12]]
    python -m fungrad jaxpr "lambda x: fnp.sin(x) * x" 1.0 --grad --dot sin.svg
    python -m fungrad --version

Expressions are Python code, run with your rights like `python -c` (never pass
text from someone you do not trust), evaluated with `fg` (fungrad), `fnp`
(fungrad.numpy), `np` (numpy) and `nn` (fungrad.nn) in scope.  With `--safe`
(or FUNGRAD_CLI_SAFE=1) an expression may only be a lambda built from its
parameters, literals, arithmetic, comparisons, indexing and calls of `fnp.*` /
`nn.*` functions; nothing else is evaluated.  Arguments are Python literals
(numbers, nested lists), passed as float64.

    python -m fungrad cache              # where the kernel cache is, its size and limit
    python -m fungrad cache clear        # delete the cached kernels
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import types
from typing import Any, Callable, Sequence

import numpy as np

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn, viz
from fungrad.backend import disk_cache
from fungrad.config import parse_bool

__all__ = ["main"]


class _UsageError(Exception):
    """A bad expression or argument: reported in one line, exit status 2."""


def _namespace() -> dict:
    return {"fg": fg, "fnp": fnp, "np": np, "nn": nn}


def _function(expr: str) -> Callable:
    try:
        fun = eval(compile(expr, "<expression>", "eval"), _namespace())  # noqa: S307 - the user's own code
    except SyntaxError as e:
        raise _UsageError(f"bad expression {expr!r}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - any failure evaluating the expression
        raise _UsageError(f"bad expression {expr!r}: {type(e).__name__}: {e}") from None
    if not callable(fun):
        raise _UsageError(f"bad expression {expr!r}: it must evaluate to a function "
                          f"(e.g. 'lambda x: x ** 2'), got {type(fun).__name__}")
    return fun


def _argument(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise _UsageError(f"bad argument {text!r}: expected a number or a nested list of "
                          "numbers, e.g. 2.0 or \"[2, 3]\"") from None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _UsageError(f"bad argument {text!r}: expected a number or a rectangular "
                          "nested list of numbers") from None
    return float(arr) if arr.ndim == 0 else arr


def _argnums(text: str | None, n_args: int) -> int | tuple[int, ...]:
    if text is None:
        return 0
    try:
        nums = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise _UsageError(f"bad --argnums {text!r}: expected integers like 0 or 0,1") from None
    for k in nums:
        if not 0 <= k < n_args:
            raise _UsageError(f"bad --argnums {text!r}: there are {n_args} argument(s)")
    return nums[0] if len(nums) == 1 else nums


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "\n".join(_show(v) for v in value)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(arr.item()) if arr.dtype.kind in "fc" else str(arr.item())
    return np.array2string(arr, separator=", ") if arr.dtype.kind != "b" else str(arr)


def _cmd_grad(args) -> str:
    fun, values = _function(args.expr), [_argument(a) for a in args.args]
    return _show(fg.grad(fun, argnums=_argnums(args.argnums, len(values)))(*values))


def _cmd_jacobian(args) -> str:
    fun, values = _function(args.expr), [_argument(a) for a in args.args]
    return _show(fg.jacobian(fun, argnums=_argnums(args.argnums, len(values)))(*values))


def _cmd_hessian(args) -> str:
    fun, values = _function(args.expr), [_argument(a) for a in args.args]
    return _show(fg.hessian(fun, argnums=_argnums(args.argnums, len(values)))(*values))


def _cmd_value(args) -> str:
    fun, values = _function(args.expr), [_argument(a) for a in args.args]
    return _show(fun(*values))


def _cmd_jaxpr(args) -> str:
    fun, values = _function(args.expr), [_argument(a) for a in args.args]
    target = fg.grad(fun, argnums=_argnums(args.argnums, len(values))) if args.grad else fun
    closed = fg.make_jaxpr(target)(*values)
    text = closed.pretty(source=False)
    if args.dot:
        written = viz.draw(closed, args.dot, quiet=True)
        note = "" if str(written) == args.dot else " (Graphviz 'dot' not found: DOT text)"
        text += f"\nwrote {written}{note}"
    return text


# -- --safe: a whitelisted expression grammar ------------------------------------------

_SAFE_NODES = (ast.Expression, ast.Lambda, ast.arguments, ast.arg, ast.BinOp, ast.UnaryOp,
               ast.Compare, ast.IfExp, ast.Call, ast.keyword, ast.Attribute, ast.Name,
               ast.Constant, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Load,
               ast.operator, ast.unaryop, ast.cmpop)
_SAFE_UNARY = (ast.UAdd, ast.USub)
# attributes of the lambda's parameters (arrays): no methods that write files or
# reach Python objects (tofile, dump, ctypes, __class__ ...)
_SAFE_ARRAY_ATTRIBUTES = frozenset({"T", "shape", "ndim", "size", "real", "imag", "sum",
                                    "mean", "max", "min", "prod", "reshape", "transpose",
                                    "dot", "ravel", "astype"})


def _safe_default() -> bool:
    try:
        return parse_bool(os.environ.get("FUNGRAD_CLI_SAFE", "0"))
    except ValueError:
        return False


def _safe_roots() -> dict:
    return {"fnp": fnp, "nn": nn}


def _attribute_path(node: ast.AST) -> list[str] | None:
    """["fnp", "linalg", "norm"] for `fnp.linalg.norm`; None if the chain does not
    start at a name."""
    path = []
    while isinstance(node, ast.Attribute):
        path.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(path)]


def _check_safe(expr: str) -> None:
    """Accept only `lambda params: body` built from the safe grammar (see the module
    docstring); raise _UsageError naming the first construct outside it."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise _UsageError(f"bad expression {expr!r}: {e.msg}") from None

    def refuse(node, what):
        col = getattr(node, "col_offset", None)
        where = f" at column {col + 1}" if col is not None else ""
        raise _UsageError(f"--safe: {what}{where} is not allowed in {expr!r}; safe "
                          "expressions are a lambda of its parameters, number and string "
                          "literals, arithmetic, comparisons, indexing and calls of fnp.* "
                          "and nn.* functions (drop --safe to run any Python code)")

    fun = tree.body
    if not isinstance(fun, ast.Lambda):
        refuse(fun, f"a {type(fun).__name__} (it must be one lambda)")
    a = fun.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults:
        refuse(fun, "*args, **kwargs, keyword-only parameters or defaults")
    params = {arg.arg for arg in (*a.posonlyargs, *a.args)}
    roots = _safe_roots()
    for name in params:
        if name in roots or name.startswith("_"):
            refuse(fun, f"the parameter name {name!r}")
    checked_attributes = set()
    for node in ast.walk(fun):
        if not isinstance(node, _SAFE_NODES):
            refuse(node, f"{type(node).__name__}")
        if node is not fun and isinstance(node, ast.Lambda):
            refuse(node, "a nested lambda")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, _SAFE_UNARY):
            refuse(node, f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.Constant) and not isinstance(
                node.value, (int, float, complex, bool, str, type(None))):
            refuse(node, f"a {type(node.value).__name__} literal")
        if isinstance(node, ast.Attribute) and id(node) not in checked_attributes:
            path = _attribute_path(node)
            inner = node.value
            while isinstance(inner, ast.Attribute):
                checked_attributes.add(id(inner))
                inner = inner.value
            if path is None or any(part.startswith("_") for part in path):
                refuse(node, "this attribute")
            if path[0] in params:
                if len(path) != 2 or path[1] not in _SAFE_ARRAY_ATTRIBUTES:
                    refuse(node, f"the attribute .{'.'.join(path[1:])}")
                continue
            if path[0] not in roots:
                refuse(node, f"the name {path[0]!r}")
            # fnp.<name>, nn.<name> or fnp.linalg.<name>, and never a module
            if not (len(path) == 2 or (len(path) == 3 and path[:2] == ["fnp", "linalg"])):
                refuse(node, f"{'.'.join(path)}")
            obj = roots[path[0]]
            for part in path[1:]:
                obj = getattr(obj, part, None)
            if obj is None or isinstance(obj, types.ModuleType):
                refuse(node, f"{'.'.join(path)}")
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Attribute):
            refuse(node, "a call of something other than an fnp./nn. function or an "
                         "array method")
        if isinstance(node, ast.Name):
            if node.id in params:
                continue
            # fnp / nn only as the root of an attribute (checked above), never bare
            parent_ok = any(isinstance(p, ast.Attribute) and p.value is node
                            for p in ast.walk(fun))
            if node.id not in roots or not parent_ok:
                refuse(node, f"the name {node.id!r}")


# -- python -m fungrad cache -------------------------------------------------------------

def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def _cmd_cache(args) -> str:
    folder = fg.config.cache_dir
    limit = fg.config.cache_max_size
    if args.action == "clear":
        count, freed = disk_cache.clear_cache(folder)
        where = os.path.join(folder, disk_cache.KERNELS) if folder else "(no cache folder)"
        return f"removed {count} files ({_megabytes(freed)}) from {where}"
    info = disk_cache.cache_info(folder, limit)
    lines = [f"kernel cache: {info['kernels'] or '(none)'}",
             f"state:        {info['state']}",
             f"kernels:      {info['artefacts']} files, {_megabytes(info['bytes'])} "
             f"(limit {_megabytes(limit)}, FUNGRAD_CACHE_MAX_SIZE)"]
    if info["other_files"]:
        lines.append(f"other files:  {info['other_files']} (older fungrad versions or "
                     "unfinished writes; evicted first when old, or run 'cache clear')")
    return "\n".join(lines)


def _add_cache_command(sub) -> None:
    text = ("show where the on-disk kernel cache is, its size and limit; 'clear' deletes "
            "the cached kernels (FUNGRAD_CACHE_DIR chooses the folder)")
    p = sub.add_parser("cache", help="show or clear the on-disk kernel cache",
                       description=text)
    p.add_argument("action", nargs="?", choices=("info", "clear"), default="info",
                   help="info (default) or clear")
    p.set_defaults(run=_cmd_cache)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fungrad",
        description="fungrad from the shell: gradients, Jacobians and jaxprs of Python "
                    "expressions (fg, fnp, np and nn are in scope). EXPR is Python code "
                    "run with your rights, like python -c; --safe accepts only a lambda "
                    "of arithmetic and fnp/nn calls.",
        epilog='example: python -m fungrad grad "lambda x: (x + 2)**2 + 3" 2.0')
    parser.add_argument("--version", action="version", version=f"fungrad {fg.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, help_text, fn):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("expr", metavar="EXPR",
                       help='a function, e.g. "lambda x: x ** 2": Python code, run with your '
                            'rights unless --safe')
        p.add_argument("--safe", action="store_true", default=_safe_default(),
                       help="accept only a lambda of literals, arithmetic, comparisons, "
                            "indexing and fnp./nn. calls (also FUNGRAD_CLI_SAFE=1)")
        p.add_argument("args", metavar="ARG", nargs="+",
                       help='arguments as Python literals, e.g. 2.0 or "[2, 3]"')
        if name != "value":
            p.add_argument("--argnums", metavar="I[,J]",
                           help="differentiate with respect to these arguments (default 0)")
        p.set_defaults(run=fn)
        return p

    command("grad", "print the gradient of a scalar function", _cmd_grad)
    command("jacobian", "print the Jacobian matrix", _cmd_jacobian)
    command("hessian", "print the Hessian matrix of a scalar function", _cmd_hessian)
    command("value", "print the function's value", _cmd_value)
    p = command("jaxpr", "print the jaxpr (the traced program)", _cmd_jaxpr)
    p.add_argument("--grad", action="store_true", help="the jaxpr of the gradient instead")
    p.add_argument("--dot", metavar="FILE",
                   help="also draw it: FILE.svg/.png/.pdf with Graphviz, or DOT text")
    _add_cache_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "safe", False):
            _check_safe(args.expr)
        print(args.run(args))
    except _UsageError as e:
        print(f"fungrad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line for the shell, not a traceback
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"fungrad {args.command}: {type(e).__name__}: {first_line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
