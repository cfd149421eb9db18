r"""Dictionary learning as the V1 paper does it (design.md section 4), for any penalty.

One pass over the patches in batches (250 by default). For each batch ``X`` (shape (b, n)):

1. codes ``A`` by plain ISTA from zero codes (:func:`solvers.sparse.code`, method ``"ista"``),
   stopped when every code's relative change is below ``tol`` (1e-2) or after ``max_iter``
   (5000) iterations;
2. one gradient step on the reconstruction term ``1/2 ||X - A Phi^T||^2 / b``:
   ``Phi <- Phi + lr (X - A Phi^T)^T A / b``;
3. every atom rescaled to unit norm.

The paper trains on 1e6 whitened 16x16 patches (:mod:`reference.patches`) with 500 or 1000
units. Its learning rate was not checked here; ``lr`` is this module's choice (see
docs/sparse.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_float_array, check_positive_int
from .sparse import check_lambda, check_penalty

__all__ = ["DictionaryResult", "learn_dictionary", "random_dictionary"]


@dataclass
class DictionaryResult:
    """Outcome of :func:`learn_dictionary`.

    Attributes
    ----------
    Phi : ndarray of shape (n, K)
        Learned dictionary, unit-norm atoms as columns.
    history : list of dict
        Per batch: ``batch``, ``error`` (mean ``1/2 ||x - Phi a||^2`` before the update),
        ``l0`` (mean number of active units), ``iterations`` (ISTA), ``converged``.
    seconds : float
    """

    Phi: np.ndarray
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        return (f"DictionaryResult(Phi shape {self.Phi.shape}, batches {len(self.history)}, "
                f"last error {last.get('error', float('nan')):.4g}, last l0 {last.get('l0', float('nan')):.3g}, "
                f"seconds {self.seconds:.3g})")


def random_dictionary(n: int, K: int, seed=0) -> np.ndarray:
    """Gaussian atoms rescaled to unit norm, shape (n, K)."""
    n = check_positive_int(n, "n")
    K = check_positive_int(K, "K")
    Phi = np.random.default_rng(seed).normal(size=(n, K))
    return Phi / np.linalg.norm(Phi, axis=0)


def learn_dictionary(X, K: int, penalty: str = "l1", lam: float = 0.1, batch_size: int = 250,
                     lr: float = 1.0, tol: float = 1e-2, max_iter: int = 5000, seed=0, init=None,
                     progress=None) -> DictionaryResult:
    """Learn ``K`` unit-norm atoms from the rows of ``X`` in one pass (the V1 paper's procedure).

    Parameters
    ----------
    X : array of shape (N, n)
        Training signals (whitened patches), one a row, used in the given order.
    K : int
        Number of atoms.
    penalty : {"l0", "l1", "l1/2", "cel0"}, default="l1"
    lam : float >= 0, default=0.1
        ``lambda`` in this project's convention (:mod:`reference.penalties`).
    batch_size : int, default=250
    lr : float > 0, default=1.0
        Step of the dictionary update (on the batch-mean gradient). On whitened patches of
        variance 0.1, 0.1 barely moves random atoms in 15,000 patches; 1 to 4 gives oriented,
        localised atoms (the study uses 4 for its short runs).
    tol, max_iter : ISTA's stopping rule, default 1e-2 and 5000.
    seed : int, default=0
        Seed of the random initial dictionary (when ``init`` is None).
    init : array of shape (n, K), optional
    progress : callable, optional
        Called as ``progress(record)`` after each batch with that batch's history record.

    Returns
    -------
    DictionaryResult
    """
    from solvers.sparse import code  # solvers builds on reference; import at call time

    X = as_float_array(X, "X", ndim=2)
    N, n = X.shape
    K = check_positive_int(K, "K")
    penalty = check_penalty(penalty)
    lam = check_lambda(lam)
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = float(as_float_array(lr, "lr", ndim=0))
    if lr <= 0:
        raise ValueError(f"lr must be > 0, found {lr!r}")
    if N < batch_size:
        raise ValueError(f"X must have at least batch_size == {batch_size} rows, found {N}")
    if init is None:
        Phi = random_dictionary(n, K, seed)
    else:
        Phi = as_float_array(init, "init", shape=(n, K))
        Phi = Phi / np.linalg.norm(Phi, axis=0)
    history = []
    t0 = time.perf_counter()
    n_batches = N // batch_size
    for b in range(n_batches):
        Xb = X[b * batch_size:(b + 1) * batch_size]
        res = code(Phi, Xb, penalty, lam, "ista", tol=tol, max_iter=max_iter, polish=False)
        A = res.codes
        R = Xb - A @ Phi.T
        record = {"batch": b, "batches": n_batches, "error": float(0.5 * np.mean(np.sum(R * R, axis=1))),
                  "l0": float(np.mean(np.count_nonzero(A, axis=1))), "iterations": res.iterations,
                  "converged": res.converged}
        Phi = Phi + lr * (R.T @ A) / batch_size
        norms = np.linalg.norm(Phi, axis=0)
        dead = norms == 0
        if np.any(dead):  # an atom pushed exactly to zero: restart it on a random direction
            Phi[:, dead] = random_dictionary(n, int(dead.sum()), seed=(seed, b))
            norms[dead] = 1.0
        Phi = Phi / norms
        history.append(record)
        if progress is not None:
            progress(record)
    return DictionaryResult(Phi=Phi, history=history, seconds=time.perf_counter() - t0)
