"""Strong heuristic baselines behind the same front door: tabu search and steepest descent
(dwave-samplers), and the GPTQ/OBQ error-feedback rule restricted to up/down.

**GPTQ rule** (Frantar et al. 2022, OBQ: Frantar & Alistarh 2022). Columns are decided one at
a time; after each decision the error is fed back to the columns not yet decided, which move
to their continuous least-squares optimum. On the local loss of one row (Eq. 20) this is Babai's
nearest-plane rule on the lattice of ``G``: with ``A = P + damp I = R^T R`` and decisions taken
in tree order (:func:`solvers.least_squares.nearest_plane`), the decided variable takes the value in
{0, 1} nearest to its conditional continuous optimum, i.e. the one of the two grid neighbours
(down, up) nearest to the error-corrected weight. ``damp`` is GPTQ's damping (``percdamp``:
a fraction of the mean diagonal added to the Hessian, 0.01 by default). Weights clipped at the
grid's end have no choice and are known fixed from the start (their error is part of ``a``).
``order="natural"`` decides columns left to right as GPTQ does; ``"act_order"`` decides them by
descending diagonal of ``G`` (GPTQ's ``act_order``). A non-convex ``P`` (a general QUBO) is
first made convex by the exact diagonal shift (module :mod:`solvers.least_squares`).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from reference.validation import Choice, Real

from ._registry import C_INT_MAX, Outcome, register
from .anneal import _sample
from .least_squares import _shift_for, nearest_plane

__all__ = ["gptq_rule", "GPTQ_ORDERS"]

GPTQ_ORDERS = ("natural", "act_order")


def gptq_rule(P, q, order: str = "natural", damp: float = 0.01) -> np.ndarray:
    """Up/down choices of the GPTQ error-feedback rule (trusted float64 input; int8 of shape (n,)).

    Parameters
    ----------
    P : array of shape (n, n), symmetric
    q : array of shape (n,)
    order : {"natural", "act_order"}, default="natural"
    damp : float, default=0.01
        Added to the diagonal of ``P`` as ``damp * mean(diag P)`` (GPTQ's damping).
    """
    n = P.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    diag = np.diag(P)
    A = P + max(0.0, damp * float(diag.mean())) * np.eye(n)
    b = q.copy()
    s = _shift_for(np.linalg.eigvalsh(A), b)  # exact on binaries: v_i^2 = v_i
    A[np.diag_indices(n)] += s
    b -= s
    # tree position n-1 is decided first
    perm = np.arange(n)[::-1] if order == "natural" else np.argsort(diag, kind="stable")
    L = np.linalg.cholesky(A[np.ix_(perm, perm)])
    y = solve_triangular(L, -b[perm] / 2, lower=True)
    v = np.empty(n, dtype=np.int8)
    v[perm] = nearest_plane(np.ascontiguousarray(L.T), y)
    return v


@register("gptq", kind="qubo", options={"order": Choice("natural", GPTQ_ORDERS), "damp": Real(0.01, low=0)},
          summary="GPTQ/OBQ error feedback (Babai nearest plane) restricted to up/down")
def _gptq(bqm, order, damp) -> Outcome:
    return Outcome(x=gptq_rule(bqm.P, bqm.q, order=order, damp=float(damp)),
                   info={"order": order, "damp": damp})


def _seed(seed):
    return None if seed is None else int(seed) % (2**31)


@register("tabu", kind="qubo",
          options={"num_reads": 1, "num_restarts": 20, "seed": 0,
                   "timeout": Real(None, low=0, high=C_INT_MAX, open_low=True, none=True, doc="ms per read")},
          summary="tabu search (dwave-samplers TabuSampler), best of num_reads; stops after "
                  "num_restarts restarts (deterministic) or timeout ms per read if given")
def _tabu(bqm, num_reads, num_restarts, timeout, seed) -> Outcome:
    """Multistart tabu search. With ``timeout=None`` (the default) each read stops after
    ``num_restarts`` restarts, so the same seed gives the same result on any machine; a
    ``timeout`` in ms makes the result depend on the machine's speed (dwave-samplers' own
    caveat)."""
    from dwave.samplers import TabuSampler

    kwargs = {"num_reads": int(num_reads), "num_restarts": int(num_restarts),
              "timeout": None if timeout is None else int(timeout)}
    if seed is not None:
        kwargs["seed"] = _seed(seed)
    return _sample(TabuSampler(), bqm, **kwargs)


@register("steepest", kind="qubo", options={"num_reads": 32, "seed": 0},
          summary="steepest descent from random states (dwave-samplers SteepestDescentSolver)")
def _steepest(bqm, num_reads, seed) -> Outcome:
    from dwave.samplers import SteepestDescentSolver

    kwargs = {"num_reads": int(num_reads)}
    if seed is not None:
        kwargs["seed"] = _seed(seed)
    return _sample(SteepestDescentSolver(), bqm, **kwargs)
