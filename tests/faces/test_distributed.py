"""fungrad.distributed against a real multi-process Dask cluster (started here)."""
import os
import pickle
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import fungrad as fg  # noqa: E402
import fungrad.distributed as fgd  # noqa: E402
import fungrad.numpy as fnp  # noqa: E402
from fungrad.errors import FungradTypeError, FungradValueError  # noqa: E402

RTOL = 1e-12


def logistic_loss(w, X, y):
    z = X @ w
    return fnp.sum(fnp.logaddexp(0.0, z) - y * z)


def mlp_loss(params, X, y):
    h = fnp.tanh(X @ params["W"] + params["b"])
    out = h @ params["v"]
    return fnp.sum((out - y) ** 2)


def _data(n=1037, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (rng.random(n) > 0.5).astype(float)
    return X, y


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-300)
    assert np.max(np.abs(a - b)) <= rtol * scale, (a, b)


@pytest.fixture(scope="module")
def client(interpreter_env):
    # the workers run their blocks in the interpreter, as tests outside KERNEL_FILES do
    # (tests/conftest.py); `prepare` still compiles on them
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, env=interpreter_env)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_gradient_equals_single_process_on_ragged_chunks(client):
    X, y = _data()
    w = np.linspace(-1, 1, X.shape[1])
    Xd = da.from_array(X, chunks=(100, 5)).persist()   # 10 blocks of 100, one of 37
    yd = da.from_array(y, chunks=100).persist()
    vg = fgd.value_and_grad(logistic_loss)
    value, g = vg(w, Xd, yd)
    v0, g0 = fg.value_and_grad(logistic_loss)(w, X, y)
    _close(value, v0)
    _close(g, g0)
    _close(fgd.grad(logistic_loss)(w, Xd, yd), g0)


def test_a_ragged_layout_costs_two_programs_not_one_per_block(client):
    X, y = _data(n=531)
    Xd = da.from_array(X, chunks=((100, 100, 100, 100, 61, 70),) + ((5,),))
    yd = da.from_array(y, chunks=((100, 100, 100, 100, 61, 70),))
    vg = fgd.value_and_grad(logistic_loss)
    _close(vg(np.ones(5), Xd, yd)[1], fg.grad(logistic_loss)(np.ones(5), X, y))
    tokens = [vg.full_program.token, vg.padded_program.token]
    traces = client.run(_traces, tokens)
    # blocks of 61 and 70 rows share the padded program's one trace
    assert all(n <= 2 for n in traces.values()) and sum(traces.values()) >= 2, traces


def _traces(tokens):
    return sum(len(fgd._programs[t].jitted._cache) for t in tokens if t in fgd._programs)


def test_pytree_parameters(client):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = rng.normal(size=300)
    params = {"W": rng.normal(size=(4, 8)), "b": rng.normal(size=8), "v": rng.normal(size=8)}
    Xd, yd = da.from_array(X, chunks=(64, 4)), da.from_array(y, chunks=64)
    value, g = fgd.value_and_grad(mlp_loss)(params, Xd, yd)
    v0, g0 = fg.value_and_grad(mlp_loss)(params, X, y)
    _close(value, v0)
    assert set(g) == {"W", "b", "v"}
    for k in g:
        _close(g[k], g0[k])


def test_numpy_data_is_one_block_and_mixed_data_follows_the_dask_blocks(client):
    X, y = _data(n=200)
    w = np.ones(5)
    g0 = fg.grad(logistic_loss)(w, X, y)
    _close(fgd.grad(logistic_loss)(w, X, y), g0)
    _close(fgd.grad(logistic_loss)(w, da.from_array(X, chunks=(50, 5)), y), g0)


def test_chunk_mismatch_is_refused_before_any_task_runs(client):
    X, y = _data(n=200)
    Xd, yd = da.from_array(X, chunks=(100, 5)), da.from_array(y, chunks=50)
    with pytest.raises(FungradValueError, match="rechunk|Rechunk"):
        fgd.value_and_grad(logistic_loss)(np.ones(5), Xd, yd)
    with pytest.raises(FungradValueError, match="rows"):
        fgd.value_and_grad(logistic_loss)(np.ones(5), Xd, yd[:150])
    with pytest.raises(FungradTypeError, match="Dask array"):
        fgd.value_and_grad(logistic_loss)(da.ones(5), Xd, da.from_array(y, chunks=100))


def test_per_example_gradients_with_vmap(client):
    X, y = _data(n=250)
    w = np.linspace(-1, 1, 5)
    Xd = da.from_array(X, chunks=(64, 5))
    yd = da.from_array(y, chunks=64)
    per_example = lambda w, x, t: fg.grad(logistic_loss)(w, x[None], t[None])  # noqa: E731
    out = fgd.vmap(per_example, in_axes=(None, 0, 0))(w, Xd, yd)
    assert isinstance(out, da.Array) and out.shape == (250, 5)
    expected = fg.vmap(per_example, in_axes=(None, 0, 0))(w, X, y)
    _close(out.compute(), expected)
    # a pytree of outputs comes back as the same pytree of Dask arrays
    both = fgd.vmap(lambda x: {"s": fnp.sum(x), "sq": x ** 2})(Xd)
    np.testing.assert_allclose(both["s"].compute(), X.sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(both["sq"].compute(), X ** 2, rtol=1e-14)
    with pytest.raises(FungradValueError, match="in_axes"):
        fgd.vmap(per_example, in_axes=(None, 1, 0))(w, Xd, yd)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_block_jacobian_equals_jacfwd(client, mode):
    rng = np.random.default_rng(2)
    A = rng.normal(size=(6, 11))

    def f(x):
        return fnp.tanh(A @ x) * fnp.sum(x ** 2)

    x = rng.normal(size=11)
    J = fgd.jacobian(f, mode=mode, block=4)(x)
    assert isinstance(J, da.Array) and J.shape == (6, 11)
    _close(J.compute(), fg.jacfwd(f)(x))
    x2 = rng.normal(size=(3, 4))
    J2 = fgd.jacobian(lambda x: fnp.sin(x).T @ x, mode=mode, block=5)(x2)
    _close(J2.compute(), fg.jacfwd(lambda x: fnp.sin(x).T @ x)(x2))


def test_minimize_matches_a_single_process_fit(client):
    import scipy.optimize
    X, y = _data(n=400)
    Xd, yd = da.from_array(X, chunks=(128, 5)), da.from_array(y, chunks=128)
    fit = fgd.minimize(lambda p, X, y: logistic_loss(p["w"], X, y), {"w": np.zeros(5)}, Xd, yd)
    vg = fg.jit(fg.value_and_grad(logistic_loss))
    ref = scipy.optimize.minimize(
        lambda w: tuple(np.asarray(v) for v in vg(w, X, y)), np.zeros(5), jac=True,
        method="L-BFGS-B")
    assert fit.success
    np.testing.assert_allclose(fit.x["w"], ref.x, rtol=1e-6, atol=1e-8)
    assert fit.x_flat.shape == (5,)


def test_default_threaded_scheduler_without_a_client():
    X, y = _data(n=300)
    w = np.ones(5)
    with dask.config.set(scheduler="threads"):
        g = fgd.grad(logistic_loss)(w, da.from_array(X, chunks=(70, 5)),
                                    da.from_array(y, chunks=70))
    _close(g, fg.grad(logistic_loss)(w, X, y))


def test_a_used_jit_wrapper_pickles_small_and_the_same():
    import cloudpickle
    jitted = fg.jit(logistic_loss)
    before = len(cloudpickle.dumps(jitted))
    X, y = _data(n=50)
    jitted(np.ones(5), X, y)
    jitted(np.ones(5), X[:10], y[:10])
    assert len(cloudpickle.dumps(jitted)) == before
    assert len(pickle.dumps(jitted)) < 2000      # a module-level function: by reference
    again = pickle.loads(pickle.dumps(jitted))
    _close(again(np.ones(5), X, y), logistic_loss(np.ones(5), X, y))


@pytest.mark.kernels
@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_a_second_cluster_loads_the_kernels_instead_of_compiling(client):
    X, y = _data(n=256)
    Xd, yd = da.from_array(X, chunks=(64, 5)), da.from_array(y, chunks=64)
    vg = fgd.value_and_grad(mlp_loss)
    params = {"W": np.ones((5, 3)), "b": np.zeros(3), "v": np.ones(3)}
    vg.prepare(params, Xd, yd)       # the first cluster's workers fill the disk cache
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster2:
        with distributed.Client(cluster2) as client2:
            counts = fgd.value_and_grad(mlp_loss).prepare(params, Xd, yd)
            assert list(counts) == list(client2.scheduler_info()["workers"])
            (c,) = counts.values()
            assert c == {"compiled": 0, "loaded": 1}
            value, _ = fgd.value_and_grad(mlp_loss)(params, Xd, yd)
            _close(value, mlp_loss(params, X, y))
    # the module's client is the default again
    assert distributed.get_client() is client


def _slow_rows(i, X):
    time.sleep(0.5)
    return X[i * 100:(i + 1) * 100]


def test_a_worker_killed_mid_computation_still_gives_the_right_gradient(client):
    X, y = _data(n=800)
    w = np.linspace(-1, 1, 5)
    Xd = da.concatenate([da.from_delayed(dask.delayed(_slow_rows)(i, X), shape=(100, 5),
                                         dtype=float) for i in range(8)])
    yd = da.from_array(y, chunks=100)
    graph = fgd.value_and_grad(logistic_loss).graph(w, Xd, yd)
    future = client.compute(graph)
    time.sleep(0.8)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    value, g = future.result(timeout=180)
    v0, g0 = fg.value_and_grad(logistic_loss)(w, X, y)
    _close(value, v0)
    _close(g, g0)
    client.wait_for_workers(2, timeout=120)
