"""The exact least-squares form of a binary quadratic model (docs/exact.md, "The exact
least-squares form"), shared by the tree search, the box-QP bound and the GPTQ rule.

For binary ``v``, ``v_i^2 = v_i``, so for any ``d``
``E(v) = v^T (P + d I) v + (q - d)^T v + c``. The shift ``d`` is chosen so that
``A = P + d I`` is positive *definite* (``lambda_min(A) = mu``, a ``1e-6`` fraction of
``||P||_2``): a semidefinite or indefinite ``P`` needs no special case, and the energy of
every binary state is unchanged (not regularised: exactly rewritten). With the Cholesky
factor ``A = R^T R`` (``R`` upper triangular) and ``R^T y = -(q - d)/2``:

.. math:: E(v) = \\|R v - y\\|^2 + c_0, \\qquad c_0 = c - \\|y\\|^2 .

A diagonal vector ``u`` may be moved first (``P + diag(u)``, ``q - u``; the tree uses the
SDP-dual diagonal of :mod:`solvers.diagonal`); any ``u`` gives an exact rewrite.

**Runtime check.** For binary ``v`` the difference of the two sides is
``v^T M v + l^T v + k`` with ``M = P - R^T R`` (in the permuted order), ``l = q + 2 R^T y`` and
``k = c - c_0 - ||y||^2``; it vanishes on every binary state exactly when ``M``'s off-diagonal
part, ``diag(M) + l`` and ``k`` vanish. Their absolute sum, ``residual``, bounds
``|E(v) - ||R v - y||^2 - c_0|`` over all ``2^n`` states, costs one ``O(n^3)`` product (as the
Cholesky factorisation), and is refused (ValueError) above ``eps / 2``: pruning compares bounds
of the form against ``U + eps``, so a residual up to ``eps / 2`` leaves ``eps / 2`` for the
rounding of the node bounds themselves and no strictly better state is ever pruned. (The
residual is evaluated in float64, so it bounds the error up to its own rounding, which is of
the size of the residuals measured: below ``3e-7 eps`` on rows of 10 to 512 variables, PSD,
indefinite and low-rank, with the SDP diagonal.) A diagonal moved into ``P`` but not out of
``q`` (``P + diag(1.001 u)``, ``q - u``) is refused.

The variable order (``"schur"``: the V-BLAST rule, or ``"natural"``) is chosen here, and
:func:`nearest_plane` is Babai's rounding of the form (the GPTQ/OBQ error-feedback rule).
The power-of-two rescaling (:func:`_pow2_scale`) keeps the factor away from underflow and
overflow; bounds of the rescaled model are unscaled rounding down (:func:`_unscale_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

__all__ = ["LeastSquaresForm", "least_squares_form", "nearest_plane", "ORDERS"]

ORDERS = ("schur", "natural")
_MU = 1e-6  # lambda_min of the shifted matrix, relative to ||P||_2
_EPS = 1e-9  # pruning slack, relative to the energy scale

# ---------------------------------------------------------------------------- the factor
@dataclass
class LeastSquaresForm:
    """``E(v) = ||R v - y||^2 + c0`` on binary ``v`` in the permuted order ``perm``.

    Attributes
    ----------
    perm : int array of shape (n,)
        Position ``p`` of the tree holds original variable ``perm[p]``; the root is ``p = n-1``.
    R : array of shape (n, n), upper triangular
    y : array of shape (n,)
    c0 : float
    shift : float
        The diagonal ``d`` moved from the linear term into ``P`` (``A = P + d I``).
    eps : float
        Pruning slack covering the rounding of the form.
    residual : float
        Bound on ``|E(v) - ||R v - y||^2 - c0|`` over every binary ``v`` (module docs), ``<= eps / 2``.
    """

    perm: np.ndarray
    R: np.ndarray
    y: np.ndarray
    c0: float
    shift: float
    eps: float
    diagonal: np.ndarray | None = None  # the whole diagonal moved: A = P + diag(diagonal)
    residual: float = 0.0


def _shift_for(w: np.ndarray, q: np.ndarray) -> float:
    """Diagonal ``d`` making ``P + d I`` positive definite with ``lambda_min = mu``."""
    norm = float(np.max(np.abs(w))) if w.size else 0.0
    ref = norm if norm > 0 else max(float(np.max(np.abs(q), initial=0.0)), 1.0)
    return max(0.0, _MU * ref - float(w[0]))


def _schur_order(A: np.ndarray) -> np.ndarray:
    """Greedy V-BLAST order: position n-1 (root) gets argmax 1/(A^-1)_ii, and so on."""
    n = A.shape[0]
    with np.errstate(all="ignore"):  # a nearly singular A only spoils the order, never the result
        return _schur_greedy(cho_solve(cho_factor(A), np.eye(n)))


def _schur_greedy(M: np.ndarray) -> np.ndarray:
    n = M.shape[0]
    remaining = list(range(n))
    from_root = []
    for _ in range(n):
        i = int(np.argmin(np.diag(M)))
        from_root.append(remaining.pop(i))
        m = M[:, i].copy()
        M = M - np.outer(m, m) / m[i]
        M = np.delete(np.delete(M, i, axis=0), i, axis=1)
    return np.array(from_root[::-1], dtype=np.int64)


def _make_pd(P, q, w):
    """``(d, P + d I)`` with ``lambda_min = mu`` (rounding checked by a Cholesky factorisation)."""
    n = P.shape[0]
    d = _shift_for(w, q)
    for _ in range(60):
        A = P + d * np.eye(n)
        try:
            np.linalg.cholesky(A)
            return d, A
        except np.linalg.LinAlgError:  # rounding in lambda_min: move further in
            d = 2 * d if d > 0 else _MU
    raise RuntimeError("could not make P positive definite")  # pragma: no cover


def least_squares_form(P, q, c, order: str = "schur", eigenvalues=None,
                       diagonal=None) -> LeastSquaresForm:
    """The exact least-squares rewrite of a BQM (trusted float64 input), see the module docs.

    ``diagonal`` (optional, shape (n,)): a diagonal ``u`` moved first (``P + diag u``,
    ``q - u``; e.g. :func:`solvers.diagonal.sdp_diagonal`); the uniform shift ``d`` is then
    added on top so that ``lambda_min(A) >= mu``, and ``diagonal`` of the form is ``u + d``.
    The ``"schur"`` order is always chosen on the uniformly shifted ``P`` (measured: fewer
    nodes than ordering on ``P + diag u``, docs/exact.md).
    """
    n = P.shape[0]
    P0, q0 = P, q
    w = np.linalg.eigvalsh(P) if eigenvalues is None else eigenvalues
    d, A = _make_pd(P, q, w)
    u = np.zeros(n)
    perm = np.arange(n) if order == "natural" else _schur_order(A)
    if diagonal is not None:
        u = np.asarray(diagonal, dtype=np.float64)
        P, q = P + np.diag(u), q - u
        w = np.linalg.eigvalsh(P)
        d, A = _make_pd(P, q, w)
    L = np.linalg.cholesky(A[np.ix_(perm, perm)])
    b = (q - d)[perm]
    y = solve_triangular(L, -b / 2, lower=True)
    R = np.ascontiguousarray(L.T)
    with np.errstate(over="ignore", invalid="ignore"):
        yy = float(y @ y)
        c0 = float(c - yy)
        norm_A = float(np.max(np.abs(w))) + d if n else 0.0
        scale = n * norm_A + yy + abs(float(c)) + float(np.abs(b).sum())
    if not (np.isfinite(scale) and np.isfinite(c0) and np.isfinite(R).all() and np.isfinite(y).all()):
        # ||q||^2 / ||P|| beyond float64 (a NaN bound would prune everything)
        raise ValueError("the least-squares factor of this model is not finite: the ratio "
                         "||q||^2 / ||P|| exceeds the float64 range; use method='exhaustive'")
    eps = _EPS * scale
    residual = rewrite_residual(P0, q0, c, perm, R, y, c0)
    if not residual <= eps / 2:
        raise ValueError(f"the least-squares rewrite of this model is not exact to within its pruning slack "
                         f"(residual {residual:.3g} > eps / 2 = {eps / 2:.3g}); use method='exhaustive'")
    return LeastSquaresForm(perm=perm, R=R, y=y, c0=c0, shift=float(d), eps=eps,
                            diagonal=u + d, residual=residual)


def rewrite_residual(P, q, c, perm, R, y, c0) -> float:
    """``sum_{i != j} |M_ij| + sum_i |M_ii + l_i| + |k|`` (module docs, "Runtime check"): a bound
    on ``|E(v) - ||R v - y||^2 - c0|`` over every binary ``v`` of the model ``(P, q, c)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        M = P[np.ix_(perm, perm)] - R.T @ R
        diag = np.diag(M).copy()
        np.fill_diagonal(M, 0.0)
        lin = diag + q[perm] + 2 * (R.T @ y)
        return float(np.abs(M).sum() + np.abs(lin).sum() + abs(float(c) - c0 - float(y @ y)))


def nearest_plane(R: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Babai's nearest-plane point in ``{0,1}^n``: fix ``v_{n-1}, ..., v_0`` in turn, each to
    the value minimising ``(R_jj x - t_j)^2`` given those already fixed (the GPTQ/OBQ
    error-feedback rule restricted to up/down). Positions as in ``R``; returns int8."""
    n = R.shape[0]
    v = np.zeros(n)
    t = y.copy()
    for j in range(n - 1, -1, -1):
        bit = 1.0 if abs(R[j, j] - t[j]) < abs(t[j]) else 0.0  # (R_jj - t_j)^2 < t_j^2, without overflow
        v[j] = bit
        if bit:
            t[:j] -= R[:j, j]
    return v.astype(np.int8)


def _pow2_scale(P: np.ndarray, q: np.ndarray, c: float) -> float:
    """A power of two ``s`` with ``s * max(|P|, |q|, |c|)`` in ``[0.5, 1)`` (1 for a zero model),
    at most ``2^1023``: a model whose largest coefficient is subnormal (below ``2^-1022``) is
    scaled by ``2^1023`` only and stays below 0.5, since ``2^1074`` is not a float.

    Multiplying a model by ``s`` is exact in floating point, except for entries that become
    subnormal; those change by less than ``2^-1074 / s``, far inside the relative ``1e-9``
    slack of every bound. So bounds of the rescaled model divided by ``s`` are bounds of the
    original one, and the fixed-point conversion of roof duality and the factor of the tree stay
    away from underflow and overflow.
    """
    m = max(float(np.max(np.abs(P), initial=0.0)), float(np.max(np.abs(q), initial=0.0)), abs(float(c)))
    if not np.isfinite(m):
        raise ValueError("the model's coefficients must be finite")
    if m == 0.0:
        return 1.0
    return float(np.ldexp(1.0, min(-int(np.frexp(m)[1]), 1023)))


def _unscale_bound(bound: float, s: float) -> float:
    """``bound / s`` rounded down (``s`` a power of two: exact unless the result is subnormal)."""
    return float(np.nextafter(bound / s, -np.inf))
