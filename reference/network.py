"""A minimal numpy multilayer perceptron: dense layers, ReLU, softmax cross-entropy.

The network is ``z_l = W_l a_l + b_l`` for ``l = 0 .. L-1`` with ``a_0 = x``,
``a_{l+1} = relu(z_l)`` and logits ``z_{L-1}``; the task loss is the mean softmax cross-entropy
``L = (1/N) sum_n [logsumexp(z_n) - z_{n, y_n}]``. Shapes follow docs/conventions.md: ``W_l`` is
(out, in), a batch ``X`` is (N, in), one sample a row.

Second derivatives (Nagel et al. 2020, Eqs. 12-16). Layer ``l`` is linear in its weights, so the
Hessian of the per-sample loss with respect to ``W_l`` is exactly ``(d2 l / dz_l^2) kron x x^T``
(Eq. 16; here in the row-major order of ``W.ravel()``, index ``k * in + i``, which swaps the
factors of the paper's column-major ``x x^T kron d2L/dz^2``). ReLU is piecewise linear, so away
from its kinks (a set of measure zero) the logits are piecewise linear in ``z_l`` and

.. math:: \\frac{\\partial^2 \\ell}{\\partial z_l^2} = J_l^T (\\mathrm{diag}(p) - p p^T) J_l,
          \\qquad J_l = \\frac{\\partial\\, \\mathrm{logits}}{\\partial z_l},

with ``p`` the softmax output: the Gauss-Newton matrix is the exact Hessian of this network.

:func:`loss_and_gradients` accepts complex arrays (ReLU acts on the real part, the log-sum-exp is
shifted by the real maximum), so complex-step differentiation of the gradient gives Hessians to
machine precision: the tests use it as an exact oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import as_float_array, check_positive_int

__all__ = ["MLP", "Forward", "loss_and_gradients", "train_mlp"]


# ---------------------------------------------------------------------------- dtype-generic core
def _relu(z):
    return np.where(z.real > 0, z, 0)


def _log_softmax(z):
    m = np.max(z.real, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return z - lse


def _forward(weights, biases, X):
    inputs, pre = [], []
    a = X
    for layer, (W, b) in enumerate(zip(weights, biases)):
        inputs.append(a)
        z = a @ W.T + b
        pre.append(z)
        if layer < len(weights) - 1:
            a = _relu(z)
    return inputs, pre


def loss_and_gradients(weights, biases, X, y):
    """Mean cross-entropy and its gradients ``(L, [dL/dW_l], [dL/db_l])``; trusts its input.

    Works for float or complex arrays (for complex-step differentiation); ``y`` holds integer
    class labels of shape (N,).
    """
    inputs, pre = _forward(weights, biases, X)
    n = X.shape[0]
    logp = _log_softmax(pre[-1])
    rows = np.arange(n)
    loss = -np.sum(logp[rows, y]) / n
    gz = np.exp(logp)
    gz[rows, y] -= 1
    gz = gz / n
    dW = [None] * len(weights)
    db = [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        dW[layer] = gz.T @ inputs[layer]
        db[layer] = gz.sum(axis=0)
        if layer > 0:
            gz = (gz @ weights[layer]) * (pre[layer - 1].real > 0)
    return loss, dW, db


# ---------------------------------------------------------------------------- the network
class _WeightsAndBiases:
    """Read-only float64 weights and biases, one pair per layer, and the checks of their arguments.

    What :class:`MLP` and :class:`reference.cnn.CNN` share: each validates its own weight shapes
    (a callback of :meth:`_set_parameters`); the biases, the freezing, the layer index, the labels
    and the replacement of one layer's weights are checked here once.
    """

    weights: tuple
    biases: tuple

    def _set_parameters(self, weights, biases, check_weight) -> None:
        """``weights[l] = check_weight(l, W, checked)`` (``checked``: the weights before ``l``),
        ``biases[l]`` of shape ``(out_l,)``; both copied to float64 and made read-only."""
        Ws, bs = [], []
        for layer, (W, b) in enumerate(zip(weights, biases)):
            W = check_weight(layer, W, Ws)
            b = as_float_array(b, f"biases[{layer}]", shape=(W.shape[0],))
            W.setflags(write=False)
            b.setflags(write=False)
            Ws.append(W)
            bs.append(b)
        self.weights = tuple(Ws)
        self.biases = tuple(bs)

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def _check_layer(self, layer) -> int:
        return check_positive_int(layer, "layer", minimum=0, maximum=self.n_layers - 1)

    def _check_y(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        classes = self.weights[-1].shape[0]
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be an integer array of shape ({n},), found {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"y must hold classes in [0, {classes}), found {y.min()}..{y.max()}")
        return y.astype(np.int64)

    def _replaced(self, layer, W) -> list:
        """The weights with ``weights[layer]`` replaced by ``W`` of the same shape (checked)."""
        layer = self._check_layer(layer)
        Ws = list(self.weights)
        Ws[layer] = as_float_array(W, "W", shape=Ws[layer].shape)
        return Ws


@dataclass(frozen=True)
class Forward:
    """Everything a forward pass computes for a batch.

    Attributes
    ----------
    inputs : list of arrays, ``inputs[l]`` of shape (N, in_l)
        The input of every layer (``inputs[0]`` is the batch).
    pre : list of arrays, ``pre[l]`` of shape (N, out_l)
        Pre-activations ``z_l`` (``pre[-1]`` are the logits).
    outputs : list of arrays
        ``relu(z_l)`` for hidden layers, the logits for the last one.
    """

    inputs: list
    pre: list
    outputs: list

    @property
    def logits(self) -> np.ndarray:
        return self.pre[-1]


class MLP(_WeightsAndBiases):
    """Dense layers with ReLU between them and softmax cross-entropy on the logits.

    Parameters
    ----------
    weights : list of arrays, ``weights[l]`` of shape (out_l, in_l), ``in_{l+1} == out_l``
    biases : list of arrays, ``biases[l]`` of shape (out_l,)

    Arrays are copied to float64 and made read-only; :meth:`with_weights` returns a new network.
    """

    def __init__(self, weights, biases):
        if len(weights) == 0 or len(weights) != len(biases):
            raise ValueError(
                f"weights and biases must be non-empty lists of equal length, found {len(weights)} "
                f"and {len(biases)}"
            )

        def check_weight(layer, W, previous):
            W = as_float_array(W, f"weights[{layer}]", ndim=2)
            if layer and W.shape[1] != previous[-1].shape[0]:
                raise ValueError(
                    f"weights[{layer}] must have {previous[-1].shape[0]} inputs (columns) to follow layer "
                    f"{layer - 1}, found shape {W.shape}"
                )
            return W

        self._set_parameters(weights, biases, check_weight)

    @classmethod
    def initialize(cls, sizes, seed=0) -> "MLP":
        """He-normal weights and zero biases for layer widths ``sizes = [in, hidden..., classes]``."""
        sizes = [check_positive_int(s, "sizes[i]") for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, found {sizes}")
        rng = np.random.default_rng(check_positive_int(seed, "seed", minimum=0))
        Ws = [rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in)) for n_in, n_out in zip(sizes, sizes[1:])]
        return cls(Ws, [np.zeros(n) for n in sizes[1:]])

    # ------------------------------------------------------------------ facts
    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [W.shape[0] for W in self.weights]

    def __repr__(self) -> str:
        return f"MLP(sizes={self.sizes})"

    def check_inputs(self, X) -> np.ndarray:
        """``X`` as a finite float64 array of shape ``(N, sizes[0])`` with ``N >= 1``, or ValueError."""
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have shape (N, {self.sizes[0]}), found {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X must have at least one sample (row), found 0")
        return X

    def with_weights(self, layer, W) -> "MLP":
        """A copy of the network with ``weights[layer]`` replaced by ``W`` (same shape)."""
        return MLP(self._replaced(layer, W), list(self.biases))

    # ------------------------------------------------------------------ forward
    def forward(self, X) -> Forward:
        """Inputs, pre-activations and outputs of every layer for the batch ``X`` (N, in)."""
        X = self.check_inputs(X)
        inputs, pre = _forward(self.weights, self.biases, X)
        outputs = [_relu(z) for z in pre[:-1]] + [pre[-1]]
        return Forward(inputs=inputs, pre=pre, outputs=outputs)

    def layer_inputs(self, X) -> list:
        """``[a_0, ..., a_{L-1}]``: the input of every layer, each of shape (N, in_l)."""
        return self.forward(X).inputs

    def logits(self, X) -> np.ndarray:
        return self.forward(X).logits

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.logits(X), axis=1)

    def accuracy(self, X, y) -> float:
        """Fraction of samples whose largest logit is the label."""
        X = self.check_inputs(X)
        y = self._check_y(y, X.shape[0])
        return float(np.mean(self.predict(X) == y))

    def loss(self, X, y) -> float:
        """Mean softmax cross-entropy (the task loss ``L``)."""
        X = self.check_inputs(X)
        y = self._check_y(y, X.shape[0])
        logp = _log_softmax(_forward(self.weights, self.biases, X)[1][-1])
        return float(-np.mean(logp[np.arange(X.shape[0]), y]))

    # ------------------------------------------------------------------ derivatives
    def gradients(self, X, y) -> tuple[list, list]:
        """``([dL/dW_l], [dL/db_l])`` of the mean cross-entropy (backpropagation)."""
        X = self.check_inputs(X)
        y = self._check_y(y, X.shape[0])
        _, dW, db = loss_and_gradients(self.weights, self.biases, X, y)
        return dW, db

    def output_hessians(self, X, y, layer) -> np.ndarray:
        """Per-sample ``d2 l_n / dz_l^2`` of shape (N, out_l, out_l) (not divided by N).

        ``J_l^T (diag(p) - p p^T) J_l`` with ``J_{L-1} = I`` and
        ``J_l = J_{l+1} W_{l+1} diag(relu'(z_l))``; exact away from ReLU kinks (module notes).
        The labels do not enter (the softmax Hessian does not depend on them); ``y`` is
        validated for symmetry with :meth:`layer_hessian`.
        """
        X = self.check_inputs(X)
        self._check_y(y, X.shape[0])
        layer = self._check_layer(layer)
        _, pre = _forward(self.weights, self.biases, X)
        p = np.exp(_log_softmax(pre[-1]))
        n, C = p.shape
        J = np.broadcast_to(np.eye(C), (n, C, C))
        for m in range(self.n_layers - 2, layer - 1, -1):
            J = (J @ self.weights[m + 1]) * (pre[m] > 0)[:, None, :]
        Hce = np.einsum("nc,cd->ncd", p, np.eye(C)) - p[:, :, None] * p[:, None, :]
        return np.einsum("nck,ncd,ndl->nkl", J, Hce, J, optimize=True)

    def layer_hessian(self, X, y, layer) -> np.ndarray:
        """Exact Hessian of the mean loss with respect to ``weights[layer]`` (Eq. 16).

        ``H = (1/N) sum_n (d2 l_n / dz^2) kron x_n x_n^T`` of shape (out*in, out*in), indexed
        row-major like ``W.ravel()``: entry ``(k*in + i, m*in + j)`` is
        ``(1/N) sum_n [d2 l_n/dz^2]_{km} x_{ni} x_{nj}``.
        """
        X = self.check_inputs(X)
        layer = self._check_layer(layer)
        C = self.output_hessians(X, y, layer)
        A = self.layer_inputs(X)[layer]
        return kron_hessian(C, A)

    def layer_gradient(self, X, y, layer) -> np.ndarray:
        """``dL/dW_layer`` of shape (out, in)."""
        layer = self._check_layer(layer)
        return self.gradients(X, y)[0][layer]


def kron_hessian(C: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``(1/N) sum_n C_n kron a_n a_n^T`` (row-major weight order), shape (out*in, out*in).

    ``C`` has shape (N, out, out) (per-sample output Hessians), ``A`` shape (N, in) (layer inputs).
    """
    n, out, _ = C.shape
    n_in = A.shape[1]
    XX = (A[:, :, None] * A[:, None, :]).reshape(n, n_in * n_in)
    H = (C.reshape(n, out * out).T @ XX) / n  # (out*out, in*in), entry [(k,m), (i,j)]
    H = H.reshape(out, out, n_in, n_in).transpose(0, 2, 1, 3).reshape(out * n_in, out * n_in)
    return (H + H.T) / 2


# ---------------------------------------------------------------------------- training
def train_mlp(X, y, sizes, seed=0, epochs: int = 60, batch_size: int = 32, lr: float = 3e-3,
              weight_decay: float = 0.0) -> MLP:
    """Train an MLP with Adam on shuffled mini-batches; the same arguments give the same network.

    Parameters
    ----------
    X : array of shape (N, sizes[0]); y : int array of shape (N,)
    sizes : list of int
        Layer widths ``[in, hidden..., classes]``.
    seed : int, default=0
        Seeds the initialisation and the shuffles.
    epochs, batch_size, lr : training schedule (Adam betas (0.9, 0.999), eps 1e-8).
    weight_decay : float, default=0
        L2 penalty ``(wd / 2) sum ||W||^2`` on the weights (not the biases).
    """
    net = MLP.initialize(sizes, seed)
    X = net.check_inputs(X)
    y = net._check_y(y, X.shape[0])
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size", maximum=X.shape[0])
    rng = np.random.default_rng([int(seed), 1])
    params = [np.array(p) for pair in zip(net.weights, net.biases) for p in pair]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    for _ in range(epochs):
        perm = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            _, dW, db = loss_and_gradients(params[0::2], params[1::2], X[idx], y[idx])
            grads = [g for pair in zip(dW, db) for g in pair]
            t += 1
            for j, (p, g) in enumerate(zip(params, grads)):
                if j % 2 == 0:
                    g = g + weight_decay * p
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                p -= lr * (m[j] / (1 - 0.9**t)) / (np.sqrt(v[j] / (1 - 0.999**t)) + 1e-8)
    return MLP(params[0::2], params[1::2])
