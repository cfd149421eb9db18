"""Baselines (solvers/baselines.py) and the OR-Library reader (solvers/orlib.py): known optima
of bqp50 and bqp100, the GPTQ rule against a direct implementation, robustness to singular G."""

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import cholesky

from reference import Grid, fit_grid
from solvers import BQM, LayerProblem, method_names, solve
from solvers.orlib import parse_bqp, read_bqp

BQP50 = Path(__file__).resolve().parents[1] / "data" / "orlib" / "bqp50.txt"
# Beasley's OR-Library optima (maximisation) of bqp50.1 .. bqp50.10
BQP50_OPT = [2098, 3702, 4626, 3544, 4012, 3693, 4520, 4216, 3780, 3507]
BQP100 = BQP50.with_name("bqp100.txt")
# bqp100.1 .. bqp100.10 (Beasley 1998; tests/data/orlib/README.md on bqp100.9)
BQP100_OPT = [7970, 11036, 12723, 10368, 9083, 10210, 10125, 11435, 11455, 12565]


@pytest.fixture(scope="module")
def bqp50():
    return read_bqp(BQP50)


@pytest.mark.parametrize("method", ["anneal", "tabu"])
def test_heuristics_reach_the_known_optima_of_bqp50(bqp50, method):
    assert len(bqp50) == 10
    for model, opt in zip(bqp50, BQP50_OPT):
        res = solve(model, method)
        assert res.energy == -opt


def _orlib_objective(path):
    """The OR-Library objective of each instance straight from the file's triples (no reader):
    ``sum_(i,j) q_ij x_i x_j`` over the listed triangle, off-diagonal entries counted twice."""
    tokens = np.array(path.read_text().split(), dtype=np.int64)
    pos, objectives = 1, []
    for _ in range(int(tokens[0])):
        n, nnz = int(tokens[pos]), int(tokens[pos + 1])
        t = tokens[pos + 2: pos + 2 + 3 * nnz].reshape(nnz, 3)
        pos += 2 + 3 * nnz
        i, j, v = t[:, 0] - 1, t[:, 1] - 1, t[:, 2]
        objectives.append((n, nnz, lambda x, i=i, j=j, v=v: int(np.sum(np.where(i == j, 1, 2) * v * x[i] * x[j]))))
    assert pos == tokens.size
    return objectives


def test_bqp100_reads_ten_100_variable_instances_whose_published_optima_tabu_reaches():
    models = read_bqp(BQP100)
    objectives = _orlib_objective(BQP100)
    assert len(models) == len(objectives) == 10
    for model, (n, nnz, objective), opt in zip(models, objectives, BQP100_OPT):
        assert model.n == n == 100 and 400 <= nnz <= 600  # density about 10 %
        assert np.array_equal(model.P, model.P.T) and np.all(np.diag(model.P) == 0)
        res = solve(model, "tabu", seed=0)
        x = np.asarray(res.x, dtype=np.int64)
        assert objective(x) == opt  # the state's value from the raw triples: the published optimum
        assert res.energy == -opt


def test_bqp_reader_builds_the_minimisation_qubo():
    text = "1\n3 4\n1 1 5\n1 2 -3\n2 3 7\n3 3 -2\n"
    (model,) = parse_bqp(text)
    for x in np.ndindex(2, 2, 2):
        x = np.array(x, dtype=float)
        objective = 5 * x[0] - 2 * 3 * x[0] * x[1] + 2 * 7 * x[1] * x[2] - 2 * x[2]
        assert model.energy(x) == -objective


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("1\n2 1\n1 3 4\n", "outside 1..2"), ("1\n2 2\n1 1 4\n", "ends early"),
    ("1\n2 1\n1 1 x\n", "expected a coefficient"), ("1\n1 0\n5", "after the last instance"),
])
def test_bqp_reader_refuses_malformed_text(text, message):
    with pytest.raises(ValueError, match=message):
        parse_bqp(text)


def _gptq_direct(W, G, grid, damp):
    """GPTQ's column loop (Frantar et al. 2022, Alg. 1) with rounding restricted to the two
    neighbours of the *original* weight and clipped weights known fixed: an independent
    implementation through the upper Cholesky factor of the damped inverse Hessian."""
    w = W[0].copy()
    s = float(grid.scale[0])
    n = w.size
    lo = np.clip(np.floor(w / s), grid.qmin, grid.qmax)
    hi = np.clip(np.floor(w / s) + 1, grid.qmin, grid.qmax)
    H = G + damp * np.mean(np.diag(G)) * np.eye(n)
    # clipped weights first: they have one value; feed their error to the others
    order = [j for j in range(n) if lo[j] == hi[j]] + [j for j in range(n) if lo[j] != hi[j]]
    Hp = H[np.ix_(order, order)]
    U = cholesky(np.linalg.inv(Hp), lower=False)
    wp, lop, hip = w[order].copy(), lo[order], hi[order]
    qp = np.empty(n)
    for j in range(n):
        target = wp[j] / s
        qp[j] = hip[j] if abs(target - hip[j]) < abs(target - lop[j]) else lop[j]
        err = (wp[j] - s * qp[j]) / U[j, j]
        wp[j + 1:] -= err * U[j, j + 1:]
    q = np.empty(n)
    q[order] = qp
    return q


@pytest.mark.parametrize("seed", range(5))
def test_gptq_rule_equals_gptqs_column_loop(seed):
    rng = np.random.default_rng(seed)
    n = 12
    X = rng.normal(size=(50, n)) @ (np.eye(n) + 0.5 * rng.normal(size=(n, n)))
    W = rng.normal(size=(1, n))
    grid = Grid(0.5 * np.abs(W).max() / 7, -8, 7)  # clips the largest weights
    problem = LayerProblem(W, grid, X=X)
    want = _gptq_direct(W, problem.G, grid, damp=0.0)
    res = solve(problem, "gptq", damp=0.0)
    np.testing.assert_array_equal(problem.integers(res.x)[0], want)


def test_gptq_act_order_and_damping_run_and_are_no_worse_than_floor_on_average():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 32))
    W = rng.normal(size=(6, 32))
    problem = LayerProblem(W, fit_grid(W, bits=4), X=X)
    floor = solve(problem, "floor").energy
    for opts in ({}, {"order": "act_order"}, {"damp": 0.1}):
        assert solve(problem, "gptq", **opts).energy < floor


def test_steepest_descent_ends_in_a_one_flip_local_minimum():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(20, 20))
    bqm = BQM((A + A.T) / 2, rng.normal(size=20))
    res = solve(bqm, "steepest", num_reads=4)
    e = res.energy
    for i in range(20):
        x = res.x.copy()
        x[i] ^= 1
        assert bqm.energy(x) >= e - 1e-9


@pytest.mark.parametrize("method", method_names("qubo") + method_names("layer"))
def test_rank_deficient_G_never_crashes_any_method(method):
    rng = np.random.default_rng(0)
    n = 10
    X = rng.normal(size=(3, n))  # N < n
    X[:, 5:] = X[:, :5]  # duplicated inputs
    W = rng.normal(size=(2, n))
    problem = LayerProblem(W, fit_grid(W, bits=4), X=X)
    res = solve(problem, method)
    assert np.isfinite(res.energy) and res.x.shape == (2, n)
    exact = solve(problem, "exhaustive")
    assert res.energy >= exact.energy - 1e-12
    # the reported loss is that of the state returned (Eq. 20 from the samples), not a sampler's number
    E = X @ (W - problem.w_hat(res.x)).T
    assert res.energy == pytest.approx(float((E * E).sum()) / X.shape[0], rel=1e-9, abs=1e-12)
    if res.lower_bound is not None:
        assert res.lower_bound <= exact.energy + 1e-12


@pytest.mark.parametrize("opts, message", [
    ({"order": "reverse"}, "order must be one of"), ({"damp": -1.0}, "damp must be a finite number"),
])
def test_bad_gptq_options_are_refused(opts, message):
    with pytest.raises(ValueError, match=message):
        solve(BQM(np.eye(2)), "gptq", **opts)
