r"""Feature-sign search (Lee, Battle, Raina and Ng 2007): exact Lasso minimisers row by row.

The sure path of the certified l1 path (docs/sparse.md, step 4): it minimises
``F(a) = 1/2 ||x - Phi a||^2 + lam ||a||_1`` and certifies the result by the Lasso optimality
conditions with the rounding bound of ``Phi^T (x - Phi a)``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import qr, solve_triangular

from reference.sparse import objective_rows

from .problem import U64 as _U64

__all__ = ["feature_sign"]


def feature_sign(Phi, X, A, lam, kkt_tol, max_rounds):
    """Exact Lasso minimisers by feature-sign search (Lee, Battle, Raina and Ng 2007), row by row.

    The sure path for the few rows the iterations and :func:`certify` could not certify. From
    a row's code ``a`` (then, if that fails, from zero), each round either adds the atom that
    violates ``|phi_j^T r| <= lam`` the most (when ``a`` is optimal on its own support and
    signs) or keeps the support; then it solves for the optimum ``x`` on the support with the
    current signs (QR of ``Phi_S``) and moves ``a`` to the point of the segment ``[a, x]`` with
    the lowest objective among ``x`` and the points where a coefficient crosses zero (that
    coefficient leaves). An atom that joins in the span of the support (as a duplicated atom
    does) instead moves ``a`` along the null direction, which keeps ``Phi a`` and lowers the l1
    norm, until a support coefficient reaches zero. A move is taken only if it lowers the
    objective, computed from the residual in float64, so the search ends and never returns a
    code worse than its start. A row is done when its code passes the optimality test of
    :func:`certify` (correlations from the residual, in float64); a row that stops moving or
    reaches ``max_rounds`` is not done and keeps its best code. A row that stopped moving before
    its search settled (no violator left, to rounding) is searched again from zero.

    Returns ``(codes, done)``.
    """
    out = np.array(A, dtype=np.float64)
    done = np.zeros(A.shape[0], dtype=bool)
    for i in range(A.shape[0]):
        out[i], done[i], settled = _feature_sign_row(Phi, X[i], out[i], lam, kkt_tol, max_rounds)
        if not settled:  # it stopped moving before the end: try the classic start from zero
            a, ok, _ = _feature_sign_row(Phi, X[i], np.zeros_like(out[i]), lam, kkt_tol, max_rounds)
            f_new, f_old = objective_rows(Phi, X[[i, i]], np.stack([a, out[i]]), "l1", lam)
            if ok or f_new < f_old:
                out[i], done[i] = a, ok
    return out, done


def _feature_sign_row(Phi, x, a, lam, kkt_tol, max_rounds):
    """Feature-sign search on one row from ``a``; returns ``(code, certified, settled)``."""
    def value(S, v):
        r = x - Phi[:, S] @ v
        return 0.5 * (r @ r) + lam * np.abs(v).sum()

    a = _independent_start(Phi, x, a.copy(), value)
    absPhi = np.abs(Phi)
    for _ in range(max_rounds):
        S = np.flatnonzero(a)
        r = x - Phi[:, S] @ a[S]
        c = Phi.T @ r
        # rounding bound of c = Phi^T (x - Phi_S a_S): gamma_(n+|S|+2) |Phi|^T (|x| + |Phi_S| |a_S| + |r|)
        err = 2.0 * (Phi.shape[0] + S.size + 2) * _U64 * (absPhi.T @ (np.abs(x) + absPhi[:, S] @ np.abs(a[S])
                                                                      + np.abs(r)))
        theta = np.sign(a)
        on_gap = np.abs(c[S] - lam * theta[S])
        if np.all(on_gap <= np.maximum(lam * kkt_tol, err[S])):  # optimal on its support, to rounding
            off = np.abs(c)
            off[S] = 0.0
            j = int(np.argmax(off))
            if off[j] <= max(lam * (1 + kkt_tol), lam + err[j]):  # no violator left, to rounding
                # certified only if the conditions hold with the whole rounding bound
                certified = np.all(on_gap + err[S] <= lam * kkt_tol) and np.all(off + err <= lam * (1 + kkt_tol))
                return a, bool(certified), True
            sj = np.sign(c[j])
            joined = _join(Phi, a, S, j, sj, value)
            if joined is None:
                return a, False, False
            if not joined:  # moved along the null direction: a new round
                continue
            S = np.sort(np.append(S, j))
            theta[j] = sj
        if not _move_to_signed_optimum(Phi, x, a, S, theta, lam, value):
            return a, False, False
    return a, False, False


def _independent_start(Phi, x, a, value):
    """The start ``a`` with only an independent part of its support (the columns QR with
    pivoting ranks first), or zero (the classic start) when that is no better than zero."""
    S0 = np.flatnonzero(a)
    if S0.size:
        R, piv = qr(Phi[:, S0], mode="r", pivoting=True)
        d = np.abs(np.diag(R))
        rank = int(np.count_nonzero(d > 1e-10 * d.max()))
        a[S0[piv[rank:]]] = 0.0
        S0 = np.flatnonzero(a)
    if not value(S0, a[S0]) < 0.5 * (x @ x):
        a[:] = 0.0
    return a


def _join(Phi, a, S, j, sj, value):
    """Atom ``j`` joins the support ``S`` with sign ``sj``: True when it is independent of the
    support (the caller then solves on ``S + j``). When ``phi_j`` lies in the span of the support
    the null direction ``z`` (``z_j = sj``, ``z_S = -sj w``, ``Phi_S w = phi_j``) keeps ``Phi a``
    and lowers the l1 norm: ``a`` moves along it until a support coefficient reaches zero
    (False), or, when that does not lower the objective, nothing moves (None: stop)."""
    if S.size:
        Q, R = np.linalg.qr(Phi[:, S])
        proj = Q.T @ Phi[:, j]
        w = solve_triangular(R, proj)
        rest2 = Phi[:, j] @ Phi[:, j] - proj @ proj  # squared distance of phi_j to the span
    else:
        w, rest2 = np.zeros(0), Phi[:, j] @ Phi[:, j]
    if rest2 > 1e-10 * (Phi[:, j] @ Phi[:, j]):
        return True
    dS = -sj * w
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(a[S] * dS < 0, -a[S] / dS, np.inf)
    k = int(np.argmin(ratio))
    if not np.isfinite(ratio[k]):
        return None
    Sj = np.append(S, j)
    moved = np.append(a[S] + ratio[k] * dS, ratio[k] * sj)
    moved[k] = 0.0
    if not value(Sj, moved) < value(Sj, a[Sj]):
        return None
    a[Sj] = moved
    return False


def _move_to_signed_optimum(Phi, x, a, S, theta, lam, value) -> bool:
    """The optimum ``x_S`` on ``S`` with signs ``theta`` (``Phi_S^T (x - Phi_S v) = lam theta_S``,
    by QR of ``Phi_S``); ``a`` moves to the point of ``[a, x_S]`` with the lowest objective among
    ``x_S`` and the zero crossings (the crossing coefficient leaves). False when nothing moves."""
    Q, R = np.linalg.qr(Phi[:, S])
    if S.size > Phi.shape[0] or np.min(np.abs(np.diag(R)), initial=np.inf) <= 1e-12 * np.max(np.abs(np.diag(R))):
        return False
    z = solve_triangular(R, lam * theta[S], trans="T")
    xs = solve_triangular(R, Q.T @ x - z)
    aS = a[S]
    d = xs - aS
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where((aS != 0) & (np.sign(xs) != np.sign(aS)), aS / (aS - xs), np.inf)
    steps = np.append(cross[(cross > 0) & (cross < 1)], 1.0)
    values = [value(S, aS + t * d) for t in steps]
    best = int(np.argmin(values))
    if not values[best] < value(S, aS):
        return False
    t = steps[best]
    new = aS + t * d
    new[cross == t] = 0.0  # the coefficient that crossed zero leaves
    a[S] = new
    return True
