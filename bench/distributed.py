"""fungrad.distributed on a process LocalCluster against dask-glm, NumPy and fg.jit.

Logistic regression, X of 2e6 x 100 float64 in 40 row chunks (`--large`: 1e7 x
100), generated on the workers and persisted there.  For k = 1 and 2 workers (one
thread each, BLAS at one thread everywhere):

- the first `fungrad.distributed.value_and_grad` call on fresh workers (warm disk
  cache: the client compiled the block program once before the clusters start);
- the warm time per (value, gradient), median of `--repeats`;
- dask-glm's own gradient (`Logistic.pointwise_gradient`) and its loss+gradient
  pair (what its `lbfgs` computes per iteration), on the same cluster;
- a 20-iteration L-BFGS fit: `fungrad.distributed.minimize` and `dask_glm.algorithms.lbfgs`;

and, in this process, hand-written NumPy and `fg.jit(fg.value_and_grad(loss))` on the
whole array.  Relative errors are against the single-process fungrad gradient.

    python bench/distributed.py [--rows 2000000] [--cols 100] [--chunks 40] [--large]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# this file is named like the `distributed` package: keep its folder off the path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def loss(w, X, y):
    import fungrad.numpy as fnp
    z = X @ w
    return fnp.sum(fnp.logaddexp(0.0, z) - y * z)


def numpy_value_and_grad(w, X, y):
    z = X @ w
    p = 1.0 / (1.0 + np.exp(-z))
    return np.sum(np.logaddexp(0.0, z) - y * z), X.T @ (p - y)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=2e6)
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--large", action="store_true", help="1e7 rows")
    ap.add_argument("--no-glm", action="store_true", help="skip dask-glm")
    args = ap.parse_args(argv)
    n = int(1e7 if args.large else args.rows)
    d, chunks = args.cols, args.chunks
    block = -(-n // chunks)

    import dask
    import dask.array as da
    import distributed

    import fungrad as fg
    import fungrad.distributed as fgd

    try:
        from dask_glm import algorithms as glm_algorithms
        from dask_glm.families import Logistic
    except ImportError:
        Logistic = None
    if args.no_glm:
        Logistic = None

    rows = []

    def report(name, k, seconds, note=""):
        rows.append((name, k, seconds, note))
        print(f"{name:44s} k={k!s:2s} {seconds * 1e3:10.1f} ms  {note}", flush=True)

    # the single-process references on the whole array
    rng = np.random.default_rng(0)
    beta = rng.normal(size=d) / np.sqrt(d)
    w = np.zeros(d) + 0.01
    # the client compiles the block program once: the workers' disk cache is warm
    Xb = rng.normal(size=(block, d))
    yb = (rng.random(block) > 0.5).astype(float)
    fg.jit(fg.value_and_grad(loss))(w, Xb, yb)
    del Xb, yb

    results = {}
    for k in [int(s) for s in args.workers.split(",")]:
        with distributed.LocalCluster(n_workers=k, threads_per_worker=1, processes=True,
                                      dashboard_address=None, memory_limit=0) as cluster, \
                distributed.Client(cluster) as client:
            state = da.random.RandomState(0)
            X = state.normal(size=(n, d), chunks=(block, d)).persist()
            noise = state.normal(size=n, chunks=block)
            y = ((X @ beta + noise) > 0).astype(float).persist()
            distributed.wait([X, y])
            vg = fgd.value_and_grad(loss)
            t = time.perf_counter()
            value, g = vg(w, X, y)
            report("fungrad.distributed first call (cold workers)", k,
                   time.perf_counter() - t)
            report("fungrad.distributed value_and_grad", k,
                   _median_time(lambda: vg(w, X, y), args.repeats))
            results[k] = (value, g)
            if Logistic is not None:
                t_glm = _median_time(lambda: dask.compute(
                    Logistic.pointwise_gradient(w, X, y)), args.repeats)
                report("dask-glm Logistic gradient", k, t_glm)
                report("dask-glm loss + gradient", k, _median_time(lambda: dask.compute(
                    Logistic.pointwise_loss(w, X, y), Logistic.pointwise_gradient(w, X, y)),
                    args.repeats))
            t = time.perf_counter()
            fit = fgd.minimize(loss, np.zeros(d), X, y, options={"maxiter": 20})
            report("fungrad.distributed minimize, 20 it L-BFGS", k, time.perf_counter() - t,
                   f"nit={fit.nit}")
            if Logistic is not None:
                t = time.perf_counter()
                glm_beta = glm_algorithms.lbfgs(X, y, regularizer=None, max_iter=20,
                                                family=Logistic)
                report("dask-glm lbfgs, 20 it", k, time.perf_counter() - t,
                       f"|beta - ours| = {np.max(np.abs(glm_beta - fit.x)):.2e}")
            X_local, y_local = dask.compute(X, y)
            del X, y

    # one process, whole arrays
    report("NumPy value and gradient (1 process)", "-",
           _median_time(lambda: numpy_value_and_grad(w, X_local, y_local), args.repeats))
    jitted = fg.jit(fg.value_and_grad(loss))
    jitted(w, X_local, y_local)
    report("fg.jit(value_and_grad) (1 process)", "-",
           _median_time(lambda: jitted(w, X_local, y_local), args.repeats))
    v0, g0 = jitted(w, X_local, y_local)
    for k, (value, g) in results.items():
        print(f"relative error k={k}: value {abs(value - v0) / abs(v0):.1e}, "
              f"gradient {_rel(g, g0):.1e}")

    by = {(name, k): s for name, k, s, _ in rows}
    jit_t = by[("fg.jit(value_and_grad) (1 process)", "-")]
    print("\nratios")
    for k in results:
        ours = by[("fungrad.distributed value_and_grad", k)]
        if ("dask-glm Logistic gradient", k) in by:
            print(f"  k={k}: fungrad / dask-glm gradient = "
                  f"{ours / by[('dask-glm Logistic gradient', k)]:.2f}x, "
                  f"/ dask-glm loss+gradient = {ours / by[('dask-glm loss + gradient', k)]:.2f}x")
        print(f"  k={k}: fungrad.distributed / fg.jit in one process = {ours / jit_t:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
