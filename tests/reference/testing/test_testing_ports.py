"""What real ports hand over: off-grid soft weights (judged as deployed) and conv layers."""

from __future__ import annotations

import numpy as np
import pytest

from reference.grid import Grid, fit_grid
from reference.loss import layer_loss
from reference.testing import assert_rounding_within, rounding_report
from tests.solvers.test_conv import direct_loss


def _soft(seed=0, out=4, fan_in=10, n=40):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(out, fan_in))
    X = rng.normal(size=(n, fan_in))
    grid = fit_grid(W, bits=3)
    s = grid.scale.reshape(-1, 1)
    lo = np.clip(np.floor(W / s), grid.qmin, grid.qmax)
    free = (lo < grid.qmax) & (W / s > grid.qmin)
    h = rng.uniform(0, 1, size=W.shape)
    h[rng.random(W.shape) < 0.5] = 1.0  # half binarised, half left soft (as AdaRound ports return them)
    h[h == 0.5] = 0.4
    h = np.where(free, h, 0.0)
    return W, X, grid, s * (lo + h), free, h


def test_off_grid_weights_are_counted_and_judged_as_deployed():
    W, X, grid, W_soft, free, h = _soft()
    soft = free & (h != 0) & (h != 1)
    with pytest.raises(ValueError, match=rf"{int(soft.sum())} of {W.size} weights are off the grid, up to 0\.\d+ of "
                                         r"a step; pass off_grid='nearest'"):
        rounding_report(W, grid, X=X, W_hat=W_soft)
    rep = rounding_report(W, grid, X=X, W_hat=W_soft, off_grid="nearest")
    assert rep.off_grid == int(soft.sum())
    assert rep.off_grid_max == pytest.approx(np.max(np.minimum(h[soft], 1 - h[soft])), rel=1e-9)
    deployed = grid.scale.reshape(-1, 1) * np.round(W_soft / grid.scale.reshape(-1, 1))
    assert rep.loss == pytest.approx(layer_loss(W, X, deployed), rel=1e-10)
    assert rep.given_loss == pytest.approx(layer_loss(W, X, W_soft), rel=1e-10)
    assert rep.optimum <= rep.loss * (1 + 1e-12)
    assert "off the grid" in str(rep)
    assert rep.loss > rep.optimum * (1 + 1e-9)  # the deployed rounding is not optimal here
    with pytest.raises(AssertionError, match="given weights were off the grid"):
        assert_rounding_within(W, grid, X=X, W_hat=W_soft, off_grid="nearest")


def test_on_grid_weights_report_no_off_grid_and_bad_option_is_refused():
    W, X, grid, _, _, _ = _soft(1)
    q = np.clip(np.round(W / grid.scale.reshape(-1, 1)), grid.qmin, grid.qmax)
    rep = rounding_report(W, grid, X=X, q=q, off_grid="nearest")
    assert rep.off_grid == 0 and rep.given_loss is None
    with pytest.raises(ValueError, match="off_grid must be one of"):
        rounding_report(W, grid, X=X, q=q, off_grid="round")


def test_conv_rounding_report_uses_the_patch_loss():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(3, 2, 3, 3))
    X = rng.normal(size=(4, 2, 5, 5))
    grid = Grid(np.full(3, 0.4), -4, 3)
    W_hat = 0.4 * np.clip(np.floor(W / 0.4), -4, 3)  # floor: an up/down rounding
    rep = rounding_report(W, grid, X=X, W_hat=W_hat, conv=dict(stride=2, padding=1))
    want = direct_loss(W, X, W_hat, stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1)
    assert rep.loss == pytest.approx(want, rel=1e-10)
    assert rep.optimum is not None
    assert rep.optimum <= want * (1 + 1e-12)
    q = np.clip(np.floor(W / 0.4), -4, 3)
    assert rounding_report(W, grid, X=X, q=q, conv=dict(stride=2, padding=1)).loss == rep.loss
    with pytest.raises(ValueError, match="needs its inputs X"):
        rounding_report(W, grid, G=np.eye(18), q=q)
    with pytest.raises(ValueError, match="conv settings apply to a 4-D W"):
        rounding_report(W.reshape(3, -1), grid, X=X.reshape(4, -1)[:, :18], q=q.reshape(3, -1), conv=dict(stride=2))
