"""The AdaRound relaxation (Eqs. 21-24): initialisation, gradient, optimiser, schedules, presets,
and its rounding checked against the exhaustive optimum and round-to-nearest."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference import Grid, fit_grid
from solvers import LayerProblem, solve
from solvers.adaround import LocalLoss
from solvers.relaxation import (
    GAMMA,
    PRESETS,
    ZETA,
    Adam,
    Relaxation,
    beta_at,
    init_from_residual,
    rectified_sigmoid,
    regulariser,
    soft_weight_map,
)

from ..strategies import small_layers


# ---------------------------------------------------------------------------- helpers
def correlated(out, fan_in, n, seed, rho=0.5, distinct=None):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(out, fan_in)) / np.sqrt(fan_in)
    idx = np.arange(fan_in)
    L = np.linalg.cholesky(rho ** np.abs(idx[:, None] - idx[None, :]))
    m = n if distinct is None else distinct
    X = rng.normal(size=(m, fan_in)) @ L.T
    return W, X[np.arange(n) % m]


def suite():
    """Default-like layers: fan-in 12-20, 4-bit per-row MSE grid, AR(1)-correlated inputs."""
    out = []
    for i, fan_in in enumerate((12, 14, 16, 18, 20)):
        W, X = correlated(6, fan_in, 256, seed=100 + i)
        out.append(LayerProblem(W, fit_grid(W, bits=4), X=X, name=f"fc{fan_in}"))
    return out


SUITE = suite()


@pytest.fixture(scope="module")
def suite_results():
    res = []
    for p in SUITE:
        res.append({
            "opt": solve(p, "exhaustive"),
            "nearest": solve(p, "nearest"),
            "ada": solve(p, "adaround", history=True),
        })
    return res


def clipped_problem(seed=0, out=3, fan_in=7, n=40):
    """A layer whose grid is too narrow for its largest weights (movable = 0 on some)."""
    W, X = correlated(out, fan_in, n, seed)
    g = fit_grid(W, bits=3)
    g = Grid(g.scale * 0.5, g.qmin, g.qmax, g.zero_point)
    p = LayerProblem(W, g, X=X)
    assert np.any(p.movable == 0) and np.any(p.movable == 1)
    return p


def local(p, normalization="sample"):
    """``J(V)`` of Eq. 21 with the local loss of ``p`` as its data term."""
    return Relaxation(LocalLoss(p, normalization))


def central_differences(f, V, step):
    g = np.zeros_like(V)
    for ij in np.ndindex(V.shape):
        Vp = V.copy()
        Vm = V.copy()
        Vp[ij] += step
        Vm[ij] -= step
        g[ij] = (f(Vp) - f(Vm)) / (2 * step)
    return g


def differentiable(V, step):
    """Entries whose neighbourhood of size 10*step contains no kink of h or |2h - 1|."""
    ok = np.ones(V.shape, dtype=bool)
    for dv in (-10 * step, 0.0, 10 * step):
        sig = 1 / (1 + np.exp(-(V + dv)))
        u = sig * (ZETA - GAMMA) + GAMMA
        ok &= (np.abs(u) > 1e-9) & (np.abs(u - 1) > 1e-9)
    u = 1 / (1 + np.exp(-V)) * (ZETA - GAMMA) + GAMMA
    # on either side of a kink the two one-sided slopes differ: drop entries that straddle one
    lo = 1 / (1 + np.exp(-(V - 10 * step))) * (ZETA - GAMMA) + GAMMA
    hi = 1 / (1 + np.exp(-(V + 10 * step))) * (ZETA - GAMMA) + GAMMA
    ok &= ~((lo < 0) & (hi > 0)) & ~((lo < 1) & (hi > 1))
    ok &= np.abs(2 * np.clip(u, 0, 1) - 1) > 1e-3
    return ok


# ---------------------------------------------------------------------------- Eq. 23 and V0
@given(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=50))
def test_h_of_initial_V_equals_residual(residuals):
    r = np.array(residuals)
    r[0] = 0.0  # the boundary case: h must be exactly at the clamp, not beyond it
    V0 = init_from_residual(r)
    assert np.all(np.isfinite(V0))
    np.testing.assert_allclose(rectified_sigmoid(V0), r, rtol=0, atol=1e-15)


def test_zero_residual_maps_to_minus_log_11():
    assert init_from_residual(np.array([0.0]))[0] == pytest.approx(-math.log(11), abs=1e-15)


@given(small_layers(max_out=3, max_in=6))
def test_soft_weights_at_V0_reproduce_W_on_free_weights(layer):
    W, X, grid = layer
    p = LayerProblem(W, grid, X=X)
    V0 = init_from_residual(p.residual)
    np.testing.assert_allclose(rectified_sigmoid(V0), p.residual, rtol=0, atol=1e-15)
    A0, B = soft_weight_map(p)
    Wt = A0 + B * rectified_sigmoid(V0)
    free = p.movable == 1
    s, z = grid.per_row(p.n_rows)
    np.testing.assert_allclose(Wt[free], W[free], rtol=1e-12, atol=1e-12 * np.max(np.abs(W)))
    # clipped weights sit on the grid's end whatever h is (Eq. 22's clip)
    clipped = s * (np.clip(np.floor(W / s) + z + 0.5, grid.qmin, grid.qmax) - z)
    np.testing.assert_allclose(Wt[~free], clipped[~free], rtol=1e-14, atol=1e-14 * np.max(np.abs(W)))


def test_init_refuses_residual_outside_unit_interval():
    with pytest.raises(ValueError, match=r"residual must lie in \[0, 1\)"):
        init_from_residual(np.array([1.0]))


# ---------------------------------------------------------------------------- the gradient
@pytest.mark.parametrize("normalization", ["sample", "element"])
@pytest.mark.parametrize("beta", [None, 1.7, 2.0, 9.3, 20.0])
def test_gradient_matches_central_differences_with_clipping(normalization, beta):
    p = clipped_problem(seed=3)
    rel = local(p, normalization)
    rng = np.random.default_rng(1)
    V = rng.normal(scale=2.0, size=p.shape)
    V[0, :2] = [6.0, -6.0]  # h clamped at 1 and at 0
    lam = 0.37
    step = 1e-6

    def J(Vx):
        return rel.value_and_grad(Vx, lam, beta)[0]

    g = rel.value_and_grad(V, lam, beta)[3].copy()
    fd = central_differences(J, V, step)
    ok = differentiable(V, step)
    assert ok.sum() >= 0.7 * ok.size
    err = np.abs(g - fd)[ok].max()
    assert err <= 1e-6 * np.abs(g[ok]).max()
    assert g[0, 0] == 0.0 and g[0, 1] == 0.0  # clamped h: no gradient
    # clipped weights get no loss gradient, only the regulariser's
    g_loss = rel.value_and_grad(V, 0.0, None)[3]
    assert np.all(g_loss[p.movable == 0] == 0.0)


@given(small_layers(max_out=3, max_in=5), st.floats(1.0, 20.0), st.floats(0.0, 2.0),
       st.integers(0, 2**31 - 1))
def test_gradient_matches_central_differences_property(layer, beta, lam, seed):
    W, X, grid = layer
    p = LayerProblem(W, grid, X=X)
    rel = local(p)
    V = np.random.default_rng(seed).normal(scale=3.0, size=p.shape)
    step = 1e-6
    # scale-free check: the loss may be tiny or huge; compare against the gradient's own size
    g = rel.value_and_grad(V, lam, beta)[3].copy()
    fd = central_differences(lambda Vx: rel.value_and_grad(Vx, lam, beta)[0], V, step)
    ok = differentiable(V, step)
    assume(ok.any())  # every entry at a clamp of h: no derivative to compare (never seen in practice)
    J = abs(rel.value_and_grad(V, lam, beta)[0])
    noise = 1e-15 * (J + 1.0) / step  # rounding error of the differences
    assert np.abs(g - fd)[ok].max() <= 1e-6 * np.abs(g[ok]).max() + 10 * noise


def test_minibatch_gradient_matches_central_differences():
    p = clipped_problem(seed=5, n=64)
    rel = local(p)
    idx = np.random.default_rng(0).choice(64, 16, replace=False)
    V = np.random.default_rng(2).normal(size=p.shape)
    g = rel.value_and_grad(V, 0.2, 4.0, idx)[3].copy()
    fd = central_differences(lambda Vx: rel.value_and_grad(Vx, 0.2, 4.0, idx)[0], V, 1e-6)
    ok = differentiable(V, 1e-6)
    assert np.abs(g - fd)[ok].max() <= 1e-6 * np.abs(g[ok]).max()


def test_batch_of_all_samples_equals_gram_mode():
    p = clipped_problem(seed=7, n=50)
    rel = local(p)
    V = np.random.default_rng(3).normal(size=p.shape)
    Jg, Lg, Rg, gg = rel.value_and_grad(V, 0.1, 3.0)
    gg = gg.copy()
    Jb, Lb, Rb, gb = rel.value_and_grad(V, 0.1, 3.0, np.arange(50))
    assert Lb == pytest.approx(Lg, rel=1e-12)
    assert Rb == Rg
    np.testing.assert_allclose(gb, gg, rtol=1e-10, atol=1e-14 * np.abs(gg).max())


def test_loss_is_the_local_loss_of_the_soft_weights():
    p = clipped_problem(seed=8)
    rel = local(p)
    V = np.random.default_rng(4).normal(size=p.shape)
    s, z = p.grid.per_row(p.n_rows)  # Eq. 22 as written, clip included
    E = s * (np.clip(np.floor(p.W / s) + z + rectified_sigmoid(V), p.grid.qmin, p.grid.qmax) - z) - p.W
    X = p.X
    direct = np.sum((X @ E.T) ** 2) / X.shape[0]  # (1/N) sum_n ||(W~ - W) x_n||^2
    assert rel.value_and_grad(V)[1] == pytest.approx(direct, rel=1e-12)
    h = rectified_sigmoid(V)
    assert rel.value_and_grad(V, 1.0, 3.0)[2] == pytest.approx(regulariser(h, 3.0), rel=1e-14)


def test_element_normalisation_divides_by_outputs_and_lambda_converts():
    p = clipped_problem(seed=9, out=4)
    V = np.random.default_rng(5).normal(size=p.shape)
    J_s, L_s, _, g_s = local(p, "sample").value_and_grad(V, 0.04, 5.0)
    J_e, L_e, _, g_e = local(p, "element").value_and_grad(V, 0.01, 5.0)
    assert L_e * 4 == pytest.approx(L_s, rel=1e-14)
    # torch_ao's lambda l corresponds to AIMET's lambda out * l
    assert J_e * 4 == pytest.approx(J_s, rel=1e-14)
    np.testing.assert_allclose(g_e * 4, g_s, rtol=1e-12)


# ---------------------------------------------------------------------------- Adam
def test_adam_matches_the_textbook_update_with_bias_correction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5)
    x_ref = x.copy()
    opt = Adam(x.shape, lr=0.01)
    m = np.zeros(5)
    v = np.zeros(5)
    for t in range(1, 40):
        g = rng.normal(size=5) * 10.0 ** rng.integers(-3, 3)
        opt.step(x, g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        x_ref = x_ref - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(x, x_ref, rtol=1e-13, atol=1e-15)


def test_adam_first_step_moves_by_lr_times_sign():
    x = np.zeros(3)
    Adam(x.shape, lr=1e-3).step(x, np.array([5.0, -0.2, 3e-3]))
    np.testing.assert_allclose(x, [-1e-3, 1e-3, -1e-3], rtol=1e-5)


# ---------------------------------------------------------------------------- schedules, presets
def test_cosine_schedule_matches_aimet_formula():
    T, w = 1000, 0.2
    assert beta_at(199, T, (20, 2), w, "cosine") is None
    assert beta_at(200, T, (20, 2), w, "cosine") == pytest.approx(20.0)
    assert beta_at(600, T, (20, 2), w, "cosine") == pytest.approx(11.0)
    assert beta_at(1000, T, (20, 2), w, "cosine") == pytest.approx(2.0)
    rel = (350 - 200) / 800
    assert beta_at(350, T, (20, 2), w, "cosine") == pytest.approx(2 + 9 * (1 + math.cos(math.pi * rel)))


def test_linear_schedule_matches_brecq_formula():
    T = 100
    assert beta_at(0, T, (20, 2), 0.0, "linear") == pytest.approx(20.0)
    assert beta_at(50, T, (20, 2), 0.0, "linear") == pytest.approx(11.0)
    assert beta_at(100, T, (20, 2), 0.0, "linear") == pytest.approx(2.0)
    assert beta_at(19, T, (20, 2), 0.2, "linear") is None
    assert beta_at(60, T, (20, 2), 0.2, "linear") == pytest.approx(11.0)


def test_presets_pin_the_published_defaults():
    a, b, bi, t = (PRESETS[k] for k in ("aimet", "brecq", "brecq_imagenet", "torch_ao"))
    assert (a.lam, a.beta, a.schedule, a.warm_start, a.iterations, a.lr, a.batch_size, a.normalization) == (
        0.01, (20.0, 2.0), "cosine", 0.2, 10_000, 1e-3, 32, "sample")
    assert (b.lam, b.schedule, b.warm_start, b.iterations, b.step_base) == (0.001, "linear", 0.0, 20_000, 1)
    assert (bi.lam, bi.schedule, bi.warm_start, bi.iterations) == (0.01, "linear", 0.2, 20_000)
    assert (t.lam, t.schedule, t.warm_start, t.iterations, t.batch_size, t.normalization) == (
        0.001, "cosine", 0.2, 10_000, 256, "element")


def test_history_follows_the_schedule_and_warm_start():
    p = SUITE[0]
    r = solve(p, "adaround", iterations=200, history=True, history_every=10)
    h = r.info["history"]
    assert list(h["iteration"]) == list(range(0, 200, 10)) + [200]
    assert np.all(np.isnan(h["beta"][h["iteration"] < 40]))
    on = h["iteration"][(h["iteration"] >= 40) & (h["iteration"] < 200)]
    expect = [beta_at(i, 200, (20, 2), 0.2, "cosine") for i in on]
    np.testing.assert_allclose(h["beta"][(h["iteration"] >= 40) & (h["iteration"] < 200)], expect)
    assert h["loss"][-1] == pytest.approx(r.info["soft_loss"], rel=1e-12)
    assert h["hard_loss"][-1] == pytest.approx(r.energy, rel=1e-12)
    assert h["not_binary_fraction"][-1] == r.info["not_binary_fraction"]
    # BRECQ counts steps from 1: its first step already sees the decayed beta
    r2 = solve(p, "adaround", preset="brecq", iterations=100, history=True, history_every=1)
    assert r2.info["history"]["beta"][0] == pytest.approx(20 - 18 / 100)


# ---------------------------------------------------------------------------- behaviour of the run
def test_soft_loss_decreases_without_regulariser():
    for p in SUITE[:3]:
        r = solve(p, "adaround", lam=0.0, warm_start=0.0, iterations=3000, history=True, history_every=100)
        loss = r.info["history"]["loss"]
        assert loss[-1] < 0.9 * loss[0]
        # Adam with a constant step may jitter at the 1e-5 level near the minimum; it never climbs
        assert np.all(loss[1:] <= np.minimum.accumulate(loss)[:-1] * (1 + 1e-4))


def test_after_the_schedule_h_is_binary_or_reported_and_the_hard_loss_is_reported(suite_results):
    total_free = total_far = 0
    for p, res in zip(SUITE, suite_results):
        r = res["ada"]
        h = rectified_sigmoid(r.info["V"])
        far = (h > 1e-3) & (h < 1 - 1e-3) & (p.movable == 1)
        np.testing.assert_array_equal(r.info["not_binary_where"], np.argwhere(far))
        assert r.info["not_binary"] == far.sum()
        assert r.info["history"]["not_binary_fraction"][-1] == r.info["not_binary_fraction"]
        total_free += p.movable.sum()
        total_far += far.sum()
        # the hard rounding V >= 0 is what is reported, with its own loss
        np.testing.assert_array_equal(r.x, ((r.info["V"] >= 0) & (p.movable == 1)).astype(np.int8))
        assert r.energy == pytest.approx(p.loss(r.x), rel=1e-15)
        assert r.info["history"]["hard_loss"][-1] == pytest.approx(r.energy, rel=1e-12)
        assert r.x.dtype == np.int8 and np.all(r.x[p.movable == 0] == 0)
        assert not r.optimal and r.status == "best found" and r.lower_bound is None
    assert total_far <= 0.01 * total_free  # the schedule binarises (almost) every h


def test_never_below_the_optimum_and_below_nearest_on_a_default_like_suite(suite_results):
    for res in suite_results:
        assert res["opt"].optimal
        assert res["ada"].energy >= res["opt"].energy * (1 - 1e-12)
        assert res["ada"].energy < res["nearest"].energy


def test_not_binary_is_counted_when_the_schedule_is_cut_short():
    r = solve(SUITE[1], "adaround", iterations=50)
    h = rectified_sigmoid(init_from_residual(SUITE[1].residual))
    assert r.info["not_binary"] > 0
    n_free = int(np.sum(SUITE[1].movable))
    assert r.info["not_binary_fraction"] == r.info["not_binary"] / n_free
    assert r.info["soft_loss"] != r.energy
    assert h.shape == r.x.shape


def test_gram_mode_is_deterministic_and_batch_mode_follows_its_seed():
    p = SUITE[2]
    a, b, c, d, e = (solve(p, "adaround", iterations=300, mode=m, seed=s).info["V"]
                     for m, s in (("gram", 1), ("gram", 2), ("batch", 1), ("batch", 1), ("batch", 2)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(c, e)


def test_batch_mode_reaches_a_rounding_no_worse_than_nearest():
    p = SUITE[3]
    r = solve(p, "adaround", mode="batch", seed=0)
    assert r.energy < solve(p, "nearest").energy


def test_layer_with_every_weight_clipped_has_nothing_to_round():
    W = np.array([[5.0, -7.0, 9.0]])
    p = LayerProblem(W, Grid(0.1, -2, 1), G=np.eye(3))
    r = solve(p, "adaround", iterations=20)
    assert np.all(r.x == 0) and r.info["not_binary_fraction"] == 0.0


def test_layer_problem_keeps_X_only_when_given():
    W, X = correlated(2, 4, 10, 0)
    g = fit_grid(W)
    assert LayerProblem(W, g, X=X).X.shape == (10, 4)
    assert LayerProblem(W, g, G=X.T @ X / 10).X is None


# ---------------------------------------------------------------------------- bad input
G_ONLY = LayerProblem(np.ones((2, 3)) * 0.3, Grid(0.25, -8, 7), G=np.eye(3))


@pytest.mark.parametrize("opts, message", [
    ({"preset": "qdrop"}, r"preset must be one of \['aimet', 'brecq', 'brecq_imagenet', 'torch_ao'\], found 'qdrop'"),
    ({"lam": -0.1}, r"lam must be a finite number >= 0 or None, found -0.1"),
    ({"lam": float("nan")}, r"lam must be a finite number >= 0 or None, found nan"),
    ({"beta": (20, 0.5)}, r"beta must be a pair \(start, end\) of finite numbers >= 1 or None, found \(20, 0.5\)"),
    ({"beta": 3}, r"beta must be a pair \(start, end\) of finite numbers >= 1 or None, found 3"),
    ({"schedule": "step"}, r"schedule must be one of \['cosine', 'linear'\] or None, found 'step'"),
    ({"warm_start": 1.0}, r"warm_start must be a finite number >= 0 and < 1 or None, found 1.0"),
    ({"iterations": 0}, r"iterations must be an integer >= 1 or None, found 0"),
    ({"iterations": 2.5}, r"iterations must be an integer >= 1 or None, found 2.5"),
    ({"lr": 0.0}, r"lr must be a finite number > 0 or None, found 0.0"),
    ({"normalization": "mean"}, r"normalization must be one of \['element', 'sample'\] or None, found 'mean'"),
    ({"mode": "sgd"}, r"mode must be one of \['batch', 'gram'\], found 'sgd'"),
    ({"mode": "batch"}, r"mode='batch' draws mini-batches from the samples"),
    ({"history": 1}, r"history must be True or False, found 1"),
    ({"history_every": 0}, r"history_every must be an integer >= 1 or None, found 0"),
    ({"seed": -1}, r"seed must be an integer >= 0 or None, found -1"),
    ({"momentum": 0.9}, r"method 'adaround' got unknown option\(s\) \['momentum'\]"),
])
def test_bad_options_are_refused_with_the_argument_named(opts, message):
    with pytest.raises((ValueError, TypeError), match=message):
        solve(G_ONLY, "adaround", **opts)


def test_batch_size_above_the_number_of_samples_is_refused():
    W, X = correlated(2, 4, 10, 0)
    p = LayerProblem(W, fit_grid(W), X=X)
    with pytest.raises(ValueError, match=r"batch_size must be <= the number of samples N == 10, found 32"):
        solve(p, "adaround", mode="batch")


def test_a_bqm_is_refused():
    with pytest.raises(ValueError, match="rounds the weights of a LayerProblem"):
        solve(SUITE[0].row_bqm(0), "adaround")


def test_threads_caps_blas_without_changing_the_result():
    p = SUITE[0]
    base = solve(p, "adaround", iterations=200)
    capped = solve(p, "adaround", iterations=200, threads=1)
    np.testing.assert_array_equal(capped.info["V"], base.info["V"])
    with pytest.raises(ValueError, match="threads must be an integer >= 1 and <= 1024 or None, found 0"):
        solve(p, "adaround", threads=0)
