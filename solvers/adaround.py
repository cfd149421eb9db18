"""Method ``"adaround"``: the AdaRound relaxation of Eq. 21 on a layer (Nagel et al. 2020; docs/adaround.md, docs/conventions.md).

The relaxation (Eqs. 21-24: soft weights, rectified sigmoid, regulariser, schedule, Adam) is the
engine of :mod:`solvers.relaxation`; this module gives it the data term of Eq. 21,

.. math:: D(h) = c \\, L(\\tilde W), \\qquad L(\\tilde W) = \\sum_k e_k^T G e_k, \\quad e = \\tilde W - W,

the local loss of Eq. 20 in this project's unit (mean over samples of the squared output error
summed over the output rows), with ``c`` the preset's loss normalisation: 1 for ``"sample"``
(AIMET, BRECQ) and ``1/out`` for ``"element"`` (PyTorch's experimental AdaRound, a mean over every
element of the ``(N, out)`` output). With the clip of Eq. 22 resolved, ``e = A + B h`` with
``A = s (lo - z) - W`` and ``B = s movable`` (docs/math.md, "The binary quadratic model").

Two data modes give the same objective:

* ``"gram"``: full batch through ``G = X^T X / N``; each step costs one ``(out x in)(in x in)``
  product, independent of ``N``, and is deterministic.
* ``"batch"``: mini-batches of ``batch_size`` samples drawn without replacement from ``X`` at
  every step (AIMET's and BRECQ's way; an unbiased estimate of the same loss); each step costs
  two ``(out x in)(in x batch)`` products. Needs a LayerProblem built from ``X``.

The final rounding is ``x = [V >= 0]`` (round up where ``sigmoid(V) >= 1/2``), and
:func:`solvers.solve` reports the local loss of that hard rounding, never the soft one.
"""

from __future__ import annotations

import numpy as np

from reference.validation import Choice, Flag, Integer

from ._registry import Outcome, register
from .layer import LayerProblem
from .relaxation import SETTINGS, DataTerm, relax, resolve_settings, soft_weight_map
from .runtime import blas_threads

__all__ = ["LocalLoss"]


class LocalLoss(DataTerm):
    """The data term of Eq. 21: ``c L(W~)``, ``L`` the local loss (Eq. 20) of the soft weights.

    Parameters
    ----------
    problem : LayerProblem
    normalization : {"sample", "element"}, default="sample"

    ``value_and_grad(h, idx)`` evaluates ``c L`` and ``d(c L)/dh = 2 c (E G) * B`` on the full data
    (through ``G``) or on the samples ``X[idx]`` (``E G`` replaced by ``(X_b E^T)^T X_b / |b|``);
    it reuses internal buffers. ``loss(h)`` is ``L`` without ``c``, in the project's unit.
    """

    def __init__(self, problem: LayerProblem, normalization: str = "sample"):
        if not isinstance(problem, LayerProblem):
            raise ValueError(f"problem must be a solvers.LayerProblem, found {type(problem).__name__}")
        if normalization not in ("element", "sample"):
            raise ValueError(f"normalization must be one of ['element', 'sample'], found {normalization!r}")
        A0, B = soft_weight_map(problem)
        self.problem = problem
        self.shape = self.weights_shape = problem.shape
        self.residual = problem.residual
        self.free = problem.movable == 1
        self.G = problem.G  # (in, in), or (groups, in, in) for a grouped convolution (one Gram per group)
        self.X = getattr(problem, "X", None)
        self.n_samples = None if self.X is None else self.X.shape[0]
        # e = A + B h: the error of the soft weights (docs/math.md, "The binary quadratic model")
        self.A = A0 - problem.W
        self.B = B
        self.c = 1.0 if normalization == "sample" else 1.0 / max(1, problem.n_rows)
        n = self.shape
        self._E = np.empty(n)
        self._EG = np.empty(n)
        self._g = np.empty(n)

    def loss(self, h) -> float:
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

    def value_and_grad(self, h, idx=None):
        E, EG, g = self._E, self._EG, self._g
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
        # dD/dh: 2 c (E G) * B  (zero where movable = 0: the clip of Eq. 22)
        np.multiply(EG, self.B, out=g)
        g *= scale
        return loss, g


@register("adaround", kind="layer", slow_first=3,
          options={**SETTINGS,
                   "mode": Choice("gram", ("batch", "gram")), "seed": 0, "history": Flag(False),
                   "history_every": Integer(None, low=1, none=True), "threads": None},
          summary="AdaRound continuous relaxation (Eqs. 21-24), Adam in numpy, hard rounding V >= 0")
def _adaround(problem: LayerProblem, *, mode, seed, history, history_every, threads, **settings) -> Outcome:
    """Run the AdaRound relaxation (Eqs. 21-24) on every row of a layer at once.

    Options (``solve(problem, "adaround", ...)``; declared once, with the relaxation's settings
    :data:`solvers.relaxation.SETTINGS`): ``preset`` in {"aimet", "brecq", "brecq_imagenet",
    "torch_ao"} sets the conventions of a published implementation
    (:data:`solvers.relaxation.PRESETS`, docs/adaround.md); ``lam``, ``beta`` (start, end),
    ``schedule``, ``warm_start``, ``iterations``, ``lr``, ``batch_size`` and ``normalization``
    override it. ``mode`` is ``"gram"`` (full batch through ``G``, deterministic) or ``"batch"``
    (mini-batches from ``problem.X``, seeded by ``seed``). ``history=True`` records the run every
    ``history_every`` steps (default ``iterations / 100``). ``threads`` caps the BLAS threads
    during the run (:func:`solvers.runtime.blas_threads`): the products are small, and on a busy machine a second BLAS
    thread can make each step several times slower.

    ``info``: ``soft_loss`` (local loss of the final soft weights), ``not_binary``,
    ``not_binary_fraction``, ``not_binary_where``, ``V``, ``settings`` and, with ``history``,
    ``history`` (see :func:`solvers.relaxation.relax`).
    """
    st = resolve_settings(**settings)
    every = max(1, st["iterations"] // 100) if history_every is None else int(history_every)
    term, what = _data_term(problem, st, mode)
    if mode == "batch":
        if term.n_samples is None:
            raise ValueError(
                "mode='batch' draws mini-batches from the samples: build the LayerProblem with "
                "X=... (it was built from G), or use mode='gram'"
            )
        if st["batch_size"] > term.n_samples:
            raise ValueError(f"batch_size must be <= the number of {what} == {term.n_samples}, "
                             f"found {st['batch_size']}")
    rng = np.random.default_rng(seed)
    st["mode"] = mode
    st["seed"] = seed
    st["threads"] = threads
    with blas_threads(threads):
        x, info = relax(term, st, batches=mode == "batch", rng=rng, history=history, history_every=every)
    if hasattr(problem, "objective_name"):
        info = {"objective": problem.objective_name, **info}
    return Outcome(x=x, optimal=False, lower_bound=None, status="best found", info=info)


def _data_term(problem, st, mode):
    """``(term, what a mini-batch draws)``: the local loss of Eq. 21 (:class:`LocalLoss`), or the
    problem's own term when it has one (Eq. 25 with an activation,
    :class:`solvers.sequential.ActivationLayer`: mini-batches only, the "sample" normalisation)."""
    own = getattr(problem, "relaxation_term", None)
    if own is None:
        return LocalLoss(problem, st["normalization"]), "samples N"
    if mode != "batch":
        raise ValueError(f"{type(problem).__name__} (Eq. 25 with an activation) has no Gram form: use mode='batch'")
    if st["normalization"] != "sample":
        raise ValueError(f"the relaxation of Eq. 25 supports the 'sample' normalisation, preset {st['preset']!r} "
                         f"uses {st['normalization']!r}")
    return own(), problem.samples_name
