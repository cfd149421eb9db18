"""The local (layer-wise) reconstruction loss, in the unit every table of the project uses.

Eq. 20 of Nagel et al. (2020), with AIMET's normalisation (docs/conventions.md):

.. math:: L(\\hat W) = \\frac1N \\sum_n \\|(W - \\hat W) x_n\\|^2 = \\sum_k e_k^T G e_k,
          \\qquad G = X^T X / N,

with ``e_k`` the error of output row ``k`` and ``X`` of shape (N, in), one sample a row.
"""

from __future__ import annotations

import numpy as np

from .validation import as_float_array

__all__ = ["gram", "layer_loss", "layer_loss_gram"]


def gram(X) -> np.ndarray:
    """``G = X^T X / N`` for calibration inputs ``X`` of shape (N, in)."""
    X = as_float_array(X, "X", ndim=2)
    if X.shape[0] == 0:
        raise ValueError("X must have at least one sample (row), found 0")
    return X.T @ X / X.shape[0]


def _check_pair(W, W_hat, n_in: int, n_in_name: str):
    W = as_float_array(W, "W", ndim=2)
    if W.shape[1] != n_in:
        raise ValueError(f"W has {W.shape[1]} inputs (columns) but {n_in_name} has {n_in}")
    W_hat = as_float_array(W_hat, "W_hat", shape=W.shape)
    return W, W_hat


def layer_loss(W, X, W_hat) -> float:
    """Eq. 20 computed from the samples: ``(1/N) sum_n ||(W - W_hat) x_n||^2``.

    Parameters
    ----------
    W, W_hat : arrays of shape (out, in)
    X : array of shape (N, in)
    """
    X = as_float_array(X, "X", ndim=2)
    if X.shape[0] == 0:
        raise ValueError("X must have at least one sample (row), found 0")
    W, W_hat = _check_pair(W, W_hat, X.shape[1], "X")
    R = X @ (W - W_hat).T
    return float(np.einsum("ij,ij->", R, R) / X.shape[0])


def layer_loss_gram(W, G, W_hat) -> float:
    """Eq. 20 computed through the Gram matrix: ``sum_k e_k^T G e_k``, ``e = W - W_hat``."""
    G = as_float_array(G, "G", ndim=2)
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"G must be square, found shape {G.shape}")
    W, W_hat = _check_pair(W, W_hat, G.shape[0], "G")
    E = W - W_hat
    return float(np.einsum("ki,ij,kj->", E, G, E, optimize=True))
