"""Exact minimisation of a QUBO by branch and bound on a triangular factor (box-constrained
integer least squares, Schnorr-Euchner style depth-first search), vectorised per level.

The math (docs/exact.md has the proofs and measurements):

1. **Exact least-squares form** (:mod:`solvers.least_squares`). For binary ``v``,
   ``v_i^2 = v_i``, so a diagonal moved from ``q`` into ``P`` changes no energy; with it
   ``A = P + d I`` is positive definite, ``A = R^T R`` and

   .. math:: E(v) = \\|R v - y\\|^2 + c_0 .

   By default (``diagonal="sdp"``) a vector ``u`` is moved first, ``P + diag(u)``, ``q - u``,
   with ``u`` the SDP-dual diagonal of :mod:`solvers.diagonal` (the one maximising the
   continuous bound, Billionnet and Elloumi); ``d`` is then added on top. Any ``u`` gives an
   exact rewrite, so the search is exact whatever the accuracy of ``u``.
2. **Tree.** Variables are fixed from the last (``v_{n-1}``, the root) to the first. At a node
   with ``v_k .. v_{n-1}`` fixed, rows ``i >= k`` of ``R v - y`` are known; the partial cost
   ``D = sum_{i >= k} (R_i v - y_i)^2`` grows by ``(R_jj b - t_j)^2`` when ``v_j = b`` is fixed,
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

import numpy as np

from reference.validation import ByWidth, Choice, Integer

from ._registry import Outcome, register
from .runtime import blas_threads
from .bounds import _box_qp_bound
from .diagonal import sdp_diagonal
from .sdp_bound import triangle_bound
from .least_squares import ORDERS, LeastSquaresForm, _pow2_scale, _unscale_bound, least_squares_form, nearest_plane
from .result import Result

__all__ = ["tree_search", "BOUNDS", "DIAGONALS", "DEFAULT_MAX_NODES", "default_max_nodes"]

DIAGONALS = ("sdp", "uniform")
#: Node limit of ``solve(..., "tree")`` up to 64 variables when neither ``max_nodes`` nor
#: ``time_limit`` is given (wider rows: :func:`default_max_nodes`).
DEFAULT_MAX_NODES = 50_000_000
#: Nodes per variable that a wide row's default budget keeps at least: the depth-first search
#: reaches its first leaves after about ``2 * batch * n`` nodes (1,024 n at the default batch).
NODES_PER_VARIABLE = 2048


def default_max_nodes(n: int) -> int:
    """The tree's default node budget for a QUBO of ``n`` variables (deterministic):
    ``DEFAULT_MAX_NODES`` up to 64 variables (it proves every 64-wide AR(1) and MLP row), then
    ``DEFAULT_MAX_NODES * (64 / n)^3`` but at least ``NODES_PER_VARIABLE * n``, and never more
    than ``DEFAULT_MAX_NODES``. Wider rows are not proven anyway (none of 128 variables within
    4e7 to 8e7 nodes) and their bound stops rising after about 1e5 nodes (docs/performance.md,
    "Default budgets by width"): 6.25e6 nodes at n = 128, 7.9e5 at n = 384, 2.1e6 at n = 1024."""
    n = int(n)
    if n <= 64:
        return DEFAULT_MAX_NODES
    return int(min(DEFAULT_MAX_NODES, max(NODES_PER_VARIABLE * n, round(DEFAULT_MAX_NODES * (64 / n) ** 3))))
BOUNDS = ("rows", "plain")
_ROOT_BOUND_TIMED_MAX = 256  # with a time limit, no root box-QP bound above this size
_SDP_MAX = 512  # above: the uniform shift (the Newton steps cost O(n^3) each)
# the root box-QP bound uses the SDP diagonal up to this size even where the search does not: at
# n = 1024 it is 1.6x stronger and 4x cheaper than the uniform shift's (docs/performance.md,
# "Certified lower bounds at real widths")
_SDP_ROOT_MAX = 1024


# ---------------------------------------------------------------------------- the search
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


class _LowestStates:
    """The ``k`` lowest distinct states seen so far (in tree positions) and their energies."""

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


def _search(form: LeastSquaresForm, Pp, qp, c, lowest: _LowestStates, *, rows: bool, batch: int,
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
        if lowest.threshold <= stop_at:
            stack.clear()
            break
        k, D, T, V, B = stack.pop()
        keep = ~(B >= lowest.threshold + eps)  # a NaN bound never prunes
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
            thr = lowest.threshold + eps
            for bit, Dx in ((0, D0), (1, D1)):
                cand = ~(Dx + c0 >= thr)
                if cand.any():
                    Vc = V[cand].copy()
                    Vc[:, 0] = bit
                    Xf = Vc.astype(np.float64)
                    Ec = np.einsum("ij,ij->i", Xf @ Pp, Xf) + Xf @ qp + c
                    form_error = max(form_error, float(np.max(np.abs(Ec - (Dx[cand] + c0)))))
                    lowest.add(Vc, Ec)
            continue
        T0 = T[:, :j]
        T1 = T0 - R[:j, j]
        if rows:
            lo, hi = cumneg[:j, j - 1], cumpos[:j, j - 1]
            B0 = D0 + c0 + _row_distance2(T0, lo, hi)
            B1 = D1 + c0 + _row_distance2(T1, lo, hi)
        else:
            B0, B1 = D0 + c0, D1 + c0
        thr = lowest.threshold + eps
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
                root_bound: bool = True, diagonal: str = "sdp", triangle_steps: int = 0,
                floor: float | None = None) -> Result:
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
        above; the root bound uses it up to 1024), ``"uniform"`` the smallest uniform shift.
    triangle_steps : int, default=0
        With ``root_bound``, also the SDP bound with triangle inequalities after this many
        supergradient steps (:func:`solvers.sdp_bound.triangle_bound`); the root bound is the
        larger of the two. 0: not computed.
    floor : float or None
        A lower bound on every energy proven by where the model comes from (``BQM.floor``: 0 for a
        layer row, a sum of squares); None for a general QUBO. With ``num_states == 1`` the
        search stops, optimal, once a state's energy recomputed from ``P`` is at most ``floor``
        (docs/exact.md, section 2).

    Returns
    -------
    Result
        ``x`` the lowest state found and ``energy`` its energy, computed from ``P`` in float64;
        ``optimal`` True only if the search finished (then the states in ``info["states"]``
        are the lowest ones); ``lower_bound`` a proven bound on the minimum (the minimum
        itself when optimal); ``status`` ``"optimal"`` or the limit reached. ``info``:
        ``states`` (int8, shape (k, n), ``k <= num_states``) and ``energies`` (shape (k,)),
        the lowest distinct states found by ascending energy; ``nodes`` (tree nodes whose
        bound was evaluated), ``order``, ``bound``, ``shift``, ``eps``, ``form_error``,
        ``residual`` (the rewrite's certified bound on ``|E - ||R v - y||^2 - c0|`` over every
        binary state, :mod:`solvers.least_squares`) and ``root_bound`` (module docs).
    """
    with blas_threads(1):
        return _tree_search(P, q, c, order=order, bound=bound, num_states=num_states,
                            max_nodes=max_nodes, time_limit=time_limit, batch=batch,
                            initial=initial, root_bound=root_bound, diagonal=diagonal,
                            triangle_steps=triangle_steps, floor=floor)


def _exact_scale(P, q, c) -> float:
    """The power of two that rescales the model exactly (the factor stays inside the float64 range),
    or ValueError when a nonzero coefficient would fall among the subnormals: the rescaling is exact
    only above them, and an optimum that hinges on a rounded coefficient could be proved wrong."""
    s = _pow2_scale(P, q, c)
    nz = np.abs(np.concatenate([P[P != 0], q[q != 0]]))
    if nz.size and float(nz.min()) * s < np.finfo(np.float64).tiny:
        raise ValueError(f"the model's coefficients span more than float64 resolves: the smallest nonzero, "
                         f"{float(nz.min()):.3g}, is below 2^-1022 of the largest, {float(nz.max()):.3g}; "
                         "the tree cannot prove an optimum at that resolution: rescale the model, drop the "
                         "negligible terms or use method='exhaustive'")
    return s


def _tree_search(P, q, c, *, order, bound, num_states, max_nodes, time_limit, batch, initial,
                 root_bound, diagonal, triangle_steps=0, floor=None) -> Result:
    t0 = time.perf_counter()
    n = P.shape[0]
    k = min(num_states, 2**n) if n < 63 else num_states
    if n == 0:
        return Result(x=np.zeros(0, dtype=np.int8), energy=float(c), optimal=True,
                      lower_bound=float(c), seconds=time.perf_counter() - t0, method="tree",
                      status="optimal",
                      info={"states": np.zeros((1, 0), dtype=np.int8), "energies": np.array([float(c)]),
                            "nodes": 1})
    P0, q0, c00 = P, q, float(c)
    s = _exact_scale(P, q, c)
    P, q, c = P * s, q * s, float(c) * s
    u = sdp_diagonal(P, q) if diagonal == "sdp" and n <= _SDP_MAX else None
    form = least_squares_form(P, q, c, order=order, diagonal=u)
    perm = form.perm
    Pp = P[np.ix_(perm, perm)]
    qp = q[perm]
    lowest = _LowestStates(k, n)

    def energies(V):
        X = V.astype(np.float64)
        return np.einsum("ij,ij->i", X @ Pp, X) + X @ qp + c

    starts = [_descend(Pp, qp, nearest_plane(form.R, form.y))]
    if initial is not None:
        starts.append(np.asarray(initial, dtype=np.int8)[perm])
    use_floor = floor is not None and k == 1
    if use_floor:  # a layer row's all-down state: zero loss when its weights lie on the grid
        starts.append(np.zeros(n, dtype=np.int8))
    S = np.array(starts, dtype=np.int8)
    if k > 1:  # the starts' 1-flip neighbours fill the set of lowest states faster
        flips = np.repeat(S, n, axis=0)
        flips[np.arange(len(flips)), np.tile(np.arange(n), len(S))] ^= 1
        S = np.concatenate([S, flips])
    lowest.add(S, energies(S))
    lb_root = -np.inf
    stop_at = -np.inf
    if root_bound and (time_limit is None or n <= _ROOT_BOUND_TIMED_MAX):
        u_root = u
        if u_root is None and diagonal == "sdp" and n <= _SDP_ROOT_MAX:
            u_root = sdp_diagonal(P, q)
        lb_root = _box_qp_bound(P, q, c, diagonal=u_root)[0]
        if triangle_steps:  # the SDP bound with triangle inequalities (solvers.sdp_bound)
            lb_root = max(lb_root, triangle_bound(P, q, c, steps=int(triangle_steps),
                                                  upper=float(lowest.E[0]))[0])
        if k == 1:
            stop_at = lb_root
    if use_floor:  # a power-of-two scaling keeps the floor exact (0 stays 0)
        stop_at = max(stop_at, float(floor) * s)
    deadline = None if time_limit is None else t0 + float(time_limit)
    finished, status, open_bound, nodes, form_error = _search(
        form, Pp, qp, c, lowest, rows=(bound == "rows"), batch=batch, max_nodes=max_nodes,
        deadline=deadline, stop_at=stop_at)
    states = np.empty_like(lowest.V)
    states[:, perm] = lowest.V
    X = states.astype(np.float64)  # energies of the original model, in float64
    E = np.einsum("ij,ij->i", X @ P0, X) + X @ q0 + c00
    idx = np.argsort(E, kind="stable")
    states, E = states[idx], E[idx]
    best = float(E[0])
    if use_floor and best <= floor:  # the proven floor is met: no state can be lower
        finished, status = True, "optimal"
    elif use_floor and finished and lowest.E[0] <= float(floor) * s and not lowest.E[0] <= lb_root:
        finished, status = False, "best found"  # stopped at the floor only in the rewrite's rounding
    if finished:
        lower = best
    else:
        lower = min(best, _unscale_bound(max(open_bound, lb_root), s))
    info = {"states": states, "energies": E, "nodes": nodes, "order": order, "bound": bound,
            "shift": form.shift / s, "eps": form.eps / s, "form_error": form_error / s,
            "residual": form.residual / s,
            "root_bound": lb_root / s}
    return Result(x=states[0], energy=best, optimal=finished, lower_bound=float(lower),
                  seconds=time.perf_counter() - t0, method="tree", status=status, info=info)


# ---------------------------------------------------------------------------- registration
@register("tree", kind="qubo", exact=True, certifies_bound=True, slow_first=1, budget="max_nodes",
          budget_rule=ByWidth(default_max_nodes, "5e7 up to n = 64, then 5e7 (64/n)^3 but at least 2048 n "
                              "(with neither max_nodes nor time_limit given)"),
          options={"max_nodes": None, "time_limit": None, "order": Choice("schur", ORDERS),
                   "bound": Choice("rows", BOUNDS), "batch": Integer(512, low=1),
                   "diagonal": Choice("sdp", DIAGONALS), "triangle_steps": Integer(0, low=0)},
          summary="exact: branch and bound on the triangular factor (any QUBO, via a diagonal "
                  "rewrite); proves optimality or returns its bound")
def _tree(bqm, max_nodes, time_limit, order, bound, batch, diagonal, triangle_steps) -> Outcome:
    # Limits mean what they say: a time_limit given alone governs (no hidden node limit); with
    # neither limit the deterministic default_max_nodes(n) applies.
    if max_nodes is None and time_limit is None:
        max_nodes = default_max_nodes(bqm.n)
    res = tree_search(bqm.P, bqm.q, bqm.c, order=order, bound=bound, max_nodes=max_nodes,
                      time_limit=time_limit, batch=int(batch), diagonal=diagonal,
                      triangle_steps=int(triangle_steps), floor=bqm.floor)
    info = {key: res.info[key] for key in ("nodes", "shift", "root_bound")}
    return Outcome(x=res.x, optimal=res.optimal, lower_bound=res.lower_bound, status=res.status,
                   info=info)
