"""Hypothesis strategies for the tests.

The public strategies of :mod:`reference.testing` (``small_layers``, ``small_bqms``, ``psd_bqms``)
draw a seed and fill arrays from it; the ones written here draw the arrays themselves
(``hypothesis.extra.numpy``), so a failure shrinks to a small, readable example, and they aim at
the hard cases: weights exactly on grid points and at exact ``.5`` ties, QUBOs with equal-energy
states (integer coefficients), extreme but finite magnitudes, singular and indefinite ``P``, and
the half-threshold region of the l1/2 prox.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import Grid
from reference.testing import bqms as small_bqms  # noqa: F401
from reference.testing import layers as small_layers  # noqa: F401
from reference.testing import psd_bqms  # noqa: F401


def all_states(n):
    """All 2^n binary vectors as int8 rows."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)


def _ints(shape, lo=-4, hi=4):
    return hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)).map(lambda a: a.astype(np.float64))


def _reals(shape, bound=3.0):
    """Reals in [-bound, bound] with at most four decimals (no tiny values: scaled by 1e-150 they
    stay normal floats)."""
    k = int(bound * 10_000)
    return hnp.arrays(np.int64, shape, elements=st.integers(-k, k)).map(lambda a: a / 10_000)


@st.composite
def qubos(draw, min_n: int = 1, max_n: int = 8, extreme: bool = True):
    """``(P, q, c)``, symmetric ``P``, drawn element by element. Kinds: ``"integer"`` (small
    integer coefficients: many equal-energy states), ``"real"`` (indefinite), ``"singular"``
    (``P = B^T B`` of rank below ``n``, or ``-B^T B``), ``"zero"`` (``P = 0``: separable). With
    ``extreme``, everything is scaled by ``10^k``, ``|k| <= 150`` (finite energies, no overflow)."""
    n = draw(st.integers(min_n, max_n))
    kind = draw(st.sampled_from(["integer", "real", "singular", "zero"]))
    if kind == "integer":
        A, q = draw(_ints((n, n))), draw(_ints(n))
        P = np.triu(A) + np.triu(A, 1).T
    elif kind == "real":
        A, q = draw(_reals((n, n))), draw(_reals(n))
        P = (A + A.T) / 2
    elif kind == "singular":
        rank = draw(st.integers(1, max(1, n - 1)))
        B = draw(_ints((rank, n), -2, 2))
        P, q = B.T @ B * draw(st.sampled_from([1.0, -1.0])), draw(_ints(n, -6, 6))
    else:
        P, q = np.zeros((n, n)), draw(_reals(n))
    c = float(draw(st.integers(-3, 3)))
    if extreme:
        s = 10.0 ** draw(st.sampled_from([0, 0, 0, -150, -20, 20, 150]))
        P, q, c = P * s, q * s, c * s
    return P, q, c


@st.composite
def grid_layers(draw, max_out: int = 3, max_in: int = 6):
    """``(W, X, grid)`` with weights built as ``s (k + f - z)``: integer ``k`` (some outside the
    grid: clipped), fraction ``f`` exactly 0 (on a grid point), exactly 0.5 (a tie) or any value in
    ``[0, 1)``; power-of-two scales keep ``W / s`` exact. Symmetric or asymmetric, per-row or
    per-tensor grids of 2-4 bits; ``X`` of small integers (equal losses for different roundings)
    or of reals, often with ``N`` below the fan-in (singular ``G``)."""
    out = draw(st.integers(1, max_out))
    fan_in = draw(st.integers(1, max_in))
    bits = draw(st.integers(2, 4))
    if draw(st.booleans()):
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        qmin, qmax = 0, 2**bits - 1
    rows = out if draw(st.booleans()) else 1
    scale = 2.0 ** draw(hnp.arrays(np.int64, rows, elements=st.integers(-6, 3))).astype(np.float64)
    zero = draw(hnp.arrays(np.int64, rows, elements=st.integers(qmin, qmax))) if qmin == 0 else np.zeros(rows)
    grid = Grid(scale, qmin, qmax, zero)
    k = draw(hnp.arrays(np.int64, (out, fan_in), elements=st.integers(qmin - 1, qmax)))
    frac = draw(hnp.arrays(np.float64, (out, fan_in), elements=st.one_of(
        st.just(0.0), st.just(0.5), st.floats(0.0, 1.0, exclude_max=True, allow_subnormal=False))))
    s, z = grid.per_row(out)
    W = s * (k + frac - z)
    n = draw(st.integers(1, 2 * fan_in))
    X = draw(_ints((n, fan_in), -2, 2) if draw(st.booleans()) else _reals((n, fan_in)))
    return W, X, grid


@st.composite
def half_threshold_points(draw):
    """``(u, t)`` for the l1/2 prox: ``t`` from 1e-6 to 1e6 and ``u`` within 30 % of the
    threshold ``1.5 t^(2/3)`` (where a wrong threshold constant or a wrong branch shows), either
    sign, sometimes exactly at the threshold or at the existence point ``(27/16)^(1/3) t^(2/3)``."""
    t = 10.0 ** draw(st.floats(-6, 6))
    thr = 1.5 * t ** (2 / 3)
    r = draw(st.one_of(st.floats(0.7, 1.3), st.floats(0.95, 1.05), st.sampled_from([1.0, (27 / 16) ** (1 / 3) / 1.5])))
    return draw(st.sampled_from([1.0, -1.0])) * r * thr, t


def qubo_models(min_n: int = 1, max_n: int = 8, extreme: bool = True):
    """:func:`qubos` as :class:`solvers.BQM` models."""
    from solvers import BQM

    return qubos(min_n, max_n, extreme).map(lambda pqc: BQM(*pqc))
