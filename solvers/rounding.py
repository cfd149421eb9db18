"""Rounding baselines as solvers of the layer problem: nearest, floor, ceil, stochastic.

Each picks the up/down variable of every free weight from its residual ``r = W/s - floor(W/s)``
(see :mod:`reference.grid`): nearest ``r >= 1/2``, floor never, ceil ``r > 0``, stochastic with
probability ``r``. They act on a :class:`~solvers.LayerProblem` only: a bare QUBO has no residuals.
"""

from __future__ import annotations

import numpy as np

from ._registry import Outcome, register


def _outcome(problem, up) -> Outcome:
    return Outcome(x=(up & (problem.movable == 1)).astype(np.int8))


@register("nearest", kind="layer", residual=True, summary="round to nearest (ties up)")
def _nearest(problem) -> Outcome:
    return _outcome(problem, problem.residual >= 0.5)


@register("floor", kind="layer", residual=True, summary="always round down")
def _floor(problem) -> Outcome:
    return _outcome(problem, np.zeros(problem.shape, dtype=bool))


@register("ceil", kind="layer", residual=True, summary="always round up (weights on the grid stay)")
def _ceil(problem) -> Outcome:
    return _outcome(problem, problem.residual > 0)


@register("stochastic", kind="layer", options={"seed": 0}, residual=True,
          summary="round up with probability equal to the residual")
def _stochastic(problem, seed) -> Outcome:
    rng = np.random.default_rng(seed)
    return _outcome(problem, rng.random(problem.shape) < problem.residual)
