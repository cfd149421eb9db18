"""Dictionary learning (the V1 paper's procedure) and the sparse study's pieces."""

import numpy as np
import pytest

from solvers.sparse import learn_dictionary, load_checkpoint, random_dictionary, snapshot_path
from reference.patches import extract_patches
from reference.studies.sparse_study import atom_grid, format_tables, headline_rows, interp
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
    A = code(Phi0, X, "l1", 0.05, "ista", tol=1e-2, max_iter=5000, certify=False).x
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
    first = code(random_dictionary(64, 16, seed=3), X[:500], penalty, lam, "fista").energy
    last = code(res.Phi, X[:500], penalty, lam, "fista").energy
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
    row = [r for r in headline_rows(curves, error_level=0.25) if r["versus"] == "l0"][0]
    assert row["sparsity_level"] == 4.0
    assert row["units_l1"] == pytest.approx(16.0) and row["units_other"] == pytest.approx(4.0)
    assert row["l1_denser_by"] == pytest.approx(4.0)
    assert row["l1_error_ratio"] == pytest.approx(4.0)
    assert np.isnan(interp(100.0, [1, 2], [1, 2]))
    assert "### headline" in format_tables([{"table": "headline", **row}])


# ------------------------------------------------------------------ checkpoints and resumption
class _Stop(Exception):
    pass


@pytest.mark.parametrize("penalty, dtype", [("l0", "float32"), ("cel0", "float64"), ("l1", "float32")])
def test_a_run_killed_mid_way_resumes_to_the_same_bits(tmp_path, penalty, dtype):
    X = _data(N=250 * 12, n=16, K=24)
    kw = dict(batch_size=250, lr=1.0, seed=4, dtype=dtype)
    whole = learn_dictionary(X, 20, penalty, 0.02, **kw)
    path = str(tmp_path / "run.npz")

    def die_at_8(rec):
        if rec["batch"] == 7:
            raise _Stop

    with pytest.raises(_Stop):  # checkpoints every 3 batches: the last one holds 6 batches
        learn_dictionary(X, 20, penalty, 0.02, checkpoint=path, checkpoint_every=3, progress=die_at_8, **kw)
    assert load_checkpoint(path)["next_batch"] == 6
    resumed = learn_dictionary(X, 20, penalty, 0.02, checkpoint=path, checkpoint_every=3, **kw)
    assert resumed.start_batch == 6 and len(resumed.history) == 12
    np.testing.assert_array_equal(resumed.Phi, whole.Phi)
    assert [h["error"] for h in resumed.history] == [h["error"] for h in whole.history]
    # a finished run read back, and a longer run continued from a shorter one
    np.testing.assert_array_equal(load_checkpoint(path, 16, 20)["Phi"], whole.Phi)
    short = str(tmp_path / "short.npz")
    learn_dictionary(X, 20, penalty, 0.02, checkpoint=short, n_batches=5, snapshots=(2, 5), **kw)
    assert load_checkpoint(snapshot_path(short, 2))["next_batch"] == 2
    again = learn_dictionary(X, 20, penalty, 0.02, checkpoint=short, **kw)
    np.testing.assert_array_equal(again.Phi, whole.Phi)


def test_a_checkpoint_of_another_run_or_a_damaged_one_is_refused(tmp_path):
    X = _data(N=500, n=16, K=24)
    path = str(tmp_path / "a.npz")
    learn_dictionary(X, 20, "l0", 0.02, checkpoint=path, seed=1)
    with pytest.raises(ValueError, match="comes from another run"):
        learn_dictionary(X, 20, "l0", 0.03, checkpoint=path, seed=1)
    with pytest.raises(ValueError, match="comes from another run"):
        learn_dictionary(X + 1e-9, 20, "l0", 0.02, checkpoint=path, seed=1)
    with pytest.raises(ValueError, match=r"shape \(16, 21\)"):
        learn_dictionary(X, 21, "l0", 0.02, checkpoint=path, seed=1)
    state = load_checkpoint(path)
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, Phi=np.where(np.eye(16, 20) > 0, np.nan, state["Phi"]), next_batch=np.int64(2),
             fingerprint=np.array(state["fingerprint"]),
             **{k: np.zeros(2) for k in ("error", "l0", "iterations", "converged")})
    with pytest.raises(ValueError, match="finite 2-D float64"):
        load_checkpoint(bad)
    np.savez(bad, Phi=np.array([object()], dtype=object))  # a pickle inside: never loaded
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="ending in .npz"):
        learn_dictionary(X, 20, "l0", 0.02, checkpoint=str(tmp_path / "a.pkl"))


def test_a_patch_stream_gives_the_same_rows_however_it_is_read():
    from reference.patches import PatchStream

    rng = np.random.default_rng(0)
    images = [rng.normal(size=(40, 50)), rng.normal(size=(30, 30))]
    s = PatchStream(images, 1000, size=8, seed=5, block=250)
    whole = s.rows(0, 1000)
    parts = np.concatenate([s.rows(0, 99), s.rows(99, 600), s.rows(600, 1000)])
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(whole[250:500], extract_patches(images, 250, 8, seed=(5, 1)))
    assert PatchStream(images, 10, size=8, seed=6).fingerprint != s.fingerprint
    with pytest.raises(ValueError, match="0 <= start <= stop <= 1000"):
        s.rows(10, 1001)
