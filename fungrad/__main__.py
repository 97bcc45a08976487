"""The `python -m fungrad` (or `fungrad`) command line.

    python -m fungrad grad "lambda x: (x + 2)**2 + 3" 2.0            # 8.0
    python -m fungrad jacobian "lambda x: fnp.stack([x[0]**2 + 3*x[1], x[1]**2 + 2*x[0]])" "[2, 3]"
    python -m fungrad hessian "lambda x: fnp.sum(x ** 3)" "[1, 2]"    # [[6, 0], [0, 12]]
    python -m fungrad jaxpr "lambda x: fnp.sin(x) * x" 1.0 --grad --dot sin.svg
    python -m fungrad --version

Expressions are Python, evaluated with `fg` (fungrad), `fnp` (fungrad.numpy),
`np` (numpy) and `nn` (fungrad.nn) in scope; arguments are Python literals
(numbers, nested lists), passed as float64.
"""
from __future__ import annotations

import argparse
import ast
import sys
from typing import Any, Callable, Sequence

import numpy as np

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn, viz

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fungrad",
        description="fungrad from the shell: gradients, Jacobians and jaxprs of Python "
                    "expressions (fg, fnp, np and nn are in scope).",
        epilog='example: python -m fungrad grad "lambda x: (x + 2)**2 + 3" 2.0')
    parser.add_argument("--version", action="version", version=f"fungrad {fg.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, help_text, fn):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("expr", metavar="EXPR", help='a function, e.g. "lambda x: x ** 2"')
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
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
