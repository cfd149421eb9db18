"""Large-neighbourhood search (``lns``): the best rounding the project can find on rows too wide
to prove (docs/exact.md, "Large-neighbourhood search").

For binary ``v`` and a window ``S`` of variables, with the others fixed at ``x_F``, the model
``E(v) = v^T P v + q^T v + c`` restricted to ``S`` is again a QUBO:

.. math:: E(v_S) = v_S^T P_{SS} v_S + (q_S + 2 P_{SF} x_F)^T v_S + \\text{const},

whose minimum the tree search (:func:`solvers.tree.tree_search`) finds exactly when the window
is small (``k`` up to a few dozen variables). Re-solving windows one after another can only lower
the energy (the current window state is the tree's incumbent), so the search is monotone.

* **Start**: the best of the fast heuristics: GPTQ's error-feedback rule in natural and
  ``act_order`` order, the tree's best state after ``tree_nodes`` nodes (by default 1e6 up
  to 64 variables, then ``max(6.4e7 / n, 1100 n)``: past its first leaves, :func:`start_tree_nodes`), and optionally tabu
  search (dwave-samplers, deterministic restarts); each polished by 1-flip descent. The tree's
  start nodes are not counted in ``max_nodes``.
* **Windows by coupling strength**: a window grows from a seed variable by adding, one at a time,
  the variable with the largest total normalised coupling ``|P_ij| / sqrt(P_ii P_jj)`` to the
  variables already in it (for a layer row: the most correlated inputs). Seeds are visited in a
  seeded random order; a pass ends when every variable has been in some window.
* **k grown while it pays**: after a pass without improvement ``k`` grows by half, up to
  ``max_window``; the search stops after a pass without improvement at ``max_window``, or when the
  work budget (tree nodes summed over windows, ``max_nodes``) is spent: results never depend on
  the clock.

The result is a heuristic state (``optimal=False``, no bound); its energy is recomputed from the
model by :func:`solvers.solve`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from threadpoolctl import threadpool_limits

from reference.validation import ByWidth, Choice, Integer

from ._registry import Outcome, register
from .baselines import gptq_rule
from .tree import _descend, tree_search

__all__ = ["lns", "coupling_window", "start_tree_nodes"]

_STARTS = ("gptq", "tabu")
_ENUMERATE = 12  # windows up to this size are enumerated, larger ones go to the tree
START_NODES_PER_VARIABLE = 1100  # the tree's start state: past its first leaves (start_tree_nodes)


@lru_cache(maxsize=_ENUMERATE + 1)
def _states(k: int) -> np.ndarray:
    """All 2^k binary vectors of length k as float64 rows (read-only, cached)."""
    V = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(np.float64)
    V.setflags(write=False)
    return V


def start_tree_nodes(n: int) -> int:
    """Default ``tree_nodes`` of ``lns`` for a QUBO of ``n`` variables: 1e6 up to 64 variables,
    then ``max(6.4e7 / n, 1100 n)``. The depth-first search expands 512 nodes a level, so its
    first leaves come after about ``1024 (n - 10) + 2046 < 1100 n`` nodes, and its best state
    there is a better start than tabu's on many rows (docs/performance.md, "Default budgets by
    width"); 1e6 nodes at 64 variables put ``lns`` on the proven optimum of all 32 proven rows
    measured there (131,072 left one 1.2 % above it)."""
    n = int(n)
    return 1_000_000 if n <= 64 else max(round(64_000_000 / n), START_NODES_PER_VARIABLE * n)


def coupling_window(C: np.ndarray, seed_var: int, k: int) -> np.ndarray:
    """Indices of a window of ``k`` variables grown greedily from ``seed_var``: each step adds
    the variable with the largest summed coupling ``C[i, j]`` to the window (ties: lowest index).
    ``C`` is a non-negative symmetric coupling matrix with zero diagonal."""
    n = C.shape[0]
    k = min(k, n)
    inside = np.zeros(n, dtype=bool)
    inside[seed_var] = True
    score = C[seed_var].copy()
    chosen = [seed_var]
    for _ in range(k - 1):
        score_masked = np.where(inside, -np.inf, score)
        j = int(np.argmax(score_masked))
        chosen.append(j)
        inside[j] = True
        score += C[j]
    return np.array(chosen, dtype=np.int64)


def _coupling(P: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.abs(np.diag(P)))
    d = np.where(d > 0, d, 1.0)
    C = np.abs(P) / d[:, None] / d[None, :]
    np.fill_diagonal(C, 0.0)
    return C


def _energy(P, q, v) -> float:
    x = v.astype(np.float64)
    return float(x @ P @ x + q @ x)


def _elites(bqm, start: str, reads: int, seed, tree_nodes: int = 0) -> list[np.ndarray]:
    """Distinct start states, best first: GPTQ's rule (both orders), the tree's best state after
    ``tree_nodes`` nodes (if > 0) and, with ``start="tabu"``, ``reads`` tabu reads; each polished
    by 1-flip descent."""
    P, q = bqm.P, bqm.q
    cands = [gptq_rule(P, q, order=o) for o in ("natural", "act_order")]
    if tree_nodes > 0:
        cands.append(tree_search(P, q, 0.0, max_nodes=tree_nodes, root_bound=False).x)
    if start == "tabu":
        from dwave.samplers import TabuSampler

        kwargs = {"num_reads": reads, "num_restarts": 20, "timeout": None}
        if seed is not None:
            kwargs["seed"] = int(seed) % (2**31)
        ss = TabuSampler().sample(bqm.to_dimod(), **kwargs)
        order = [ss.variables.index(v) for v in bqm.labels]
        cands.extend(np.asarray(ss.record.sample)[:, order])
    states = np.unique(np.array([_descend(P, q, v) for v in cands], dtype=np.int8), axis=0)
    e = [_energy(P, q, v) for v in states]
    return [states[i] for i in np.argsort(e, kind="stable")]


class _Search:
    """The current state ``x`` with ``P x`` kept up to date, and the exact window step."""

    def __init__(self, P, q, x, window_nodes: int, max_nodes: int):
        self.P, self.q = P, q
        self.x = x.astype(np.float64)
        self.Px = P @ self.x
        # relative to the model's scale, with no absolute floor: a row of tiny coefficients is
        # searched exactly as the same row scaled up
        self.tol = 1e-12 * (float(np.abs(P).sum()) + float(np.abs(q).sum()))
        self.window_nodes, self.max_nodes = window_nodes, max_nodes
        self.nodes = self.windows = self.improving = self.kick_gains = 0

    @property
    def spent(self) -> bool:
        return self.nodes >= self.max_nodes

    def step(self, S: np.ndarray) -> bool:
        """Re-solve window ``S`` exactly (within the node budget) with the rest fixed; True if the
        energy went down."""
        P, x = self.P, self.x
        xs = x[S]
        PSS = P[np.ix_(S, S)]
        qS = self.q[S] + 2 * (self.Px[S] - PSS @ xs)  # q_S + 2 P_SF x_F
        if S.size <= _ENUMERATE:  # all 2^k states at once: cheaper than a tree's set-up
            V = _states(S.size)
            E = np.einsum("ij,ij->i", V @ PSS, V) + V @ qS
            new = V[int(np.argmin(E))]
            self.nodes += V.shape[0]
        else:
            budget = max(1, min(self.window_nodes, self.max_nodes - self.nodes))
            res = tree_search(PSS, qS, 0.0, max_nodes=budget, initial=xs.astype(np.int8),
                              root_bound=False)
            self.nodes += res.info["nodes"]
            new = res.x.astype(np.float64)
        self.windows += 1
        d = new - xs
        if not np.any(d) or _energy(PSS, qS, new) - _energy(PSS, qS, xs) >= -self.tol:
            return False
        x[S] = new
        self.Px += P[:, S] @ d
        self.improving += 1
        return True


def lns(bqm, *, window: int = 16, max_window: int = 32, window_nodes: int = 20_000,
        max_nodes: int = 20_000_000, start: str = "tabu", reads: int = 3, kicks: int = 32, kick: int = 6,
        seed=0, tree_nodes: int = 0) -> Outcome:
    """Large-neighbourhood search on a QUBO (module docs); returns an :class:`Outcome`."""
    P, q = bqm.P, bqm.q
    n = bqm.n
    if n == 0:
        return Outcome(x=np.zeros(0, dtype=np.int8), optimal=True, status="optimal")
    elites = _elites(bqm, start, reads, seed, tree_nodes if n > max_window else 0)
    e_start = _energy(P, q, elites[0]) + bqm.c
    if n <= max_window:  # one window is the whole problem: the tree decides it
        res = tree_search(P, q, bqm.c, max_nodes=max_nodes, initial=elites[0])
        return Outcome(x=res.x, optimal=res.optimal,
                       lower_bound=res.lower_bound if np.isfinite(res.lower_bound) else None,
                       status="optimal" if res.optimal else "best found",
                       info={"nodes": res.info["nodes"], "windows": 1, "passes": 0, "window": n,
                             "start_energy": e_start})
    rng = np.random.default_rng(seed)
    C = _coupling(P)
    st = _Search(P, q, elites[0], window_nodes, max_nodes)
    # 1. recombination: the variables where another elite disagrees with the best, re-solved
    #    exactly with the agreed ones fixed (both parents lie in that subspace)
    for other in elites[1:]:
        D = np.flatnonzero(other != st.x)
        while D.size and not st.spent:
            S = D if D.size <= max_window else coupling_window(C[np.ix_(D, D)], 0, max_window)
            S = D[S] if D.size > max_window else S
            st.step(S)
            D = np.setdiff1d(D, S)
    # 2. windows of strongly coupled variables, k grown while it pays
    k = min(window, n)
    passes = 0
    while not st.spent:
        passes += 1
        covered = np.zeros(n, dtype=bool)
        improved = False
        for s in rng.permutation(n):
            if covered[s]:
                continue
            S = coupling_window(C, int(s), k)
            covered[S] = True
            improved |= st.step(S)
            if st.spent:
                break
        if not improved:
            if k >= min(max_window, n):
                break
            k = min(max_window, n, int(np.ceil(k * 1.5)))
    # 3. kicks: flip a small coupled group, re-solve the windows around it, keep only gains
    done = 0
    while done < kicks and not st.spent:
        done += 1
        x0, Px0, e0 = st.x.copy(), st.Px.copy(), _energy(P, q, st.x)
        size = min(n, kick + 2 * ((done - 1) % 3))  # kick, kick + 2, kick + 4 in turn
        K = coupling_window(C, int(rng.integers(n)), size)
        d = 1 - 2 * st.x[K]
        st.x[K] += d
        st.Px += P[:, K] @ d
        # descend with windows smaller than max_window (which would only undo the kick), seeded
        # in the kicked group's neighbourhood, growing from kick + 2 to twice that (enumerated)
        region = coupling_window(C, int(K[0]), min(n, 4 * size))
        top = min(n, max(size + 2, min(_ENUMERATE, 2 * (size + 2))))
        kk = min(n, size + 2)
        while True:
            covered = np.zeros(n, dtype=bool)
            moved = False
            for s in rng.permutation(region):
                if not covered[s]:
                    S = coupling_window(C, int(s), kk)
                    covered[S] = True
                    moved |= st.step(S)
            if not moved:
                if kk >= top:
                    break
                kk = min(top, int(np.ceil(kk * 1.5)))
        if _energy(P, q, st.x) >= e0 - st.tol:
            st.x, st.Px = x0, Px0
        else:
            st.kick_gains += 1
    stop = "work budget (max_nodes) spent" if st.spent else "no improving window at the largest size"
    info = {"nodes": st.nodes, "windows": st.windows, "passes": passes, "window": k,
            "improving_windows": st.improving, "kicks": done, "improving_kicks": st.kick_gains,
            "elites": len(elites), "start_energy": e_start,
            "stop": stop}
    return Outcome(x=st.x.astype(np.int8), status="best found", info=info)


# certifies_bound: lns reports a bound (and optimality) only when the tree decides the whole QUBO
@register("lns", kind="qubo", certifies_bound=True,
          options={"window": Integer(16, low=1), "max_window": Integer(32, low="window"),
                   "window_nodes": Integer(20_000, low=1), "max_nodes": Integer(20_000_000, low=1),
                   "start": Choice("tabu", _STARTS), "reads": Integer(3, low=1), "kicks": Integer(32, low=0),
                   "kick": Integer(6, low=1), "seed": 0, "tree_nodes": Integer(ByWidth(start_tree_nodes, "1e6 up to n = 64, then max(6.4e7 / n, 1100 n)"), low=0,
                                         doc="tree nodes for the tree's start state (0: none)")},
          summary="large-neighbourhood search: windows of strongly coupled variables re-solved "
                  "exactly by the tree (deterministic work budget)")
def _lns(bqm, window, max_window, window_nodes, max_nodes, start, reads, kicks, kick, seed, tree_nodes) -> Outcome:
    with threadpool_limits(1):  # windows are tiny: BLAS threads only add start-up cost
        return lns(bqm, window=int(window), max_window=int(max_window), window_nodes=int(window_nodes),
                   max_nodes=int(max_nodes), start=start, reads=int(reads),
                   kicks=int(kicks), kick=int(kick), seed=seed, tree_nodes=int(tree_nodes))
