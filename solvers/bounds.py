"""Proven lower bounds on the minimum of a binary quadratic model, for any BQM.

Two bounds, each valid for every ``E(v) = v^T P v + q^T v + c`` (PSD or not):

* **Box-QP bound.** For binary ``v``, ``v_i^2 = v_i``, so for any ``d >= 0``

  .. math:: E(v) = v^T (P + d I) v + (q - d \\mathbf 1)^T v + c \\quad (v \\in \\{0,1\\}^n).

  With ``d`` large enough that ``A = P + d I`` is positive semidefinite the right-hand side
  ``f`` is convex, and its minimum over the box ``[0, 1]^n`` is at most the binary optimum.
  ``f`` is minimised numerically (bounded-variable least squares on the tree search's factor,
  :func:`solvers.least_squares.least_squares_form`) and the bound is *certified* at the point ``x``
  reached: by convexity ``f(u) >= f(x) + g^T (u - x)`` for every ``u`` with ``g = 2 A x + b``,
  so

  .. math:: \\min_{[0,1]^n} f \\;\\ge\\; f(x) - g^T x + \\sum_i \\min(g_i, 0),

  whatever the optimiser's accuracy. For PSD ``P`` (the local loss of Eq. 20) ``d`` is only a
  tiny margin covering the eigenvalue solver's rounding, and the bound is the continuous
  minimum of the PSD form.
* **Roof duality** (Hammer, Hansen, Simeone 1984), via dwave-preprocessing: the best lower
  bound from posiforms, plus the variables it fixes. The library works on a fixed-point copy of
  the model: every coefficient times ``ratio = (2^63 - 1) / (4 M)`` (``M`` the largest of the
  coefficients and the posiform's summed linear terms), *truncated* to an integer. ``strict=True``
  fixes the variables that are strongly persistent **for that copy** (the same value in every
  minimiser of the copy). The copy's energies differ from the model's by less than
  ``delta = (n + m) / ratio`` (``m`` couplings), so fixing the variables keeps the optimum to
  within ``delta`` (about ``1e-18 (n + m) M``), and when the model's distinct energy levels are
  more than ``delta`` apart some minimiser takes the fixed values. It is *not* strong
  persistency for the model itself: an exact tie is broken by the truncation (``P = -1``
  everywhere except ``P_01 = P_02 = 3``, ``q = -1``, ``n = 8`` has minimisers with ``x_0 = 0``
  and ``x_0 = 1``; ``x_0 = 1`` is fixed, and ``x_0 = 0`` if the model is scaled by 1000).

Both are lowered by a relative ``1e-9`` of the model's scale so that floating-point rounding
can never lift them above the true optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import lsq_linear

from .bqm import BQM
from .runtime import blas_threads
from .least_squares import _pow2_scale, _unscale_bound, least_squares_form

__all__ = ["Bounds", "box_qp_bound", "convex_shift", "lower_bounds", "roof_duality_bound"]

_SAFETY = 1e-9  # relative slack subtracted from every bound (safe direction)



def _energy_scale(P: np.ndarray, q: np.ndarray, c: float) -> float:
    """A magnitude of the energies over the box: ``sum |P| + sum |q| + |c|``."""
    return float(np.abs(P).sum() + np.abs(q).sum() + abs(c))


def convex_shift(P: np.ndarray, eigenvalues: np.ndarray | None = None) -> float:
    """Smallest safe ``d >= 0`` with ``P + d I`` positive semidefinite.

    ``d = max(0, -lambda_min) + margin``, with ``margin = 64 n eps ||P||_2`` covering the
    eigenvalue solver's backward error (so the shifted matrix is PSD even though
    ``lambda_min`` is only computed to that accuracy).
    """
    n = P.shape[0]
    if n == 0:
        return 0.0
    w = np.linalg.eigvalsh(P) if eigenvalues is None else eigenvalues
    norm = float(np.max(np.abs(w)))
    margin = 64 * n * np.finfo(float).eps * norm
    return float(max(0.0, -float(w[0])) + margin)


def _box_qp_bound(P, q, c, max_iter: int = 2000, diagonal=None) -> tuple[float, np.ndarray]:
    """Certified lower bound of the box-QP relaxation and the box point it was certified at.

    The convex form used is the exact least-squares rewrite ``||R v - y||^2 + c0`` (``A = R^T R
    = P + d I`` positive definite, equal to ``E`` on binary points); its box minimum is found by
    bounded-variable least squares (scipy's ``lsq_linear``) and then certified as above.
    ``diagonal``: the vector ``u`` of the rewrite ``P + diag u`` (the tree's SDP-dual diagonal);
    None for the uniform shift. The certificate holds for any ``u``.
    """
    n = P.shape[0]
    if n == 0:
        return float(c), np.zeros(0)
    s = _pow2_scale(P, q, c)
    P, q, c = P * s, q * s, float(c) * s
    form = least_squares_form(P, q, c, order="natural",
                              diagonal=None if diagonal is None else diagonal * s)
    res = lsq_linear(form.R, form.y, bounds=(0.0, 1.0), method="bvls", max_iter=int(max_iter))
    x = np.clip(res.x, 0.0, 1.0)
    d = form.diagonal  # A = P + diag(d), positive definite
    b = q - d
    Ax = P @ x + d * x
    fx = float(x @ Ax + b @ x + c)
    g = 2 * Ax + b
    bound = fx - float(g @ x) + float(np.minimum(g, 0.0).sum())
    A_scale = float(np.abs(P).sum()) + float(np.abs(d).sum())
    bound = bound - _SAFETY * (A_scale + float(np.abs(b).sum()) + abs(c))
    if not np.isfinite(bound):
        raise ValueError("the box-QP bound of this model is not finite (its dynamic range exceeds "
                         "float64); use method='exhaustive'")
    return _unscale_bound(bound, s), x


def box_qp_bound(bqm: BQM, max_iter: int = 2000) -> float:
    """Certified minimum of the convex continuous extension over ``[0, 1]^n`` (a lower bound).

    Parameters
    ----------
    bqm : BQM
        Any model; a non-convex ``P`` is first made convex by the diagonal shift
        ``P + d I``, ``q - d`` (exact on binary points).
    max_iter : int, default=2000
        Iterations of the bounded least-squares solver. Fewer give a weaker, still valid bound.

    Returns
    -------
    float
        ``<= min_{v in {0,1}^n} E(v)``.
    """
    if not isinstance(bqm, BQM):
        raise ValueError(f"bqm must be a solvers.BQM, found {type(bqm).__name__}")
    with blas_threads(1):  # one BLAS thread: as fast on an idle machine, far faster on a busy one
        return _box_qp_bound(bqm.P, bqm.q, bqm.c, max_iter)[0]


def _index_dimod(P, q, c):
    import dimod

    n = P.shape[0]
    Q = np.triu(2 * P, k=1)
    return dimod.BinaryQuadraticModel(np.diag(P) + q, Q, float(c), dimod.BINARY) if n else \
        dimod.BinaryQuadraticModel({}, {}, float(c), dimod.BINARY)


def _roof_duality(P, q, c, strict: bool = True) -> tuple[float, dict]:
    try:
        from dwave.preprocessing import roof_duality
    except ImportError:  # pragma: no cover - a runtime dependency
        raise ImportError("roof duality needs the package 'dwave-preprocessing' "
                          "(pip install dwave-preprocessing)") from None
    if P.shape[0] == 0:
        return float(c), {}
    # dwave-preprocessing converts the coefficients to fixed point: rescale them to [0.5, 1)
    # by a power of two first (below about 1e-290 its integer scaling overflowed).
    s = _pow2_scale(P, q, c)
    P, q, c = P * s, q * s, float(c) * s
    lb, fixed = roof_duality(_index_dimod(P, q, c), strict=bool(strict))
    fixed = {int(i): int(val) for i, val in fixed.items()}
    return _unscale_bound(float(lb) - _SAFETY * _energy_scale(P, q, c), s), fixed


def roof_duality_bound(bqm: BQM, strict: bool = True) -> tuple[float, dict]:
    """Roof-duality lower bound and the variables it fixes (dwave-preprocessing).

    Parameters
    ----------
    bqm : BQM
    strict : bool, default=True
        The library's strong persistencies (False: also its weak ones) of its fixed-point copy of
        the model (module docs): fixing the returned variables keeps the optimum up to that
        copy's resolution, about ``1e-18`` of the model's scale per coefficient, and among
        exactly tied minimisers the truncation picks which values are fixed; they are not
        guaranteed to be the same in every minimiser of the model.

    Returns
    -------
    (float, dict)
        The bound, and ``{index: value}`` of the fixed variables (indices 0..n-1, values 0/1).
    """
    if not isinstance(bqm, BQM):
        raise ValueError(f"bqm must be a solvers.BQM, found {type(bqm).__name__}")
    return _roof_duality(bqm.P, bqm.q, bqm.c, strict)


@dataclass
class Bounds:
    """Lower bounds on ``min E`` over ``{0,1}^n``.

    Attributes
    ----------
    box_qp : float
        Certified continuous box-QP minimum of the convexified form.
    roof_duality : float
        Roof-duality bound.
    fixed : dict
        ``{index: value}`` fixed by roof duality (fixing them keeps the optimum, module docs).
    shift : float
        The smallest safe diagonal ``d`` making ``P + d I`` PSD (:func:`convex_shift`); the
        box-QP bound uses the tree's slightly larger shift (``lambda_min(P + d I) = 1e-6 ||P||``).
    """

    box_qp: float
    roof_duality: float
    fixed: dict = field(default_factory=dict)
    shift: float = 0.0

    @property
    def best(self) -> float:
        """The larger (stronger) of the two bounds."""
        return max(self.box_qp, self.roof_duality)


def lower_bounds(bqm: BQM) -> Bounds:
    """Both bounds (and roof duality's fixed variables) for any BQM.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import BQM
    >>> b = lower_bounds(BQM(np.eye(2), [-3.0, 1.0]))
    >>> b.best <= -2.0  # the optimum is E([1, 0]) = 1 - 3 = -2
    True
    """
    if not isinstance(bqm, BQM):
        raise ValueError(f"bqm must be a solvers.BQM, found {type(bqm).__name__}")
    with blas_threads(1):  # as box_qp_bound (measured: docs/performance.md, "The exact frontier")
        box, _ = _box_qp_bound(bqm.P, bqm.q, bqm.c)
    rd, fixed = _roof_duality(bqm.P, bqm.q, bqm.c)
    return Bounds(box_qp=box, roof_duality=rd, fixed=fixed, shift=convex_shift(bqm.P))
