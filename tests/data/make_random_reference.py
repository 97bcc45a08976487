"""Generate tests/data/random_reference.npz from JAX (run by hand, not by the suite):

    /work/jaxvenv/bin/python tests/data/make_random_reference.py

JAX 0.10 with x64 enabled and its default `jax_threefry_partitionable=True`; the file
records the JAX version and the flag.  tests/faces/test_random.py compares against it."""
import os

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
assert jax.config.jax_threefry_partitionable

out = {"jax_version": np.array(jax.__version__), "partitionable": np.array(True)}
SEEDS = [0, 1, 42, 2**32 + 7, -1, 123456789]
for i, seed in enumerate(SEEDS):
    key = jax.random.PRNGKey(seed)
    out[f"seed{i}"] = np.array(seed, dtype=np.int64)
    out[f"key{i}"] = np.asarray(key)
    out[f"split{i}"] = np.asarray(jax.random.split(key))
    out[f"split3_{i}"] = np.asarray(jax.random.split(key, (3, 2)))
    out[f"fold_in{i}"] = np.asarray(jax.random.fold_in(key, 12345))
    out[f"fold_in_neg{i}"] = np.asarray(jax.random.fold_in(key, 2**32 - 5))
    out[f"bits32_{i}"] = np.asarray(jax.random.bits(key, (7,), jnp.uint32))
    out[f"bits64_{i}"] = np.asarray(jax.random.bits(key, (2, 3), jnp.uint64))
    out[f"bits8_{i}"] = np.asarray(jax.random.bits(key, (5,), jnp.uint8))
    out[f"bits0_{i}"] = np.asarray(jax.random.bits(key, (), jnp.uint32))
    for dt in ("float32", "float64"):
        d = getattr(jnp, dt)
        out[f"uniform_{dt}_{i}"] = np.asarray(jax.random.uniform(key, (11,), d))
        out[f"uniform_ab_{dt}_{i}"] = np.asarray(jax.random.uniform(key, (2, 5), d, -3.0, 7.5))
        out[f"normal_{dt}_{i}"] = np.asarray(jax.random.normal(key, (3, 4), d))
        out[f"exponential_{dt}_{i}"] = np.asarray(jax.random.exponential(key, (9,), d))
        out[f"laplace_{dt}_{i}"] = np.asarray(jax.random.laplace(key, (9,), d))
        out[f"logistic_{dt}_{i}"] = np.asarray(jax.random.logistic(key, (9,), d))
        out[f"gumbel_{dt}_{i}"] = np.asarray(jax.random.gumbel(key, (9,), d))
        out[f"cauchy_{dt}_{i}"] = np.asarray(jax.random.cauchy(key, (9,), d))
        out[f"truncated_normal_{dt}_{i}"] = np.asarray(
            jax.random.truncated_normal(key, -1.5, 2.0, (9,), d))
    out[f"normal0_{i}"] = np.asarray(jax.random.normal(key))
    out[f"bernoulli_{i}"] = np.asarray(jax.random.bernoulli(key, 0.3, (13,)))
    out[f"bernoulli_p_{i}"] = np.asarray(jax.random.bernoulli(key, jnp.linspace(0, 1, 6)))
    out[f"randint_{i}"] = np.asarray(jax.random.randint(key, (10,), -5, 17))
    out[f"randint32_{i}"] = np.asarray(jax.random.randint(key, (10,), 0, 1000, jnp.int32))
    out[f"randint_u8_{i}"] = np.asarray(jax.random.randint(key, (10,), 0, 256, jnp.uint8))
    out[f"permutation_{i}"] = np.asarray(jax.random.permutation(key, 10))
    out[f"permutation2d_{i}"] = np.asarray(
        jax.random.permutation(key, jnp.arange(12.0).reshape(3, 4), axis=1))
    out[f"choice_{i}"] = np.asarray(jax.random.choice(key, 7, (5,)))
    out[f"choice_norep_{i}"] = np.asarray(jax.random.choice(key, 7, (5,), replace=False))
    out[f"choice_p_{i}"] = np.asarray(
        jax.random.choice(key, 5, (8,), p=jnp.array([0.1, 0.2, 0.3, 0.15, 0.25])))
    logits = jnp.array([[0.5, -1.0, 2.0, 0.0], [3.0, 0.1, -0.2, 1.0]])
    out[f"categorical_{i}"] = np.asarray(jax.random.categorical(key, logits))
    out[f"categorical_shape_{i}"] = np.asarray(jax.random.categorical(key, logits, shape=(5, 2)))
    mean = jnp.array([1.0, -2.0, 0.5])
    cov = jnp.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]])
    out[f"mvn_{i}"] = np.asarray(jax.random.multivariate_normal(key, mean, cov, (4,)))
    out[f"split_normal_{i}"] = np.asarray(jax.random.normal(jax.random.split(key)[1], (5,)))
    out[f"vmap_uniform_{i}"] = np.asarray(
        jax.vmap(lambda k: jax.random.uniform(k, (3,)))(jax.random.split(key, 4)))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "random_reference.npz")
np.savez_compressed(path, **out)
print("wrote", path, len(out), "arrays")
