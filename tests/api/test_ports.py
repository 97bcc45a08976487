"""Ports of real programs, renames only: autograd's Gaussian-process regression
example (hyperparameters fitted with scipy.optimize on fungrad's value_and_grad),
written from its public description."""
import numpy as np
import pytest

import fungrad as fg
import fungrad.numpy as fnp   # was: import autograd.numpy as np

scipy_optimize = pytest.importorskip("scipy.optimize")
scipy_stats = pytest.importorskip("scipy.stats")


def mvn_logpdf(y, mean, cov):
    # autograd's example calls autograd.scipy.stats.multivariate_normal.logpdf
    n = y.shape[0]
    sign, logdet = fnp.linalg.slogdet(cov)
    r = y - mean
    return -0.5 * (r @ fnp.linalg.solve(cov, r) + logdet + n * np.log(2 * np.pi))


def make_gp_funs(cov_func, num_cov_params):
    def unpack_kernel_params(params):
        mean = params[0]
        cov_params = params[2:]
        noise_scale = fnp.exp(params[1]) + 0.0001
        return mean, cov_params, noise_scale

    def predict(params, x, y, xstar):
        mean, cov_params, noise_scale = unpack_kernel_params(params)
        cov_f_f = cov_func(cov_params, xstar, xstar)
        cov_y_f = cov_func(cov_params, x, xstar)
        cov_y_y = cov_func(cov_params, x, x) + noise_scale * fnp.eye(len(y))
        pred_mean = mean + fnp.dot(fnp.linalg.solve(cov_y_y, cov_y_f).T, y - mean)
        pred_cov = cov_f_f - fnp.dot(fnp.linalg.solve(cov_y_y, cov_y_f).T, cov_y_f)
        return pred_mean, pred_cov

    def log_marginal_likelihood(params, x, y):
        mean, cov_params, noise_scale = unpack_kernel_params(params)
        cov_y_y = cov_func(cov_params, x, x) + noise_scale * fnp.eye(len(y))
        prior_mean = mean * fnp.ones(len(y))
        return mvn_logpdf(y, prior_mean, cov_y_y)

    return num_cov_params + 2, predict, log_marginal_likelihood


def rbf_covariance(kernel_params, x, xp):
    output_scale = fnp.exp(kernel_params[0])
    lengthscales = fnp.exp(kernel_params[1:])
    diffs = fnp.expand_dims(x / lengthscales, 1) - fnp.expand_dims(xp / lengthscales, 0)
    return output_scale * fnp.exp(-0.5 * fnp.sum(diffs ** 2, axis=2))


def build_toy_dataset(D=1, n_data=20, noise_std=0.1):
    rs = np.random.RandomState(0)
    inputs = np.concatenate([np.linspace(0, 3, num=n_data // 2),
                             np.linspace(6, 8, num=n_data // 2)])
    targets = (np.cos(inputs) + rs.randn(n_data) * noise_std) / 2.0
    inputs = (inputs - 4.0) / 2.0
    return inputs.reshape((len(inputs), D)), targets


def test_gaussian_process_port_fits_its_hyperparameters():
    D = 1
    X, y = build_toy_dataset(D=D)
    num_params, predict, log_marginal_likelihood = make_gp_funs(rbf_covariance,
                                                                num_cov_params=D + 1)
    objective = lambda params: -log_marginal_likelihood(params, X, y)  # noqa: E731
    rs = np.random.RandomState(0)
    init_params = 0.1 * rs.randn(num_params)

    # the value is scipy's multivariate normal log-density
    mean, noise = init_params[0], np.exp(init_params[1]) + 0.0001
    cov = np.asarray(rbf_covariance(init_params[2:], X, X)) + noise * np.eye(len(y))
    np.testing.assert_allclose(-objective(init_params),
                               scipy_stats.multivariate_normal.logpdf(y, mean * np.ones(len(y)),
                                                                      cov), rtol=1e-10)
    # the gradient agrees with finite differences
    g = fg.grad(objective)(init_params)
    numeric = scipy_optimize.approx_fprime(init_params, lambda p: float(objective(p)), 1e-6)
    np.testing.assert_allclose(g, numeric, rtol=1e-4, atol=1e-5)

    # autograd's example: minimize(value_and_grad(objective), init_params, jac=True, method='CG')
    result = scipy_optimize.minimize(fg.value_and_grad(objective), init_params, jac=True,
                                     method="CG")
    assert result.success or np.linalg.norm(result.jac) < 1e-3
    assert result.fun < float(objective(init_params)) - 5.0
    np.testing.assert_allclose(fg.grad(objective)(result.x), 0.0, atol=1e-3)
    # the fitted GP interpolates the data it saw
    pred_mean, pred_cov = predict(result.x, X, y, X)
    assert np.max(np.abs(pred_mean - y)) < 0.2
    assert np.all(np.diag(pred_cov) > -1e-8)


# A variational autoencoder as JAX's examples write one (an MLP encoder giving the
# mean and log-variance, the reparameterisation trick, a Bernoulli decoder, the ELBO,
# trained with example_libraries.optimizers.adam under jit).  Renames only: jax ->
# fungrad, jnp -> fnp, jax.nn -> fungrad.nn, jax.example_libraries.optimizers ->
# fungrad.optimizers; the noise comes from NumPy, passed in as an argument.
from fungrad import nn, optimizers  # noqa: E402


def init_mlp(rng, sizes, scale=0.1):
    return [(scale * rng.randn(m, n), np.zeros(n)) for m, n in zip(sizes[:-1], sizes[1:])]


def mlp(params, x):
    for w, b in params[:-1]:
        x = fnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def elbo(params, images, eps):
    enc, dec = params
    out = mlp(enc, images)
    mu, log_var = fnp.split(out, 2, axis=1)
    z = mu + fnp.exp(0.5 * log_var) * eps
    logits = mlp(dec, z)
    # Bernoulli log-likelihood of the pixels: -sum(softplus(logits) - x * logits)
    log_lik = -fnp.sum(nn.softplus(logits) - images * logits, axis=1)
    kl = 0.5 * fnp.sum(fnp.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=1)
    return fnp.mean(log_lik - kl)


def test_vae_port_trains_under_jit_and_its_gradient_is_right():
    rng = np.random.RandomState(0)
    images = (rng.rand(32, 16) < np.linspace(0.1, 0.9, 16)).astype(np.float64)
    latent = 2
    params = (init_mlp(rng, [16, 12, 2 * latent]), init_mlp(rng, [latent, 12, 16]))
    opt_init, opt_update, get_params = optimizers.adam(0.02)

    @fg.jit
    def step(i, opt_state, eps):
        loss = lambda p: -elbo(p, images, eps)  # noqa: E731
        value, g = fg.value_and_grad(loss)(get_params(opt_state))
        return opt_update(i, g, opt_state), value

    eps0 = rng.randn(32, latent)
    start = float(elbo(params, images, eps0))
    # the gradient of one weight against central differences
    g = fg.grad(elbo)(params, images, eps0)
    w = params[0][0][0]
    bumped = [[(w2.copy(), b2) for w2, b2 in part] for part in params]
    h = 1e-6
    bumped[0][0][0][3, 4] += h
    up = float(elbo(bumped, images, eps0))
    bumped[0][0][0][3, 4] -= 2 * h
    down = float(elbo(bumped, images, eps0))
    np.testing.assert_allclose(g[0][0][0][3, 4], (up - down) / (2 * h), rtol=1e-5, atol=1e-8)
    assert g[0][0][0].shape == w.shape

    opt_state = opt_init(params)
    for i in range(300):
        opt_state, _ = step(i, opt_state, rng.randn(32, latent))
    assert len(step._cache) == 1
    final = float(np.mean([elbo(get_params(opt_state), images, rng.randn(32, latent))
                           for _ in range(5)]))
    assert final > start + 1.0, (start, final)
