r"""Sparse coders behind one front door, and binary sparse coding as a QUBO (design.md section 4).

``code(Phi, X, penalty=..., lam=..., method=...)`` minimises (or, for the greedy and
sparsity-constrained methods, approximately minimises)

.. math:: F(a) = \tfrac12 \|x - \Phi a\|^2 + \sum_i r_i(a_i)

for every row ``x`` of ``X`` (shape (N, n)), with ``Phi`` of shape (n, K) and the penalty
terms ``r_i`` of :mod:`reference.penalties`. Every method returns a :class:`SparseResult`
whose ``objective`` is recomputed by :func:`reference.sparse.objective` in float64.

Methods (see :func:`method_names`):

``ista``, ``fista``
    Proximal gradient with step ``1/L`` (``L = ||Phi||_2^2``), batched over signals with one
    ``(N, K) x (K, K)`` matrix product per iteration (the objective used for FISTA's restart
    comes from the same product); FISTA restarts its momentum for a signal whose objective
    went up, or, for ``l1`` with the exact finish, whose momentum points against its step
    (O'Donoghue and Candes 2015). A signal stops when its code's relative change is
    below ``tol``; for ``l1`` with ``polish=True``, every ``check_every`` iterations the
    support and signs of each code whose sign pattern held over the last 3 iterations are
    solved exactly and accepted when the Lasso optimality conditions hold to ``kkt_tol``
    (:func:`_lasso_finish`). ``dtype="float32"`` runs the iterations in float32.
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
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reference._validation import as_float_array, check_positive_int
from reference.penalties import PENALTIES, penalty_elementwise, prox
from reference.sparse import (
    atom_norms,
    check_dictionary,
    check_lambda,
    check_penalty,
    check_signals,
    objective,
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
        self.G = Phi.T @ Phi
        self.B = X @ Phi
        self.norms = atom_norms(Phi)
        self.xx = np.einsum("ij,ij->i", X, X)
        self._L = None

    @property
    def lipschitz(self) -> float:
        if self._L is None:
            from scipy.linalg import eigvalsh

            n, K = self.Phi.shape
            M = self.Phi @ self.Phi.T if n < K else self.G  # same nonzero spectrum, smaller matrix
            m = M.shape[0]
            self._L = float(eigvalsh(M, subset_by_index=[m - 1, m - 1])[0])  # the largest only
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
    prob = _Problem(Phi, X, penalty, lam)
    t0 = time.perf_counter()
    out = m.run(prob, **opts)
    seconds = time.perf_counter() - t0
    A = np.asarray(out.codes, dtype=np.float64)
    f = objective(Phi, X, A, penalty, lam)
    status = out.status or ("optimal" if out.optimal else "converged" if out.converged else "iteration limit")
    if single:
        A = A[0]
        f = float(f[0])
    return SparseResult(codes=A, objective=f, iterations=int(out.iterations), converged=bool(out.converged),
                        optimal=bool(out.optimal), seconds=seconds, method=method, penalty=penalty, lam=lam,
                        status=status, info=out.info)


# ---------------------------------------------------------------------------------- helpers
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


def _lasso_finish(G, B, A, lam, kkt_tol, rounds, chunk=256, max_support=128):
    """Exact Lasso solutions from approximate codes, accepted only where optimality is verified.

    For each row, with support ``S`` and signs ``s`` of its code, solve
    ``G_SS a_S = b_S - lam s`` (batched over rows) and accept ``a`` when ``sign(a_S) = s`` and
    ``|b_j - G_j a| <= lam (1 + kkt_tol)`` off the support: these are the Lasso optimality
    conditions, so an accepted code is a minimiser (the unique one when ``G_SS`` is
    nonsingular). A row that fails gets a new support for the next round (entries whose sign
    flipped leave; atoms violating the off-support bound join with the sign of their
    correlation, as in feature-sign search); rows still failing after ``rounds`` are reported
    as not done and keep their input codes, and so do rows whose support exceeds
    ``max_support`` atoms (the solve would be costly and the iterate is far from sparse).

    Returns ``(codes, done)`` with ``done`` a boolean array of shape (N,).
    """
    N, K = A.shape
    out = A.copy()
    done = np.zeros(N, dtype=bool)
    limit = min(G.shape[0], max_support)
    sizes = np.count_nonzero(A, axis=1)
    order = np.argsort(sizes, kind="stable")  # similar support sizes share a chunk: little padding
    order = order[sizes[order] <= limit]
    for c0 in range(0, order.size, chunk):
        rows = order[c0:c0 + chunk]
        sign = np.sign(A[rows])
        for _ in range(rounds):
            if rows.size == 0:
                break
            Bc = B[rows]
            mask = sign != 0
            smax = int(mask.sum(1).max(initial=0))
            if smax > limit:
                keep = mask.sum(1) <= limit
                rows, sign, Bc, mask = rows[keep], sign[keep], Bc[keep], mask[keep]
                smax = int(mask.sum(1).max(initial=0))
                if rows.size == 0:
                    break
            if smax == 0:
                Anew = np.zeros((rows.size, K))
                sign_ok = np.ones(rows.size, dtype=bool)
            else:
                idx = np.argsort(~mask, axis=1, kind="stable")[:, :smax]
                valid = np.take_along_axis(mask, idx, axis=1)
                Gss = G[idx[:, :, None], idx[:, None, :]]
                pad = ~valid
                Gss[pad[:, :, None] | pad[:, None, :]] = 0.0
                Gss[:, np.arange(smax), np.arange(smax)] += pad
                s_idx = np.take_along_axis(sign, idx, axis=1)
                rhs = np.where(valid, np.take_along_axis(Bc, idx, axis=1) - lam * s_idx, 0.0)
                solved = np.ones(rows.size, dtype=bool)
                try:
                    aS = np.linalg.solve(Gss, rhs[..., None])[..., 0]
                except np.linalg.LinAlgError:  # a singular support: solve row by row, drop those
                    aS = np.zeros_like(rhs)
                    for i in range(rows.size):
                        try:
                            aS[i] = np.linalg.solve(Gss[i], rhs[i])
                        except np.linalg.LinAlgError:
                            solved[i] = False
                aS = np.where(valid, aS, 0.0)
                Anew = np.zeros((rows.size, K))
                np.put_along_axis(Anew, idx, aS, axis=1)
                sign_ok = solved & np.all(~valid | (np.sign(aS) == s_idx), axis=1)
            Cor = Bc - Anew @ G
            off = np.where(sign != 0, 0.0, np.abs(Cor))
            kkt_ok = off.max(axis=1, initial=0.0) <= lam * (1 + kkt_tol)
            ok = sign_ok & kkt_ok
            out[rows[ok]] = Anew[ok]
            done[rows[ok]] = True
            # next support for the failures
            bad = ~ok
            rows, sign, Anew, Cor, off = rows[bad], sign[bad], Anew[bad], Cor[bad], off[bad]
            flipped = (sign != 0) & (np.sign(Anew) != sign)
            sign = np.where(flipped, 0.0, sign)
            join = off > lam * (1 + kkt_tol)
            sign = np.where(join, np.sign(Cor), sign)
    return out, done


# ---------------------------------------------------------------------------------- ISTA / FISTA
def _proximal_gradient(prob: _Problem, accelerate: bool, max_iter, tol, init, step, polish, kkt_tol,
                       check_every, finish_rounds, dtype):
    max_iter, tol = _check_iter_opts(max_iter, tol)
    check_every = check_positive_int(check_every, "check_every")
    finish_rounds = check_positive_int(finish_rounds, "finish_rounds")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', found {dtype!r}")
    G64, B64 = prob.G, prob.B
    dt = np.dtype(dtype)
    G, B, xx = G64.astype(dt), B64.astype(dt), prob.xx.astype(dt)
    N, K = B.shape
    g = _step(prob, step)
    pen, lam, norms = prob.penalty, prob.lam, prob.norms.astype(dt)
    polish = bool(polish) and pen == "l1"
    out = _init_codes(init, N, K)
    iters = np.zeros(N, dtype=np.int64)
    done = np.zeros(N, dtype=bool)
    verified = np.zeros(N, dtype=bool)

    def pen_sum(A):
        return penalty_elementwise(A, pen, lam, norms).astype(dt).sum(1)

    act = np.arange(N)
    A = out.astype(dt)
    GA = A @ G
    A_prev, GA_prev = A.copy(), GA.copy()
    Bact, xxact = B, xx
    grad_restart = polish  # l1 with the exact finish: the cheap restart test is enough
    F = _smooth_value(A, GA, Bact, xxact) + pen_sum(A) if accelerate and not grad_restart else np.zeros(N, dt)
    t = np.ones(N, dtype=dt)
    last_sign = np.full((N, K), 2, dtype=np.int8)  # signs `lag` iterations before a check
    lag = min(3, check_every - 1)
    Y, GY, U = np.empty_like(A), np.empty_like(A), np.empty_like(A)  # work buffers (no allocation
    A_new, GA_new = np.empty_like(A), np.empty_like(A)                 # of large arrays per iteration)
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
        D = np.subtract(A_new, A, out=U)
        if accelerate and grad_restart:
            # gradient restart (O'Donoghue and Candes 2015): momentum against the step
            against = np.einsum("ij,ij->i", Y, D) - np.einsum("ij,ij->i", A_new, D)  # (y - a_new).(a_new - a)
            t = np.where(against > 0, 1.0, t_new).astype(dt)
        elif accelerate:
            F_new = _smooth_value(A_new, GA_new, Bact, xxact) + pen_sum(A_new)
            t = np.where(F_new > F, 1.0, t_new).astype(dt)
            F = F_new
        check = polish and (it % check_every == 0 or it == max_iter)
        if not polish or check:
            diff = np.sqrt(np.einsum("ij,ij->i", D, D))
            scale = np.sqrt(np.einsum("ij,ij->i", A_new, A_new))
            conv = diff <= tol * np.maximum(scale, np.finfo(dt).tiny)
        else:
            conv = np.zeros(act.size, dtype=bool)
        # rotate the buffers: prev <- current <- new, the old prev becomes the next "new"
        A_prev, A, A_new = A, A_new, A_prev
        GA_prev, GA, GA_new = GA, GA_new, GA_prev
        iters[act] = it
        fin = None
        if polish and (it + lag) % check_every == 0:
            last_sign = np.sign(A).astype(np.int8)
        if check:
            # attempt the exact finish on every row at the first check, then where the sign
            # pattern held over the last `lag` iterations
            stable = np.all(np.sign(A).astype(np.int8) == last_sign, axis=1) | (it <= check_every) | (it == max_iter)
            if np.any(stable):
                rows_try = np.flatnonzero(stable)
                fin = A.astype(np.float64)
                ok = np.zeros(act.size, dtype=bool)
                fin[rows_try], ok[rows_try] = _lasso_finish(G64, B64[act[rows_try]], fin[rows_try], lam,
                                                            kkt_tol, finish_rounds)
                conv |= ok
        if np.any(conv):
            rows = act[conv]
            out[rows] = fin[conv] if fin is not None else A[conv]
            if fin is not None:
                verified[rows] = ok[conv]
            done[rows] = True
            keep = ~conv
            if not np.any(keep):
                act = act[keep]
                break
            act = act[keep]
            A, GA, A_prev, GA_prev, F, t = A[keep], GA[keep], A_prev[keep], GA_prev[keep], F[keep], t[keep]
            last_sign = last_sign[keep]
            Bact, xxact = B[act], xx[act]
    if act.size:
        out[act] = A
    info = {"step": g, "signal_iterations": iters, "converged_signals": int(done.sum())}
    if polish:
        # one last attempt on the rows stopped by the relative-change rule or the iteration limit
        rest = np.flatnonzero(~verified)
        if rest.size:
            fin, ok = _lasso_finish(G64, B64[rest], out[rest], lam, kkt_tol, finish_rounds)
            out[rest[ok]] = fin[ok]
            verified[rest[ok]] = True
        info["kkt_verified"] = int(verified.sum())
    return _Out(out, int(iters.max(initial=0)), bool(done.all()), info=info)


_PG_OPTIONS = {"max_iter": 1000, "tol": 1e-6, "init": None, "step": None, "polish": True,
               "kkt_tol": 1e-9, "check_every": 10, "finish_rounds": 8, "dtype": "float64"}


@_register("ista", options=_PG_OPTIONS, summary="proximal gradient (ISTA), batched, step 1/L")
def _ista(prob, **opts):
    return _proximal_gradient(prob, False, **opts)


@_register("fista", options=_PG_OPTIONS, summary="FISTA with function-value restart, batched")
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
    K = prob.G.shape[0]
    _exact_check(K, max_atoms)
    n = prob.Phi.shape[0]
    lam = prob.lam
    limit = min(K, n)
    if lam > 0:
        limit = min(limit, int(math.floor(float(np.max(prob.xx, initial=0.0)) / (2 * lam))))
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

    (design.md section 4; ``lambda ||v||_0`` is the l0 penalty of ``alpha v``, and
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
