import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    Grid,
    asymmetric_range,
    dequantize,
    fit_grid,
    round_ceil,
    round_floor,
    round_nearest,
    round_stochastic,
    symmetric_range,
    grid_neighbours,
)
from tests.strategies import grid_layers, small_layers


def test_ranges_match_the_bit_width():
    assert symmetric_range(4) == (-8, 7)
    assert symmetric_range(2) == (-2, 1)
    assert asymmetric_range(8) == (0, 255)
    assert symmetric_range(16) == (-32768, 32767)


@pytest.mark.parametrize("bits", [1, 17, 0, -3, 2.5, "4", True])
def test_bits_out_of_range_is_refused(bits):
    with pytest.raises(ValueError, match="bits"):
        fit_grid(np.ones((2, 3)), bits=bits)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=-1e-300, qmin=-8, qmax=7), r"scale must be > 0"),
        (dict(scale=[0.1, -1.0], qmin=-8, qmax=7), r"scale must be > 0"),
        (dict(scale=np.nan, qmin=-8, qmax=7), r"scale must be finite"),
        (dict(scale=0.1, qmin=3, qmax=2), r"qmin must be <= qmax"),
        (dict(scale=0.1, qmin=-8.5, qmax=7), r"qmin must be an integer"),
        (dict(scale=0.1, qmin=0, qmax=15, zero_point=16), r"zero_point must lie in"),
        (dict(scale=0.1, qmin=0, qmax=15, zero_point=1.5), r"zero_point must hold integers"),
        (dict(scale=np.ones((2, 2)), qmin=0, qmax=15), r"scale must be a scalar or 1-D"),
    ],
)
def test_bad_grids_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Grid(**kwargs)


def test_grid_length_must_match_rows():
    g = Grid([0.1, 0.2, 0.3], -8, 7)
    with pytest.raises(ValueError, match="3 entries but W has 2 rows"):
        grid_neighbours(np.ones((2, 4)), g)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(bad):
    W = np.ones((2, 3))
    W[1, 2] = bad
    with pytest.raises(ValueError, match="W must be finite"):
        fit_grid(W)
    with pytest.raises(ValueError, match="W must be finite"):
        round_nearest(W, Grid(0.1, -8, 7))


def test_minmax_symmetric_scale_maps_the_largest_weight_to_qmax():
    W = np.array([[0.5, -1.4, 0.7], [0.1, 0.2, -0.05]])
    g = fit_grid(W, bits=4, method="minmax")
    np.testing.assert_allclose(g.scale, [1.4 / 7, 0.2 / 7])
    g_t = fit_grid(W, bits=4, method="minmax", per_row=False)
    np.testing.assert_allclose(g_t.scale, [1.4 / 7])


def _brute_force_mse_grid(W, bits, symmetric):
    """The "mse" search written from its definition: the min-max range times alpha in
    {1, ..., 100}/100, round to nearest (half up, clipped), keep the least squared error."""
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        s0, z = np.abs(W).max() / qmax, 0.0
    else:
        qmin, qmax = 0, 2**bits - 1
        lo, hi = min(W.min(), 0.0), max(W.max(), 0.0)
        s0 = (hi - lo) / (qmax - qmin)
        z = np.clip(np.round(qmin - lo / s0), qmin, qmax)
    errs = []
    for j in range(1, 101):
        s = j / 100 * s0
        q = np.clip(np.floor(W / s + 0.5) + z, qmin, qmax)
        errs.append(float(((W - s * (q - z)) ** 2).sum()))
    return s0, min(errs)


@given(small_layers(allow_clipping=False), st.sampled_from([2, 3, 4]))
def test_mse_scale_is_the_best_of_the_searched_scales(layer, bits):
    W, _, grid = layer
    symmetric = grid.zero_point.max() == 0 and grid.qmin < 0
    for per_row in (True, False):
        g = fit_grid(W, bits=bits, per_row=per_row, symmetric=symmetric)
        parts = [W[k:k + 1] for k in range(W.shape[0])] if per_row else [W]
        for k, part in enumerate(parts):
            s0, best = _brute_force_mse_grid(part, bits, symmetric)
            alpha = g.scale[k] / s0
            assert abs(alpha * 100 - round(alpha * 100)) <= 1e-9 and 1 <= round(alpha * 100) <= 100
            gk = Grid(g.scale[k], g.qmin, g.qmax, g.zero_point[k])
            err = float(((part - dequantize(round_nearest(part, gk), gk)) ** 2).sum())
            assert err <= best * (1 + 1e-9) + 1e-15 * float((part**2).sum())  # rounding of W / s


def test_asymmetric_grid_has_integral_zero_point_in_range():
    rng = np.random.default_rng(3)
    W = rng.normal(size=(5, 9)) + 0.3
    g = fit_grid(W, bits=3, symmetric=False)
    assert g.qmin == 0 and g.qmax == 7
    assert np.all(g.zero_point == np.round(g.zero_point))
    assert np.all((g.zero_point >= 0) & (g.zero_point <= 7))


def test_zero_rows_get_unit_scale_and_are_exact():
    W = np.zeros((2, 4))
    W[1] = [0.3, -0.2, 0.1, 0.0]
    g = fit_grid(W, bits=4)
    assert g.scale[0] == 1.0
    assert np.all(dequantize(round_nearest(W, g), g)[0] == 0)


@given(st.one_of(small_layers(), grid_layers()))
def test_grid_neighbours_bracket_the_weight(layer):
    W, _, grid = layer
    nb = grid_neighbours(W, grid)
    s, z = grid.per_row(W.shape[0])
    x = W / s + z
    assert np.all((nb.movable == 0) | (nb.movable == 1))
    assert np.all((nb.lo >= grid.qmin) & (nb.hi <= grid.qmax))
    inside = (x >= grid.qmin) & (x < grid.qmax)
    assert np.all(nb.lo[inside] <= x[inside] + 1e-9) and np.all(x[inside] <= nb.hi[inside] + 1e-9)
    assert np.all(nb.movable[inside] == 1)
    assert np.all((nb.residual >= 0) & (nb.residual < 1))


@given(st.one_of(small_layers(), grid_layers()))
def test_nearest_is_clipped_round_half_up_and_never_worse_than_floor_or_ceil(layer):
    W, _, grid = layer
    s, z = grid.per_row(W.shape[0])
    expected = np.clip(np.floor(W / s + 0.5) + z, grid.qmin, grid.qmax)
    q_near = round_nearest(W, grid)
    np.testing.assert_array_equal(q_near, expected)
    err = lambda q: np.abs(W - dequantize(q, grid))  # noqa: E731
    assert np.all(err(q_near) <= err(round_floor(W, grid)) + 1e-12)
    assert np.all(err(q_near) <= err(round_ceil(W, grid)) + 1e-12)


def test_ceil_keeps_weights_already_on_the_grid():
    g = Grid(0.5, -8, 7)
    W = np.array([[1.0, 1.2, -0.5, -0.7]])
    np.testing.assert_array_equal(round_ceil(W, g), [[2, 3, -1, -1]])
    np.testing.assert_array_equal(round_floor(W, g), [[2, 2, -1, -2]])


def test_stochastic_rounding_is_seeded_and_unbiased():
    rng = np.random.default_rng(0)
    W = rng.uniform(-1, 1, size=(1, 20000))
    g = Grid(0.25, -8, 7)
    a = round_stochastic(W, g, seed=5)
    np.testing.assert_array_equal(a, round_stochastic(W, g, seed=5))
    assert not np.array_equal(a, round_stochastic(W, g, seed=6))
    bias = (dequantize(a, g) - W).mean()
    assert abs(bias) < 0.01  # mean rounding error of unbiased rounding: ~ 0.25 * 0.29 / sqrt(20000)
    assert abs((dequantize(round_floor(W, g), g) - W).mean()) > 0.1


@given(st.integers(2, 8), st.booleans())
def test_dequantize_inverts_the_grid(bits, symmetric):
    rng = np.random.default_rng(bits)
    W = rng.normal(size=(3, 5))
    g = fit_grid(W, bits=bits, symmetric=symmetric)
    q = round_nearest(W, g)
    s, z = g.per_row(3)
    np.testing.assert_allclose(dequantize(q, g), s * (q - z))
    with pytest.raises(ValueError, match="q must lie in"):
        dequantize(q * 0 + g.qmax + 1, g)


def test_residual_stays_below_one_for_weights_just_below_a_grid_point():
    W = np.array([[-1e-100, -1e-17, 2.0 - 1e-16, 0.5]])
    g = Grid(1.0, -8, 7)
    nb = grid_neighbours(W, g)
    assert np.all((nb.residual >= 0) & (nb.residual < 1))
    np.testing.assert_array_equal(nb.lo, [[0, 0, 2, 0]])
    np.testing.assert_array_equal(round_nearest(W, g), [[0, 0, 2, 1]])
