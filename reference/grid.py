"""Uniform quantization grids and the rounding baselines (docs/math.md, "Eq. 1: the grid and round-to-nearest").

A grid maps integers ``q`` in ``[qmin, qmax]`` to weights ``W_hat = s (q - z)`` with a scale
``s > 0`` and an integer zero point ``z``, either one pair for the whole tensor or one per
output row. The paper (Nagel et al. 2020, Eq. 1) writes the rounding problem on this grid:

.. math:: \\hat W = s \\cdot \\mathrm{clip}(\\lfloor W / s \\rceil + z, q_{min}, q_{max}) - s z .

Rounding never changes the grid: every method here and in :mod:`solvers` chooses, per weight,
between the two neighbours ``lo`` and ``hi`` returned by :func:`grid_neighbours`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import as_float_array, as_int_scalar, check_bits, check_positive_int, describe

__all__ = [
    "Grid",
    "GridNeighbours",
    "symmetric_range",
    "asymmetric_range",
    "fit_grid",
    "grid_neighbours",
    "dequantize",
    "round_nearest",
    "round_floor",
    "round_ceil",
    "round_stochastic",
]


def symmetric_range(bits) -> tuple[int, int]:
    """Signed ``bits``-bit integer range ``[-2^(b-1), 2^(b-1) - 1]``."""
    b = check_bits(bits)
    return -(2 ** (b - 1)), 2 ** (b - 1) - 1


def asymmetric_range(bits) -> tuple[int, int]:
    """Unsigned ``bits``-bit integer range ``[0, 2^b - 1]`` (used with a zero point)."""
    b = check_bits(bits)
    return 0, 2**b - 1


@dataclass(frozen=True, eq=False)
class Grid:
    """A uniform grid: ``W_hat = scale * (q - zero_point)``, ``q`` integer in ``[qmin, qmax]``.

    Parameters
    ----------
    scale : float or array of shape (n_rows,)
        Step ``s > 0``; a scalar is one step for the whole tensor. ``s = 0`` is accepted for a row
        whose weights are all zero (a dead channel, e.g. after folding BatchNorm): every weight of
        that row is then fixed at ``W_hat = 0``, exactly, with no variable and loss 0; a zero
        scale on a row with a nonzero weight is refused where the grid meets ``W``
        (:func:`grid_neighbours`, every problem).
    qmin, qmax : int
        Integer bounds, ``qmin <= qmax``.
    zero_point : int or array of shape (n_rows,), default=0
        Integer offset ``z`` in ``[qmin, qmax]`` (0 for a symmetric grid; ``qmin = 0`` grids
        usually need one).

    ``scale`` and ``zero_point`` are stored as float64 vectors of length 1 (per tensor) or
    ``n_rows`` (per output row).
    """

    scale: np.ndarray
    qmin: int
    qmax: int
    zero_point: np.ndarray

    def __init__(self, scale, qmin, qmax, zero_point=0):
        s = as_float_array(scale, "scale")
        if s.ndim > 1:
            raise ValueError(f"scale must be a scalar or 1-D (one per output row), found shape {s.shape}")
        s = s.reshape(-1)
        if s.size == 0:
            raise ValueError("scale must not be empty")
        if np.any(s < 0):
            raise ValueError(f"scale must be > 0 (or 0 for a row whose weights are all zero), "
                             f"found min(scale) == {s.min()!r}")
        lo = as_int_scalar(qmin, "qmin")
        hi = as_int_scalar(qmax, "qmax")
        for name, v in (("qmin", lo), ("qmax", hi)):
            if abs(v) > 2**53:  # the integer weights are computed in float64: exact up to 2^53
                raise ValueError(f"{name} must lie in [-2^53, 2^53] (integers float64 holds exactly), "
                                 f"found {describe(v)}")
        if lo > hi:
            raise ValueError(f"qmin must be <= qmax, found qmin == {lo} > qmax == {hi}")
        z = as_float_array(zero_point, "zero_point")
        if z.ndim > 1:
            raise ValueError(f"zero_point must be a scalar or 1-D, found shape {z.shape}")
        z = z.reshape(-1)
        if not np.all(z == np.round(z)):
            raise ValueError("zero_point must hold integers, found non-integral values")
        if np.any(z < lo) or np.any(z > hi):
            raise ValueError(f"zero_point must lie in [qmin, qmax] == [{lo}, {hi}], found {z.min()}..{z.max()}")
        if z.size != 1 and s.size != 1 and z.size != s.size:
            raise ValueError(
                f"zero_point has {z.size} entries but scale has {s.size}; give one per row for both, or scalars"
            )
        s.setflags(write=False)
        z.setflags(write=False)
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "qmin", lo)
        object.__setattr__(self, "qmax", hi)
        object.__setattr__(self, "zero_point", z)

    def per_row(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as column vectors of shape (n_rows, 1) for a tensor of ``n_rows`` rows."""
        for name, arr in (("scale", self.scale), ("zero_point", self.zero_point)):
            if arr.size not in (1, n_rows):
                raise ValueError(
                    f"grid {name} has {arr.size} entries but W has {n_rows} rows; give a scalar or one per row"
                )
        s = np.broadcast_to(self.scale, (n_rows,)).reshape(n_rows, 1)
        z = np.broadcast_to(self.zero_point, (n_rows,)).reshape(n_rows, 1)
        return s, z

    def __repr__(self) -> str:
        def fmt(a):
            return f"{a[0]:.6g}" if a.size == 1 else f"<{a.size} per-row values>"

        return (
            f"Grid(scale={fmt(self.scale)}, qmin={self.qmin}, qmax={self.qmax}, "
            f"zero_point={fmt(self.zero_point)})"
        )


@dataclass(frozen=True)
class GridNeighbours:
    """The two grid neighbours ``{floor, floor + 1}`` of each weight (Eq. 22; docs/math.md,
    "The up/down variables"): a weight exactly on the grid may still move up a step.

    ``floor = floor(W/s) + z``; ``lo = clip(floor, qmin, qmax)``; ``hi = clip(floor + 1, qmin, qmax)``;
    ``movable = hi - lo`` in {0, 1} (0 where the weight is clipped and its choice is fixed);
    ``residual = W/s - floor(W/s)`` in [0, 1). All arrays have the shape of ``W``.
    """

    floor: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    movable: np.ndarray
    residual: np.ndarray


def _as_weights(W) -> np.ndarray:
    return as_float_array(W, "W", ndim=2)


def _zero_scale_rows(W: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The rows whose scale is 0 (shape (out,)); refuses one holding a nonzero weight, naming it."""
    dead = s[:, 0] == 0
    bad = dead & np.any(W != 0, axis=1)
    if np.any(bad):
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"grid scale is 0 for row {k} (output channel {k}), but its weights are not all zero "
                         f"(max |w| == {float(np.max(np.abs(W[k]))):.6g}); a scale of 0 represents only an all-zero "
                         f"row: give row {k} a positive scale (e.g. reference.fit_grid, or bits instead of a grid)")
    return dead


def _grid_neighbours(W: np.ndarray, grid: Grid) -> GridNeighbours:
    s, z = grid.per_row(W.shape[0])
    dead = _zero_scale_rows(W, s)
    if np.any(dead):  # an all-zero row on a zero scale: W/s is 0, and the row has no variable
        s = np.where(dead[:, None], 1.0, s)
    x = W / s
    fl = np.floor(x)
    r = x - fl
    # x just below an integer can give r == 1.0 in floating point (x = -1e-100: floor -1, r = 1):
    # such an x is that integer to machine precision, so take it as on the grid (r = 0).
    up = r >= 1.0
    fl = np.where(up, fl + 1.0, fl)
    r = np.where(up, 0.0, r)
    f = fl + z
    lo = np.clip(f, grid.qmin, grid.qmax)
    hi = np.clip(f + 1.0, grid.qmin, grid.qmax)
    hi = np.where(dead[:, None], lo, hi)
    return GridNeighbours(floor=f, lo=lo, hi=hi, movable=hi - lo, residual=r)


def grid_neighbours(W, grid: Grid) -> GridNeighbours:
    """Neighbours ``lo``/``hi`` (``{floor, floor + 1}``, Eq. 22, clipped to the grid), fixed mask
    and residual of every weight of ``W`` (out, in)."""
    return _grid_neighbours(_as_weights(W), _check_grid(grid))


def _check_grid(grid) -> Grid:
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
    return grid


def dequantize(q, grid: Grid) -> np.ndarray:
    """``W_hat = s (q - z)`` for integer weights ``q`` of shape (out, in) (Eq. 1)."""
    q = as_float_array(q, "q", ndim=2)
    grid = _check_grid(grid)
    if not np.all(q == np.round(q)):
        raise ValueError("q must hold integers, found non-integral values")
    if np.any(q < grid.qmin) or np.any(q > grid.qmax):
        raise ValueError(f"q must lie in [qmin, qmax] == [{grid.qmin}, {grid.qmax}]")
    s, z = grid.per_row(q.shape[0])
    return s * (q - z)


def _from_neighbours(nb: GridNeighbours, up: np.ndarray) -> np.ndarray:
    return (nb.lo + nb.movable * up).astype(np.int64)


def round_nearest(W, grid: Grid) -> np.ndarray:
    """Round-to-nearest integers, ties up: ``clip(floor(W/s + 1/2) + z, qmin, qmax)``.

    Equals choosing ``hi`` where the residual is >= 1/2. Note that PyTorch's ``torch.round``
    breaks exact ties to even; ties have measure zero for real weights.
    """
    nb = grid_neighbours(W, grid)
    return _from_neighbours(nb, nb.residual >= 0.5)


def round_floor(W, grid: Grid) -> np.ndarray:
    """Always round down: ``clip(floor(W/s) + z, qmin, qmax)``."""
    nb = grid_neighbours(W, grid)
    return nb.lo.astype(np.int64)


def round_ceil(W, grid: Grid) -> np.ndarray:
    """Always round up: ``clip(ceil(W/s) + z, qmin, qmax)`` (a weight on the grid stays)."""
    nb = grid_neighbours(W, grid)
    return _from_neighbours(nb, nb.residual > 0)


def round_stochastic(W, grid: Grid, seed=None) -> np.ndarray:
    """Round up with probability equal to the residual (unbiased stochastic rounding).

    ``seed`` is passed to :func:`numpy.random.default_rng`; the same seed gives the same result.
    """
    nb = grid_neighbours(W, grid)
    rng = np.random.default_rng(seed)
    return _from_neighbours(nb, rng.random(nb.residual.shape) < nb.residual)


def _nearest_error(W: np.ndarray, s: np.ndarray, z: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    q = np.clip(np.floor(W / s + 0.5) + z, qmin, qmax)
    return ((W - s * (q - z)) ** 2).sum(axis=1)


def fit_grid(W, bits=4, symmetric: bool = True, per_row: bool = True, method: str = "mse",
             n_candidates: int = 100) -> Grid:
    """Choose a grid for ``W`` (out, in).

    Parameters
    ----------
    W : array of shape (out, in)
        At least one row and one column.
    bits : int, default=4
        From 2 to 16.
    symmetric : bool, default=True
        Signed range ``[-2^(b-1), 2^(b-1)-1]`` with zero point 0; otherwise unsigned
        ``[0, 2^b - 1]`` with an integer zero point.
    per_row : bool, default=True
        One scale (and zero point) per output row, else one for the tensor.
    method : {"mse", "minmax"}, default="mse"
        ``"minmax"``: symmetric ``s = max|w| / qmax``; asymmetric ``s = (max - min) / (qmax - qmin)``
        over the range widened to include 0, ``z = clip(round(qmin - min / s))``.
        ``"mse"`` (the paper's choice): the min-max range shrunk by ``alpha`` in
        ``{1, ..., n_candidates} / n_candidates``, keeping the ``alpha`` that minimises the
        weight error of round-to-nearest ``||W - W_nearest||_F^2`` (per row or for the tensor;
        the smallest such ``alpha`` on ties). The errors are computed on ``W`` divided by its
        range, so they neither underflow nor overflow at any magnitude of ``W``.
    n_candidates : int, default=100

    A row (or tensor) that is entirely zero is represented exactly by any scale; it gets scale 1.
    Weights whose range overflows float64, or so small that a candidate scale would be subnormal
    (below about 1e-304 at 4 bits), are refused.
    """
    W = _as_weights(W)
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"W must have at least one row and one column, found shape {W.shape}")
    bits = check_bits(bits)
    for name, flag in (("symmetric", symmetric), ("per_row", per_row)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, found {flag!r}")
    if not isinstance(method, str) or method not in ("mse", "minmax"):
        raise ValueError(f"method must be one of ['minmax', 'mse'], found {method!r}")
    n_candidates = check_positive_int(n_candidates, "n_candidates")
    qmin, qmax = symmetric_range(bits) if symmetric else asymmetric_range(bits)
    axis = 1 if per_row else None
    if symmetric:
        span = np.max(np.abs(W), axis=axis, keepdims=True)
        wmin = None
    else:
        wmin = np.minimum(np.min(W, axis=axis, keepdims=True), 0.0)
        wmax = np.maximum(np.max(W, axis=axis, keepdims=True), 0.0)
        with np.errstate(over="ignore"):
            span = wmax - wmin
    span = span.reshape(-1, 1)
    if not np.all(np.isfinite(span)):
        raise ValueError("W's range (max - min) overflows float64; rescale W")
    zero = span == 0
    smallest = np.finfo(np.float64).tiny * n_candidates * max(qmax - qmin, 1)
    if np.any(~zero & (span < smallest)):
        raise ValueError(f"W's largest magnitude {float(span[~zero].min()):.3g} (in a row) is below "
                         f"{smallest:.3g}: a grid's scale would be subnormal in float64; rescale W")
    span = np.where(zero, 1.0, span)
    if wmin is not None:
        wmin = np.where(zero, 0.0, wmin.reshape(-1, 1))

    def grid_at(alpha, span, wmin):
        if symmetric:
            s = alpha * span / qmax
            z = np.zeros_like(s)
        else:
            s = alpha * span / (qmax - qmin)
            z = np.clip(np.round(qmin - alpha * wmin / s), qmin, qmax)
        return np.where(zero, 1.0, s), np.where(zero, 0.0 if symmetric else qmin, z)

    if method == "minmax":
        s, z = grid_at(1.0, span, wmin)
    else:
        # Search in units of each row's range (rows / span lie in [-1, 1]); the chosen alpha is then
        # applied to the range itself, exactly as minmax does.
        rows = (W if per_row else W.reshape(1, -1)) / span
        unit = np.ones_like(span)
        wmin_n = None if wmin is None else wmin / span
        best_err = np.full((rows.shape[0],), np.inf)
        alpha = np.ones((rows.shape[0], 1))
        for j in range(1, n_candidates + 1):
            s_j, z_j = grid_at(j / n_candidates, unit, wmin_n)
            err = _nearest_error(rows, s_j, z_j, qmin, qmax)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            alpha[better] = j / n_candidates
        s, z = grid_at(alpha, span, wmin)
    return Grid(s.reshape(-1), qmin, qmax, z.reshape(-1))
