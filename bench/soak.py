#!/usr/bin/env python
"""Soak run: training steps of several programs from several threads, for a while.

    python bench/soak.py --duration 1800            # 30 minutes, 4 threads
    python bench/soak.py --duration 60 --json soak.json

Each thread works through its own endless list of *tasks*: a short training
run (a few steps) of one of five programs, at a batch size and width drawn from
a pool of shapes that opens gradually over the first --arrival fraction of the
run (default 40%), so new shapes keep arriving while the threads work; after
that the pool is fixed and RSS must stay flat.  One
thread runs every fourth task of its list inside `fg.config.override(
"disable_jit", True)` (the interpreter, in that thread only) and another inside
`override("debug_infs", True)`: both must give the same numbers.

Recorded: resident memory (RSS, from /proc/self/statm) over time, tasks done,
errors; at the end every distinct task seen is run again in a single thread and
its numbers compared with what the threads computed (kernels and interpreter
may differ in the last bits, so the comparison is relative, 1e-9).

The report (and --json) gives RSS after warm-up and at the end, its slope over
the second half of the run, the task rate, and the comparison.  The kernel
cache is a fresh private folder unless --cache-dir is given.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fungrad as fg  # noqa: E402
import fungrad.numpy as fnp  # noqa: E402
from fungrad import lax, nn  # noqa: E402
from fungrad.backend import disk_cache, numba_jit  # noqa: E402

STEPS = 4            # training steps per task
LR = 0.05


# -- the programs: (init(rng, batch, width) -> state, step(state) -> state, loss) -----

def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = fnp.tanh(x @ w1 + b1)
    return nn.mse_loss(h @ w2 + b2, y)


_mlp_step = fg.jit(fg.value_and_grad(_mlp_loss))


def _logreg_loss(w, x, y):
    return fnp.mean(nn.binary_cross_entropy_with_logits(x @ w, y))


_logreg_grad = fg.value_and_grad(_logreg_loss)   # eager: interpreter, then a kernel


def _per_example(w, x, y):
    return fg.vmap(fg.grad(lambda w, xi, yi: (fnp.dot(xi, w) - yi) ** 2),
                   in_axes=(None, 0, 0))(w, x, y)


_per_example_jit = fg.jit(_per_example)


def _rnn_loss(w, xs):
    def cell(h, x):
        h = fnp.tanh(w * h + x)
        return h, fnp.sum(h * h)
    _, ys = lax.scan(cell, fnp.zeros(xs.shape[1]), xs)
    return fnp.sum(ys)


_rnn_step = fg.jit(fg.value_and_grad(_rnn_loss))


def _softmax_loss(w, x, labels):
    return fnp.mean(nn.softmax_cross_entropy(x @ w, labels))


_softmax_step = fg.jit(fg.value_and_grad(_softmax_loss))


def _data(seed, batch, width):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((batch, width))


def run_task(task) -> np.ndarray:
    """One short training run; returns every loss and the final parameters, flat."""
    program, batch, width, seed = task
    rng, x = _data(seed, batch, width)
    record = []
    if program == "mlp":
        hidden = 8
        params = [rng.standard_normal((width, hidden)) * 0.3, np.zeros(hidden),
                  rng.standard_normal((hidden, 2)) * 0.3, np.zeros(2)]
        y = rng.standard_normal((batch, 2))
        for _ in range(STEPS):
            loss, grads = _mlp_step(params, x, y)
            params = [p - LR * g for p, g in zip(params, grads)]
            record.append(loss)
        final = params
    elif program == "logreg":
        w = rng.standard_normal(width) * 0.1
        y = (rng.random(batch) > 0.5).astype(np.float64)
        for _ in range(STEPS):
            loss, g = _logreg_grad(w, x, y)
            w = w - LR * g
            record.append(loss)
        final = [w]
    elif program == "per_example":
        w = rng.standard_normal(width) * 0.1
        y = rng.standard_normal(batch)
        for _ in range(STEPS):
            g = _per_example_jit(w, x, y)
            w = w - LR * np.mean(g, axis=0)
            record.append(np.sum(g * g))
        final = [w]
    elif program == "rnn":
        w = np.full(width, 0.5)
        for _ in range(STEPS):
            loss, g = _rnn_step(w, x * 0.3)
            w = w - LR * g
            record.append(loss)
        final = [w]
    elif program == "softmax":
        classes = 3
        w = rng.standard_normal((width, classes)) * 0.1
        labels = nn.one_hot(rng.integers(0, classes, batch), classes)
        for _ in range(STEPS):
            loss, g = _softmax_step(w, x, labels)
            w = w - LR * g
            record.append(loss)
        final = [w]
    else:
        raise ValueError(program)
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in record + final])


PROGRAMS = ["mlp", "logreg", "per_example", "rnn", "softmax"]
SHAPES = [(b, w) for b in (3, 4, 7, 8, 16, 25) for w in (2, 3, 5, 8)]
np.random.default_rng(0).shuffle(SHAPES)
SEEDS = 3


def tasks_of(thread: int, opened, shapes):
    """The endless task list of one thread; `opened()` is how many of `shapes` are
    available now."""
    rng = np.random.default_rng(1000 + thread)
    while True:
        batch, width = shapes[int(rng.integers(opened()))]
        yield (PROGRAMS[rng.integers(len(PROGRAMS))], batch, width, int(rng.integers(SEEDS)))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(index, stop, results, counts, errors, lock, opened, shapes):
    mode = {1: "disable_jit", 2: "debug_infs"}.get(index)
    for n, task in enumerate(tasks_of(index, opened, shapes)):
        if stop.is_set():
            return
        try:
            if mode is not None and n % 4 == 0:
                with fg.config.override(mode, True):
                    out = run_task(task)
            else:
                out = run_task(task)
        except Exception:  # noqa: BLE001 - recorded and reported
            with lock:
                errors.append((index, task, traceback.format_exc()))
            continue
        with lock:
            counts[index] += 1
            seen = results.get(task)
            if seen is None:
                results[task] = out
            elif not np.allclose(seen, out, rtol=1e-9, atol=1e-12):
                errors.append((index, task, "a repeat of this task gave other numbers"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds (default 1800)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--arrival", type=float, default=0.4,
                        help="fraction of the run over which new shapes arrive (default 0.4)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="fraction of the run counted as warm-up (default 0.5)")
    parser.add_argument("--shapes", type=int, default=len(SHAPES),
                        help=f"how many (batch, width) shapes arrive (default {len(SHAPES)}; "
                             "each is a new kernel per program)")
    parser.add_argument("--cache-dir", help="kernel cache folder (default: a fresh one)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    fg.config.update("cache_dir", args.cache_dir or tempfile.mkdtemp(prefix="fungrad-soak-"))

    stop, lock = threading.Event(), threading.Lock()
    results: dict = {}
    counts = [0] * args.threads
    errors: list = []
    start = time.monotonic()

    shapes = SHAPES[:max(1, args.shapes)]

    def opened() -> int:
        fraction = (time.monotonic() - start) / max(args.arrival * args.duration, 1e-9)
        return max(1, min(len(shapes), int(np.ceil(fraction * len(shapes)))))

    threads = [threading.Thread(target=worker, daemon=True,
                                args=(i, stop, results, counts, errors, lock, opened, shapes))
               for i in range(args.threads)]
    samples = [(0.0, rss_mb(), 0, 0, 0)]
    for t in threads:
        t.start()
    while time.monotonic() - start < args.duration:
        time.sleep(min(args.sample, max(0.0, args.duration - (time.monotonic() - start))))
        with lock:
            done = sum(counts)
        samples.append((round(time.monotonic() - start, 1), round(rss_mb(), 1), done,
                        numba_jit.stats["compiled"], numba_jit.stats["cache_loaded"]))
        print(f"[soak] t={samples[-1][0]:7.1f}s rss={samples[-1][1]:7.1f} MB tasks={done} "
              f"distinct={len(results)} kernels compiled={numba_jit.stats['compiled']} "
              f"loaded={numba_jit.stats['cache_loaded']} errors={len(errors)}", flush=True)
    stop.set()
    for t in threads:
        t.join(600)
    wall = time.monotonic() - start

    # the single-threaded reference, in this thread, for every distinct task
    t0 = time.monotonic()
    worst, exact, mismatched = 0.0, 0, []
    for task, got in sorted(results.items()):
        want = run_task(task)
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            mismatched.append(task)
            continue
        exact += bool(np.array_equal(got, want))
        scale = np.maximum(np.abs(want), 1e-12)
        worst = max(worst, float(np.max(np.abs(got - want) / scale)) if got.size else 0.0)
    reference_s = time.monotonic() - t0

    warm = [s for s in samples if s[0] >= args.warmup * wall] or samples[-1:]
    half = [s for s in samples if s[0] >= wall / 2] or samples[-1:]
    slope = 0.0
    if len(half) >= 2:
        ts, rs = np.array([s[0] for s in half]), np.array([s[1] for s in half])
        slope = float(np.polyfit(ts / 60.0, rs, 1)[0])
    report = {
        "duration_s": round(wall, 1), "threads": args.threads, "shapes": len(shapes),
        "tasks": sum(counts), "tasks_per_thread": counts,
        "tasks_per_s": round(sum(counts) / wall, 1), "distinct_tasks": len(results),
        "rss_start_mb": samples[0][1], "rss_after_warmup_mb": warm[0][1],
        "rss_max_after_warmup_mb": max(s[1] for s in warm), "rss_end_mb": samples[-1][1],
        "rss_slope_second_half_mb_per_min": round(slope, 3),
        "errors": len(errors), "mismatched_vs_single_thread": len(mismatched),
        "bit_identical_vs_single_thread": exact, "max_rel_diff": worst,
        "reference_s": round(reference_s, 1),
        "kernels_compiled": numba_jit.stats["compiled"],
        "kernels_loaded": numba_jit.stats["cache_loaded"],
        "kernel_fallbacks": numba_jit.stats["fallbacks"],
        "cache_files_written": disk_cache.stats["written"],
        "cache_files_evicted": disk_cache.stats["evicted"],
        "samples": samples,
    }
    for index, task, text in errors[:5]:
        print(f"[soak] error in thread {index} on {task}:\n{text}", file=sys.stderr)
    for task in mismatched[:5]:
        print(f"[soak] differs from the single-threaded run: {task}", file=sys.stderr)
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if errors or mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
