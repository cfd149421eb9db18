"""The l1/2 prox (reference/penalties.py, ``prox_half``) at its threshold ``1.5 t^(2/3)``
(docs/sparse.md, proximal operators), against an independent closed form: the nonzero candidates
are ``y^2`` for the positive roots ``y`` of the cubic ``y^3 - |u| y + t/2 = 0`` (stationarity in
``y = sqrt(x)``), found here with ``numpy.roots``, and the prox is whichever of 0 and those
candidates has the lowest value of ``(x - |u|)^2 / 2 + t sqrt(x)``."""

import numpy as np
import pytest
from hypothesis import given

from reference.penalties import prox, prox_half
from tests.strategies import half_threshold_points


def _value(x, au, t):
    return 0.5 * (x - au) ** 2 + t * np.sqrt(x)


def _oracle(u, t):
    """The minimiser of ``(x - u)^2 / 2 + t |x|^(1/2)`` and its value, from the cubic's roots."""
    au = abs(u)
    roots = np.roots([1.0, 0.0, -au, t / 2])
    cands = [0.0] + [float(r.real) ** 2 for r in roots if abs(r.imag) <= 1e-9 * (1 + abs(r)) and r.real > 0]
    vals = [_value(x, au, t) for x in cands]
    i = int(np.argmin(vals))
    return np.sign(u) * cands[i], vals[i]


@pytest.mark.parametrize("t", [1e-6, 0.01, 0.7, 1.0, 3.0, 1e4])
def test_half_threshold_is_one_and_a_half_t_to_the_two_thirds(t):
    """Just below ``1.5 t^(2/3)`` the prox is 0, just above it is the cubic's largest root
    (nonzero, at least ``t^(2/3)``: the jump of half thresholding); between the existence point
    ``(27/16)^(1/3) t^(2/3) = 1.19 t^(2/3)`` of the nonzero stationary point and the threshold,
    the stationary point exists but loses to 0."""
    thr = 1.5 * t ** (2 / 3)
    for r in (1 - 1e-6, 1 - 1e-3, 0.9, 0.8, 1.2 / 1.5, 1e-3):
        assert prox_half(np.array([r * thr, -r * thr]), t).tolist() == [0.0, 0.0], r
    for r in (1 + 1e-6, 1 + 1e-3, 1.1, 2.0):
        u = r * thr
        x = prox_half(np.array([u, -u]), t)
        want, _ = _oracle(u, t)
        assert x[0] >= t ** (2 / 3) * (1 - 1e-9) and x[1] == -x[0]
        assert x[0] == pytest.approx(want, rel=1e-9)
    # the same threshold through the generic prox, with t = step * lam
    assert prox(np.array([0.999 * thr]), "l1/2", 0.5, 2 * t)[0] == 0.0
    assert prox(np.array([1.001 * thr]), "l1/2", 0.5, 2 * t)[0] > 0.0


@given(half_threshold_points())
def test_half_prox_near_its_threshold_equals_the_cubic_oracle(point):
    u, t = point
    x = float(prox_half(np.array([u]), t)[0])
    want, best = _oracle(u, t)
    au, thr = abs(u), 1.5 * t ** (2 / 3)
    # never worse than the oracle's minimum (the value is the thing that must be right) ...
    assert _value(abs(x), au, t) <= best + 1e-12 * (1 + best)
    # ... and away from the tie at the threshold, the same minimiser
    if abs(au - thr) > 1e-9 * thr:
        assert (x == 0.0) == (au < thr)
        assert x == pytest.approx(want, rel=1e-9, abs=0.0)
