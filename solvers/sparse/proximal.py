r"""Proximal gradient (ISTA) and FISTA, batched over signals (docs/sparse.md, "Coders").

``a <- prox_{g r}(y - g (G y - b))`` with ``G = Phi^T Phi`` and ``b = Phi^T x`` minimises
``F(a) = 1/2 ||x - Phi a||^2 + sum_i r_i(a_i)`` for every penalty of
:mod:`reference.penalties`; for ``l1`` with ``certify=True`` the iterations run on the
certified path of :mod:`solvers.sparse.certified` and a code is "optimal" only when proven.
"""

from __future__ import annotations

import numpy as np

from reference.validation import Choice, Flag, Integer, Real
from reference.penalties import penalty_elementwise, prox

from .certified import STEP_SCALE, L1Settings, l1_certified
from .problem import (INIT, L1_BLOCK, STEP, TOL, SparseProblem, check_threads, init_codes, outcome, register_sparse,
                      step_size, thread_pool)

__all__ = []


def _smooth_value(A, GA, B, xx):
    """``1/2 ||x - Phi a||^2`` from ``A``, ``A G`` and ``B = X Phi`` (no extra product)."""
    return 0.5 * xx - np.einsum("ij,ij->i", A, B) + 0.5 * np.einsum("ij,ij->i", A, GA)


# ---------------------------------------------------------------------------------- ISTA / FISTA
def _proximal_gradient(prob: SparseProblem, accelerate: bool, max_iter, tol, init, step, certify, kkt_tol,
                       first_check, check_every, finish_rounds, dtype, step_scale, threads):
    # option types and ranges are declared at registration (below) and checked by the resolver
    max_iter, tol, kkt_tol = int(max_iter), float(tol), float(kkt_tol)
    first_check, check_every, finish_rounds = int(first_check), int(check_every), int(finish_rounds)
    certified = bool(certify) and prob.penalty == "l1"
    if dtype is None:
        dtype = "float32" if certified else "float64"
    if step_scale is None:
        step_scale = STEP_SCALE if certified else 1.0
    step_scale = float(step_scale)
    if step_scale != 1.0 and not certified:
        raise ValueError(f"step_scale > 1 needs penalty 'l1' with certify=True (the exact finish certifies the "
                         f"result), found penalty {prob.penalty!r}, certify={bool(certify)!r}")
    threads = check_threads(threads)
    N, K = prob.X.shape[0], prob.Phi.shape[1]
    A0 = None if init is None else init_codes(init, N, K)
    if certified:
        # every product of the call runs on the pool's threads, the BLAS libraries on one thread
        # each (BLAS threads left spinning beside the pool would slow it down)
        with thread_pool(min(threads, -(-N // L1_BLOCK))) as pool:  # one block: no pool, BLAS as set
            g = step_size(prob, step)
            cfg = L1Settings(accelerate, max_iter, tol, kkt_tol, first_check, check_every, finish_rounds,
                             np.dtype(dtype), step_scale)
            out, iters, verified, g = l1_certified(prob, pool, cfg, A0, g, scale_atoms=step is None)
        done = verified
        info = {"step": g, "step_scale": step_scale, "certified": verified}
        optimal = bool(verified.all())  # every code a proven Lasso minimiser
        status = "optimal" if optimal else f"{int((~verified).sum())} of {N} codes not certified"
    else:
        g = step_size(prob, step)
        out, iters, done = _pg_loop(prob, accelerate, max_iter, tol, init_codes(init, N, K), g, np.dtype(dtype))
        info = {"step": g}
        optimal, status = False, ""
    info.update(signal_iterations=iters, converged_signals=int(done.sum()))
    return outcome(out, int(iters.max(initial=0)), bool(done.all()), optimal=optimal, status=status, info=info)


def _pg_loop(prob, accelerate, max_iter, tol, A0, g, dt):
    """Proximal gradient for any penalty: ``a <- prox_{g r}(y - g (G y - b))``, batched.

    FISTA's momentum restarts for a signal whose objective went up (O'Donoghue and Candes 2015),
    which keeps the nonconvex penalties monotone. Returns ``(codes, iterations, converged)``.
    A signal leaves the batch when its step is at most ``tol`` times its code's norm.
    """
    pen, lam = prob.penalty, prob.lam
    B, xx, norms = prob.B.astype(dt), prob.xx.astype(dt), prob.norms.astype(dt)
    times_G = _gram_product(prob, dt)
    N = B.shape[0]
    out = np.array(A0, dtype=np.float64)
    iters = np.zeros(N, dtype=np.int64)
    done = np.zeros(N, dtype=bool)

    def pen_sum(A):
        return penalty_elementwise(A, pen, lam, norms).astype(dt).sum(1)

    act = np.arange(N)
    A = out.astype(dt)
    GA = times_G(A, np.empty_like(A))
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
            t_new = _extrapolate(A, A_prev, GA, GA_prev, t, Y, GY)
            y, gy = Y, GY
        else:  # ISTA: the step starts from A itself
            y, gy = A, GA
        _prox_gradient_step(y, gy, Bact, g, pen, lam, norms, U, A_new)
        times_G(A_new, GA_new)
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


def _gram_product(prob, dt):
    """``times_G(A, out)``: ``A G`` into ``out``. When ``K > 2n`` it is taken as
    ``(A Phi^T) Phi``: ``2 N K n`` multiplications instead of ``N K^2``, and ``G`` is never formed."""
    n, K = prob.Phi.shape
    if K > 2 * n:
        Phi, PhiT = np.ascontiguousarray(prob.Phi, dtype=dt), np.ascontiguousarray(prob.Phi.T, dtype=dt)

        def times_G(A, out):
            return np.matmul(A @ PhiT, Phi, out=out)
    else:
        G = prob.G.astype(dt)

        def times_G(A, out):
            return np.matmul(A, G, out=out)
    return times_G


def _extrapolate(A, A_prev, GA, GA_prev, t, Y, GY):
    """FISTA's point ``y = a + beta (a - a_prev)`` into ``Y`` (and ``G y`` into ``GY``, by
    linearity), ``beta = (t - 1) / t_new``, ``t_new = (1 + sqrt(1 + 4 t^2)) / 2``; returns ``t_new``."""
    t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
    beta = ((t - 1.0) / t_new)[:, None]
    np.subtract(A, A_prev, out=Y)
    Y *= beta
    Y += A
    np.subtract(GA, GA_prev, out=GY)
    GY *= beta
    GY += GA
    return t_new


def _prox_gradient_step(y, gy, B, g, pen, lam, norms, U, A_new):
    """``A_new = prox_{g r}(y - g (G y - b))``, with ``U`` as work space."""
    np.subtract(gy, B, out=U)  # U = y - g (G y - B), the gradient step
    U *= -g
    U += y
    if pen == "l1":  # soft thresholding in place
        np.abs(U, out=A_new)
        A_new -= A_new.dtype.type(g * lam)
        np.maximum(A_new, 0, out=A_new)
        np.copysign(A_new, U, out=A_new)
    else:
        A_new[...] = prox(U, pen, g, lam, norms)


_PG_OPTIONS = {
    "max_iter": 1000, "tol": TOL, "init": INIT, "step": STEP,
    "certify": Flag(True, doc="l1: the float32 path whose codes an exact finish certifies optimal"),
    "kkt_tol": Real(1e-9, low=0, doc="tolerance of the optimality (KKT) certificate"),
    "first_check": Integer(10, low=1), "check_every": Integer(4, low=1), "finish_rounds": Integer(3, low=1),
    "dtype": Choice(None, ("float64", "float32"), none=True, doc="iteration precision (None: float32 when certified)"),
    "step_scale": Real(None, low=1, high=2, open_high=True, none=True, doc="step multiple of 1/L (certified l1 only)"),
    "threads": None,
}


@register_sparse("ista", options=_PG_OPTIONS, summary="proximal gradient (ISTA), batched, step 1/L")
def _ista(prob, **opts):
    return _proximal_gradient(prob, False, **opts)


@register_sparse("fista", options=_PG_OPTIONS, summary="FISTA with restart, batched; l1 certified by an exact finish")
def _fista(prob, **opts):
    return _proximal_gradient(prob, True, **opts)


