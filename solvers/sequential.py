"""Quantizing a whole network layer by layer, and the asymmetric reconstruction (Eq. 25).

Three objectives for layer ``l`` with full-precision input ``x`` (from the float network) and
``x_hat`` (from the network whose earlier layers are already quantized), averaged over the
``N`` calibration samples:

* ``"layerwise"`` (Eq. 20): ``||W x - W_hat x||^2``, a :class:`~solvers.LayerProblem`;
* ``"asymmetric"`` (Eq. 25 without activation): ``||W x - W_hat x_hat||^2``, still a PSD QUBO per
  row: :class:`AsymmetricLayer`;
* ``"asymmetric_relu"`` (Eq. 25): ``||f(W x + b) - f(W_hat x_hat + b)||^2`` with the layer's
  activation ``f`` (ReLU for hidden layers, identity for the logits). Not a QUBO for a ReLU
  layer; :func:`asymmetric_relaxation` runs the AdaRound relaxation (Eqs. 21-24) on it.

:func:`quantize_network` applies one objective and one method to every layer in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.validation import as_float_array
from reference.grid import Grid, fit_grid
from reference.network import MLP

from ._registry import METHODS
from ._solve import solve
from .relaxation import DataTerm, soft_weight_map
from .bqm import BQM
from .layer import LayerProblem
from .result import Result

__all__ = [
    "AsymmetricLayer",
    "ActivationLayer",
    "ActivationLoss",
    "SequentialRun",
    "VARIANTS",
    "activation_loss",
    "asymmetric_relaxation",
    "quantize_network",
]

VARIANTS = ("layerwise", "asymmetric", "asymmetric_relu")


# ---------------------------------------------------------------------------- Eq. 25, no activation
class _OffsetBQM(BQM):
    """A row model that already includes its layer's constant offset."""

    __slots__ = ()


class AsymmetricLayer(LayerProblem):
    """Eq. 25 without activation: ``L(W_hat) = (1/N) sum_n ||W x_n - W_hat x_hat_n||^2``.

    Parameters
    ----------
    W : array of shape (out, in)
        Full-precision weights; the grid's neighbours, residuals and free variables come from them.
    grid : reference.Grid
    X : array of shape (N, in)
        Full-precision inputs of the layer.
    X_hat : array of shape (N, in)
        Inputs computed by the already-quantized preceding layers.
    name : str, optional

    Notes
    -----
    Let ``W*`` minimise ``||X W^T - X_hat W*^T||`` (least squares, minimum norm). The residual
    ``X W^T - X_hat W*^T`` is orthogonal to every column of ``X_hat``, so for every ``W_hat``

    .. math:: L(\\hat W) = \\sum_k (\\hat w_k - w^*_k)^T \\hat G (\\hat w_k - w^*_k) + r_k,
              \\qquad \\hat G = \\hat X^T \\hat X / N,

    with the constant ``r_k = ||X w_k - X_hat w*_k||^2 / N``: the Eq. 20 problem of ``W*`` on
    ``X_hat`` plus a constant. Accordingly ``self.W`` is ``W*`` (the target), ``self.G`` is
    ``G_hat``, ``self.W_float`` the original weights, ``self.offsets`` the ``r_k``; every
    method that works on a :class:`~solvers.LayerProblem` (including the relaxation) optimises
    Eq. 25, and :meth:`loss` includes the constant.
    """

    def __init__(self, W, grid: Grid, X, X_hat, name: str | None = None):
        W = as_float_array(W, "W", ndim=2)
        X = as_float_array(X, "X", ndim=2)
        X_hat = as_float_array(X_hat, "X_hat", ndim=2)
        if X.shape != (X_hat.shape[0], W.shape[1]) or X_hat.shape[1] != W.shape[1]:
            raise ValueError(
                f"X and X_hat must both have shape (N, {W.shape[1]}), found {X.shape} and {X_hat.shape}"
            )
        super().__init__(W, grid, X=X_hat, name=name)
        T = X @ W.T  # (N, out): the outputs to reproduce
        Wt = np.linalg.lstsq(X_hat, T, rcond=None)[0].T
        R = T - X_hat @ Wt.T
        self.W_float = W
        self.X_float = X
        self.W = Wt
        self.offsets = np.einsum("nk,nk->k", R, R) / X.shape[0]
        for arr in (self.W, self.offsets, self.X_float):
            arr.setflags(write=False)

    def __repr__(self) -> str:
        return super().__repr__().replace("LayerProblem", "AsymmetricLayer", 1)

    def row_bqm(self, k: int) -> BQM:
        """Row ``k`` of Eq. 25 (the Eq. 20 row of ``W*`` on ``X_hat`` plus ``r_k``)."""
        bqm = super().row_bqm(k)
        if not isinstance(bqm, _OffsetBQM):  # cached rows already carry their offset
            bqm = _OffsetBQM(bqm.P, bqm.q, bqm.c + float(self.offsets[k]), labels=bqm.labels)
            self._rows[k] = bqm
        return bqm

    def row_losses(self, x) -> np.ndarray:
        return super().row_losses(x) + self.offsets


# ---------------------------------------------------------------------------- Eq. 25 with activation
def _not_a_qubo() -> ValueError:
    """The error of ``row_bqm`` on a layer with an activation (dense or convolution): Eq. 25 is not a QUBO."""
    return ValueError("Eq. 25 with an activation is not a QUBO: round it with 'adaround' (mode='batch') or a "
                      f"residual method ({sorted(n for n, m in METHODS.items() if m.residual)})")


def _act(name: str):
    if name == "relu":
        return lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(np.float64)
    if name == "identity":
        return lambda u: u, lambda u: np.ones_like(u)
    raise ValueError(f"activation must be one of ['identity', 'relu'], found {name!r}")


def activation_loss(W, b, W_hat, X, X_hat, activation: str = "relu") -> float:
    """Eq. 25: ``(1/N) sum_n ||f(W x_n + b) - f(W_hat x_hat_n + b)||^2``."""
    W = as_float_array(W, "W", ndim=2)
    W_hat = as_float_array(W_hat, "W_hat", shape=W.shape)
    b = as_float_array(b, "b", shape=(W.shape[0],))
    X = as_float_array(X, "X", shape=(None, W.shape[1]))
    X_hat = as_float_array(X_hat, "X_hat", shape=X.shape)
    f, _ = _act(activation)
    R = f(X @ W.T + b) - f(X_hat @ W_hat.T + b)
    return float(np.einsum("nk,nk->", R, R) / X.shape[0])


class ActivationLoss(DataTerm):
    """Eq. 25's data term: ``D(h) = (1/|I|) sum_{n in I} ||f(W x_n + b) - f(W~ x_hat_n + b)||^2``.

    ``W~ = s (lo + movable h - z)`` (:func:`solvers.relaxation.soft_weight_map`), ``I`` the samples
    ``idx`` (all when None). ``relu'(0) = 0``. ``loss(h)`` is :func:`activation_loss` of the soft
    weights on every sample.
    """

    def __init__(self, W, b, grid, X, X_hat, activation="relu"):
        self.f, self.df = _act(activation)
        self.activation = activation
        self.problem = LayerProblem(W, grid, X=X_hat)
        self.A0, self.B = soft_weight_map(self.problem)
        self.shape = self.weights_shape = W.shape
        self.residual = self.problem.residual
        self.free = self.problem.movable == 1
        self.n_samples = X.shape[0]
        self.W, self.b, self.X, self.X_hat = W, b, X, X_hat
        self.T = self.f(X @ W.T + b)

    def value_and_grad(self, h, idx=None):
        Wt = self.A0 + self.B * h
        Xb = self.X_hat if idx is None else self.X_hat[idx]
        Tb = self.T if idx is None else self.T[idx]
        n = Xb.shape[0]
        U = Xb @ Wt.T + self.b
        R = self.f(U) - Tb
        D = float(np.einsum("nk,nk->", R, R) / n)
        return D, ((2.0 / n) * (R * self.df(U)).T @ Xb) * self.B

    def loss(self, h) -> float:
        return activation_loss(self.W, self.b, self.A0 + self.B * h, self.X, self.X_hat, self.activation)


_OBJECTIVE = {"relu": "Eq. 25 with ReLU", "identity": "Eq. 25 without activation"}


class ActivationLayer(LayerProblem):
    """Eq. 25 with the layer's activation ``f``: ``(1/N) sum_n ||f(W x_n + b) - f(W_hat x_hat_n + b)||^2``.

    Not a QUBO for a ReLU layer: ``solvers.solve(problem, "adaround", mode="batch", ...)`` runs the
    relaxation (Eqs. 21-24) on it (:class:`ActivationLoss`, mini-batches of samples), the residual
    baselines (``nearest``, ...) round it, and a QUBO method is refused. ``loss(x)`` is
    :func:`activation_loss` of the rounding. The up/down variables are those of ``W`` on its grid
    (a :class:`~solvers.LayerProblem` on ``X_hat``).

    Parameters
    ----------
    W : array (out, in); b : array (out,); grid : reference.Grid
    X, X_hat : arrays (N, in)
        Full-precision and quantized-network inputs of the layer.
    activation : {"relu", "identity"}, default="relu"
    """

    objective_name = property(lambda self: _OBJECTIVE[self.activation])
    samples_name = "samples N"

    def __init__(self, W, b, grid: Grid, X, X_hat, activation: str = "relu", name: str | None = None):
        W = as_float_array(W, "W", ndim=2)
        self.b = as_float_array(b, "b", shape=(W.shape[0],))
        self.X_float = as_float_array(X, "X", shape=(None, W.shape[1]))
        X_hat = as_float_array(X_hat, "X_hat", shape=self.X_float.shape)
        if not isinstance(grid, Grid):
            raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
        _act(activation)  # validates the name before any work
        self.activation = activation
        super().__init__(W, grid, X=X_hat, name=name)

    def __repr__(self) -> str:
        return super().__repr__().replace("LayerProblem", "ActivationLayer", 1)

    def relaxation_term(self) -> ActivationLoss:
        """The data term of the relaxation (:class:`ActivationLoss`)."""
        return ActivationLoss(self.W, self.b, self.grid, self.X_float, self.X, self.activation)

    def loss(self, x) -> float:
        """Eq. 25 (:func:`activation_loss`) of the rounding ``x``."""
        return activation_loss(self.W, self.b, self.w_hat(x), self.X_float, self.X, self.activation)

    def row_bqm(self, k: int):
        raise _not_a_qubo()


def asymmetric_relaxation(W, b, grid: Grid, X, X_hat, activation: str = "relu", preset: str = "aimet",
                          *, seed=0, **settings) -> Result:
    """The AdaRound relaxation (Eqs. 21-24) of Eq. 25 with the activation applied:
    ``solvers.solve(ActivationLayer(W, b, grid, X, X_hat, activation), "adaround", mode="batch",
    preset=preset, seed=seed, **settings)``, the same :class:`Result`.

    Minimises ``(1/B) sum_{n in batch} ||f(W x_n + b) - f(W~ x_hat_n + b)||^2 + lam f_reg(V)``
    over ``V`` (:class:`ActivationLoss` in the engine :func:`solvers.relaxation.relax`): Adam on
    mini-batches of ``batch_size`` samples drawn without replacement (seeded), ``V`` initialised
    so that ``h(V) = W/s - floor(W/s)``, final rounding ``x = [V >= 0]``. Hyper-parameters come
    from ``preset`` (see :data:`solvers.relaxation.PRESETS`), overridden by the non-None
    ``settings``: ``lam``, ``beta``, ``schedule``, ``warm_start``, ``iterations``, ``lr``,
    ``batch_size`` (declared once, in :data:`solvers.relaxation.SETTINGS`); only the
    ``"sample"`` normalisation is supported here.

    Returns
    -------
    Result
        ``energy``: Eq. 25 (:func:`activation_loss`) of the hard rounding; ``info``:
        ``objective``, ``soft_loss`` (Eq. 25 of the final soft weights), ``not_binary``,
        ``not_binary_fraction``, ``not_binary_where``, ``V`` and ``settings``.
    """
    problem = ActivationLayer(W, b, grid, X, X_hat, activation)
    return solve(problem, "adaround", mode="batch", preset=preset, seed=seed, **settings)


# ---------------------------------------------------------------------------- whole network
@dataclass
class SequentialRun:
    """A quantized network and how each layer was rounded.

    Attributes
    ----------
    net : reference.network.MLP
        The network with every quantized layer's weights replaced by ``W_hat``.
    results : list of Result
        One per layer (``energy``: that layer's objective for the variant).
    grids : list of Grid
    problems : list
        The QUBO each layer was solved on (None for the hidden layers of ``asymmetric_relu``, whose
        Eq. 25 with the ReLU, an :class:`ActivationLayer`, is not a QUBO).
    """

    net: MLP
    results: list
    grids: list
    problems: list


def quantize_network(net, X, bits=4, method="nearest", variant="layerwise", options=None, grids=None,
                     symmetric: bool = True, per_row: bool = True, grid_method: str = "mse") -> SequentialRun:
    """Quantize every layer of ``net`` in order with ``method`` on the objective ``variant``.

    Parameters
    ----------
    net : reference.network.MLP
    X : array of shape (N, in)
        Calibration inputs.
    bits : int, default=4
    method : str, default="nearest"
        Any registered method (:func:`solvers.method_names`). For ``variant="asymmetric_relu"``
        hidden layers are :class:`ActivationLayer` problems (Eq. 25 with the ReLU, not a QUBO):
        they accept ``"adaround"`` (in batch mode, as :func:`asymmetric_relaxation`, taking the
        options ``preset, lam, beta, schedule, warm_start, iterations, lr, batch_size, seed``)
        and the residual baselines, and each result's ``energy`` is Eq. 25 with the ReLU.
    variant : {"layerwise", "asymmetric", "asymmetric_relu"}, default="layerwise"
    options : dict, optional
        Keyword options for the method.
    grids : list of Grid, optional
        One per layer; default ``fit_grid(W, bits, symmetric, per_row, grid_method)``.
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net must be a reference.network.MLP, found {type(net).__name__}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, found {variant!r}")
    options = dict(options or {})
    X = net.check_inputs(X)
    if grids is None:
        grids = [fit_grid(W, bits, symmetric=symmetric, per_row=per_row, method=grid_method) for W in net.weights]
    elif len(grids) != net.n_layers:
        raise ValueError(f"grids must hold one Grid per layer ({net.n_layers}), found {len(grids)}")
    residual = tuple(n for n, m in METHODS.items() if m.residual)
    if variant == "asymmetric_relu" and method not in ("adaround",) + residual:
        raise ValueError(
            f"variant 'asymmetric_relu' is not a QUBO on ReLU layers: method must be one of "
            f"{sorted(('adaround',) + residual)}, found {method!r}"
        )
    float_inputs = net.layer_inputs(X)
    q_net = net
    results, problems = [], []
    for layer in range(net.n_layers):
        W = net.weights[layer]
        x_hat = q_net.layer_inputs(X)[layer]
        hidden = layer < net.n_layers - 1
        opts = options
        if variant == "asymmetric_relu" and hidden:  # Eq. 25 with the ReLU: not a QUBO
            problem = ActivationLayer(W, net.biases[layer], grids[layer], float_inputs[layer], x_hat, "relu",
                                      name=f"layer {layer}")
            if method == "adaround":
                opts = {"mode": "batch", **options}
        elif variant == "layerwise":
            problem = LayerProblem(W, grids[layer], X=float_inputs[layer], name=f"layer {layer}")
        else:
            problem = AsymmetricLayer(W, grids[layer], float_inputs[layer], x_hat, name=f"layer {layer}")
        res = solve(problem, method, **opts)
        W_hat = problem.w_hat(res.x)
        q_net = q_net.with_weights(layer, W_hat)
        results.append(res)
        problems.append(None if isinstance(problem, ActivationLayer) else problem)  # None: not a QUBO
    return SequentialRun(net=q_net, results=results, grids=list(grids), problems=problems)
