"""Sparse coding objective and penalties: every prox against brute-force 1-D minimisation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.penalties import PENALTIES, penalty_elementwise, prox, prox_cel0, prox_half
from reference.sparse import (
    lasso_alpha,
    objective,
    penalty_value,
    reconstruction_error,
    sklearn_alpha,
    v1_lambda,
)

finite = dict(allow_nan=False, allow_infinity=False)


def _grid_check(u, pen, step, lam, norm):
    """prox(u) attains the minimum of the 1-D objective over a fine grid (0 and the CEL0 knot added)."""
    f = lambda x: 0.5 * (x - u) ** 2 + step * penalty_elementwise(x, pen, lam, norm)  # noqa: E731
    T = np.sqrt(2 * lam) / norm
    R = abs(u) + T + 1.0
    h = 2 * R / 200_000
    grid = np.concatenate([np.linspace(-R, R, 200_001), [0.0, T, -T]])
    vals = f(grid)
    i = int(np.argmin(vals))
    x = float(prox(np.array([u]), pen, step, lam, np.array([norm]))[0])
    fx = float(f(np.array([x]))[0])
    # never worse than the grid, and no better than the grid by more than its resolution allows
    assert fx <= vals[i] + 1e-12
    slope = abs(u) + R + step * (lam / np.sqrt(h) + norm * np.sqrt(2 * lam) + 1)
    assert fx >= vals[i] - slope * h
    # where the minimiser is unambiguous, it is the grid's argmin to grid precision
    far = np.abs(grid - x) > 50 * h
    if far.any() and vals[far].min() > vals[i] + 1e-3:
        assert abs(x - grid[i]) <= 50 * h


@given(u=st.floats(-6, 6, **finite), step=st.floats(0.01, 3), lam=st.floats(0.01, 3),
       pen=st.sampled_from(["l0", "l1", "l1/2"]))
def test_prox_equals_grid_minimiser(u, step, lam, pen):
    _grid_check(u, pen, step, lam, 1.0)


@given(u=st.floats(-6, 6, **finite), s=st.floats(0.01, 0.99), lam=st.floats(0.01, 3), norm=st.floats(0.2, 3))
def test_prox_cel0_convex_regime_equals_grid_minimiser(u, s, lam, norm):
    _grid_check(u, "cel0", s / norm**2, lam, norm)  # step * norm^2 = s < 1


@given(u=st.floats(-6, 6, **finite), s=st.floats(1.0, 4.0), lam=st.floats(0.01, 3), norm=st.floats(0.2, 3))
def test_prox_cel0_concave_regime_equals_grid_minimiser(u, s, lam, norm):
    _grid_check(u, "cel0", s / norm**2, lam, norm)  # step * norm^2 = s >= 1


def test_prox_thresholds_are_the_documented_ones():
    t = 0.7
    assert prox(np.array([np.sqrt(2 * t) * 0.999]), "l0", 1.0, t)[0] == 0
    assert prox(np.array([np.sqrt(2 * t) * 1.001]), "l0", 1.0, t)[0] != 0
    thr = 1.5 * t ** (2 / 3)
    assert prox_half(np.array([thr * 0.999]), t)[0] == 0
    assert prox_half(np.array([thr * 1.001]), t)[0] > 0
    assert prox(np.array([1.2]), "l1", 0.5, 1.0)[0] == pytest.approx(0.7)
    # CEL0 firm threshold: zero below step*n*sqrt(2 lam), identity above sqrt(2 lam)/n
    step, lam, n = 0.5, 0.5, 1.0
    assert prox_cel0(np.array([0.499]), step, lam, n)[0] == 0
    assert prox_cel0(np.array([1.2]), step, lam, n)[0] == 1.2
    assert prox_cel0(np.array([0.75]), step, lam, n)[0] == pytest.approx((0.75 - 0.5) / 0.5)


def test_prox_is_odd_and_vectorised():
    rng = np.random.default_rng(0)
    U = rng.normal(size=(5, 7)) * 2
    norms = rng.uniform(0.5, 2, size=7)
    for pen in PENALTIES:
        P = prox(U, pen, 0.3, 0.4, norms)
        assert P.shape == U.shape
        np.testing.assert_array_equal(prox(-U, pen, 0.3, 0.4, norms), -P)
        for j in range(7):
            np.testing.assert_array_equal(P[:, j], prox(U[:, j], pen, 0.3, 0.4, norms[j]))


def test_objective_matches_direct_formula():
    rng = np.random.default_rng(1)
    Phi = rng.normal(size=(6, 9))
    X = rng.normal(size=(4, 6))
    A = rng.normal(size=(4, 9)) * (rng.random((4, 9)) < 0.5)
    lam = 0.3
    norms = np.linalg.norm(Phi, axis=0)
    for pen, p in [("l0", lambda a: lam * np.count_nonzero(a)), ("l1", lambda a: lam * np.abs(a).sum()),
                   ("l1/2", lambda a: lam * np.sqrt(np.abs(a)).sum())]:
        want = [0.5 * np.sum((X[i] - Phi @ A[i]) ** 2) + p(A[i]) for i in range(4)]
        np.testing.assert_allclose(objective(Phi, X, A, pen, lam), want, rtol=1e-13)
    # CEL0 written out per coefficient from Soubies et al.'s definition
    want = []
    for i in range(4):
        r = 0.0
        for j in range(9):
            T = np.sqrt(2 * lam) / norms[j]
            r += lam - norms[j] ** 2 / 2 * (abs(A[i, j]) - T) ** 2 if abs(A[i, j]) <= T else lam
        want.append(0.5 * np.sum((X[i] - Phi @ A[i]) ** 2) + r)
    np.testing.assert_allclose(objective(Phi, X, A, "cel0", lam), want, rtol=1e-13)
    assert objective(Phi, X[0], A[0], "l1", lam) == objective(Phi, X, A, "l1", lam)[0]
    np.testing.assert_allclose(reconstruction_error(Phi, X, A) + penalty_value(A, "l1", lam),
                               objective(Phi, X, A, "l1", lam), rtol=1e-13)


def test_cel0_equals_its_closed_form_and_l0_beyond_the_knot():
    rng = np.random.default_rng(2)
    Phi = rng.normal(size=(5, 4))
    A = rng.normal(size=(50, 4)) * 3
    lam = 0.2
    norms = np.linalg.norm(Phi, axis=0)
    T = np.sqrt(2 * lam) / norms
    A[:4, :] = np.array([0.0, 0.5, 1.0, 2.0])[:, None] * T  # rows at 0, T/2, the knot T and beyond
    cel0 = penalty_value(A, "cel0", lam, Phi)
    l0 = penalty_value(A, "l0", lam)
    # Soubies et al.'s closed form, expanded: n sqrt(2 lam) |a| - n^2 a^2 / 2 below the knot, lam above
    a = np.abs(A)
    want = np.where(a < T, norms * np.sqrt(2 * lam) * a - 0.5 * norms**2 * a**2, lam).sum(axis=1)
    np.testing.assert_allclose(cel0, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cel0[:4], np.array([0.0, 0.75, 1.0, 1.0]) * 4 * lam, rtol=1e-12, atol=1e-15)
    big = np.all((np.abs(A) >= T) | (A == 0), axis=1)
    np.testing.assert_allclose(cel0[big], l0[big], rtol=1e-14, atol=1e-15)


@given(lam=st.floats(1e-12, 1e6), norm=st.floats(1e-3, 1e3), frac=st.floats(0, 3))
def test_cel0_is_exactly_zero_at_zero_and_exactly_lam_from_the_knot(lam, norm, frac):
    """r(0) = 0 and r(a) = lam for |a| >= T exactly (no rounding residue, no jump at the knot);
    below the knot, Soubies et al.'s form lam - (n^2/2)(|a| - T)^2 within rounding, in [0, lam]."""
    T = np.sqrt(2 * lam) / norm
    zero = penalty_elementwise(np.array([0.0, -0.0]), "cel0", lam, np.array([norm, norm]))
    assert zero.tolist() == [0.0, 0.0]
    at_knot = penalty_elementwise(np.array([T, -T, 2 * T]), "cel0", lam, np.full(3, norm))
    assert at_knot.tolist() == [lam, lam, lam]
    a = frac * T
    r = penalty_elementwise(np.array([a]), "cel0", lam, np.array([norm]))[0]
    assert 0.0 <= r <= lam
    want = lam - norm**2 / 2 * (a - T) ** 2 if a < T else lam
    assert r == pytest.approx(want, rel=1e-12, abs=1e-12 * lam)


def test_cel0_is_nondecreasing_in_magnitude_across_the_knot():
    lam, norm = 0.3, 0.7
    T = np.sqrt(2 * lam) / norm
    a = np.concatenate([np.linspace(0, 2 * T, 2001), np.nextafter(T, [0.0, np.inf])])
    a.sort()
    r = penalty_elementwise(a, "cel0", lam, np.full(a.size, norm))
    assert r[0] == 0.0 and r[-1] == lam
    assert np.all(np.diff(r) >= 0)


def test_sklearn_alpha_conversion_matches_lasso_objective():
    from sklearn.linear_model import Lasso  # the test extra

    rng = np.random.default_rng(3)
    Phi = rng.normal(size=(20, 8))
    x = rng.normal(size=20)
    lam = 0.7
    a = Lasso(alpha=lasso_alpha(lam, 20), fit_intercept=False, tol=1e-12, max_iter=100_000).fit(Phi, x).coef_
    sk_obj = 1 / (2 * 20) * np.sum((x - Phi @ a) ** 2) + lasso_alpha(lam, 20) * np.abs(a).sum()
    assert objective(Phi, x, a, "l1", lam) == pytest.approx(20 * sk_obj, rel=1e-12)
    assert sklearn_alpha(lam) == lam


def test_v1_lambda_conversion_of_hard_threshold():
    lam_v1, step = 0.3, 0.8
    u = np.linspace(-2, 2, 4001)
    paper = np.where(np.abs(u) >= np.sqrt(step * lam_v1), u, 0.0)  # V1 code: zero below sqrt(step*lam)
    ours = prox(u, "l0", step, v1_lambda(lam_v1, "l0"))
    mismatch = np.flatnonzero(paper != ours)
    assert np.all(np.isclose(np.abs(u[mismatch]), np.sqrt(step * lam_v1)))  # only the tie may differ
    assert v1_lambda(lam_v1, "l1") == lam_v1


@pytest.mark.parametrize("lam_v1, step", [(0.13, 0.01), (0.4, 0.5), (2.0, 0.9)])
def test_v1_lambda_conversion_of_half_and_cel0(lam_v1, step):
    """The V1 code's half and CEL0 operators, written from their formulas, equal our proxes
    with v1_lambda's lambda (away from the thresholds, where a tie may go either way)."""
    u = np.linspace(-3, 3, 6001)
    mu = step * lam_v1  # the code's threshold for half: Xu et al.'s operator for (x-u)^2 + mu |x|^(1/2)
    thresh = np.cbrt(54) / 4 * mu ** (2 / 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.arccos(mu / 8 * (np.abs(u) / 3) ** -1.5)
        half = np.where(np.abs(u) > thresh, 2 / 3 * u * (1 + np.cos(2 * np.pi / 3 - 2 / 3 * phi)), 0.0)
    ours = prox(u, "l1/2", step, v1_lambda(lam_v1, "l1/2"))
    near = np.isclose(np.abs(u), thresh, atol=2e-3)
    np.testing.assert_allclose(ours[~near], half[~near], atol=1e-9)
    # CEL0 on unit atoms, step < 1: sign(u) min(|u|, max(0, |u| - sqrt(2 lam) step) / (1 - step))
    cel0 = np.sign(u) * np.minimum(np.abs(u), np.maximum(np.abs(u) - np.sqrt(2 * lam_v1) * step, 0) / (1 - step))
    ours = prox(u, "cel0", step, v1_lambda(lam_v1, "cel0"), np.ones(1))
    np.testing.assert_allclose(ours, cel0, atol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: objective(np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 2)), "l2", 1.0), "penalty must be one of"),
    (lambda: objective(np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 2)), "l1", -1.0), "lam must be >= 0"),
    (lambda: objective(np.ones((3, 2)), np.ones((1, 4)), np.ones((1, 2)), "l1", 1.0), r"X must have shape \(N, 3\)"),
    (lambda: objective(np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 3)), "l1", 1.0), r"A must have shape \(1, 2\)"),
    (lambda: objective(np.zeros((3, 2)), np.ones((1, 3)), np.ones((1, 2)), "l1", 1.0), "no zero atom"),
    (lambda: objective(np.ones((3, 2)), np.full((1, 3), np.nan), np.ones((1, 2)), "l1", 1.0), "X must be finite"),
    (lambda: penalty_value(np.ones((1, 2)), "cel0", 1.0), "Phi is needed"),
    (lambda: v1_lambda(1.0, "l2"), "penalty must be one of"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
