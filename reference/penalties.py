r"""Sparsity penalties and their exact proximal operators (docs/sparse.md).

Every function here is elementwise and uses one convention, written once:

.. math::

    \operatorname{prox}(u) = \arg\min_x \tfrac12 (x - u)^2 + \text{step}\cdot r(x),

where ``r`` is the *whole* penalty term of one coefficient in the objective
``F(a) = 1/2 ||x - Phi a||^2 + sum_i r_i(a_i)``:

=========  ==========================================  ==========================================
penalty    ``r(a)``                                      prox (``t = step * lam``)
=========  ==========================================  ==========================================
``l0``     ``lam * [a != 0]``                            hard threshold: ``u`` if ``|u| > sqrt(2 t)``
``l1``     ``lam * |a|``                                 soft threshold: ``sign(u) max(|u| - t, 0)``
``l1/2``   ``lam * |a|^(1/2)``                           half threshold, zero iff ``|u| <= 1.5 t^(2/3)``
``cel0``   ``lam - (n^2/2)(|a| - sqrt(2 lam)/n)^2``      firm threshold (``step n^2 < 1``) or a
           on ``|a| <= sqrt(2 lam)/n``, else ``lam``     three-way comparison (``step n^2 >= 1``)
=========  ==========================================  ==========================================

``n`` is the norm of the coefficient's atom ``||phi_i||`` (CEL0 depends on it; Soubies,
Blanc-Feraud and Aubert, SIAM J. Imaging Sci. 2015). At a threshold where two minimisers tie,
these functions return the one of smaller magnitude (zero for l0, l1/2 and CEL0).

Conversions (see docs/sparse.md): the V1 paper's public code zeroes hard-threshold entries
below ``sqrt(step * lam_V1)``, which is this module's ``l0`` with ``lam = lam_V1 / 2``; Xu et al.
(2012) write half thresholding for ``(x - u)^2 + lam_Xu |x|^(1/2)``, i.e. ``t = lam_Xu / 2`` here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PENALTIES",
    "penalty_elementwise",
    "prox",
    "prox_cel0",
    "prox_half",
    "prox_l0",
    "prox_l1",
]

#: Names accepted wherever a penalty is chosen.
PENALTIES = ("l0", "l1", "l1/2", "cel0")


def _real(u):
    """``u`` as a floating array, keeping float32 (used by fast iterations) and float64 as they are."""
    u = np.asarray(u)
    return u if u.dtype in (np.float32, np.float64) else u.astype(np.float64)


def prox_l0(u, t):
    r"""Hard thresholding: prox of ``t * [x != 0]``.

    .. math:: \operatorname{prox}(u) = u \,[\,|u| > \sqrt{2t}\,]

    Zero at the tie ``|u| = sqrt(2 t)``.
    """
    u = _real(u)
    return np.where(u * u > 2.0 * np.asarray(t, dtype=u.dtype), u, u.dtype.type(0))


def prox_l1(u, t):
    r"""Soft thresholding: prox of ``t |x|``.

    .. math:: \operatorname{prox}(u) = \operatorname{sign}(u)\max(|u| - t, 0)
    """
    u = _real(u)
    return np.sign(u) * np.maximum(np.abs(u) - np.asarray(t, dtype=u.dtype), u.dtype.type(0))


def prox_half(u, t):
    r"""Half thresholding: prox of ``t |x|^{1/2}``.

    For ``x > 0`` the stationarity condition ``x - |u| + t / (2 sqrt(x)) = 0`` is the cubic
    ``y^3 - |u| y + t/2 = 0`` in ``y = sqrt(x)``; its largest root gives

    .. math::

        h(u) = \tfrac{2}{3}|u|\left(1 + \cos\left(\tfrac{2}{3}\arccos\left(
               -\tfrac{t}{4}\left(\tfrac{3}{|u|}\right)^{3/2}\right)\right)\right),

    which is Xu et al.'s (2012) formula with their ``lambda = 2 t``. The prox is
    ``sign(u) h(u)`` where that beats zero, i.e. for ``|u| > 1.5 t^{2/3}``, and 0 otherwise.
    The comparison is made on the objective itself, so no rounding at the threshold can
    return a non-minimiser.
    """
    u = np.asarray(u, dtype=np.float64)
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), u.shape)
    au = np.abs(u)
    # a real nonzero stationary point exists only when 4 |u|^3 > 27 t^2 / 4; the formula is
    # evaluated on those entries alone (in a sparse code, a few of them)
    ok = (t > 0) & (au > 0) & (4.0 * (au * au * au) > 6.75 * t * t)
    a, tk = au[ok], t[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = -(tk / 4.0) * (3.0 / a) ** 1.5
        h = (2.0 / 3.0) * a * (1.0 + np.cos((2.0 / 3.0) * np.arccos(np.clip(arg, -1.0, 1.0))))
    better = 0.5 * (h - a) ** 2 + tk * np.sqrt(np.maximum(h, 0.0)) < 0.5 * a * a
    x = np.zeros_like(u)
    x[ok] = np.where(better, h, 0.0)
    x = np.where(t == 0, au, x)
    return np.sign(u) * x


def cel0_elementwise(a, lam, norms):
    r"""CEL0 penalty of each coefficient (lambda included).

    .. math::

        r(a) = \lambda - \frac{n^2}{2}\left(|a| - \frac{\sqrt{2\lambda}}{n}\right)^2
        \ \text{if}\ |a| \le \frac{\sqrt{2\lambda}}{n}, \quad \lambda\ \text{otherwise}.

    Computed as ``(n^2/2) |a| (2T - |a|)`` with ``T = sqrt(2 lam)/n`` (the same polynomial, since
    ``n^2 T^2 / 2 = lam``), capped at ``lam``: exactly 0 at ``a = 0`` (the subtraction
    ``lam - (n^2/2) T^2`` leaves a rounding residue of order ``1e-17``), and exactly ``lam`` from the
    knot ``|a| = T`` on, so continuous there.
    """
    a = np.abs(np.asarray(a, dtype=np.float64))
    norms = np.asarray(norms, dtype=np.float64)
    T = np.sqrt(2.0 * lam) / norms
    below = np.minimum(0.5 * norms**2 * a * (2.0 * T - a), lam)
    return np.where(a < T, below, lam)


def prox_cel0(u, step, lam, norms):
    r"""Prox of ``step * r_CEL0(x; lam, n)`` for atom norms ``n``.

    Regime ``step n^2 < 1`` (every ISTA step ``1/L``, ``L = ||Phi||_2^2``, except at equality):
    the objective is convex on ``|x| <= T = sqrt(2 lam)/n`` and

    .. math::

        \operatorname{prox}(u) = \operatorname{sign}(u)\min\left(|u|,
        \max\left(0, \frac{|u| - \text{step}\, n \sqrt{2\lambda}}{1 - \text{step}\, n^2}\right)\right).

    Regime ``step n^2 >= 1``: the objective is concave (or linear) on ``[0, T]``, so the
    minimiser is one of ``0`` (value ``u^2/2``), ``T`` (value ``(T - |u|)^2/2 + step lam``, when
    ``|u| < T``) or ``u`` (value ``step lam``, when ``|u| >= T``).
    """
    u = np.asarray(u, dtype=np.float64)
    step = np.asarray(step, dtype=np.float64)
    norms = np.asarray(norms, dtype=np.float64)
    au = np.abs(u)
    sn2 = np.broadcast_to(step * norms**2, u.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.minimum(au, np.maximum(0.0, (au - step * norms * np.sqrt(2.0 * lam)) / (1.0 - sn2)))
    concave = sn2 >= 1.0
    if np.any(concave):  # never for an ISTA step below 1/max n^2: skip the three-way comparison
        a = au[concave]
        T = np.broadcast_to(np.sqrt(2.0 * lam) / norms, u.shape)[concave]
        big = np.maximum(a, T)  # the nonzero candidate of the concave regime
        v_big = 0.5 * (big - a) ** 2 + np.broadcast_to(step, u.shape)[concave] * lam
        x[concave] = np.where(v_big < 0.5 * a * a, big, 0.0)
    return np.sign(u) * x


def penalty_elementwise(A, penalty: str, lam: float, norms=None) -> np.ndarray:
    """``r(a)`` of every coefficient of ``A`` (shape (..., K)); ``norms`` of shape (K,) for CEL0."""
    A = _real(A)
    if penalty == "l0":
        return lam * (A != 0).astype(A.dtype)
    if penalty == "l1":
        return lam * np.abs(A)
    if penalty == "l1/2":
        return lam * np.sqrt(np.abs(A))
    if penalty == "cel0":
        return cel0_elementwise(A, lam, norms)
    raise ValueError(f"penalty must be one of {list(PENALTIES)}, found {penalty!r}")


def prox(U, penalty: str, step: float, lam: float, norms=None) -> np.ndarray:
    """Prox of ``step * r`` for the named penalty, elementwise on ``U`` (shape (..., K))."""
    if penalty == "l0":
        return prox_l0(U, step * lam)
    if penalty == "l1":
        return prox_l1(U, step * lam)
    if penalty == "l1/2":
        return prox_half(U, step * lam)
    if penalty == "cel0":
        return prox_cel0(U, step, lam, norms)
    raise ValueError(f"penalty must be one of {list(PENALTIES)}, found {penalty!r}")
