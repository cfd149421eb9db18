"""Oracle helpers for other projects' tests.

Give a rounding produced elsewhere (a PyTorch AdaRound port, a quantization toolkit) and get its
local loss (Eq. 20), the proven optimum of the same rounding problem, and the gap::

    from reference.testing import assert_rounding_within
    assert_rounding_within(W, grid, X=X, W_hat=my_w_hat, rtol=0.05)   # within 5 % of the optimum

The optimum is over the same choices AdaRound makes: each weight goes to its floor on the grid or
one step above it (Eq. 22; for a weight exactly on a grid point that is not its ceiling), clipped
to the grid (docs/math.md, "The up/down variables"). A rounding that puts a weight anywhere else
is refused with the position named.

Hypothesis strategies for layers, grids and QUBOs are at the bottom (``layers``, ``bqms``,
``psd_bqms``); they need the ``hypothesis`` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers import METHODS, ConvProblem, LayerProblem, SparseProblem, solve
from solvers.certificates import check_bound, gap_interval

from ..grid import Grid, asymmetric_range, fit_grid, symmetric_range
from ..sparse import objective
from ..validation import as_float_array, check_tolerance

__all__ = [
    "RoundingReport",
    "rounding_report",
    "assert_rounding_within",
    "SparseReport",
    "sparse_code_report",
    "assert_sparse_code_within",
    "layers",
    "grids",
    "bqms",
    "psd_bqms",
    "dictionaries",
]

#: Rows up to this many free variables are enumerated; wider rows go to the tree search.
EXHAUSTIVE_UP_TO = 24


@dataclass(frozen=True)
class RoundingReport:
    """What the oracle says about one rounding of a layer.

    ``loss``: local loss (Eq. 20) of the given rounding. ``optimum``: the proven optimal loss over
    up/down roundings (None when the exact method hit its limit). ``lower_bound``: a proven lower
    bound (equals ``optimum`` when proven). ``gap``: ``(loss - optimum) / optimum`` (None without
    an optimum; 0 when both are 0). ``method``: the exact method used. ``x``: the given rounding as
    up/down choices (as a ``Result.x``); ``x_opt``: an optimal one.

    With ``off_grid="nearest"`` (weights handed over off the grid, as AdaRound ports return
    ``s (floor + h)`` with ``h`` not binarised): ``off_grid`` counts the given weights that were
    not on the grid, ``off_grid_max`` is the largest distance to the grid in steps (at most 0.5),
    ``given_loss`` the local loss of the weights as given, and ``loss``/``x`` describe the
    rounding a port deploys, each weight rounded to its nearest grid point.

    Without a proven optimum (a layer too wide for the limit): ``best_known`` is the lowest loss
    known (the exact method's best state or the given rounding), ``lower_bound`` a certified
    bound (at least 0: the local loss is never negative; a bound above the given rounding's loss
    is a :class:`solvers.certificates.CertificateError`), and the gap to the unknown optimum lies
    in ``[gap_low, gap_high]``, its range over every optimum in ``[lower_bound, best_known]``
    (:func:`solvers.certificates.gap_interval`): ``[(loss - best_known) / best_known, (loss -
    lower_bound) / lower_bound]`` (``gap_high`` None unless the bound is positive). With a
    proven optimum both equal ``gap``.
    """

    loss: float
    optimum: float | None
    lower_bound: float | None
    gap: float | None
    method: str
    x: np.ndarray
    x_opt: np.ndarray
    off_grid: int = 0
    off_grid_max: float = 0.0
    given_loss: float | None = None
    best_known: float | None = None
    gap_low: float | None = None
    gap_high: float | None = None

    def __str__(self) -> str:
        opt = "not proven" if self.optimum is None else f"{self.optimum:.9e}"
        gap = "-" if self.gap is None else f"{100 * self.gap:.4f} %"
        lb = "-" if self.lower_bound is None else f"{self.lower_bound:.9e}"
        text = f"loss {self.loss:.9e}, optimum {opt} ({self.method}), gap {gap}, lower bound {lb}"
        if self.optimum is None and self.gap_low is not None:
            high = "-" if self.gap_high is None else f"{100 * self.gap_high:.4f} %"
            text += (f"; best known {self.best_known:.9e}, so the gap to the unknown optimum lies in "
                     f"[{100 * self.gap_low:.4f} %, {high}]")
        if self.off_grid:
            text += (f"; {self.off_grid} of {self.x.size} given weights were off the grid (up to "
                     f"{self.off_grid_max:.3g} of a step), judged as deployed (nearest grid point); the given "
                     f"soft weights' loss is {self.given_loss:.9e}")
        return text


def _problem(W, grid, X, G, conv=None):
    if np.ndim(W) == 4:
        if G is not None or X is None:
            raise ValueError("a convolution (4-D W) needs its inputs X of shape (N, C_in, H, W), not G")
        return ConvProblem(W, grid, X, **(conv or {}))
    if conv:
        raise ValueError(f"conv settings apply to a 4-D W (C_out, C_in/groups, kh, kw), found W of shape {np.shape(W)}")
    return LayerProblem(W, grid, X=X, G=G)


_OFF_GRID = ("refuse", "nearest")


def _up_down(problem, q, W_hat, off_grid: str = "refuse"):
    """The given rounding as up/down choices, with the count and largest distance (in steps) of
    the weights that were off the grid (rounded to nearest when ``off_grid == "nearest"``)."""
    if (q is None) == (W_hat is None):
        raise ValueError("give exactly one of q (integer weights) or W_hat (quantized weights)")
    n_off, far = 0, 0.0
    if W_hat is not None:
        shape = getattr(problem, "kernel_shape", problem.shape)
        W_hat = as_float_array(W_hat, "W_hat", shape=shape).reshape(problem.shape)
        s, z = problem.grid.per_row(problem.n_rows)
        dead = s == 0  # a zero-scale row's only grid point is 0 (reference.Grid); anything else is off it
        qf = np.where(dead, np.where(W_hat == 0, z, np.inf), W_hat / np.where(dead, 1.0, s) + z)
        q = np.where(np.isfinite(qf), np.round(qf), problem.lo)
        dist = np.abs(qf - q)
        bad = dist > 1e-6 * np.maximum(1.0, np.abs(q))
        n_off = int(bad.sum())
        far = float(dist[bad].max()) if n_off else 0.0
        if n_off and off_grid == "refuse":
            k, i = map(int, np.argwhere(bad)[0])
            raise ValueError(
                f"W_hat[{k}, {i}] == {float(W_hat[k, i])!r} is not on the grid (q would be {float(qf[k, i])!r}); "
                f"{n_off} of {bad.size} weights are off the grid, up to {far:.3g} of a step; pass "
                f"off_grid='nearest' to judge the rounding a port deploys (each weight to its nearest grid point)"
            )
    elif problem.shape != np.shape(q) and getattr(problem, "kernel_shape", None) == np.shape(q):
        q = np.reshape(q, problem.shape)
    q = as_float_array(q, "q", shape=problem.shape)
    up = q - problem.lo
    bad = ~((up == 0) | ((up == 1) & (problem.movable == 1)))
    if np.any(bad):
        k, i = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"weight [{k}, {i}] was rounded to q == {q[k, i]:g}, but its neighbours are "
            f"{problem.lo[k, i]:g} and {problem.lo[k, i] + problem.movable[k, i]:g}: not an up/down rounding"
        )
    return up.astype(np.int8), n_off, far


def rounding_report(W, grid, *, X=None, G=None, q=None, W_hat=None, method: str = "auto",
                    time_limit: float | None = 60.0, off_grid: str = "refuse",
                    conv: dict | None = None) -> RoundingReport:
    """Loss, proven optimum and gap of a rounding of ``W`` (out, in) on ``grid``.

    Parameters
    ----------
    W : array of shape (out, in), or (C_out, C_in/groups, kh, kw) for a convolution
    grid : reference.Grid
    X : array of shape (N, in) or (N, T, in), or G : array of shape (in, in)
        Calibration samples or their Gram matrix ``X^T X / N``; a convolution needs its inputs
        ``X`` of shape (N, C_in, H, W) (the loss is Eq. 20 on patches, :class:`solvers.ConvProblem`).
    q : integer array, or W_hat : array, of the shape of ``W``
        The rounding to judge, as integer weights or as quantized weights ``s (q - z)``.
    off_grid : {"refuse", "nearest"}, default="refuse"
        What to do with ``W_hat`` entries that are not on the grid. ``"refuse"`` raises
        ValueError saying how many and how far; ``"nearest"`` judges the rounding a port deploys
        (each weight to its nearest grid point) and reports the count, the largest distance and
        the loss of the weights as given (:class:`RoundingReport`).
    conv : dict, optional
        ``stride``, ``padding``, ``dilation``, ``groups`` of a convolution (4-D ``W``).
    method : {"auto", "exhaustive", "tree"}, default="auto"
        Exact method: ``exhaustive`` when every row has at most 24 free variables, else ``tree``.
    time_limit : float or None, default=60
        Seconds per row for the tree search; past it the optimum is reported as not proven.
    """
    if off_grid not in _OFF_GRID:
        raise ValueError(f"off_grid must be one of {list(_OFF_GRID)}, found {off_grid!r}")
    problem = _problem(W, grid, X, G, conv)
    x, n_off, far = _up_down(problem, q, W_hat, off_grid)
    given_loss = None
    if n_off:
        E = as_float_array(W_hat, "W_hat").reshape(problem.shape) - problem.W
        given_loss = float(sum(E[k] @ problem._row_gram(k) @ E[k] for k in range(problem.n_rows)))
    if method == "auto":
        method = "exhaustive" if problem.max_row_vars <= EXHAUSTIVE_UP_TO else "tree"
    if method not in ("exhaustive", "tree"):
        raise ValueError(f"method must be one of ['auto', 'exhaustive', 'tree'], found {method!r}")
    opts = {"time_limit": time_limit} if method == "tree" else {}
    best = solve(problem, method, **opts)
    loss = problem.loss(x)
    certified = METHODS[method].certifies_bound  # only a method that proves its bound gives one
    optimum = best.energy if best.optimal and certified else None
    proved = best.lower_bound if certified and best.lower_bound is not None else None
    if proved is not None:  # the given rounding is a state too: a bound above its loss is wrong
        check_bound(proved, loss, problem, f"method {method!r} against the given rounding")
    # the local loss is never negative (G positive semidefinite): 0 bounds the optimum whatever
    # the method proved
    lower = 0.0 if proved is None else max(0.0, proved)
    best_known = min(best.energy, loss)  # the given rounding may beat the method's best state
    gap = low = high = _rel(loss, optimum) if optimum is not None else None
    if optimum is None:
        low, high = gap_interval(loss, best_known, lower)
    return RoundingReport(loss=loss, optimum=optimum, lower_bound=lower, gap=gap,
                          method=method, x=x, x_opt=best.x, off_grid=n_off, off_grid_max=far,
                          given_loss=given_loss, best_known=best_known, gap_low=low, gap_high=high)


def _rel(value: float, ref: float):
    """``(value - ref) / ref``; 0 when both are 0, None when only ``ref`` is."""
    if ref == 0:
        return 0.0 if value == 0 else None
    return (value - ref) / ref


def assert_rounding_within(W, grid, *, X=None, G=None, q=None, W_hat=None, rtol: float = 0.0,
                           atol: float = 0.0, method: str = "auto", time_limit: float | None = 60.0,
                           off_grid: str = "refuse", conv: dict | None = None,
                           against: str = "optimum") -> RoundingReport:
    """Assert that a rounding's local loss is within ``optimum * (1 + rtol) + atol``.

    ``against="optimum"`` (default) needs the optimum proven: a layer too wide to prove within
    ``time_limit`` fails and says so, with the interval that holds the gap. ``against="best_known"``
    judges against the best rounding the exact method found within its limit instead (a weaker
    claim: the proven optimum may lie lower, down to the report's ``lower_bound``).

    ``off_grid`` and ``conv`` as in :func:`rounding_report` (with ``off_grid="nearest"`` the
    deployed rounding is judged and the message also gives the off-grid count). Raises
    AssertionError with the loss, the optimum, the gap and the rows that lose most when it
    is not, or when the optimum could not be proven. Returns the :class:`RoundingReport`.
    ``rtol`` and ``atol`` must be finite and >= 0 (a NaN would let every rounding pass).
    """
    rtol, atol = check_tolerance(rtol, "rtol"), check_tolerance(atol, "atol")
    rep = rounding_report(W, grid, X=X, G=G, q=q, W_hat=W_hat, method=method, time_limit=time_limit,
                          off_grid=off_grid, conv=conv)
    if against not in ("optimum", "best_known"):
        raise ValueError(f"against must be 'optimum' or 'best_known', found {against!r}")
    if rep.optimum is None and against == "optimum":
        raise AssertionError(
            f"the layer is too wide to prove its optimum within the limit (time_limit={time_limit}); "
            f"pass against='best_known' to judge against the best rounding found: {rep}")
    ref = rep.optimum if rep.optimum is not None else rep.best_known
    limit = ref * (1 + rtol) + atol
    if rep.loss > limit * (1 + 1e-12) + 1e-300:
        problem = _problem(W, grid, X, G, conv)
        excess = problem.row_losses(rep.x) - problem.row_losses(rep.x_opt)
        worst = np.argsort(excess)[::-1][:3]
        rows = ", ".join(f"row {int(k)} +{excess[k]:.3e}" for k in worst if excess[k] > 0)
        what = (f"optimum {rep.optimum:.9e}, gap {100 * rep.gap:.4f} %" if rep.optimum is not None else
                f"best known {rep.best_known:.9e}, no proven optimum, gap at least "
                f"{'-' if rep.gap_low is None else f'{100 * rep.gap_low:.4f}'} %")
        raise AssertionError(
            f"rounding loss {rep.loss:.9e} exceeds the allowed {limit:.9e} "
            f"({what}, rtol {rtol}, atol {atol}); "
            f"largest excess: {rows}"
            + (f"; {rep.off_grid} given weights were off the grid (up to {rep.off_grid_max:.3g} of a step), "
               f"judged as rounded to nearest" if rep.off_grid else "")
        )
    return rep


# ---------------------------------------------------------------------------- sparse codes
@dataclass(frozen=True)
class SparseReport:
    """What the oracle says about sparse codes ``A`` of signals ``X`` (docs/sparse.md).

    ``objective``: ``1/2 ||x - Phi a||^2 + lam ||a||_0`` of each given code (shape (N,)).
    ``optimum``: the exact l0 minimum of each signal (supports enumerated; the CEL0 objective has
    the same global minimum). ``gap``: ``sum(objective - optimum) / sum(optimum)`` over signals.
    ``worst``: index of the signal with the largest excess. ``codes_opt``: optimal codes.
    """

    objective: np.ndarray
    optimum: np.ndarray
    gap: float
    worst: int
    codes_opt: np.ndarray

    def __str__(self) -> str:
        return (f"l0 objective {self.objective.sum():.9e} over {self.objective.size} signals, "
                f"optimum {self.optimum.sum():.9e}, gap {100 * self.gap:.4f} %, worst signal {self.worst}")


def sparse_code_report(Phi, X, A, lam, max_atoms: int | None = None) -> SparseReport:
    """l0 objective, exact l0 optimum and gap of codes ``A`` (N, K) of signals ``X`` (N, n) on ``Phi`` (n, K).

    The optimum comes from ``solvers.solve(SparseProblem(Phi, X, "l0", lam), "l0-exact")``, which
    enumerates supports (at most 20 atoms by default, ``max_atoms`` up to its hard limit).
    """
    opts = {} if max_atoms is None else {"max_atoms": max_atoms}
    X2 = np.atleast_2d(as_float_array(X, "X"))
    A2 = np.atleast_2d(as_float_array(A, "A"))
    if A2.shape[0] != X2.shape[0]:
        raise ValueError(f"A must have one code per signal: X has {X2.shape[0]} rows, A has {A2.shape[0]}")
    given = np.atleast_1d(objective(Phi, X2, A2, "l0", lam))
    best = solve(SparseProblem(Phi, X2, "l0", lam), "l0-exact", **opts)
    opt = np.atleast_1d(best.info["objective"])
    total = float(opt.sum())
    excess = given - opt
    gap = float(excess.sum() / total) if total > 0 else (0.0 if float(excess.sum()) <= 0 else float("inf"))
    return SparseReport(objective=given, optimum=opt, gap=gap, worst=int(np.argmax(excess)),
                        codes_opt=np.atleast_2d(best.x))


def assert_sparse_code_within(Phi, X, A, lam, rtol: float = 0.0, atol: float = 0.0,
                              max_atoms: int | None = None) -> SparseReport:
    """Assert that every code's l0 objective is within ``optimum * (1 + rtol) + atol`` of its signal's
    exact l0 optimum; the message names the worst signal, its objective, its optimum and its support.
    ``rtol`` and ``atol`` must be finite and >= 0."""
    rtol, atol = check_tolerance(rtol, "rtol"), check_tolerance(atol, "atol")
    rep = sparse_code_report(Phi, X, A, lam, max_atoms=max_atoms)
    limit = rep.optimum * (1 + rtol) + atol
    bad = rep.objective > limit * (1 + 1e-12) + 1e-300
    if np.any(bad):
        k = int(np.flatnonzero(bad)[np.argmax((rep.objective - rep.optimum)[bad])])
        A2 = np.atleast_2d(np.asarray(A, dtype=np.float64))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} codes exceed the allowed objective; worst: signal {k}, "
            f"objective {rep.objective[k]:.9e} > {limit[k]:.9e} (optimum {rep.optimum[k]:.9e}); "
            f"its support {np.flatnonzero(A2[k]).tolist()}, optimal support "
            f"{np.flatnonzero(rep.codes_opt[k]).tolist()}"
        )
    return rep


# ---------------------------------------------------------------------------- hypothesis strategies
def _st():
    try:
        from hypothesis import strategies as st
    except ImportError:
        raise ImportError("reference.testing strategies need the package 'hypothesis' (pip install hypothesis)") from None
    return st


def _seeded(build):
    """The strategy ``build(draw, st, rng)``: ``st`` hypothesis' strategies, ``rng`` a numpy
    generator seeded by the first draw (so that hypothesis shrinks the seed like any other value)."""
    st = _st()

    @st.composite
    def strategy(draw):
        return build(draw, st, np.random.default_rng(draw(st.integers(0, 2**32 - 1))))

    return strategy()


def layers(max_out: int = 3, max_in: int = 6, allow_clipping: bool = True):
    """Strategy for ``(W, X, grid)``: per-row or per-tensor, symmetric or asymmetric 2-5 bit grids,
    weights of very different scales, any N >= 1 (often N < in: singular G), and, when
    ``allow_clipping``, a shrunk scale so that the largest weights fall off the grid."""
    def build(draw, st, rng):
        out = draw(st.integers(1, max_out))
        fan_in = draw(st.integers(1, max_in))
        n = draw(st.integers(1, 3 * fan_in))
        W = rng.normal(size=(out, fan_in)) * draw(st.sampled_from([0.01, 1.0, 30.0]))
        X = rng.normal(size=(n, fan_in)) * draw(st.sampled_from([0.1, 1.0, 10.0]))
        grid = fit_grid(W, bits=draw(st.integers(2, 5)), per_row=draw(st.booleans()),
                        symmetric=draw(st.booleans()))
        if allow_clipping and draw(st.booleans()):
            grid = Grid(grid.scale * draw(st.sampled_from([0.3, 0.6])), grid.qmin, grid.qmax, grid.zero_point)
        return W, X, grid

    return _seeded(build)


def grids(n_rows: int = 3):
    """Strategy for a :class:`reference.Grid` for ``n_rows`` rows: 2-8 bits, symmetric signed or
    unsigned with a zero point, one scale for the tensor or one per row (scales from 1e-3 to 10)."""
    st = _st()

    @st.composite
    def build(draw):
        bits = draw(st.integers(2, 8))
        symmetric = draw(st.booleans())
        qmin, qmax = symmetric_range(bits) if symmetric else asymmetric_range(bits)
        k = n_rows if draw(st.booleans()) else 1
        scale = np.array(draw(st.lists(st.floats(1e-3, 10.0), min_size=k, max_size=k)))
        zero = 0 if symmetric else np.array(draw(st.lists(st.integers(qmin, qmax), min_size=k, max_size=k)))
        return Grid(scale, qmin, qmax, zero)

    return build()


def bqms(min_n: int = 0, max_n: int = 8):
    """Strategy for ``(P, q, c)``: symmetric ``P`` of any sign and of mixed scale."""
    def build(draw, st, rng):
        n = draw(st.integers(min_n, max_n))
        A = rng.normal(size=(n, n)) * draw(st.sampled_from([0.001, 1.0, 100.0]))
        q = rng.normal(size=n) * draw(st.sampled_from([0.01, 1.0, 10.0]))
        return (A + A.T) / 2, q, float(rng.normal())

    return _seeded(build)


def psd_bqms(min_n: int = 1, max_n: int = 8):
    """Strategy for ``(P, q, c)`` with ``P = B^T B`` PSD, often singular (rank below ``n``)."""
    def build(draw, st, rng):
        n = draw(st.integers(min_n, max_n))
        rank = draw(st.integers(1, n))
        B = rng.normal(size=(rank, n))
        return B.T @ B, rng.normal(size=n) * draw(st.sampled_from([0.1, 1.0, 10.0])), float(rng.normal())

    return _seeded(build)


def dictionaries(max_dim: int = 8, max_atoms: int = 10, max_signals: int = 4):
    """Strategy for ``(Phi, X, lam)``: dictionaries (n, K) with atoms of unequal norm (sometimes
    overcomplete, sometimes with a repeated atom), signals (N, n) and ``lam > 0``."""
    def build(draw, st, rng):
        n = draw(st.integers(2, max_dim))
        K = draw(st.integers(1, max_atoms))
        Phi = rng.normal(size=(n, K)) * rng.uniform(0.3, 2.0, size=K)
        if K > 1 and draw(st.booleans()):
            Phi[:, -1] = Phi[:, 0]
        X = rng.normal(size=(draw(st.integers(1, max_signals)), n))
        lam = draw(st.sampled_from([0.01, 0.1, 0.5, 2.0]))
        return Phi, X, lam

    return _seeded(build)
