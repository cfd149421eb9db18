import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import Grid, fit_grid, layer_loss
from reference.compare.suites import correlated_layer
from reference import dequantize, round_nearest
from reference.testing import assert_rounding_within, grids, layers, rounding_report
from solvers import LayerProblem, solve


def _layer(fan_in=12, out=3, seed=0):
    W, X = correlated_layer(out, fan_in, 8 * fan_in, np.random.default_rng(seed))
    return W, X, fit_grid(W, 4)


def test_the_optimal_rounding_passes_with_zero_tolerance():
    W, X, grid = _layer()
    p = LayerProblem(W, grid, X=X)
    best = solve(p, "exhaustive")
    rep = assert_rounding_within(W, grid, X=X, W_hat=p.w_hat(best.x))
    assert rep.gap == 0 and rep.loss == pytest.approx(layer_loss(W, X, p.w_hat(best.x)), rel=1e-9)
    assert rep.method == "exhaustive"


def test_a_worse_rounding_fails_with_a_readable_message():
    W, X, grid = _layer(seed=3)
    p = LayerProblem(W, grid, X=X)
    near = solve(p, "nearest")
    rep = rounding_report(W, grid, X=X, q=p.integers(near.x))
    assert rep.gap > 0.01
    with pytest.raises(AssertionError, match=r"rounding loss .* exceeds the allowed .* gap .* largest excess: row \d"):
        assert_rounding_within(W, grid, X=X, q=p.integers(near.x), rtol=0.01)
    assert_rounding_within(W, grid, X=X, q=p.integers(near.x), rtol=rep.gap * 1.001)


@settings(max_examples=30)
@given(layers(max_out=2, max_in=7))
def test_the_report_agrees_with_an_independent_loss_and_is_never_negative(layer):
    W, X, grid = layer
    p = LayerProblem(W, grid, X=X)
    st = solve(p, "stochastic", seed=1)
    rep = rounding_report(W, grid, X=X, W_hat=p.w_hat(st.x))
    direct = layer_loss(W, X, p.w_hat(st.x))
    assert rep.loss == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert rep.optimum <= rep.loss * (1 + 1e-9) + 1e-12
    assert rep.gap is None or rep.gap >= -1e-9


def test_wide_rows_use_the_tree_search():
    W, X, grid = _layer(fan_in=36, out=2, seed=5)
    p = LayerProblem(W, grid, X=X)
    rep = rounding_report(W, grid, X=X, q=p.integers(solve(p, "nearest").x))
    assert rep.method == "tree" and rep.optimum is not None and rep.gap >= 0


def _brute_force_rounding_optimum(W, X, grid):
    """Min over every {floor, floor + 1} rounding (Eq. 22, clipped to [qmin, qmax]) of the loss
    (1/N) sum_n ||(W - W_hat) x_n||^2, from W and X directly: itertools over each row's choices
    (the loss is a sum over rows), no project code but the grid's numbers."""
    out, fan_in = W.shape
    s = np.broadcast_to(np.asarray(grid.scale, dtype=float), (out,))
    z = np.broadcast_to(np.asarray(grid.zero_point, dtype=float), (out,))
    total = 0.0
    for k in range(out):
        fl = np.floor(W[k] / s[k]) + z[k]
        best = np.inf
        for up in itertools.product((0.0, 1.0), repeat=fan_in):
            qk = np.clip(fl + np.array(up), grid.qmin, grid.qmax)
            r = (W[k] - s[k] * (qk - z[k])) @ X.T
            best = min(best, float(r @ r) / X.shape[0])
        total += best
    return total


@settings(max_examples=30)
@given(layers(max_out=2, max_in=6), st.sampled_from(["as drawn", "on the grid", "on ties"]), st.integers(0, 2**32 - 1))
def test_the_reported_optimum_is_the_brute_force_optimum(layer, where, seed):
    """Weights as drawn, or some moved exactly onto grid points or exact half steps (a power-of-two
    scale keeps W / s exact), where {floor, floor + 1} still lets a weight move up a step."""
    W, X, grid = layer
    if where != "as drawn":
        s = 2.0 ** np.round(np.log2(grid.scale))
        grid = Grid(s, grid.qmin, grid.qmax, grid.zero_point)
        s_rows = np.broadcast_to(np.asarray(s, dtype=float), (W.shape[0],))[:, None]
        snapped = (np.round(W / s_rows) + (0.5 if where == "on ties" else 0.0)) * s_rows
        W = np.where(np.random.default_rng(seed).random(W.shape) < 0.6, snapped, W)
    rep = rounding_report(W, grid, X=X, q=round_nearest(W, grid))
    want = _brute_force_rounding_optimum(W, X, grid)
    scale = float(np.abs(W).sum() ** 2 * (X * X).mean()) + 1e-300  # |loss| <= this for any rounding
    assert rep.optimum == pytest.approx(want, rel=1e-9, abs=1e-12 * scale)
    assert rep.optimum <= rep.loss + 1e-12 * scale


def test_roundings_off_the_up_down_choice_are_refused():
    W = np.array([[0.26, -0.14]])
    X = np.eye(2)
    grid = Grid(0.1, -8, 7)
    with pytest.raises(ValueError, match=r"weight \[0, 0\] was rounded to q == 5, but its neighbours are 2 and 3"):
        rounding_report(W, grid, X=X, q=np.array([[5, -1]]))
    with pytest.raises(ValueError, match=r"W_hat\[0, 1\] == -0.15 is not on the grid"):
        rounding_report(W, grid, X=X, W_hat=np.array([[0.3, -0.15]]))
    with pytest.raises(ValueError, match="give exactly one of q"):
        rounding_report(W, grid, X=X)


def test_the_guide_example_runs_with_this_projects_relaxation():
    """docs/guide/testing.md, second block: float32 weights and scale, adaround as the 'port'."""
    seed = 0
    rng = np.random.default_rng(seed)
    W, X = correlated_layer(out=16, fan_in=20, n_samples=512, rng=rng)
    W = W.astype(np.float32).astype(np.float64)
    g = fit_grid(W, bits=4)
    grid = Grid(g.scale.astype(np.float32), g.qmin, g.qmax)
    problem = LayerProblem(W, grid, X=X)
    w_hat = problem.w_hat(solve(problem, "adaround", seed=seed).x)
    rep = assert_rounding_within(W, grid, X=X, W_hat=w_hat.astype(np.float32).astype(np.float64), rtol=0.25)
    assert rep.method == "exhaustive" and rep.gap < 0.25


# ---------------------------------------------------------------------------- sparse codes
from itertools import combinations  # noqa: E402

from reference.testing import assert_sparse_code_within, dictionaries, sparse_code_report  # noqa: E402
from solvers.sparse import code  # noqa: E402


def _brute_l0(Phi, x, lam):
    best = 0.5 * x @ x
    K = Phi.shape[1]
    for k in range(1, K + 1):
        for S in combinations(range(K), k):
            a, *_ = np.linalg.lstsq(Phi[:, S], x, rcond=None)
            r = x - Phi[:, S] @ a
            best = min(best, 0.5 * r @ r + lam * k)
    return best


@settings(max_examples=25)
@given(dictionaries(max_dim=6, max_atoms=7, max_signals=3))
def test_sparse_report_optimum_is_the_brute_force_l0_minimum(case):
    Phi, X, lam = case
    fista = code(Phi, X, penalty="l1", lam=lam, method="fista")
    rep = sparse_code_report(Phi, X, fista.x, lam)
    for i, x in enumerate(X):
        assert rep.optimum[i] == pytest.approx(_brute_l0(Phi, x, lam), rel=1e-9, abs=1e-12)
    assert np.all(rep.objective >= rep.optimum - 1e-9 * (1 + np.abs(rep.optimum)))


def test_l1_codes_fail_the_l0_oracle_with_the_worst_signal_named():
    rng = np.random.default_rng(4)
    Phi = rng.normal(size=(8, 12))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(6, 8))
    lam = 0.2
    opt = sparse_code_report(Phi, X, np.zeros((6, 12)), lam).codes_opt
    assert_sparse_code_within(Phi, X, opt, lam)  # the optimum passes with zero tolerance
    l1 = code(Phi, X, penalty="l1", lam=lam, method="fista").x
    rep = sparse_code_report(Phi, X, l1, lam)
    assert rep.gap > 0
    with pytest.raises(AssertionError, match=r"codes exceed the allowed objective; worst: signal \d+.*optimal support"):
        assert_sparse_code_within(Phi, X, l1, lam)


@settings(max_examples=40)
@given(grids(n_rows=4))
def test_generated_grids_are_valid_and_round_trip(grid):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 5))
    q = round_nearest(W, grid)
    assert np.all((q >= grid.qmin) & (q <= grid.qmax))
    np.testing.assert_allclose(dequantize(q, grid), grid.per_row(4)[0] * (q - grid.per_row(4)[1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unproven_report_gives_an_interval_that_holds_the_brute_force_gap(seed):
    """A tree stopped at once (time_limit tiny) proves nothing; the report's loss, bound, best
    known value and gap interval are checked against each row's brute-force optimum of Eq. 20
    over every up/down rounding (written here with the Gram matrix)."""
    from reference import fit_grid
    from reference.testing import assert_rounding_within, rounding_report

    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=(2, 16)) / 4, rng.normal(size=(40, 16))
    g = fit_grid(W, bits=4)
    q = np.clip(np.round(W / g.scale[:, None]), g.qmin, g.qmax)  # round to nearest
    rep = rounding_report(W, g, X=X, q=q, method="tree", time_limit=1e-9)
    assert rep.optimum is None and rep.gap is None
    G = X.T @ X / len(X)
    s, z = (a.ravel() for a in g.per_row(2))
    V = ((np.arange(2**16)[:, None] >> np.arange(16)) & 1).astype(np.float64)
    opt = 0.0
    for k in range(2):
        lo = np.clip(np.floor(W[k] / s[k] + z[k]), g.qmin, g.qmax)
        Err = s[k] * (lo + (np.minimum(lo + 1, g.qmax) - lo) * V - z[k]) - W[k]
        opt += float(np.einsum("si,ij,sj->s", Err, G, Err, optimize=True).min())
    E_given = s[:, None] * (q - z[:, None]) - W
    assert rep.loss == pytest.approx(float(np.einsum("ki,ij,kj->", E_given, G, E_given)), rel=1e-12)
    assert rep.lower_bound <= opt * (1 + 1e-9) and opt <= rep.best_known * (1 + 1e-12)
    true_gap = (rep.loss - opt) / opt
    assert rep.gap_low <= true_gap + 1e-9
    # the high end is (loss - bound) / bound, so it holds the true gap exactly when the bound is
    # at most the optimum (checked above); here it must exist: the tree's bound is positive
    assert rep.lower_bound > 0 and rep.gap_high is not None
    assert "lies in [" in str(rep)
    with pytest.raises(AssertionError, match="too wide to prove"):
        assert_rounding_within(W, g, X=X, q=q, method="tree", time_limit=1e-9)
    assert_rounding_within(W, g, X=X, q=q, method="tree", time_limit=1e-9, against="best_known",
                           rtol=rep.gap_low + 1e-6)
    with pytest.raises(ValueError, match="against"):
        assert_rounding_within(W, g, X=X, q=q, against="lower_bound")


def test_the_report_takes_no_bound_from_a_method_that_does_not_certify_one(monkeypatch):
    """The same tree, registered as certifying nothing: its proven optimum and bound are not
    used (the report falls back to 0, the bound every local loss has)."""
    import dataclasses

    from solvers import METHODS

    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(2, 6)), rng.normal(size=(20, 6))
    g = fit_grid(W, bits=3)
    q = np.clip(np.round(W / g.scale[:, None]), g.qmin, g.qmax)
    assert rounding_report(W, g, X=X, q=q, method="tree").optimum is not None
    monkeypatch.setitem(METHODS, "tree", dataclasses.replace(METHODS["tree"], certifies_bound=False))
    rep = rounding_report(W, g, X=X, q=q, method="tree")
    assert rep.optimum is None and rep.lower_bound == 0.0 and rep.gap_high is None


def test_a_bound_above_the_given_roundings_loss_is_refused(monkeypatch):
    """A certifying method whose bound lies below its own (bad) state's loss, but above the
    loss of the rounding under test, is a wrong certificate: CertificateError, not a report."""
    import dataclasses

    from solvers import METHODS
    from solvers._registry import Outcome
    from solvers.certificates import CertificateError

    def liar(bqm, **_):  # every row: all weights up, bound just below that row's energy
        x = np.ones(bqm.n, dtype=np.int8)
        return Outcome(x=x, lower_bound=float(bqm.energy(x)) * (1 - 1e-6))

    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(2, 6)), rng.normal(size=(20, 6))
    g = fit_grid(W, bits=3)
    q = np.clip(np.round(W / g.scale[:, None]), g.qmin, g.qmax)
    monkeypatch.setitem(METHODS, "tree", dataclasses.replace(METHODS["tree"], run=liar))
    with pytest.raises(CertificateError, match="against the given rounding"):
        rounding_report(W, g, X=X, q=q, method="tree")
