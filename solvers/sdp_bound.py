"""A certified lower bound from the semidefinite relaxation strengthened by triangle inequalities
(the approach of Biq Mac, Rendl, Rinaldi and Wiegele 2010), in numpy only.

**Homogeneous +-1 form.** With ``x in {-1, 1}^{n+1}`` and ``v_i = (1 + x_0 x_{i+1}) / 2`` every
binary ``v`` is reached (twice) and, for ``b = (P e + q) / 2``,

.. math:: E(v) = x^T C x, \\qquad C = \\begin{pmatrix} \\kappa & b^T/2 \\\\ b/2 & P/4 \\end{pmatrix},
          \\quad \\kappa = \\tfrac14 e^T P e + \\tfrac12 q^T e + c.                     \\tag{S1}

**Triangle inequalities.** ``X = x x^T`` satisfies, for every triple ``i < j < k`` and each sign
pattern ``sigma in {(+,+,+), (+,-,-), (-,+,-), (-,-,+)}``,

.. math:: \\langle T, X \\rangle + 1 = \\sigma_1 X_{ij} + \\sigma_2 X_{ik} + \\sigma_3 X_{jk} + 1 \\ge 0.
          \\tag{S2}

(With ``i = 0`` they are the McCormick inequalities of ``v_j v_k``.)

**Certificate** (weak duality). For multipliers ``gamma >= 0`` of a set of cuts (S2) and any
vector ``y``, with ``M = C - sum_t gamma_t T_t + Diag(y)`` and ``||x||^2 = n + 1``:

.. math:: E(v) \\;\\ge\\; x^T C x - \\sum_t \\gamma_t (\\langle T_t, x x^T \\rangle + 1)
          = x^T M x - \\textstyle\\sum_i y_i - \\sum_t \\gamma_t
          \\;\\ge\\; (n+1)\\, \\lambda_{\\min}(M) - \\textstyle\\sum_i y_i - \\sum_t \\gamma_t .  \\tag{S3}

(S3) holds for *every* ``y`` and ``gamma >= 0``, whatever sign ``lambda_min`` has: the
optimiser below only chooses good ones, and the bound is verified from them in float64.
Rounding: ``lambda_min`` from LAPACK's ``eigvalsh`` has absolute error at most about
``p * eps * ||M||_2`` (``p = n + 1``, a backward-stable solver); forming ``C``, ``M`` and the sums
adds relative errors of a few ``eps`` of ``sum |C| + sum |y| + 2 sum gamma``. The bound is lowered
by ``1e-9`` of that sum (as every bound of :mod:`solvers.bounds`) plus ``64 p^2 eps ||M||_F``,
which covers both with room to spare for any ``p`` below ``10^4``.

**Optimiser.** The dual function ``f(gamma) = -sum gamma + min {<C - sum gamma T, X> : diag X = e,
X psd}`` is concave; its inner SDP is solved by the primal-dual interior-point method of Helmberg,
Rendl, Vanderbei and Wolkowicz (1996) for the max-cut relaxation, which returns ``X`` (for
separation and the supergradient ``-(<T_t, X> + 1)``) and ``y`` (for (S3)). ``gamma`` moves by
projected supergradient steps with Polyak's step length towards an upper bound (the energy of a
rounding of ``X``); the most violated inequalities (S2) are added every ``separate_every`` steps and
inactive ones with ``gamma = 0`` dropped. Every budget is an iteration count. The best (S3) over all
iterates is returned.
"""

from __future__ import annotations

import numpy as np

from .least_squares import _pow2_scale, _unscale_bound

__all__ = ["homogeneous_form", "certified_bound", "triangle_bound", "SIGNS"]

#: the sign patterns of the triangle inequalities (S2), rows indexed by a cut's type
SIGNS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
_SAFETY = 1e-9
_THETA0 = 1.0  # first Polyak step factor (halved after 3 steps without a better bound)


def homogeneous_form(P, q, c) -> np.ndarray:
    """The matrix ``C`` of (S1): ``E(v) = x^T C x`` with ``v_i = (1 + x_0 x_{i+1}) / 2``."""
    P = np.asarray(P, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = P.shape[0]
    C = np.empty((n + 1, n + 1))
    b = (P.sum(axis=1) + q) / 2
    C[0, 0] = P.sum() / 4 + q.sum() / 2 + float(c)
    C[0, 1:] = b / 2
    C[1:, 0] = b / 2
    C[1:, 1:] = P / 4
    return C


def _apply_cuts(C, cuts, gamma) -> np.ndarray:
    """``C - sum_t gamma_t T_t`` for cuts ``(i, j, k, type)`` (S2), ``T`` symmetric."""
    M = C.copy()
    if len(gamma):
        i, j, k, t = cuts.T
        sg = SIGNS[t] * (gamma / 2)[:, None]
        for (a, b), col in (((i, j), 0), ((i, k), 1), ((j, k), 2)):
            np.add.at(M, (a, b), -sg[:, col])
            np.add.at(M, (b, a), -sg[:, col])
    return M


def certified_bound(C, y, cuts, gamma) -> float:
    """The bound (S3) for the multipliers ``y`` and ``gamma >= 0``, lowered by its rounding margin."""
    gamma = np.asarray(gamma, dtype=np.float64)
    if np.any(gamma < 0):
        raise ValueError("gamma must be nonnegative (multipliers of inequalities)")
    p = C.shape[0]
    M = _apply_cuts(C, cuts, gamma)
    M[np.diag_indices(p)] += y
    if not np.all(np.isfinite(M)):  # an optimiser that broke down proves nothing
        return -np.inf
    lam = float(np.linalg.eigvalsh(M)[0])
    eps = np.finfo(float).eps
    margin = (_SAFETY * (float(np.abs(C).sum()) + float(np.abs(y).sum()) + 2 * float(gamma.sum()))
              + 64 * p * p * eps * float(np.linalg.norm(M)))
    return p * lam - float(np.sum(y)) - float(gamma.sum()) - margin


def _check(P, q, c):
    """``(P, q, c)`` as float64, or a ValueError naming the argument that is wrong."""
    P = np.asarray(P, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"P must be square, found shape {P.shape}")
    if q.shape != (P.shape[0],):
        raise ValueError(f"q must have shape ({P.shape[0]},), found {q.shape}")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(q)) and np.isfinite(float(c))):
        raise ValueError("P, q and c must be finite")
    if not np.array_equal(P, P.T):
        raise ValueError("P must be symmetric")
    return P, q, float(c)


def _maxcut_sdp(L, max_iter: int = 60, tol: float = 1e-6):
    """``max <L, X>`` s.t. ``diag X = e``, ``X`` psd, and its dual ``min e^T y`` s.t.
    ``Diag(y) - L`` psd (Helmberg, Rendl, Vanderbei, Wolkowicz 1996): primal-dual Newton steps on
    ``Z X = mu I`` with ``dy`` from ``(Z^{-1} o X) dy = mu diag(Z^{-1}) - e``, step lengths by
    Cholesky backtracking. Stops when the duality gap is below ``tol`` of the objectives'
    magnitude, or after ``max_iter`` iterations."""
    p = L.shape[0]
    e = np.ones(p)
    X = np.eye(p)
    y = 1.1 * np.abs(L).sum(axis=1) + 1.0  # Z = Diag(y) - L diagonally dominant: positive definite
    Z = np.diag(y) - L
    mu = float(np.sum(Z * X)) / (2 * p)
    floor = 1e-14 * float(np.abs(L).sum())  # a gap below rounding needs no further step
    for _ in range(int(max_iter)):
        try:
            Zi = np.linalg.inv(Z)
            Zi = (Zi + Zi.T) / 2
            dy = np.linalg.solve(Zi * X, mu * np.diag(Zi) - e)
        except np.linalg.LinAlgError:  # numerically singular: keep the last iterate
            break
        if not (np.all(np.isfinite(Zi)) and np.all(np.isfinite(dy))):
            break
        dX = mu * Zi - X - (Zi * dy[None, :]) @ X
        dX = (dX + dX.T) / 2
        ap = _step(X, dX)
        X = X + ap * dX
        ad = _step(Z, np.diag(dy))
        y = y + ad * dy
        Z = np.diag(y) - L
        mu = float(np.sum(Z * X)) / (2 * p)
        if ap + ad > 1.6:
            mu *= 0.5
        if ap + ad > 1.9:
            mu *= 0.2
        phi, psi = float(y.sum()), float(np.sum(L * X))
        if phi - psi <= tol * (abs(phi) + abs(psi)) + floor:  # the bound's own scale
            break
    return X, y


def _step(A, dA) -> float:
    """Largest ``0.8^k`` (times 0.95 when below 1) with ``A + a dA`` positive definite."""
    a = 1.0
    for _ in range(100):
        try:
            np.linalg.cholesky(A + a * dA)
            return a if a == 1.0 else 0.95 * a
        except np.linalg.LinAlgError:
            a *= 0.8
    return 0.0


def _separate(X, cuts, max_new: int):
    """Up to ``max_new`` most violated triangle inequalities (S2) at ``X`` not already in ``cuts``."""
    p = X.shape[0]
    found = []
    for i in range(p - 2):
        j, k = np.triu_indices(p - i - 1, k=1)
        j, k = j + i + 1, k + i + 1
        vals = SIGNS @ np.stack([X[i, j], X[i, k], X[j, k]]) + 1.0  # (4, pairs)
        t, col = np.nonzero(vals < -1e-6)
        if len(t):
            found.append(np.column_stack([np.full(len(t), i), j[col], k[col], t, vals[t, col]]))
    if not found:
        return np.zeros((0, 4), dtype=np.int64)
    F = np.concatenate(found)
    F = F[np.argsort(F[:, 4], kind="stable")]
    new = F[:, :4].astype(np.int64)
    if len(cuts):
        new = new[~np.isin(_keys(new, p), _keys(cuts, p))]
    return new[:max_new]


def _keys(cuts, p) -> np.ndarray:
    """One integer per cut ``(i, j, k, type)``."""
    return ((cuts[:, 0] * p + cuts[:, 1]) * p + cuts[:, 2]) * 4 + cuts[:, 3]


def _cut_values(X, cuts) -> np.ndarray:
    """``<T_t, X> + 1`` for each cut (S2)."""
    i, j, k, t = cuts.T
    return (SIGNS[t] * np.column_stack([X[i, j], X[i, k], X[j, k]])).sum(axis=1) + 1.0


def _rounding_energy(C, X) -> float:
    """``x^T C x`` of ``x = sign(X[0])`` improved by single flips: an upper bound of ``min E``."""
    x = np.where(X[0] >= 0, 1.0, -1.0)
    x[0] = 1.0
    Cx = C @ x
    for _ in range(10 * len(x)):
        gain = -4 * x * Cx + 4 * np.diag(C)  # change of x^T C x when flipping x_i
        gain[0] = 0.0
        i = int(np.argmin(gain))
        if gain[i] >= 0:
            break
        x[i] = -x[i]
        Cx += 2 * x[i] * C[:, i]
    return float(x @ C @ x)


def triangle_bound(P, q, c, steps: int = 30, separate_every: int = 5, max_cuts: int = 2000,
                   new_cuts: int = 500, upper: float | None = None) -> tuple[float, dict]:
    """Certified lower bound (S3) of ``min E(v) = v^T P v + q^T v + c`` over ``{0,1}^n``.

    Parameters
    ----------
    P, q, c : the model (any symmetric ``P``, PSD or not).
    steps : int, default=30
        Supergradient steps on the triangle multipliers (0: Shor's bound alone).
    separate_every : int, default=5
        Steps between separation rounds.
    max_cuts, new_cuts : int
        Most cuts kept, most added per round.
    upper : float, optional
        An upper bound of the minimum (for Polyak's step length); default: a rounding of ``X``.

    Returns
    -------
    (float, dict)
        The bound (``<= min E`` whatever the optimiser reached) and ``info`` with ``shor`` (the
        bound at ``gamma = 0``), ``cuts`` and ``upper``.
    """
    P, q, c = _check(P, q, c)
    for name, val, low in (("steps", steps, 0), ("separate_every", separate_every, 1),
                           ("max_cuts", max_cuts, 0), ("new_cuts", new_cuts, 0)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError(f"{name} must be an integer >= {low}, found {val!r}")
    n = P.shape[0]
    if n == 0:
        return c, {"shor": c, "cuts": 0, "upper": c}
    s = _pow2_scale(P, q, c)
    C = homogeneous_form(P * s, q * s, float(c) * s)
    cuts = np.zeros((0, 4), dtype=np.int64)
    gamma = np.zeros(0)
    X, y = _maxcut_sdp(-C)
    best = shor = certified_bound(C, y, cuts, gamma)
    U = _rounding_energy(C, X)
    if upper is not None and np.isfinite(float(upper)):
        U = min(U, float(upper) * s)
    theta, stall = _THETA0, 0
    for it in range(int(steps)):
        if it % int(separate_every) == 0:
            keep = (gamma > 0) | (_cut_values(X, cuts) < 0) if len(cuts) else np.zeros(0, bool)
            cuts, gamma = cuts[keep], gamma[keep]
            add = _separate(X, cuts, min(int(new_cuts), int(max_cuts) - len(cuts)))
            cuts = np.concatenate([cuts, add])
            gamma = np.concatenate([gamma, np.zeros(len(add))])
        if not len(cuts):
            break
        g = -_cut_values(X, cuts)  # supergradient of f at gamma
        g[(gamma <= 0) & (g < 0)] = 0.0  # projected direction
        f = -float(y.sum()) - float(gamma.sum())
        gg = float(g @ g)
        if gg <= 0:
            break
        gamma = np.maximum(0.0, gamma + theta * max(U - f, 0.0) / gg * g)
        X, y = _maxcut_sdp(-_apply_cuts(C, cuts, gamma))
        b = certified_bound(C, y, cuts, gamma)
        U = min(U, _rounding_energy(C, X))
        if b > best:
            best, stall = b, 0
        else:
            stall += 1
            if stall >= 3:
                theta, stall = theta / 2, 0
    return _unscale_bound(best, s), {"shor": _unscale_bound(shor, s), "cuts": len(cuts),
                                    "upper": U / s}
