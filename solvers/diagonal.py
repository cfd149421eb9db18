"""The diagonal that maximises the continuous bound of a QUBO (quadratic convex reformulation,
Billionnet and Elloumi 2007): the dual of Shor's semidefinite relaxation.

For binary ``v``, ``v_i^2 = v_i``, so for every vector ``u``

.. math:: E(v) = v^T (P + \\operatorname{diag} u) v + (q - u)^T v + c \\qquad (v \\in \\{0,1\\}^n).

With ``A(u) = P + diag(u)`` positive definite the right-hand side is convex, and its minimum over
all real ``x`` is a lower bound of the binary minimum:

.. math:: \\varphi(u) = c - \\tfrac14 (q - u)^T A(u)^{-1} (q - u), \\qquad
          x(u) = -\\tfrac12 A(u)^{-1} (q - u).

``phi`` is concave; its supremum over ``{u : A(u) > 0}`` is Shor's SDP bound (the SDP dual with
the constraint ``diag X = x``). Its derivatives (envelope theorem, then ``dx/du_j =
A^{-1} e_j (1/2 - x_j)``) are

.. math:: \\nabla \\varphi = x \\circ x - x, \\qquad
          \\nabla^2 \\varphi = -\\tfrac12 S A^{-1} S, \\quad S = \\operatorname{diag}(2x - 1).

:func:`sdp_diagonal` maximises ``phi`` by a log-barrier Newton method (``phi + t log det A``,
Hessian of the barrier ``-(A^{-1} \\circ A^{-1})``, ``t`` decreased geometrically), so ``A(u)``
stays positive definite at every iterate. Nothing here needs to be accurate: every ``u`` with
``A(u)`` positive definite gives an exact rewrite of ``E`` on binary points, and the bounds that use
it (:mod:`solvers.tree`, :mod:`solvers.bounds`) are certified for that ``u`` whatever the optimiser
reached.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve

__all__ = ["sdp_diagonal"]


def _factor(P, u):
    try:
        return np.linalg.cholesky(P + np.diag(u))
    except np.linalg.LinAlgError:
        return None


def _phi_parts(L, q, u):
    """``(phi - c, x, A^{-1})`` from the Cholesky factor ``L`` of ``A(u)``."""
    n = L.shape[0]
    Ainv = cho_solve((L, True), np.eye(n))
    b = q - u
    x = -0.5 * (Ainv @ b)
    return 0.5 * float(b @ x), x, Ainv


def _phi(P, q, c, u) -> float:
    """``phi(u)`` (module docs) in plain floating point, ``-inf`` if ``P + diag(u)`` is not positive
    definite. Private and NOT a bound: on ill-conditioned ``P + diag(u)`` its rounding error can
    put it above the optimum (measured on a low-rank row); certified bounds come from
    :func:`solvers.bounds.box_qp_bound` and the tree."""
    L = _factor(P, np.asarray(u, dtype=np.float64))
    if L is None:
        return -np.inf
    return float(c) + _phi_parts(L, q, u)[0]


def sdp_diagonal(P, q, *, max_newton: int = 80, rounds: int = 8, shrink: float = 8.0) -> np.ndarray:
    """A diagonal ``u`` (near) maximising Shor's bound ``phi(u)``, with ``P + diag(u)`` positive
    definite.

    Parameters
    ----------
    P : array of shape (n, n), symmetric, finite (ideally rescaled to entries near 1)
    q : array of shape (n,)
    max_newton : int, default=80
        Newton steps in all.
    rounds : int, default=8
        Barrier rounds; the barrier weight ``t`` is divided by ``shrink`` after each.

    Returns
    -------
    array of shape (n,)
    """
    n = P.shape[0]
    if n == 0:
        return np.zeros(0)
    w = np.linalg.eigvalsh(P)
    norm = max(float(np.max(np.abs(w))), float(np.max(np.abs(q), initial=0.0)), 1e-300)
    u = np.full(n, max(0.0, -float(w[0])) + 0.1 * norm)
    L = _factor(P, u)
    for _ in range(64):  # pragma: no cover - rounding in lambda_min only
        if L is not None:
            break
        u = u + 0.1 * norm
        L = _factor(P, u)
    if L is None:  # pragma: no cover - 6.4 ||P|| added and still no factor: a non-finite P
        raise RuntimeError("sdp_diagonal: no positive definite P + diag(u) found")
    with np.errstate(all="ignore"):  # a non-finite step only ends the search
        return _barrier_newton(P, q, u, L, norm, max_newton, rounds, shrink)


def _barrier_newton(P, q, u, L, norm, max_newton, rounds, shrink):
    n = P.shape[0]
    phi, x, Ainv = _phi_parts(L, q, u)
    t = (abs(phi) + norm) / n
    steps = 0
    for _ in range(rounds):
        F = phi + 2 * t * float(np.log(np.diag(L)).sum())
        while steps < max_newton:
            steps += 1
            s = 2 * x - 1
            g = x * x - x + t * np.diag(Ainv)
            M = 0.5 * (s[:, None] * Ainv * s[None, :]) + t * (Ainv * Ainv)
            if not (np.isfinite(M).all() and np.isfinite(g).all()):
                break
            try:
                delta = np.linalg.solve(M, g)
            except np.linalg.LinAlgError:  # pragma: no cover
                break
            dec = float(g @ delta)
            if not np.isfinite(dec) or dec <= 1e-10 * (abs(F) + t):
                break
            alpha = 1.0
            while alpha > 1e-8:
                un = u + alpha * delta
                Ln = _factor(P, un)
                if Ln is not None:
                    phin, xn, Ainvn = _phi_parts(Ln, q, un)
                    Fn = phin + 2 * t * float(np.log(np.diag(Ln)).sum())
                    if Fn >= F + 0.25 * alpha * dec:
                        break
                alpha *= 0.5
            else:
                break
            u, L, phi, x, Ainv, F = un, Ln, phin, xn, Ainvn, Fn
        t /= shrink
    return u
