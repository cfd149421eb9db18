"""Checks of certified lower bounds, and the gap interval they certify (docs/conventions.md,
"Gaps and certified bounds").

A certified ``lower_bound`` ``L`` of a minimisation is only as good as the proof behind it, so
every consumer checks it against the energies it has: ``L`` above the recomputed energy ``E`` of
any state (beyond float64 rounding) is a :class:`CertificateError` that names the method, never
something clamped away. The rounding allowance is ``BOUND_RTOL * energy_scale(problem)``:
an energy is a few nested dot products over the model's terms, and float64 evaluates a sum of
``m`` terms with an error of at most about ``m 2^-53`` times the sum of the terms' magnitudes
(the standard bound for recursive or pairwise summation); :func:`energy_scale` bounds that sum
for every state, and ``m`` is at most ``2 (n + 1)`` per nesting, so ``1e-9`` covers every model
up to about a million variables per row.

The gap of a value ``v`` to the optimum ``o`` is ``(v - o) / |o|`` (docs/conventions.md).
Without a proven ``o``, all that is known is ``L <= o <= B`` (``B`` the lowest value found), and
:func:`gap_interval` returns the range of Eq. G1 over every such ``o``: an interval that holds the
true gap whatever the signs of ``L``, ``o`` and ``B``.
"""

from __future__ import annotations

import math

import numpy as np

from .bqm import BQM
from .layer import LayerProblem

__all__ = ["BOUND_RTOL", "CertificateError", "energy_scale", "check_bound", "gap_interval"]

#: Allowed float64 excess of a certified bound over an energy, relative to :func:`energy_scale`.
BOUND_RTOL = 1e-9


class CertificateError(RuntimeError):
    """A certified lower bound (or an ``optimal`` claim) above an energy that a state attains:
    a wrong certificate. Not a ValueError: it is never a property of the input to report and
    move on from (the harness records ValueErrors as refused tasks)."""


def energy_scale(problem) -> float:
    """An upper bound on the sum of the magnitudes of the terms of any state's energy.

    A QUBO (Eq. 2): ``|c| + sum|q_i| + sum|P_ij|``. A layer (Eq. 20, row by row): with
    ``a_k`` the error of row ``k`` when every weight is rounded down and ``b_k`` its step,
    ``sum_k (|a_k| + |b_k|)^T |G_k| (|a_k| + |b_k|)`` (every state's error lies within
    ``|a_k| + |b_k|``; it also bounds the terms of the row QUBOs built from ``a_k``, ``b_k`` and
    ``G_k``), plus the rows' constant offsets where the loss has them (Eq. 25).
    """
    if isinstance(problem, BQM):
        return float(abs(problem.c) + np.abs(problem.q).sum() + np.abs(problem.P).sum())
    if isinstance(problem, LayerProblem):
        down = problem.w_hat(np.zeros(problem.shape, dtype=np.int8))
        up = problem.w_hat(np.ones(problem.shape, dtype=np.int8))
        U = np.abs(down - problem.W) + np.abs(up - down)
        groups: dict = {}  # rows that share one Gram matrix (a layer's G, a conv group's patch Gram)
        for k in range(problem.n_rows):
            g = problem._row_gram(k)
            groups.setdefault((g.__array_interface__["data"][0], g.shape, g.strides), (g, []))[1].append(k)
        total = sum(float(np.einsum("ki,ij,kj->", U[rows], np.abs(g), U[rows], optimize=True))
                    for g, rows in groups.values())
        return total + float(np.abs(getattr(problem, "offsets", 0.0)).sum())
    raise TypeError(f"problem must be a solvers.BQM or a solvers.LayerProblem, found {type(problem).__name__}")


def check_bound(bound: float, energy: float, scale, what: str) -> None:
    """Raise :class:`CertificateError` when ``bound > energy + BOUND_RTOL * scale``; ``what``
    names the bound and the energy in the message (the methods that gave them). ``scale`` is a
    number, or the problem whose :func:`energy_scale` it is (computed only when ``bound > energy``)."""
    if not bound > energy:
        return
    if not isinstance(scale, (int, float, np.floating)):
        scale = energy_scale(scale)
    if bound > energy + BOUND_RTOL * scale:
        raise CertificateError(
            f"{what}: the certified lower bound {bound!r} lies above the energy {energy!r} that a state "
            f"attains (by {bound - energy:.3e}, more than float64 rounding, {BOUND_RTOL:g} x the energy "
            f"scale {scale:.3e}); the certificate is wrong"
        )


def _gap(value: float, opt: float) -> float:
    """The gap ``(value - opt) / |opt|`` with ``value >= opt``: 0 when both are 0, inf when only
    ``opt`` is."""
    if opt == 0:
        return 0.0 if value == 0 else math.inf
    return (value - opt) / abs(opt)


def gap_interval(value: float, best_known: float, lower: float | None) -> tuple[float | None, float | None]:
    """``(low, high)``: the range of the gap ``(value - o) / |o|`` over every optimum ``o`` in
    ``[lower, best_known]`` (``lower`` None: no bound, ``o`` anywhere below ``best_known``);
    either end None when it is unbounded. ``value >= best_known``, and ``lower <= best_known``
    up to rounding (:func:`check_bound`; a bound above ``best_known`` within the allowance is
    taken as ``best_known``).

    The gap is monotone in ``o`` on each side of 0: for ``o > 0`` it is ``value / o - 1``
    (decreasing); for ``o < 0`` it is ``1 - value / o`` (increasing when ``value > 0``,
    decreasing when ``value < 0``, 1 when ``value == 0``, and 1 in the limit ``o -> -inf``); it
    is unbounded near ``o = 0`` unless ``value == 0``. So the range is spanned by its values and
    limits at the ends of each side.
    """
    v, hi_o = float(value), float(best_known)
    lo_o = -math.inf if lower is None else min(float(lower), hi_o)
    ends = []
    if lo_o < 0:  # optima below zero
        ends.append(1.0 if lo_o == -math.inf else _gap(v, lo_o))
        ends.append(_gap(v, hi_o) if hi_o < 0 else (math.inf if v > 0 else 1.0))
    if lo_o <= 0 <= hi_o:  # the optimum may be 0
        ends.append(_gap(v, 0.0))
    if hi_o > 0:  # optima above zero
        ends.append(_gap(v, lo_o) if lo_o > 0 else math.inf)
        ends.append(_gap(v, hi_o))
    low, high = min(ends), max(ends)
    return (None if math.isinf(low) else low), (None if math.isinf(high) else high)
