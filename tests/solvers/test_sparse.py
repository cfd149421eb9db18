"""Sparse coders: exact l0 against brute force, l1 against scikit-learn, the binary QUBO."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import solvers
from reference.sparse import objective
from solvers import SparseProblem, solve
from solvers.sparse import binary_sparse_coding_bqm


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
    res = solve(SparseProblem(Phi, X, "l0", lam), "l0-exact")
    assert res.optimal and res.status == "optimal"
    np.testing.assert_allclose(res.info["objective"], _brute_l0(Phi, X, lam), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.info["enumerated_value"], res.info["objective"], rtol=1e-9, atol=1e-12)


def test_exact_l0_with_dependent_atoms_and_overcomplete_dictionary():
    Phi, X = _problem(5, 3, 6, 8)
    Phi[:, 4] = 2 * Phi[:, 1]  # a repeated direction
    res = solve(SparseProblem(Phi, X, "l0", 0.05), "l0-exact")
    np.testing.assert_allclose(res.info["objective"], _brute_l0(Phi, X, 0.05), rtol=1e-9)


@given(seed=st.integers(0, 2**31), lam=st.floats(0.02, 2.0))
def test_cel0_objective_at_the_l0_minimiser_equals_the_l0_objective(seed, lam):
    Phi, X = _problem(seed, 6, 6, 5)
    res = solve(SparseProblem(Phi, X, "l0", lam), "l0-exact")
    np.testing.assert_allclose(objective(Phi, X, res.x, "cel0", lam), res.info["objective"], rtol=1e-12, atol=1e-12)
    # and no CEL0 code found by FISTA goes below the l0 minimum (same minimum value)
    f = solve(SparseProblem(Phi, X, "cel0", lam), "fista", max_iter=3000, tol=1e-10)
    assert np.all(f.info["objective"] >= res.info["objective"] - 1e-9 * np.maximum(1, res.info["objective"]))


def test_exact_refuses_above_its_size_limit():
    Phi, X = _problem(0, 4, 21, 2)
    with pytest.raises(ValueError, match=r"K == 21 atoms, above the limit max_atoms == 20"):
        solve(SparseProblem(Phi, X, "l0", 0.1), "l0-exact")
    with pytest.raises(ValueError, match=r"max_atoms must be an integer >= 1 and <= 22, found 30"):
        solve(SparseProblem(Phi, X, "l0", 0.1), "l0-exact", max_atoms=30)


def test_fista_l1_reaches_sklearn_lasso_objective():
    from sklearn.linear_model import Lasso  # the test extra

    rng = np.random.default_rng(7)
    n, K, N = 32, 64, 12
    Phi = rng.normal(size=(n, K))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(N, n))
    lam = 0.2
    ours = solve(SparseProblem(Phi, X, "l1", lam), "fista")
    theirs = []
    for x in X:
        a = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(Phi, x).coef_
        theirs.append(objective(Phi, x, a, "l1", lam))
    np.testing.assert_allclose(ours.info["objective"], theirs, rtol=1e-6)
    assert ours.info["converged"] and ours.info["certified"].sum() == N
    fast = solve(SparseProblem(Phi, X, "l1", lam), "fista", dtype="float32")
    np.testing.assert_allclose(fast.info["objective"], theirs, rtol=1e-6)
    # ISTA without the exact finish reaches the same optimum, more slowly
    ista = solve(SparseProblem(Phi, X, "l1", lam), "ista", certify=False, tol=1e-12, max_iter=50_000)
    np.testing.assert_allclose(ista.info["objective"], theirs, rtol=1e-6)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-5)])
def test_fista_on_a_very_overcomplete_dictionary_reaches_sklearn_lasso(dtype, rtol):
    """K > 2n: the iterations take A G as (A Phi^T) Phi; the Lasso optimum must not move
    (ISTA's loop is the same one, checked at a fixed point with K > 2n below)."""
    from sklearn.linear_model import Lasso  # the test extra

    rng = np.random.default_rng(8)
    n, K, N, lam = 12, 60, 9, 0.15
    Phi = rng.normal(size=(n, K))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(N, n))
    theirs = [objective(Phi, x, Lasso(alpha=lam / n, fit_intercept=False, tol=1e-10, max_iter=100_000)
                        .fit(Phi, x).coef_, "l1", lam) for x in X]
    ours = solve(SparseProblem(Phi, X, "l1", lam), "fista", certify=False, tol=1e-9, max_iter=5_000, dtype=dtype)
    np.testing.assert_allclose(ours.info["objective"], theirs, rtol=rtol)


def test_certify_accepts_only_codes_meeting_the_optimality_conditions():
    from solvers.sparse.certified import certify

    Phi, X = _problem(9, 20, 30, 6)
    lam = 0.5
    G, B = Phi.T @ Phi, X @ Phi
    exact = solve(SparseProblem(Phi, X, "l1", lam), "fista", tol=1e-12, max_iter=20_000)
    assert exact.info["certified"].sum() == 6
    # the exact codes are accepted unchanged
    pos, codes = certify(G, B, exact.x, lam, 1e-9, rounds=1)
    assert sorted(pos) == list(range(6))
    np.testing.assert_allclose(codes[np.argsort(pos)], exact.x, atol=1e-9)
    # a wrong sign pattern is refused in one round, and repaired by the support updates
    wrong = -exact.x
    pos, _ = certify(G, B, wrong, lam, 1e-9, rounds=1)
    assert pos.size == 0
    pos, codes = certify(G, B, wrong, lam, 1e-9, rounds=20)
    assert pos.size > 0
    np.testing.assert_allclose(codes, exact.x[pos], atol=1e-9)


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
    from solvers.sparse.certified import certify

    Phi, X = _problem(seed, n, K, 9)
    G, B = Phi.T @ Phi, X @ Phi
    # start from rough iterates (or from zero): the finish must only ever accept true minimisers
    A = solve(SparseProblem(Phi, X, "l1", lam), "fista", certify=False, max_iter=max(iters, 1)).x if iters else np.zeros((9, K))
    pos, codes = certify(G, B, A, lam, 1e-9, rounds=6)
    for i, a in zip(pos, codes):
        assert _kkt_violation(G, B[i], a, lam) <= 1e-8
    res = solve(SparseProblem(Phi, X, "l1", lam), "fista")
    assert res.info["certified"].sum() == 9 or not res.info["converged"]
    for i in range(9):
        if res.info["converged"]:
            assert _kkt_violation(G, B[i], res.x[i], lam) <= 1e-8


@pytest.mark.parametrize("seed", [0, 7])  # float32 errs upwards for seed 0, downwards for seed 7
@pytest.mark.parametrize("excess, certified", [(1e-7, False), (-1e-7, True)])
def test_the_float32_test_does_not_hide_a_violation_below_float32_precision(seed, excess, certified):
    """Atom 0 correlates with a large code on atoms 1..10 and its residual correlation exceeds
    lam by 1e-7 (relative): float32 products cannot see that, so the certificate must come
    from the float64 product (or be refused)."""
    from solvers.sparse.certified import certify

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
    pos, codes = certify(G, B, start[None, :], lam, 1e-9, rounds=1)
    assert (pos.size == 1) == certified
    if certified:
        np.testing.assert_allclose(codes[0], a, rtol=1e-9)


def test_threads_do_not_change_the_codes():
    rng = np.random.default_rng(5)
    Phi = rng.normal(size=(24, 48))
    Phi /= np.linalg.norm(Phi, axis=0)
    X = rng.normal(size=(1100, 24))  # three blocks of rows
    one = solve(SparseProblem(Phi, X, "l1", 0.2), "fista", threads=1)
    two = solve(SparseProblem(Phi, X, "l1", 0.2), "fista", threads=2)
    assert one.info["certified"].sum() == two.info["certified"].sum() == 1100
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.info["objective"], two.info["objective"])


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
        res = solve(SparseProblem(Phi, X, "l1", 0.05), "fista")
        assert res.info["converged"] and res.status == "optimal" and res.info["certified"].sum() == 5
        G, B = Phi.T @ Phi, X @ Phi
        for i in range(5):
            assert _kkt_violation(G, B[i], res.x[i], 0.05) <= 1e-8


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
    res = solve(SparseProblem(Phi, X, "l1", lam), "fista")
    G, B = Phi.T @ Phi, X @ Phi
    assert np.all(res.info["objective"] <= objective(Phi, X, np.zeros((4, K)), "l1", lam) * (1 + 1e-12))
    if res.info["converged"]:
        assert res.status == "optimal"
        for i in range(4):
            assert _kkt_violation(G, B[i], res.x[i], lam) <= 1e-7
    else:
        assert res.status.endswith("codes not certified")


def test_codes_that_cannot_be_certified_are_reported():
    """lam = 1e-7 asks for the conditions to 1e-16 absolute: beyond float64's proven bound, so
    the codes (still the best found) are reported as not certified."""
    rng = np.random.default_rng(4)
    Phi = rng.normal(size=(8, 16))
    X = rng.normal(size=(3, 8))
    res = solve(SparseProblem(Phi, X, "l1", 1e-7), "fista")
    assert not res.info["converged"] and res.info["certified"].sum() < 3
    assert res.status == f"{3 - res.info['certified'].sum()} of 3 codes not certified"
    assert np.all(res.info["objective"] <= objective(Phi, X, np.zeros((3, 16)), "l1", 1e-7))
    assert np.all(res.info["objective"] <= solve(SparseProblem(Phi, X, "l1", 1e-7), "fista", certify=False).info["objective"] + 1e-12)


def test_sparse_encode_alpha_is_lambda():
    from sklearn.decomposition import sparse_encode

    Phi, X = _problem(8, 16, 24, 5)
    Phi /= np.linalg.norm(Phi, axis=0)
    lam = 0.3
    A = sparse_encode(X, Phi.T, algorithm="lasso_cd", alpha=lam, max_iter=100_000)
    np.testing.assert_allclose(solve(SparseProblem(Phi, X, "l1", lam), "fista").info["objective"], objective(Phi, X, A, "l1", lam),
                               rtol=1e-6)


@pytest.mark.parametrize("penalty", ["l0", "l1", "l1/2", "cel0"])
@pytest.mark.parametrize("method", ["ista", "fista"])
@pytest.mark.parametrize("n, K", [(10, 15), (6, 20)])  # K > 2n: the products run as (A Phi^T) Phi
def test_proximal_gradient_reaches_a_fixed_point_below_zero_code(penalty, method, n, K):
    from reference.penalties import prox

    Phi, X = _problem(11, n, K, 7)
    lam = 0.3
    res = solve(SparseProblem(Phi, X, penalty, lam), method, max_iter=20_000, tol=1e-12, certify=False)
    assert res.info["converged"]
    zero = objective(Phi, X, np.zeros((7, K)), penalty, lam)
    assert np.all(res.info["objective"] <= zero + 1e-12)
    step = res.info["step"]
    A = res.x
    again = prox(A - step * (A @ Phi.T - X) @ Phi, penalty, step, lam, np.linalg.norm(Phi, axis=0))
    np.testing.assert_allclose(again, A, atol=1e-8)


def test_batched_coding_equals_one_signal_at_a_time():
    Phi, X = _problem(12, 10, 15, 6)
    batch = solve(SparseProblem(Phi, X, "l1/2", 0.2), "fista", tol=1e-12, max_iter=5000)
    for i in range(6):
        one = solve(SparseProblem(Phi, X[i], "l1/2", 0.2), "fista", tol=1e-12, max_iter=5000)
        np.testing.assert_allclose(one.x, batch.x[i], atol=1e-10)
        assert one.info["objective"] == pytest.approx(batch.info["objective"][i], rel=1e-12)


def test_omp_matches_sklearn_and_the_l0_stopping_rule():
    from sklearn.linear_model import orthogonal_mp

    Phi, X = _problem(13, 20, 30, 8)
    Phi /= np.linalg.norm(Phi, axis=0)
    ours = solve(SparseProblem(Phi, X, "l0", 0.1), "omp", n_nonzero=4)
    theirs = orthogonal_mp(Phi, X.T, n_nonzero_coefs=4).T
    np.testing.assert_allclose(ours.x, theirs, atol=1e-10)
    # lam stopping: each accepted atom lowered the l0 objective, so the code beats its prefix
    lam = 0.2
    res = solve(SparseProblem(Phi, X, "l0", lam), "omp")
    sizes = res.info["support_sizes"]
    for i in range(8):
        if sizes[i]:
            prev = solve(SparseProblem(Phi, X[i], "l0", lam), "omp", n_nonzero=int(sizes[i])).info["objective"]
            assert res.info["objective"][i] == pytest.approx(prev, rel=1e-12)
            if sizes[i] > 1:
                shorter = solve(SparseProblem(Phi, X[i], "l0", lam), "omp", n_nonzero=int(sizes[i]) - 1).info["objective"]
                assert res.info["objective"][i] < shorter


def _best_k_sparse(Phi, x, k):
    """min over supports of at most k atoms of 1/2 ||x - Phi_S a_S||^2, by lstsq on every support."""
    best = 0.5 * x @ x
    for size in range(1, k + 1):
        for S in itertools.combinations(range(Phi.shape[1]), size):
            coef, *_ = np.linalg.lstsq(Phi[:, list(S)], x, rcond=None)
            r = x - Phi[:, list(S)] @ coef
            best = min(best, 0.5 * r @ r)
    return best


@given(seed=st.integers(0, 2**31), n=st.integers(2, 10), k=st.integers(1, 4), tie=st.booleans())
def test_iht_on_orthonormal_atoms_finds_the_best_k_sparse_code(seed, n, k, tie):
    """With orthonormal atoms (the best conditioning), IHT reaches the best k-sparse code: its
    residual equals the minimum over every support of at most k atoms (brute force), also when
    two atoms tie for the last place."""
    rng = np.random.default_rng(seed)
    K = int(rng.integers(1, n + 1))
    k = min(k, K)
    Phi = np.linalg.qr(rng.normal(size=(n, n)))[0][:, :K] * rng.choice([-1.0, 1.0], size=K)
    X = rng.normal(size=(3, n))
    if tie and K > 1:  # two atoms equally correlated with the signal
        X[0] = Phi[:, 0] + Phi[:, 1] + 0.1 * X[0]
        X[0] -= Phi @ (Phi.T @ X[0]) - Phi @ np.r_[1.5, 1.5, 0.1 * (Phi.T @ X[0])[2:]]
    res = solve(SparseProblem(Phi, X, "l0", 0.0), "iht", n_nonzero=k, tol=1e-13, max_iter=200)  # 2 steps when orthonormal
    # at a tie, rounding may swap the two equally good atoms from one step to the next
    assert res.info["converged"] or (tie and K > 1)
    for i in range(3):
        assert res.info["objective"][i] == pytest.approx(_best_k_sparse(Phi, X[i], k), rel=1e-9, abs=1e-12)
        assert np.count_nonzero(res.x[i]) <= k


def test_iht_recovers_an_exactly_sparse_signal_and_beats_no_optimum():
    """On an incoherent dictionary a noiseless 2-sparse signal is recovered exactly (the best
    2-sparse code, residual 0); on noisy signals IHT's residual is never below the brute-force
    minimum over supports of its size, and is reached for these well-separated signals."""
    rng = np.random.default_rng(14)
    n, K = 24, 16
    Phi = np.linalg.qr(rng.normal(size=(n, n)))[0][:, :K] + 0.02 * rng.normal(size=(n, K))
    A = np.zeros((5, K))
    for i in range(5):
        A[i, rng.choice(K, 2, replace=False)] = rng.choice([-1.0, 1.0], 2) * rng.uniform(1.0, 2.0, 2)
    X = A @ Phi.T
    res = solve(SparseProblem(Phi, X, "l0", 0.0), "iht", n_nonzero=2, tol=1e-13, max_iter=2000)
    assert res.info["converged"]
    np.testing.assert_array_equal(res.x != 0, A != 0)
    np.testing.assert_allclose(res.x, A, atol=1e-8)
    noisy = X + 0.01 * rng.normal(size=X.shape)
    res = solve(SparseProblem(Phi, noisy, "l0", 0.0), "iht", n_nonzero=2, tol=1e-13, max_iter=2000)
    best = np.array([_best_k_sparse(Phi, x, 2) for x in noisy])
    assert np.all(res.info["objective"] >= best * (1 - 1e-9))
    np.testing.assert_allclose(res.info["objective"], best, rtol=1e-7)


@given(seed=st.integers(0, 2**31), n=st.integers(4, 9), K=st.integers(2, 9), k=st.integers(1, 4),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
@example(seed=320, n=6, K=3, k=3, scale=1e-3)
def test_iht_stops_at_a_fixed_point_of_hard_thresholding(seed, n, K, k, scale):
    """A converged IHT code is a fixed point of a <- H_k(a + g Phi^T (x - Phi a)), written out:
    on its support S the code is the least-squares fit (Phi_S^T r = 0), it keeps at most k
    atoms, and every kept amplitude is at least g times every correlation left out
    (min_S |a_i| >= g max_{j not in S} |phi_j^T r|), with g = 1/||Phi||_2^2. Supports of at most
    n/2 atoms keep the problems on a support well conditioned, so IHT converges in the budget."""
    k = min(k, K, n // 2)
    rng = np.random.default_rng(seed)
    Phi = rng.normal(size=(n, K)) * rng.uniform(0.5, 2.0, size=K) * scale
    X = rng.normal(size=(4, n)) * scale
    g = 1.0 / np.linalg.norm(Phi, 2) ** 2
    # on a support S, IHT contracts by 1 - g sigma_min(Phi_S)^2 a step: 10,000 steps reach tol 1e-12
    # only when that rate is not too close to 1 (the randomized profile found cond(Phi) = 31 with k = K)
    contraction = min(np.linalg.svd(Phi[:, list(S)], compute_uv=False)[-1] ** 2 * g
                      for size in range(1, k + 1) for S in itertools.combinations(range(K), size))
    assume(contraction > 5e-3)
    res = solve(SparseProblem(Phi, X, "l0", 0.0), "iht", n_nonzero=k, tol=1e-12, max_iter=10_000)
    assert res.info["step"] == pytest.approx(g, rel=1e-9)
    assert res.info["converged"]
    for i in range(4):
        a = res.x[i]
        S = np.flatnonzero(a)
        assert S.size <= k
        r = X[i] - Phi @ a
        c = Phi.T @ r
        # least squares on S: the residual is orthogonal to the kept atoms, and as small as lstsq's
        assert np.abs(c[S]).max(initial=0.0) <= 1e-7 * np.linalg.norm(Phi, 2) * np.linalg.norm(X[i])
        fit, *_ = np.linalg.lstsq(Phi[:, S], X[i], rcond=None)
        rf = X[i] - Phi[:, S] @ fit
        assert 0.5 * r @ r == pytest.approx(0.5 * rf @ rf, rel=1e-7, abs=1e-12 * (X[i] @ X[i]))
        out = np.delete(c, S)
        if S.size == k and out.size:
            assert np.abs(a[S]).min() >= g * np.abs(out).max() * (1 - 1e-6)
        elif out.size:  # fewer than k atoms: nothing left out may correlate with the residual
            assert g * np.abs(out).max() <= 1e-6 * np.abs(a).max(initial=1.0)
        # the stopping rule: one more step (H_k by a full sort, not the solver's argpartition)
        # moves the code by at most tol ||a|| (the steps shrink once the support has settled)
        u = a + g * c
        step = np.zeros_like(u)
        keep = np.argsort(-np.abs(u), kind="stable")[:k]
        step[keep] = u[keep]
        assert np.linalg.norm(step - a) <= 1e-12 * np.linalg.norm(a) * (1 + 1e-3) + 1e-15 * np.linalg.norm(u)


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
    (lambda: solve(SparseProblem(np.ones((3, 2)), np.ones(3), "l1", 0.1), "lars"), r"unknown method 'lars'"),
    (lambda: solve(SparseProblem(np.ones((3, 2)), np.ones(3), "l1", 0.1), "fista", iters=3), r"unknown option\(s\) \['iters'\]"),
    (lambda: solve(SparseProblem(np.ones((3, 2)), np.ones(3), "l1", 0.1), "l0-exact"), r"needs penalty in \['l0', 'cel0'\]"),
    (lambda: solve(SparseProblem(np.ones((3, 2)), np.ones(3), "l1", 0.1), "iht"), "needs the option n_nonzero"),
    (lambda: solve(SparseProblem(np.ones((3, 2)), np.ones(3), "l1", 0.1), "fista", max_iter=0), "max_iter must be an integer >= 1, found 0"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", step=2.0), r"step must be in \(0, 1/L\]"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", init=np.ones((2, 3))), r"init must have shape \(1, 3\)"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", dtype="float16"), r"dtype must be one of \['float64', 'float32'\] or None, found 'float16'"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", step_scale=2.0), r"step_scale must be a finite number >= 1 and < 2 or None, found 2.0"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l0", 0.1), "fista", step_scale=1.5), "step_scale > 1 needs penalty 'l1'"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", certify=False, step_scale=1.5), "certify=False"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", threads=0), "threads must be an integer >= 1 and <= 1024 or None, found 0"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", first_check=0), "first_check must be an integer >= 1, found 0"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", kkt_tol=-1.0), "kkt_tol must be a finite number >= 0, found -1.0"),
    (lambda: solve(SparseProblem(np.eye(3), np.ones(3), "l1", 0.1), "fista", kkt_tol=np.nan), "kkt_tol must be a finite number >= 0, found nan"),
    (lambda: binary_sparse_coding_bqm(np.eye(3), np.ones(3), 0.0, 0.1), "alpha must be nonzero"),
    (lambda: binary_sparse_coding_bqm(np.eye(3), np.ones(4), 1.0, 0.1), r"x must have shape \(3\)"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_method_names_lists_the_registry():
    assert solvers.method_names(kind="sparse") == ["fista", "iht", "ista", "l0-exact", "omp"]


def _l0_by_supports(Phi, X, lam):
    """sum_i min_S 1/2 ||x_i - Phi_S a||^2 + lam |S| over every support S (numpy least squares)."""
    K = Phi.shape[1]
    best = 0.5 * np.sum(X * X, axis=1)
    for mask in range(1, 2**K):
        S = [k for k in range(K) if mask >> k & 1]
        A, *_ = np.linalg.lstsq(Phi[:, S], X.T, rcond=None)
        R = X.T - Phi[:, S] @ A
        best = np.minimum(best, 0.5 * np.sum(R * R, axis=0) + lam * len(S))
    return float(best.sum())


def test_solve_on_a_sparse_problem_returns_the_one_result():
    """The front door: codes (N, K) in ``x``, the total objective as ``energy`` (float64),
    per-signal objectives in ``info``; proven codes are optimal with the bound at the energy."""
    Phi, X = _problem(21, 8, 10, 6)
    for penalty, method, optimal in (("l1", "fista", True), ("l1", "ista", True), ("l0", "l0-exact", True),
                                     ("cel0", "l0-exact", True), ("l0", "omp", False), ("l1/2", "fista", False)):
        res = solvers.solve(solvers.SparseProblem(Phi, X, penalty, 0.2), method)
        assert isinstance(res, solvers.Result) and res.method == method
        assert res.x.dtype == np.float64 and res.x.shape == (6, 10)
        per_row = objective(Phi, X, res.x, penalty, 0.2)
        np.testing.assert_allclose(res.info["objective"], per_row, rtol=1e-12)
        assert res.energy == pytest.approx(per_row.sum(), rel=1e-12)
        assert res.optimal is optimal and (res.status == "optimal") is optimal
        if penalty in ("l0", "cel0"):  # brute force over all 2^10 supports (CEL0 keeps l0's minimum)
            assert res.energy >= _l0_by_supports(Phi, X, 0.2) - 1e-9
            if optimal:
                assert res.energy == pytest.approx(_l0_by_supports(Phi, X, 0.2), rel=1e-9)
                assert res.lower_bound == pytest.approx(res.energy, rel=1e-9)
        if penalty == "l1" and optimal:  # KKT of the lasso, by hand
            G = (X - res.x @ Phi.T) @ Phi
            on = res.x != 0
            assert np.all(np.abs(G[~on]) <= 0.2 + 1e-6)
            np.testing.assert_allclose(G[on], 0.2 * np.sign(res.x[on]), atol=1e-6)
    one = solvers.solve(solvers.SparseProblem(Phi, X[2], "l0", 0.2), "l0-exact")
    assert one.x.shape == (10,) and isinstance(one.info["objective"], float) and one.energy == one.info["objective"]
    # the exact l0 optimum is below every other coder's l0 objective (brute force checks it above)
    omp = solve(SparseProblem(Phi, X, "l0", 0.2), "omp")
    assert np.all(solve(SparseProblem(Phi, X, "l0", 0.2), "l0-exact").info["objective"] <= omp.info["objective"] + 1e-12)


def test_a_method_of_the_wrong_kind_is_refused():
    Phi, X = _problem(22, 4, 5, 2)
    sparse = solvers.SparseProblem(Phi, X, "l0", 0.1)
    for method in ("exhaustive", "tree", "nearest"):
        with pytest.raises(ValueError, match=f"method '{method}' does not code a SparseProblem"):
            solvers.solve(sparse, method)
    with pytest.raises(ValueError, match="does not code a SparseProblem"):
        solvers.solve(sparse, solvers.ExhaustiveSampler())
    for method in ("fista", "l0-exact"):
        with pytest.raises(ValueError, match=f"method '{method}' codes a solvers.SparseProblem, not a BQM"):
            solvers.solve(solvers.BQM(np.eye(2)), method)
    names = [solvers.method_names(kind) for kind in ("qubo", "layer", "sparse")]
    assert sorted(sum(names, [])) == solvers.method_names()  # one registry, each name once


@pytest.mark.parametrize("args, message", [
    ((np.ones((3, 2)), np.ones(4), "l1", 0.1), r"X must have"),
    ((np.ones((3, 2)), np.ones(3), "l2", 0.1), r"penalty must be one of"),
    ((np.ones((3, 2)), np.ones(3), "l1", -1.0), r"lam must be >= 0"),
    ((np.ones((3, 2)), np.full(3, np.nan), "l1", 0.1), r"X must be finite|X .*NaN"),
    ((np.zeros((3, 2)), np.ones(3), "l1", 0.1), r"no zero atom"),
    ((np.ones((3, 2)) * 1e200, np.ones(3), "l1", 0.1), r"overflow"),
])
def test_sparse_problem_is_validated_in_its_constructor(args, message):
    with pytest.raises(ValueError, match=message):
        solvers.SparseProblem(*args)


def test_the_step_survives_orthonormal_atoms_where_lapack_subset_eigensolver_fails():
    """Found by hypothesis: scipy's eigvalsh(subset_by_index=...) raised LinAlgError on this
    Q^T Q (ten equal eigenvalues); the step size now falls back to the full spectrum."""
    rng = np.random.default_rng(208809)
    K = int(rng.integers(1, 11))
    Phi = np.linalg.qr(rng.normal(size=(10, 10)))[0][:, :K] * rng.choice([-1.0, 1.0], size=K)
    X = rng.normal(size=(3, 10))
    res = solve(SparseProblem(Phi, X, "l0", 0.0), "iht", n_nonzero=1, tol=1e-13, max_iter=200)
    assert res.info["step"] == pytest.approx(1.0, rel=1e-12)  # ||Phi||_2^2 = 1
    for i in range(3):
        assert res.info["objective"][i] == pytest.approx(_best_k_sparse(Phi, X[i], 1), rel=1e-9, abs=1e-12)
