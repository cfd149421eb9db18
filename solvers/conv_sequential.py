"""Eq. 25 with the activation for a convolution: the AdaRound relaxation on patches, all groups at once.

A convolution followed by an elementwise activation ``f`` (ReLU) computes, for every patch ``p``
of group ``g`` and output channel ``o`` of that group, ``f(w_o^T p + b_o)``. With full-precision
patches ``p`` and patches ``p_hat`` of the inputs computed by the already-quantized layers,
Eq. 25 is

.. math:: L(\\hat W) = \\frac{1}{N H_o W_o} \\sum_{n,i,j} \\sum_o
          \\big(f(w_o^T p_{nij} + b_o) - f(\\hat w_o^T \\hat p_{nij} + b_o)\\big)^2 ,

the mean over samples and output positions, summed over channels (the unit of
:class:`solvers.ConvProblem`). :func:`conv_asymmetric_relaxation` minimises the AdaRound
relaxation of it (Eqs. 21-24, soft weights ``W~ = s (lo + delta h(V) - z)``), exactly as
:func:`solvers.sequential.asymmetric_relaxation` does for a dense layer, with every group's
patches in one array ``(M, groups, fan_in)``; mini-batches draw patches (the same patch
positions for every group), seeded.
"""

from __future__ import annotations

import numpy as np

from reference._validation import as_float_array
from reference.grid import Grid

from .adaround import GAMMA, ZETA, Adam, beta_at, init_from_residual, rectified_sigmoid, resolve_settings
from .layer import LayerProblem
from .sequential import RelaxationRun, _act

__all__ = ["conv_activation_loss", "conv_asymmetric_relaxation"]


def _outputs(P, W3, b3):
    """``w_o^T p + b_o`` for patches ``P`` (M, groups, f), rows ``W3`` (groups, og, f): (M, groups, og)."""
    if W3.shape[0] == 1:
        return (P[:, 0] @ W3[0].T)[:, None, :] + b3
    return np.einsum("mgf,gof->mgo", P, W3, optimize=True) + b3


def conv_activation_loss(W2, b, W_hat2, P, P_hat, activation: str = "relu") -> float:
    """Eq. 25 on patches: ``mean_m sum_o (f(w_o^T p_m + b_o) - f(w^hat_o^T p^hat_m + b_o))^2``.

    ``W2``, ``W_hat2``: (C_out, fan_in); ``b``: (C_out,); ``P``, ``P_hat``: (M, groups, fan_in).
    """
    f, _ = _act(activation)
    G = P.shape[1]
    W3 = np.asarray(W2).reshape(G, -1, P.shape[2])
    Wh3 = np.asarray(W_hat2).reshape(G, -1, P.shape[2])
    b3 = np.asarray(b).reshape(1, G, -1)
    R = f(_outputs(P, W3, b3)) - f(_outputs(P_hat, Wh3, b3))
    return float(np.einsum("mgo,mgo->", R, R) / P.shape[0])


def conv_asymmetric_relaxation(W2, b, grid: Grid, P, P_hat, activation: str = "relu", preset: str = "aimet",
                               *, lam=None, beta=None, schedule=None, warm_start=None, iterations=None, lr=None,
                               batch_size=None, seed=0) -> RelaxationRun:
    """The AdaRound relaxation of Eq. 25 (module docs) for a convolution given as patches.

    Parameters
    ----------
    W2 : array (C_out, fan_in), the kernels as rows; b : array (C_out,)
    grid : reference.Grid (per tensor or per output channel)
    P, P_hat : arrays (M, groups, fan_in)
        Full-precision and quantized-input patches (``reference.conv._patches_all``).
    activation : {"relu", "identity"}
    preset and keywords : as :func:`solvers.sequential.asymmetric_relaxation` (``batch_size``
        counts patches).
    """
    W2 = as_float_array(W2, "W2", ndim=2)
    P = as_float_array(P, "P", ndim=3)
    P_hat = as_float_array(P_hat, "P_hat", shape=P.shape)
    G, f_in = P.shape[1], P.shape[2]
    if W2.shape[1] != f_in or W2.shape[0] % G:
        raise ValueError(f"W2 must have shape (C_out, {f_in}) with C_out divisible by groups = {G}, found {W2.shape}")
    b = as_float_array(b, "b", shape=(W2.shape[0],))
    fn, dfn = _act(activation)
    st = resolve_settings(preset, lam=lam, beta=beta, schedule=schedule, warm_start=warm_start,
                          iterations=iterations, lr=lr, batch_size=batch_size)
    M, B = P.shape[0], st["batch_size"]
    if B > M:
        raise ValueError(f"batch_size must be <= the number of patches M == {M}, found {B}")
    prob = LayerProblem(W2, grid, G=np.eye(f_in))  # lo, delta, residual of the rows
    s, z = grid.per_row(W2.shape[0])
    A0 = (s * (prob.lo - z)).reshape(G, -1, f_in)
    Bm = (s * prob.delta).reshape(G, -1, f_in)
    b3 = b.reshape(1, G, -1)
    T = fn(_outputs(P, W2.reshape(G, -1, f_in), b3))
    V = init_from_residual(prob.residual).reshape(G, -1, f_in)
    opt = Adam(V.shape, lr=st["lr"])
    rng = np.random.default_rng(seed)
    iters, lam_ = st["iterations"], st["lam"]
    for i in range(iters):
        be = beta_at(i + st["step_base"], iters, st["beta"], st["warm_start"], st["schedule"])
        idx = rng.choice(M, size=B, replace=False)
        sig = 1.0 / (1.0 + np.exp(-np.clip(V, -500, 500)))
        u = sig * (ZETA - GAMMA) + GAMMA
        h = np.clip(u, 0.0, 1.0)
        Pb = P_hat[idx]
        U = _outputs(Pb, A0 + Bm * h, b3)
        R = fn(U) - T[idx]
        Rd = R * dfn(U)
        if G == 1:
            gW = (Rd[:, 0].T @ Pb[:, 0])[None]
        else:
            gW = np.einsum("mgo,mgf->gof", Rd, Pb, optimize=True)
        gh = (2.0 / B) * gW * Bm
        if be is not None:
            t = 2.0 * h - 1.0
            gh = gh - lam_ * 2.0 * be * np.abs(t) ** (be - 1.0) * np.sign(t)
        pas = (u >= -1e-12) & (u <= 1.0 + 1e-12)
        opt.step(V, gh * (ZETA - GAMMA) * sig * (1.0 - sig) * pas)
    V2 = V.reshape(W2.shape)
    x = ((V2 >= 0) & (prob.delta == 1)).astype(np.int8)
    h = rectified_sigmoid(V2)
    st["seed"] = seed
    return RelaxationRun(
        x=x,
        loss=conv_activation_loss(W2, b, prob.w_hat(x), P, P_hat, activation),
        soft_loss=conv_activation_loss(W2, b, (A0 + Bm * h.reshape(A0.shape)).reshape(W2.shape), P, P_hat,
                                       activation),
        settings=st,
    )
