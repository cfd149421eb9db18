r"""Drifting sinusoidal gratings and the orientation tuning of sparse-coding units.

A grating of orientation ``theta`` (the direction of its wave vector, in ``[0, pi)``; its
stripes run at ``theta + 90`` degrees), spatial frequency ``f`` (cycles per pixel) and phase
``phi`` on a ``size x size`` patch is

.. math:: g(x, y) = c \cos(2 \pi f (x \cos\theta + y \sin\theta) + \phi),

with ``x`` the column and ``y`` the row index, measured from the patch centre; a *drifting*
grating is the sequence of its phases ``phi = 2 pi p / P``, ``p = 0 .. P-1``. Each stimulus has
its mean removed and ``c`` sets its pixel variance (0.1 by default: that of the whitened
training patches, :mod:`reference.patches`).

A unit's response to a drifting grating is the mean over the phases of ``|a_k|``, its
coefficient in the sparse code of each frame (the model's own, competitive responses:
:func:`reference.studies.v1_fields.code_responses`, which runs a sparse coder), or of
``|phi_k^T g|`` for the atom as a linear filter (:func:`linear_responses`). From the
responses ``R(theta, f)``:

* preferred orientation and frequency: the argmax of ``R``;
* ``OSI = (R(theta_p) - R(theta_p + 90)) / (R(theta_p) + R(theta_p + 90))`` at the preferred
  frequency (the index used for V1 neurons, e.g. Niell and Stryker 2008), 0 for no preference,
  1 for no response at the orthogonal orientation; NaN for a unit that never responds;
* ``1 - CV`` with the circular variance ``CV = 1 - |sum R e^{2 i theta}| / sum R`` (Ringach,
  Shapley and Hawken 2002), over all orientations at the preferred frequency.

A unit counts as *oriented* when ``OSI >= 1/3`` (its preferred orientation drives it at least
twice as much as the orthogonal one).
"""

from __future__ import annotations

import numpy as np

from .validation import as_float_array, check_positive_int

__all__ = ["ORIENTED_OSI", "grating", "grating_set", "linear_responses", "tuning"]

#: OSI at or above which a unit counts as orientation selective (R_pref >= 2 R_orth).
ORIENTED_OSI = 1.0 / 3.0


def grating(size: int, theta: float, freq: float, phase: float = 0.0, variance: float = 0.1) -> np.ndarray:
    """One grating frame, flattened row-major (length ``size^2``), mean removed, pixel variance ``variance``."""
    return grating_set(size, [theta], [freq], 1, variance, phases=[phase])[0, 0, 0]


def grating_set(size: int, thetas, freqs, n_phases: int = 8, variance: float = 0.1, phases=None) -> np.ndarray:
    """Every frame of every drifting grating: shape ``(len(thetas), len(freqs), n_phases, size^2)``.

    ``phases`` (optional) replaces the ``n_phases`` equally spaced phases ``2 pi p / n_phases``.
    """
    size = check_positive_int(size, "size")
    thetas = as_float_array(thetas, "thetas", ndim=1)
    freqs = as_float_array(freqs, "freqs", ndim=1)
    if np.any(freqs <= 0) or np.any(freqs > 0.5):
        raise ValueError(f"freqs must be in (0, 0.5] cycles per pixel, found {freqs.tolist()}")
    if phases is None:
        n_phases = check_positive_int(n_phases, "n_phases")
        phases = 2 * np.pi * np.arange(n_phases) / n_phases
    phases = as_float_array(phases, "phases", ndim=1)
    c = (np.arange(size) - (size - 1) / 2.0)
    y, x = np.meshgrid(c, c, indexing="ij")
    proj = (x.ravel()[None, :] * np.cos(thetas)[:, None] + y.ravel()[None, :] * np.sin(thetas)[:, None])
    arg = 2 * np.pi * freqs[None, :, None, None] * proj[:, None, None, :] + phases[None, None, :, None]
    G = np.cos(arg)
    G -= G.mean(axis=-1, keepdims=True)
    sd = np.sqrt(np.mean(G * G, axis=-1, keepdims=True))
    if np.any(sd == 0):
        raise ValueError("a grating is constant on the patch (frequency too low for the size and phase)")
    return G * (np.sqrt(variance) / sd)


def linear_responses(Phi, stimuli) -> np.ndarray:
    """``R[k, i, j] = mean_p |phi_k^T g_{ijp}|``: the atoms as linear filters, shape (K, n_theta, n_freq)."""
    Phi = as_float_array(Phi, "Phi", ndim=2)
    S = as_float_array(stimuli, "stimuli", ndim=4)
    return np.abs(np.einsum("ijpn,nk->kijp", S, Phi)).mean(axis=-1)


def tuning(R, thetas, freqs) -> dict:
    """Preferred orientation and frequency, OSI and ``1 - CV`` of every unit from ``R`` (K, n_theta, n_freq).

    ``thetas`` must be equally spaced on ``[0, pi)`` with an even count (so that the orthogonal
    orientation is on the grid). Returns arrays of length K: ``pref_theta``, ``pref_freq``,
    ``osi``, ``one_minus_cv``, ``peak`` (the largest response), ``oriented`` (``OSI >= 1/3``).
    """
    R = as_float_array(R, "R", ndim=3)
    thetas = as_float_array(thetas, "thetas", ndim=1)
    freqs = as_float_array(freqs, "freqs", ndim=1)
    K, nt, nf = R.shape
    if (nt, nf) != (thetas.size, freqs.size):
        raise ValueError(f"R must have shape (K, {thetas.size}, {freqs.size}), found {R.shape}")
    if nt % 2 or not np.allclose(thetas, np.pi * np.arange(nt) / nt):
        raise ValueError("thetas must be pi * arange(m) / m for an even m (the orthogonal orientation on the grid)")
    flat = R.reshape(K, -1).argmax(axis=1)
    it, jf = np.unravel_index(flat, (nt, nf))
    ks = np.arange(K)
    peak = R[ks, it, jf]
    orth = R[ks, (it + nt // 2) % nt, jf]
    curve = R[ks, :, jf]  # (K, nt): tuning curve at the preferred frequency
    total = curve.sum(axis=1)
    silent = peak <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        osi = np.where(silent, np.nan, (peak - orth) / (peak + orth))
        res = np.abs(curve @ np.exp(2j * thetas))
        one_minus_cv = np.where(silent, np.nan, res / total)
    return {"pref_theta": thetas[it], "pref_freq": freqs[jf], "osi": osi, "one_minus_cv": one_minus_cv,
            "peak": peak, "oriented": np.nan_to_num(osi, nan=0.0) >= ORIENTED_OSI, "curve": curve}
