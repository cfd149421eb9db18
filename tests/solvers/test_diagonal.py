"""The SDP-dual diagonal (solvers/diagonal.py) and its use in the tree: bounds below the
brute-force optimum, tight where Shor's relaxation is, and the same optima as exhaustive."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import solvers.tree as tree_module
from solvers import BQM, solve
from solvers.bounds import _box_qp_bound
from solvers.diagonal import _phi as continuous_value, sdp_diagonal
from solvers.exhaustive import exhaustive_minimum
from tests.solvers.test_tree import _hard_problem, general_bqm, psd_layer
from tests.strategies import qubo_models


def _tol(bqm):
    return 1e-9 * (1.0 + np.abs(bqm.P).sum() + np.abs(bqm.q).sum() + abs(bqm.c))


@given(general_bqm())
def test_sdp_diagonal_gives_a_bound_below_the_optimum_and_above_the_uniform_shift(bqm):
    opt = exhaustive_minimum(bqm.P, bqm.q, bqm.c).energy
    u = sdp_diagonal(bqm.P, bqm.q)
    assert np.all(np.linalg.eigvalsh(bqm.P + np.diag(u)) > 0)
    phi = continuous_value(bqm.P, bqm.q, bqm.c, u)
    assert phi <= opt + _tol(bqm)
    w = np.linalg.eigvalsh(bqm.P)
    uniform = np.full(bqm.n, max(0.0, -w[0]) + 1e-3 * max(1.0, abs(w).max()))
    assert phi >= continuous_value(bqm.P, bqm.q, bqm.c, uniform) - _tol(bqm)
    # the certified box-QP bound on the rewritten form is below the optimum too
    assert _box_qp_bound(bqm.P, bqm.q, bqm.c, diagonal=u)[0] <= opt + _tol(bqm)


@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_shor_bound_is_tight_on_separable_models(n, seed):
    # P diagonal: E = sum (P_ii + q_i) v_i, and Shor's relaxation is exact
    rng = np.random.default_rng(seed)
    P = np.diag(rng.normal(size=n))
    q = rng.normal(size=n)
    opt = float(np.minimum(np.diag(P) + q, 0.0).sum())
    phi = continuous_value(P, q, 0.0, sdp_diagonal(P, q))
    assert phi <= opt + 1e-9
    assert phi >= opt - 1e-3 * (1 + abs(opt))


@given(st.one_of(general_bqm(), qubo_models(max_n=10)), st.sampled_from(["sdp", "uniform"]),
       st.sampled_from(["schur", "natural"]))
def test_tree_with_either_diagonal_equals_exhaustive(bqm, diagonal, order):
    opt = exhaustive_minimum(bqm.P, bqm.q, bqm.c).energy
    res = solve(bqm, "tree", diagonal=diagonal, order=order)
    assert res.optimal
    assert abs(res.energy - opt) <= _tol(bqm)
    assert res.info["root_bound"] <= opt + _tol(bqm)


@given(psd_layer(max_n=16), st.integers(1, 300))
def test_node_limited_sdp_tree_bound_stays_below_the_optimum(problem, max_nodes):
    exact = solve(problem, "exhaustive")
    res = solve(problem, "tree", max_nodes=max_nodes, diagonal="sdp")
    assert res.lower_bound <= exact.energy + 1e-9 * (1 + exact.energy)


def test_a_time_limit_given_alone_is_not_cut_short_by_a_node_limit(monkeypatch):
    monkeypatch.setattr(tree_module, "DEFAULT_MAX_NODES", 50)
    bqm = _hard_problem(n=30, seed=1)
    capped = solve(bqm, "tree")  # neither limit: the default node budget applies
    assert not capped.optimal and "max_nodes == 50" in capped.status
    timed = solve(bqm, "tree", time_limit=600.0)  # the time limit alone governs
    assert timed.optimal and timed.info["nodes"] > 50


def test_bad_diagonal_option_is_refused():
    with pytest.raises(ValueError, match="diagonal must be one of"):
        solve(BQM(np.eye(2)), "tree", diagonal="exact")
