"""Greedy sparse coders: orthogonal matching pursuit and iterative hard thresholding (docs/sparse.md).

``omp`` approximately minimises the l0 objective ``1/2 ||x - Phi a||^2 + lam ||a||_0`` (or the
residual with ``n_nonzero`` atoms); ``iht`` the sparsity-constrained problem
``min 1/2 ||x - Phi a||^2`` subject to ``||a||_0 <= n_nonzero``. Neither proves its codes optimal.
"""

from __future__ import annotations

import numpy as np

from reference.validation import Integer, check_positive_int

from .problem import INIT, STEP, TOL, init_codes, outcome, register_sparse, step_size

__all__ = ["keep_largest"]


def keep_largest(U, k):
    """``H_k``: each row of ``U`` with all but its ``k`` largest-magnitude entries set to zero."""
    if k >= U.shape[1]:
        return U
    idx = np.argpartition(-np.abs(U), k - 1, axis=1)[:, :k]
    out = np.zeros_like(U)
    rows = np.arange(U.shape[0])[:, None]
    out[rows, idx] = U[rows, idx]
    return out


@register_sparse("iht", options={"n_nonzero": Integer(None, low=1, none=True, doc="atoms kept per signal (required)"),
                                 "max_iter": 1000, "tol": TOL, "init": INIT, "step": STEP},
                 summary="iterative hard thresholding to n_nonzero atoms (sparsity constrained)")
def _iht(prob, n_nonzero, max_iter, tol, init, step):
    """Iterative hard thresholding (Blumensath and Davies 2008), batched over signals:
    ``a <- H_k(a + g Phi^T (x - Phi a))`` with ``g = 1/||Phi||_2^2`` (or ``step``), from
    ``H_k(init)`` (zero by default), until ``||a_new - a|| <= tol ||a_new||``. A fixed point is
    least squares on its support with every kept amplitude at least ``g`` times every
    correlation left out (docs/sparse.md); not proven optimal."""
    if n_nonzero is None:
        raise ValueError("method 'iht' needs the option n_nonzero (number of atoms kept per signal)")
    K = prob.G.shape[0]
    k = check_positive_int(n_nonzero, "n_nonzero", minimum=1, maximum=K)
    max_iter, tol = int(max_iter), float(tol)
    g = step_size(prob, step)
    N = prob.B.shape[0]
    A = keep_largest(init_codes(init, N, K), k)
    done = np.zeros(N, dtype=bool)
    iters = np.zeros(N, dtype=np.int64)
    for it in range(1, max_iter + 1):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Aa = A[act]
        new = keep_largest(Aa - g * (Aa @ prob.G - prob.B[act]), k)
        d = np.linalg.norm(new - Aa, axis=1)
        s = np.linalg.norm(new, axis=1)
        A[act] = new
        iters[act] = it
        done[act[d <= tol * np.maximum(s, 1e-300)]] = True
    return outcome(A, int(iters.max(initial=0)), bool(done.all()), info={"step": g, "n_nonzero": k})


# ---------------------------------------------------------------------------------- OMP
@register_sparse("omp", options={"n_nonzero": Integer(None, low=1, none=True,
                                                     doc="atoms per signal (None: stop by lam)")},
                 summary="orthogonal matching pursuit (n_nonzero atoms, or l0 stopping with lam)")
def _omp(prob, n_nonzero):
    """Orthogonal matching pursuit with incremental Cholesky factors, batched: add the atom most
    correlated with the residual, refit on the support; stop at ``n_nonzero`` atoms or, when it is
    None, when the best atom lowers ``1/2 ||r||^2`` by no more than ``lam`` (docs/sparse.md)."""
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
    return outcome(A, int(size.max(initial=0)), True, info={"support_sizes": size})


