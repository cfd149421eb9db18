"""The Hessian levels of one layer as problems the solvers accept (docs/conventions.md).

From the task loss down to the local loss (Nagel et al. 2020, Eqs. 4-20), for the weights ``W``
(out, in) of one layer of a :class:`reference.network.MLP`, with up/down variables ``v``
(``W_hat = s (lo + movable v - z)``, :func:`reference.grid_neighbours`) and ``dw = vec(W_hat - W)`` in
row-major order (index ``k * in + i``, as ``W.ravel()``):

1. **Task-loss change** (ground truth): :func:`task_loss_change` runs the network with ``W_hat``.
2. **Second-order Taylor** (Eq. 4, with the exact layer Hessian of Eq. 16):
   ``dL ~ g^T dw + 1/2 dw^T H dw``, ``H = (1/N) sum_n (d2 l_n/dz^2) kron x_n x_n^T``;
   without the gradient term (``g = 0``, the paper's Eq. 13) or with it. The Hessian couples all
   rows, so the QUBO has one variable per free weight of the layer: :func:`taylor_qubo`,
   :class:`FullLayerQUBO` (energy in task-loss units: the predicted ``dL``).
3. **Diagonal output Hessian** (Eq. 18): ``d2 l_n/dz^2`` replaced by its diagonal ``c_nk``; rows
   decouple, row ``k`` has ``G_k = (1/N) sum_n c_nk x_n x_n^T`` and energy ``e_k^T G_k e_k``
   (twice the Taylor prediction without the gradient term): :class:`DiagonalHessianLayer`.
4. **Local loss** (Eqs. 19-20): ``c_nk`` taken constant, ``G = X^T X / N``:
   :class:`solvers.LayerProblem` built from the layer's inputs, :func:`local_loss_layer`.

Levels 3 and 4 are :class:`~solvers.LayerProblem` objects, so :func:`solvers.solve` runs every
QUBO method row by row on them and the rounding baselines on their residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.validation import as_float_array
from reference.grid import Grid, grid_neighbours
from reference.network import MLP

from .bqm import BQM
from .layer import LayerProblem

__all__ = [
    "FullLayerQUBO",
    "DiagonalHessianLayer",
    "taylor_qubo",
    "task_loss_qubo",
    "diagonal_hessian_layer",
    "local_loss_layer",
    "task_loss_change",
]


def _check_net(net) -> MLP:
    if not isinstance(net, MLP):
        raise ValueError(f"net must be a reference.network.MLP, found {type(net).__name__}")
    return net


def _check_grid(grid) -> Grid:
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
    return grid


# ---------------------------------------------------------------------------- level 1
def task_loss_change(net, layer, W_hat, X, y) -> float:
    """``L(W_hat) - L(W)``: the true change of the task loss when ``weights[layer]`` becomes ``W_hat``."""
    net = _check_net(net)
    return net.with_weights(layer, W_hat).loss(X, y) - net.loss(X, y)


# ---------------------------------------------------------------------------- level 2
@dataclass(frozen=True, eq=False)
class FullLayerQUBO:
    """A layer's rounding as one QUBO over all its free weights (rows coupled).

    Attributes
    ----------
    bqm : BQM
        Over the free weights, labels = row-major flat indices ``k * in + i``.
    W : array of shape (out, in)
    grid : Grid
    lo, movable : arrays of shape (out, in)
    residual : array of shape (out, in)
    free : int array
        Flat indices of the free weights, in the order of the BQM's variables.
    """

    bqm: BQM
    W: np.ndarray
    grid: Grid
    lo: np.ndarray
    movable: np.ndarray
    residual: np.ndarray
    free: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.W.shape

    def state(self, x) -> np.ndarray:
        """The BQM state (over the free weights) of an up/down array ``x`` of shape (out, in)."""
        x = as_float_array(x, "x", shape=self.shape)
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("x must hold only 0 and 1 (1 = round up)")
        return x.reshape(-1)[self.free].astype(np.int8)

    def up_down(self, state) -> np.ndarray:
        """The up/down array ``x`` (out, in) of a BQM state of shape (n_free,) (the ``Result.x`` of a
        solve of :attr:`bqm`); fixed weights get 0."""
        state = as_float_array(state, "state", shape=(self.free.size,))
        x = np.zeros(self.W.size, dtype=np.int8)
        x[self.free] = state
        return x.reshape(self.shape)

    def w_hat(self, x) -> np.ndarray:
        """``W_hat = s (lo + movable x - z)`` for an up/down array ``x`` (out, in)."""
        x = as_float_array(x, "x", shape=self.shape)
        s, z = self.grid.per_row(self.shape[0])
        return s * (self.lo + self.movable * x - z)

    def energy(self, x) -> float:
        """The QUBO energy of an up/down array ``x`` (out, in)."""
        return float(self.bqm.energy(self.state(x)))


def taylor_qubo(W, grid, H, g=None) -> FullLayerQUBO:
    """``E(v) = g^T dw + 1/2 dw^T H dw`` with ``dw = vec(W_hat(v) - W)`` (Eq. 4; Eq. 13 when ``g`` is None).

    Parameters
    ----------
    W : array of shape (out, in)
    grid : reference.Grid
    H : array of shape (out*in, out*in)
        Symmetric Hessian in row-major weight order (e.g. :meth:`reference.network.MLP.layer_hessian`).
    g : array of shape (out, in), optional
        Gradient of the loss with respect to ``W``; None drops the linear term.

    With ``dw = a + b * v`` (``a = s (lo - z) - W``, ``b = s movable``, restricted to the free
    weights ``F``): ``P = 1/2 diag(b_F) H_FF diag(b_F)``, ``q = b_F (H a + g)_F``,
    ``c = 1/2 a^T H a + g^T a``.
    """
    W = as_float_array(W, "W", ndim=2)
    grid = _check_grid(grid)
    n = W.size
    H = as_float_array(H, "H", shape=(n, n))
    scale = max(1.0, float(np.max(np.abs(H)))) if n else 1.0
    if not np.allclose(H, H.T, rtol=0, atol=1e-12 * scale):
        raise ValueError("H must be symmetric")
    g = np.zeros(n) if g is None else as_float_array(g, "g", shape=W.shape).reshape(-1)
    grid.per_row(W.shape[0])
    nb = grid_neighbours(W, grid)
    s, z = grid.per_row(W.shape[0])
    a = (s * (nb.lo - z) - W).reshape(-1)
    b = (s * nb.movable).reshape(-1)
    free = np.flatnonzero(nb.movable.reshape(-1))
    Ha = H @ a
    bF = b[free]
    P = 0.5 * H[np.ix_(free, free)] * np.outer(bF, bF)
    q = bF * (Ha + g)[free]
    c = float(0.5 * a @ Ha + g @ a)
    bqm = BQM(P, q, c, labels=free.tolist())
    for arr in (W, nb.lo, nb.movable, nb.residual, free):
        arr.setflags(write=False)
    return FullLayerQUBO(bqm=bqm, W=W, grid=grid, lo=nb.lo, movable=nb.movable, residual=nb.residual, free=free)


def task_loss_qubo(net, layer, X, y, grid, gradient: bool = False) -> FullLayerQUBO:
    """Level 2 for ``weights[layer]`` of ``net`` on the batch ``(X, y)``.

    ``gradient=False`` is the paper's Eq. 13 (Hessian term only, Eq. 16's exact Hessian);
    ``gradient=True`` keeps the first-order term of Eq. 4. The energy is the predicted change
    of the mean task loss.
    """
    net = _check_net(net)
    H = net.layer_hessian(X, y, layer)
    g = net.layer_gradient(X, y, layer) if gradient else None
    return taylor_qubo(net.weights[layer], grid, H, g)


# ---------------------------------------------------------------------------- level 3
class DiagonalHessianLayer(LayerProblem):
    """Eq. 18: a layer whose row ``k`` is weighted by its own ``G_k = (1/N) sum_n c_nk x_n x_n^T``.

    Parameters
    ----------
    W : array of shape (out, in)
    grid : reference.Grid
    X : array of shape (N, in)
        The layer's inputs.
    c : array of shape (N, out)
        Non-negative per-sample weights of each output (the diagonal of ``d2 l_n / dz^2``).
    name : str, optional

    Row ``k``'s energy is ``e_k^T G_k e_k`` (``e_k`` the error of row ``k``), the Eq. 20 form with
    ``G`` replaced by ``G_k``; the sum over rows is twice the Taylor prediction of Eq. 13 with the
    off-diagonal output Hessian dropped. Everything :func:`solvers.solve` uses on a layer
    (``row_bqm``, ``loss``, ``residual``, ``movable``...) is defined; there is no single Gram matrix,
    so the attribute ``G`` raises (a method that needs it optimises Eq. 20, not Eq. 18).
    """

    def __init__(self, W, grid: Grid, X, c, name: str | None = None):
        super().__init__(W, grid, X=X, name=name)
        n, out = self.X.shape[0], self.n_rows
        c = as_float_array(c, "c", shape=(n, out))
        if np.any(c < 0):
            raise ValueError(f"c must be >= 0 (diagonal of a PSD output Hessian), found min(c) == {c.min()!r}")
        G_rows = np.einsum("nk,ni,nj->kij", c, self.X, self.X, optimize=True) / n
        G_rows = (G_rows + G_rows.transpose(0, 2, 1)) / 2
        G_rows.setflags(write=False)
        c.setflags(write=False)
        self.c = c
        self.G_rows = G_rows

    @property
    def G(self):
        """No single Gram matrix on this level: always a ValueError (use ``G_rows``)."""
        raise ValueError(
            "DiagonalHessianLayer has one matrix per row (G_rows, Eq. 18) and no single G; a "
            "method that needs G relaxes Eq. 20 (use a LayerProblem for it)"
        )

    def __repr__(self) -> str:
        return super().__repr__().replace("LayerProblem", "DiagonalHessianLayer", 1)

    def row_gram(self, k: int) -> np.ndarray:
        """Row ``k`` of Eq. 18 uses its own ``G_k``: ``P = B G_k B``, ``q = 2 B G_k a``, ``c = a^T G_k a``."""
        return self.G_rows[k]

    def row_losses(self, x) -> np.ndarray:
        """``e_k^T G_k e_k`` per row, shape (out,)."""
        E = self.w_hat(x) - self.W
        return np.einsum("ki,kij,kj->k", E, self.G_rows, E, optimize=True)


def diagonal_hessian_layer(net, layer, X, y, grid) -> DiagonalHessianLayer:
    """Level 3 for ``weights[layer]``: ``c_nk = [d2 l_n / dz^2]_kk`` from the network (Eq. 18)."""
    net = _check_net(net)
    C = net.output_hessians(X, y, layer)
    c = np.clip(np.einsum("nkk->nk", C), 0.0, None)  # >= 0 up to rounding: diagonal of a PSD matrix
    A = net.layer_inputs(X)[layer]
    return DiagonalHessianLayer(net.weights[layer], grid, A, c, name=f"layer {layer} (Eq. 18)")


# ---------------------------------------------------------------------------- level 4
def local_loss_layer(net, layer, X, grid) -> LayerProblem:
    """Level 4 for ``weights[layer]``: the local loss (Eq. 20) with ``G`` from the layer's inputs."""
    net = _check_net(net)
    A = net.layer_inputs(X)[layer]
    return LayerProblem(net.weights[layer], _check_grid(grid), X=A, name=f"layer {layer} (Eq. 20)")
