r"""The sparse coding objective for a batch of signals (docs/sparse.md).

.. math:: F(a) = \tfrac12 \|x - \Phi a\|^2 + \sum_i r_i(a_i), \qquad r_i = \lambda P(a_i)

Shapes (batch first, as for layers): signals ``X`` of shape (N, n), one signal a row;
dictionary ``Phi`` of shape (n, K), one atom a column (norms need not be 1); codes ``A`` of
shape (N, K); the reconstruction is ``A @ Phi.T``. The penalties and their proximal operators
live in :mod:`reference.penalties`; conversions of ``lambda`` to other codes' conventions are
:func:`sklearn_alpha`, :func:`lasso_alpha` and :func:`v1_lambda`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .validation import as_float_array, describe, real_to_float
from .penalties import PENALTIES, penalty_elementwise

__all__ = [
    "PENALTIES",
    "atom_norms",
    "objective_rows",
    "check_penalty",
    "check_lambda",
    "check_dictionary",
    "check_signals",
    "lasso_alpha",
    "objective",
    "penalty_value",
    "reconstruction_error",
    "sklearn_alpha",
    "v1_lambda",
]


def check_penalty(penalty) -> str:
    """A name from :data:`PENALTIES`."""
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {list(PENALTIES)}, found {penalty!r}")
    return penalty


def check_lambda(lam, name: str = "lam") -> float:
    """A finite ``lambda >= 0`` (a boolean is refused, not read as 0 or 1)."""
    if np.asarray(lam).dtype == np.bool_:
        raise TypeError(f"{name} must be a finite number >= 0, found {describe(lam)}")
    if isinstance(lam, numbers.Real):  # a Python int beyond float64 (10**400) is refused as not finite
        lam = real_to_float(lam)
    v = as_float_array(lam, name, ndim=0)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, found {float(v)!r}")
    return float(v)


def check_dictionary(Phi, name: str = "Phi") -> np.ndarray:
    """A finite (n, K) dictionary with no zero atom."""
    Phi = as_float_array(Phi, name, ndim=2)
    if Phi.shape[0] == 0 or Phi.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one atom, found shape {Phi.shape}")
    zero = ~np.any(Phi != 0, axis=0)
    if np.any(zero):
        raise ValueError(f"{name} must have no zero atom (column), found {int(np.sum(zero))}")
    with np.errstate(under="ignore"):
        lost = np.linalg.norm(Phi, axis=0) == 0
    if np.any(lost):  # nonzero entries whose squares underflow: the norm is 0 in float64, not the atom
        raise ValueError(f"{name} has {int(np.sum(lost))} atom(s) (columns) whose norm underflows to 0 in float64 "
                         f"(largest entry {float(np.max(np.abs(Phi[:, lost]))):.3g}, squares below the float64 "
                         f"range); rescale {name}")
    return Phi


def check_signals(X, n: int, name: str = "X") -> tuple[np.ndarray, bool]:
    """Signals of shape (N, n) or one signal of shape (n,) -> ``(2-D array, was_1d)``."""
    X = as_float_array(X, name)
    single = X.ndim == 1
    if single:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n:
        raise ValueError(f"{name} must have shape (N, {n}) or ({n},), found {X.shape}")
    return X, single


def atom_norms(Phi) -> np.ndarray:
    """``||phi_i||`` of each column, shape (K,)."""
    return np.linalg.norm(np.asarray(Phi, dtype=np.float64), axis=0)


def _codes(A, N, K, single):
    A = as_float_array(A, "A")
    if single and A.ndim == 1:
        A = A[None, :]
    if A.shape != (N, K):
        raise ValueError(f"A must have shape ({N}, {K}), found {A.shape}")
    return A


def penalty_value(A, penalty: str, lam, Phi=None) -> np.ndarray:
    """``sum_i r_i(a_i)`` per row of ``A`` (shape (N, K) or (K,)); ``Phi`` is needed for CEL0."""
    penalty = check_penalty(penalty)
    lam = check_lambda(lam)
    A = as_float_array(A, "A")
    norms = None
    if penalty == "cel0":
        if Phi is None:
            raise ValueError("Phi is needed for penalty 'cel0' (it depends on the atom norms)")
        norms = atom_norms(check_dictionary(Phi))
        if norms.shape[0] != A.shape[-1]:
            raise ValueError(f"A must have {norms.shape[0]} columns (one per atom), found {A.shape}")
    return penalty_elementwise(A, penalty, lam, norms).sum(axis=-1)


def reconstruction_error(Phi, X, A) -> np.ndarray:
    """``1/2 ||x - Phi a||^2`` per signal, float64 (shape (N,), or a float for one signal)."""
    Phi = check_dictionary(Phi)
    X, single = check_signals(X, Phi.shape[0])
    A = _codes(A, X.shape[0], Phi.shape[1], single)
    R = X - A @ Phi.T
    e = 0.5 * np.einsum("ij,ij->i", R, R)
    return float(e[0]) if single else e


def objective(Phi, X, A, penalty: str, lam) -> np.ndarray:
    r"""``F(a) = 1/2 ||x - Phi a||^2 + sum_i r_i(a_i)`` per signal, in float64.

    Parameters
    ----------
    Phi : array of shape (n, K)
        Dictionary, one atom a column.
    X : array of shape (N, n) or (n,)
        Signals, one a row.
    A : array of shape (N, K) or (K,)
        Codes, one a row.
    penalty : {"l0", "l1", "l1/2", "cel0"}
    lam : float >= 0

    Returns
    -------
    ndarray of shape (N,), or a float for one signal.
    """
    penalty = check_penalty(penalty)
    lam = check_lambda(lam)
    Phi = check_dictionary(Phi)
    X, single = check_signals(X, Phi.shape[0])
    A = _codes(A, X.shape[0], Phi.shape[1], single)
    norms = atom_norms(Phi) if penalty == "cel0" else None
    f = objective_rows(Phi, X, A, penalty, lam, norms)
    return float(f[0]) if single else f


def objective_rows(Phi, X, A, penalty, lam, norms=None) -> np.ndarray:
    """:func:`objective` on clean 2-D float64 arrays (no checks; the solvers' own recomputation)."""
    R = X - A @ Phi.T
    return 0.5 * np.einsum("ij,ij->i", R, R) + penalty_elementwise(A, penalty, lam, norms).sum(axis=1)


def sklearn_alpha(lam) -> float:
    """``alpha`` of scikit-learn's ``sparse_encode(algorithm="lasso_cd" or "lasso_lars")`` for l1.

    ``sparse_encode`` divides its ``alpha`` by the signal dimension before calling ``Lasso``,
    which minimises ``1/(2 n) ||x - Phi a||^2 + alpha ||a||_1``: the two cancel, so its ``alpha``
    is this module's ``lambda``.
    """
    return check_lambda(lam)


def lasso_alpha(lam, n: int) -> float:
    """``alpha`` of ``sklearn.linear_model.Lasso`` fitted on one signal of dimension ``n``.

    ``Lasso`` minimises ``1/(2 n) ||x - Phi a||^2 + alpha ||a||_1 = F(a) / n``, so
    ``alpha = lambda / n`` and its objective times ``n`` is ``F``.
    """
    return check_lambda(lam) / int(n)


def v1_lambda(lam_v1, penalty: str) -> float:
    """This module's ``lambda`` for the V1 paper code's ``lambda`` of the same penalty.

    The paper is Rentzeperis, Calatroni, Perrinet and Prandi, "Beyond l1 sparse coding in V1",
    PLoS Comput. Biol. 19(9) e1011459 (2023); its code is github.com/rentzi/sparseRegularizers
    (``generativeModels.py``). Each iteration takes a gradient step of size ``step`` on
    ``1/2 ||x - Phi a||^2`` and thresholds:

    * hard: zeroes entries below ``sqrt(step * lam_v1)``, the prox of ``step * (lam_v1 / 2)
      [a != 0]``: ``lambda = lam_v1 / 2``;
    * soft: subtracts ``step * lam_v1``: ``lambda = lam_v1``;
    * half: Xu et al.'s operator for ``(x - u)^2 + mu |x|^(1/2)`` with ``mu = step * lam_v1``
      (no 1/2 in front of the square), the prox of ``step * (lam_v1 / 2) |a|^(1/2)``:
      ``lambda = lam_v1 / 2``;
    * CEL0: the prox of Soubies et al.'s penalty with step ``step`` and ``lambda = lam_v1`` on
      unit-norm atoms (the code renormalises its atoms): ``lambda = lam_v1``.

    So the code's hard and CEL0 settings with the same ``lam_v1`` relax different l0 problems
    (``lam_v1 / 2`` against ``lam_v1`` per unit). Tested against the formulas in
    ``tests/reference/test_sparse.py``.
    """
    penalty = check_penalty(penalty)
    lam_v1 = check_lambda(lam_v1, "lam_v1")
    return lam_v1 / 2.0 if penalty in ("l0", "l1/2") else lam_v1