"""The AdaRound continuous relaxation (Nagel et al. 2020, Eqs. 21-24; docs/math.md, "Conventions").

Every weight gets a continuous variable ``V``; the soft weights are

.. math:: \\tilde W = s \\, (\\mathrm{clip}(\\lfloor W/s \\rfloor + z + h(V), q_{min}, q_{max}) - z)
          \\qquad \\text{(Eq. 22)}

with the rectified sigmoid (Eq. 23, ``zeta = 1.1``, ``gamma = -0.1``)

.. math:: h(V) = \\mathrm{clip}(\\sigma(V) (\\zeta - \\gamma) + \\gamma, 0, 1),

and the relaxation minimises (Eq. 21 with the regulariser of Eq. 24)

.. math:: J(V) = c \\, L(\\tilde W) + \\lambda f_{reg}(V), \\qquad
          f_{reg}(V) = \\sum_{ij} 1 - |2 h(V_{ij}) - 1|^{\\beta},

where ``L`` is the local loss of Eq. 20 in this project's unit (mean over samples of the squared
output error summed over the output rows, ``sum_k e_k^T G e_k``) and ``c`` is the preset's loss
normalisation: 1 for ``"sample"`` (AIMET, BRECQ) and ``1/out`` for ``"element"`` (PyTorch's
experimental AdaRound, a mean over every element of the ``(N, out)`` output).

Clipping inside the soft weights. With ``f = floor(W/s) + z`` and ``h`` in [0, 1] the clip of
Eq. 22 is inactive wherever the two neighbours differ (``delta = 1``: ``qmin <= f`` and
``f + 1 <= qmax``) and makes the soft weight constant wherever they coincide (``delta = 0``), so
``W~ = s (lo + delta h - z)`` with ``lo``/``delta`` of :class:`~solvers.LayerProblem`, and the loss
gradient is zero on clipped weights. The regulariser still acts on every ``V`` (as in AIMET,
BRECQ and PyTorch), so a clipped weight's ``h`` is driven to 0 or 1 like the others; it never
changes the rounding.

Gradients follow PyTorch's conventions at the kinks: the clamp of Eq. 23 passes the gradient
where ``0 <= sigmoid(V) (zeta - gamma) + gamma <= 1`` (ends included, up to 1e-12 so that a zero
residual's ``V0 = -log 11`` stays on the boundary despite rounding) and ``|x|`` has derivative
``sign(x)`` (0 at 0).

The optimiser is Adam (Kingma & Ba 2015) with PyTorch's defaults and bias correction, written
in numpy. The final rounding is ``v = [V >= 0]`` (round up where ``sigmoid(V) >= 1/2``), and
:func:`solvers.solve` reports the local loss of that hard rounding, never the soft one.

Two data modes give the same objective:

* ``"gram"``: full batch through ``G = X^T X / N``; each step costs one ``(out x in)(in x in)``
  product, independent of ``N``, and is deterministic.
* ``"batch"``: mini-batches of ``batch_size`` samples drawn without replacement from ``X`` at
  every step (AIMET's and BRECQ's way; an unbiased estimate of the same loss); each step costs
  two ``(out x in)(in x batch)`` products. Needs a LayerProblem built from ``X``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._registry import Outcome, register
from .layer import LayerProblem

__all__ = [
    "ZETA",
    "GAMMA",
    "Preset",
    "PRESETS",
    "Adam",
    "rectified_sigmoid",
    "init_from_residual",
    "regulariser",
    "beta_at",
    "Relaxation",
    "adaround",
    "AdaRoundRun",
    "resolve_settings",
]

#: Stretch of the rectified sigmoid (Eq. 23; Louizos et al. 2018).
ZETA = 1.1
GAMMA = -0.1

#: An ``h`` counts as converged when it lies within this distance of 0 or 1.
BINARY_TOL = 1e-3

#: The clamp of Eq. 23 passes the gradient for ``-tol <= u <= 1 + tol`` (PyTorch includes the ends;
#: the tolerance keeps ``V0 = -log 11`` of a zero residual on the boundary despite rounding).
_KINK_TOL = 1e-12


# ---------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one published implementation.

    Attributes
    ----------
    lam : float
        Weight of the regulariser (AIMET ``reg_param``, BRECQ ``weight``, PyTorch ``reg_param``).
    beta : (float, float)
        Start and end of the annealed exponent of Eq. 24.
    schedule : {"cosine", "linear"}
    warm_start : float
        Fraction of the iterations with the regulariser off.
    iterations, lr, batch_size
        Adam steps, Adam learning rate, samples per mini-batch (batch mode only).
    normalization : {"sample", "element"}
        ``"sample"``: ``(1/N) sum_n ||e_n||^2`` (this project's unit); ``"element"``: the same
        divided by the number of outputs.
    step_base : {0, 1}
        Step number the schedule sees at the first iteration (BRECQ counts from 1).
    """

    name: str
    lam: float
    beta: tuple
    schedule: str
    warm_start: float
    iterations: int
    lr: float
    batch_size: int
    normalization: str
    step_base: int
    source: str

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in _TUNABLE}


_TUNABLE = ("lam", "beta", "schedule", "warm_start", "iterations", "lr", "batch_size", "normalization")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("aimet", 0.01, (20.0, 2.0), "cosine", 0.2, 10_000, 1e-3, 32, "sample", 0,
               "AIMET AdaroundParameters defaults (reg_param 0.01, beta_range (20, 2), "
               "warm_start 0.2, 10,000 iterations, torch.optim.Adam defaults, batch 32)"),
        Preset("brecq", 0.001, (20.0, 2.0), "linear", 0.0, 20_000, 1e-3, 32, "sample", 1,
               "BRECQ layer_reconstruction defaults (weight 0.001, b_range (20, 2), warmup 0, "
               "20,000 iterations, batch 32, linear decay, step counted from 1)"),
        Preset("brecq_imagenet", 0.01, (20.0, 2.0), "linear", 0.2, 20_000, 1e-3, 32, "sample", 1,
               "BRECQ main_imagenet.py defaults (weight 0.01, warmup 0.2, iters_w 20,000)"),
        Preset("torch_ao", 0.001, (20.0, 2.0), "cosine", 0.2, 10_000, 1e-3, 256, "element", 0,
               "PyTorch torch.ao.quantization.experimental AdaRound (reg_param 0.001, "
               "warm_start 0.2, max_iter 10,000, batch 256, per-element mean squared error)"),
    )
}


# ---------------------------------------------------------------------------- the maths
def rectified_sigmoid(V) -> np.ndarray:
    """``h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1)`` (Eq. 23)."""
    V = np.asarray(V, dtype=np.float64)
    return np.clip(_sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _sigmoid(V: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-V))


def init_from_residual(residual) -> np.ndarray:
    """``V0`` with ``h(V0) = residual`` for residuals in [0, 1) (inverse of Eq. 23).

    ``sigmoid(V0) = (r - gamma) / (zeta - gamma)``; a residual of 0 maps to
    ``sigmoid(V0) = -gamma / (zeta - gamma) = 1/12``, i.e. ``V0 = -log 11``, exactly where the
    clamp of Eq. 23 starts (not to ``-inf``), so such a weight can still move up.
    """
    r = np.asarray(residual, dtype=np.float64)
    if np.any(r < 0) or np.any(r >= 1):
        raise ValueError(f"residual must lie in [0, 1), found values from {r.min()!r} to {r.max()!r}")
    p = (r - GAMMA) / (ZETA - GAMMA)
    return np.log(p) - np.log1p(-p)


def regulariser(h, beta: float) -> float:
    """``f_reg = sum 1 - |2 h - 1|^beta`` (Eq. 24)."""
    h = np.asarray(h, dtype=np.float64)
    return float(np.sum(1.0 - np.abs(2.0 * h - 1.0) ** beta))


def beta_at(step: float, iterations: int, beta: tuple, warm_start: float, schedule: str) -> float | None:
    """The exponent of Eq. 24 at ``step``, or None while the regulariser is off.

    The regulariser is off while ``step < warm_start * iterations``. Then, with
    ``rel = (step - w) / (iterations - w)``, ``w = warm_start * iterations``:
    cosine ``end + (start - end) (1 + cos(pi rel)) / 2`` (AIMET, PyTorch);
    linear ``end + (start - end) max(0, 1 - rel)`` (BRECQ, QDrop).
    """
    start, end = beta
    w = warm_start * iterations
    if step < w:
        return None
    rel = (step - w) / (iterations - w)
    if schedule == "cosine":
        return end + 0.5 * (start - end) * (1.0 + math.cos(rel * math.pi))
    if schedule == "linear":
        return end + (start - end) * max(0.0, 1.0 - rel)
    raise ValueError(f"schedule must be one of ['cosine', 'linear'], found {schedule!r}")


class Adam:
    """Adam with bias correction, as ``torch.optim.Adam`` (no weight decay, no amsgrad).

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``x <- x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``. Updates ``x`` in place.
    """

    def __init__(self, shape, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr = float(lr)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0
        self._buf = np.zeros(shape)

    def step(self, x: np.ndarray, g: np.ndarray) -> None:
        self.t += 1
        b1, b2, buf = self.b1, self.b2, self._buf
        self.m *= b1
        self.m += (1.0 - b1) * g
        self.v *= b2
        np.multiply(g, g, out=buf)
        buf *= 1.0 - b2
        self.v += buf
        bc1 = 1.0 - b1**self.t
        bc2 = 1.0 - b2**self.t
        np.sqrt(self.v, out=buf)
        buf *= 1.0 / math.sqrt(bc2)
        buf += self.eps
        np.divide(self.m, buf, out=buf)
        buf *= self.lr / bc1
        x -= buf


class Relaxation:
    """The objective ``J(V) = c L(W~(V)) + lam f_reg(V)`` of one layer and its gradient.

    Parameters
    ----------
    problem : LayerProblem
    normalization : {"sample", "element"}, default="sample"

    ``value_and_grad`` evaluates ``J`` on the full data (through ``G``) or on the samples
    ``X[idx]``; it reuses internal buffers, so the returned gradient is overwritten by the next call.
    """

    def __init__(self, problem: LayerProblem, normalization: str = "sample"):
        if not isinstance(problem, LayerProblem):
            raise ValueError(f"problem must be a solvers.LayerProblem, found {type(problem).__name__}")
        _check_choice(normalization, "normalization", ("element", "sample"))
        s, z = problem.grid.per_row(problem.n_rows)
        self.problem = problem
        self.shape = problem.shape
        self.G = problem.G  # (in, in), or (groups, in, in) for a grouped convolution (one Gram per group)
        self.X = getattr(problem, "X", None)
        # e = A + B h: the error of the soft weights (docs/math.md, "The binary quadratic model")
        self.A = s * (problem.lo - z) - problem.W
        self.B = s * problem.delta
        self.c = 1.0 if normalization == "sample" else 1.0 / max(1, problem.n_rows)
        self.free = problem.delta == 1
        n = self.shape
        self._sig = np.empty(n)
        self._u = np.empty(n)
        self._h = np.empty(n)
        self._E = np.empty(n)
        self._EG = np.empty(n)
        self._g = np.empty(n)
        self._t = np.empty(n)

    def soft(self, V) -> np.ndarray:
        """``h(V)`` (Eq. 23)."""
        return rectified_sigmoid(V)

    def soft_weights(self, V) -> np.ndarray:
        """``W~ = s (lo + delta h(V) - z)`` (Eq. 22 with its clip resolved, see the module docs)."""
        return self.problem.W + self.A + self.B * rectified_sigmoid(V)

    def loss_of_h(self, h) -> float:
        """Local loss (Eq. 20, this project's unit, no normalisation) of the soft weights for ``h``."""
        E = self.A + self.B * h
        if self.G.ndim == 2:
            return float(np.einsum("ki,ij,kj->", E, self.G, E, optimize=True))
        return float(np.vdot(E, self._times_G(E, np.empty_like(E))))

    def _times_G(self, E, out):
        """``E G`` row by row (each row times its group's Gram matrix when ``G`` is 3-D)."""
        if self.G.ndim == 2:
            return np.matmul(E, self.G, out=out)
        g = self.G.shape[0]
        np.matmul(E.reshape(g, -1, E.shape[1]), self.G, out=out.reshape(g, -1, E.shape[1]))
        return out

    def value_and_grad(self, V: np.ndarray, lam: float = 0.0, beta: float | None = None, idx=None):
        """``(J, c L, f_reg, dJ/dV)`` at ``V``.

        ``beta=None`` switches the regulariser off (warm start); ``idx`` selects the samples of
        a mini-batch (``X[idx]``), otherwise the full data is used through ``G``.
        """
        sig, u, h, E, EG, g, t = self._sig, self._u, self._h, self._E, self._EG, self._g, self._t
        # sigmoid(V) = 1 / (1 + exp(-V)); exp overflows to inf (sigmoid 0) for V < -709
        np.negative(V, out=sig)
        with np.errstate(over="ignore"):
            np.exp(sig, out=sig)
        sig += 1.0
        np.reciprocal(sig, out=sig)
        np.multiply(sig, ZETA - GAMMA, out=u)
        u += GAMMA
        np.clip(u, 0.0, 1.0, out=h)
        np.multiply(self.B, h, out=E)
        E += self.A
        if idx is None:
            self._times_G(E, EG)
            loss = self.c * float(np.vdot(E, EG))
            scale = 2.0 * self.c
        else:
            Xb = self.X[idx]
            R = Xb @ E.T  # (batch, out): output errors of the mini-batch
            loss = self.c * float(np.vdot(R, R)) / Xb.shape[0]
            np.matmul(R.T, Xb, out=EG)
            scale = 2.0 * self.c / Xb.shape[0]
        # dJ/dh from the loss: 2 c (E G) * B  (zero where delta = 0: the clip of Eq. 22)
        np.multiply(EG, self.B, out=g)
        g *= scale
        reg = 0.0
        if beta is not None:
            # d = 2h - 1; f_reg = sum 1 - |d|^beta; d f_reg / dh = -2 beta |d|^(beta-1) sign(d)
            np.multiply(h, 2.0, out=t)
            t -= 1.0
            d_sign = np.sign(t)
            np.abs(t, out=t)
            p = np.power(t, beta - 1.0)
            reg = float(t.size - np.vdot(p, t))
            if lam != 0.0:
                p *= d_sign
                p *= -2.0 * beta * lam
                g += p
        # dh/dV = (zeta - gamma) sigmoid (1 - sigmoid) where 0 <= u <= 1 (clamp passes its ends)
        np.subtract(1.0, sig, out=t)
        t *= sig
        t *= ZETA - GAMMA
        t *= (u >= -_KINK_TOL) & (u <= 1.0 + _KINK_TOL)
        g *= t
        return loss + lam * reg, loss, reg, g


# ---------------------------------------------------------------------------- the run
@dataclass
class AdaRoundRun:
    """What :func:`adaround` returns.

    Attributes
    ----------
    V : array of shape (out, in)
        Final continuous variables.
    x : int8 array of shape (out, in)
        Hard rounding ``[V >= 0]`` on the free weights (0 where the choice is fixed).
    soft_loss : float
        Local loss (Eq. 20, project unit) of the final soft weights.
    hard_loss : float
        Local loss of ``x``.
    not_binary : int
        Free weights whose final ``h`` is farther than 1e-3 from 0 and 1.
    not_binary_fraction : float
        ``not_binary`` over the number of free weights (0 when there are none).
    not_binary_where : int array of shape (not_binary, 2)
        ``(row, column)`` of those weights.
    settings : dict
        The resolved hyper-parameters.
    history : dict or None
        Per checkpoint: ``iteration`` (updates done), ``loss`` (soft, project unit, full data),
        ``hard_loss``, ``regulariser`` (``f_reg`` at the ``beta`` in force, or at the start
        ``beta`` during the warm start), ``beta`` (NaN while the regulariser is off) and
        ``not_binary_fraction``.
    """

    V: np.ndarray
    x: np.ndarray
    soft_loss: float
    hard_loss: float
    not_binary: int
    not_binary_fraction: float
    not_binary_where: np.ndarray
    settings: dict
    history: dict | None = field(default=None)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, found {value!r}")


def _real(value, name, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, found {value!r}")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, found {v!r}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, found {v!r}")
    return v


def _int(value, name, lo=1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, found {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, found {value}")
    return int(value)


def resolve_settings(preset="aimet", **overrides) -> dict:
    """The preset's hyper-parameters with the non-None ``overrides`` applied, validated."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, found {preset!r}")
    p = PRESETS[preset]
    unknown = sorted(set(overrides) - set(_TUNABLE))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; accepted: {sorted(_TUNABLE)}")
    st = p.settings()
    st.update({k: v for k, v in overrides.items() if v is not None})
    st["lam"] = _real(st["lam"], "lam", lo=0.0)
    beta = st["beta"]
    if not isinstance(beta, (tuple, list)) or len(beta) != 2:
        raise ValueError(f"beta must be a pair (start, end), found {beta!r}")
    st["beta"] = (_real(beta[0], "beta start", lo=1.0), _real(beta[1], "beta end", lo=1.0))
    _check_choice(st["schedule"], "schedule", ("cosine", "linear"))
    st["warm_start"] = _real(st["warm_start"], "warm_start", lo=0.0, hi=1.0, hi_open=True)
    st["iterations"] = _int(st["iterations"], "iterations", lo=1)
    st["lr"] = _real(st["lr"], "lr", lo=0.0, lo_open=True)
    st["batch_size"] = _int(st["batch_size"], "batch_size", lo=1)
    _check_choice(st["normalization"], "normalization", ("element", "sample"))
    st["preset"] = preset
    st["step_base"] = p.step_base
    return st


def _far_from_binary(h: np.ndarray, free: np.ndarray) -> np.ndarray:
    return (h > BINARY_TOL) & (h < 1.0 - BINARY_TOL) & free


def _not_binary(h: np.ndarray, free: np.ndarray) -> int:
    return int(np.count_nonzero(_far_from_binary(h, free)))


def adaround(problem: LayerProblem, preset: str = "aimet", *, lam=None, beta=None, schedule=None,
             warm_start=None, iterations=None, lr=None, batch_size=None, normalization=None,
             mode: str = "gram", seed=0, history: bool = False, history_every=None,
             threads=None) -> AdaRoundRun:
    """Run the AdaRound relaxation (Eqs. 21-24) on every row of a layer at once.

    Parameters
    ----------
    problem : LayerProblem
    preset : {"aimet", "brecq", "brecq_imagenet", "torch_ao"}, default="aimet"
        Conventions of a published implementation (see :data:`PRESETS` and docs/adaround.md);
        every option below left at None takes the preset's value.
    lam : float, optional
        Weight ``lambda`` of the regulariser, in the preset's loss normalisation.
    beta : (float, float), optional
        Start and end exponent of Eq. 24 (each >= 1).
    schedule : {"cosine", "linear"}, optional
    warm_start : float in [0, 1), optional
        Fraction of the iterations without the regulariser.
    iterations : int, optional
    lr : float, optional
        Adam learning rate (betas (0.9, 0.999), eps 1e-8).
    batch_size : int, optional
        Samples per step in batch mode.
    normalization : {"sample", "element"}, optional
    mode : {"gram", "batch"}, default="gram"
        Full batch through ``G`` (deterministic) or mini-batches from ``problem.X``.
    seed : int or None, default=0
        Seeds the mini-batch draws (unused in gram mode).
    history : bool, default=False
        Record the run at checkpoints (every ``history_every`` steps, default ``iterations / 100``).
    history_every : int, optional
    threads : int, optional
        Cap the BLAS threads during the run (with threadpoolctl). The products
        are small, and on a busy machine a second BLAS thread can make each step several times
        slower; None leaves BLAS as configured (``OPENBLAS_NUM_THREADS`` etc.).

    Returns
    -------
    AdaRoundRun
    """
    st = resolve_settings(preset, lam=lam, beta=beta, schedule=schedule, warm_start=warm_start,
                          iterations=iterations, lr=lr, batch_size=batch_size, normalization=normalization)
    _check_choice(mode, "mode", ("batch", "gram"))
    if not isinstance(history, (bool, np.bool_)):
        raise ValueError(f"history must be True or False, found {history!r}")
    T = st["iterations"]
    every = max(1, T // 100) if history_every is None else _int(history_every, "history_every")
    rel = Relaxation(problem, st["normalization"])
    n_samples = 0
    if mode == "batch":
        if rel.X is None:
            raise ValueError(
                "mode='batch' draws mini-batches from the samples: build the LayerProblem with "
                "X=... (it was built from G), or use mode='gram'"
            )
        n_samples = rel.X.shape[0]
        if st["batch_size"] > n_samples:
            raise ValueError(f"batch_size must be <= the number of samples N == {n_samples}, "
                             f"found {st['batch_size']}")
    if seed is not None:
        seed = _int(seed, "seed", lo=0)
    rng = np.random.default_rng(seed)
    st["mode"] = mode
    st["seed"] = seed

    limiter = _thread_limiter(threads)
    st["threads"] = threads
    with limiter:
        return _run(problem, rel, st, mode, rng, n_samples, history, every)


def _thread_limiter(threads):
    if threads is None:
        return contextlib.nullcontext()
    threads = _int(threads, "threads")
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _run(problem, rel, st, mode, rng, n_samples, history, every) -> AdaRoundRun:
    T = st["iterations"]
    V = init_from_residual(problem.residual)
    opt = Adam(V.shape, lr=st["lr"])
    lam_ = st["lam"]
    base = st["step_base"]
    beta_pair, wsf, sched = st["beta"], st["warm_start"], st["schedule"]
    B = st["batch_size"]
    hist = {k: [] for k in ("iteration", "loss", "hard_loss", "regulariser", "beta",
                            "not_binary_fraction")} if history else None
    n_free = int(np.count_nonzero(rel.free))

    def record(i, b):
        h = rectified_sigmoid(V)
        hist["iteration"].append(i)
        hist["loss"].append(rel.loss_of_h(h))
        hist["hard_loss"].append(rel.loss_of_h((V >= 0).astype(np.float64)))
        hist["regulariser"].append(regulariser(h, beta_pair[0] if b is None else b))
        hist["beta"].append(np.nan if b is None else b)
        hist["not_binary_fraction"].append(_not_binary(h, rel.free) / n_free if n_free else 0.0)

    b = None
    for i in range(T):
        b = beta_at(i + base, T, beta_pair, wsf, sched)
        if hist is not None and i % every == 0:
            record(i, b)
        idx = None
        if mode == "batch":
            idx = rng.choice(n_samples, size=B, replace=False)
        _, _, _, g = rel.value_and_grad(V, lam_, b, idx)
        opt.step(V, g)
    if hist is not None:
        record(T, b)
        hist = {k: np.asarray(v) for k, v in hist.items()}
    h = rectified_sigmoid(V)
    x = ((V >= 0) & rel.free).astype(np.int8)
    where = np.argwhere(_far_from_binary(h, rel.free))
    nb = int(where.shape[0])
    return AdaRoundRun(V=V, x=x, soft_loss=rel.loss_of_h(h), hard_loss=rel.loss_of_h(x.astype(np.float64)),
                       not_binary=nb, not_binary_fraction=nb / n_free if n_free else 0.0,
                       not_binary_where=where, settings=st, history=hist)


@register("adaround", kind="layer",
          options={"preset": "aimet", "lam": None, "beta": None, "schedule": None, "warm_start": None,
                   "iterations": None, "lr": None, "batch_size": None, "normalization": None,
                   "mode": "gram", "seed": 0, "history": False, "history_every": None, "threads": None},
          summary="AdaRound continuous relaxation (Eqs. 21-24), Adam in numpy, hard rounding V >= 0")
def _adaround(problem, **opts) -> Outcome:
    run = adaround(problem, **opts)
    info = {"soft_loss": run.soft_loss, "not_binary_fraction": run.not_binary_fraction,
            "not_binary": run.not_binary, "not_binary_where": run.not_binary_where, "V": run.V,
            "settings": run.settings}
    if run.history is not None:
        info["history"] = run.history
    return Outcome(x=run.x, optimal=False, lower_bound=None, status="best found", info=info)
