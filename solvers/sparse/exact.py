r"""Exact l0 sparse coding by enumerating supports (docs/sparse.md, "Exact l0").

.. math:: \min_S \tfrac12 \left(\|x\|^2 - b_S^T G_{SS}^{-1} b_S\right) + \lambda |S|

with least-squares amplitudes on the best support; registered as the sparse method
``l0-exact`` (its codes are proven optimal for ``l0`` and for ``cel0``, whose global
minimisers and minimum equal those of l0).
"""

from __future__ import annotations

import math

import numpy as np

from reference.validation import Integer, check_positive_int

from .problem import outcome, register_sparse

__all__ = ["EXACT_MAX_ATOMS", "EXACT_HARD_MAX_ATOMS", "exact_l0", "least_squares_on_supports"]

#: Default limit of the exact l0 solver (2^20 supports, seconds); raise with ``max_atoms``.
EXACT_MAX_ATOMS = 20
#: Absolute limit of the exact l0 solver: the shared factors of the widest level take
#: ``C(K, K/2) (K/2)^2`` floats (0.7 GB at K = 22).
EXACT_HARD_MAX_ATOMS = 22


def _exact_check(K, max_atoms):
    max_atoms = check_positive_int(max_atoms, "max_atoms", minimum=1, maximum=EXACT_HARD_MAX_ATOMS)
    if K > max_atoms:
        raise ValueError(
            f"l0-exact: the dictionary has K == {K} atoms, above the limit max_atoms == {max_atoms} "
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


def least_squares_on_supports(Phi, X, support):
    """Least-squares amplitudes on each row's support: ``a_S = argmin ||x - Phi_S a_S||``, zero off ``S``.

    ``support`` is a boolean mask of shape (N, K) (True: the atom is in the row's support);
    rows of identical supports share one solve. Trusted input (clean float64 arrays).
    """
    N, K = support.shape
    A = np.zeros((N, K))
    keys, inv = np.unique(support, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    for g in range(keys.shape[0]):
        S = np.flatnonzero(keys[g])
        if S.size == 0:
            continue
        rows = np.flatnonzero(inv == g)
        sol, *_ = np.linalg.lstsq(Phi[:, S], X[rows].T, rcond=None)
        A[np.ix_(rows, S)] = sol.T
    return A


@register_sparse("l0-exact", options={"max_atoms": Integer(EXACT_MAX_ATOMS, low=1, high=EXACT_HARD_MAX_ATOMS)}, penalties=("l0", "cel0"), exact=True,
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
    A = least_squares_on_supports(prob.Phi, prob.X, sup)
    return outcome(A, int(sup.sum(1).max(initial=0)), True, optimal=True, status="optimal",
                   info={"enumerated_value": best, "supports_scored": visited, "max_support": limit})


