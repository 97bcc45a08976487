"""Regenerate tests/api/complex_reference.json with JAX (x64):

    /path/to/jax/python tests/api/make_complex_reference.py

Values, gradients (real outputs), holomorphic jacobians, jvp and vjp of the programs
in complex_programs.py at fixed random points; complex numbers are stored [re, im].
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(__file__))
from complex_programs import HOLOMORPHIC, LINALG, MIXED, REAL  # noqa: E402


def enc(a):
    a = np.asarray(a)
    if np.iscomplexobj(a):
        return {"re": a.real.tolist(), "im": a.imag.tolist()}
    return {"re": a.tolist()}


def main():
    rng = np.random.default_rng(17)
    out = {"real": {}, "holomorphic": {}, "mixed": {}, "linalg": {}}
    for name, f in REAL.items():
        z = rng.uniform(0.3, 1.5, 6) + 1j * rng.uniform(-1, 1, 6)
        t = rng.normal(size=6) + 1j * rng.normal(size=6)
        fz = lambda z, f=f: f(jnp, z)
        _, tangent = jax.jvp(fz, (z,), (t,))
        out["real"][name] = {"z": enc(z), "t": enc(t), "value": enc(fz(z)),
                             "grad": enc(jax.grad(fz)(z)), "jvp": enc(tangent)}
    for name, f in HOLOMORPHIC.items():
        z = rng.uniform(0.3, 1.5, 6) + 1j * rng.uniform(-1, 1, 6)
        t = rng.normal(size=6) + 1j * rng.normal(size=6)
        fz = lambda z, f=f: f(jnp, z)
        y, pullback = jax.vjp(fz, z)
        ct = rng.normal(size=y.shape) + 1j * rng.normal(size=y.shape)
        _, tangent = jax.jvp(fz, (z,), (t,))
        out["holomorphic"][name] = {
            "z": enc(z), "t": enc(t), "ct": enc(ct), "value": enc(y),
            "jacfwd": enc(jax.jacfwd(fz, holomorphic=True)(z)),
            "jacrev": enc(jax.jacrev(fz, holomorphic=True)(z)),
            "grad_sum": enc(jax.grad(lambda z: jnp.sum(fz(z)), holomorphic=True)(z)),
            "jvp": enc(tangent), "vjp": enc(pullback(ct)[0])}
    for name, f in MIXED.items():
        x = rng.normal(size=6)
        fx = lambda x, f=f: f(jnp, x)
        out["mixed"][name] = {"x": enc(x), "value": enc(fx(x)), "grad": enc(jax.grad(fx)(x)),
                              "hessian": enc(jax.hessian(fx)(x))}
    for name, f in LINALG.items():
        z = rng.uniform(0.3, 1.5, 6) + 1j * rng.uniform(-1, 1, 6)
        t = rng.normal(size=6) + 1j * rng.normal(size=6)
        fz = lambda z, f=f: f(jnp, z)
        y, pullback = jax.vjp(fz, z)
        ct = rng.normal(size=y.shape) + (1j * rng.normal(size=y.shape) if jnp.iscomplexobj(y)
                                         else 0)
        _, tangent = jax.jvp(fz, (z,), (t,))
        out["linalg"][name] = {"z": enc(z), "t": enc(t), "ct": enc(ct), "value": enc(y),
                               "jvp": enc(tangent), "vjp": enc(pullback(ct)[0])}
    path = os.path.join(os.path.dirname(__file__), "complex_reference.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=None, separators=(",", ":"))
        fh.write("\n")


if __name__ == "__main__":
    main()
