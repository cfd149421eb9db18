"""Sparse coders: exact l0 against brute force, l1 against scikit-learn, the binary QUBO."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import solvers
from reference.sparse import objective
from solvers.sparse import binary_sparse_coding_bqm, code, method_names


def _brute_l0(Phi, X, lam):
    """min over all supports of 1/2||x - Phi_S a_S||^2 + lam |S|, by lstsq on every support."""
    K = Phi.shape[1]
    best = 0.5 * np.sum(X * X, axis=1)
    for k in range(1, K + 1):
        for S in itertools.combinations(range(K), k):
            S = list(S)
            coef, *_ = np.linalg.lstsq(Phi[:, S], X.T, rcond=None)
            R = X.T - Phi[:, S] @ coef
            best = np.minimum(best, 0.5 * np.sum(R * R, axis=0) + lam * k)
    return best


def _problem(seed, n, K, N):
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(n, K)) * rng.uniform(0.5, 2.0, size=K)  # atom norms differ
    X = rng.normal(size=(N, n))
    return Phi, X


@given(seed=st.integers(0, 2**31), n=st.integers(2, 8), K=st.integers(1, 7), lam=st.floats(0.01, 3.0))
def test_exact_l0_equals_brute_force_over_supports(seed, n, K, lam):
    Phi, X = _problem(seed, n, K, 6)
    res = code(Phi, X, "l0", lam, "exact")
    assert res.optimal and res.status == "optimal"
    np.testing.assert_allclose(res.objective, _brute_l0(Phi, X, lam), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.info["enumerated_value"], res.objective, rtol=1e-9, atol=1e-12)


def test_exact_l0_with_dependent_atoms_and_overcomplete_dictionary():
    Phi, X = _problem(5, 3, 6, 8)
    Phi[:, 4] = 2 * Phi[:, 1]  # a repeated direction
    res = code(Phi, X, "l0", 0.05, "exact")
    np.testing.assert_allclose(res.objective, _brute_l0(Phi, X, 0.05), rtol=1e-9)


@given(seed=st.integers(0, 2**31), lam=st.floats(0.02, 2.0))
def test_cel0_objective_at_the_l0_minimiser_equals_the_l0_objective(seed, lam):
    Phi, X = _problem(seed, 6, 6, 5)
    res = code(Phi, X, "l0", lam, "exact")
    np.testing.assert_allclose(objective(Phi, X, res.codes, "cel0", lam), res.objective, rtol=1e-12, atol=1e-12)
    # and no CEL0 code found by FISTA goes below the l0 minimum (same minimum value)
    f = code(Phi, X, "cel0", lam, "fista", max_iter=3000, tol=1e-10)
    assert np.all(f.objective >= res.objective - 1e-9 * np.maximum(1, res.objective))


def test_exact_refuses_above_its_size_limit():
    Phi, X = _problem(0, 4, 21, 2)
    with pytest.raises(ValueError, match=r"K == 21 atoms, above the limit max_atoms == 20"):
        code(Phi, X, "l0", 0.1, "exact")
    with pytest.raises(ValueError, match=r"max_atoms must be >= 1 and <= 22, found 30"):
        code(Phi, X, "l0", 0.1, "exact", max_atoms=30)


def test_fista_l1_reaches_sklearn_lasso_objective():
    from sklearn.linear_model import Lasso  # the test extra

    rng = np.random.default_rng(7)
    n, K, N = 32, 64, 12
    Phi = rng.normal(size=(n, K))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(N, n))
    lam = 0.2
    ours = code(Phi, X, "l1", lam, "fista")
    theirs = []
    for x in X:
        a = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(Phi, x).coef_
        theirs.append(objective(Phi, x, a, "l1", lam))
    np.testing.assert_allclose(ours.objective, theirs, rtol=1e-6)
    assert ours.converged and ours.info["kkt_verified"] == N
    fast = code(Phi, X, "l1", lam, "fista", dtype="float32")
    np.testing.assert_allclose(fast.objective, theirs, rtol=1e-6)
    # ISTA without the exact finish reaches the same optimum, more slowly
    ista = code(Phi, X, "l1", lam, "ista", polish=False, tol=1e-12, max_iter=50_000)
    np.testing.assert_allclose(ista.objective, theirs, rtol=1e-6)


def test_certify_accepts_only_codes_meeting_the_optimality_conditions():
    from solvers.sparse import _certify

    Phi, X = _problem(9, 20, 30, 6)
    lam = 0.5
    G, B = Phi.T @ Phi, X @ Phi
    exact = code(Phi, X, "l1", lam, "fista", tol=1e-12, max_iter=20_000)
    assert exact.info["kkt_verified"] == 6
    # the exact codes are accepted unchanged
    pos, codes = _certify(G, B, exact.codes, lam, 1e-9, rounds=1)
    assert sorted(pos) == list(range(6))
    np.testing.assert_allclose(codes[np.argsort(pos)], exact.codes, atol=1e-9)
    # a wrong sign pattern is refused in one round, and repaired by the support updates
    wrong = -exact.codes
    pos, _ = _certify(G, B, wrong, lam, 1e-9, rounds=1)
    assert pos.size == 0
    pos, codes = _certify(G, B, wrong, lam, 1e-9, rounds=20)
    assert pos.size > 0
    np.testing.assert_allclose(codes, exact.codes[pos], atol=1e-9)


def _kkt_violation(G, b, a, lam):
    """Largest violation of the Lasso optimality conditions at ``a``, relative to ``lam`` (float64)."""
    c = b - G @ a
    on = a != 0
    on_gap = np.abs(c[on] - lam * np.sign(a[on])).max(initial=0.0)
    off_gap = np.maximum(np.abs(c[~on]) - lam, 0.0).max(initial=0.0)
    return max(on_gap, off_gap) / lam


@given(seed=st.integers(0, 2**31), n=st.integers(2, 12), K=st.integers(1, 24), lam=st.floats(0.01, 2.0),
       iters=st.integers(0, 30))
def test_certified_codes_meet_the_optimality_conditions_in_float64(seed, n, K, lam, iters):
    from solvers.sparse import _certify

    Phi, X = _problem(seed, n, K, 9)
    G, B = Phi.T @ Phi, X @ Phi
    # start from rough iterates (or from zero): the finish must only ever accept true minimisers
    A = code(Phi, X, "l1", lam, "fista", polish=False, max_iter=max(iters, 1)).codes if iters else np.zeros((9, K))
    pos, codes = _certify(G, B, A, lam, 1e-9, rounds=6)
    for i, a in zip(pos, codes):
        assert _kkt_violation(G, B[i], a, lam) <= 1e-8
    res = code(Phi, X, "l1", lam, "fista")
    assert res.info["kkt_verified"] == 9 or not res.converged
    for i in range(9):
        if res.converged:
            assert _kkt_violation(G, B[i], res.codes[i], lam) <= 1e-8


@pytest.mark.parametrize("seed", [0, 7])  # float32 errs upwards for seed 0, downwards for seed 7
@pytest.mark.parametrize("excess, certified", [(1e-7, False), (-1e-7, True)])
def test_the_float32_test_does_not_hide_a_violation_below_float32_precision(seed, excess, certified):
    """Atom 0 correlates with a large code on atoms 1..10 and its residual correlation exceeds
    lam by 1e-7 (relative): float32 products cannot see that, so the certificate must come
    from the float64 product (or be refused)."""
    from solvers.sparse import _certify

    rng = np.random.default_rng(seed)
    n, lam = 40, 0.3
    Phi = rng.normal(size=(n, 11)) + 2.0 * rng.normal(size=(n, 1))  # correlated atoms
    Phi /= np.linalg.norm(Phi, axis=0)
    a = np.concatenate([[0.0], rng.uniform(50, 100, size=10) * rng.choice([-1, 1], size=10)])
    # residual with phi_j^T r = lam sign(a_j) on the support and lam (1 + excess) on atom 0
    target = np.concatenate([[lam * (1 + excess)], lam * np.sign(a[1:])])
    r = Phi @ np.linalg.solve(Phi.T @ Phi, target)
    x = Phi @ a + r
    G, B = Phi.T @ Phi, (x @ Phi)[None, :]
    assert abs(B[0, 0] - G[0] @ a) / lam == pytest.approx(1 + excess, abs=1e-9)
    in_float32 = abs(B[0, 0] - (a.astype(np.float32) @ G.astype(np.float32))[0]) / lam - 1
    assert abs(in_float32 - excess) > 1e-5  # float32 misjudges the test by far more than 1e-7
    start = a * (1 + 1e-3 * rng.normal(size=11))  # an iterate with the right support and signs
    pos, codes = _certify(G, B, start[None, :], lam, 1e-9, rounds=1)
    assert (pos.size == 1) == certified
    if certified:
        np.testing.assert_allclose(codes[0], a, rtol=1e-9)


def test_threads_do_not_change_the_codes():
    rng = np.random.default_rng(5)
    Phi = rng.normal(size=(24, 48))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(1100, 24))  # three blocks of rows
    one = code(Phi, X, "l1", 0.2, "fista", threads=1)
    two = code(Phi, X, "l1", 0.2, "fista", threads=2)
    assert one.info["kkt_verified"] == two.info["kkt_verified"] == 1100
    np.testing.assert_array_equal(one.codes, two.codes)
    np.testing.assert_array_equal(one.objective, two.objective)


def test_hard_problems_are_certified_by_feature_sign_search():
    """Duplicated atoms (every support holding both copies is singular), a coherent dictionary
    and atom norms from 0.1 to 10 defeat the iterations; feature-sign search certifies them."""
    rng = np.random.default_rng(2)
    P = rng.normal(size=(6, 5))
    cases = [np.concatenate([P, P], axis=1),
             np.repeat(rng.normal(size=(8, 3)), 4, axis=1) + 0.01 * rng.normal(size=(8, 12)),
             rng.normal(size=(8, 12)) * rng.uniform(0.1, 10, size=12)]
    for Phi in cases:
        X = rng.normal(size=(5, Phi.shape[0]))
        res = code(Phi, X, "l1", 0.05, "fista")
        assert res.converged and res.status == "certified" and res.info["kkt_verified"] == 5
        G, B = Phi.T @ Phi, X @ Phi
        for i in range(5):
            assert _kkt_violation(G, B[i], res.codes[i], 0.05) <= 1e-8


@given(seed=st.integers(0, 2**31), n=st.integers(2, 10), K=st.integers(2, 20), lam=st.floats(1e-3, 2.0),
       kind=st.sampled_from(["copies", "coherent", "scaled"]))
def test_a_certificate_is_never_wrong_on_hard_dictionaries(seed, n, K, lam, kind):
    """Whatever the dictionary (duplicated, nearly parallel or wildly scaled atoms), a code
    reported certified meets the optimality conditions, and no code is worse than zero."""
    rng = np.random.default_rng(seed)
    if kind == "copies":
        P = rng.normal(size=(n, (K + 1) // 2))
        Phi = np.concatenate([P, P], axis=1)[:, :K]
    elif kind == "coherent":
        Phi = rng.normal(size=(n, 1)) + 1e-3 * rng.normal(size=(n, K))
    else:
        Phi = rng.normal(size=(n, K)) * 10.0 ** rng.uniform(-2, 2, size=K)
    X = rng.normal(size=(4, n))
    res = code(Phi, X, "l1", lam, "fista")
    G, B = Phi.T @ Phi, X @ Phi
    assert np.all(res.objective <= objective(Phi, X, np.zeros((4, K)), "l1", lam) * (1 + 1e-12))
    if res.converged:
        assert res.status == "certified"
        for i in range(4):
            assert _kkt_violation(G, B[i], res.codes[i], lam) <= 1e-7
    else:
        assert res.status.endswith("codes not certified")


def test_codes_that_cannot_be_certified_are_reported():
    """lam = 1e-7 asks for the conditions to 1e-16 absolute: beyond float64's proven bound, so
    the codes (still the best found) are reported as not certified."""
    rng = np.random.default_rng(4)
    Phi = rng.normal(size=(8, 16))
    X = rng.normal(size=(3, 8))
    res = code(Phi, X, "l1", 1e-7, "fista")
    assert not res.converged and res.info["kkt_verified"] < 3
    assert res.status == f"{3 - res.info['kkt_verified']} of 3 codes not certified"
    assert np.all(res.objective <= objective(Phi, X, np.zeros((3, 16)), "l1", 1e-7))
    assert np.all(res.objective <= code(Phi, X, "l1", 1e-7, "fista", polish=False).objective + 1e-12)


def test_sparse_encode_alpha_is_lambda():
    from sklearn.decomposition import sparse_encode

    Phi, X = _problem(8, 16, 24, 5)
    Phi /= np.linalg.norm(Phi, axis=0)
    lam = 0.3
    A = sparse_encode(X, Phi.T, algorithm="lasso_cd", alpha=lam, max_iter=100_000)
    np.testing.assert_allclose(code(Phi, X, "l1", lam, "fista").objective, objective(Phi, X, A, "l1", lam),
                               rtol=1e-6)


@pytest.mark.parametrize("penalty", ["l0", "l1", "l1/2", "cel0"])
@pytest.mark.parametrize("method", ["ista", "fista"])
def test_proximal_gradient_reaches_a_fixed_point_below_zero_code(penalty, method):
    from reference.penalties import prox

    Phi, X = _problem(11, 10, 15, 7)
    lam = 0.3
    res = code(Phi, X, penalty, lam, method, max_iter=20_000, tol=1e-12, polish=False)
    assert res.converged
    zero = objective(Phi, X, np.zeros((7, 15)), penalty, lam)
    assert np.all(res.objective <= zero + 1e-12)
    step = res.info["step"]
    A = res.codes
    again = prox(A - step * (A @ Phi.T - X) @ Phi, penalty, step, lam, np.linalg.norm(Phi, axis=0))
    np.testing.assert_allclose(again, A, atol=1e-8)


def test_batched_coding_equals_one_signal_at_a_time():
    Phi, X = _problem(12, 10, 15, 6)
    batch = code(Phi, X, "l1/2", 0.2, "fista", tol=1e-12, max_iter=5000)
    for i in range(6):
        one = code(Phi, X[i], "l1/2", 0.2, "fista", tol=1e-12, max_iter=5000)
        np.testing.assert_allclose(one.codes, batch.codes[i], atol=1e-10)
        assert one.objective == pytest.approx(batch.objective[i], rel=1e-12)


def test_omp_matches_sklearn_and_the_l0_stopping_rule():
    from sklearn.linear_model import orthogonal_mp

    Phi, X = _problem(13, 20, 30, 8)
    Phi /= np.linalg.norm(Phi, axis=0)
    ours = code(Phi, X, "l0", 0.1, "omp", n_nonzero=4)
    theirs = orthogonal_mp(Phi, X.T, n_nonzero_coefs=4).T
    np.testing.assert_allclose(ours.codes, theirs, atol=1e-10)
    # lam stopping: each accepted atom lowered the l0 objective, so the code beats its prefix
    lam = 0.2
    res = code(Phi, X, "l0", lam, "omp")
    sizes = res.info["support_sizes"]
    for i in range(8):
        if sizes[i]:
            prev = code(Phi, X[i], "l0", lam, "omp", n_nonzero=int(sizes[i])).objective
            assert res.objective[i] == pytest.approx(prev, rel=1e-12)
            if sizes[i] > 1:
                shorter = code(Phi, X[i], "l0", lam, "omp", n_nonzero=int(sizes[i]) - 1).objective
                assert res.objective[i] < shorter


def test_iht_keeps_n_nonzero_atoms_and_is_a_fixed_point():
    Phi, X = _problem(14, 12, 14, 5)
    res = code(Phi, X, "l0", 0.1, "iht", n_nonzero=3, tol=1e-12, max_iter=20_000)
    assert np.all(np.count_nonzero(res.codes, axis=1) <= 3)
    exact = code(Phi, X, "l0", 0.1, "exact")
    assert np.all(res.objective >= exact.objective - 1e-12)


@given(seed=st.integers(0, 2**31), alpha=st.floats(-2, 2).filter(lambda a: abs(a) > 0.05),
       lam=st.floats(0, 2))
def test_binary_sparse_coding_energy_equals_objective_for_every_binary_vector(seed, alpha, lam):
    Phi, X = _problem(seed, 5, 6, 1)
    bqm = binary_sparse_coding_bqm(Phi, X[0], alpha, lam)
    V = ((np.arange(2**6)[:, None] >> np.arange(6)) & 1).astype(float)
    want = 0.5 * np.sum((X[0] - alpha * V @ Phi.T) ** 2, axis=1) + lam * V.sum(1)
    np.testing.assert_allclose(bqm.energies(V), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bqm.energies(V), objective(Phi, X[0][None].repeat(64, 0), alpha * V, "l0", lam),
                               rtol=1e-12, atol=1e-12)
    assert bqm.is_psd()


@pytest.mark.parametrize("method", solvers.method_names("qubo"))
def test_binary_sparse_coding_is_solved_by_every_qubo_method(method):
    Phi, X = _problem(15, 16, 12, 1)
    Phi /= np.linalg.norm(Phi, axis=0)
    bqm = binary_sparse_coding_bqm(Phi, X[0], 0.8, 0.1)
    best = solvers.solve(bqm, "exhaustive")
    res = solvers.solve(bqm, method)
    assert res.energy == pytest.approx(objective(Phi, X[0], 0.8 * res.x, "l0", 0.1), rel=1e-12)
    if solvers.METHODS[method].exact:
        assert res.optimal and res.energy == pytest.approx(best.energy, rel=1e-12)
    else:
        assert res.energy >= best.energy - 1e-12


@pytest.mark.parametrize("call, message", [
    (lambda: code(np.ones((3, 2)), np.ones(3), "l1", 0.1, "lars"), r"method must be one of \['exact', 'fista'"),
    (lambda: code(np.ones((3, 2)), np.ones(3), "l1", 0.1, "fista", iters=3), r"unknown option\(s\) \['iters'\]"),
    (lambda: code(np.ones((3, 2)), np.ones(3), "l1", 0.1, "exact"), r"needs penalty in \['l0', 'cel0'\]"),
    (lambda: code(np.ones((3, 2)), np.ones(3), "l1", 0.1, "iht"), "needs the option n_nonzero"),
    (lambda: code(np.ones((3, 2)), np.ones(3), "l1", 0.1, "fista", max_iter=0), "max_iter must be >= 1"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", step=2.0), r"step must be in \(0, 1/L\]"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", init=np.ones((2, 3))), r"init must have shape \(1, 3\)"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", dtype="float16"), "dtype must be 'float64' or 'float32'"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", step_scale=2.0), r"step_scale must be in \[1, 2\)"),
    (lambda: code(np.eye(3), np.ones(3), "l0", 0.1, "fista", step_scale=1.5), "step_scale > 1 needs penalty 'l1'"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", polish=False, step_scale=1.5), "polish=False"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", threads=0), "threads must be >= 1, found 0"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", first_check=0), "first_check must be >= 1"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", kkt_tol=-1.0), "kkt_tol must be >= 0"),
    (lambda: code(np.eye(3), np.ones(3), "l1", 0.1, "fista", kkt_tol=np.nan), "kkt_tol must be finite"),
    (lambda: binary_sparse_coding_bqm(np.eye(3), np.ones(3), 0.0, 0.1), "alpha must be nonzero"),
    (lambda: binary_sparse_coding_bqm(np.eye(3), np.ones(4), 1.0, 0.1), r"x must have shape \(3\)"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_method_names_lists_the_registry():
    assert method_names() == ["exact", "fista", "iht", "ista", "omp"]
