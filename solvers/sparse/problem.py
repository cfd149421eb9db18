r"""The sparse coding problem and the registration of its coders (docs/sparse.md).

:class:`SparseProblem` poses, for every row ``x_i`` of ``X`` (shape (N, n)) on the dictionary
``Phi`` (shape (n, K)),

.. math:: \min_A \sum_i F(a_i),\qquad F(a) = \tfrac12 \|x - \Phi a\|^2 + \sum_k r_k(a_k)

with the penalty terms ``r_k`` of :mod:`reference.penalties` (docs/sparse.md, "Objective and
shapes"). ``solvers.solve(problem, method)`` runs a coder registered here with
:func:`register_sparse` (``kind="sparse"`` in :data:`solvers.METHODS`) and returns a
:class:`solvers.Result` whose ``x`` holds the codes, shape (N, K), and whose ``energy`` is the
total objective recomputed by :func:`reference.sparse.objective_rows` in float64.

The helpers below (step sizes, thread pools, row blocks) are shared by the coders' modules.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from scipy.linalg import LinAlgError, eigvalsh
from threadpoolctl import threadpool_limits

from reference.validation import Array, Real, as_float_array, available_cpus, check_positive_int
from reference.penalties import PENALTIES
from reference.sparse import atom_norms, check_dictionary, check_lambda, check_penalty, check_signals, objective_rows

from .._registry import Outcome, register

__all__ = ["SparseProblem", "register_sparse"]

#: Unit roundoffs of float32 and float64 (the error bounds of the optimality tests).
U32, U64 = 2.0**-24, 2.0**-53
#: Rows per block of the certified l1 path and of the objective (fixed, so results do not
#: depend on ``threads``).
L1_BLOCK = 512


class SparseProblem:
    r"""Sparse codes of the signals ``X`` on the dictionary ``Phi``: minimise ``sum_i F(a_i)``.

    Validated once, here: ``Phi`` finite (n, K) with no zero atom, ``X`` finite (N, n) or one
    signal (n,), ``penalty`` a name of :data:`reference.penalties.PENALTIES`, ``lam`` finite
    and >= 0, and squared norms and products that do not overflow float64.

    Parameters
    ----------
    Phi : array of shape (n, K)
        Dictionary, one atom a column (norms need not be 1).
    X : array of shape (N, n) or (n,)
        Signals, one a row. With one signal of shape (n,), ``Result.x`` has shape (K,).
    penalty : {"l0", "l1", "l1/2", "cel0"}, default="l1"
    lam : float >= 0, default=0.1
    """

    def __init__(self, Phi, X, penalty: str = "l1", lam=0.1):
        self.penalty = check_penalty(penalty)
        self.lam = check_lambda(lam)
        with np.errstate(over="ignore"):  # overflowing norms are refused below
            self.Phi = check_dictionary(Phi)
        self.X, self.single = check_signals(X, self.Phi.shape[0])
        with np.errstate(over="ignore"):
            self.norms = atom_norms(self.Phi)
            self.xx = np.einsum("ij,ij->i", self.X, self.X)
        xmax = float(np.sqrt(np.max(self.xx, initial=0.0)))
        pmax = float(np.max(self.norms, initial=0.0))
        if not (np.isfinite(xmax) and np.isfinite(pmax * pmax) and np.isfinite(xmax * pmax)):
            raise ValueError("X and Phi are too large for float64: squared norms ||x||^2, ||phi||^2 or "
                             "products x^T phi overflow; rescale them")
        self._L = None
        self._B = None
        self._G = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, K)``: the shape of the codes (before a single signal is flattened)."""
        return self.X.shape[0], self.Phi.shape[1]

    def __repr__(self) -> str:
        n, K = self.Phi.shape
        return f"SparseProblem(N={self.X.shape[0]}, n={n}, K={K}, penalty={self.penalty!r}, lam={self.lam:.6g})"

    @property
    def G(self) -> np.ndarray:
        """``Phi^T Phi``, shape (K, K)."""
        if self._G is None:
            self._G = self.Phi.T @ self.Phi
        return self._G

    @property
    def B(self) -> np.ndarray:
        """``X Phi``, shape (N, K): each signal's correlations with the atoms."""
        if self._B is None:
            self._B = self.X @ self.Phi
        return self._B

    def products(self, pool):
        """Compute ``B`` on row blocks of a thread pool (BLAS on one thread each)."""
        if self._B is None and pool is not None:
            B = np.empty((self.X.shape[0], self.Phi.shape[1]))
            map_blocks(pool, lambda sl: np.matmul(self.X[sl], self.Phi, out=B[sl]), row_blocks(self.X.shape[0]))
            self._B = B
        return self.B

    def objective(self, A, threads=None) -> np.ndarray:
        """``F`` of each row of the codes ``A`` (N, K), float64 (:func:`reference.sparse.objective_rows`),
        on blocks of :data:`L1_BLOCK` rows spread over ``threads`` threads (None: every core); the
        values do not depend on ``threads``."""
        A = np.asarray(A, dtype=np.float64).reshape(self.shape)
        blocks = row_blocks(A.shape[0])
        with thread_pool(min(check_threads(threads), len(blocks))) as pool:
            parts = map_blocks(pool, lambda sl: objective_rows(self.Phi, self.X[sl], A[sl], self.penalty, self.lam,
                                                               self.norms), blocks)
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def lipschitz(self) -> float:
        """``L = ||Phi||_2^2``, the Lipschitz constant of the gradient of the smooth part."""
        if self._L is None:
            n, K = self.Phi.shape
            self._L = largest_eigenvalue(self.Phi, None if n < K else self.G)
        return self._L


def register_sparse(name, *, options, penalties=PENALTIES, summary="", exact=False):
    """Register a sparse coder ``run(problem, **opts) -> Outcome`` in :data:`solvers.METHODS`
    (``kind="sparse"``); a problem whose penalty is not in ``penalties`` is refused before it runs."""
    penalties = tuple(penalties)

    def deco(run):
        def checked(problem, **opts):
            if problem.penalty not in penalties:
                raise ValueError(f"method {name!r} needs penalty in {list(penalties)}, found {problem.penalty!r}")
            return run(problem, **opts)

        checked.__doc__ = run.__doc__
        register(name, kind="sparse", summary=summary, options=options, exact=exact,
                 certifies_bound=exact)(checked)
        return run

    return deco


def outcome(A, iterations, converged, optimal=False, status="", info=None) -> Outcome:
    """A coder's :class:`solvers._registry.Outcome`: codes ``A`` (N, K) float64, with ``iterations``
    (the largest over signals) and ``converged`` (every signal met the stopping rule) in ``info``."""
    info = dict(info or {})
    info.update(iterations=int(iterations), converged=bool(converged))
    return Outcome(x=np.asarray(A, dtype=np.float64), optimal=bool(optimal), status=status, info=info)


#: Declarations shared by the iterative coders (checked by the one resolver, solvers._registry).
TOL = Real(1e-6, low=0, doc="stopping rule: relative change of the codes")
INIT = Array(None, what="initial codes, an array of shape (N, K)", none=True)
STEP = Real(None, low=0, open_low=True, none=True, doc="step size, at most 1/L (None: 1/L)")


def init_codes(init, N, K):
    if init is None:
        return np.zeros((N, K))
    A = as_float_array(init, "init")
    if A.shape != (N, K):
        raise ValueError(f"init must have shape ({N}, {K}), found {A.shape}")
    return A


def step_size(prob: SparseProblem, step):
    if step is None:
        return 1.0 / prob.lipschitz
    step = float(as_float_array(step, "step", ndim=0))
    if not 0 < step <= 1.0 / prob.lipschitz * (1 + 1e-12):
        raise ValueError(f"step must be in (0, 1/L] with L = ||Phi||_2^2 = {prob.lipschitz:.6g}, found {step!r}")
    return step


def check_threads(threads):
    if threads is None:
        return available_cpus()
    return check_positive_int(threads, "threads", minimum=1)


@contextmanager
def thread_pool(threads):
    """A pool of ``threads`` workers with the BLAS libraries on one thread each, or None for 1."""
    if threads <= 1:
        yield None
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        yield pool


def row_blocks(n):
    return [slice(s, min(n, s + L1_BLOCK)) for s in range(0, n, L1_BLOCK)]


def map_blocks(pool, fn, items):
    return list(pool.map(fn, items)) if pool is not None and len(items) > 1 else [fn(x) for x in items]


def largest_eigenvalue(Phi, G):
    """``||Phi||_2^2``: the largest eigenvalue of ``Phi Phi^T`` or of ``G = Phi^T Phi``, the smaller one
    (``G`` is used, and needed, only when ``n >= K``)."""
    n, K = Phi.shape
    M = Phi @ Phi.T if n < K else G  # same nonzero spectrum
    m = M.shape[0]
    try:
        return float(eigvalsh(M, subset_by_index=[m - 1, m - 1])[0])
    except LinAlgError:  # LAPACK's syevr can fail on a cluster of equal eigenvalues (orthonormal atoms)
        return float(eigvalsh(M)[-1])


