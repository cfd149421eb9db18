"""Exact minimisation of a QUBO by branch and bound on a triangular factor (box-constrained
integer least squares, Schnorr-Euchner style depth-first search), vectorised per level.

The math (docs/exact.md has the proofs and measurements):

1. **Exact least-squares form.** For binary ``v``, ``v_i^2 = v_i``, so for any ``d``
   ``E(v) = v^T (P + d I) v + (q - d)^T v + c``. The shift ``d`` is chosen so that
   ``A = P + d I`` is positive *definite* (``lambda_min(A) = mu``, a ``1e-6`` fraction of
   ``||P||_2``): a semidefinite or indefinite ``P`` needs no special case, and the energy of
   every binary state is unchanged (not regularised: exactly rewritten). With the Cholesky
   factor ``A = R^T R`` (``R`` upper triangular) and ``R^T y = -(q - d)/2``:

   .. math:: E(v) = \\|R v - y\\|^2 + c_0, \\qquad c_0 = c - \\|y\\|^2 .

   By default (``diagonal="sdp"``) a vector ``u`` is moved first, ``P + diag(u)``, ``q - u``,
   with ``u`` the SDP-dual diagonal of :mod:`solvers.diagonal` (the one maximising the
   continuous bound, Billionnet and Elloumi); ``d`` is then added on top. Any ``u`` gives an
   exact rewrite, so the search is exact whatever the accuracy of ``u``.
2. **Tree.** Variables are fixed from the last (``v_{n-1}``, the root) to the first. At a node
   with ``v_k .. v_{n-1}`` fixed, rows ``i >= k`` of ``R v - y`` are known; the partial cost
   ``D = sum_{i >= k} (R_i v - y_i)^2`` grows by ``(R_jj x - t_j)^2`` when ``v_j = x`` is fixed,
   with ``t = y - R_{:, >= k} v_{>= k}`` updated incrementally.
3. **Bound.** Rows ``i < k`` still depend on free variables ``v_i .. v_{k-1}`` in ``[0, 1]``:
   ``R_{i, i:k} v`` ranges over ``[lo_i, hi_i]`` (sums of the negative and positive entries), so

   .. math:: \\min_{v_{<k}} E \\;\\ge\\; c_0 + D + \\sum_{i<k} \\operatorname{dist}(t_i, [lo_i, hi_i])^2 .

   (The plain Schnorr-Euchner bound drops the last sum: option ``bound="plain"``.)
4. **Ordering** (option ``order``): ``"schur"`` puts at the root the variable with the largest
   conditional curvature ``1 / (A^{-1})_{ii}`` (the diagonal ``R_ii^2`` it gets when placed
   last), removes it and repeats (the V-BLAST rule of sphere decoding): deciding first the
   variables whose wrong choice costs most, even with every other variable free, makes the
   bound grow fastest near the root. ``"natural"`` keeps the input order.
5. **Search.** Depth first over batches of nodes (one numpy pass per level and batch); children
   sorted by bound; the incumbent starts from the nearest-plane (Babai / GPTQ) descent polished
   by 1-flip steepest descent, and the search stops early when it meets the root bound.
6. **Floating point.** A node is pruned only if its bound is ``>= U + eps`` (``U``: the
   incumbent's energy, computed exactly from ``P``; ``eps``: a ``1e-9`` fraction of the energy
   scale), so rounding can never prune a strictly better state. Leaves are re-evaluated
   exactly from ``P``; the largest difference between the factor's value and the exact energy
   seen at leaves is reported in ``info["form_error"]``.

On a node or time limit the search returns the best state found, the proven bound
``min(best, min over open nodes of their bound - eps)`` and ``optimal=False``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

from reference._validation import check_positive_int

from ._registry import Outcome, register

__all__ = ["TreeSearch", "tree_search", "least_squares_form", "nearest_plane", "ORDERS", "BOUNDS",
           "DIAGONALS", "DEFAULT_MAX_NODES"]

ORDERS = ("schur", "natural")
DIAGONALS = ("sdp", "uniform")
#: Node limit of ``solve(..., "tree")`` when neither ``max_nodes`` nor ``time_limit`` is given.
DEFAULT_MAX_NODES = 50_000_000
BOUNDS = ("rows", "plain")
_MU = 1e-6  # lambda_min of the shifted matrix, relative to ||P||_2
_EPS = 1e-9  # pruning slack, relative to the energy scale
_ROOT_BOUND_TIMED_MAX = 256
_SDP_MAX = 512  # above: the uniform shift (the Newton steps cost O(n^3) each)  # with a time limit, no root box-QP bound above this size


# ---------------------------------------------------------------------------- the factor
@dataclass
class LeastSquaresForm:
    """``E(v) = ||R v - y||^2 + c0`` on binary ``v`` in the permuted order ``perm``.

    Attributes
    ----------
    perm : int array of shape (n,)
        Position ``p`` of the tree holds original variable ``perm[p]``; the root is ``p = n-1``.
    R : array of shape (n, n), upper triangular
    y : array of shape (n,)
    c0 : float
    shift : float
        The diagonal ``d`` moved from the linear term into ``P`` (``A = P + d I``).
    eps : float
        Pruning slack covering the rounding of the form.
    """

    perm: np.ndarray
    R: np.ndarray
    y: np.ndarray
    c0: float
    shift: float
    eps: float
    diagonal: np.ndarray | None = None  # the whole diagonal moved: A = P + diag(diagonal)


def _shift_for(w: np.ndarray, q: np.ndarray) -> float:
    """Diagonal ``d`` making ``P + d I`` positive definite with ``lambda_min = mu``."""
    norm = float(np.max(np.abs(w))) if w.size else 0.0
    ref = norm if norm > 0 else max(float(np.max(np.abs(q), initial=0.0)), 1.0)
    return max(0.0, _MU * ref - float(w[0]))


def _schur_order(A: np.ndarray) -> np.ndarray:
    """Greedy V-BLAST order: position n-1 (root) gets argmax 1/(A^-1)_ii, and so on."""
    n = A.shape[0]
    with np.errstate(all="ignore"):  # a nearly singular A only spoils the order, never the result
        return _schur_greedy(cho_solve(cho_factor(A), np.eye(n)))


def _schur_greedy(M: np.ndarray) -> np.ndarray:
    n = M.shape[0]
    remaining = list(range(n))
    from_root = []
    for _ in range(n):
        i = int(np.argmin(np.diag(M)))
        from_root.append(remaining.pop(i))
        m = M[:, i].copy()
        M = M - np.outer(m, m) / m[i]
        M = np.delete(np.delete(M, i, axis=0), i, axis=1)
    return np.array(from_root[::-1], dtype=np.int64)


def _make_pd(P, q, w):
    """``(d, P + d I)`` with ``lambda_min = mu`` (rounding checked by a Cholesky factorisation)."""
    n = P.shape[0]
    d = _shift_for(w, q)
    for _ in range(60):
        A = P + d * np.eye(n)
        try:
            np.linalg.cholesky(A)
            return d, A
        except np.linalg.LinAlgError:  # rounding in lambda_min: move further in
            d = 2 * d if d > 0 else _MU
    raise RuntimeError("could not make P positive definite")  # pragma: no cover


def least_squares_form(P, q, c, order: str = "schur", eigenvalues=None,
                       diagonal=None) -> LeastSquaresForm:
    """The exact least-squares rewrite of a BQM (trusted float64 input), see the module docs.

    ``diagonal`` (optional, shape (n,)): a diagonal ``u`` moved first (``P + diag u``,
    ``q - u``; e.g. :func:`solvers.diagonal.sdp_diagonal`); the uniform shift ``d`` is then
    added on top so that ``lambda_min(A) >= mu``, and ``diagonal`` of the form is ``u + d``.
    The ``"schur"`` order is always chosen on the uniformly shifted ``P`` (measured: fewer
    nodes than ordering on ``P + diag u``, docs/exact.md).
    """
    n = P.shape[0]
    w = np.linalg.eigvalsh(P) if eigenvalues is None else eigenvalues
    d, A = _make_pd(P, q, w)
    u = np.zeros(n)
    perm = np.arange(n) if order == "natural" else _schur_order(A)
    if diagonal is not None:
        u = np.asarray(diagonal, dtype=np.float64)
        P, q = P + np.diag(u), q - u
        w = np.linalg.eigvalsh(P)
        d, A = _make_pd(P, q, w)
    L = np.linalg.cholesky(A[np.ix_(perm, perm)])
    b = (q - d)[perm]
    y = solve_triangular(L, -b / 2, lower=True)
    R = np.ascontiguousarray(L.T)
    with np.errstate(over="ignore", invalid="ignore"):
        yy = float(y @ y)
        c0 = float(c - yy)
        norm_A = float(np.max(np.abs(w))) + d if n else 0.0
        scale = n * norm_A + yy + abs(float(c)) + float(np.abs(b).sum())
    if not (np.isfinite(scale) and np.isfinite(c0) and np.isfinite(R).all() and np.isfinite(y).all()):
        # ||q||^2 / ||P|| beyond float64 (a NaN bound would prune everything)
        raise ValueError("the least-squares factor of this model is not finite: the ratio "
                         "||q||^2 / ||P|| exceeds the float64 range; use method='exhaustive'")
    return LeastSquaresForm(perm=perm, R=R, y=y, c0=c0, shift=float(d), eps=_EPS * scale,
                            diagonal=u + d)


def nearest_plane(R: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Babai's nearest-plane point in ``{0,1}^n``: fix ``v_{n-1}, ..., v_0`` in turn, each to
    the value minimising ``(R_jj x - t_j)^2`` given those already fixed (the GPTQ/OBQ
    error-feedback rule restricted to up/down). Positions as in ``R``; returns int8."""
    n = R.shape[0]
    v = np.zeros(n)
    t = y.copy()
    for j in range(n - 1, -1, -1):
        x = 1.0 if (R[j, j] - t[j]) ** 2 < t[j] ** 2 else 0.0
        v[j] = x
        if x:
            t[:j] -= R[:j, j]
    return v.astype(np.int8)


def _descend(P, q, v) -> np.ndarray:
    """Steepest 1-flip descent on the exact model (improving flips only)."""
    v = v.astype(np.float64).copy()
    Pv = P @ v
    diag = np.diag(P)
    for _ in range(10 * len(v) + 10):
        s = 1 - 2 * v
        gain = s * (2 * Pv + q) + diag
        i = int(np.argmin(gain))
        if gain[i] >= -1e-12 * (abs(gain).max() + 1e-300):
            break
        v[i] += s[i]
        Pv += s[i] * P[:, i]
    return v.astype(np.int8)


# ---------------------------------------------------------------------------- the search
@dataclass
class TreeSearch:
    """Outcome of :func:`tree_search`.

    Attributes
    ----------
    states : int8 array of shape (k, n)
        The lowest states found, by ascending energy (``k <= num_states``).
    energies : float array of shape (k,)
        Their energies, computed from ``P`` in float64.
    optimal : bool
        True only if the search finished: the states are the ``k`` lowest.
    lower_bound : float
        Proven lower bound on the minimum energy (the minimum itself when optimal).
    status : str
    nodes : int
        Tree nodes whose bound was evaluated.
    info : dict
    """

    states: np.ndarray
    energies: np.ndarray
    optimal: bool
    lower_bound: float
    status: str
    nodes: int
    info: dict = field(default_factory=dict)


class _Pool:
    """The k lowest distinct states seen so far (in tree positions)."""

    def __init__(self, k: int, n: int):
        self.k = k
        self.V = np.zeros((0, n), dtype=np.int8)
        self.E = np.zeros(0)

    @property
    def threshold(self) -> float:
        return float(self.E[-1]) if len(self.E) >= self.k else np.inf

    def add(self, V: np.ndarray, E: np.ndarray) -> None:
        V = np.concatenate([self.V, V])
        E = np.concatenate([self.E, E])
        _, first = np.unique(np.packbits(V, axis=1), axis=0, return_index=True)
        V, E = V[first], E[first]
        idx = np.argsort(E, kind="stable")[: self.k]
        self.V, self.E = V[idx], E[idx]


def _row_distance2(T: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    gap = np.maximum(np.maximum(lo - T, T - hi), 0.0)
    return np.einsum("ij,ij->i", gap, gap)


def _search(form: LeastSquaresForm, Pp, qp, c, pool: _Pool, *, rows: bool, batch: int,
            max_nodes, deadline, stop_at: float):
    """Batched depth-first branch and bound. Returns (finished, status, open lower bound, nodes,
    form_error)."""
    R, y, c0, eps = form.R, form.y, form.c0, form.eps
    n = R.shape[0]
    cumneg = np.cumsum(np.minimum(R, 0.0), axis=1)
    cumpos = np.cumsum(np.maximum(R, 0.0), axis=1)
    root_h = _row_distance2(y[None, :], cumneg[:, n - 1], cumpos[:, n - 1])[0] if rows else 0.0
    stack = [(n, np.zeros(1), y[None, :].copy(), np.zeros((1, n), dtype=np.int8),
              np.array([c0 + root_h]))]
    nodes = 1
    form_error = 0.0
    status = "optimal"
    while stack:
        if pool.threshold <= stop_at:
            stack.clear()
            break
        k, D, T, V, B = stack.pop()
        keep = ~(B >= pool.threshold + eps)  # a NaN bound never prunes
        if not keep.all():
            D, T, V, B = D[keep], T[keep], V[keep], B[keep]
        if D.size == 0:
            continue
        if D.size > batch:
            stack.append((k, D[batch:], T[batch:], V[batch:], B[batch:]))
            D, T, V, B = D[:batch], T[:batch], V[:batch], B[:batch]
        if max_nodes is not None and nodes >= max_nodes:
            stack.append((k, D, T, V, B))
            status = f"node limit reached (max_nodes == {max_nodes})"
            break
        if deadline is not None and time.perf_counter() > deadline:
            stack.append((k, D, T, V, B))
            status = "time limit reached"
            break
        j = k - 1
        tj = T[:, j]
        D0 = D + tj * tj
        D1 = D + (R[j, j] - tj) ** 2
        nodes += 2 * D.size
        if j == 0:
            thr = pool.threshold + eps
            for x, Dx in ((0, D0), (1, D1)):
                cand = ~(Dx + c0 >= thr)
                if cand.any():
                    Vc = V[cand].copy()
                    Vc[:, 0] = x
                    Xf = Vc.astype(np.float64)
                    Ec = np.einsum("ij,ij->i", Xf @ Pp, Xf) + Xf @ qp + c
                    form_error = max(form_error, float(np.max(np.abs(Ec - (Dx[cand] + c0)))))
                    pool.add(Vc, Ec)
            continue
        T0 = T[:, :j]
        T1 = T0 - R[:j, j]
        if rows:
            lo, hi = cumneg[:j, j - 1], cumpos[:j, j - 1]
            B0 = D0 + c0 + _row_distance2(T0, lo, hi)
            B1 = D1 + c0 + _row_distance2(T1, lo, hi)
        else:
            B0, B1 = D0 + c0, D1 + c0
        thr = pool.threshold + eps
        k0, k1 = ~(B0 >= thr), ~(B1 >= thr)
        V1 = V[k1].copy()
        V1[:, j] = 1
        Bc = np.concatenate([B0[k0], B1[k1]])
        if Bc.size == 0:
            continue
        order = np.argsort(Bc, kind="stable")
        stack.append((j, np.concatenate([D0[k0], D1[k1]])[order],
                      np.concatenate([T0[k0], T1[k1]])[order],
                      np.concatenate([V[k0], V1])[order], Bc[order]))
    open_bound = min((float(e[4].min()) for e in stack if e[4].size), default=np.inf) - eps
    if any(np.isnan(e[4]).any() for e in stack):  # an unknown bound proves nothing
        open_bound = -np.inf
    return not stack, status, open_bound, nodes, form_error


def tree_search(P, q, c=0.0, *, order: str = "schur", bound: str = "rows", num_states: int = 1,
                max_nodes=None, time_limit=None, batch: int = 512, initial=None,
                root_bound: bool = True, diagonal: str = "sdp") -> TreeSearch:
    """Exact minimum (or ``num_states`` lowest states) of ``v^T P v + q^T v + c`` over {0,1}^n.

    Any symmetric ``P`` is accepted: semidefinite and indefinite ones are handled by the exact
    diagonal rewrite (module docs). Inputs are trusted (validated float64 from a :class:`BQM`).
    BLAS runs on one thread here (threadpoolctl): the matrices are small, and a shared machine
    made multi-threaded OpenBLAS much slower on them (measured: docs/performance.md).

    Parameters
    ----------
    P : array of shape (n, n), symmetric
    q : array of shape (n,)
    c : float, default=0
    order : {"schur", "natural"}, default="schur"
        Variable order of the tree (module docs, point 4).
    bound : {"rows", "plain"}, default="rows"
        Node bound: Schnorr-Euchner partial cost plus the row-interval term, or without it.
    num_states : int, default=1
        Return the ``num_states`` lowest distinct states (all of them if ``2^n`` is fewer).
    max_nodes : int or None
        Stop after about this many nodes (checked per batch).
    time_limit : float or None
        Stop after about this many seconds (checked per batch).
    batch : int, default=512
        Nodes expanded per numpy pass.
    initial : array of shape (n,) or None
        A known state: its energy is an upper bound from the start.
    root_bound : bool, default=True
        Also compute the certified box-QP bound (:mod:`solvers.bounds`) at the root: the search
        stops as soon as the incumbent meets it, and a limit reports the larger bound. With a
        ``time_limit`` the root bound is skipped above 256 variables: its bounded least squares
        alone can take longer than the limit there (tens of seconds at n = 400).
    diagonal : {"sdp", "uniform"}, default="sdp"
        The diagonal moved into ``P`` (module docs, point 1): ``"sdp"`` the one maximising the
        continuous bound (:func:`solvers.diagonal.sdp_diagonal`; up to 512 variables, uniform
        above), ``"uniform"`` the smallest uniform shift.

    Returns
    -------
    TreeSearch
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _tree_search(P, q, c, order=order, bound=bound, num_states=num_states,
                            max_nodes=max_nodes, time_limit=time_limit, batch=batch,
                            initial=initial, root_bound=root_bound, diagonal=diagonal)


def _tree_search(P, q, c, *, order, bound, num_states, max_nodes, time_limit, batch, initial,
                 root_bound, diagonal) -> TreeSearch:
    from .bounds import _box_qp_bound, _pow2_scale, _unscale_bound
    from .diagonal import sdp_diagonal

    t0 = time.perf_counter()
    n = P.shape[0]
    k = min(num_states, 2**n) if n < 63 else num_states
    if n == 0:
        return TreeSearch(np.zeros((1, 0), dtype=np.int8), np.array([float(c)]), True, float(c),
                          "optimal", 1)
    P0, q0, c00 = P, q, float(c)
    s = _pow2_scale(P, q, c)  # exact rescaling: the factor stays inside the float64 range
    P, q, c = P * s, q * s, float(c) * s
    u = sdp_diagonal(P, q) if diagonal == "sdp" and n <= _SDP_MAX else None
    form = least_squares_form(P, q, c, order=order, diagonal=u)
    perm = form.perm
    Pp = P[np.ix_(perm, perm)]
    qp = q[perm]
    pool = _Pool(k, n)

    def energies(V):
        X = V.astype(np.float64)
        return np.einsum("ij,ij->i", X @ Pp, X) + X @ qp + c

    starts = [_descend(Pp, qp, nearest_plane(form.R, form.y))]
    if initial is not None:
        starts.append(np.asarray(initial, dtype=np.int8)[perm])
    S = np.array(starts, dtype=np.int8)
    if k > 1:  # the starts' 1-flip neighbours fill the pool faster
        flips = np.repeat(S, n, axis=0)
        flips[np.arange(len(flips)), np.tile(np.arange(n), len(S))] ^= 1
        S = np.concatenate([S, flips])
    pool.add(S, energies(S))
    lb_root = -np.inf
    stop_at = -np.inf
    if root_bound and (time_limit is None or n <= _ROOT_BOUND_TIMED_MAX):
        lb_root = _box_qp_bound(P, q, c, diagonal=u)[0]
        if k == 1:
            stop_at = lb_root
    deadline = None if time_limit is None else t0 + float(time_limit)
    finished, status, open_bound, nodes, form_error = _search(
        form, Pp, qp, c, pool, rows=(bound == "rows"), batch=batch, max_nodes=max_nodes,
        deadline=deadline, stop_at=stop_at)
    states = np.empty_like(pool.V)
    states[:, perm] = pool.V
    X = states.astype(np.float64)  # energies of the original model, in float64
    E = np.einsum("ij,ij->i", X @ P0, X) + X @ q0 + c00
    idx = np.argsort(E, kind="stable")
    states, E = states[idx], E[idx]
    best = float(E[0])
    if finished:
        lower = best
    else:
        lower = min(best, _unscale_bound(max(open_bound, lb_root), s))
    info = {"nodes": nodes, "order": order, "bound": bound, "shift": form.shift / s,
            "eps": form.eps / s, "form_error": form_error / s,
            "root_bound": lb_root / s,
            "seconds": time.perf_counter() - t0}
    return TreeSearch(states, E, finished, float(lower), status, nodes, info)


# ---------------------------------------------------------------------------- registration
def _check_options(opts: dict) -> None:
    if opts["order"] not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, found {opts['order']!r}")
    if opts["bound"] not in BOUNDS:
        raise ValueError(f"bound must be one of {list(BOUNDS)}, found {opts['bound']!r}")
    if opts["max_nodes"] is not None:
        check_positive_int(opts["max_nodes"], "max_nodes")
    if opts["time_limit"] is not None:
        tl = opts["time_limit"]
        if isinstance(tl, bool) or not isinstance(tl, (int, float, np.integer, np.floating)) \
                or not np.isfinite(tl) or tl <= 0:
            raise ValueError(f"time_limit must be a positive number of seconds or None, found {tl!r}")
    check_positive_int(opts["batch"], "batch")
    if opts["diagonal"] not in DIAGONALS:
        raise ValueError(f"diagonal must be one of {list(DIAGONALS)}, found {opts['diagonal']!r}")


def _check(n: int, opts: dict) -> None:
    _check_options(opts)


@register("tree", kind="qubo", exact=True, check=_check,
          options={"max_nodes": None, "time_limit": None, "order": "schur", "bound": "rows",
                   "batch": 512, "diagonal": "sdp"},
          summary="exact: branch and bound on the triangular factor (any QUBO, via a diagonal "
                  "rewrite); proves optimality or returns its bound")
def _tree(bqm, max_nodes, time_limit, order, bound, batch, diagonal) -> Outcome:
    # Limits mean what they say: a time_limit given alone governs (no hidden node limit); with
    # neither limit the deterministic DEFAULT_MAX_NODES applies.
    if max_nodes is None and time_limit is None:
        max_nodes = DEFAULT_MAX_NODES
    res = tree_search(bqm.P, bqm.q, bqm.c, order=order, bound=bound, max_nodes=max_nodes,
                      time_limit=time_limit, batch=int(batch), diagonal=diagonal)
    info = {key: res.info[key] for key in ("nodes", "shift", "root_bound")}
    return Outcome(x=res.states[0], optimal=res.optimal, lower_bound=res.lower_bound,
                   status="optimal" if res.optimal else res.status, info=info)
