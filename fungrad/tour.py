"""A tour of fungrad through the PyTorch autograd tutorials it was built from.

    python -m fungrad.tour [--out DIR]

Every computation of the seed notebooks (PyTorch's autograd tutorial and four
course notebooks based on it) is redone in functional style: gradients are
returned by `grad` / `vjp` / `jacobian` instead of being stored in `.grad`.
Each result is printed beside what the PyTorch notebook printed.  Pictures of
the loss and of its gradient are written to DIR (default ./fungrad-tour-output):
SVG when Graphviz's `dot` is installed, DOT text otherwise.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import fungrad as fg
import fungrad.numpy as fnp
from fungrad import nn, viz
from fungrad.tracing import Tracer

__all__ = ["main"]

_WIDTH = 100
_checks: list[tuple[str, bool]] = []


def _fmt(a) -> str:
    return np.array2string(np.asarray(a), precision=4, suppress_small=True)


def _torch(a, suffix: str = "") -> str:
    """An integer-valued array the way PyTorch printed it: tensor([[4., 2.], ...])."""
    body = np.array2string(np.asarray(a), separator=", ",
                           formatter={"float_kind": lambda v: f"{v:.0f}."})
    body = body.replace("\n", "\n       ")
    return f"tensor({body}{suffix})"


def _section(title: str) -> None:
    print()
    print("=" * _WIDTH)
    print(title)
    print("=" * _WIDTH)


def _code(text: str) -> None:
    for line in text.strip("\n").splitlines():
        print("  >>> " + line if not line.startswith(" ") else "  ... " + line)


def _beside(ours: str, theirs: str, left: str = "fungrad", right: str = "PyTorch printed") -> None:
    """Two columns: fungrad's result and the PyTorch notebook's output."""
    a, b = ours.splitlines() or [""], theirs.splitlines() or [""]
    width = max(max(len(s) for s in a), len(left)) + 4
    print(f"  {left:<{width}}{right}")
    print(f"  {'-' * len(left):<{width}}{'-' * len(right)}")
    for i in range(max(len(a), len(b))):
        print(f"  {a[i] if i < len(a) else '':<{width}}{b[i] if i < len(b) else ''}")


def _check(what: str, ok: bool) -> None:
    _checks.append((what, bool(ok)))
    print(f"  [{'ok' if ok else 'MISMATCH'}] {what}")


# The first notebook printed its random w and b (4 decimals); with those values
# fungrad reproduces the printed loss and gradients.
_W_PRINTED = np.array([[-0.2893, 0.5604, -0.5727],
                       [-0.6208, 0.3335, 0.1034],
                       [1.4042, -0.4423, 0.0864],
                       [-0.8411, 0.8256, 1.3893],
                       [1.3486, -0.7275, 0.2530]])
_B_PRINTED = np.array([1.0191, -2.4529, 1.1018])


def bce_model(out_dir: Path) -> None:
    _section("1. The model and its loss: z = x w + b, loss = BCE-with-logits(z, y)")
    x, y = np.ones(5), np.zeros(3)
    w, b = _W_PRINTED, _B_PRINTED

    def loss(w, b):
        z = fnp.matmul(x, w) + b
        return nn.binary_cross_entropy_with_logits(z, y)

    _code("""
x, y = np.ones(5), np.zeros(3)
def loss(w, b):
    z = fnp.matmul(x, w) + b
    return nn.binary_cross_entropy_with_logits(z, y)
loss_value = loss(w, b)
grad_w, grad_b = fg.grad(loss, argnums=(0, 1))(w, b)""")
    z = x @ w + b
    value = float(loss(w, b))
    _beside(f"z: {_fmt(z)}\nloss: {value:.10f}",
            "z: tensor([ 2.0207, -1.9032,  2.3613], grad_fn=<AddBackward0>)\n"
            "loss: 1.5785146951675415")
    _check("loss equals PyTorch's 1.5785 (with the notebook's printed w, b)",
           abs(value - 1.5785146951675415) < 1e-3)
    grad_w, grad_b = fg.grad(loss, argnums=(0, 1))(w, b)
    print()
    _beside(f"Gradient of w:\n{_fmt(grad_w)}\nGradient of b:\n{_fmt(grad_b)}",
            "Gradient of w: tensor([[0.2943, 0.0432, 0.3046],\n"
            "        [0.2943, 0.0432, 0.3046],\n        ... (5 equal rows)\n"
            "Gradient of b: tensor([0.2943, 0.0432, 0.3046])")
    _check("gradients equal PyTorch's printed [0.2943, 0.0432, 0.3046]",
           np.allclose(grad_b, [0.2943, 0.0432, 0.3046], atol=1e-4))

    print("\n  The other notebooks drew w, b at random; here a fixed seed, checked against")
    print("  the closed form d loss / d b = (sigmoid(z) - y) / 3, d loss / d w = outer(x, that):")
    rng = np.random.default_rng(0)
    w_r, b_r = rng.standard_normal((5, 3)), rng.standard_normal(3)
    gw, gb = fg.grad(loss, argnums=(0, 1))(w_r, b_r)
    closed = (1 / (1 + np.exp(-(x @ w_r + b_r))) - y) / 3
    _beside(f"grad b: {_fmt(gb)}", f"closed form: {_fmt(closed)}", right="closed form")
    _check("random w, b: gradients equal the closed form",
           np.allclose(gb, closed, rtol=1e-12) and np.allclose(gw, np.outer(x, closed)))

    _section("2. grad_fn inspection -> make_jaxpr: the program and its derivative, as data")
    _code("fg.make_jaxpr(loss)(w, b)")
    loss_jaxpr = fg.make_jaxpr(loss)(w, b)
    print(loss_jaxpr)
    print("\n  PyTorch printed only the last node of the graph:")
    print("    Gradient function for z = <AddBackward0 object at 0x12b793d90>")
    print("    Gradient function for loss = <BinaryCrossEntropyWithLogitsBackward0 object ...>")
    print("\n  The gradient is a program too (simplified; what `grad` runs):")
    _code("fg.make_jaxpr(fg.grad(loss, argnums=(0, 1)))(w, b)")
    grad_jaxpr = fg.make_jaxpr(fg.grad(loss, argnums=(0, 1)))(w, b)
    print(grad_jaxpr)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    (out_dir / "loss.jaxpr.txt").write_text(str(loss_jaxpr) + "\n")
    (out_dir / "loss_grad.jaxpr.txt").write_text(str(grad_jaxpr) + "\n")
    written += [out_dir / "loss.jaxpr.txt", out_dir / "loss_grad.jaxpr.txt"]
    written.append(viz.draw(loss_jaxpr, out_dir / "loss.svg", quiet=True, arg_names=["w", "b"],
                            out_names=["loss"], title="loss(w, b)"))
    written.append(viz.draw_vjp(loss, w, b, path=out_dir / "loss_grad.svg", quiet=True,
                                title="gradient of loss(w, b): forward pass and pullback"))
    print()
    if not viz.have_graphviz():
        print("  Graphviz's `dot` is not installed, so the pictures are DOT text; render them with")
        print("  `dot -Tsvg FILE.dot -o FILE.svg` after `apt-get install graphviz` (or brew/conda).")
    for path in written:
        print(f"  wrote {path}")


def no_grad() -> None:
    _section("3. no_grad / detach -> nothing to switch off: differentiate only what you ask for")
    x = np.ones(5)
    w, b = _W_PRINTED, _B_PRINTED
    _code("""
z = fnp.matmul(x, w) + b            # a plain NumPy array: no requires_grad, no graph
g = fg.grad(lambda w: fnp.sum(fg.stop_gradient(fnp.matmul(x, w) + b)))(w)""")
    z = fnp.matmul(x, w) + b
    g = fg.grad(lambda w: fnp.sum(fg.stop_gradient(fnp.matmul(x, w) + b)))(w)
    _beside(f"type(z): {type(z).__name__}\nstop_gradient grad of w:\n{_fmt(g)}",
            "True    (z.requires_grad)\nFalse   (under torch.no_grad())\n"
            "False   (z.detach().requires_grad)")
    _check("stop_gradient blocks the gradient (all zeros)", np.all(g == 0))


def jacobian_products() -> None:
    _section("4. backward(ones_like(out)) -> vjp: a vector-Jacobian product, as a function")
    _code("""
out, pullback = fg.vjp(lambda inp: (inp + 1) ** 2, np.eye(5))
(first,) = pullback(np.ones_like(out))""")
    out, pullback = fg.vjp(lambda inp: (inp + 1) ** 2, np.eye(5))
    (first,) = pullback(np.ones_like(out))
    torch_first = np.full((5, 5), 2.0) + 2 * np.eye(5)
    _beside(f"out\n{_fmt(out)}\nFirst call\n{_fmt(first)}",
            f"out\n{_torch(np.full((5, 5), 1.0) + 3 * np.eye(5), ', grad_fn=<PowBackward0>')}"
            f"\nFirst call\n{_torch(torch_first)}")
    _check("first call: 4 on the diagonal, 2 elsewhere", np.array_equal(first, torch_first))
    print("\n  retain_graph=True + a second backward() accumulates into .grad; in fungrad the")
    print("  pullback can be called again (no forward recomputation) and you add if you want:")
    _code("(second,) = pullback(np.ones_like(out))\nfirst + second")
    (second,) = pullback(np.ones_like(out))
    _beside(f"Second call (summed)\n{_fmt(first + second)}",
            f"Second call\n{_torch(2 * torch_first)}")
    _check("summed: 8 on the diagonal, 4 elsewhere", np.array_equal(first + second,
                                                                    2 * torch_first))
    print("\n  inp.grad.zero_() has no counterpart: nothing accumulates, a call is a fresh result.")
    (again,) = pullback(np.ones_like(out))
    _beside(f"Call after 'zeroing'\n{_fmt(again)}", f"Call after zeroing gradients\n"
            f"{_torch(torch_first)}")
    _check("calling once more gives the 4/2 matrix again", np.array_equal(again, torch_first))

    print("\n  The tutorial's variant: eye(4, 5), transposed output.")
    _code("""
out, pullback = fg.vjp(lambda inp: ((inp + 1) ** 2).T, np.eye(4, 5))
(first,) = pullback(np.ones_like(out))""")
    out, pullback = fg.vjp(lambda inp: ((inp + 1) ** 2).T, np.eye(4, 5))
    (first,) = pullback(np.ones_like(out))
    (second,) = pullback(np.ones_like(out))
    expected = 2.0 + 2.0 * np.eye(4, 5)
    _beside(f"First call\n{_fmt(first)}\nSecond call (summed)\n{_fmt(first + second)}",
            f"First call\n{_torch(expected)}\nSecond call\n{_torch(2 * expected)}")
    _check("eye(4, 5) variant: 4/2 then 8/4", np.array_equal(first, expected)
           and np.array_equal(first + second, 2 * expected))


def scalar_examples() -> None:
    _section("5. Scalars: z = (x + 2)^2 + 3 at x = 2")
    _code("fg.value_and_grad(lambda x: (x + 2) ** 2 + 3)(2.0)")
    value, g = fg.value_and_grad(lambda x: (x + 2) ** 2 + 3)(2.0)
    _beside(f"{value}\n{g}", "tensor([19.], grad_fn=<AddBackward0>)\ntensor([8.])")
    _check("dz/dx = 2 (x + 2) = 8.0", g == 8.0)

    _section("6. Matrices: out = mean(y - x @ w), x 10x20, y 10x5, w 20x5")
    rng = np.random.default_rng(0)
    x, y, w = rng.standard_normal((10, 20)), rng.standard_normal((10, 5)), \
        rng.standard_normal((20, 5))
    _code("gx, gy, gw = fg.grad(lambda x, y, w: fnp.mean(y - x @ w), argnums=(0, 1, 2))(x, y, w)")
    gx, gy, gw = fg.grad(lambda x, y, w: fnp.mean(y - x @ w), argnums=(0, 1, 2))(x, y, w)
    _beside(f"gy (10x5), first rows:\n{_fmt(gy[:2])}\ngx shape {gx.shape}, gw shape {gw.shape}",
            "y.grad\ntensor([[0.0200, 0.0200, 0.0200, 0.0200, 0.0200],\n        ...\n"
            "x.grad: 10x20, w.grad: 20x5")
    _check("gradient of y is 1/50 = 0.02 everywhere", np.allclose(gy, 0.02))
    _check("gx = -(row sums of w)/50, gw = -(column sums of x)/50",
           np.allclose(gx, np.tile(-w.sum(axis=1) / 50, (10, 1)))
           and np.allclose(gw, np.tile(-x.sum(axis=0)[:, None] / 50, (1, 5))))

    _section("7. A vector output: n = (m0^2, m1^3), backward(ones) -> vjp with ones")
    _code("""
n, pullback = fg.vjp(lambda m: fnp.stack([m[0, 0] ** 2, m[0, 1] ** 3])[None], np.array([[2.0, 3.0]]))
pullback(np.ones((1, 2)))""")
    n, pullback = fg.vjp(lambda m: fnp.stack([m[0, 0] ** 2, m[0, 1] ** 3])[None],
                         np.array([[2.0, 3.0]]))
    (gm,) = pullback(np.ones((1, 2)))
    _beside(f"{_fmt(n)}\n{_fmt(gm)}", "tensor([[ 4., 27.]], grad_fn=<CopySlices>)\n"
            "tensor([[ 4., 27.]])")
    _check("(2 m0, 3 m1^2) = (4, 27)", np.array_equal(gm, [[4.0, 27.0]]))

    _section("8. Calling backward twice: y = x*2 + x^2 + 3 at x = 3")
    _code("""
g = fg.grad(lambda x: x * 2 + x ** 2 + 3)
g(3.0), g(3.0) + g(3.0)""")
    g = fg.grad(lambda x: x * 2 + x ** 2 + 3)
    first, accumulated = g(3.0), g(3.0) + g(3.0)
    _beside(f"{first}\n{accumulated}", "tensor([8.])\ntensor([16.])   (accumulated)")
    _check("8.0, and 16.0 when two results are added", first == 8.0 and accumulated == 16.0)


def jacobian_exercise() -> None:
    _section("9. The exercise: k = (x0^2 + 3 x1, 2 x0 + x1^2) at x = (2, 3); its Jacobian")
    x = np.array([2.0, 3.0])

    def k_of(x):
        return fnp.stack([x[0] ** 2 + 3 * x[1], x[1] ** 2 + 2 * x[0]])

    _code("""
def k_of(x):
    return fnp.stack([x[0] ** 2 + 3 * x[1], x[1] ** 2 + 2 * x[0]])
fg.jacobian(k_of)(np.array([2.0, 3.0]))""")
    j = fg.jacobian(k_of)(x)
    torch_j = "tensor([[4., 3.],\n        [2., 6.]])"
    _beside(_fmt(j), torch_j)
    _check("jacobian is [[4, 3], [2, 6]]", np.array_equal(j, [[4.0, 3.0], [2.0, 6.0]]))
    print("\n  Row by row, as the notebook does with backward([1, 0]) and backward([0, 1]):")
    _code("""
k, pullback = fg.vjp(k_of, x)
rows = [pullback(np.array([1.0, 0.0]))[0], pullback(np.array([0.0, 1.0]))[0]]""")
    k, pullback = fg.vjp(k_of, x)
    rows = np.stack([pullback(np.array([1.0, 0.0]))[0], pullback(np.array([0.0, 1.0]))[0]])
    _beside(f"k = {_fmt(k)}\n{_fmt(rows[0])}\n{_fmt(rows[1])}",
            "tensor([13., 13.], grad_fn=<CopySlices>)\ntensor([4., 3.])\ntensor([2., 6.])")
    _check("rows from the pullback equal the jacobian", np.array_equal(rows, j))
    try:
        has_setitem = hasattr(Tracer, "__setitem__")
    except ImportError:  # pragma: no cover
        has_setitem = False
    if has_setitem:
        def k_assigned(x):
            k = fnp.zeros(2)
            k[0] = x[0] ** 2 + 3 * x[1]
            k[1] = x[1] ** 2 + 2 * x[0]
            return k
        print("\n  With item assignment, written like the notebook (k is created inside the")
        print("  function with fnp.zeros, so the assignment is recorded):")
        _code("""
def k_assigned(x):
    k = fnp.zeros(2)
    k[0] = x[0] ** 2 + 3 * x[1]
    k[1] = x[1] ** 2 + 2 * x[0]
    return k
fg.jacobian(k_assigned)(x)""")
        try:
            j_assigned = fg.jacobian(k_assigned)(x)
        except Exception as e:  # noqa: BLE001 - shown to the reader
            print(f"  (item assignment is not supported here: {type(e).__name__}: {e})")
        else:
            _beside(_fmt(j_assigned), torch_j)
            _check("k[0] = ...; k[1] = ... gives the same jacobian",
                   np.array_equal(j_assigned, j))
    else:
        print("\n  (`k[0] = ...` item assignment on traced arrays is not available in this build;")
        print("   build the output with fnp.stack as above.)")


def hand_derivation() -> None:
    _section("10. The hand derivation: z = w x + b, y = sigmoid(z), L = (y - t)^2 / 2")
    w, b, x, t = 0.7, -0.3, 1.5, 0.2

    def loss(w, b):
        y = nn.sigmoid(w * x + b)
        return 0.5 * (y - t) ** 2

    y = 1 / (1 + np.exp(-(w * x + b)))
    y_bar = y - t
    z_bar = y_bar * y * (1 - y)
    by_hand = (z_bar * x, z_bar)
    _code("""
def loss(w, b):
    y = nn.sigmoid(w * x + b)
    return 0.5 * (y - t) ** 2
fg.grad(loss, argnums=(0, 1))(w, b)      # w, b, x, t = 0.7, -0.3, 1.5, 0.2""")
    ours = fg.grad(loss, argnums=(0, 1))(w, b)
    _beside(f"w_bar = {float(ours[0]):.12f}\nb_bar = {float(ours[1]):.12f}",
            f"w_bar = z_bar x = {by_hand[0]:.12f}\nb_bar = z_bar   = {by_hand[1]:.12f}",
            right="by hand: y_bar = y - t, z_bar = y_bar f'(z)")
    _check("grad equals the hand derivation", np.allclose(ours, by_hand, rtol=1e-12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fungrad.tour",
        description="Redo the PyTorch autograd tutorial computations with fungrad and print "
                    "each result beside what PyTorch printed.")
    parser.add_argument("--out", default="fungrad-tour-output", type=Path,
                        help="directory for the graph pictures (default: %(default)s)")
    args = parser.parse_args(argv)
    np.set_printoptions(precision=4, suppress=True)
    start = time.perf_counter()
    _checks.clear()
    print("fungrad tour: the PyTorch autograd tutorials, functionally")
    print("(gradients are return values; nothing is stored on arrays, nothing accumulates)")
    bce_model(args.out)
    no_grad()
    jacobian_products()
    scalar_examples()
    jacobian_exercise()
    hand_derivation()
    failed = [what for what, ok in _checks if not ok]
    _section(f"Summary: {len(_checks) - len(failed)} of {len(_checks)} checks agree "
             f"({time.perf_counter() - start:.2f} s)")
    for what in failed:
        print(f"  MISMATCH: {what}")
    print(f"  Pictures and jaxprs are in {args.out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
