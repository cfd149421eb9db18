r"""Gabor fits of receptive fields and Ringach's (2002) ``(n_x, n_y)`` classification.

Each atom (a ``size x size`` receptive field) is fitted by least squares with

.. math::

    g(x, y) = A \exp\left(-\frac{x'^2}{2\sigma_x^2} - \frac{y'^2}{2\sigma_y^2}\right)
              \cos(2\pi f x' + \phi),\quad
    x' = (x - x_0)\cos\theta + (y - y_0)\sin\theta,\;
    y' = -(x - x_0)\sin\theta + (y - y_0)\cos\theta,

``x`` the column and ``y`` the row index from the patch centre (the convention of
:mod:`reference.gratings`: ``theta`` is the direction of the wave vector). Ringach (2002,
"Spatial structure and symmetry of simple-cell receptive fields in macaque primary visual
cortex", J Neurophysiol 88:455-463) summarises a fit by ``n_x = sigma_x f`` (envelope width
across the stripes, in periods) and ``n_y = sigma_y f`` (along them): macaque simple cells lie
mostly at ``n_x, n_y < 1``, with many blob-like fields (``n_x < 0.5``: one or two subregions)
and few with several subregions, while classical sparse coding gives fields with larger
``n_x`` (more subregions). The number of *subregions* is counted on the fitted profile across
the stripes through the centre, ``exp(-x^2 / 2 sigma_x^2) cos(2 pi f x + phi)``: its local
extrema whose magnitude is at least 20 % of the largest.

The fit (batched Levenberg-Marquardt with an analytic Jacobian, all atoms at once) starts from
the atom's Fourier peak (``f``, ``theta``), the centroid of its energy (``x_0, y_0``),
``sigma = 2`` pixels and the best of two starting phases; ``r2`` (explained variance) tells
how Gabor-like the atom is.
"""

from __future__ import annotations

import numpy as np

from .validation import as_float_array, check_positive_int

__all__ = ["GABOR_PARAMS", "count_subregions", "fit_gabor", "fit_gabors", "gabor"]

GABOR_PARAMS = ("amplitude", "x0", "y0", "theta", "freq", "sigma_x", "sigma_y", "phase")


def _coords(size):
    c = np.arange(size) - (size - 1) / 2.0
    y, x = np.meshgrid(c, c, indexing="ij")
    return x.ravel(), y.ravel()


def gabor(size: int, params) -> np.ndarray:
    """The Gabor of the module docstring on a ``size x size`` grid, flattened row-major.

    ``params`` maps every name of :data:`GABOR_PARAMS` (``amplitude, x0, y0, theta, freq,
    sigma_x, sigma_y, phase``) to its value, e.g. the result of :func:`fit_gabor`.
    """
    size = check_positive_int(size, "size")
    missing = [k for k in GABOR_PARAMS if k not in params]
    if missing:
        raise ValueError(f"params must give every one of {list(GABOR_PARAMS)}, missing {missing}")
    x, y = _coords(size)
    return _gabor(x, y, tuple(params[k] for k in GABOR_PARAMS))


def _gabor(x, y, p):
    a, x0, y0, th, f, sx, sy, ph = p
    xr = (x - x0) * np.cos(th) + (y - y0) * np.sin(th)
    yr = -(x - x0) * np.sin(th) + (y - y0) * np.cos(th)
    return a * np.exp(-0.5 * (xr / sx) ** 2 - 0.5 * (yr / sy) ** 2) * np.cos(2 * np.pi * f * xr + ph)


def count_subregions(freq: float, sigma_x: float, phase: float, rel: float = 0.2) -> int:
    """Local extrema of ``exp(-x^2/2 sigma_x^2) cos(2 pi f x + phase)`` of at least ``rel`` x the largest."""
    half = 6 * sigma_x + 1.0 / max(freq, 1e-9)
    x = np.linspace(-half, half, 4001)
    prof = np.exp(-0.5 * (x / sigma_x) ** 2) * np.cos(2 * np.pi * freq * x + phase)
    d = np.diff(prof)
    ext = np.flatnonzero(np.sign(d[1:]) != np.sign(d[:-1])) + 1
    if ext.size == 0:
        return 1
    mag = np.abs(prof[ext])
    return int(np.count_nonzero(mag >= rel * mag.max()))


def _initial(atom, size):
    img = atom.reshape(size, size)
    F = np.abs(np.fft.fft2(img))
    F[0, 0] = 0
    fy = np.fft.fftfreq(size)[:, None] * np.ones((1, size))
    fx = np.fft.fftfreq(size)[None, :] * np.ones((size, 1))
    i = int(np.argmax(F))
    f = max(float(np.hypot(fx.ravel()[i], fy.ravel()[i])), 1.0 / size)
    th = float(np.arctan2(fy.ravel()[i], fx.ravel()[i])) % np.pi
    e = img * img
    w = e / e.sum()
    x, y = _coords(size)
    return f, th, float(w.ravel() @ x), float(w.ravel() @ y)


def _jacobian(x, y, P):
    """Residual model ``g`` (M, n) and its Jacobian (M, n, 8) for parameter rows ``P`` (M, 8)."""
    a, x0, y0, th, f, sx, sy, ph = (P[:, i:i + 1] for i in range(8))
    c, s = np.cos(th), np.sin(th)
    dx, dy = x[None, :] - x0, y[None, :] - y0
    xr, yr = dx * c + dy * s, -dx * s + dy * c
    E = np.exp(-0.5 * (xr / sx) ** 2 - 0.5 * (yr / sy) ** 2)
    arg = 2 * np.pi * f * xr + ph
    C, S = np.cos(arg), np.sin(arg)
    g = a * E * C
    g_xr = a * E * (-xr / sx ** 2 * C - 2 * np.pi * f * S)
    g_yr = -a * E * C * yr / sy ** 2
    J = np.stack([E * C, -g_xr * c + g_yr * s, -g_xr * s - g_yr * c, g_xr * yr - g_yr * xr,
                  -a * E * S * 2 * np.pi * xr, g * xr ** 2 / sx ** 3, g * yr ** 2 / sy ** 3, -a * E * S], axis=2)
    return g, J


def _levenberg_marquardt(x, y, T, P, lo, hi, iters):
    """Batched Levenberg-Marquardt with box bounds (a step is clipped into them), one problem a row."""
    mu = np.full(P.shape[0], 1e-2)
    g, J = _jacobian(x, y, P)
    R = g - T
    cost = 0.5 * np.einsum("ij,ij->i", R, R)
    eye = np.eye(P.shape[1])
    for _ in range(iters):
        Jt = J.transpose(0, 2, 1)
        JtJ = Jt @ J
        Jtr = (Jt @ R[:, :, None])[:, :, 0]
        A = JtJ + mu[:, None, None] * (eye * np.maximum(np.diagonal(JtJ, axis1=1, axis2=2), 1e-12)[:, None, :])
        step = -np.linalg.solve(A, Jtr[:, :, None])[:, :, 0]
        Pn = np.clip(P + step, lo, hi)
        gn, Jn = _jacobian(x, y, Pn)
        Rn = gn - T
        cn = 0.5 * np.einsum("ij,ij->i", Rn, Rn)
        ok = cn < cost
        P[ok], R[ok], J[ok], cost[ok] = Pn[ok], Rn[ok], Jn[ok], cn[ok]
        mu = np.where(ok, mu / 3, mu * 4)
        if np.all(mu > 1e8):
            break
    return P, cost


#: Starting phases of the fit (the amplitude is kept positive, so the phase does the sign).
_PHASES = (0.0, np.pi / 2)


def fit_gabors(Phi, size: int | None = None, iters: int = 60) -> dict:
    """Least-squares Gabor fit of every column of ``Phi``: a dict of arrays of length K.

    Keys: the parameters of :data:`GABOR_PARAMS` (``amplitude`` in the atom's units), ``r2``
    (variance explained), ``nx``, ``ny``, ``subregions``. Conventions (made unique):
    ``amplitude > 0``, ``theta`` in ``[0, pi)``, ``phase`` in ``(-pi, pi]``. Batched
    Levenberg-Marquardt on all atoms at once from two starting phases; the best is kept.
    """
    Phi = as_float_array(Phi, "Phi", ndim=2)
    n, K = Phi.shape
    size = int(round(np.sqrt(n))) if size is None else check_positive_int(size, "size")
    if size * size != n:
        raise ValueError(f"size must satisfy size^2 == atom length {n}, found {size}")
    scale = np.max(np.abs(Phi), axis=0)
    if np.any(scale == 0):
        raise ValueError("Phi must not have an all-zero atom")
    T = (Phi / scale).T
    x, y = _coords(size)
    half = (size - 1) / 2.0
    lo = np.array([0.0, -half - 2, -half - 2, -np.inf, 0.5 / size, 0.5, 0.5, -np.inf])
    hi = np.array([np.inf, half + 2, half + 2, np.inf, 0.5, 2.0 * size, 2.0 * size, np.inf])
    init = np.array([_initial(T[k], size) for k in range(K)])  # f, theta, x0, y0
    starts = []
    for ph in _PHASES:
        starts.append(np.column_stack([np.ones(K), init[:, 2], init[:, 3], init[:, 1], init[:, 0],
                                       np.full(K, 2.0), np.full(K, 2.0), np.full(K, ph)]))
    P, cost = _levenberg_marquardt(x, y, np.tile(T, (len(_PHASES), 1)), np.vstack(starts), lo, hi, iters)
    m = len(_PHASES)
    best = np.argmin(cost.reshape(m, K), axis=0)
    P = P.reshape(m, K, 8)[best, np.arange(K)]
    cost = cost.reshape(m, K)[best, np.arange(K)]
    a, x0, y0, th, f, sx, sy, ph = P.T.copy()
    turns = np.floor(th / np.pi)  # theta in [0, pi): a turn by pi flips x', i.e. the phase's sign
    th -= turns * np.pi
    ph = np.where(turns.astype(np.int64) % 2 == 1, -ph, ph)
    ph = np.angle(np.exp(1j * ph))
    sst = np.sum((T - T.mean(axis=1, keepdims=True)) ** 2, axis=1)
    r2 = np.where(sst > 0, 1.0 - 2.0 * cost / np.where(sst > 0, sst, 1.0), np.nan)
    sub = np.array([count_subregions(f[k], sx[k], ph[k]) for k in range(K)])
    return {"amplitude": a * scale, "x0": x0, "y0": y0, "theta": th, "freq": f, "sigma_x": sx, "sigma_y": sy,
            "phase": ph, "r2": r2, "nx": sx * f, "ny": sy * f, "subregions": sub}


def fit_gabor(atom, size: int | None = None) -> dict:
    """:func:`fit_gabors` of one atom (length ``size^2``): a dict of numbers."""
    atom = as_float_array(atom, "atom", ndim=1)
    out = fit_gabors(atom[:, None], size)
    return {k: (int(v[0]) if k == "subregions" else float(v[0])) for k, v in out.items()}
