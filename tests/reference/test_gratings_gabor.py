"""Gratings, orientation tuning and Gabor fits, checked against hand computations and known parameters."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.gabor import GABOR_PARAMS, count_subregions, fit_gabor, fit_gabors, gabor
from reference.gratings import ORIENTED_OSI, grating, grating_set, linear_responses, tuning

THETAS = np.pi * np.arange(16) / 16
FREQS = np.array([0.06, 0.09, 0.125, 0.18, 0.25])
STIM = grating_set(32, THETAS, FREQS, 8)  # 32 pixels: the Gabors below fit whole (continuum formulas)


def _params(*values) -> dict:
    """Gabor parameters in the order of GABOR_PARAMS."""
    return dict(zip(GABOR_PARAMS, values))


def test_a_grating_matches_its_formula_pixel_by_pixel():
    size, th, f, ph = 8, 0.3, 0.2, 1.1
    g = grating(size, th, f, ph, variance=0.1)
    img = np.empty((size, size))
    for r in range(size):
        for c in range(size):
            x, y = c - 3.5, r - 3.5
            img[r, c] = np.cos(2 * np.pi * f * (x * np.cos(th) + y * np.sin(th)) + ph)
    img -= img.mean()
    img *= np.sqrt(0.1) / img.std()
    np.testing.assert_allclose(g, img.ravel(), atol=1e-12)


def test_a_linear_response_is_the_mean_absolute_dot_product_over_phases():
    rng = np.random.default_rng(1)
    Phi = rng.normal(size=(64, 3))
    S = grating_set(8, THETAS[:4], FREQS[:2], 4)
    R = linear_responses(Phi, S)
    i, j, k = 2, 1, 0
    want = np.mean([abs(Phi[:, k] @ S[i, j, p]) for p in range(4)])
    assert R[k, i, j] == pytest.approx(want, rel=1e-12)


def test_tuning_of_a_hand_made_curve():
    R = np.zeros((2, 16, 2))
    R[0, :, 1] = 1.0 + np.cos(2 * (THETAS - THETAS[3]))  # peak at index 3, zero at the orthogonal 11
    R[1] = 1.0  # untuned
    tu = tuning(R, THETAS, np.array([0.1, 0.2]))
    assert tu["pref_theta"][0] == THETAS[3] and tu["pref_freq"][0] == 0.2
    assert tu["osi"][0] == pytest.approx(1.0) and tu["one_minus_cv"][0] == pytest.approx(0.5)
    assert tu["osi"][1] == 0.0 and tu["one_minus_cv"][1] == pytest.approx(0.0, abs=1e-12)
    assert list(tu["oriented"]) == [True, False]
    silent = tuning(np.zeros((1, 16, 2)), THETAS, np.array([0.1, 0.2]))
    assert np.isnan(silent["osi"][0]) and not silent["oriented"][0]
    with pytest.raises(ValueError, match="thetas must be pi"):
        tuning(R[:, :15], THETAS[:15], np.array([0.1, 0.2]))


@settings(max_examples=15, deadline=None)
@given(theta=st.sampled_from(list(THETAS)), sigma=st.floats(1.8, 2.5), freq=st.sampled_from([0.125, 0.18]))
def test_a_gabor_atoms_responses_match_its_fourier_transform(theta, sigma, freq):
    # odd Gabor exp(-x'^2/2sx^2 - y'^2/2sy^2) sin(2 pi f x'): its Fourier transform has two
    # Gaussian lobes at +-f along theta, 2 pi sx sy exp(-2 pi^2 (sx^2 u^2 + sy^2 v^2)) each, so a
    # grating of frequency f at theta + d drives it exp(-2 pi^2 f^2 (sx^2 (1 - cos d)^2 +
    # sy^2 sin^2 d)) times as much as at theta (the far lobe neglected; phase-averaged |dot|)
    sy = 1.5 * sigma
    atom = gabor(32, _params(1.0, 0.0, 0.0, theta, freq, sigma, sy, -np.pi / 2))
    R = linear_responses(atom[:, None], STIM)[0]
    i, j = int(np.argmin(np.abs(THETAS - theta))), int(np.flatnonzero(FREQS == freq)[0])
    d = 2 * np.pi / 16
    want = np.exp(-2 * np.pi ** 2 * freq ** 2 * (sigma ** 2 * (1 - np.cos(d)) ** 2 + sy ** 2 * np.sin(d) ** 2))
    assert R[(i + 2) % 16, j] / R[i, j] == pytest.approx(want, rel=0.02)
    tu = tuning(R[None], THETAS, FREQS)
    assert tu["pref_theta"][0] == pytest.approx(theta)
    assert tu["osi"][0] > ORIENTED_OSI
    c = (np.arange(32) - 15.5) ** 2
    iso = np.exp(-c[:, None] / 8 - c[None, :] / 8).ravel()
    tb = tuning(linear_responses((iso - iso.mean())[:, None], STIM), THETAS, FREQS)
    assert tb["osi"][0] < 0.05  # a round blob has no orientation


@settings(max_examples=12, deadline=None)
@given(theta=st.floats(0.05, np.pi - 0.05), freq=st.floats(0.08, 0.2), sx=st.floats(1.8, 3.0),
       aspect=st.floats(1.0, 1.8), phase=st.floats(-3.0, 3.0), x0=st.floats(-1.5, 1.5), y0=st.floats(-1.5, 1.5))
def test_a_gabor_fit_recovers_known_parameters(theta, freq, sx, aspect, phase, x0, y0):
    atom = gabor(16, _params(0.7, x0, y0, theta, freq, sx, sx * aspect, phase))
    f = fit_gabor(atom)
    assert f["r2"] > 0.999
    np.testing.assert_allclose([f["freq"], f["sigma_x"], f["sigma_y"], f["x0"], f["y0"], f["amplitude"]],
                               [freq, sx, sx * aspect, x0, y0, 0.7], rtol=2e-3, atol=2e-3)
    assert abs(np.angle(np.exp(1j * (f["theta"] - theta)))) < 2e-3
    assert abs(np.angle(np.exp(1j * (f["phase"] - phase)))) < 5e-3
    assert f["nx"] == pytest.approx(freq * sx, rel=3e-3)
    # the fit's parameters redraw the atom
    assert np.linalg.norm(gabor(16, f) - atom) <= 0.05 * np.linalg.norm(atom)


def test_a_gabor_needs_every_parameter():
    with pytest.raises(ValueError, match="missing \\['phase'\\]"):
        gabor(8, {k: 1.0 for k in GABOR_PARAMS[:-1]})


def test_subregions_are_counted_on_the_profile_and_fits_batch_as_singles():
    assert count_subregions(0.1, 1.0, 0.0) == 1  # the envelope ends before the next lobe
    assert count_subregions(0.125, 2.5, np.pi / 2) == 2  # odd: two lobes
    assert count_subregions(0.125, 2.5, 0.0) == 3  # even: a centre and two flanks
    assert count_subregions(0.25, 6.0, 0.0) > 5
    rng = np.random.default_rng(0)
    Phi = np.stack([gabor(12, _params(1, 0, 0, 0.4, 0.15, 2.0, 3.0, 0.2)), rng.normal(size=144)], axis=1)
    F = fit_gabors(Phi)
    assert F["r2"][0] > 0.999 and F["r2"][1] < 0.5  # noise is not Gabor-like
    with pytest.raises(ValueError, match="all-zero atom"):
        fit_gabors(np.zeros((16, 1)))
