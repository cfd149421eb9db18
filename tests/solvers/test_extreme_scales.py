"""Exact solvers and bounds at extreme but finite magnitudes (issue 15, items 9a and 9b): the
tree never proves a wrong optimum (it either is right or stops with a clear error), and no bound
exceeds the brute-force optimum, whatever the scale of ``P``, ``q`` and ``c``."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, event, given
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


#: The tree's refusals, word for word (solvers/tree.py, solvers/least_squares.py, solvers/bounds.py).
SPAN = ("the model's coefficients span more than float64 resolves: the smallest nonzero, {lo:.3g}, is below "
        "2^-1022 of the largest, {hi:.3g}; the tree cannot prove an optimum at that resolution: rescale the "
        "model, drop the negligible terms or use method='exhaustive'")
FACTOR = ("the least-squares factor of this model is not finite: the ratio ||q||^2 / ||P|| exceeds the float64 "
          "range; use method='exhaustive'")
BOX_QP = "the box-QP bound of this model is not finite (its dynamic range exceeds float64); use method='exhaustive'"


def _nonzero(bqm):
    return np.abs(np.concatenate([bqm.P[bqm.P != 0], bqm.q[bqm.q != 0]]))


def _span_refused(bqm) -> bool:
    """The resolution limit, restated from its documentation (docs/exact.md): scaled by the power
    of two ``2^-e`` that puts the largest ``|coefficient|`` of ``P``, ``q`` and ``c`` in
    ``[0.5, 1)``, some nonzero coefficient of ``P`` or ``q`` falls below ``2^-1022``."""
    nz = _nonzero(bqm)
    top = max(float(np.max(np.abs(bqm.P), initial=0.0)), float(np.max(np.abs(bqm.q), initial=0.0)), abs(bqm.c))
    if nz.size == 0:
        return False
    e = math.frexp(top)[1]
    return float(nz.min()) * 2.0 ** -e < np.finfo(np.float64).tiny


def _span_message(bqm) -> str:
    nz = _nonzero(bqm)
    return SPAN.format(lo=float(nz.min()), hi=float(nz.max()))


def _spread(bqm) -> float:
    """max / min of the nonzero magnitudes of P and q (1 with fewer than one)."""
    nz = _nonzero(bqm)
    return float(nz.max() / nz.min()) if nz.size else 1.0


def _parts(draw, n, rng):
    """A quadratic part (integer ties, rank one, indefinite) and a linear part, both O(1)."""
    A = rng.normal(size=(n, n))
    if draw(st.booleans()):
        A = np.round(A)
    if draw(st.booleans()) and n > 1:  # singular: rank one
        u = rng.normal(size=n)
        A = np.outer(u, u) * draw(st.sampled_from([1.0, -1.0]))
    q = rng.normal(size=n)
    if draw(st.booleans()):
        q = np.round(q * 2)
    return (A + A.T) / 2, q


@st.composite
def scaled_bqm(draw, max_n: int = 6):
    """A small QUBO whose quadratic, linear and constant parts have independent magnitudes
    from 1e-300 to 1e298 (ties from integer coefficients; singular and indefinite P): every
    region, the refused ones included, but the refusals only rarely (the two tests below reach
    them on purpose)."""
    n = draw(st.integers(1, max_n))
    A, q = _parts(draw, n, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    # up to 1e298: at 1e300 the sum of |coefficients| can pass the model's overflow guard (1.07e301),
    # so the strategy itself raised (seen under the dev profile)
    sp = 10.0 ** draw(st.integers(-300, 298))
    sq = draw(st.sampled_from([0.0, sp, 10.0 ** draw(st.integers(-300, 298))]))
    return BQM(A * sp, q * sq, float(draw(st.sampled_from([0.0, sp]))))


@st.composite
def resolvable_bqm(draw, max_n: int = 6):
    """A QUBO at any magnitude from 1e-290 to 1e298 whose nonzero coefficients of ``P`` and
    ``q`` lie within 1e100 of each other: well inside what the tree must solve (the refusals
    need a ratio beyond 2^1022, or ``||q||^2 / ||P||`` beyond 1e308)."""
    n = draw(st.integers(1, max_n))
    A, q = _parts(draw, n, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    a = draw(st.integers(-290, 298))
    b = draw(st.integers(max(-290, a - 100), min(298, a + 100)))
    return BQM(A * 10.0**a, q * 10.0**b, float(draw(st.sampled_from([0.0, 10.0**a, -(10.0**b)]))))


@st.composite
def unresolvable_bqm(draw, max_n: int = 6):
    """A QUBO whose smallest nonzero coefficient is below 2^-1023 of its largest: every draw lies
    in the refused region. The small part (``P`` or ``q``, or a single entry of ``q``) holds
    nonzero integers times ``10^b`` (normal numbers, >= 1e-307), the large part ``O(10^a)``."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A, q = _parts(draw, n, rng)
    a = draw(st.integers(5, 298))
    b = draw(st.integers(-307, a - 312))
    small = draw(st.sampled_from(["P", "q", "one q"] if n > 1 else ["q", "one q"]))
    ints = rng.integers(1, 6, size=(n, n)) * rng.choice([-1, 1], size=(n, n))
    if small == "P":
        P, q = (ints + ints.T) * 10.0**b, np.where(q == 0, 1.0, q) * 10.0**a
    elif small == "q":
        P, q = A * 10.0**a + np.eye(n) * 10.0**a, ints[0] * 10.0**b
    else:
        q = np.where(q == 0, 1.0, q) * 10.0**a
        q[draw(st.integers(0, n - 1))] = ints[0, 0] * 10.0**b
        P = A * 10.0**a
    bqm = BQM(P, q, float(draw(st.sampled_from([0.0, 10.0**a]))))
    assume(_span_refused(bqm))  # the design's promise, restated (fails only for a near-zero large part)
    return bqm


def test_issue_15_9a_tiny_P_large_q_is_never_a_wrong_optimum():
    rng = np.random.default_rng(0)  # the old tree proved 0.0 here; the minimum is -3.3e-303
    A = rng.normal(size=(5, 5))
    P = (A + A.T) / 2 * 1e-303
    q = np.zeros(5)
    q[0] = 575.8
    bqm = BQM(P, q)
    x, opt = _brute(bqm)
    assert opt < 0
    assert _span_refused(bqm)  # its smallest entry, 8.6e-306, is below 2^-1012 (its largest is 575.8 < 2^10)
    with pytest.raises(ValueError) as err:
        tree_search(bqm.P, bqm.q, bqm.c, num_states=8)
    assert str(err.value) == _span_message(bqm)
    assert solve(bqm, "exhaustive").energy == pytest.approx(opt, rel=1e-12)


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


@given(resolvable_bqm())
def test_the_tree_solves_every_model_within_its_resolution(bqm):
    """No refusal is allowed here: the optimum is proved and equals the brute-force one."""
    x, opt = _brute(bqm)
    assert not _span_refused(bqm)
    res = solve(bqm, "tree")
    assert res.optimal
    assert res.energy <= opt + _rounding(bqm, x) + _rounding(bqm, res.x)
    assert res.lower_bound <= opt + _rounding(bqm, x)


@given(unresolvable_bqm())
def test_the_tree_refuses_every_model_beyond_its_resolution_and_says_so(bqm):
    with pytest.raises(ValueError) as err:
        solve(bqm, "tree")
    assert str(err.value) == _span_message(bqm)
    x, opt = _brute(bqm)  # the advice holds: exhaustive enumeration solves it
    res = solve(bqm, "exhaustive")
    assert res.optimal and abs(res.energy - opt) <= _rounding(bqm, x) + _rounding(bqm, res.x)


@given(scaled_bqm())
def test_tree_is_right_or_refuses_at_any_scale(bqm):
    """Every model: refused by the resolution limit exactly when the documentation says, refused
    for a factor beyond float64 only far outside the resolvable region, else right."""
    x, opt = _brute(bqm)
    if _span_refused(bqm):
        event("refused: span")
        with pytest.raises(ValueError) as err:
            solve(bqm, "tree")
        assert str(err.value) == _span_message(bqm)
        return
    try:
        res = solve(bqm, "tree")
    except ValueError as err:
        event("refused: factor or box-QP bound")
        assert str(err) in (FACTOR, BOX_QP)
        assert _spread(bqm) > 1e200, _spread(bqm)
        return
    event("solved")
    assert res.optimal
    assert res.energy <= opt + _rounding(bqm, x) + _rounding(bqm, res.x)
    assert res.lower_bound <= opt + _rounding(bqm, x)


def _check_bounds(bqm, refusable: bool):
    x, opt = _brute(bqm)
    tol = _rounding(bqm, x)
    lb, fixed = roof_duality_bound(bqm)
    assert lb <= opt + tol
    if fixed:  # strong persistency: every minimiser takes the fixed values
        reduced, _ = bqm.fix(fixed)
        _, opt_fixed = _brute(reduced) if reduced.n else (None, reduced.c)
        assert opt_fixed <= opt + tol + 1e-9 * abs(opt)
    try:
        assert box_qp_bound(bqm) <= opt + tol
        assert lower_bounds(bqm).best <= opt + tol
    except ValueError as err:
        event("box-QP bound refused")
        assert refusable and str(err) in (FACTOR, BOX_QP), str(err)
        assert _spread(bqm) > 1e200, _spread(bqm)


@given(resolvable_bqm())
def test_bounds_are_computed_and_stay_below_the_optimum_within_the_resolution(bqm):
    _check_bounds(bqm, refusable=False)


@given(scaled_bqm())
def test_bounds_stay_below_the_optimum_at_any_scale(bqm):
    _check_bounds(bqm, refusable=True)


@given(st.integers(1, 990), st.floats(0.5, 1.0, exclude_max=True),
       st.sampled_from([0.5, 0.75, 1 - 2.0**-52, 1.0, 1.0 + 2.0**-52, 1.5, 2.0]),
       st.sampled_from([0.0, 0.5, -0.5]), st.sampled_from([1.0, -1.0]), st.sampled_from([1.0, -1.0]))
def test_the_resolution_limit_is_exact_at_its_edge(e, f, k, p, s0, s1):
    """The largest coefficient ``M = f 2^e`` and a smallest ``m = k 2^(e-1022)``: refused exactly
    when ``k < 1``, with the documented message; at ``k >= 1`` solved, or refused only for a factor
    beyond float64 (``M / m`` is about 2^1022 here)."""
    M = math.ldexp(f, e)
    m = math.ldexp(k, e - 1022)
    bqm = BQM(np.array([[0.0, p * M], [p * M, 0.0]]), [s0 * M, s1 * m])
    assert _span_refused(bqm) == (k < 1)
    if k < 1:
        with pytest.raises(ValueError) as err:
            solve(bqm, "tree")
        assert str(err.value) == _span_message(bqm)
        return
    try:
        res = solve(bqm, "tree")
    except ValueError as err:
        assert str(err) in (FACTOR, BOX_QP)
        return
    x, opt = _brute(bqm)
    assert res.optimal and res.energy <= opt + _rounding(bqm, x) + _rounding(bqm, res.x)
