"""Lower bounds (solvers/bounds.py) against brute force and an independent continuous solver."""

import numpy as np
import pytest
from hypothesis import example, given
from scipy.optimize import linprog, minimize

from solvers import BQM, solve
from solvers.bounds import box_qp_bound, convex_shift, lower_bounds, roof_duality_bound
from tests.solvers.test_tree import general_bqm, psd_layer
from tests.strategies import all_states, qubos


def _tol(bqm):
    return 1e-9 * (1.0 + np.abs(bqm.P).sum() + np.abs(bqm.q).sum() + abs(bqm.c))


def _brute(P, q, c):
    """The minimum over all binary states, by numpy (independent of the project's solvers)."""
    V = all_states(len(q)).astype(np.float64)
    return float(np.min(np.einsum("ij,jk,ik->i", V, P, V) + V @ q + c))


@given(psd_layer(max_n=14))
def test_bounds_of_psd_rows_are_below_the_optimum(problem):
    bqm = problem.row_bqm(0)
    opt = _brute(bqm.P, bqm.q, bqm.c)
    b = lower_bounds(bqm)
    assert b.box_qp <= opt + _tol(bqm)
    assert b.roof_duality <= opt + _tol(bqm)
    assert b.best <= opt + _tol(bqm)


@given(general_bqm())
def test_bounds_of_indefinite_qubos_are_below_the_optimum(bqm):
    opt = _brute(bqm.P, bqm.q, bqm.c)
    assert box_qp_bound(bqm) <= opt + _tol(bqm)
    assert roof_duality_bound(bqm)[0] <= opt + _tol(bqm)


def _standard_linearisation_lp(bqm):
    """The roof dual computed independently: the LP relaxation of the standard linearisation
    (Hammer, Hansen and Simeone 1984), ``y_ij`` for ``x_i x_j`` with ``y <= x_i``, ``y <= x_j``,
    ``y >= x_i + x_j - 1``, everything in ``[0, 1]``, solved by HiGHS."""
    P, q, n = bqm.P, bqm.q, bqm.n
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if P[i, j] != 0]
    cost = np.concatenate([q + np.diag(P), [2 * P[i, j] for i, j in pairs]])
    A, b = np.zeros((3 * len(pairs), n + len(pairs))), np.zeros(3 * len(pairs))
    for k, (i, j) in enumerate(pairs):
        A[3 * k, [n + k, i]] = 1, -1
        A[3 * k + 1, [n + k, j]] = 1, -1
        A[3 * k + 2, [i, j, n + k]] = 1, 1, -1
        b[3 * k + 2] = 1
    res = linprog(cost, A_ub=A if pairs else None, b_ub=b if pairs else None, bounds=[(0, 1)] * cost.size,
                  method="highs")
    assert res.status == 0
    return res.fun + bqm.c


def _tie_example():
    """8 variables, ``P = -1`` except ``P_01 = P_02 = 3``, ``q = -1``: minimisers with ``x_0 = 0``
    and ``x_0 = 1`` (an exact tie, broken by the library's fixed-point conversion)."""
    P = -np.ones((8, 8))
    P[0, 1] = P[1, 0] = P[0, 2] = P[2, 0] = 3.0
    return P, -np.ones(8), 0.0


@example(_tie_example())
@given(qubos(max_n=9, extreme=False))
def test_roof_duality_bound_is_the_lp_of_the_standard_linearisation_and_fixing_keeps_the_optimum(pqc):
    bqm = BQM(*pqc)
    lb, fixed = roof_duality_bound(bqm)
    assert abs(lb - _standard_linearisation_lp(bqm)) <= 1e-7 * (1.0 + np.abs(bqm.P).sum() + np.abs(bqm.q).sum())
    # the fixed values are taken by some minimiser: the data are integers or four-decimal
    # reals, so distinct energy levels are >= 1e-4 apart, far above the fixed-point resolution
    S = all_states(bqm.n)
    E = bqm.energies(S)
    keep = np.ones(len(S), dtype=bool)
    for i, v in fixed.items():
        keep &= S[:, i] == v
    assert E[keep].min() <= E.min() + _tol(bqm)


def test_roof_duality_strict_mode_breaks_exact_ties_by_its_fixed_point_conversion():
    # not strong persistency for the model itself: x_0 is fixed although minimisers with either
    # value exist, and which value is fixed depends on the model's scale (docs/exact.md)
    bqm = BQM(*_tie_example())
    S = all_states(8)
    E = bqm.energies(S)
    assert set(S[E == E.min(), 0]) == {0, 1}
    assert roof_duality_bound(bqm)[1][0] == 1
    assert roof_duality_bound(BQM(bqm.P * 1000, bqm.q * 1000))[1][0] == 0


def test_roof_duality_fixes_a_separable_model_completely():
    bqm = BQM(np.zeros((3, 3)), [-1.0, 2.0, -0.5], 1.0)
    lb, fixed = roof_duality_bound(bqm)
    assert fixed == {0: 1, 1: 0, 2: 1}
    assert abs(lb - (-0.5)) < 1e-8


@given(psd_layer(max_n=12))
def test_box_qp_bound_is_the_continuous_minimum_of_a_psd_form(problem):
    bqm = problem.row_bqm(0)
    lb = box_qp_bound(bqm)
    if bqm.n == 0:  # every weight clipped: nothing to choose
        assert lb == bqm.c
        return
    d = convex_shift(bqm.P)
    A = bqm.P + d * np.eye(bqm.n)
    b = bqm.q - d

    def f(x):
        return x @ A @ x + b @ x + bqm.c, 2 * A @ x + b

    best = min(minimize(f, x0, jac=True, method="TNC", bounds=[(0, 1)] * bqm.n).fun
               for x0 in (np.full(bqm.n, 0.5), np.zeros(bqm.n), np.ones(bqm.n)))
    scale = 1.0 + np.abs(A).sum() + np.abs(b).sum() + abs(bqm.c)
    assert lb <= best + 1e-9 * scale  # valid
    assert lb >= best - 1e-5 * scale  # and tight (the certified continuous minimum)


def test_convex_shift_makes_P_psd_and_is_zero_ish_for_psd_P():
    rng = np.random.default_rng(1)
    M = rng.normal(size=(6, 6))
    P = (M + M.T) / 2
    d = convex_shift(P)
    assert np.linalg.eigvalsh(P + d * np.eye(6))[0] >= 0
    assert convex_shift(M.T @ M) < 1e-10


@given(psd_layer(max_n=12, rows=2))
def test_every_lower_bound_returned_by_solve_is_below_the_optimum(problem):
    rows = [problem.row_bqm(k) for k in range(problem.n_rows)]
    opt = sum(_brute(m.P, m.q, m.c) if m.n else m.c for m in rows)
    for method, opts in [("tree", {}), ("tree", {"max_nodes": 3}), ("exhaustive", {})]:
        res = solve(problem, method, **opts)
        assert res.lower_bound is not None
        assert res.lower_bound <= opt + 1e-9 * (1 + opt)
        if res.optimal:
            assert abs(res.energy - opt) <= 1e-9 * (1 + opt)


@given(psd_layer(max_n=12, rows=3))
def test_a_layers_row_bounds_stay_below_each_rows_optimum(problem):
    # checked row by row against enumeration of that row (rank-deficient G included: N may be < n)
    res = solve(problem, "tree", max_nodes=2)
    rows = res.info["row_lower_bounds"]
    assert len(rows) == problem.n_rows
    total = 0.0
    for k, lb in enumerate(rows):
        m = problem.row_bqm(k)
        opt = _brute(m.P, m.q, m.c) if m.n else m.c
        total += opt
        assert lb <= opt + 1e-9 * (1 + abs(opt))
    assert res.lower_bound <= total + 1e-9 * (1 + total)


@pytest.mark.parametrize("fn", [box_qp_bound, roof_duality_bound, lower_bounds])
def test_bounds_refuse_a_non_bqm(fn):
    with pytest.raises(ValueError, match="bqm must be a solvers.BQM"):
        fn(np.eye(2))
