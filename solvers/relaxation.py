"""The AdaRound relaxation engine (Nagel et al. 2020, Eqs. 21-24; docs/adaround.md, docs/math.md).

Every weight gets a continuous variable ``V``; the soft weights are

.. math:: \\tilde W = s \\, (\\mathrm{clip}(\\lfloor W/s \\rfloor + z + h(V), q_{min}, q_{max}) - z)
          \\qquad \\text{(Eq. 22)}

with the rectified sigmoid (Eq. 23, ``zeta = 1.1``, ``gamma = -0.1``)

.. math:: h(V) = \\mathrm{clip}(\\sigma(V) (\\zeta - \\gamma) + \\gamma, 0, 1),

and the relaxation minimises (Eq. 21 with the regulariser of Eq. 24)

.. math:: J(V) = D(h(V)) + \\lambda f_{reg}(V), \\qquad
          f_{reg}(V) = \\sum_{ij} 1 - |2 h(V_{ij}) - 1|^{\\beta}.

Everything but the data term ``D`` is the same for every objective and lives here once: the
rectified sigmoid and its clamp, the regulariser and its gradient, the initialisation, the beta
schedule, Adam, the presets of the published implementations, the final hard rounding
``x = [V >= 0]`` and its convergence report. The data term is an object (:class:`DataTerm`) that
gives ``D`` and ``dD/dh`` for the soft rounding ``h``:

* Eq. 21, :class:`solvers.adaround.LocalLoss`: the local loss of Eq. 20 through the Gram matrix
  or on mini-batches of samples (method ``"adaround"``);
* Eq. 25, :class:`solvers.sequential.ActivationLoss` and
  :class:`solvers.conv_sequential.ConvActivationLoss`: the asymmetric reconstruction after the
  activation, on mini-batches of samples or patches.

Clipping inside the soft weights. With ``f = floor(W/s) + z`` and ``h`` in [0, 1] the clip of
Eq. 22 is inactive wherever the two neighbours differ (``movable = 1``: ``qmin <= f`` and
``f + 1 <= qmax``) and makes the soft weight constant wherever they coincide (``movable = 0``), so
``W~ = s (lo + movable h - z)`` with ``lo``/``movable`` of :class:`~solvers.LayerProblem`
(:func:`soft_weight_map`), and the data gradient is zero on clipped weights. The regulariser still
acts on every ``V`` (as in AIMET, BRECQ and PyTorch), so a clipped weight's ``h`` is driven to 0
or 1 like the others; it never changes the rounding.

Gradients follow PyTorch's conventions at the kinks: the clamp of Eq. 23 passes the gradient
where ``0 <= sigmoid(V) (zeta - gamma) + gamma <= 1`` (ends included, up to ``_KINK_TOL`` so that a
zero residual's ``V0 = -log 11`` stays on the boundary despite rounding) and ``|t|`` has
derivative ``sign(t)`` (0 at 0).

The optimiser is Adam (Kingma & Ba 2015) with PyTorch's defaults and bias correction, written
in numpy.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np

from reference.validation import Choice, Integer, Interval, Param, Real

from ._registry import resolve_options

__all__ = [
    "ZETA",
    "GAMMA",
    "BINARY_TOL",
    "Preset",
    "PRESETS",
    "Adam",
    "rectified_sigmoid",
    "init_from_residual",
    "regulariser",
    "beta_at",
    "SETTINGS",
    "resolve_settings",
    "soft_weight_map",
    "DataTerm",
    "Relaxation",
    "relax",
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

    With the moments ``m`` and ``v``: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``params <- params - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``. Updates ``params``
    (here the relaxation's ``V``) in place.
    """

    def __init__(self, shape, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr = float(lr)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0
        self._buf = np.zeros(shape)

    def step(self, params: np.ndarray, g: np.ndarray) -> None:
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
        params -= buf



# ---------------------------------------------------------------------------- settings
#: The relaxation's settings, each declared once (type, range, what None means): a preset fixes
#: them and a caller may override any of them. The method ``"adaround"`` declares these as its
#: options, and :func:`resolve_settings` (used by :func:`solvers.sequential.asymmetric_relaxation`
#: and :func:`solvers.conv_sequential.conv_asymmetric_relaxation`) checks the same declarations.
SETTINGS: dict[str, Param] = {
    "preset": Choice("aimet", tuple(PRESETS), doc="conventions of a published implementation"),
    "lam": Real(None, low=0, none=True, doc="regulariser weight (None: the preset's)"),
    "beta": Interval(None, ordered=False, low=1, none=True, doc="(start, end) of the beta schedule"),
    "schedule": Choice(None, ("cosine", "linear"), none=True),
    "warm_start": Real(None, low=0, high=1, open_high=True, none=True, doc="fraction of steps without regulariser"),
    "iterations": Integer(None, low=1, none=True),
    "lr": Real(None, low=0, open_low=True, none=True),
    "batch_size": Integer(None, low=1, none=True),
    "normalization": Choice(None, ("element", "sample"), none=True),
}
assert set(SETTINGS) == {"preset", *_TUNABLE}


def resolve_settings(preset="aimet", **overrides) -> dict:
    """The preset's hyper-parameters with the non-None ``overrides`` applied, each checked against
    its declaration in :data:`SETTINGS` (by the registry's one resolver)."""
    given = {"preset": preset, **overrides}
    resolve_options("relaxation", SETTINGS, given)
    p = PRESETS[preset]
    st = p.settings()
    st.update({k: v for k, v in overrides.items() if v is not None})
    for k in ("lam", "warm_start", "lr"):
        st[k] = float(st[k])
    for k in ("iterations", "batch_size"):
        st[k] = int(st[k])
    st["beta"] = (float(st["beta"][0]), float(st["beta"][1]))
    st["preset"] = preset
    st["step_base"] = p.step_base
    return st


def _far_from_binary(h: np.ndarray, free: np.ndarray) -> np.ndarray:
    return (h > BINARY_TOL) & (h < 1.0 - BINARY_TOL) & free


def _not_binary(h: np.ndarray, free: np.ndarray) -> int:
    return int(np.count_nonzero(_far_from_binary(h, free)))


# ---------------------------------------------------------------------------- the engine
def soft_weight_map(problem) -> tuple[np.ndarray, np.ndarray]:
    """``(A0, B)`` with ``W~ = A0 + B h`` (Eq. 22, clip resolved): ``A0 = s (lo - z)``, ``B = s movable``.

    ``problem`` is a :class:`~solvers.LayerProblem` (its grid, ``lo`` and ``movable``).
    """
    s, z = problem.grid.per_row(problem.n_rows)
    return s * (problem.lo - z), s * problem.movable


class DataTerm(abc.ABC):
    """The data part ``D(h)`` of the relaxed objective, as a function of the soft rounding ``h``.

    Subclasses set the attributes and implement the two methods; :class:`Relaxation` adds the
    rectified sigmoid, the regulariser and the chain rule through ``h(V)``.

    Attributes
    ----------
    shape : tuple
        Shape of ``V`` and ``h`` (the engine's working layout).
    weights_shape : tuple
        Shape of the layer's weight rows ``(out, in)``; ``V`` is reported in it.
    residual : array of shape ``shape``
        ``W/s - floor(W/s)``: the ``h`` the run starts from (:func:`init_from_residual`).
    free : bool array of shape ``shape``
        Weights whose two grid neighbours differ (``movable = 1``); only they are rounded.
    n_samples : int or None
        Rows a mini-batch draws from (``idx`` indexes them); None when only full data is possible.
    """

    shape: tuple
    weights_shape: tuple
    residual: np.ndarray
    free: np.ndarray
    n_samples: int | None = None

    @abc.abstractmethod
    def value_and_grad(self, h: np.ndarray, idx=None) -> tuple[float, np.ndarray]:
        """``(D, dD/dh)`` at ``h`` on the samples ``idx`` (all when None); the engine may overwrite
        the returned gradient."""

    @abc.abstractmethod
    def loss(self, h) -> float:
        """``D`` on the full data, for reports (the soft loss, or the hard one when ``h`` is binary)."""


class Relaxation:
    """``J(V) = D(h(V)) + lam f_reg(V)`` (Eqs. 21-24) and its gradient, for a data term ``D``.

    ``value_and_grad`` reuses internal buffers, so the returned gradient is overwritten by the
    next call.
    """

    def __init__(self, term: DataTerm):
        if not isinstance(term, DataTerm):
            raise ValueError(f"term must be a solvers.relaxation.DataTerm, found {type(term).__name__}")
        self.term = term
        n = term.shape
        self._sig = np.empty(n)
        self._u = np.empty(n)
        self._h = np.empty(n)
        self._t = np.empty(n)

    def value_and_grad(self, V: np.ndarray, lam: float = 0.0, beta: float | None = None, idx=None):
        """``(J, D, f_reg, dJ/dV)`` at ``V``.

        ``beta=None`` switches the regulariser off (warm start, ``f_reg`` reported as 0); ``idx``
        selects the samples of a mini-batch, otherwise the data term uses the full data.
        """
        sig, u, h, t = self._sig, self._u, self._h, self._t
        # sigmoid(V) = 1 / (1 + exp(-V)); exp overflows to inf (sigmoid 0) for V < -709
        np.negative(V, out=sig)
        with np.errstate(over="ignore"):
            np.exp(sig, out=sig)
        sig += 1.0
        np.reciprocal(sig, out=sig)
        np.multiply(sig, ZETA - GAMMA, out=u)
        u += GAMMA
        np.clip(u, 0.0, 1.0, out=h)
        loss, g = self.term.value_and_grad(h, idx)
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


def relax(term: DataTerm, st: dict, *, batches: bool, rng=None, history: bool = False,
          history_every: int = 1) -> tuple[np.ndarray, dict]:
    """Minimise Eq. 21 (data term ``term``) with Adam under the beta schedule; ``(x, info)``.

    ``st`` are settings from :func:`resolve_settings`. The run starts at ``h(V0) = residual``,
    takes ``st["iterations"]`` Adam steps (learning rate ``st["lr"]``), the regulariser off during
    the warm start and then weighted by ``st["lam"]`` with the exponent of :func:`beta_at`; with
    ``batches`` every step draws ``st["batch_size"]`` of ``term.n_samples`` rows without
    replacement from ``rng``. The rounding is ``x = [V >= 0]`` on the free weights (int8, shape
    ``term.weights_shape``); ``info`` holds ``V``, ``soft_loss`` (``term.loss`` of the final
    ``h``), ``not_binary`` (free weights whose ``h`` is farther than :data:`BINARY_TOL` from 0
    and 1), ``not_binary_fraction``, ``not_binary_where`` (their ``(row, column)``), ``settings``
    and, with ``history``, per checkpoint (every ``history_every`` steps and at the end):
    ``iteration``, ``loss`` (soft, full data), ``hard_loss``, ``regulariser`` (at the ``beta`` in
    force, or the start ``beta`` during the warm start), ``beta`` (NaN while off) and
    ``not_binary_fraction``.
    """
    rel = Relaxation(term)
    T = st["iterations"]
    V = init_from_residual(term.residual)
    opt = Adam(V.shape, lr=st["lr"])
    lam_ = st["lam"]
    base = st["step_base"]
    beta_pair, wsf, sched = st["beta"], st["warm_start"], st["schedule"]
    B = st["batch_size"]
    hist = {k: [] for k in ("iteration", "loss", "hard_loss", "regulariser", "beta",
                            "not_binary_fraction")} if history else None
    n_free = int(np.count_nonzero(term.free))

    def record(i, b):
        h = rectified_sigmoid(V)
        hist["iteration"].append(i)
        hist["loss"].append(term.loss(h))
        hist["hard_loss"].append(term.loss((V >= 0).astype(np.float64)))
        hist["regulariser"].append(regulariser(h, beta_pair[0] if b is None else b))
        hist["beta"].append(np.nan if b is None else b)
        hist["not_binary_fraction"].append(_not_binary(h, term.free) / n_free if n_free else 0.0)

    b = None
    for i in range(T):
        b = beta_at(i + base, T, beta_pair, wsf, sched)
        if hist is not None and i % history_every == 0:
            record(i, b)
        idx = rng.choice(term.n_samples, size=B, replace=False) if batches else None
        _, _, _, g = rel.value_and_grad(V, lam_, b, idx)
        opt.step(V, g)
    info = {}
    if hist is not None:
        record(T, b)
        info["history"] = {k: np.asarray(v) for k, v in hist.items()}
    h = rectified_sigmoid(V)
    soft_loss = term.loss(h)
    V, h, free = (a.reshape(term.weights_shape) for a in (V, h, term.free))
    x = ((V >= 0) & free).astype(np.int8)
    where = np.argwhere(_far_from_binary(h, free))
    nb = int(where.shape[0])
    info.update(soft_loss=soft_loss, not_binary_fraction=nb / n_free if n_free else 0.0, not_binary=nb,
                not_binary_where=where, V=V, settings=st)
    return x, info
