"""Exact solvers and bounds at extreme but finite magnitudes (issue 15, items 9a and 9b): the
tree never proves a wrong optimum (it either is right or stops with a clear error), and no bound
exceeds the brute-force optimum, whatever the scale of ``P``, ``q`` and ``c``."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solvers import BQM, solve
from solvers.bounds import box_qp_bound, lower_bounds, roof_duality_bound
from solvers.tree import tree_search


def _brute(bqm):
    V = np.array(list(itertools.product([0, 1], repeat=bqm.n)), dtype=float).reshape(-1, bqm.n)
    E = bqm.energies(V)
    i = int(np.argmin(E))
    return V[i], float(E[i])


def _rounding(bqm, v):
    """A bound on the float64 rounding of E(v): 1e-12 of the sum of its terms' magnitudes."""
    v = np.asarray(v, dtype=float)
    return 1e-12 * float(v @ np.abs(bqm.P) @ v + np.abs(bqm.q) @ v + abs(bqm.c)) + 1e-320


@st.composite
def scaled_bqm(draw, max_n: int = 6):
    """A small QUBO whose quadratic, linear and constant parts have independent magnitudes
    from 1e-300 to 1e300 (ties from integer coefficients; singular and indefinite P)."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.normal(size=(n, n))
    if draw(st.booleans()):
        A = np.round(A)
    if draw(st.booleans()) and n > 1:  # singular: rank one
        u = rng.normal(size=n)
        A = np.outer(u, u) * draw(st.sampled_from([1.0, -1.0]))
    q = rng.normal(size=n)
    if draw(st.booleans()):
        q = np.round(q * 2)
    # up to 1e298: at 1e300 the sum of |coefficients| can pass the model's overflow guard (1.07e301),
    # so the strategy itself raised (seen under the dev profile)
    sp = 10.0 ** draw(st.integers(-300, 298))
    sq = draw(st.sampled_from([0.0, sp, 10.0 ** draw(st.integers(-300, 298))]))
    return BQM((A + A.T) / 2 * sp, q * sq, float(draw(st.sampled_from([0.0, sp]))))


def test_issue_15_9a_tiny_P_large_q_is_never_a_wrong_optimum():
    rng = np.random.default_rng(0)  # the old tree proved 0.0 here; the minimum is -3.3e-303
    A = rng.normal(size=(5, 5))
    P = (A + A.T) / 2 * 1e-303
    q = np.zeros(5)
    q[0] = 575.8
    bqm = BQM(P, q)
    x, opt = _brute(bqm)
    assert opt < 0
    try:
        res = tree_search(bqm.P, bqm.q, bqm.c, num_states=8)
    except ValueError as err:
        assert "not finite" in str(err) or "span more than float64 resolves" in str(err)
        return
    assert res.optimal
    assert res.energy <= opt + _rounding(bqm, x)
    assert res.lower_bound <= opt + _rounding(bqm, x)


def test_the_tree_refuses_a_model_wider_than_float64_resolves():
    """P at 5e23 and q at 5e-301 (found by hypothesis): the rescaled q is subnormal, and the tree
    proved E = 0 against the optimum -5.4e-301; it now refuses."""
    bqm = BQM(np.array([[0.0, 5e23], [5e23, 0.0]]), np.array([-5.3566937316111099e-301, 3.6159505490948475e-301]))
    assert _brute(bqm)[1] == -5.3566937316111099e-301
    with pytest.raises(ValueError, match="span more than float64 resolves"):
        solve(bqm, "tree")
    assert solve(bqm, "exhaustive").energy == -5.3566937316111099e-301


def test_issue_15_9b_roof_duality_at_tiny_magnitudes():
    bqm = BQM(1e-300 * np.array([[0.0, -1.0], [-1.0, 0.0]]), 1e-300 * np.array([0.8, 0.8]))
    _, opt = _brute(bqm)
    assert opt == pytest.approx(-4e-301, rel=1e-12)
    lb, fixed = roof_duality_bound(bqm)
    assert lb <= opt
    assert lb >= opt * (1 + 1e-6)  # and still a tight bound
    assert fixed == {0: 1, 1: 1}
    assert lower_bounds(bqm).best <= opt


@given(scaled_bqm())
def test_tree_is_right_or_refuses_at_any_scale(bqm):
    x, opt = _brute(bqm)
    try:
        res = solve(bqm, "tree")
    except ValueError as err:
        assert "not finite" in str(err) or "span more than float64 resolves" in str(err)
        return
    assert res.optimal
    assert res.energy <= opt + _rounding(bqm, x) + _rounding(bqm, res.x)
    assert res.lower_bound <= opt + _rounding(bqm, x)


@given(scaled_bqm())
def test_bounds_stay_below_the_optimum_at_any_scale(bqm):
    x, opt = _brute(bqm)
    tol = _rounding(bqm, x)
    lb, fixed = roof_duality_bound(bqm)
    assert lb <= opt + tol
    if fixed:  # fixing the variables keeps the optimum (up to the fixed-point resolution)
        reduced, _ = bqm.fix(fixed)
        _, opt_fixed = _brute(reduced) if reduced.n else (None, reduced.c)
        assert opt_fixed <= opt + tol + 1e-9 * abs(opt)
    try:
        assert box_qp_bound(bqm) <= opt + tol
        assert lower_bounds(bqm).best <= opt + tol
    except ValueError as err:
        assert "not finite" in str(err)
