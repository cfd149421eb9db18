"""Layer rounding posed as per-row QUBOs of the local loss (Eqs. 18-20; docs/conventions.md).

For output row ``k`` with up/down variables ``v`` (``q = lo + movable * v``) the rounding error is
``e = a + B v`` with ``a = s_k (lo - z_k) - w_k`` and ``B = diag(s_k * movable)``, so the row's
local loss ``e^T G e`` is the binary quadratic model

.. math:: P = B G B, \\qquad q = 2 B G a, \\qquad c = a^T G a .

Rows do not interact under Eq. 20, so the layer optimum is the sum of the row optima. Weights
whose two neighbours coincide (``movable = 0``: clipped at the grid's end) have no variable; each
row's model is reduced to its free variables.
"""

from __future__ import annotations

import numpy as np

from reference.validation import as_float_array, as_int_scalar, check_loss_range
from reference.conv import _check_X, conv_geometry, conv_gram
from reference.grid import Grid, _grid_neighbours
from reference.loss import gram

from .bqm import BQM

__all__ = ["ConvProblem", "LayerProblem", "cnn_layer_problem"]


def _check_gram(G, n: int, name: str) -> np.ndarray:
    """A symmetric positive semidefinite (n, n) matrix, symmetrised; else ValueError naming ``name``."""
    G = as_float_array(G, name, shape=(n, n))
    scale = max(1.0, float(np.max(np.abs(G)))) if G.size else 1.0
    if not np.allclose(G, G.T, rtol=0, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric")
    if G.size and np.linalg.eigvalsh(G)[0] < -1e-10 * scale:
        raise ValueError(f"{name} must be positive semidefinite (a Gram matrix X^T X / N)")
    return (G + G.T) / 2


class LayerProblem:
    """The rounding problem of one linear layer ``y = W x`` under the local loss (Eq. 20).

    Parameters
    ----------
    W : array of shape (out, in)
        Full-precision weights.
    grid : reference.Grid
        Per-tensor or per-row grid (see :func:`reference.fit_grid`).
    X : array of shape (N, in) or (N, T, in), optional
        Calibration inputs, one sample a row. Token inputs ``(N, T, in)`` (a transformer's
        ``(batch, tokens, features)``) count each of the ``N*T`` tokens as a sample, the same
        problem as ``X.reshape(N*T, in)``. Give ``X`` or ``G``, not both.
    G : array of shape (in, in), optional
        Gram matrix ``X^T X / N`` (symmetric positive semidefinite).
    name : str, optional

    Attributes
    ----------
    W, G : float64 arrays
    X : float64 array of shape (N, in), or None
        The validated samples when the problem was built from ``X`` (mini-batch methods need them).
    grid : Grid
    lo, movable, residual : arrays of shape (out, in)
        Lower neighbour, free-variable mask (1 where the weight can go up) and ``W/s - floor(W/s)``.
    free : list of int arrays
        Column indices of the free variables of each row.
    """

    def __init__(self, W, grid: Grid, X=None, G=None, name: str | None = None):
        W = as_float_array(W, "W", ndim=2)
        if (X is None) == (G is None):
            raise ValueError("give exactly one of X (samples, shape (N, in) or (N, T, in)) or G (Gram matrix, "
                             "shape (in, in))")
        if X is not None:
            X = as_float_array(X, "X")
            n_in = W.shape[1]
            if X.ndim not in (2, 3) or X.shape[-1] != n_in:
                raise ValueError(f"X must have shape (N, {n_in}) or, for token inputs, (N, T, {n_in}) to match "
                                 f"W's {n_in} inputs, found {X.shape}")
            if X.ndim == 3:  # token inputs (N, T, in): the N*T tokens are the samples
                X = X.reshape(X.shape[0] * X.shape[1], n_in)
            with np.errstate(over="ignore", under="ignore"):  # checked by check_loss_range
                G = gram(X)
        else:
            G = _check_gram(G, W.shape[1], "G")
        self._setup(W, grid, G, X, name)

    def _setup(self, W, grid, G, X, name, source=None):
        """Store validated arrays and derive the up/down variables (shared with the conv layer,
        whose ``G`` comes from ``X`` without keeping it: ``source="X"`` for the messages)."""
        if not isinstance(grid, Grid):
            raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
        grid.per_row(W.shape[0])  # validates the grid's length against W
        check_loss_range(W, G, grid, X, source=source)
        nb = _grid_neighbours(W, grid)
        self.W = W
        self.G = G
        self.X = X
        self.grid = grid
        self.name = name
        self.lo = nb.lo
        self.movable = nb.movable
        self.residual = nb.residual
        self.free = [np.flatnonzero(self.movable[k]) for k in range(W.shape[0])]
        self._rows: dict[int, BQM] = {}
        for arr in (self.W, self.G, self.lo, self.movable, self.residual):
            arr.setflags(write=False)
        if self.X is not None:
            self.X.setflags(write=False)

    # ------------------------------------------------------------------ sizes
    @property
    def shape(self) -> tuple[int, int]:
        return self.W.shape

    @property
    def n_rows(self) -> int:
        return self.W.shape[0]

    @property
    def n_vars(self) -> int:
        """Number of free up/down variables in the layer."""
        return int(sum(f.size for f in self.free))

    @property
    def max_row_vars(self) -> int:
        """Free variables of the largest row: the size an exact per-row method must handle."""
        return max((f.size for f in self.free), default=0)

    def __repr__(self) -> str:
        nm = f"{self.name!r}, " if self.name else ""
        return f"LayerProblem({nm}shape={self.shape}, n_vars={self.n_vars}, {self.grid!r})"

    # ------------------------------------------------------------------ the per-row QUBOs
    def _row_gram(self, k: int) -> np.ndarray:
        """The Gram matrix of row ``k``'s loss: ``G`` for every row of Eq. 20 (a subclass with a
        per-row matrix, Eq. 18, overrides this)."""
        return self.G

    def row_bqm(self, k: int) -> BQM:
        """The row-``k`` model over its free variables (labels = column indices)."""
        k = as_int_scalar(k, "k")
        if not 0 <= k < self.n_rows:
            raise ValueError(f"k must lie in [0, {self.n_rows}), found {k}")
        if k not in self._rows:
            s, z = self.grid.per_row(self.n_rows)
            idx = self.free[k]
            Gk = self._row_gram(k)
            a = s[k, 0] * (self.lo[k] - z[k, 0]) - self.W[k]
            b = s[k, 0] * self.movable[k, idx]
            Ga = Gk @ a
            P = Gk[np.ix_(idx, idx)] * np.outer(b, b)
            q = 2 * b * Ga[idx]
            c = float(a @ Ga)
            self._rows[k] = BQM(P, q, c, labels=idx.tolist())
        return self._rows[k]

    # ------------------------------------------------------------------ decoding
    def _check_x(self, x) -> np.ndarray:
        x = as_float_array(x, "x", shape=self.shape)
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("x must hold only 0 and 1 (1 = round up)")
        return x

    def assemble(self, row_states) -> np.ndarray:
        """Full (out, in) binary array from one state per row over that row's free variables."""
        x = np.zeros(self.shape, dtype=np.int8)
        for k, state in enumerate(row_states):
            x[k, self.free[k]] = state
        return x

    def integers(self, x) -> np.ndarray:
        """Integer weights ``q = lo + movable * x`` (int64, shape (out, in))."""
        x = self._check_x(x)
        return (self.lo + self.movable * x).astype(np.int64)

    def w_hat(self, x) -> np.ndarray:
        """Quantized weights ``W_hat = s (q - z)`` for up/down choices ``x`` (Eq. 1)."""
        x = self._check_x(x)
        s, z = self.grid.per_row(self.n_rows)
        return s * (self.lo + self.movable * x - z)

    def up_from_integers(self, q) -> np.ndarray:
        """The up/down array ``x`` that produces integer weights ``q``; refuses ``q`` off {lo, hi}."""
        q = as_float_array(q, "q", shape=self.shape)
        up = q - self.lo
        if not np.all((up == 0) | ((up == 1) & (self.movable == 1))):
            raise ValueError("q must equal the floor or ceiling neighbour (lo or lo + movable) of every weight")
        return up.astype(np.int8)

    def row_losses(self, x) -> np.ndarray:
        """Per-row local loss ``e_k^T G e_k`` with ``e = W_hat - W`` (Eq. 20), shape (out,)."""
        E = self.w_hat(x) - self.W
        return np.einsum("ki,ij,kj->k", E, self.G, E, optimize=True)

    def loss(self, x) -> float:
        """Local loss of the layer (Eq. 20): the energy every method is judged by."""
        return float(self.row_losses(x).sum())


def _check_patch_gram(grams, X, geo) -> None:
    """Refuse patch Gram matrices that overflowed, or that underflowed to 0 from patches that are
    not all zero (zero padding or a stride can leave every patch zero: then G = 0 is exact)."""
    m = float(np.max(np.abs(X), initial=0.0))
    if not np.all(np.isfinite(grams)):
        raise ValueError(f"X's patch Gram matrix X^T X / N overflows float64 (max |X| == {m:.3g}); rescale X")
    if m > 0 and not np.any(grams) and np.any(conv_gram(X / m, geo)):
        raise ValueError(f"X's patch Gram matrix X^T X / N underflows to 0 in float64 (max |X| == {m:.3g}); "
                         "rescale X")


class ConvProblem(LayerProblem):
    """The rounding problem of a 2-D convolution under the local loss (Eq. 20 on patches).

    Rows are the output channels, each over its flattened kernel ``W[o].ravel()`` (fan-in
    ``(C_in/groups) kh kw``, PyTorch's weight layout); the samples are the input patches, so the
    loss is, per output channel, the mean over samples and output positions of the squared output
    error, summed over channels. Output channel ``o`` belongs to group ``o // (C_out/groups)`` and
    its row uses that group's Gram matrix (:mod:`reference.conv`, which states the memory bound).

    Parameters
    ----------
    W : array of shape (C_out, C_in/groups, kh, kw)
    grid : reference.Grid
        Per-tensor or per-output-channel grid (fit it on ``W.reshape(C_out, -1)``).
    X : array of shape (N, C_in, H, W)
        Calibration inputs of the layer.
    stride, padding, dilation : int or two ints, default 1, 0, 1
    groups : int, default 1
        ``groups == C_in == C_out`` is a depthwise convolution.
    name : str, optional

    Attributes
    ----------
    W : float64 array of shape (C_out, fan_in)
        The kernels as rows (``kernel_shape`` gives the 4-D shape back, :meth:`w_hat_4d`).
    G : float64 array of shape (fan_in, fan_in) for ``groups == 1``, else (groups, fan_in, fan_in)
    grams : float64 array of shape (groups, fan_in, fan_in)
    geometry : reference.conv.ConvGeometry
    input_shape : tuple, the shape of ``X``; ``X`` itself is not kept (``self.X`` is None, so
        mini-batch methods run on ``G``).
    """

    def __init__(self, W, grid: Grid, X, *, stride=1, padding=0, dilation=1, groups=1, name: str | None = None):

        W4 = as_float_array(W, "W", ndim=4)
        X = _check_X(X)
        geo = conv_geometry(W4.shape, X.shape[1], stride, padding, dilation, groups)
        geo.output_size(X.shape[2], X.shape[3])  # refuses an empty output map before any work
        geo.check_work(X.shape[0], X.shape[2], X.shape[3])  # and a geometry above conv.MAX_WORK_ELEMENTS
        if not isinstance(grid, Grid):
            raise ValueError(f"grid must be a reference.Grid, found {type(grid).__name__}")
        grid.per_row(geo.c_out)
        with np.errstate(over="ignore", under="ignore"):  # checked by check_loss_range
            grams = conv_gram(X, geo)
        _check_patch_gram(grams, X, geo)
        G = grams[0] if geo.groups == 1 else grams
        self.geometry = geo
        self.kernel_shape = W4.shape
        self.input_shape = X.shape
        self.grams = grams
        self._setup(W4.reshape(geo.c_out, -1), grid, G, None, name, source="X")
        self.grams.setflags(write=False)

    def __repr__(self) -> str:
        g = self.geometry
        nm = f"{self.name!r}, " if self.name else ""
        return (f"ConvProblem({nm}kernel={tuple(self.kernel_shape)}, stride={g.stride}, padding={g.padding}, "
                f"dilation={g.dilation}, groups={g.groups}, n_vars={self.n_vars}, {self.grid!r})")

    def _row_gram(self, k: int) -> np.ndarray:
        return self.grams[k // self.geometry.c_out_group]

    def row_losses(self, x) -> np.ndarray:
        """Per-channel local loss ``e_o^T G_{g(o)} e_o`` (Eq. 20 on patches), shape (C_out,)."""
        E = self.w_hat(x) - self.W
        Eg = E.reshape(self.geometry.groups, self.geometry.c_out_group, -1)
        return np.einsum("gki,gij,gkj->gk", Eg, self.grams, Eg, optimize=True).ravel()

    def w_hat_4d(self, x) -> np.ndarray:
        """Quantized kernels ``s (q - z)`` in the layer's shape (C_out, C_in/groups, kh, kw)."""
        return self.w_hat(x).reshape(self.kernel_shape)


def cnn_layer_problem(net, layer, X, grid, inputs=None, name=None) -> LayerProblem:
    """The rounding problem of layer ``layer`` of a :class:`reference.cnn.CNN` on the inputs the
    network computes from images ``X`` (or the given ``inputs`` of that layer).

    A convolution gives a :class:`ConvProblem` (Eq. 20 on patches, with the layer's stride,
    padding, dilation and groups), a dense layer a :class:`LayerProblem` (Eq. 20).
    """
    geo = net.geometry(layer)  # checks ``layer``
    layer = int(layer)
    A = net.layer_inputs(X)[layer] if inputs is None else inputs
    name = name or f"layer {layer}"
    if geo is not None:
        return ConvProblem(net.weights[layer], grid, A, name=name, **net.conv_options(layer))
    return LayerProblem(net.weights[layer], grid, X=A, name=name)
