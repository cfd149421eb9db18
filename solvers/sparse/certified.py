r"""The certified l1 path of ``fista``/``ista`` (docs/sparse.md, "Certified codes").

For ``penalty="l1"`` with ``certify=True`` (the default) the proximal iterations only choose
supports: :func:`l1_certified` runs float32 sweeps (:func:`_l1_sweep`) on blocks of signals,
and the exact finish (:func:`certify`) solves each support and sign pattern in float64 and
accepts a code only where the Lasso optimality conditions

.. math:: \phi_j^T (x - \Phi a) = \lambda\,\mathrm{sign}(a_j)\ (a_j \ne 0),\qquad
          |\phi_j^T (x - \Phi a)| \le \lambda\ (a_j = 0)

hold with rounding bounds; the rows left go to feature-sign search
(:func:`solvers.sparse.feature_sign.feature_sign`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .feature_sign import feature_sign
from .problem import U32 as _U32, U64 as _U64, largest_eigenvalue, map_blocks, row_blocks

__all__ = ["certify", "l1_certified", "L1Settings", "STEP_SCALE"]

#: Finishes after the first before the certified l1 path hands a row to feature-sign search.
_SWEEP_CHECKS = 25
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


def certify(G, B, A, lam, kkt_tol, rounds, chunk=_FINISH_CHUNK, max_support=_FINISH_MAX_SUPPORT, Gpad=None,
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
    parts = map_blocks(pool, lambda r: _finish_chunk(ctx, r, np.sign(A[r]).astype(np.int8), B[r]), chunks)
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
    """Rounds of :func:`certify` on one chunk; returns ``(certified rows, their codes)``."""
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


#: Default ``step_scale`` of the certified l1 path: steps up to ``1.9 / L``.
STEP_SCALE = 1.9


@dataclass(frozen=True)
class L1Settings:
    """The settings of the certified l1 path (the options of ``ista``/``fista``, declared at their
    registration and checked by the resolver): ``accelerate`` (FISTA), the iteration budget
    ``max_iter``, the stopping rule ``tol``, the certificate's ``kkt_tol``, the sweep lengths
    ``first_check`` and ``check_every``, the finish's ``finish_rounds``, the sweeps' precision
    ``dtype`` and the step multiple ``step_scale`` of ``1/L``."""

    accelerate: bool
    max_iter: int
    tol: float
    kkt_tol: float
    first_check: int
    check_every: int
    finish_rounds: int
    dtype: np.dtype
    step_scale: float


@dataclass(frozen=True)
class _SweepOperator:
    """What the sweeps of every block share in one sweep round: ``M = I - gamma G``, the step
    ``gamma``, the threshold weights ``lam`` (a number or one per atom), ``diag(G)``, and the
    settings that shape an iteration."""

    M: np.ndarray
    gamma: float
    lam: object
    diag: np.ndarray
    accelerate: bool
    step_scale: float
    tol: float


@dataclass(frozen=True)
class _Block:
    """Views of the running rows' state in one block: iterate ``A``, extrapolated point ``Y``,
    FISTA's sequence ``t``, each row's step over ``gamma`` (``ratio``) and first step length."""

    A: np.ndarray
    Y: np.ndarray
    t: np.ndarray
    ratio: np.ndarray
    first_len: np.ndarray


def l1_certified(prob, pool, cfg: L1Settings, init, g, scale_atoms):
    """l1 codes certified by the exact finish: sweeps of iterations, each followed by a finish.

    The rows still running go through :func:`_l1_sweep` in blocks of :data:`solvers.sparse.problem.L1_BLOCK` rows
    (``first_check`` iterations the first time, ``check_every`` after), then through
    :func:`certify` (``finish_rounds`` rounds); a certified row leaves. The blocks and the
    finish's chunks run on ``pool`` (None: in turn); they do not depend on its size. Rows stopped
    by ``tol``, or still running after ``first_check + 25 check_every`` iterations (at most
    ``max_iter``), get a longer finish, then :func:`feature_sign`. With ``scale_atoms`` the
    sweeps run on unit-norm atoms (their own step ``1/L``). Returns
    ``(codes, iterations, verified, the base step of the sweeps)``.
    """
    max_iter, tol, kkt_tol, dt = cfg.max_iter, cfg.tol, cfg.kkt_tol, cfg.dtype
    first_check, check_every, finish_rounds, step_scale = cfg.first_check, cfg.check_every, cfg.finish_rounds, \
        cfg.step_scale
    G, lam = prob.G, prob.lam
    N, K = prob.X.shape[0], G.shape[0]
    finish = dict(Gpad=_padded_gram(G, min(K, _FINISH_MAX_SUPPORT)), G32=G.astype(np.float32), pool=pool)
    if scale_atoms and np.max(np.abs(prob.norms - 1.0)) > 1e-6:
        # iterate on unit-norm atoms, a~ = ||phi|| a: the same problem with weights lam / ||phi_j||
        # on |a~_j|, and far better conditioned when the atom norms differ
        dinv = 1.0 / prob.norms
        Gs = G * dinv[:, None] * dinv[None, :]
        g = 1.0 / largest_eigenvalue(prob.Phi * dinv, Gs)
        lamv = (lam * dinv).astype(dt)
    else:
        dinv, Gs, lamv = None, G, lam
    gamma = step_scale * g
    M = (np.eye(K) - gamma * Gs).astype(dt)  # y - gamma (G y - b) = y M + gamma b
    op = _SweepOperator(M, gamma, lamv, np.diag(Gs).astype(dt), cfg.accelerate, step_scale, tol)
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
            return _l1_sweep(_Block(A[sl], Y[sl], t[sl], ratio[sl], first_len[sl]), Bs, op, start, n_it,
                             jacobi=init is None and start == 0)

        small = np.concatenate(map_blocks(pool, sweep, row_blocks(rows.size)))
        done_it += n_it
        iters[rows] = done_it
        pos, codes = certify(G, Bact, original(A), lam, kkt_tol, finish_rounds, **finish)
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
        pos, codes = certify(G, B[rest], out[rest], lam, kkt_tol, 4 * finish_rounds, **finish)
        out[rest[pos]] = codes
        verified[rest[pos]] = True
    rest = np.flatnonzero(~verified)
    if rest.size:  # the slow and sure way: feature-sign search from where the iterations stopped
        out[rest], verified[rest] = feature_sign(prob.Phi, prob.X[rest], out[rest], lam, kkt_tol,
                                                  max_rounds=10 * min(K, prob.X.shape[1]) + 50)
    return out, iters, verified, g


def _l1_sweep(block: _Block, B, op: _SweepOperator, start, n_it, jacobi):
    """``n_it`` proximal gradient iterations for l1 on one block, updating its state in place.

    ``block`` holds views of the caller's arrays (:class:`_Block`).
    ``a_new = soft(y - gamma (G y - b), gamma lam)``, computed as
    ``soft(y M + gamma b)`` with ``M = I - gamma G``; ``lam`` is a number or one weight per atom
    (the unit-norm coordinates of :func:`l1_certified`). Steps up to ``2/L`` converge for the
    proximal gradient (forward-backward splitting); a row whose step length grows above its
    first one gets its step cut by a quarter, down to ``1/L`` (the safeguard of greedy FISTA,
    Liang, Luo and Schoenlieb 2022). FISTA's momentum restarts for a row whose momentum points
    against its step (O'Donoghue and Candes 2015). With ``jacobi`` the block starts from each
    coefficient's own minimiser, ``soft(b_j, lam) / G_jj``, scaled along that direction to the
    best factor in [0, 1] (near 1 for nearly orthogonal atoms, small for coherent ones).

    Returns a boolean array: rows whose last step was at most ``tol`` times their code's norm.
    """
    A, Y, t, ratio, first_len = block.A, block.Y, block.t, block.ratio, block.first_len
    M, gamma, lam, diag = op.M, op.gamma, op.lam, op.diag
    accelerate, step_scale, tol = op.accelerate, op.step_scale, op.tol
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


