"""The tree search (solvers/tree.py) against brute force: exact optima, k lowest states, valid
bounds under limits, semidefinite and indefinite P."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import Grid
from solvers import BQM, LayerProblem, solve
from solvers.bounds import lower_bounds
from solvers.exhaustive import exhaustive_minimum
from solvers.least_squares import least_squares_form, nearest_plane
from solvers import tree as tree_module
from solvers.tree import tree_search
from tests.strategies import qubo_models


# ---------------------------------------------------------------------------- strategies
@st.composite
def psd_layer(draw, max_n: int = 20, rows: int = 1):
    """A LayerProblem whose rows are PSD QUBOs: N may be < n, inputs may be duplicated, the
    grid may clip weights (clipped weights have no variable)."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    N = draw(st.sampled_from([1, max(1, n // 3), n, 4 * n]))
    X = rng.normal(size=(N, n))
    if n > 1 and draw(st.booleans()):  # duplicated inputs
        dup = rng.integers(0, n, size=max(1, n // 3))
        X[:, rng.integers(0, n, size=dup.size)] = X[:, dup]
    if draw(st.booleans()):  # correlated inputs
        X = X @ (np.eye(n) + 0.8 * rng.normal(size=(n, n)) / np.sqrt(n))
    W = rng.normal(size=(rows, n))
    bits = draw(st.sampled_from([2, 3, 4]))
    qmax = 2 ** (bits - 1) - 1
    clip = draw(st.sampled_from([1.0, 0.6, 0.3]))  # < 1: the largest weights are clipped
    scale = clip * np.abs(W).max(axis=1) / qmax + 1e-12
    return LayerProblem(W, Grid(scale, -qmax - 1, qmax), X=X)


@st.composite
def general_bqm(draw, max_n: int = 12):
    """An arbitrary QUBO (indefinite P), sometimes with integer coefficients (ties)."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.normal(size=(n, n)) * draw(st.sampled_from([0.01, 1.0, 100.0]))
    q = rng.normal(size=n) * draw(st.sampled_from([0.0, 1.0, 30.0]))
    if draw(st.booleans()):
        A, q = np.round(A), np.round(q)
    return BQM((A + A.T) / 2, q, float(rng.normal()))


def _all_energies(bqm):
    V = np.array(list(itertools.product([0, 1], repeat=bqm.n)), dtype=float).reshape(-1, bqm.n)
    return V, bqm.energies(V)


def _close(a, b, scale):
    return abs(a - b) <= 1e-9 * (1.0 + abs(scale))


# ---------------------------------------------------------------------------- exactness
@settings(max_examples=500)
@given(psd_layer(), st.sampled_from(["schur", "natural"]), st.sampled_from(["rows", "plain"]))
def test_tree_equals_exhaustive_on_psd_layer_rows(problem, order, bound):
    exact = solve(problem, "exhaustive")
    res = solve(problem, "tree", order=order, bound=bound)
    assert res.optimal and res.status == "optimal"
    assert _close(res.energy, exact.energy, exact.energy)
    assert res.lower_bound <= exact.energy + 1e-9 * (1 + exact.energy)


@given(st.one_of(general_bqm(), qubo_models(max_n=10)), st.sampled_from(["schur", "natural"]))
def test_tree_equals_exhaustive_on_indefinite_qubos(bqm, order):
    best = exhaustive_minimum(bqm.P, bqm.q, bqm.c)
    e = best.energy
    res = solve(bqm, "tree", order=order)
    assert res.optimal
    assert _close(res.energy, e, np.abs(bqm.P).sum() + np.abs(bqm.q).sum())


@given(st.one_of(general_bqm(max_n=8), qubo_models(max_n=8, extreme=False)), st.integers(1, 300))
def test_tree_returns_the_k_lowest_energies(bqm, k):
    _, E = _all_energies(bqm)
    res = tree_search(bqm.P, bqm.q, bqm.c, num_states=k)
    want = np.sort(E)[: min(k, E.size)]
    assert res.optimal
    assert res.info["states"].shape == (want.size, bqm.n)
    assert len({s.tobytes() for s in res.info["states"]}) == want.size  # distinct states
    np.testing.assert_allclose(res.info["energies"], want, rtol=0, atol=1e-9 * (1 + np.abs(E).max()))
    np.testing.assert_allclose(bqm.energies(res.info["states"]), res.info["energies"], rtol=0, atol=1e-12 * (1 + np.abs(E).max()))


@given(general_bqm(max_n=9), st.sampled_from(["schur", "natural"]))
def test_least_squares_form_is_exact_on_every_binary_state(bqm, order):
    form = least_squares_form(bqm.P, bqm.q, bqm.c, order=order)
    V, E = _all_energies(bqm)
    Vp = V[:, form.perm]
    F = ((Vp @ form.R.T - form.y) ** 2).sum(axis=1) + form.c0
    assert np.max(np.abs(F - E)) <= form.eps
    assert np.allclose(np.triu(form.R), form.R) and np.all(np.diag(form.R) > 0)


def test_semidefinite_P_with_q_outside_its_range_is_exact():
    # P = 0 on the second variable's direction, q pulls along it: no Cholesky of P exists
    P = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    q = np.array([-1.5, 0.4, -2.0])
    bqm = BQM(P, q, 0.5)
    _, E = _all_energies(bqm)
    res = solve(bqm, "tree")
    assert res.optimal and _close(res.energy, E.min(), 1.0)


def test_zero_model_and_single_variable():
    assert solve(BQM(np.zeros((3, 3)), np.zeros(3)), "tree").energy == 0.0
    res = solve(BQM([[2.0]], [-3.0], 1.0), "tree")
    assert res.optimal and res.x.tolist() == [1] and res.energy == 0.0


# ---------------------------------------------------------------------------- limits
def _hard_problem(n=40, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n, n))
    W = rng.normal(size=(1, n))
    return LayerProblem(W, Grid(np.abs(W).max() / 7, -8, 7), X=X).row_bqm(0)


def _brute_minimum(bqm):
    """min E over all 2^n states by numpy, in chunks (independent of the tree)."""
    n, best = bqm.n, np.inf
    for start in range(0, 2**n, 2**16):
        V = (((np.arange(start, min(start + 2**16, 2**n))[:, None]) >> np.arange(n)) & 1).astype(np.float64)
        best = min(best, float(np.min(np.einsum("ij,jk,ik->i", V, bqm.P, V) + V @ bqm.q + bqm.c)))
    return best


@pytest.mark.parametrize("limit", [{"max_nodes": 1}, {"max_nodes": 30}, {"time_limit": 1e-9}])
def test_limits_give_best_found_a_valid_bound_and_no_optimality_claim(limit):
    bqm = _hard_problem(n=20)
    opt = _brute_minimum(bqm)
    res = solve(bqm, "tree", **limit)
    assert res.optimal is False
    assert "limit" in res.status
    assert res.lower_bound <= opt + 1e-12
    assert res.energy >= opt - 1e-12


@given(psd_layer(max_n=16), st.integers(1, 400))
def test_node_limited_bound_never_exceeds_the_optimum(problem, max_nodes):
    bqm = problem.row_bqm(0)
    opt = _brute_minimum(bqm) if bqm.n else bqm.c
    res = solve(problem, "tree", max_nodes=max_nodes)
    assert res.lower_bound <= opt + 1e-9 * (1 + opt)
    if res.optimal:
        assert abs(res.energy - opt) <= 1e-9 * (1 + opt)
    if not res.optimal:
        assert res.status == "best found"
        assert all("limit" in s for s in res.info["row_status"] if s != "optimal")


def test_tree_reports_nodes_and_ordering_changes_the_search_not_the_answer():
    bqm = _hard_problem(n=28, seed=5)
    a = solve(bqm, "tree", order="schur")
    b = solve(bqm, "tree", order="natural", bound="plain")
    assert a.optimal and b.optimal and _close(a.energy, b.energy, a.energy)
    assert a.info["nodes"] > 0 and b.info["nodes"] > 0


# ---------------------------------------------------------------------------- the heuristic
def test_nearest_plane_takes_the_conditionally_best_value_at_each_step():
    rng = np.random.default_rng(0)
    n = 7
    M = rng.normal(size=(n, n))
    A = M.T @ M + 0.1 * np.eye(n)
    b = rng.normal(size=n)
    R = np.linalg.cholesky(A).T
    y = np.linalg.solve(R.T, -b / 2)
    v = nearest_plane(R, y)
    # oracle: decide v_{n-1}, ..., v_0; each value minimises the quadratic over the still
    # undecided variables (unconstrained reals), given the decided ones
    fixed = {}
    for j in range(n - 1, -1, -1):
        free = [i for i in range(j)]
        costs = []
        for x in (0.0, 1.0):
            vals = {**fixed, j: x}
            idx = sorted(vals)
            u = np.array([vals[i] for i in idx])
            if free:
                Aff = A[np.ix_(free, free)]
                lin = b[free] + 2 * A[np.ix_(free, idx)] @ u
                vf = np.linalg.solve(2 * Aff, -lin)
                full = np.zeros(n)
                full[free], full[idx] = vf, u
            else:
                full = np.zeros(n)
                full[idx] = u
            costs.append(full @ A @ full + b @ full)
        fixed[j] = float(np.argmin(costs))
        assert v[j] == fixed[j]


@pytest.mark.parametrize("opts, message", [
    ({"order": "random"}, "order must be one of"),
    ({"bound": "sdp"}, "bound must be one of"),
    ({"max_nodes": 0}, "max_nodes must be an integer >= 1 or None, found 0"),
    ({"time_limit": -1.0}, "time_limit must be a finite number > 0 and <= 2147483647 or None, found -1.0"),
    ({"batch": 0}, "batch must be an integer >= 1, found 0"),
    ({"nodes": 5}, "unknown option"),
])
def test_bad_tree_options_are_refused(opts, message):
    with pytest.raises(ValueError, match=message):
        solve(BQM(np.eye(2)), "tree", **opts)


@given(psd_layer(max_n=12), general_bqm(max_n=10))
def test_root_bound_with_the_sdp_diagonal_above_the_search_limit_stays_below_the_optimum(problem, other):
    # the search uses the uniform shift above _SDP_MAX while the root bound keeps the SDP diagonal
    # (up to _SDP_ROOT_MAX): run that path on small models by lowering _SDP_MAX, against enumeration
    for m in (problem.row_bqm(0), other):
        if m.n == 0:
            continue
        opt = exhaustive_minimum(m.P, m.q, m.c).energy
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tree_module, "_SDP_MAX", 0)
            res = tree_search(m.P, m.q, m.c, max_nodes=2)
        uniform = tree_search(m.P, m.q, m.c, max_nodes=2, diagonal="uniform")
        tol = 1e-9 * (1 + abs(opt))
        assert res.info["root_bound"] <= opt + tol and res.lower_bound <= opt + tol
        assert res.info["shift"] == uniform.info["shift"]  # the search's factor: the uniform one


@pytest.mark.parametrize("offset", [5e-324, -5e-324, 1e-310, -2.2e-308])
def test_a_model_whose_only_coefficient_is_a_subnormal_offset_is_solved_exactly(offset):
    """The exact power-of-two rescaling would need 2^1073 here (not a float): it stops at 2^1023."""
    bqm = BQM(np.zeros((3, 3)), np.zeros(3), offset)
    for method in ("tree", "exhaustive"):
        r = solve(bqm, method)
        assert r.optimal and r.energy == offset and r.lower_bound == offset, method
    b = lower_bounds(bqm)
    assert b.best <= offset and np.isfinite(b.best) and b.best >= offset - 1e-300


def test_the_default_node_budget_shrinks_with_the_width_but_reaches_the_first_leaves(monkeypatch):
    """5e7 up to 64 variables, 5e7 (64/n)^3 beyond, at least 2048 n (values by hand)."""
    budget = tree_module.default_max_nodes
    assert budget(1) == budget(64) == 50_000_000
    assert budget(65) == round(5e7 * (64 / 65) ** 3) == 47_727_629
    assert budget(128) == 6_250_000 and budget(256) == 781_250
    assert budget(384) == 2048 * 384 and budget(1024) == 2048 * 1024
    # the front door applies it with neither limit given (small constants make it observable)
    monkeypatch.setattr(tree_module, "DEFAULT_MAX_NODES", 10**6)
    monkeypatch.setattr(tree_module, "NODES_PER_VARIABLE", 1)
    assert budget(70) == round(1e6 * (64 / 70) ** 3) == 764_268
    monkeypatch.setattr(tree_module, "DEFAULT_MAX_NODES", 200)
    monkeypatch.setattr(tree_module, "NODES_PER_VARIABLE", 2)
    bqm = _hard_problem(n=70, seed=1)
    r = solve(bqm, "tree")
    assert not r.optimal and "max_nodes == 153" in r.status  # max(2 * 70, 200 (64/70)^3 = 152.9)


# ---------------------------------------------------------------- a zero-loss layer row is proven at once
def _on_grid_layer(rng, conv: bool):
    """A rank-deficient layer (fewer samples or patches than inputs) whose weights lie on the grid
    except where the inputs are all zero: its rows have exact zero-loss roundings."""
    grid = Grid(0.25, -8, 7)
    if conv:
        from solvers import ConvProblem
        W = rng.integers(-8, 8, size=(3, 2, 3, 3)) * 0.25
        X = rng.normal(size=(1, 2, 4, 4))  # 4 patches, fan-in 18
        return ConvProblem(W, grid, X)
    W = rng.integers(-8, 8, size=(3, 20)) * 0.25
    W[:, :3] += 0.1  # off the grid, but on inputs that are always 0
    X = rng.normal(size=(4, 20))
    X[:, :3] = 0
    return LayerProblem(W, grid, X=X)


@pytest.mark.parametrize("conv", [False, True])
def test_a_zero_loss_layer_row_is_proven_optimal_within_one_node(conv):
    # every row's loss e^T G e is >= 0 (G PSD), so a rounding of loss exactly 0 is optimal; the
    # tree proves it without searching (it used to report "best found" at max_nodes == 1)
    prob = _on_grid_layer(np.random.default_rng(int(conv)), conv)
    assert min(prob.row_bqm(k).n for k in range(prob.n_rows)) >= 10  # rows too wide to settle at the root
    res = solve(prob, "tree", max_nodes=1)
    assert res.optimal and res.status == "optimal"
    assert res.lower_bound == 0.0 and res.energy == 0.0 and prob.loss(res.x) == 0.0
    assert res.info["row_status"] == ["optimal"] * prob.n_rows


def test_only_a_layer_row_carries_the_zero_floor():
    prob = _on_grid_layer(np.random.default_rng(0), False)
    row = prob.row_bqm(0)
    assert row.floor == 0.0
    assert BQM(row.P, row.q, row.c).floor is None
    # the same model as a raw QUBO is not known to be a sum of squares: no optimum at one node
    res = solve(BQM(row.P, row.q, row.c), "tree", max_nodes=1)
    assert not res.optimal


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 9))
def test_a_general_qubo_with_a_zero_energy_state_is_not_declared_optimal_unless_it_is(seed, n):
    # indefinite P, c = 0: the all-zero state has energy exactly 0, yet the minimum is below 0
    # (a negative diagonal entry gives a state below 0); one node proves nothing here
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    P = (A + A.T) / 2
    P[0, 0] = -abs(P[0, 0]) - 1.0
    bqm = BQM(P, np.zeros(n), 0.0)
    res = solve(bqm, "tree", max_nodes=1)
    best = _brute_minimum(bqm)
    assert best < 0
    if res.optimal:
        assert res.energy == pytest.approx(best, rel=1e-12, abs=1e-12)
    assert res.lower_bound <= best + 1e-9 * (np.abs(P).sum())
