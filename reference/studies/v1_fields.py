"""The V1 study's claims 2 and 3 on one dictionary: orientation tuning to drifting gratings, from
the sparse codes (the model's own, competitive responses) and from the atoms as linear filters
(:mod:`reference.gratings`), and the receptive fields' shapes by Gabor fits
(:mod:`reference.gabor`). Used by :mod:`reference.studies.sparse_v1`.
"""

from __future__ import annotations

import numpy as np

from solvers.sparse import code

from ..gabor import fit_gabors
from ..gratings import linear_responses, tuning
from ..validation import as_float_array

__all__ = ["FREQS", "THETAS", "code_responses", "shape_row", "tuning_rows"]

#: Grating orientations (16, the orthogonal one on the grid) and frequencies (cycles per pixel).
THETAS = np.pi * np.arange(16) / 16
FREQS = np.array([0.04, 0.06, 0.09, 0.125, 0.18, 0.25, 0.35])


def code_responses(Phi, stimuli, penalty: str, lam: float, **options) -> np.ndarray:
    """``R[k, i, j] = mean_p |a_k|``, the sparse code of each frame (FISTA unless ``method`` is given)."""
    Phi = as_float_array(Phi, "Phi", ndim=2)
    S = as_float_array(stimuli, "stimuli", ndim=4)
    nt, nf, npz, n = S.shape
    method = options.pop("method", "fista")
    A = code(Phi, S.reshape(-1, n), penalty, lam, method, **options).x
    return np.abs(A).reshape(nt, nf, npz, -1).mean(axis=2).transpose(2, 0, 1)


def tuning_rows(Phi, pen, K, stim, fista, lam) -> dict:
    """Claim 2: the tuning of every unit to the gratings ``stim`` (:func:`reference.gratings.tuning`),
    from its sparse codes at ``lam`` (``fista`` options) and as a linear filter, with one summary
    row (table ``tuning``) for each."""
    out = {}
    for kind, R in (("code", code_responses(Phi, stim, pen, lam, **fista)),
                    ("linear", linear_responses(Phi, stim))):
        tu = tuning(R, THETAS, FREQS)
        live = np.isfinite(tu["osi"])
        out[kind] = tu
        out[kind + "_row"] = {"table": "tuning", "penalty": pen, "K": K, "responses": kind,
                              "frac_oriented": float(np.mean(tu["oriented"])),
                              "frac_silent": float(np.mean(~live)),
                              "median_osi": float(np.median(tu["osi"][live])) if live.any() else float("nan"),
                              "median_1_cv": float(np.median(tu["one_minus_cv"][live])) if live.any() else float("nan"),
                              "median_pref_freq": float(np.median(tu["pref_freq"][live])) if live.any() else float("nan")}
    return out


def shape_row(Phi, pen, K, learn_l0) -> tuple[dict, dict]:
    """Claim 3: Gabor fits of every atom (:func:`reference.gabor.fit_gabors`) and their summary row
    (table ``shape``: Gabor-like fraction ``r2 >= 0.5``, Ringach's ``n_x, n_y``, subregions)."""
    F = fit_gabors(Phi)
    good = F["r2"] >= 0.5
    g = {k: v[good] for k, v in F.items()}
    med = (lambda v: float(np.median(v)) if v.size else float("nan"))
    frac = (lambda m: float(np.mean(m)) if m.size else float("nan"))
    row = {"table": "shape", "penalty": pen, "K": K, "learn_l0": learn_l0, "frac_gabor": float(np.mean(good)),
           "median_r2": med(F["r2"]), "median_nx": med(g["nx"]), "median_ny": med(g["ny"]),
           "frac_blob": frac((g["nx"] < 0.5) & (g["ny"] < 0.5)), "frac_3plus_subregions": frac(g["subregions"] >= 3),
           "median_freq": med(g["freq"])}
    return row, F
