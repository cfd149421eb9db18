import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import Grid, fit_grid, gram, layer_loss
from solvers import LayerProblem
from tests.strategies import all_states, small_layers


@given(small_layers(max_out=3, max_in=5))
def test_qubo_energy_equals_local_loss_for_every_binary_vector(layer):
    """Eq. 20 two ways: the per-row QUBOs (through G) against the loss computed from samples."""
    W, X, grid = layer
    prob = LayerProblem(W, grid, X=X)
    n_free = [f.size for f in prob.free]
    total = sum(n_free)
    assert total <= 15
    for bits in all_states(total):
        parts = np.split(bits, np.cumsum(n_free)[:-1])
        v = prob.assemble(parts)
        qubo = sum(prob.row_bqm(k).energy(parts[k]) for k in range(prob.n_rows))
        direct = layer_loss(W, X, prob.w_hat(v))
        scale = max(direct, max(prob.row_bqm(k).c for k in range(prob.n_rows)), 1e-300)
        assert abs(qubo - direct) <= 1e-9 * scale
        assert prob.loss(v) == pytest.approx(direct, rel=1e-9, abs=1e-9 * scale)


def test_clipped_weights_have_no_variable_and_stay_at_the_grid_end():
    W = np.array([[5.0, -5.0, 0.26, -0.26]])
    prob = LayerProblem(W, Grid(0.1, -8, 7), X=np.eye(4))
    np.testing.assert_array_equal(prob.movable, [[0, 0, 1, 1]])
    assert prob.row_bqm(0).n == 2
    v = prob.assemble([np.array([1, 1])])
    np.testing.assert_array_equal(prob.integers(v), [[7, -8, 3, -2]])
    np.testing.assert_allclose(prob.w_hat(v), [[0.7, -0.8, 0.3, -0.2]])


def test_per_row_scales_and_zero_points_decode():
    W = np.array([[0.34, -0.12], [2.2, 1.1]])
    grid = Grid([0.1, 1.0], 0, 15, [8, 2])
    prob = LayerProblem(W, grid, X=np.eye(2))
    v = np.array([[1, 0], [0, 1]])
    np.testing.assert_array_equal(prob.integers(v), [[12, 6], [4, 4]])
    np.testing.assert_allclose(prob.w_hat(v), [[0.4, -0.2], [2.0, 2.0]])
    np.testing.assert_array_equal(prob.up_from_integers(prob.integers(v)), v)


def test_gram_and_sample_forms_pose_the_same_problem():
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 6)), rng.normal(size=(20, 6))
    grid = fit_grid(W, 3)
    a, b = LayerProblem(W, grid, X=X), LayerProblem(W, grid, G=gram(X))
    for k in range(3):
        np.testing.assert_allclose(a.row_bqm(k).P, b.row_bqm(k).P)
        np.testing.assert_allclose(a.row_bqm(k).q, b.row_bqm(k).q)


def test_rows_of_the_local_loss_are_psd_even_when_g_is_singular():
    rng = np.random.default_rng(1)
    W, X = rng.normal(size=(2, 10)), rng.normal(size=(3, 10))
    prob = LayerProblem(W, fit_grid(W, 4), X=X)
    assert all(prob.row_bqm(k).is_psd() for k in range(2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.ones((5, 3))), r"X must have shape \(N, 4\)"),
        (dict(X=np.full((5, 4), np.inf)), "X must be finite"),
        (dict(G=np.ones((3, 3))), r"G must have shape \(4, 4\)"),
        (dict(G=-np.eye(4)), "G must be positive semidefinite"),
        (dict(G=np.triu(np.ones((4, 4)))), "G must be symmetric"),
        (dict(), "give exactly one of X"),
        (dict(X=np.ones((5, 4)), G=np.eye(4)), "give exactly one of X"),
    ],
)
def test_bad_layers_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LayerProblem(np.ones((2, 4)), Grid(0.1, -8, 7), **kwargs)


def test_decoding_refuses_non_binary_choices():
    prob = LayerProblem(np.ones((1, 2)) * 0.05, Grid(0.1, -8, 7), X=np.eye(2))
    with pytest.raises(ValueError, match="only 0 and 1"):
        prob.w_hat(np.array([[0.5, 0]]))
    with pytest.raises(ValueError, match=r"x must have shape \(1, 2\)"):
        prob.loss(np.zeros((2, 2)))


# ---------------------------------------------------------------- the Gram matrix's PSD check at any scale
@settings(deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), rank=st.integers(0, 12),
       n_samples=st.sampled_from([1, 3, 50, 2000]), exp=st.integers(-150, 150))
def test_a_gram_matrix_is_accepted_at_any_scale(seed, n, rank, n_samples, exp):
    # X^T X / N computed in float64 (random or rank-deficient X, G of order 10^exp): its rounding
    # may give tiny negative eigenvalues, which the check must accept at every scale
    rng = np.random.default_rng(seed)
    r = min(rank, n)
    X = rng.normal(size=(n_samples, r)) @ rng.normal(size=(r, n)) if r else np.zeros((n_samples, n))
    X *= 10.0 ** (exp / 2)
    G = X.T @ X / n_samples
    prob = LayerProblem(np.zeros((1, n)), Grid(1.0, -8, 7), G=G)
    assert np.array_equal(prob.G, prob.G.T)


@pytest.mark.parametrize("exp", [-150, -12, 0, 12, 150])
@pytest.mark.parametrize("rank", [1, 3, 5])
def test_an_indefinite_g_is_refused_at_any_scale(exp, rank):
    # G = X^T X / N - delta I (X of rank < 6, so G is singular) with delta a millionth of G's scale (far above float64 rounding):
    # the layer's loss could be negative, so 0 would not bound it; the old absolute tolerance
    # accepted it whenever max|G| < 1e4
    rng = np.random.default_rng(rank)
    X = rng.normal(size=(rank + 1, rank)) @ rng.normal(size=(rank, 6)) * 10.0 ** (exp / 2)
    G = X.T @ X / X.shape[0]
    delta = 1e-6 * np.abs(G).max()
    with pytest.raises(ValueError, match="G must be positive semidefinite"):
        LayerProblem(np.zeros((1, 6)), Grid(1.0, -8, 7), G=G - delta * np.eye(6))
    LayerProblem(np.zeros((1, 6)), Grid(1.0, -8, 7), G=G)  # the singular G itself is accepted


@pytest.mark.parametrize("exp", [-150, -12, 0, 150])
def test_an_asymmetric_g_is_refused_at_any_scale(exp):
    G = np.eye(3) * 10.0**exp
    G[0, 1] = 1e-6 * 10.0**exp
    with pytest.raises(ValueError, match="G must be symmetric"):
        LayerProblem(np.zeros((1, 3)), Grid(1.0, -8, 7), G=G)
