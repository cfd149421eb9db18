import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import solvers
from reference import Grid, fit_grid, layer_loss
from reference.network import MLP, kron_hessian
from solvers import LayerProblem
from solvers.hessian import (
    DiagonalHessianLayer,
    diagonal_hessian_layer,
    local_loss_layer,
    task_loss_change,
    task_loss_qubo,
    taylor_qubo,
)
from tests.strategies import all_states, small_layers


def _net(seed, sizes=(4, 3, 3), n=9):
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(o, i)) for i, o in zip(sizes, sizes[1:])]
    bs = [rng.normal(size=o) * 0.3 for o in sizes[1:]]
    return MLP(Ws, bs), rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def _every_v(fq):
    for x in all_states(fq.free.size):
        yield x, fq.up_down(x)


@given(small_layers(max_out=2, max_in=4), st.booleans())
def test_taylor_qubo_energy_equals_the_taylor_formula_for_every_state(layer, with_gradient):
    """P, q, c of Eq. 4 / Eq. 13 against g.dw + 1/2 dw^T H dw evaluated directly."""
    W, X, grid = layer
    rng = np.random.default_rng(0)
    A = rng.normal(size=(W.size, W.size))
    H = A @ A.T
    g = rng.normal(size=W.shape) if with_gradient else None
    fq = taylor_qubo(W, grid, H, g)
    for x, v in _every_v(fq):
        dw = (fq.w_hat(v) - W).ravel()
        direct = 0.5 * dw @ H @ dw + (0.0 if g is None else g.ravel() @ dw)
        scale = max(1.0, abs(direct), abs(fq.bqm.c))
        assert fq.bqm.energy(x) == pytest.approx(direct, abs=1e-9 * scale)


def test_taylor_qubo_predicts_the_task_loss_change_to_third_order():
    """Level 2 against level 1: on a fine grid (12 bits) the predicted and true changes agree."""
    net, X, y = _net(1)
    for layer in range(net.n_layers):
        grid = fit_grid(net.weights[layer], bits=12)
        fq = task_loss_qubo(net, layer, X, y, grid, gradient=True)
        rng = np.random.default_rng(layer)
        for _ in range(5):
            v = fq.up_down(rng.integers(0, 2, size=fq.free.size))
            true = task_loss_change(net, layer, fq.w_hat(v), X, y)
            assert fq.energy(v) == pytest.approx(true, rel=1e-3, abs=1e-12)


def test_dropping_the_gradient_term_changes_the_prediction():
    net, X, y = _net(2)
    grid = fit_grid(net.weights[1], bits=3)
    with_g = task_loss_qubo(net, 1, X, y, grid, gradient=True)
    without = task_loss_qubo(net, 1, X, y, grid, gradient=False)
    v = np.ones(net.weights[1].shape)
    g = net.layer_gradient(X, y, 1)
    dw = with_g.w_hat(v) - net.weights[1]
    assert with_g.energy(v) - without.energy(v) == pytest.approx(float(np.sum(g * dw)), rel=1e-9)


def test_full_layer_qubo_optimum_by_exhaustive_equals_brute_force():
    net, X, y = _net(3, sizes=(3, 2, 2))
    fq = task_loss_qubo(net, 0, X, y, fit_grid(net.weights[0], bits=2), gradient=False)
    res = solvers.solve(fq.bqm, "exhaustive")
    best = min(fq.energy(v) for _, v in _every_v(fq))
    assert res.optimal and res.energy == pytest.approx(best, abs=1e-12)
    assert fq.energy(fq.up_down(res.x)) == pytest.approx(res.energy, abs=1e-15)


def test_diagonal_level_is_twice_taylor_with_the_diagonal_output_hessian():
    """Eq. 18 two ways: per-row G_k against the full Kronecker Hessian with off-diagonal outputs zeroed."""
    net, X, y = _net(4)
    for layer in range(net.n_layers):
        grid = fit_grid(net.weights[layer], bits=2)
        prob = diagonal_hessian_layer(net, layer, X, y, grid)
        C = net.output_hessians(X, y, layer)
        H_diag = kron_hessian(C * np.eye(C.shape[1]), net.layer_inputs(X)[layer])
        fq = taylor_qubo(net.weights[layer], grid, H_diag)
        for x, v in _every_v(fq):
            assert prob.loss(v) == pytest.approx(2 * fq.bqm.energy(x), rel=1e-9, abs=1e-14)


@given(small_layers(max_out=2, max_in=4))
def test_diagonal_level_row_models_sum_to_its_loss_and_equal_eq20_for_unit_weights(layer):
    W, X, grid = layer
    c = np.random.default_rng(1).uniform(0, 2, size=(X.shape[0], W.shape[0]))
    prob = DiagonalHessianLayer(W, grid, X, c)
    flat = LayerProblem(W, grid, X=X)
    unit = DiagonalHessianLayer(W, grid, X, np.ones_like(c))
    n_free = [f.size for f in prob.free]
    for bits in all_states(sum(n_free)):
        parts = np.split(bits, np.cumsum(n_free)[:-1])
        v = prob.assemble(parts)
        E = prob.w_hat(v) - W
        direct = sum(np.mean(c[:, k] * (X @ E[k]) ** 2) for k in range(W.shape[0]))
        scale = max(1.0, direct, max(prob.row_bqm(k).c for k in range(prob.n_rows)))
        assert prob.loss(v) == pytest.approx(direct, abs=1e-9 * scale)
        assert sum(prob.row_bqm(k).energy(parts[k]) for k in range(prob.n_rows)) == pytest.approx(direct, abs=1e-9 * scale)
        assert unit.loss(v) == pytest.approx(flat.loss(v), abs=1e-9 * scale)


def test_exact_methods_solve_the_diagonal_level_row_by_row():
    net, X, y = _net(5, sizes=(4, 3, 3))
    prob = diagonal_hessian_layer(net, 0, X, y, fit_grid(net.weights[0], bits=2))
    res = solvers.solve(prob, "exhaustive")
    n_free = [f.size for f in prob.free]
    best = min(prob.loss(prob.assemble(np.split(b, np.cumsum(n_free)[:-1]))) for b in all_states(sum(n_free)))
    assert res.optimal and res.energy == pytest.approx(best, rel=1e-12, abs=1e-15)
    assert solvers.solve(prob, "tree").energy == pytest.approx(best, rel=1e-9, abs=1e-15)


def test_diagonal_level_refuses_a_method_that_needs_a_single_gram_matrix():
    net, X, y = _net(6)
    prob = diagonal_hessian_layer(net, 0, X, y, fit_grid(net.weights[0], bits=3))
    with pytest.raises(ValueError, match="no single G"):
        prob.G
    with pytest.raises(ValueError, match="no single G"):
        solvers.solve(prob, "adaround", iterations=10)


def test_local_loss_level_is_eq20_on_the_layer_inputs():
    net, X, y = _net(7)
    grid = fit_grid(net.weights[1], bits=3)
    prob = local_loss_layer(net, 1, X, grid)
    A = net.layer_inputs(X)[1]
    v = (np.random.default_rng(0).random(net.weights[1].shape) < 0.5).astype(int)
    assert prob.loss(v) == pytest.approx(layer_loss(net.weights[1], A, prob.w_hat(v)), rel=1e-12)


def test_task_loss_change_is_zero_for_the_float_weights():
    net, X, y = _net(8)
    assert task_loss_change(net, 0, net.weights[0], X, y) == 0.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: taylor_qubo(np.ones((2, 2)), Grid(0.1, -2, 1), np.ones((3, 3))), r"H must have shape \(4, 4\)"),
        (lambda: taylor_qubo(np.ones((1, 2)), Grid(0.1, -2, 1), np.array([[1.0, 2.0], [0.0, 1.0]])), "H must be symmetric"),
        (lambda: taylor_qubo(np.ones((1, 2)), Grid(0.1, -2, 1), np.eye(2), g=np.ones(3)), r"g must have shape \(1, 2\)"),
        (lambda: DiagonalHessianLayer(np.ones((2, 2)), Grid(0.1, -2, 1), np.ones((3, 2)), -np.ones((3, 2))), "c must be >= 0"),
        (lambda: DiagonalHessianLayer(np.ones((2, 2)), Grid(0.1, -2, 1), np.ones((3, 2)), np.ones((3, 3))), r"c must have shape \(3, 2\)"),
        (lambda: task_loss_qubo("net", 0, np.ones((1, 2)), [0], Grid(0.1, -2, 1)), "net must be a reference.network.MLP"),
    ],
)
def test_bad_input_is_refused_with_a_message(make, match):
    with pytest.raises(ValueError, match=match):
        make()
