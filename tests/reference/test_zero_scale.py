"""A grid scale of 0 on an all-zero row (a dead channel): accepted, the row fixed at 0 with loss 0;
on a row with a nonzero weight: refused, naming the row. Oracles: brute force over every rounding
of the live rows with numpy's own loss, and the same problem without the dead row."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import Grid, grid_neighbours
from reference.compare.cli import main
from reference.compare.problem_files import load_layer
from reference.testing import rounding_report
from solvers import ConvProblem, LayerProblem, solve


def _layer(seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(3, 4))
    W[1] = 0.0  # the dead channel
    X = rng.normal(size=(20, 4))
    s = np.abs(W).max(axis=1) / 7  # min-max per channel: 0 on the dead row
    return W, X, s


def test_zero_scale_on_an_all_zero_row_fixes_it_at_zero():
    W, X, s = _layer()
    g = Grid(s, -8, 7)
    nb = grid_neighbours(W, g)
    assert np.all(nb.movable[1] == 0) and np.all(nb.lo[1] == 0) and np.all(nb.residual[1] == 0)
    p = LayerProblem(W, g, X=X)
    assert p.free[1].size == 0
    assert np.all(p.w_hat(np.ones(W.shape))[1] == 0)


def test_the_optimum_equals_brute_force_and_the_dead_row_adds_nothing():
    W, X, s = _layer(1)
    p = LayerProblem(W, Grid(s, -8, 7), X=X)
    res = solve(p, "exhaustive")
    # oracle: every rounding of the live rows, loss by numpy directly (mean over samples)
    best = 0.0
    for k in (0, 2):
        lo = np.floor(W[k] / s[k])
        row = min(float(np.mean(((X @ (s[k] * (lo + np.array(v)) - W[k])) ** 2)))
                  for v in itertools.product((0, 1), repeat=4))
        best += row
    assert res.energy == pytest.approx(best, rel=1e-12)
    live = LayerProblem(W[[0, 2]], Grid(s[[0, 2]], -8, 7), X=X)
    assert solve(live, "exhaustive").energy == pytest.approx(res.energy, rel=1e-12)


def test_a_zero_scale_on_a_nonzero_row_is_refused_naming_it():
    W, X, s = _layer()
    s = s.copy()
    s[2] = 0.0
    with pytest.raises(ValueError, match=r"grid scale is 0 for row 2 \(output channel 2\).*positive scale"):
        LayerProblem(W, Grid(s, -8, 7), X=X)
    with pytest.raises(ValueError, match="scale must be > 0"):
        Grid([-0.1, 0.1, 0.1], -8, 7)


def test_a_convolution_with_a_dead_channel():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(3, 2, 2, 2))
    W[0] = 0.0
    s = np.abs(W.reshape(3, -1)).max(axis=1) / 7
    p = ConvProblem(W, Grid(s, -8, 7), rng.normal(size=(2, 2, 4, 4)))
    assert p.free[0].size == 0 and p.free[1].size == 8


def test_a_port_judged_on_a_dead_row():
    W, X, s = _layer(3)
    g = Grid(s, -8, 7)
    W_hat = LayerProblem(W, g, X=X).w_hat(np.zeros(W.shape))
    assert rounding_report(W, g, X=X, W_hat=W_hat).loss >= 0
    W_bad = W_hat.copy()
    W_bad[1, 0] = 0.25  # the dead row's only grid point is 0
    with pytest.raises(ValueError, match=r"W_hat\[1, 0\] == 0.25 is not on the grid"):
        rounding_report(W, g, X=X, W_hat=W_bad)


def test_compare_accepts_a_file_with_a_dead_channel_and_says_so(tmp_path, capsys):
    W, X, s = _layer(4)
    path = tmp_path / "dead.npz"
    np.savez(path, W=W, X=X, scale=s, qmin=-8, qmax=7)
    assert load_layer(str(path)).free[1].size == 0
    assert main(["--problem", str(path), "--methods", "exhaustive,nearest"]) == 0
    assert "1 all-zero row(s) with scale 0, fixed at 0 (loss 0)" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    s2 = s.copy()
    s2[0] = 0.0
    np.savez(bad, W=W, X=X, scale=s2, qmin=-8, qmax=7)
    assert main(["--problem", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "grid scale is 0 for row 0" in err and "\n" not in err


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), dead=st.lists(st.booleans(), min_size=2, max_size=4),
       magnitude=st.sampled_from([1e-150, 1e-3, 1.0, 1e100]), bits=st.sampled_from([2, 4]),
       on_grid=st.booleans())
def test_dead_rows_change_nothing_for_the_live_rows(seed, dead, magnitude, bits, on_grid):
    """Property: a layer with all-zero rows on scale 0 has the optimum (by enumeration) of its live
    rows alone, and every rounding's loss is the live rows' loss; weights on grid points (ties)
    and extreme magnitudes included."""
    rng = np.random.default_rng(seed)
    out, n_in = len(dead), 3
    qmax = 2 ** (bits - 1) - 1
    s = magnitude * rng.uniform(0.5, 2.0, size=out)
    W = (rng.integers(-qmax, qmax + 1, size=(out, n_in)) + (0 if on_grid else rng.uniform(0, 1, (out, n_in)))) * s[:, None]
    W[np.array(dead)] = 0.0
    s = np.where(np.array(dead), 0.0, s)
    X = rng.normal(size=(8, n_in)) / magnitude
    live = ~np.array(dead)
    p = LayerProblem(W, Grid(s, -qmax - 1, qmax), X=X)
    assert all(p.free[k].size == 0 for k in np.flatnonzero(~live))
    x = rng.integers(0, 2, size=W.shape)
    assert p.row_losses(x)[~live].tolist() == [0.0] * int((~live).sum())
    if live.any():
        q = LayerProblem(W[live], Grid(s[live], -qmax - 1, qmax), X=X)
        assert p.loss(x) == pytest.approx(q.loss(x[live]), rel=1e-12)
        assert solve(p, "exhaustive").energy == pytest.approx(solve(q, "exhaustive").energy, rel=1e-12, abs=0)
    else:
        assert solve(p, "exhaustive").energy == 0.0
