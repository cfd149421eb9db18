"""Eq. 25 with ReLU for convolutions, against the dense relaxation and direct convolution loops."""

from __future__ import annotations

import numpy as np
import pytest

from reference.conv import pad_input, all_patches, conv_geometry
from reference.grid import fit_grid
from solvers import ConvProblem
from solvers.conv_sequential import ConvActivationLoss, conv_activation_loss, conv_asymmetric_relaxation
from solvers.relaxation import Relaxation
from solvers.sequential import asymmetric_relaxation
from tests.solvers.test_conv import direct_conv


def _setup(groups, seed=0):
    rng = np.random.default_rng(seed)
    c_in, c_out = 2 * groups, 2 * groups
    W = rng.normal(size=(c_out, 2, 3, 3))
    X = rng.normal(size=(6, c_in, 5, 5))
    X_hat = X + 0.05 * rng.normal(size=X.shape)
    b = 0.1 * rng.normal(size=c_out)
    geo = conv_geometry(W.shape, c_in, 1, 1, 1, groups)
    P = all_patches(pad_input(X, geo), geo, 5, 5)
    P_hat = all_patches(pad_input(X_hat, geo), geo, 5, 5)
    return W, X, X_hat, b, geo, P, P_hat


@pytest.mark.parametrize("groups", [1, 2])
def test_activation_loss_equals_direct_convolution(groups):
    W, X, X_hat, b, geo, P, P_hat = _setup(groups)
    grid = fit_grid(W.reshape(W.shape[0], -1), bits=3)
    W_hat = ConvProblem(W, grid, X, padding=1, groups=groups).w_hat_4d(np.zeros((W.shape[0], 18)))
    kw = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=groups)
    Y = np.maximum(direct_conv(X, W, **kw) + b[None, :, None, None], 0)
    Yh = np.maximum(direct_conv(X_hat, W_hat, **kw) + b[None, :, None, None], 0)
    want = float(np.sum((Y - Yh) ** 2) / (6 * 25))
    got = conv_activation_loss(W.reshape(W.shape[0], -1), b, W_hat.reshape(W.shape[0], -1), P, P_hat)
    assert got == pytest.approx(want, rel=1e-10)


def test_one_group_equals_the_dense_relaxation_on_patches():
    W, X, X_hat, b, geo, P, P_hat = _setup(1)
    W2 = W.reshape(2, -1)
    grid = fit_grid(W2, bits=3)
    kw = dict(iterations=300, batch_size=64, seed=3)
    conv = conv_asymmetric_relaxation(W2, b, grid, P, P_hat, "relu", **kw)
    dense = asymmetric_relaxation(W2, b, grid, P[:, 0], P_hat[:, 0], "relu", **kw)
    np.testing.assert_array_equal(conv.x, dense.x)
    assert conv.loss == pytest.approx(dense.loss, rel=1e-10)
    assert conv.info["soft_loss"] == pytest.approx(dense.info["soft_loss"], rel=1e-8)
    np.testing.assert_array_equal(conv.info["not_binary_where"], dense.info["not_binary_where"])


def test_grouped_run_reports_the_loss_of_its_rounding():
    W, X, X_hat, b, geo, P, P_hat = _setup(2, seed=1)
    W2 = W.reshape(4, -1)
    grid = fit_grid(W2, bits=2)
    run = conv_asymmetric_relaxation(W2, b, grid, P, P_hat, "relu", iterations=200, batch_size=50, seed=0)
    prob = ConvProblem(W, grid, X, padding=1, groups=2)
    assert run.x.shape == (4, 18) and set(np.unique(run.x)) <= {0, 1}
    assert run.loss == pytest.approx(conv_activation_loss(W2, b, prob.w_hat(run.x), P, P_hat), rel=1e-12)
    with pytest.raises(ValueError, match="batch_size must be <= the number of patches M"):
        conv_asymmetric_relaxation(W2, b, grid, P, P_hat, iterations=2, batch_size=10_000)
    with pytest.raises(ValueError, match="supports the 'sample' normalisation"):
        conv_asymmetric_relaxation(W2, b, grid, P, P_hat, preset="torch_ao", iterations=2, batch_size=8)


def test_grouped_gradient_equals_central_differences():
    W, X, X_hat, b, geo, P, P_hat = _setup(2, seed=2)
    W2 = W.reshape(4, -1)
    term = ConvActivationLoss(W2, b, fit_grid(W2, bits=3), P, P_hat, "relu")
    rel = Relaxation(term)
    V = np.random.default_rng(3).normal(size=term.shape)
    idx = np.random.default_rng(4).choice(P.shape[0], 30, replace=False)
    for lam, beta, rows in ((0.0, None, None), (0.3, 4.0, idx)):
        J, D, _, g = rel.value_and_grad(V, lam, beta, rows)
        g = g.copy()
        if rows is None:  # D is Eq. 25 of the soft weights of Eq. 22 (clip as written), on all patches
            grid = fit_grid(W2, bits=3)
            s, z = grid.per_row(4)
            h = np.clip(1.2 / (1 + np.exp(-V.reshape(4, -1))) - 0.1, 0, 1)
            Wt = s * (np.clip(np.floor(W2 / s) + z + h, grid.qmin, grid.qmax) - z)
            assert D == pytest.approx(conv_activation_loss(W2, b, Wt, P, P_hat), rel=1e-12)
        step = 1e-6
        fd = np.zeros_like(V)
        for ij in np.ndindex(V.shape):
            E = np.zeros_like(V)
            E[ij] = step
            fd[ij] = (rel.value_and_grad(V + E, lam, beta, rows)[0] - rel.value_and_grad(V - E, lam, beta, rows)[0]) / (2 * step)
        assert np.max(np.abs(fd - g)) <= 1e-5 * max(1.0, np.max(np.abs(g)))
