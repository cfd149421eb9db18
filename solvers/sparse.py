r"""Sparse coders behind one front door, and binary sparse coding as a QUBO (docs/sparse.md).

``code(Phi, X, penalty=..., lam=..., method=...)`` minimises (or, for the greedy and
sparsity-constrained methods, approximately minimises)

.. math:: F(a) = \tfrac12 \|x - \Phi a\|^2 + \sum_i r_i(a_i)

for every row ``x`` of ``X`` (shape (N, n)), with ``Phi`` of shape (n, K) and the penalty
terms ``r_i`` of :mod:`reference.penalties`. Every method returns a :class:`SparseResult`
whose ``objective`` is recomputed by :func:`reference.sparse.objective` in float64.

Methods (see :func:`method_names`):

``ista``, ``fista``
    Proximal gradient, batched over signals with one ``(N, K) x (K, K)`` matrix product per
    iteration; FISTA restarts its momentum for a signal whose objective went up (O'Donoghue
    and Candes 2015). A signal stops when its code's relative change is below ``tol``. For
    ``l1`` with ``polish=True`` (the default) the iterations only choose supports and every
    converged code is certified: :func:`_l1_certified` runs float32 steps of up to ``1.9/L``
    on blocks of signals (``step_scale``, ``dtype``), and the exact finish solves each
    support and sign pattern in float64 and accepts a code only where the Lasso optimality
    conditions hold to ``kkt_tol`` (:func:`_certify`); ``threads`` spreads the blocks
    over a thread pool. ``info["kkt_verified"]`` counts the certified codes.
``iht``
    Iterative hard thresholding keeping the ``n_nonzero`` largest entries (Blumensath and
    Davies 2008): the sparsity-constrained problem, not the l0-penalised one (that one is
    ``ista``/``fista`` with ``penalty="l0"``).
``omp``
    Orthogonal matching pursuit with incremental Cholesky factors, batched. Stops at
    ``n_nonzero`` atoms or, when ``n_nonzero`` is None, when adding the best atom lowers
    ``1/2 ||r||^2`` by no more than ``lam`` (the l0 objective would not decrease).
``exact``
    The exact l0 optimum, ``min_S 1/2 ||x - Phi_S a_S||^2 + lam |S|`` with least-squares
    amplitudes, by enumerating supports level by level with incremental Cholesky factors
    shared by the batch. Supports larger than ``max_n ||x_n||^2 / (2 lam)`` cannot be
    optimal and are not visited. Refuses ``K > max_atoms``. Also exact for ``cel0``, whose
    global minimisers and minimum equal those of l0.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reference._validation import as_float_array, check_positive_int
from reference.penalties import PENALTIES, penalty_elementwise, prox
from reference.sparse import (
    _objective,
    atom_norms,
    check_dictionary,
    check_lambda,
    check_penalty,
    check_signals,
)

from ._registry import resolve_options
from .bqm import BQM
from .result import aligned_repr

__all__ = [
    "EXACT_MAX_ATOMS",
    "EXACT_HARD_MAX_ATOMS",
    "SPARSE_METHODS",
    "SparseResult",
    "binary_sparse_coding_bqm",
    "code",
    "exact_l0",
    "method_names",
]

#: Default limit of the exact l0 solver (2^20 supports, seconds); raise with ``max_atoms``.
EXACT_MAX_ATOMS = 20
#: Absolute limit of the exact l0 solver: the shared factors of the widest level take
#: ``C(K, K/2) (K/2)^2`` floats (0.7 GB at K = 22).
EXACT_HARD_MAX_ATOMS = 22


# ---------------------------------------------------------------------------------- result type
@dataclass
class SparseResult:
    """Outcome of :func:`code`, whatever method ran.

    Attributes
    ----------
    codes : ndarray of shape (N, K) (or (K,) for one signal)
    objective : ndarray of shape (N,) (or a float)
        ``F`` of each code, recomputed in float64 by :func:`reference.sparse.objective`.
    iterations : int
        Largest number of iterations (or greedy steps, or visited supports' depth) over signals.
    converged : bool
        True when every signal met the method's stopping rule (always True for ``exact``).
    optimal : bool
        True only when the method proved every code optimal (``exact``).
    seconds : float
    method, penalty : str
    lam : float
    status : str
    info : dict
    """

    codes: np.ndarray
    objective: np.ndarray
    iterations: int
    converged: bool
    optimal: bool
    seconds: float
    method: str
    penalty: str
    lam: float
    status: str
    info: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Sum of the objective over signals."""
        return float(np.sum(self.objective))

    def __repr__(self) -> str:
        rows = [
            ("method", self.method),
            ("penalty", f"{self.penalty} (lam={self.lam:.6g})"),
            ("status", self.status),
            ("total", f"{self.total:.10g}"),
            ("converged", str(self.converged)),
            ("optimal", str(self.optimal)),
            ("iterations", str(self.iterations)),
            ("seconds", f"{self.seconds:.4g}"),
            ("codes", f"float64 array of shape {np.shape(self.codes)}"),
            ("info", ", ".join(sorted(self.info)) or "-"),
        ]
        return aligned_repr("SparseResult", rows)


@dataclass
class _Out:
    codes: np.ndarray
    iterations: int
    converged: bool
    optimal: bool = False
    status: str = ""
    info: dict = field(default_factory=dict)
    objective: np.ndarray | None = None  # set by a backend that computed it on its own thread pool


@dataclass(frozen=True)
class _SparseMethod:
    name: str
    run: Callable[..., _Out]
    options: dict
    penalties: tuple
    summary: str


#: Registry ``name -> method`` of the sparse coders (the dispatch table and the list of names).
SPARSE_METHODS: dict[str, _SparseMethod] = {}


def _register(name, *, options, penalties=PENALTIES, summary=""):
    def deco(run):
        SPARSE_METHODS[name] = _SparseMethod(name, run, dict(options), tuple(penalties), summary)
        return run

    return deco


def method_names() -> list[str]:
    """Sorted names of the sparse coding methods."""
    return sorted(SPARSE_METHODS)


class _Problem:
    """Clean inputs shared by the backends: Gram matrix, correlations, norms."""

    def __init__(self, Phi, X, penalty, lam):
        self.Phi, self.X, self.penalty, self.lam = Phi, X, penalty, lam
        self.norms = atom_norms(Phi)
        self.xx = np.einsum("ij,ij->i", X, X)
        self._L = None
        self._B = None
        self._G = None

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
            _map(pool, lambda sl: np.matmul(self.X[sl], self.Phi, out=B[sl]), _row_blocks(self.X.shape[0]))
            self._B = B
        return self.B

    def objective(self, A, pool=None) -> np.ndarray:
        """:func:`reference.sparse.objective` of the codes ``A`` (float64), on row blocks of ``pool``."""
        parts = _map(pool, lambda sl: _objective(self.Phi, self.X[sl], A[sl], self.penalty, self.lam, self.norms),
                     _row_blocks(A.shape[0]))
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def lipschitz(self) -> float:
        """``L = ||Phi||_2^2``, the Lipschitz constant of the gradient of the smooth part."""
        if self._L is None:
            self._L = _largest_eigenvalue(self.Phi, self.G)
        return self._L


# ---------------------------------------------------------------------------------- front door
def code(Phi, X, penalty: str = "l1", lam=0.1, method: str = "fista", **options) -> SparseResult:
    r"""Sparse codes of the signals ``X`` on the dictionary ``Phi``.

    Parameters
    ----------
    Phi : array of shape (n, K)
        Dictionary, one atom a column (norms need not be 1; no zero atom).
    X : array of shape (N, n) or (n,)
        Signals, one a row.
    penalty : {"l0", "l1", "l1/2", "cel0"}, default="l1"
        Penalty of the objective (conventions in :mod:`reference.penalties`).
    lam : float >= 0, default=0.1
    method : str, default="fista"
        One of :func:`method_names`.
    **options
        The method's own options; an unknown one is an error listing those it accepts.

    Returns
    -------
    SparseResult
    """
    if method not in SPARSE_METHODS:
        raise ValueError(f"method must be one of {method_names()}, found {method!r}")
    m = SPARSE_METHODS[method]
    opts = resolve_options(method, m.options, options)
    penalty = check_penalty(penalty)
    if penalty not in m.penalties:
        raise ValueError(f"method {method!r} needs penalty in {list(m.penalties)}, found {penalty!r}")
    lam = check_lambda(lam)
    Phi = check_dictionary(Phi)
    X, single = check_signals(X, Phi.shape[0])
    with np.errstate(over="ignore"):  # checked at once by _check_magnitudes
        prob = _Problem(Phi, X, penalty, lam)
    _check_magnitudes(prob)
    t0 = time.perf_counter()
    out = m.run(prob, **opts)
    seconds = time.perf_counter() - t0
    A = np.asarray(out.codes, dtype=np.float64)
    f = prob.objective(A) if out.objective is None else out.objective
    status = out.status or ("optimal" if out.optimal else "converged" if out.converged else "iteration limit")
    if single:
        A = A[0]
        f = float(f[0])
    return SparseResult(codes=A, objective=f, iterations=int(out.iterations), converged=bool(out.converged),
                        optimal=bool(out.optimal), seconds=seconds, method=method, penalty=penalty, lam=lam,
                        status=status, info=out.info)


# ---------------------------------------------------------------------------------- helpers
def _check_magnitudes(prob) -> None:
    """Refuse signals or atoms whose squared norms or products overflow float64 (the objective
    ``1/2 ||x - Phi a||^2`` could not be computed)."""
    xmax = float(np.sqrt(np.max(prob.xx, initial=0.0)))
    pmax = float(np.max(prob.norms, initial=0.0))
    if not (np.isfinite(xmax) and np.isfinite(pmax * pmax) and np.isfinite(xmax * pmax)):
        raise ValueError("X and Phi are too large for float64: squared norms ||x||^2, ||phi||^2 or "
                         "products x^T phi overflow; rescale them")


def _check_iter_opts(max_iter, tol):
    max_iter = check_positive_int(max_iter, "max_iter", minimum=1)
    tol = float(as_float_array(tol, "tol", ndim=0))
    if tol < 0:
        raise ValueError(f"tol must be >= 0, found {tol!r}")
    return max_iter, tol


def _init_codes(init, N, K):
    if init is None:
        return np.zeros((N, K))
    A = as_float_array(init, "init")
    if A.shape != (N, K):
        raise ValueError(f"init must have shape ({N}, {K}), found {A.shape}")
    return A


def _step(prob: _Problem, step):
    if step is None:
        return 1.0 / prob.lipschitz
    step = float(as_float_array(step, "step", ndim=0))
    if not 0 < step <= 1.0 / prob.lipschitz * (1 + 1e-12):
        raise ValueError(f"step must be in (0, 1/L] with L = ||Phi||_2^2 = {prob.lipschitz:.6g}, found {step!r}")
    return step


def _smooth_value(A, GA, B, xx):
    """``1/2 ||x - Phi a||^2`` from ``A``, ``A G`` and ``B = X Phi`` (no extra product)."""
    return 0.5 * xx - np.einsum("ij,ij->i", A, B) + 0.5 * np.einsum("ij,ij->i", A, GA)


#: Unit roundoffs of float32 and float64 (the error bounds of the optimality test).
_U32, _U64 = 2.0**-24, 2.0**-53
#: Finishes after the first before the certified l1 path hands a row to feature-sign search.
_SWEEP_CHECKS = 25
#: Rows per block of the certified l1 path (fixed, so results do not depend on ``threads``).
_L1_BLOCK = 512
#: Largest support the exact finish solves (a denser iterate is far from a sparse minimiser).
_FINISH_MAX_SUPPORT = 128
#: Rows per batched solve of the exact finish (sorted by support size, so padding is small).
_FINISH_CHUNK = 128


def _padded_gram(G, limit):
    """``G`` in the top-left corner of an identity of size ``K + limit``.

    Index ``K + p`` is the ``p``-th padding slot of a support shorter than its batch's longest:
    gathering ``G_SS`` through padded indices gives ``diag(G_SS, I)`` with no masking pass.
    """
    K = G.shape[0]
    Gpad = np.eye(K + limit)
    Gpad[:K, :K] = G
    return Gpad


def _certify(G, B, A, lam, kkt_tol, rounds, chunk=_FINISH_CHUNK, max_support=_FINISH_MAX_SUPPORT, Gpad=None,
             G32=None, pool=None):
    """Exact Lasso solutions from approximate codes, accepted only where optimality is proven.

    For each row, with support ``S`` and signs ``s`` of its code, solve
    ``G_SS a_S = b_S - lam s`` in float64 (batched over rows) and accept ``a`` when
    ``sign(a_S) = s``, ``|b_S - lam s - G_SS a_S| <= lam kkt_tol`` and
    ``|b_j - G_j a| <= lam (1 + kkt_tol)`` off the support, each with the rounding bound of its
    computation added: these are the Lasso optimality conditions, so an accepted code is a
    minimiser (the unique one when ``G_SS`` is nonsingular). A row that fails gets a new
    support for the next round (entries whose sign flipped leave; atoms violating the
    off-support bound join with the sign of their correlation, as in feature-sign search); rows
    still failing after ``rounds`` are not accepted, and neither are rows whose support exceeds
    ``max_support`` atoms (the solve would be costly and the iterate is far from sparse).

    The off-support test first uses a float32 product ``a G`` with a rigorous bound on its
    error: rounding ``a`` and ``G`` to float32 and summing the ``|S|`` nonzero terms in any
    order moves ``(a G)_j`` by at most ``(|S| + 3) u sum_k |a_k| |G_kj|`` with ``u = 2^-24``
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., sec. 3.1 and 4.2), and
    ``|G_kj| <= max_k G_kk``. A row is accepted when the test passes with twice that margin and
    refused when it fails with it; the rows in between get the float64 product, with the same
    bound for ``u = 2^-53``. ``Gpad`` and ``G32`` (the padded Gram matrix and ``G`` in float32)
    may be handed in by a caller that certifies many batches; with a thread ``pool`` the chunks
    run on it.

    Returns ``(positions of the certified rows, their codes)``.
    """
    K = A.shape[1]
    limit = min(K, max_support)
    if Gpad is None:
        Gpad = _padded_gram(G, limit)
    gmax = float(np.max(np.diag(G), initial=0.0))  # |G_kj| <= sqrt(G_kk G_jj) <= gmax
    if G32 is None and gmax < 1e30:
        G32 = G.astype(np.float32)
    ctx = _FinishContext(G, Gpad, G32 if gmax < 1e30 else None, gmax, float(lam), float(kkt_tol),
                         lam * (1 + kkt_tol), rounds, limit)
    sizes = np.count_nonzero(A, axis=1)
    order = np.argsort(sizes, kind="stable")  # similar support sizes share a chunk: little padding
    order = order[sizes[order] <= limit]
    chunks = [order[c0:c0 + chunk] for c0 in range(0, order.size, chunk)]
    parts = _map(pool, lambda r: _finish_chunk(ctx, r, np.sign(A[r]).astype(np.int8), B[r]), chunks)
    if not parts:
        return np.zeros(0, dtype=np.intp), np.zeros((0, K))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class _FinishContext:
    G: np.ndarray
    Gpad: np.ndarray
    G32: np.ndarray | None  # None: float64 test only (entries too large for float32)
    gmax: float
    lam: float
    kkt_tol: float
    bound: float
    rounds: int
    limit: int


def _finish_chunk(ctx: _FinishContext, rows, sign, Bc):
    """Rounds of :func:`_certify` on one chunk; returns ``(certified rows, their codes)``."""
    G, K = ctx.G, ctx.G.shape[0]
    width = ctx.Gpad.shape[0]
    got_rows, got_codes = [], []
    for _ in range(ctx.rounds):
        if rows.size == 0:
            break
        nz = sign != 0
        count = np.count_nonzero(nz, axis=1)
        if count.max(initial=0) > ctx.limit:
            keep = count <= ctx.limit
            rows, sign, Bc, nz, count = rows[keep], sign[keep], Bc[keep], nz[keep], count[keep]
            if rows.size == 0:
                break
        m, smax = rows.size, int(count.max(initial=0))
        ri, ci = np.nonzero(nz)  # row-major: the atoms of each row in increasing order
        pos = np.arange(ri.size) - np.repeat(np.cumsum(count) - count, count)  # slot of each atom in its row
        sv = sign[ri, ci].astype(np.float64)
        idx = np.empty((m, smax), dtype=np.intp)
        idx[:] = K + np.arange(smax)  # padding slots: identity rows of Gpad
        idx[ri, pos] = ci
        rhs = np.zeros((m, smax))
        rhs[ri, pos] = Bc[ri, ci] - ctx.lam * sv
        Gss = ctx.Gpad.reshape(-1).take(idx[:, :, None] * width + idx[:, None, :])  # G_SS, identity on padding
        solved = np.ones(m, dtype=bool)
        try:
            aS = np.linalg.solve(Gss, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular support: solve row by row, drop those
            aS = np.zeros_like(rhs)
            for i in range(m):
                try:
                    aS[i] = np.linalg.solve(Gss[i], rhs[i])
                except np.linalg.LinAlgError:
                    solved[i] = False
        vals = aS[ri, pos]
        flipped = np.sign(vals) != sv
        absum = np.bincount(ri, weights=np.abs(vals), minlength=m)
        scale = ctx.gmax * absum  # bounds sum_k |G_kj| |a_k| for every atom j
        err64 = 2.0 * (count + 3) * _U64 * scale
        # on the support: the solve's own residual, in float64 with its rounding bound
        res = np.abs(rhs - np.matmul(Gss, aS[..., None])[..., 0]).max(axis=1, initial=0.0)
        on_ok = res + err64 + 2.0 * _U64 * np.abs(rhs).max(axis=1, initial=0.0) <= ctx.lam * ctx.kkt_tol
        sign_ok = solved & on_ok & (np.bincount(ri, weights=flipped, minlength=m) == 0)
        Anew = np.zeros((m, K))
        Anew[ri, ci] = vals
        if ctx.G32 is not None:
            Cor = Bc - Anew.astype(np.float32) @ ctx.G32
            err = 2.0 * (count + 3) * _U32 * scale
            absv = np.abs(vals)
            # float32's normal range: outside it the bound does not hold, so such rows get float64
            odd = np.bincount(ri, weights=(absv > 1e30) | ((absv < 1e-30) & (absv > 0)), minlength=m) > 0
        else:
            Cor = Bc - Anew @ G
            err = err64
            odd = np.zeros(m, dtype=bool)
        off = np.abs(Cor)
        off[ri, ci] = 0.0
        top = off.max(axis=1, initial=0.0)
        ok = sign_ok & (top + err <= ctx.bound) & ~odd
        redo = np.flatnonzero(sign_ok & ~ok & ((top - err <= ctx.bound) | odd)) if ctx.G32 is not None else []
        if len(redo):  # undecided in float32: the float64 product, with its own rounding bound
            Cor[redo] = Bc[redo] - Anew[redo] @ G
            off[redo] = np.abs(Cor[redo])
            off[ri, ci] = 0.0
            ok[redo] = off[redo].max(axis=1, initial=0.0) + err64[redo] <= ctx.bound
        got_rows.append(rows[ok])
        got_codes.append(Anew[ok])
        # next support for the failures: flipped entries leave, violating atoms join
        bad = ~ok
        sign[ri[flipped], ci[flipped]] = 0
        rows, sign, Bc, Cor, off = rows[bad], sign[bad], Bc[bad], Cor[bad], off[bad]
        viol = off > ctx.bound
        sign[viol] = np.sign(Cor[viol])
    if not got_rows:
        return np.zeros(0, dtype=np.intp), np.zeros((0, K))
    return np.concatenate(got_rows), np.concatenate(got_codes)


def _feature_sign(Phi, X, A, lam, kkt_tol, max_rounds):
    """Exact Lasso minimisers by feature-sign search (Lee, Battle, Raina and Ng 2007), row by row.

    The sure path for the few rows the iterations and :func:`_certify` could not certify. From
    a row's code ``a`` (then, if that fails, from zero), each round either adds the atom that
    violates ``|phi_j^T r| <= lam`` the most (when ``a`` is optimal on its own support and
    signs) or keeps the support; then it solves for the optimum ``x`` on the support with the
    current signs (QR of ``Phi_S``) and moves ``a`` to the point of the segment ``[a, x]`` with
    the lowest objective among ``x`` and the points where a coefficient crosses zero (that
    coefficient leaves). An atom that joins in the span of the support (as a duplicated atom
    does) instead moves ``a`` along the null direction, which keeps ``Phi a`` and lowers the l1
    norm, until a support coefficient reaches zero. A move is taken only if it lowers the
    objective, computed from the residual in float64, so the search ends and never returns a
    code worse than its start. A row is done when its code passes the optimality test of
    :func:`_certify` (correlations from the residual, in float64); a row that stops moving or
    reaches ``max_rounds`` is not done and keeps its best code. A row that stopped moving before
    its search settled (no violator left, to rounding) is searched again from zero.

    Returns ``(codes, done)``.
    """
    out = np.array(A, dtype=np.float64)
    done = np.zeros(A.shape[0], dtype=bool)
    for i in range(A.shape[0]):
        out[i], done[i], settled = _feature_sign_row(Phi, X[i], out[i], lam, kkt_tol, max_rounds)
        if not settled:  # it stopped moving before the end: try the classic start from zero
            a, ok, _ = _feature_sign_row(Phi, X[i], np.zeros_like(out[i]), lam, kkt_tol, max_rounds)
            f_new, f_old = _objective(Phi, X[[i, i]], np.stack([a, out[i]]), "l1", lam)
            if ok or f_new < f_old:
                out[i], done[i] = a, ok
    return out, done


def _feature_sign_row(Phi, x, a, lam, kkt_tol, max_rounds):
    from scipy.linalg import solve_triangular

    def value(S, v):
        r = x - Phi[:, S] @ v
        return 0.5 * (r @ r) + lam * np.abs(v).sum()

    from scipy.linalg import qr

    a = a.copy()
    S0 = np.flatnonzero(a)
    if S0.size:
        # keep an independent part of the start's support: the columns QR with pivoting ranks first
        R, piv = qr(Phi[:, S0], mode="r", pivoting=True)
        d = np.abs(np.diag(R))
        rank = int(np.count_nonzero(d > 1e-10 * d.max()))
        a[S0[piv[rank:]]] = 0.0
        S0 = np.flatnonzero(a)
    if not value(S0, a[S0]) < 0.5 * (x @ x):
        a[:] = 0.0  # the classic start
    absPhi = np.abs(Phi)
    for _ in range(max_rounds):
        S = np.flatnonzero(a)
        r = x - Phi[:, S] @ a[S]
        c = Phi.T @ r
        # rounding bound of c = Phi^T (x - Phi_S a_S): gamma_(n+|S|+2) |Phi|^T (|x| + |Phi_S| |a_S| + |r|)
        err = 2.0 * (Phi.shape[0] + S.size + 2) * _U64 * (absPhi.T @ (np.abs(x) + absPhi[:, S] @ np.abs(a[S])
                                                                      + np.abs(r)))
        theta = np.sign(a)
        on_gap = np.abs(c[S] - lam * theta[S])
        if np.all(on_gap <= np.maximum(lam * kkt_tol, err[S])):  # optimal on its support, to rounding
            off = np.abs(c)
            off[S] = 0.0
            j = int(np.argmax(off))
            if off[j] <= max(lam * (1 + kkt_tol), lam + err[j]):  # no violator left, to rounding
                # certified only if the conditions hold with the whole rounding bound
                certified = np.all(on_gap + err[S] <= lam * kkt_tol) and np.all(off + err <= lam * (1 + kkt_tol))
                return a, bool(certified), True
            sj = np.sign(c[j])
            if S.size:
                Q, R = np.linalg.qr(Phi[:, S])
                proj = Q.T @ Phi[:, j]
                w = solve_triangular(R, proj)
                rest2 = Phi[:, j] @ Phi[:, j] - proj @ proj  # squared distance of phi_j to the span
            else:
                w, rest2 = np.zeros(0), Phi[:, j] @ Phi[:, j]
            if rest2 <= 1e-10 * (Phi[:, j] @ Phi[:, j]):
                # phi_j lies in the span of the support: the null direction z (z_j = sj,
                # z_S = -sj w) keeps Phi a and lowers the l1 norm; go until a support
                # coefficient reaches zero
                dS = -sj * w
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(a[S] * dS < 0, -a[S] / dS, np.inf)
                k = int(np.argmin(ratio))
                if not np.isfinite(ratio[k]):
                    return a, False, False
                Sj = np.append(S, j)
                moved = np.append(a[S] + ratio[k] * dS, ratio[k] * sj)
                moved[k] = 0.0
                if not value(Sj, moved) < value(Sj, a[Sj]):
                    return a, False, False
                a[Sj] = moved
                continue
            S = np.sort(np.append(S, j))
            theta[j] = sj
        # optimum on S with signs theta: Phi_S^T (x - Phi_S v) = lam theta_S, by QR of Phi_S
        Q, R = np.linalg.qr(Phi[:, S])
        if S.size > Phi.shape[0] or np.min(np.abs(np.diag(R)), initial=np.inf) <= 1e-12 * np.max(np.abs(np.diag(R))):
            return a, False, False
        z = solve_triangular(R, lam * theta[S], trans="T")
        xs = solve_triangular(R, Q.T @ x - z)
        aS = a[S]
        d = xs - aS
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where((aS != 0) & (np.sign(xs) != np.sign(aS)), aS / (aS - xs), np.inf)
        steps = np.append(cross[(cross > 0) & (cross < 1)], 1.0)
        values = [value(S, aS + t * d) for t in steps]
        best = int(np.argmin(values))
        if not values[best] < value(S, aS):
            return a, False, False
        t = steps[best]
        new = aS + t * d
        new[cross == t] = 0.0  # the coefficient that crossed zero leaves
        a[S] = new
    return a, False, False


# ---------------------------------------------------------------------------------- ISTA / FISTA
def _proximal_gradient(prob: _Problem, accelerate: bool, max_iter, tol, init, step, polish, kkt_tol,
                       first_check, check_every, finish_rounds, dtype, step_scale, threads):
    max_iter, tol = _check_iter_opts(max_iter, tol)
    first_check = check_positive_int(first_check, "first_check")
    check_every = check_positive_int(check_every, "check_every")
    finish_rounds = check_positive_int(finish_rounds, "finish_rounds")
    kkt_tol = float(as_float_array(kkt_tol, "kkt_tol", ndim=0))
    if kkt_tol < 0:
        raise ValueError(f"kkt_tol must be >= 0, found {kkt_tol!r}")
    certified = bool(polish) and prob.penalty == "l1"
    if dtype is None:
        dtype = "float32" if certified else "float64"
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', found {dtype!r}")
    if step_scale is None:
        step_scale = _STEP_SCALE if certified else 1.0
    step_scale = float(as_float_array(step_scale, "step_scale", ndim=0))
    if not 1.0 <= step_scale < 2.0:
        raise ValueError(f"step_scale must be in [1, 2), found {step_scale!r}")
    if step_scale != 1.0 and not certified:
        raise ValueError(f"step_scale > 1 needs penalty 'l1' with polish=True (the exact finish certifies the "
                         f"result), found penalty {prob.penalty!r}, polish={bool(polish)!r}")
    threads = _check_threads(threads)
    N, K = prob.X.shape[0], prob.Phi.shape[1]
    A0 = None if init is None else _init_codes(init, N, K)
    f = None
    if certified:
        # every product of the call runs on the pool's threads, the BLAS libraries on one thread
        # each (BLAS threads left spinning beside the pool would slow it down)
        with _thread_pool(min(threads, -(-N // _L1_BLOCK))) as pool:  # one block: no pool, BLAS as set
            g = _step(prob, step)
            out, iters, verified, g = _l1_certified(prob, pool, accelerate, max_iter, tol, A0, g, kkt_tol,
                                                    first_check, check_every, finish_rounds, np.dtype(dtype),
                                                    step_scale, scale_atoms=step is None)
            f = prob.objective(out, pool)
        done = verified
        info = {"step": g, "step_scale": step_scale, "kkt_verified": int(verified.sum())}
        status = "certified" if verified.all() else f"{int((~verified).sum())} of {N} codes not certified"
    else:
        g = _step(prob, step)
        out, iters, done = _pg_loop(prob.G, prob.B, prob.xx, prob.penalty, prob.lam, prob.norms, accelerate,
                                    max_iter, tol, _init_codes(init, N, K), g, np.dtype(dtype))
        info = {"step": g}
        status = ""
    info.update(signal_iterations=iters, converged_signals=int(done.sum()))
    return _Out(out, int(iters.max(initial=0)), bool(done.all()), status=status, info=info, objective=f)


def _pg_loop(G64, B64, xx64, pen, lam, norms64, accelerate, max_iter, tol, A0, g, dt):
    """Proximal gradient for any penalty: ``a <- prox_{g r}(y - g (G y - b))``, batched.

    FISTA's momentum restarts for a signal whose objective went up (O'Donoghue and Candes 2015),
    which keeps the nonconvex penalties monotone. Returns ``(codes, iterations, converged)``.
    """
    G, B, xx, norms = G64.astype(dt), B64.astype(dt), xx64.astype(dt), norms64.astype(dt)
    N = B.shape[0]
    out = np.array(A0, dtype=np.float64)
    iters = np.zeros(N, dtype=np.int64)
    done = np.zeros(N, dtype=bool)

    def pen_sum(A):
        return penalty_elementwise(A, pen, lam, norms).astype(dt).sum(1)

    act = np.arange(N)
    A = out.astype(dt)
    GA = A @ G
    A_prev, GA_prev = A.copy(), GA.copy()
    Bact, xxact = B, xx
    F = _smooth_value(A, GA, Bact, xxact) + pen_sum(A) if accelerate else np.zeros(N, dt)
    t = np.ones(N, dtype=dt)
    Y, GY, U = np.empty_like(A), np.empty_like(A), np.empty_like(A)  # work buffers: no allocation
    A_new, GA_new = np.empty_like(A), np.empty_like(A)                 # of large arrays per iteration
    for it in range(1, max_iter + 1):
        if Y.shape[0] != A.shape[0]:  # rows left the batch
            Y, GY, U = np.empty_like(A), np.empty_like(A), np.empty_like(A)
            A_new, GA_new = np.empty_like(A), np.empty_like(A)
        if accelerate:
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = ((t - 1.0) / t_new)[:, None]
            np.subtract(A, A_prev, out=Y)
            Y *= beta
            Y += A
            np.subtract(GA, GA_prev, out=GY)
            GY *= beta
            GY += GA
        else:
            np.copyto(Y, A)
            np.copyto(GY, GA)
        np.subtract(GY, Bact, out=U)  # U = Y - g (GY - B), the gradient step
        U *= -g
        U += Y
        if pen == "l1":  # soft thresholding in place
            np.abs(U, out=A_new)
            A_new -= dt.type(g * lam)
            np.maximum(A_new, 0, out=A_new)
            np.copysign(A_new, U, out=A_new)
        else:
            A_new[...] = prox(U, pen, g, lam, norms)
        np.matmul(A_new, G, out=GA_new)
        if accelerate:
            F_new = _smooth_value(A_new, GA_new, Bact, xxact) + pen_sum(A_new)
            t = np.where(F_new > F, 1.0, t_new).astype(dt)
            F = F_new
        D = np.subtract(A_new, A, out=U)
        conv = np.sqrt(np.einsum("ij,ij->i", D, D)) <= tol * np.maximum(
            np.sqrt(np.einsum("ij,ij->i", A_new, A_new)), np.finfo(dt).tiny)
        # rotate the buffers: prev <- current <- new, the old prev becomes the next "new"
        A_prev, A, A_new = A, A_new, A_prev
        GA_prev, GA, GA_new = GA, GA_new, GA_prev
        iters[act] = it
        if np.any(conv):
            out[act[conv]] = A[conv]
            done[act[conv]] = True
            keep = ~conv
            act = act[keep]
            if act.size == 0:
                break
            A, GA, A_prev, GA_prev, F, t = A[keep], GA[keep], A_prev[keep], GA_prev[keep], F[keep], t[keep]
            Bact, xxact = B[act], xx[act]
    if act.size:
        out[act] = A
    return out, iters, done


#: Default ``step_scale`` of the certified l1 path: steps up to ``1.9 / L``.
_STEP_SCALE = 1.9


def _check_threads(threads):
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return check_positive_int(threads, "threads", minimum=1)


@contextmanager
def _thread_pool(threads):
    """A pool of ``threads`` workers with the BLAS libraries on one thread each, or None for 1."""
    if threads <= 1:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        yield pool


def _row_blocks(n):
    return [slice(s, min(n, s + _L1_BLOCK)) for s in range(0, n, _L1_BLOCK)]


def _map(pool, fn, items):
    return list(pool.map(fn, items)) if pool is not None and len(items) > 1 else [fn(x) for x in items]


def _l1_certified(prob, pool, accelerate, max_iter, tol, init, g, kkt_tol, first_check, check_every, finish_rounds,
                  dt, step_scale, scale_atoms):
    """l1 codes certified by the exact finish: sweeps of iterations, each followed by a finish.

    The rows still running go through :func:`_l1_sweep` in blocks of :data:`_L1_BLOCK` rows
    (``first_check`` iterations the first time, ``check_every`` after), then through
    :func:`_certify` (``finish_rounds`` rounds); a certified row leaves. The blocks and the
    finish's chunks run on ``pool`` (None: in turn); they do not depend on its size. Rows stopped
    by ``tol``, or still running after ``first_check + 25 check_every`` iterations (at most
    ``max_iter``), get a longer finish, then :func:`_feature_sign`. With ``scale_atoms`` the
    sweeps run on unit-norm atoms (their own step ``1/L``). Returns
    ``(codes, iterations, verified, the base step of the sweeps)``.
    """
    G, lam = prob.G, prob.lam
    N, K = prob.X.shape[0], G.shape[0]
    finish = dict(Gpad=_padded_gram(G, min(K, _FINISH_MAX_SUPPORT)), G32=G.astype(np.float32), pool=pool)
    if scale_atoms and np.max(np.abs(prob.norms - 1.0)) > 1e-6:
        # iterate on unit-norm atoms, a~ = ||phi|| a: the same problem with weights lam / ||phi_j||
        # on |a~_j|, and far better conditioned when the atom norms differ
        dinv = 1.0 / prob.norms
        Gs = G * dinv[:, None] * dinv[None, :]
        g = 1.0 / _largest_eigenvalue(prob.Phi * dinv, Gs)
        lamv = (lam * dinv).astype(dt)
    else:
        dinv, Gs, lamv = None, G, lam
    gamma = step_scale * g
    M = (np.eye(K) - gamma * Gs).astype(dt)  # y - gamma (G y - b) = y M + gamma b
    diag = np.diag(Gs).astype(dt)
    B = prob.products(pool)
    out = np.zeros((N, K))
    iters = np.zeros(N, dtype=np.int64)
    verified = np.zeros(N, dtype=bool)

    def original(At):  # codes in the caller's coordinates
        return At if dinv is None else At * dinv.astype(dt)

    # the running rows' state, compacted after every finish
    rows, Bact = np.arange(N), B
    if init is None:
        A = np.empty((N, K), dtype=dt)  # the first sweep fills it
    else:
        A = (init if dinv is None else init / dinv).astype(dt)
    Y, t, ratio, first_len = A.copy(), np.ones(N, dtype=dt), np.ones(N), np.full(N, np.nan)
    done_it, budget = 0, min(max_iter, first_check + _SWEEP_CHECKS * check_every)
    while rows.size and done_it < budget:
        start, n_it = done_it, min(first_check if done_it == 0 else check_every, budget - done_it)

        def sweep(sl):  # used at once, in this iteration of the loop
            Bs = Bact[sl] if dinv is None else Bact[sl] * dinv
            return _l1_sweep(A[sl], Y[sl], t[sl], ratio[sl], first_len[sl], Bs, M, gamma, lamv, diag, start,
                             n_it, accelerate, step_scale, tol, jacobi=init is None and start == 0)

        small = np.concatenate(_map(pool, sweep, _row_blocks(rows.size)))
        done_it += n_it
        iters[rows] = done_it
        pos, codes = _certify(G, Bact, original(A), lam, kkt_tol, finish_rounds, **finish)
        out[rows[pos]] = codes
        verified[rows[pos]] = True
        small[pos] = False  # stalled without a certificate: leaves with its iterate
        out[rows[small]] = original(A[small])
        keep = ~small
        keep[pos] = False
        rows, Bact, A, Y = rows[keep], Bact[keep], A[keep], Y[keep]
        t, ratio, first_len = t[keep], ratio[keep], first_len[keep]
    out[rows] = original(A)
    rest = np.flatnonzero(~verified)
    if rest.size:
        pos, codes = _certify(G, B[rest], out[rest], lam, kkt_tol, 4 * finish_rounds, **finish)
        out[rest[pos]] = codes
        verified[rest[pos]] = True
    rest = np.flatnonzero(~verified)
    if rest.size:  # the slow and sure way: feature-sign search from where the iterations stopped
        out[rest], verified[rest] = _feature_sign(prob.Phi, prob.X[rest], out[rest], lam, kkt_tol,
                                                  max_rounds=10 * min(K, prob.X.shape[1]) + 50)
    return out, iters, verified, g


def _largest_eigenvalue(Phi, G):
    """``||Phi||_2^2``: the largest eigenvalue of ``Phi Phi^T`` or of ``G = Phi^T Phi``, the smaller one."""
    from scipy.linalg import eigvalsh

    n, K = Phi.shape
    M = Phi @ Phi.T if n < K else G  # same nonzero spectrum
    m = M.shape[0]
    return float(eigvalsh(M, subset_by_index=[m - 1, m - 1])[0])


def _l1_sweep(A, Y, t, ratio, first_len, B, M, gamma, lam, diag, start, n_it, accelerate, step_scale, tol, jacobi):
    """``n_it`` proximal gradient iterations for l1 on one block, updating its state in place.

    ``A`` (iterate), ``Y`` (extrapolated point), ``t`` (FISTA's sequence), ``ratio`` (each row's
    step over ``gamma``) and ``first_len`` (each row's first step length) are views of the
    caller's arrays. ``a_new = soft(y - gamma (G y - b), gamma lam)``, computed as
    ``soft(y M + gamma b)`` with ``M = I - gamma G``; ``lam`` is a number or one weight per atom
    (the unit-norm coordinates of :func:`_l1_certified`). Steps up to ``2/L`` converge for the
    proximal gradient (forward-backward splitting); a row whose step length grows above its
    first one gets its step cut by a quarter, down to ``1/L`` (the safeguard of greedy FISTA,
    Liang, Luo and Schoenlieb 2022). FISTA's momentum restarts for a row whose momentum points
    against its step (O'Donoghue and Candes 2015). With ``jacobi`` the block starts from each
    coefficient's own minimiser, ``soft(b_j, lam) / G_jj``, scaled along that direction to the
    best factor in [0, 1] (near 1 for nearly orthogonal atoms, small for coherent ones).

    Returns a boolean array: rows whose last step was at most ``tol`` times their code's norm.
    """
    dt = A.dtype
    C = (gamma * B).astype(dt)
    tau = np.asarray(gamma * lam, dtype=dt)  # a number, or one threshold per atom
    min_ratio = 1.0 / step_scale
    a, a_new = A, np.empty_like(A)
    U, T = np.empty_like(A), np.empty_like(A)
    first = None
    if jacobi:
        # each coefficient's own minimiser j = soft(b, lam) / G_jj, scaled by the best factor
        # alpha in [0, 1] along it: alpha = (b.j - lam |j|_1) / (j G j), with j G j from the
        # first iteration's product j M = j - gamma j G (so the start costs no extra product)
        J = ((B - np.clip(B, -lam, lam)) / diag).astype(dt)
        JM = J @ M
        jGj = np.einsum("ij,ij->i", J, J - JM).astype(np.float64) / gamma
        num = np.einsum("ij,ij->i", B, J) - (lam * np.abs(J)).sum(axis=1, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(jGj > 0, np.clip(num / jGj, 0.0, 1.0), 0.0).astype(dt)
        np.multiply(J, alpha[:, None], out=A)
        Y[...] = A
        first = np.multiply(JM, alpha[:, None], out=JM)  # the first iteration's Y M
    small = np.zeros(A.shape[0], dtype=bool)
    for it in range(start + 1, start + n_it + 1):
        if first is not None:
            np.add(first, C, out=U)
            first = None
        else:
            np.matmul(Y, M, out=U)
            U += C
        np.clip(U, -tau, tau, out=T)
        np.subtract(U, T, out=a_new)  # soft thresholding at gamma lam
        slow = np.flatnonzero(ratio < 1.0)
        if slow.size:  # rows on a shorter step: y + r (u - y), thresholded at r gamma lam
            r = ratio[slow, None].astype(dt)
            Us = Y[slow] + r * (U[slow] - Y[slow])
            a_new[slow] = Us - np.clip(Us, -tau * r, tau * r)
        D = np.subtract(a_new, a, out=T)
        if it == 1 or it % 4 == 0 or it == start + n_it:  # step lengths: safeguard and stopping rule
            length = np.sqrt(np.einsum("ij,ij->i", D, D))
            if it == 1:
                first_len[...] = length
            elif step_scale > 1.0:
                grow = (length > first_len) & (ratio > min_ratio)
                ratio[grow] = np.maximum(0.75 * ratio[grow], min_ratio)
            if it == start + n_it and tol > 0:
                small = length <= tol * np.maximum(np.sqrt(np.einsum("ij,ij->i", a_new, a_new)), np.finfo(dt).tiny)
        if accelerate:
            against = np.einsum("ij,ij->i", Y, D) > np.einsum("ij,ij->i", a_new, D)  # (y - a_new).(a_new - a) > 0
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = np.where(against, 0.0, (t - 1.0) / t_new).astype(dt)
            t[...] = np.where(against, 1.0, t_new)
            np.multiply(D, beta[:, None], out=U)
            np.add(a_new, U, out=Y)
        else:
            np.copyto(Y, a_new)
        a, a_new = a_new, a
    if a is not A:
        A[...] = a
    return small


_PG_OPTIONS = {"max_iter": 1000, "tol": 1e-6, "init": None, "step": None, "polish": True,
               "kkt_tol": 1e-9, "first_check": 10, "check_every": 4, "finish_rounds": 3, "dtype": None,
               "step_scale": None, "threads": None}


@_register("ista", options=_PG_OPTIONS, summary="proximal gradient (ISTA), batched, step 1/L")
def _ista(prob, **opts):
    return _proximal_gradient(prob, False, **opts)


@_register("fista", options=_PG_OPTIONS, summary="FISTA with restart, batched; l1 certified by an exact finish")
def _fista(prob, **opts):
    return _proximal_gradient(prob, True, **opts)


# ---------------------------------------------------------------------------------- IHT
def _keep_largest(U, k):
    if k >= U.shape[1]:
        return U
    idx = np.argpartition(-np.abs(U), k - 1, axis=1)[:, :k]
    out = np.zeros_like(U)
    rows = np.arange(U.shape[0])[:, None]
    out[rows, idx] = U[rows, idx]
    return out


@_register("iht", options={"n_nonzero": None, "max_iter": 1000, "tol": 1e-6, "init": None, "step": None},
           summary="iterative hard thresholding to n_nonzero atoms (sparsity constrained)")
def _iht(prob, n_nonzero, max_iter, tol, init, step):
    if n_nonzero is None:
        raise ValueError("method 'iht' needs the option n_nonzero (number of atoms kept per signal)")
    K = prob.G.shape[0]
    k = check_positive_int(n_nonzero, "n_nonzero", minimum=1, maximum=K)
    max_iter, tol = _check_iter_opts(max_iter, tol)
    g = _step(prob, step)
    N = prob.B.shape[0]
    A = _keep_largest(_init_codes(init, N, K), k)
    done = np.zeros(N, dtype=bool)
    iters = np.zeros(N, dtype=np.int64)
    for it in range(1, max_iter + 1):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Aa = A[act]
        new = _keep_largest(Aa - g * (Aa @ prob.G - prob.B[act]), k)
        d = np.linalg.norm(new - Aa, axis=1)
        s = np.linalg.norm(new, axis=1)
        A[act] = new
        iters[act] = it
        done[act[d <= tol * np.maximum(s, 1e-300)]] = True
    return _Out(A, int(iters.max(initial=0)), bool(done.all()), info={"step": g, "n_nonzero": k})


# ---------------------------------------------------------------------------------- OMP
@_register("omp", options={"n_nonzero": None},
           summary="orthogonal matching pursuit (n_nonzero atoms, or l0 stopping with lam)")
def _omp(prob, n_nonzero):
    G, B, lam = prob.G, prob.B, prob.lam
    N, K = B.shape
    n = prob.Phi.shape[0]
    by_lam = n_nonzero is None
    kmax = min(K, n) if by_lam else check_positive_int(n_nonzero, "n_nonzero", minimum=1, maximum=min(K, n))
    L = np.zeros((N, kmax, kmax))
    Z = np.zeros((N, kmax))
    idx = np.zeros((N, kmax), dtype=np.int64)
    size = np.zeros(N, dtype=np.int64)
    active = np.ones(N, dtype=bool)
    A = np.zeros((N, K))
    diagG = np.diag(G)
    for k in range(kmax):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        C = B[act] - A[act] @ G  # Phi^T r
        sel = idx[act, :k]
        C[np.arange(act.size)[:, None], sel] = 0.0
        j = np.argmax(np.abs(C), axis=1)
        if k:
            Gsj = G[sel, j[:, None]]  # (m, k)
            l = np.linalg.solve(L[act, :k, :k], Gsj[..., None])[..., 0]
            d2 = diagG[j] - np.einsum("ij,ij->i", l, l)
        else:
            l = np.zeros((act.size, 0))
            d2 = diagG[j].copy()
        ok = d2 > 1e-12 * diagG[j]
        d = np.sqrt(np.where(ok, d2, 1.0))
        z = (B[act, j] - np.einsum("ij,ij->i", l, Z[act, :k])) / d
        gain = 0.5 * z * z
        take = ok & (gain > lam) if by_lam else ok
        stop = act[~take]
        active[stop] = False
        act, j, l, d, z = act[take], j[take], l[take], d[take], z[take]
        if act.size == 0:
            break
        L[act, k, :k] = l
        L[act, k, k] = d
        Z[act, k] = z
        idx[act, k] = j
        size[act] = k + 1
        # amplitudes on the support: L L^T a = b_S, i.e. L^T a = z
        LT = np.transpose(L[act, : k + 1, : k + 1], (0, 2, 1))
        amp = np.linalg.solve(LT, Z[act, : k + 1][..., None])[..., 0]
        A[act] = 0.0
        A[act[:, None], idx[act, : k + 1]] = amp
    return _Out(A, int(size.max(initial=0)), True, info={"support_sizes": size})


# ---------------------------------------------------------------------------------- exact l0
def _exact_check(K, max_atoms):
    max_atoms = check_positive_int(max_atoms, "max_atoms", minimum=1, maximum=EXACT_HARD_MAX_ATOMS)
    if K > max_atoms:
        raise ValueError(
            f"exact: the dictionary has K == {K} atoms, above the limit max_atoms == {max_atoms} "
            f"(2^{K} supports; raise max_atoms up to {EXACT_HARD_MAX_ATOMS}, or use omp/fista)"
        )


def _support_tree(G, max_size):
    """Shared half of the exact l0 search: every support of up to ``max_size`` atoms, level by level.

    Level ``k`` holds the supports of size ``k`` in increasing index order; a child extends its
    parent (a support of size ``k - 1``) by one atom ``j`` above the parent's last atom. With
    ``L`` the Cholesky factor of ``G_SS`` and ``W = L^{-1}``, the child's new row is
    ``l = W G_{S,j}``, ``d = sqrt(G_jj - ||l||^2)``, and ``W`` grows by the row
    ``[-(l^T W) / d, 1 / d]``. Atoms linearly dependent on the parent (``d^2 <= 1e-12 G_jj``)
    are dropped with all their descendants: such a support has the residual of a smaller one
    and a larger penalty, so it is never the unique optimum.

    Returns a list of levels ``(parent, atom, l, d)``: ``parent`` (C,) index into the previous
    level (-1 at level 1), ``atom`` (C,), ``l`` (C, k-1), ``d`` (C,).
    """
    K = G.shape[0]
    diagG = np.diag(G)
    levels = []
    if max_size < 1:
        return levels
    ok = diagG > 0
    atom = np.flatnonzero(ok)
    d = np.sqrt(diagG[atom])
    levels.append((np.full(atom.size, -1), atom, np.zeros((atom.size, 0)), d))
    W = (1.0 / d)[:, None, None]
    sup = atom[:, None]
    for k in range(1, max_size):
        last = sup[:, -1]
        n_child = K - 1 - last
        parent = np.repeat(np.arange(sup.shape[0]), n_child)
        if parent.size == 0:
            break
        offs = np.arange(parent.size) - np.repeat(np.cumsum(n_child) - n_child, n_child)
        j = last[parent] + 1 + offs
        S = sup[parent]  # (C, k)
        g = G[S, j[:, None]]  # (C, k): G_{S, j}
        Wp = W[parent]
        l = np.einsum("cab,cb->ca", Wp, g)
        d2 = diagG[j] - np.einsum("ca,ca->c", l, l)
        keep = d2 > 1e-12 * diagG[j]
        parent, j, S, Wp, l, d = parent[keep], j[keep], S[keep], Wp[keep], l[keep], np.sqrt(d2[keep])
        if parent.size == 0:
            break
        levels.append((parent, j, l, d))
        C = parent.size
        Wn = np.zeros((C, k + 1, k + 1))
        Wn[:, :k, :k] = Wp
        Wn[:, k, :k] = -np.einsum("ca,cab->cb", l, Wp) / d[:, None]
        Wn[:, k, k] = 1.0 / d
        W = Wn
        sup = np.concatenate([S, j[:, None]], axis=1)
    return levels


def exact_l0(G, B, xx, lam, max_size, budget: int = 2**23):
    """Minimum over supports of ``1/2 (||x||^2 - b_S^T G_SS^{-1} b_S) + lam |S|`` (trusted input).

    The Cholesky factors are built once for the batch (:func:`_support_tree`); then, for a chunk
    of signals at a time, ``z = L^{-1} b_S`` grows by one entry per level,
    ``z_new = (b_j - l^T z_parent) / d``, and the explained energy ``b_S^T G_SS^{-1} b_S`` by
    ``z_new^2``: ``O(|S|)`` work per support and signal.

    Returns ``(best value per signal, best support as a boolean array (N, K), supports scored)``.
    """
    N, K = B.shape
    levels = _support_tree(G, max_size)
    best = 0.5 * xx.copy()
    where = np.full((N, 2), -1, dtype=np.int64)  # (level, index) of the best support; -1: empty
    widest = max((lv[0].size * (k + 1) for k, lv in enumerate(levels)), default=1)
    chunk = max(1, budget // (2 * widest))
    for s0 in range(0, N, chunk):
        rows = slice(s0, min(N, s0 + chunk))
        Bc, xc = B[rows], xx[rows]
        Z = np.zeros((Bc.shape[0], 1, 0))
        E = np.zeros((Bc.shape[0], 1))
        for k, (parent, atom, l, d) in enumerate(levels):
            pz = Z[:, np.maximum(parent, 0)]
            zn = (Bc[:, atom] - np.einsum("nca,ca->nc", pz, l)) / d
            E = E[:, np.maximum(parent, 0)] + zn * zn
            Z = np.concatenate([pz, zn[:, :, None]], axis=2)
            val = 0.5 * (xc[:, None] - E) + lam * (k + 1)
            col = np.argmin(val, axis=1)
            vmin = val[np.arange(val.shape[0]), col]
            better = vmin < best[rows]
            idx = np.flatnonzero(better) + s0
            best[idx] = vmin[better]
            where[idx, 0] = k
            where[idx, 1] = col[better]
    sup = np.zeros((N, K), dtype=bool)
    for i in range(N):
        k, c = where[i]
        while k >= 0:
            parent, atom = levels[k][0], levels[k][1]
            sup[i, atom[c]] = True
            c = parent[c]
            k -= 1
    return best, sup, int(sum(lv[0].size for lv in levels))


def _ls_on_supports(Phi, X, sup):
    """Least-squares amplitudes on each row's support (grouped by identical supports)."""
    N, K = sup.shape
    A = np.zeros((N, K))
    keys, inv = np.unique(sup, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    for g in range(keys.shape[0]):
        S = np.flatnonzero(keys[g])
        if S.size == 0:
            continue
        rows = np.flatnonzero(inv == g)
        sol, *_ = np.linalg.lstsq(Phi[:, S], X[rows].T, rcond=None)
        A[np.ix_(rows, S)] = sol.T
    return A


@_register("exact", options={"max_atoms": EXACT_MAX_ATOMS}, penalties=("l0", "cel0"),
           summary="exact l0 optimum by enumerating supports (incremental Cholesky)")
def _exact(prob, max_atoms):
    K = prob.Phi.shape[1]
    _exact_check(K, max_atoms)  # before the (K, K) Gram matrix is built
    n = prob.Phi.shape[0]
    lam = prob.lam
    limit = min(K, n)
    if lam > 0:  # a support larger than ||x||^2 / (2 lam) costs more than the empty one
        ratio = float(np.max(prob.xx, initial=0.0)) / (2 * lam)
        if ratio < limit:  # an inf ratio (a subnormal lam) leaves the limit as it is
            limit = int(math.floor(ratio))
    best, sup, visited = exact_l0(prob.G, prob.B, prob.xx, lam, limit)
    A = _ls_on_supports(prob.Phi, prob.X, sup)
    return _Out(A, int(sup.sum(1).max(initial=0)), True, optimal=True, status="optimal",
                info={"enumerated_value": best, "supports_scored": visited, "max_support": limit})


# ---------------------------------------------------------------------------------- binary QUBO
def binary_sparse_coding_bqm(Phi, x, alpha, lam) -> BQM:
    r"""Binary sparse coding ``a = alpha v``, ``v`` in {0,1}^K, as a PSD binary quadratic model.

    .. math::

        \tfrac12\|x - \alpha \Phi v\|^2 + \lambda \|v\|_0
        = v^T P v + q^T v + c,\quad P = \tfrac{\alpha^2}{2}\Phi^T\Phi,\
        q = -\alpha \Phi^T x + \lambda \mathbf 1,\ c = \tfrac12\|x\|^2

    (docs/sparse.md; ``lambda ||v||_0`` is the l0 penalty of ``alpha v``, and
    ``lambda / |alpha|`` times its l1 norm). Solve it with ``solvers.solve(bqm, method)``.

    Parameters
    ----------
    Phi : array of shape (n, K)
    x : array of shape (n,)
    alpha : float, nonzero
    lam : float >= 0
    """
    Phi = check_dictionary(Phi)
    x = as_float_array(x, "x", shape=(Phi.shape[0],))
    alpha = float(as_float_array(alpha, "alpha", ndim=0))
    if alpha == 0:
        raise ValueError("alpha must be nonzero, found 0.0")
    lam = check_lambda(lam)
    G = Phi.T @ Phi
    P = 0.5 * alpha * alpha * G
    P = 0.5 * (P + P.T)
    q = -alpha * (Phi.T @ x) + lam
    return BQM(P, q, 0.5 * float(x @ x))
