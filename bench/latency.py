"""Latency rows of issue 11: what a user waits for before fungrad is fast.

(a) cold compile: a fresh process with an empty kernel cache, the first call of
    `jit(grad(loss))` for W1, W2 and an RNN step (optionally jax.jit's, same run);
(b) many small programs: 300 distinct small gradient programs (seeded random
    compositions and shapes), each called 5 times, eager: total time against HIPS
    autograd, JAX eager and torch eager (`--ref` a python that has all three);
(c) an eager training loop of 200 steps of a 20-64-3 tanh MLP (`grad` without
    `jit`): total time, median step and the slowest single step.

    python bench/latency.py                    # both rows, fungrad alone
    python bench/latency.py --jax /work/jaxvenv/bin/python   # JAX reference too
    python bench/latency.py --row c --steps 200

Each measurement runs in its own fresh process with its own empty
FUNGRAD_CACHE_DIR (a temporary folder, removed after), so nothing is warm.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The child programs: each prints one JSON line.  `ops` is fungrad.numpy or jax.numpy.
_COMMON = r'''
import json, sys, time
t_start = time.perf_counter()
import numpy as np
SYSTEM = sys.argv[1]
if SYSTEM == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as ops
    grad, jit, value_and_grad = jax.grad, jax.jit, jax.value_and_grad
    def block(r):
        return jax.block_until_ready(r)
else:
    import fungrad as fg
    import fungrad.numpy as ops
    grad, jit, value_and_grad = fg.grad, fg.jit, fg.value_and_grad
    def block(r):
        return r
rng = np.random.default_rng(0)
'''

_COLD = _COMMON + r'''
def w1(w, b, x, y):
    z = x @ w + b
    return ops.mean(ops.maximum(z, 0) - z * y + ops.log1p(ops.exp(-ops.abs(z))))
def w2(W1, b1, W2, b2, x, y):
    h = ops.tanh(x @ W1 + b1)
    logits = h @ W2 + b2
    m = ops.max(logits, axis=1, keepdims=True)
    lse = m[:, 0] + ops.log(ops.sum(ops.exp(logits - m), axis=1))
    return ops.mean(lse - ops.sum(logits * y, axis=1))
def rnn(Wx, Wh, b, h, xs):
    # one step of an Elman RNN unrolled over 8 inputs, squared-norm loss
    for t in range(xs.shape[0]):
        h = ops.tanh(xs[t] @ Wx + h @ Wh + b)
    return ops.sum(h * h)
which = sys.argv[2]
if which == "W1":
    f, args = w1, (rng.normal(size=(5, 3)), rng.normal(size=3), np.ones(5), np.eye(3)[0])
    argnums = (0, 1)
elif which == "W2":
    x = rng.normal(size=(128, 784)); y = np.eye(10)[rng.integers(0, 10, 128)]
    f, args = w2, (rng.normal(size=(784, 256)) * 0.05, np.zeros(256),
                   rng.normal(size=(256, 10)) * 0.05, np.zeros(10), x, y)
    argnums = (0, 1, 2, 3)
else:
    f, args = rnn, (rng.normal(size=(16, 32)) * 0.2, rng.normal(size=(32, 32)) * 0.2,
                    np.zeros(32), np.zeros(32), rng.normal(size=(8, 16)))
    argnums = (0, 1, 2)
t_import = time.perf_counter()
step = jit(grad(f, argnums=argnums))
t0 = time.perf_counter()
block(step(*args))
t1 = time.perf_counter()
block(step(*args))
t2 = time.perf_counter()
extra = {}
if SYSTEM != "jax":
    # the first calls ran in the interpreter while the kernel compiled in the
    # background: when is it ready, and what does a call cost then
    while fg.config.kernels.pending:
        block(step(*args))
        time.sleep(0.001)
    t3 = time.perf_counter()
    for _ in range(3):
        block(step(*args))
    t4 = time.perf_counter()
    block(step(*args))
    extra = {"kernel_ready_s": t3 - t0, "compiled_call_s": time.perf_counter() - t4,
             "compiled": fg.config.kernels.compiled}
print(json.dumps({"import_s": t_import - t_start, "first_s": t1 - t0, "second_s": t2 - t1, **extra}))
'''

_LOOP = _COMMON + r'''
steps = int(sys.argv[2])
def loss(params, x, y):
    W1, b1, W2, b2 = params
    h = ops.tanh(x @ W1 + b1)
    out = h @ W2 + b2
    return ops.mean((out - y) ** 2)
params = [rng.normal(size=(20, 64)) * 0.3, np.zeros(64), rng.normal(size=(64, 3)) * 0.3, np.zeros(3)]
x = rng.normal(size=(32, 20)); y = rng.normal(size=(32, 3))
vg = value_and_grad(loss)
times = []
t_all = time.perf_counter()
for i in range(steps):
    t0 = time.perf_counter()
    value, grads = vg(params, x, y)
    block(grads)
    params = [p - 0.05 * g for p, g in zip(params, grads)]
    times.append(time.perf_counter() - t0)
total = time.perf_counter() - t_all
times_sorted = sorted(times)
median = times_sorted[len(times) // 2]
slow = max(times)
later = max(times[1:])
print(json.dumps({"total_s": total, "median_ms": median * 1e3, "slowest_ms": slow * 1e3,
                  "slowest_step": times.index(slow), "slowest_over_median": slow / median,
                  "first_ms": times[0] * 1e3, "slowest_after_first_ms": later * 1e3,
                  "after_first_over_median": later / median, "final_loss": float(value)}))
'''

# (b) many small programs: distinct gradient programs drawn from a seeded generator (as
# hypothesis or a project's own gradient tests make them), each called 5 times.  Every
# system runs the same Python function through its own namespace `O`; the checksum of
# all gradients must agree between systems.
_MANY = r'''
import json, sys, time
t_start = time.perf_counter()
import numpy as np
SYSTEM, N, CALLS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if SYSTEM == "fungrad":
    import fungrad as fg, fungrad.numpy as O
    make_grad = fg.grad
elif SYSTEM == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as O
    def make_grad(f):
        g = jax.grad(f)
        return lambda x: np.asarray(g(x))
elif SYSTEM == "autograd":
    import autograd, autograd.numpy as O
    make_grad = autograd.grad
else:
    import torch
    torch.set_num_threads(1)
    class O:
        sin, cos, tanh, exp, log1p = torch.sin, torch.cos, torch.tanh, torch.exp, torch.log1p
        @staticmethod
        def sum(y, axis=None, keepdims=False):
            return torch.sum(y) if axis is None else torch.sum(y, dim=axis, keepdim=keepdims)
        @staticmethod
        def mean(y):
            return torch.mean(y)
    def make_grad(f):
        def g(x):
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            f(t).backward()
            return t.grad.numpy()
        return g
UNARY = ["sin", "cos", "tanh", "exp", "log1p", "sq", "mul", "addc", "logistic", "rowsum"]
def program(spec):
    seq, reduce = spec
    def f(x):
        y = x
        for op, c in seq:
            if op == "sin": y = O.sin(y * c)
            elif op == "cos": y = O.cos(y) * c
            elif op == "tanh": y = O.tanh(y + c)
            elif op == "exp": y = O.exp(y * (c * 0.25))
            elif op == "log1p": y = O.log1p(y * y)
            elif op == "sq": y = y * y * c
            elif op == "mul": y = y * x
            elif op == "addc": y = y + c
            elif op == "logistic": y = 1.0 / (1.0 + O.exp(-y))
            else: y = y + O.sum(y, axis=-1, keepdims=True) * (c * 0.1)
        return O.sum(y) if reduce else O.mean(y)
    return f
rng = np.random.default_rng(20261202)
specs, inputs = [], []
for k in range(N):
    ndim = int(rng.integers(1, 3))
    shape = tuple(int(n) for n in rng.integers(1, 7, size=ndim))
    seq = [(UNARY[int(rng.integers(len(UNARY)))], round(float(rng.uniform(0.2, 1.2)), 3))
           for _ in range(int(rng.integers(2, 7)))]
    specs.append((seq, bool(rng.integers(2))))
    inputs.append(rng.uniform(-1, 1, size=shape))
t_ready = time.perf_counter()
checksum, slowest = 0.0, 0.0
for spec, x in zip(specs, inputs):
    g = make_grad(program(spec))
    for _ in range(CALLS):
        t0 = time.perf_counter()
        r = np.asarray(g(x))
        slowest = max(slowest, time.perf_counter() - t0)
    checksum += float(np.sum(r))
total = time.perf_counter() - t_ready
extra = {}
if SYSTEM == "fungrad":
    extra = {"compiled": fg.config.kernels.compiled, "pending": fg.config.kernels.pending}
print(json.dumps({"import_s": t_ready - t_start, "total_s": total, "slowest_ms": slowest * 1e3,
                  "checksum": checksum, **extra}))
'''


def _child(python: str, code: str, *argv: str) -> dict:
    cache = tempfile.mkdtemp(prefix="fungrad-bench-latency-")
    env = dict(os.environ, FUNGRAD_CACHE_DIR=cache, PYTHONPATH=ROOT, OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        out = subprocess.run([python, "-c", code, *argv], env=env, capture_output=True,
                             text=True, timeout=600)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if out.returncode:
        raise RuntimeError(f"{python} {argv}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--row", choices=["a", "b", "c", "both", "all"], default="both",
                   help="both: a and c; all: a, b and c")
    p.add_argument("--programs", type=int, default=300, help="row (b): how many programs")
    p.add_argument("--ref", default=None,
                   help="row (b): a python with jax, autograd and torch (default: --jax)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--runs", type=int, default=1, help="fresh processes per cell")
    p.add_argument("--jax", default=None, help="a python with jax installed, for the reference")
    args = p.parse_args(argv)
    systems = [("fungrad", sys.executable)] + ([("jax", args.jax)] if args.jax else [])
    if args.row in ("a", "both", "all"):
        print("(a) cold compile: first call of jit(grad(loss)), fresh process, empty cache")
        for which in ("W1", "W2", "RNN"):
            for name, python in systems:
                for _ in range(args.runs):
                    r = _child(python, _COLD, name, which)
                    more = ""
                    if "kernel_ready_s" in r:
                        more = (f"   kernel ready after {r['kernel_ready_s']:6.2f} s, then "
                                f"{r['compiled_call_s'] * 1e3:.3f} ms a call")
                    print(f"  {which:4s} {name:8s} first call {r['first_s'] * 1e3:8.1f} ms   "
                          f"second {r['second_s'] * 1e3:8.2f} ms{more}")
    if args.row in ("b", "all"):
        ref = args.ref or args.jax
        print(f"(b) many small programs: {args.programs} distinct gradient programs, 5 calls "
              "each, eager, fresh process, empty cache")
        rows = [("fungrad", sys.executable)] + (
            [(n, ref) for n in ("autograd", "jax", "torch")] if ref else [])
        results = {}
        for name, python in rows:
            for _ in range(args.runs):
                r = results[name] = _child(python, _MANY, name, str(args.programs), "5")
                more = (f"   kernels compiled {r['compiled']}, pending at the end "
                        f"{r['pending']}") if "compiled" in r else ""
                print(f"  {name:8s} total {r['total_s']:7.2f} s   slowest call "
                      f"{r['slowest_ms']:8.1f} ms   import {r['import_s']:5.2f} s{more}")
        if "autograd" in results:
            base = results["autograd"]
            for name, r in results.items():
                agree = abs(r["checksum"] - base["checksum"]) <= 1e-9 * max(1.0, abs(base["checksum"]))
                print(f"  {name:8s} {r['total_s'] / base['total_s']:6.2f}x autograd's total"
                      f"{'' if agree else '   CHECKSUM DIFFERS: ' + repr(r['checksum'])}")
    if args.row in ("c", "both", "all"):
        print(f"(c) eager training loop: {args.steps} steps of value_and_grad, 20-64-3 tanh MLP")
        for name, python in systems:
            for _ in range(args.runs):
                r = _child(python, _LOOP, name, str(args.steps))
                print(f"  {name:8s} total {r['total_s']:7.3f} s   median step "
                      f"{r['median_ms']:7.3f} ms   slowest {r['slowest_ms']:8.2f} ms (step "
                      f"{r['slowest_step']})   slowest/median {r['slowest_over_median']:7.1f}   "
                      f"first step {r['first_ms']:7.1f} ms, slowest after it "
                      f"{r['slowest_after_first_ms']:7.2f} ms "
                      f"({r['after_first_over_median']:.1f}x median)")


if __name__ == "__main__":
    main()
