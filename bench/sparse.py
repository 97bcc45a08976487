"""Sparse derivatives against dense ones (issue 16).

    python bench/sparse.py                   # both problems, fungrad and (if found) JAX
    python bench/sparse.py --pde-n 2000 --hess-n 500 --no-jax
    python bench/sparse.py --jax-python /work/jaxvenv/bin/python --markdown out.md

Problems:
  pde   the tridiagonal Jacobian of a 1-D discretised nonlinear Poisson residual
        r(u) = (u[:-2] - 2 u[1:-1] + u[2:]) / h^2 + u[1:-1]^3 - f, with Dirichlet rows,
        n = 1e4 by default;
  hess  a block-sparse Hessian: 100 blocks of 10 variables coupled inside a block,
        E(x) = sum(tanh(X @ W)^2) + sum(x^4) / 4 with X = x.reshape(-1, 10),
        n = 1e3 by default.

Rows:
  fg.sparse_*     first call (detection + coloring + building the compressed program
                  + one evaluation, scipy already imported), detection and coloring
                  time, the compile of the compressed kernel (tiered execution compiles
                  it at the 4th call), and the steady-state call (median);
  fg dense        fungrad's jacfwd / hessian (jacfwd with chunk_size for the n = 1e4
                  Jacobian, whose full basis would need ~10 GB of intermediates);
  jax.jit dense   jax.jit(jax.jacfwd) / jax.jit(jax.hessian), first call (compile)
                  and steady state, x64, run in a subprocess with the JAX interpreter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# this file is named like the pydata `sparse` package, whose numba extension entry
# point would import it: keep bench/ itself off the path, the repository root on it
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import fungrad as fg  # noqa: E402
import fungrad.numpy as fnp  # noqa: E402

BLOCK = 10


def pde_residual(n, np_mod):
    h = 1.0 / (n + 1)
    source = np.linspace(0.0, 1.0, n)

    def residual(u):
        inner = (u[:-2] - 2 * u[1:-1] + u[2:]) / h ** 2 + u[1:-1] ** 3 - source[1:-1]
        return np_mod.concatenate([u[:1], inner, u[-1:]])
    return residual


def block_energy(n, np_mod):
    w = np.random.default_rng(1).normal(size=(BLOCK, BLOCK)) / np.sqrt(BLOCK)

    def energy(x):
        blocks = x.reshape(-1, BLOCK)
        return np_mod.sum(np_mod.tanh(blocks @ w) ** 2) + np_mod.sum(x ** 4) / 4
    return energy


def _median_time(fn, arg, repeats, min_seconds=0.2):
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds
                                   and len(times) < 200):
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_fungrad(problem, n, dense, dense_chunk):
    make = fg.sparse_jacobian if problem == "pde" else fg.sparse_hessian
    fun = pde_residual(n, fnp) if problem == "pde" else block_energy(n, fnp)
    x = np.random.default_rng(0).random(n)
    make(lambda v: fnp.sum(fnp.sin(v) ** 2) if problem != "pde" else fnp.sin(v))(np.ones(3))
    fg.clear_caches()
    sparse_fn = make(fun)
    t = time.perf_counter()
    result = sparse_fn(x)
    first = time.perf_counter() - t
    plan = sparse_fn.plan(x)
    for _ in range(fg.config.jit_threshold - 1):
        sparse_fn(x)
    t = time.perf_counter()
    sparse_fn(x)                                    # the call that compiles the kernel
    compile_call = time.perf_counter() - t
    steady = _median_time(sparse_fn, x, 50, min_seconds=1.0)
    row = {"problem": problem, "n": n, "colors": plan.n_colors, "mode": plan.mode,
           "nnz": plan.nnz, "detect": plan.detect_seconds, "color": plan.color_seconds,
           "first": first, "compile_call": compile_call, "steady": steady}
    if dense:
        if problem == "pde":
            dense_fn = fg.jacfwd(fun, chunk_size=dense_chunk if n > 3000 else None)
        else:
            dense_fn = fg.hessian(fun)
        t = time.perf_counter()
        reference = dense_fn(x)
        row["dense_first"] = time.perf_counter() - t
        row["dense_steady"] = _median_time(dense_fn, x, 3, min_seconds=0.0) if n <= 3000 \
            else row["dense_first"]
        err = np.abs(result.toarray() - reference).max() / np.abs(reference).max()
        row["max_rel_err"] = float(err)
    return row


JAX_CHILD = r"""
import json, sys, time, statistics
import numpy as np, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, sys.argv[1])
from bench.sparse import pde_residual, block_energy
problem, n, repeats = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(0).random(n)
if problem == "pde":
    f = jax.jit(jax.jacfwd(pde_residual(n, jnp)))
else:
    f = jax.jit(jax.hessian(block_energy(n, jnp)))
t = time.perf_counter(); f(x).block_until_ready(); first = time.perf_counter() - t
times = []
for _ in range(repeats):
    t = time.perf_counter(); f(x).block_until_ready(); times.append(time.perf_counter() - t)
print(json.dumps({"first": first, "steady": statistics.median(times)}))
"""


def bench_jax(python, problem, n):
    repeats = 2 if n > 3000 else 20
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([python, "-c", JAX_CHILD, root, problem, str(n), str(repeats)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(seconds):
    if seconds is None:
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def report(rows, jax_rows):
    lines = ["| problem | n | passes (colors) | detection | coloring | fg sparse first call | "
             "fg sparse compile call | fg sparse steady | fg dense | jax.jit dense first | "
             "jax.jit dense steady | first / jax steady | steady / jax steady | max rel err |",
             "|" + "---|" * 14]
    for row in rows:
        j = jax_rows.get(row["problem"], {})
        js = j.get("steady")
        lines.append(
            f"| {row['problem']} | {row['n']} | {row['colors']} ({row['mode']}) | "
            f"{_fmt(row['detect'])} | {_fmt(row['color'])} | {_fmt(row['first'])} | "
            f"{_fmt(row['compile_call'])} | {_fmt(row['steady'])} | "
            f"{_fmt(row.get('dense_steady'))} | {_fmt(j.get('first'))} | {_fmt(js)} | "
            + (f"1/{js / row['first']:.0f} | 1/{js / row['steady']:.0f} | " if js else "n/a | n/a | ")
            + f"{row.get('max_rel_err', float('nan')):.1e} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pde-n", type=int, default=10_000)
    ap.add_argument("--hess-n", type=int, default=1_000)
    ap.add_argument("--no-dense", action="store_true", help="skip fungrad's dense derivatives")
    ap.add_argument("--dense-chunk", type=int, default=500)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--jax-python", default=os.environ.get("JAX_PYTHON", "/work/jaxvenv/bin/python"))
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    import scipy.sparse  # noqa: F401  (imported once, as in any program using the result)
    rows = [bench_fungrad("pde", args.pde_n, not args.no_dense, args.dense_chunk),
            bench_fungrad("hess", args.hess_n, not args.no_dense, args.dense_chunk)]
    jax_rows = {}
    if not args.no_jax and shutil.which(args.jax_python) or Path(args.jax_python).exists():
        if not args.no_jax:
            jax_rows = {"pde": bench_jax(args.jax_python, "pde", args.pde_n),
                        "hess": bench_jax(args.jax_python, "hess", args.hess_n)}
    load = os.getloadavg()
    text = report(rows, jax_rows)
    text += (f"\n\nLoad average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
             f"{os.cpu_count()} CPUs; numpy {np.__version__}; fungrad {fg.__version__}.")
    print(text)
    print(json.dumps({"fungrad": rows, "jax": jax_rows}, indent=1, default=float))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
