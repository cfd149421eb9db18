"""Eq. 25 with the activation for a convolution: the AdaRound relaxation on patches, all groups at once.

A convolution followed by an elementwise activation ``f`` (ReLU) computes, for every patch ``p``
of group ``g`` and output channel ``o`` of that group, ``f(w_o^T p + b_o)``. With full-precision
patches ``p`` and patches ``p_hat`` of the inputs computed by the already-quantized layers,
Eq. 25 is

.. math:: L(\\hat W) = \\frac{1}{N H_o W_o} \\sum_{n,i,j} \\sum_o
          \\big(f(w_o^T p_{nij} + b_o) - f(\\hat w_o^T \\hat p_{nij} + b_o)\\big)^2 ,

the mean over samples and output positions, summed over channels (the unit of
:class:`solvers.ConvProblem`). :func:`conv_asymmetric_relaxation` minimises the AdaRound
relaxation of it (Eqs. 21-24, soft weights ``W~ = s (lo + movable h(V) - z)``), exactly as
:func:`solvers.sequential.asymmetric_relaxation` does for a dense layer, with every group's
patches in one array ``(M, groups, fan_in)``; mini-batches draw patches (the same patch
positions for every group), seeded.
"""

from __future__ import annotations

import numpy as np

from reference.validation import as_float_array
from reference.grid import Grid

from .layer import LayerProblem
from .relaxation import DataTerm, soft_weight_map
from .result import Result
from ._solve import solve
from .sequential import _OBJECTIVE, _act, _not_a_qubo

__all__ = ["ConvActivationLayer", "ConvActivationLoss", "conv_activation_loss", "conv_asymmetric_relaxation"]


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


class ConvActivationLoss(DataTerm):
    """Eq. 25's data term on patches, all groups at once (module docs).

    ``V`` and ``h`` have the layout ``(groups, C_out/groups, fan_in)`` of the patches' products;
    ``W~ = s (lo + movable h - z)`` (:func:`solvers.relaxation.soft_weight_map`); a mini-batch
    ``idx`` draws patches (the same positions for every group). ``relu'(0) = 0``.
    """

    def __init__(self, W2, b, grid, P, P_hat, activation="relu"):
        self.f, self.df = _act(activation)
        self.activation = activation
        G, f_in = P.shape[1], P.shape[2]
        self.problem = LayerProblem(W2, grid, G=np.eye(f_in))  # lo, movable, residual of the rows
        A0, B = soft_weight_map(self.problem)
        self.shape = (G, W2.shape[0] // G, f_in)
        self.weights_shape = W2.shape
        self.A0, self.B = A0.reshape(self.shape), B.reshape(self.shape)
        self.residual = self.problem.residual.reshape(self.shape)
        self.free = (self.problem.movable == 1).reshape(self.shape)
        self.n_samples = P.shape[0]
        self.W2, self.b, self.P, self.P_hat = W2, b, P, P_hat
        self.b3 = b.reshape(1, G, -1)
        self.T = self.f(_outputs(P, W2.reshape(self.shape), self.b3))

    def value_and_grad(self, h, idx=None):
        Pb = self.P_hat if idx is None else self.P_hat[idx]
        Tb = self.T if idx is None else self.T[idx]
        n = Pb.shape[0]
        U = _outputs(Pb, self.A0 + self.B * h, self.b3)
        R = self.f(U) - Tb
        Rd = R * self.df(U)
        if self.shape[0] == 1:
            gW = (Rd[:, 0].T @ Pb[:, 0])[None]
        else:
            gW = np.einsum("mgo,mgf->gof", Rd, Pb, optimize=True)
        return float(np.vdot(R, R)) / n, (2.0 / n) * gW * self.B

    def loss(self, h) -> float:
        Wt = (self.A0 + self.B * h.reshape(self.shape)).reshape(self.weights_shape)
        return conv_activation_loss(self.W2, self.b, Wt, self.P, self.P_hat, self.activation)


class ConvActivationLayer(LayerProblem):
    """Eq. 25 with the activation for a convolution given as patches (module docs): the problem
    ``solvers.solve(problem, "adaround", mode="batch", ...)`` relaxes (:class:`ConvActivationLoss`,
    mini-batches of patches) and the residual baselines round; ``loss(x)`` is
    :func:`conv_activation_loss` of the rounding, and a QUBO method is refused.

    Parameters
    ----------
    W2 : array (C_out, fan_in), the kernels as rows; b : array (C_out,)
    grid : reference.Grid (per tensor or per output channel)
    P, P_hat : arrays (M, groups, fan_in)
        Full-precision and quantized-input patches (``reference.conv.all_patches``).
    activation : {"relu", "identity"}, default="relu"
    """

    objective_name = property(lambda self: _OBJECTIVE[self.activation])
    samples_name = "patches M"

    def __init__(self, W2, b, grid: Grid, P, P_hat, activation: str = "relu", name: str | None = None):
        W2 = as_float_array(W2, "W2", ndim=2)
        self.P = as_float_array(P, "P", ndim=3)
        self.P_hat = as_float_array(P_hat, "P_hat", shape=self.P.shape)
        G, f_in = self.P.shape[1], self.P.shape[2]
        if W2.shape[1] != f_in or W2.shape[0] % G:
            raise ValueError(f"W2 must have shape (C_out, {f_in}) with C_out divisible by groups = {G}, "
                             f"found {W2.shape}")
        self.b = as_float_array(b, "b", shape=(W2.shape[0],))
        if not isinstance(grid, Grid):
            raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
        _act(activation)  # validates the name before any work
        self.activation = activation
        super().__init__(W2, grid, G=np.eye(f_in), name=name)  # lo, movable, residual of the rows

    @property
    def n_samples(self) -> int:
        """Patches ``M``: what a mini-batch draws from."""
        return self.P.shape[0]

    def __repr__(self) -> str:
        return super().__repr__().replace("LayerProblem", "ConvActivationLayer", 1)

    def relaxation_term(self) -> ConvActivationLoss:
        """The data term of the relaxation (:class:`ConvActivationLoss`)."""
        return ConvActivationLoss(self.W, self.b, self.grid, self.P, self.P_hat, self.activation)

    def loss(self, x) -> float:
        """Eq. 25 on patches (:func:`conv_activation_loss`) of the rounding ``x``."""
        return conv_activation_loss(self.W, self.b, self.w_hat(x), self.P, self.P_hat, self.activation)

    def row_bqm(self, k: int):
        raise _not_a_qubo()


def conv_asymmetric_relaxation(W2, b, grid: Grid, P, P_hat, activation: str = "relu", preset: str = "aimet",
                               *, seed=0, **settings) -> Result:
    """The AdaRound relaxation of Eq. 25 (module docs) for a convolution given as patches:
    ``solvers.solve(ConvActivationLayer(W2, b, grid, P, P_hat, activation), "adaround",
    mode="batch", preset=preset, seed=seed, **settings)``, the same :class:`Result`.

    Parameters
    ----------
    W2, b, grid, P, P_hat, activation : as :class:`ConvActivationLayer`.
    preset and keywords : as :func:`solvers.sequential.asymmetric_relaxation` (``batch_size``
        counts patches).

    Returns
    -------
    Result
        As :func:`solvers.sequential.asymmetric_relaxation`: ``x`` of shape (C_out, fan_in),
        ``energy`` the loss of :func:`conv_activation_loss` of the hard rounding.
    """
    problem = ConvActivationLayer(W2, b, grid, P, P_hat, activation)
    return solve(problem, "adaround", mode="batch", preset=preset, seed=seed, **settings)
