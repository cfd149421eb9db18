import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import solvers
from reference import Grid, fit_grid, layer_loss, round_nearest
from reference.network import MLP
from solvers import LayerProblem
from solvers.relaxation import Relaxation
from solvers.sequential import (
    ActivationLoss,
    AsymmetricLayer,
    activation_loss,
    asymmetric_relaxation,
    quantize_network,
)
from tests.strategies import all_states, small_layers


def _net(seed, sizes=(5, 4, 3, 3), n=12):
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(o, i)) for i, o in zip(sizes, sizes[1:])]
    bs = [rng.normal(size=o) * 0.3 for o in sizes[1:]]
    return MLP(Ws, bs), rng.normal(size=(n, sizes[0]))


def _states(prob):
    n_free = [f.size for f in prob.free]
    for bits in all_states(sum(n_free)):
        parts = np.split(bits, np.cumsum(n_free)[:-1])
        yield parts, prob.assemble(parts)


@pytest.mark.parametrize("variant", ["layerwise", "asymmetric", "asymmetric_relu"])
@pytest.mark.parametrize("bits", [2, 4])
def test_sequential_nearest_equals_rounding_every_layer_directly(variant, bits):
    net, X = _net(0)
    run = quantize_network(net, X, bits=bits, method="nearest", variant=variant)
    for layer, W in enumerate(net.weights):
        grid = fit_grid(W, bits)
        s, z = grid.per_row(W.shape[0])
        assert np.array_equal(run.net.weights[layer], s * (round_nearest(W, grid) - z))
        assert np.array_equal(run.net.biases[layer], net.biases[layer])


@given(small_layers(max_out=2, max_in=4), st.integers(0, 2**32 - 1))
def test_asymmetric_layer_loss_equals_eq25_without_activation_for_every_state(layer, seed):
    W, X, grid = layer
    rng = np.random.default_rng(seed)
    X_hat = X + rng.normal(size=X.shape) * 0.3 * (np.std(X) + 1e-3)
    if rng.random() < 0.3:
        X_hat[:, 0] = 0.0  # a dead input: X_hat rank deficient
    prob = AsymmetricLayer(W, grid, X, X_hat)
    b = np.zeros(W.shape[0])
    for parts, v in _states(prob):
        direct = activation_loss(W, b, prob.w_hat(v), X, X_hat, activation="identity")
        scale = max(1.0, direct, float(np.mean((X @ W.T) ** 2)) * W.shape[0])
        assert prob.loss(v) == pytest.approx(direct, abs=1e-9 * scale)
        rows = sum(prob.row_bqm(k).energy(parts[k]) for k in range(prob.n_rows))
        assert rows == pytest.approx(direct, abs=1e-9 * scale)


def test_asymmetric_layer_with_float_inputs_is_the_local_loss():
    net, X = _net(1)
    W = net.weights[0]
    grid = fit_grid(W, 2)
    asym = AsymmetricLayer(W, grid, X, X)
    flat = LayerProblem(W, grid, X=X)
    for _, v in _states(LayerProblem(W[:2], fit_grid(W[:2], 2), X=X)):
        v = np.vstack([v, np.zeros((W.shape[0] - 2, W.shape[1]), dtype=np.int8)])
        assert asym.loss(v) == pytest.approx(flat.loss(v), rel=1e-9, abs=1e-12)
    assert np.array_equal(asym.residual, flat.residual) and np.array_equal(asym.movable, flat.movable)


def test_exact_methods_find_the_asymmetric_optimum_and_the_relaxation_runs_on_it():
    net, X = _net(2, sizes=(4, 3, 2))
    x_hat = quantize_network(net, X, bits=2, method="nearest").net.layer_inputs(X)[1]
    prob = AsymmetricLayer(net.weights[1], fit_grid(net.weights[1], 2), net.layer_inputs(X)[1], x_hat)
    best = min(prob.loss(v) for _, v in _states(prob))
    for method in ("exhaustive", "tree"):
        res = solvers.solve(prob, method)
        assert res.optimal and res.energy == pytest.approx(best, rel=1e-9)
    relaxed = solvers.solve(prob, "adaround", iterations=200)
    assert relaxed.energy >= best - 1e-12
    assert relaxed.energy == pytest.approx(prob.loss(relaxed.x), rel=1e-12)


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_eq25_relaxation_gradient_equals_central_differences(activation):
    net, X = _net(3)
    W = net.weights[0]
    X_hat = X + 0.1 * np.random.default_rng(0).normal(size=X.shape)
    rel = Relaxation(ActivationLoss(W, net.biases[0], fit_grid(W, 3), X, X_hat, activation))
    V = np.random.default_rng(1).normal(size=W.shape)
    for lam, beta in ((0.0, None), (0.3, 4.0)):
        g = rel.value_and_grad(V, lam, beta)[3].copy()
        h = 1e-6
        fd = np.zeros_like(V)
        for idx in np.ndindex(V.shape):
            E = np.zeros_like(V)
            E[idx] = h
            fd[idx] = (rel.value_and_grad(V + E, lam, beta)[0] - rel.value_and_grad(V - E, lam, beta)[0]) / (2 * h)
        assert np.max(np.abs(fd - g)) <= 1e-5 * max(1.0, np.max(np.abs(g)))


def test_asymmetric_relaxation_reports_the_hard_rounding_loss_and_is_deterministic():
    net, X = _net(4)
    W, b = net.weights[0], net.biases[0]
    grid = fit_grid(W, 3)
    a = asymmetric_relaxation(W, b, grid, X, X, iterations=300, batch_size=8, seed=3)
    again = asymmetric_relaxation(W, b, grid, X, X, iterations=300, batch_size=8, seed=3)
    assert np.array_equal(a.x, again.x)
    W_hat = LayerProblem(W, grid, X=X).w_hat(a.x)
    assert a.loss == pytest.approx(activation_loss(W, b, W_hat, X, X), rel=1e-12)


def test_sequential_asymmetric_uses_inputs_of_the_quantized_network():
    """Each layer's result is the exact optimum of Eq. 25 given the layers already quantized."""
    net, X = _net(5, sizes=(3, 3, 2))
    run = quantize_network(net, X, bits=2, method="exhaustive", variant="asymmetric")
    q0 = net.with_weights(0, run.net.weights[0])
    prob = AsymmetricLayer(net.weights[1], run.grids[1], net.layer_inputs(X)[1], q0.layer_inputs(X)[1])
    best = min(prob.loss(v) for _, v in _states(prob))
    assert run.results[1].energy == pytest.approx(best, rel=1e-9)
    first = LayerProblem(net.weights[0], run.grids[0], X=X)
    assert run.results[0].energy == pytest.approx(min(first.loss(v) for _, v in _states(first)), rel=1e-9)


def test_sequential_layerwise_energies_are_local_losses_of_the_float_inputs():
    net, X = _net(6)
    run = quantize_network(net, X, bits=3, method="tree")
    for layer, res in enumerate(run.results):
        A = net.layer_inputs(X)[layer]
        assert res.energy == pytest.approx(layer_loss(net.weights[layer], A, run.net.weights[layer]), rel=1e-9)


def test_asymmetric_relu_runs_the_relaxation_on_hidden_layers():
    net, X = _net(7)
    run = quantize_network(net, X, bits=3, method="adaround", variant="asymmetric_relu",
                           options={"iterations": 50, "batch_size": 4})
    assert [r.info.get("objective") for r in run.results[:-1]] == ["Eq. 25 with ReLU"] * (net.n_layers - 1)
    assert run.problems[-1] is not None and run.results[-1].method == "adaround"


def test_asymmetric_relu_reports_eq25_with_the_relu_for_the_baselines_too():
    net, X = _net(3)
    run = quantize_network(net, X, bits=3, method="nearest", variant="asymmetric_relu")
    x_hat = X
    for layer in range(net.n_layers - 1):  # hidden layers: Eq. 25 after the ReLU, by hand
        W, b, W_hat = net.weights[layer], net.biases[layer], run.net.weights[layer]
        x = net.layer_inputs(X)[layer]
        want = np.mean(np.sum((np.maximum(x @ W.T + b, 0) - np.maximum(x_hat @ W_hat.T + b, 0)) ** 2, axis=1))
        assert run.results[layer].energy == pytest.approx(want, rel=1e-12)
        x_hat = np.maximum(x_hat @ W_hat.T + b, 0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda n, X: quantize_network(n, X, method="tree", variant="asymmetric_relu"), "not a QUBO on ReLU layers"),
        (lambda n, X: quantize_network(n, X, variant="other"), "variant must be one of"),
        (lambda n, X: quantize_network(n, X, grids=[Grid(0.1, -2, 1)]), "one Grid per layer"),
        (lambda n, X: AsymmetricLayer(n.weights[0], Grid(0.1, -2, 1), X, X[:, :2]), "X and X_hat must both have shape"),
        (lambda n, X: asymmetric_relaxation(n.weights[0], n.biases[0], Grid(0.1, -2, 1), X, X, batch_size=99), "batch_size must be <="),
        (lambda n, X: asymmetric_relaxation(n.weights[0], n.biases[0], Grid(0.1, -2, 1), X, X, activation="tanh"), "activation must be one of"),
    ],
)
def test_bad_input_is_refused_with_a_message(make, match):
    net, X = _net(0)
    with pytest.raises(ValueError, match=match):
        make(net, X)


def test_eq25_with_identity_and_exact_inputs_runs_as_eq21_in_batch_mode():
    """Two data terms, one engine: without activation and with X_hat = X, Eq. 25 is Eq. 20, so the
    Eq. 25 relaxation and ``solve(..., "adaround", mode="batch")`` take the same steps."""
    net, X = _net(8, n=40)
    W, b = net.weights[0], net.biases[0]
    grid = fit_grid(W, 3)
    kw = dict(iterations=400, batch_size=8, seed=5)
    a = asymmetric_relaxation(W, b, grid, X, X, "identity", **kw)
    p = LayerProblem(W, grid, X=X)
    r = solvers.solve(p, "adaround", mode="batch", **kw)
    # the two data terms round differently (the bias cancels in Eq. 25), and where the loss and the
    # regulariser balance Adam's normalised step amplifies that to ~1e-4 over the run
    np.testing.assert_allclose(a.info["V"], r.info["V"], rtol=0, atol=2e-3)
    np.testing.assert_array_equal(a.x, r.x)
    assert a.energy == pytest.approx(r.energy, rel=1e-9)
    assert a.info["soft_loss"] == pytest.approx(r.info["soft_loss"], rel=1e-4)
    assert a.info["objective"] == "Eq. 25 without activation" and not a.optimal and a.lower_bound is None
