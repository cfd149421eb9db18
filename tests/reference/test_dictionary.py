"""Dictionary learning (the V1 paper's procedure) and the sparse study's pieces."""

import numpy as np
import pytest

from reference.dictionary import learn_dictionary, random_dictionary
from reference.sparse_study import _headline_rows, _interp, atom_grid, format_tables
from solvers.sparse import code


def _data(seed=0, N=500, n=16, K=24):
    rng = np.random.default_rng(seed)
    true = random_dictionary(n, K, seed=seed + 1)
    A = rng.normal(size=(N, K)) * (rng.random((N, K)) < 0.15)
    return A @ true.T + 0.01 * rng.normal(size=(N, n))


def test_one_batch_is_ista_codes_then_one_gradient_step_and_renormalisation():
    X = _data()[:250]
    Phi0 = random_dictionary(16, 24, seed=5)
    res = learn_dictionary(X, 24, "l1", 0.05, batch_size=250, lr=0.3, init=Phi0)
    A = code(Phi0, X, "l1", 0.05, "ista", tol=1e-2, max_iter=5000, polish=False).codes
    want = Phi0 + 0.3 * (X - A @ Phi0.T).T @ A / 250
    want /= np.linalg.norm(want, axis=0)
    np.testing.assert_allclose(res.Phi, want, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(res.Phi, axis=0), 1.0)


@pytest.mark.parametrize("penalty, lam", [("l1", 0.05), ("l0", 0.01), ("l1/2", 0.03), ("cel0", 0.01)])
def test_learning_lowers_the_error_on_synthetic_sparse_data(penalty, lam):
    X = _data(N=5000, n=64, K=16)  # 16 true atoms, each signal uses about 2.4 of them
    seen = []
    res = learn_dictionary(X, 16, penalty, lam, batch_size=250, lr=1.0, seed=3, progress=seen.append)
    assert len(seen) == len(res.history) == 20 and seen[-1]["batch"] == 19
    first = code(random_dictionary(64, 16, seed=3), X[:500], penalty, lam, "fista").total
    last = code(res.Phi, X[:500], penalty, lam, "fista").total
    assert last < 0.5 * first
    again = learn_dictionary(X, 16, penalty, lam, batch_size=250, lr=1.0, seed=3)
    np.testing.assert_array_equal(again.Phi, res.Phi)


@pytest.mark.parametrize("call, message", [
    (lambda: learn_dictionary(np.ones((10, 4)), 3, batch_size=250), "at least batch_size == 250 rows, found 10"),
    (lambda: learn_dictionary(np.ones((300, 4)), 3, lr=0), "lr must be > 0"),
    (lambda: learn_dictionary(np.ones((300, 4)), 3, penalty="l2"), "penalty must be one of"),
    (lambda: learn_dictionary(np.ones((300, 4)), 3, init=np.ones((4, 2))), r"init must have shape \(4, 3\)"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_atom_grid_tiles_each_atom_scaled_to_unit_peak():
    Phi = np.arange(1, 4 * 5 + 1, dtype=float).reshape(5, 4).T  # 5 atoms of 2x2
    g = atom_grid(Phi, 2, pad=1)
    assert g.shape == (2 * 3 + 1, 3 * 3 + 1)
    np.testing.assert_allclose(g[1:3, 1:3], Phi[:, 0].reshape(2, 2) / Phi[:, 0].max())
    assert np.isnan(g[0]).all()


def test_headline_interpolates_sparsity_at_equal_error():
    curves = []
    for pen, scale in (("l1", 4.0), ("l0", 1.0)):
        for k in (1, 2, 4, 8, 16, 32):
            curves.append({"table": "curve", "penalty": pen, "K": 8, "n": 64, "mean_l0": scale * k,
                           "rel_error": 1.0 / k})
    row = [r for r in _headline_rows(curves, error_level=0.25) if r["versus"] == "l0"][0]
    assert row["sparsity_level"] == 4.0
    assert row["units_l1"] == pytest.approx(16.0) and row["units_other"] == pytest.approx(4.0)
    assert row["l1_denser_by"] == pytest.approx(4.0)
    assert row["l1_error_ratio"] == pytest.approx(4.0)
    assert np.isnan(_interp(100.0, [1, 2], [1, 2]))
    assert "### headline" in format_tables([{"table": "headline", **row}])
