"""Exact minimisation of a QUBO by enumerating all ``2^n`` states, vectorised and memory bounded.

The variables are split into low (``a`` bits), middle (``b`` bits) and high (``h`` bits) groups,
``v = (l, m, t)``. With ``E = v^T P v + q^T v + c``:

.. math:: E(l, m, t) = C_{lm} + \\alpha_l(t) + \\beta_m(t) + E_t(t),

where ``C_{lm} = E_l(l) + E_m(m) + 2 l^T P_{lm} m`` is built once (``2^a x 2^b``, at most
2 MiB), ``alpha(t) = 2 L P_{lt} t`` and ``beta(t) = 2 M P_{mt} t`` come from one matrix product
per batch of high states, and ``E_l``, ``E_m``, ``E_t`` are the energies of each group alone
(linear terms included; the offset goes into ``E_t``). For each high state the minimum over
``(l, m)`` costs one addition and one reduction per state, in cache-sized blocks; high states are
shared between threads (NumPy releases the GIL inside these kernels). Memory does not grow
with ``n``; time is ``O(2^n)``.

Energies are compared in float64; the state returned is re-evaluated by the model.

:func:`lowest_states` enumerates the same way for the ``k`` lowest states (the samplers'
``num_states``), keeping a running set of the ``k`` best.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from reference.validation import Integer, available_cpus

from ._registry import Outcome, register

__all__ = ["MAX_VARS", "HARD_MAX_VARS", "exhaustive_minimum", "lowest_states"]

#: Default size limit (about a minute on two cores); raise it with ``max_vars`` up to HARD_MAX_VARS.
MAX_VARS = 34
#: Absolute limit: 2^40 states take hours.
HARD_MAX_VARS = 40

_LOW_BITS = 8  # rows of the cached block C
_MID_BITS = 10  # columns of C (contiguous, reduced along)
_BATCH = 256  # high states per matrix product
_THREADED_MIN = 64  # fewer high states than this: one thread (measured: docs/performance.md)
_LOW = 14  # bits enumerated per block


def _all_states(k: int) -> np.ndarray:
    """All ``2^k`` binary vectors of length ``k`` as float64 rows (state index = binary number)."""
    return ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(np.float64)


def _group_energy(S: np.ndarray, P: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", S @ P, S) + S @ q


def exhaustive_minimum(P: np.ndarray, q: np.ndarray, c: float, threads=None) -> tuple[np.ndarray, float]:
    """``(argmin state as int8, min energy)`` of ``v^T P v + q^T v + c`` over {0,1}^n (trusted input).

    The scan's own threads do the parallel work; BLAS runs on one thread meanwhile (its products
    here are small, and a second BLAS pool per scan thread only oversubscribes the cores)."""
    n = P.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int8), float(c)
    with threadpool_limits(limits=1, user_api="blas"):
        return _minimum(P, q, c, n, threads)


def _minimum(P, q, c, n, threads):
    b = min(n, _MID_BITS)
    a = min(n - b, _LOW_BITS)
    h = n - a - b
    lo, mid, hi = slice(0, a), slice(a, a + b), slice(a + b, n)
    L, M = _all_states(a), _all_states(b)
    C = 2 * (L @ P[lo, mid]) @ np.ascontiguousarray(M.T)
    C += _group_energy(L, P[lo, lo], q[lo])[:, None]
    C += _group_energy(M, P[mid, mid], q[mid])[None, :]
    A2 = np.ascontiguousarray((2 * L @ P[lo, hi]).T)  # (h, 2^a): alpha = t @ A2
    B2 = np.ascontiguousarray((2 * M @ P[mid, hi]).T)  # (h, 2^b): beta = t @ B2
    n_high = 2**h

    def scan(start: int, stop: int):
        best, best_t = np.inf, -1
        tmp = np.empty_like(C)
        rowmin = np.empty(C.shape[0])
        for t0 in range(start, stop, _BATCH):
            T = _all_states_range(h, t0, min(stop, t0 + _BATCH))
            alpha = T @ A2  # (batch, 2^a), one contiguous row per high state
            beta = T @ B2
            et = _group_energy(T, P[hi, hi], q[hi]) + c
            for j in range(T.shape[0]):
                np.add(C, beta[j], out=tmp)
                np.min(tmp, axis=1, out=rowmin)
                rowmin += alpha[j]
                m = rowmin.min() + et[j]
                if m < best:
                    best, best_t = m, t0 + j
        return best, best_t

    # below 64 high states (n < 24) the scan takes milliseconds: starting threads costs more
    threads = 1 if n_high < _THREADED_MIN else min(available_cpus() if threads is None else int(threads), n_high)
    if threads == 1:
        parts = [scan(0, n_high)]
    else:
        bounds = np.linspace(0, n_high, threads + 1).astype(np.int64)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda i: scan(int(bounds[i]), int(bounds[i + 1])), range(threads)))
    best, t_star = min(parts, key=lambda p: (p[0], p[1]))
    t = _all_states_range(h, t_star, t_star + 1)[0]
    full = C + (t @ A2)[:, None] + (t @ B2)[None, :]
    i, j = np.unravel_index(np.argmin(full), full.shape)
    x = np.concatenate([L[i], M[j], t]).astype(np.int8)
    return x, float(best)


def lowest_states(P, q, c, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` lowest states of ``v^T P v + q^T v + c`` by full enumeration (trusted input).

    Returns ``(states int8 (k', n), energies (k',))`` by ascending energy, ``k' = min(k, 2^n)``.
    States are split into low (``<= 14`` bits, enumerated as one block) and high bits; for each
    high state the block's energies are ``E_low + 2 L P_lh t + E_high(t)``; a running set of the
    ``k`` best is kept (memory ``O(2^14 + k)`` states).
    """
    n = P.shape[0]
    if n == 0:
        return np.zeros((1, 0), dtype=np.int8), np.array([float(c)])
    a = min(n, _LOW)
    h = n - a
    L = ((np.arange(2**a)[:, None] >> np.arange(a)) & 1).astype(np.float64)
    lo, hi = slice(0, a), slice(a, n)
    e_low = np.einsum("ij,ij->i", L @ P[lo, lo], L) + L @ q[lo]
    cross = 2 * L @ P[lo, hi]
    best_E = np.zeros(0)
    best_idx = np.zeros(0, dtype=np.int64)
    for t_int in range(2**h):
        t = ((t_int >> np.arange(h)) & 1).astype(np.float64)
        e = e_low + cross @ t + (t @ P[hi, hi] @ t + q[hi] @ t + c)
        kk = min(k, e.size)
        part = np.argpartition(e, kk - 1)[:kk] if kk < e.size else np.arange(e.size)
        best_E = np.concatenate([best_E, e[part]])
        best_idx = np.concatenate([best_idx, part + (t_int << a)])
        if best_E.size > k:
            keep = np.argsort(best_E, kind="stable")[:k]
            best_E, best_idx = best_E[keep], best_idx[keep]
    order = np.argsort(best_E, kind="stable")
    idx = best_idx[order]
    states = ((idx[:, None] >> np.arange(n)) & 1).astype(np.int8)
    return states, best_E[order]


def _all_states_range(k: int, start: int, stop: int) -> np.ndarray:
    return ((np.arange(start, stop)[:, None] >> np.arange(k)) & 1).astype(np.float64)


@register("exhaustive", kind="qubo", exact=True, certifies_bound=True, size_limit="max_vars",
          options={"max_vars": Integer(MAX_VARS, low=0, high=HARD_MAX_VARS), "threads": None},
          summary="exact: enumerate all 2^n states (vectorised, memory bounded)")
def _exhaustive(bqm, max_vars, threads) -> Outcome:
    x, e = exhaustive_minimum(bqm.P, bqm.q, bqm.c, threads=threads)
    return Outcome(x=x, optimal=True, lower_bound=None, status="optimal",
                   info={"states": 2**bqm.n, "enumerated_energy": e})
