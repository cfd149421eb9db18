"""scikit-learn's bundled 8x8 handwritten digits, split deterministically for the network studies.

The data set (1,797 grey-level images of the digits 0-9, 8 x 8 pixels with values 0..16) ships
inside scikit-learn, so it needs no download. scikit-learn is an optional dependency: install it
with ``pip install "qubo-reference[digits]"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check_positive_int

__all__ = ["Digits", "load_digits"]


@dataclass(frozen=True)
class Digits:
    """A train/test split of the digits; pixels scaled to [0, 1] (divided by 16).

    Attributes
    ----------
    X_train, X_test : float64 arrays of shape (n, 64), or (n, 16) when downsampled to 4 x 4
    y_train, y_test : int64 arrays of shape (n,), classes 0..9
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError(
            "reference.digits.load_digits needs the package 'scikit-learn' (pip install scikit-learn, "
            "or pip install 'qubo-reference[digits]')"
        ) from None
    bunch = _load()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def load_digits(n_test: int = 500, seed: int = 0, downsample: bool = False) -> Digits:
    """The digits split into a training and a test set by a seeded permutation.

    Parameters
    ----------
    n_test : int, default=500
        Size of the test set (the rest, 1,797 - n_test images, is the training set).
    seed : int, default=0
        Seed of the permutation (``numpy.random.default_rng``).
    downsample : bool, default=False
        Average 2 x 2 pixel blocks: 4 x 4 images, 16 features instead of 64.
    """
    n_test = check_positive_int(n_test, "n_test", minimum=1, maximum=1796)
    seed = check_positive_int(seed, "seed", minimum=0)
    X, y = _sklearn_digits()
    X = X / 16.0
    if downsample:
        X = X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    test, train = perm[:n_test], perm[n_test:]
    return Digits(X_train=X[train], y_train=y[train], X_test=X[test], y_test=y[test])
