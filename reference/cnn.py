"""A small numpy convolutional network for scikit-learn's 8x8 digits: exact forward, backward, training.

The network is a stack of convolutions (each followed by ReLU), an average pool, a flatten and
dense layers (ReLU between them, logits last), trained on the mean softmax cross-entropy. The
default architecture (:data:`DIGITS_CNN`) on ``(N, 1, 8, 8)`` images is

====  =============================================  ==========  =======
layer                                                output      fan-in
====  =============================================  ==========  =======
0     conv 3x3, 1 -> 16, padding 1                   16 x 8 x 8  9
1     conv 3x3, 16 -> 32, padding 1, stride 2        32 x 4 x 4  144
2     conv 3x3 depthwise (32 groups), padding 1      32 x 4 x 4  9
-     average pool 2x2, flatten                      128
3     linear 128 -> 10 (logits)                      10          128
====  =============================================  ==========  =======

Convolutions are computed on patches (:mod:`reference.conv`), their gradients by the adjoint of
the patch extraction; there is no approximation anywhere, so the gradients equal finite
differences up to rounding (tested). :func:`train_cnn` (Adam, seeded shuffles) gives the same
weights bit for bit for the same arguments.

The rounding problem of layer ``l`` with inputs computed by the network from calibration images
is posed on the solver side, by :func:`solvers.cnn_layer_problem`: a :class:`solvers.ConvProblem`
(Eq. 20 on patches) for a convolution, a :class:`solvers.LayerProblem` (Eq. 20) for a dense layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import as_float_array, check_positive_int
from .conv import ConvGeometry, _pad, _patches_adjoint, _patches_all, conv_geometry
from .digits import load_digits
from .network import _WeightsAndBiases

__all__ = ["CNN", "ConvSpec", "DIGITS_CNN", "cnn_calibration", "digits_cnn", "digits_images", "train_cnn"]


@dataclass(frozen=True)
class ConvSpec:
    """A convolution of the network: output channels, kernel size, stride, padding, groups."""

    c_out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    groups: int = 1


#: The default architecture: convolutions, pool size, dense widths (the last is the classes).
DIGITS_CNN = {
    "input_shape": (1, 8, 8),
    "convs": (ConvSpec(16), ConvSpec(32, stride=2), ConvSpec(32, groups=32)),
    "pool": 2,
    "dense": (10,),
}


def digits_images(X) -> np.ndarray:
    """Flattened 8x8 digits (N, 64) as images (N, 1, 8, 8)."""
    X = as_float_array(X, "X", ndim=2)
    if X.shape[1] != 64:
        raise ValueError(f"X must have 64 columns (8x8 digits), found {X.shape}")
    return X.reshape(-1, 1, 8, 8)


def _relu(z):
    return np.maximum(z, 0.0)


def _log_softmax(z):
    m = np.max(z, axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


class CNN(_WeightsAndBiases):
    """Convolutions with ReLU, an average pool, dense layers; softmax cross-entropy on the logits.

    Parameters
    ----------
    weights : list of arrays
        One per layer: ``(C_out, C_in/groups, k, k)`` for each convolution, then ``(out, in)`` for
        each dense layer.
    biases : list of arrays, ``biases[l]`` of shape (out_l,)
    geometries : list of reference.conv.ConvGeometry
        One per convolution (``len(geometries)`` convolutions come first).
    pool : int
        Side of the average pool after the last convolution (1: none); must divide its output.
    input_shape : tuple (C, H, W)

    Arrays are copied to float64 and made read-only; :meth:`with_weights` returns a new network.
    """

    def __init__(self, weights, biases, geometries, pool: int, input_shape):
        if len(weights) != len(biases) or len(weights) <= len(geometries):
            raise ValueError("weights and biases must have equal length, longer than geometries (a dense layer last)")
        self.geometries = tuple(geometries)
        self.pool = check_positive_int(pool, "pool")
        self.input_shape = tuple(int(v) for v in input_shape)
        shape = self.input_shape

        def check_weight(layer, W, previous):
            nonlocal shape
            if layer < len(self.geometries):
                geo = self.geometries[layer]
                W = as_float_array(W, f"weights[{layer}]", shape=(geo.c_out, geo.c_in_group, *geo.kernel))
                if geo.c_in != shape[0]:
                    raise ValueError(f"geometries[{layer}] must take {shape[0]} channels, found {geo.c_in}")
                geo.check_work(1, shape[1], shape[2])  # one sample's work arrays, before any batch is run
                shape = (geo.c_out, *geo.output_size(shape[1], shape[2]))
                if layer == len(self.geometries) - 1:
                    if shape[1] % self.pool or shape[2] % self.pool:
                        raise ValueError(f"pool must divide the last feature map {shape[1:]}, found {self.pool}")
                    shape = (shape[0] * (shape[1] // self.pool) * (shape[2] // self.pool),)
            else:
                if layer == 0:
                    shape = (int(np.prod(shape)),)
                W = as_float_array(W, f"weights[{layer}]", shape=(None, shape[0]))
                shape = (W.shape[0],)
            return W

        self._set_parameters(weights, biases, check_weight)

    @classmethod
    def initialize(cls, input_shape=DIGITS_CNN["input_shape"], convs=DIGITS_CNN["convs"], pool=DIGITS_CNN["pool"],
                   dense=DIGITS_CNN["dense"], seed=0) -> "CNN":
        """He-normal weights (fan-in of each layer) and zero biases."""
        rng = np.random.default_rng(check_positive_int(seed, "seed", minimum=0))
        geos, Ws = [], []
        shape = tuple(input_shape)
        for spec in convs:
            geo = conv_geometry((spec.c_out, shape[0] // spec.groups, spec.kernel, spec.kernel), shape[0],
                                spec.stride, spec.padding, 1, spec.groups)
            geo.check_work(1, shape[1], shape[2])  # a huge padding is refused before the dense weights grow with it
            geos.append(geo)
            Ws.append(rng.normal(0.0, np.sqrt(2.0 / geo.fan_in), size=(geo.c_out, geo.c_in_group, *geo.kernel)))
            shape = (geo.c_out, *geo.output_size(shape[1], shape[2]))
        n_in = int(np.prod(shape)) // (pool * pool if convs else 1)
        for out in dense:
            Ws.append(rng.normal(0.0, np.sqrt(2.0 / n_in), size=(out, n_in)))
            n_in = out
        return cls(Ws, [np.zeros(W.shape[0]) for W in Ws], geos, pool, input_shape)

    # ------------------------------------------------------------------ facts
    @property
    def n_conv(self) -> int:
        return len(self.geometries)

    def __repr__(self) -> str:
        return f"CNN(layers={[tuple(W.shape) for W in self.weights]}, pool={self.pool})"

    def _check_X(self, X) -> np.ndarray:
        X = as_float_array(X, "X", ndim=4)
        if X.shape[1:] != self.input_shape or X.shape[0] == 0:
            raise ValueError(f"X must have shape (N >= 1, {', '.join(map(str, self.input_shape))}), found {X.shape}")
        return X

    def with_weights(self, layer, W) -> "CNN":
        """A copy with ``weights[layer]`` replaced by ``W`` (same shape, or the 2-D rows of a conv)."""
        layer = self._check_layer(layer)
        shape = self.weights[layer].shape
        W = as_float_array(W, "W")
        if W.shape != shape and W.shape == (shape[0], int(np.prod(shape[1:]))):
            W = W.reshape(shape)
        return CNN(self._replaced(layer, W), list(self.biases), self.geometries, self.pool, self.input_shape)

    # ------------------------------------------------------------------ forward and backward
    def _forward(self, X):
        """Inputs (natural shapes), pre-activations and conv patches of every layer; trusts X."""
        inputs, pre, pats = [], [], []
        a = X
        for layer, (W, b) in enumerate(zip(self.weights, self.biases)):
            inputs.append(a)
            if layer < self.n_conv:
                geo = self.geometries[layer]
                n = a.shape[0]
                Ho, Wo = geo.output_size(a.shape[2], a.shape[3])
                P = _patches_all(_pad(a, geo), geo, Ho, Wo)  # (n*Ho*Wo, groups, fan_in)
                og = geo.c_out_group
                W3 = W.reshape(geo.groups, og, -1)
                if geo.groups == 1:
                    z = P[:, 0] @ W3[0].T
                else:
                    z = np.einsum("mgf,gof->mgo", P, W3, optimize=True).reshape(P.shape[0], geo.c_out)
                z = z.reshape(n, Ho, Wo, geo.c_out).transpose(0, 3, 1, 2) + b[None, :, None, None]
                pats.append(P)
                pre.append(z)
                a = _relu(z)
                if layer == self.n_conv - 1:
                    p = self.pool
                    a = a.reshape(n, geo.c_out, Ho // p, p, Wo // p, p).mean(axis=(3, 5)).reshape(n, -1)
            else:
                if layer == 0:
                    a = a.reshape(a.shape[0], -1)
                    inputs[-1] = a
                z = a @ W.T + b
                pats.append(None)
                pre.append(z)
                a = _relu(z)
        return inputs, pre, pats

    def layer_inputs(self, X) -> list:
        """The input of every layer: (N, C, H, W) for a convolution, (N, in) for a dense layer."""
        return self._forward(self._check_X(X))[0]

    def logits(self, X) -> np.ndarray:
        return self._forward(self._check_X(X))[1][-1]

    def predict(self, X) -> np.ndarray:
        return np.argmax(self.logits(X), axis=1)

    def accuracy(self, X, y) -> float:
        X = self._check_X(X)
        return float(np.mean(self.predict(X) == self._check_y(y, X.shape[0])))

    def loss(self, X, y) -> float:
        """Mean softmax cross-entropy."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        logp = _log_softmax(self._forward(X)[1][-1])
        return float(-np.mean(logp[np.arange(X.shape[0]), y]))

    def gradients(self, X, y) -> tuple[list, list]:
        """``([dL/dW_l], [dL/db_l])`` of the mean cross-entropy (backpropagation, exact)."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        return self._gradients(X, y)[1:]

    def _gradients(self, X, y):
        inputs, pre, pats = self._forward(X)
        n = X.shape[0]
        logp = _log_softmax(pre[-1])
        rows = np.arange(n)
        loss = -float(np.sum(logp[rows, y])) / n
        gz = np.exp(logp)
        gz[rows, y] -= 1
        gz /= n
        dW, db = [None] * self.n_layers, [None] * self.n_layers
        for layer in range(self.n_layers - 1, -1, -1):
            W = self.weights[layer]
            if layer >= self.n_conv:
                dW[layer] = gz.T @ inputs[layer]
                db[layer] = gz.sum(axis=0)
                if layer == 0:
                    break
                ga = gz @ W
                if layer > self.n_conv:
                    gz = ga * (pre[layer - 1] > 0)
                    continue
                # back through flatten and the average pool into the last conv's output
                p = self.pool
                _, C, Ho, Wo = pre[layer - 1].shape
                ga = ga.reshape(n, C, Ho // p, 1, Wo // p, 1) / (p * p)
                ga = np.broadcast_to(ga, (n, C, Ho // p, p, Wo // p, p)).reshape(n, C, Ho, Wo)
                gz = ga * (pre[layer - 1] > 0)
                continue
            geo = self.geometries[layer]
            og = geo.c_out_group
            G = gz.transpose(0, 2, 3, 1).reshape(-1, geo.groups, og)  # (n*Ho*Wo, groups, og)
            P = pats[layer]
            W3 = W.reshape(geo.groups, og, -1)
            if geo.groups == 1:
                dW[layer] = (G[:, 0].T @ P[:, 0]).reshape(W.shape)
            else:
                dW[layer] = np.einsum("mgo,mgf->gof", G, P, optimize=True).reshape(W.shape)
            db[layer] = gz.sum(axis=(0, 2, 3))
            if layer == 0:
                break
            if geo.groups == 1:
                dP = (G[:, 0] @ W3[0])[:, None, :]
            else:
                dP = np.einsum("mgo,gof->mgf", G, W3, optimize=True)
            a = inputs[layer]
            ga = _patches_adjoint(dP, geo, n, a.shape[2], a.shape[3])
            gz = ga * (pre[layer - 1] > 0)
        return loss, dW, db

    # ------------------------------------------------------------------ rounding problems
    def geometry(self, layer) -> ConvGeometry | None:
        layer = self._check_layer(layer)
        return self.geometries[layer] if layer < self.n_conv else None

    def conv_options(self, layer) -> dict:
        """``stride, padding, dilation, groups`` of a convolution (empty for a dense layer)."""
        geo = self.geometry(layer)
        if geo is None:
            return {}
        return {"stride": geo.stride, "padding": geo.padding, "dilation": geo.dilation, "groups": geo.groups}

    def rows(self, layer) -> np.ndarray:
        """``weights[layer]`` as rows (out, fan_in), the shape grids are fitted on."""
        W = self.weights[self._check_layer(layer)]
        return W.reshape(W.shape[0], -1)


def train_cnn(X, y, seed=0, epochs: int = 40, batch_size: int = 32, lr: float = 3e-3, architecture=None) -> CNN:
    """Train a :class:`CNN` with Adam on shuffled mini-batches; the same arguments give the same
    weights bit for bit.

    Parameters
    ----------
    X : array of shape (N, C, H, W); y : int array of shape (N,)
    seed : int, default=0
        Seeds the initialisation and the shuffles.
    epochs, batch_size, lr : training schedule (Adam betas (0.9, 0.999), eps 1e-8).
    architecture : dict, optional
        Keys of :data:`DIGITS_CNN` (default: that architecture).
    """
    arch = dict(DIGITS_CNN, **(architecture or {}))
    net = CNN.initialize(arch["input_shape"], arch["convs"], arch["pool"], arch["dense"], seed=seed)
    X = net._check_X(X)
    y = net._check_y(y, X.shape[0])
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size", maximum=X.shape[0])
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # small products: one BLAS thread is fastest
        return _train(net, X, y, seed, epochs, batch_size, lr)


def _train(net, X, y, seed, epochs, batch_size, lr) -> CNN:
    rng = np.random.default_rng([int(seed), 1])
    params = [np.array(p) for pair in zip(net.weights, net.biases) for p in pair]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    work = net
    for _ in range(epochs):
        perm = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            _, dW, db = work._gradients(X[idx], y[idx])
            grads = [g for pair in zip(dW, db) for g in pair]
            t += 1
            for j, (p, g) in enumerate(zip(params, grads)):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                p -= lr * (m[j] / (1 - 0.9**t)) / (np.sqrt(v[j] / (1 - 0.999**t)) + 1e-8)
            work = _unchecked(net, params)
    return CNN(params[0::2], params[1::2], net.geometries, net.pool, net.input_shape)


def _unchecked(net: CNN, params) -> CNN:
    """A network sharing ``params`` (no copies, no checks): the training loop's working view."""
    out = object.__new__(CNN)
    out.geometries, out.pool, out.input_shape = net.geometries, net.pool, net.input_shape
    out.weights, out.biases = tuple(params[0::2]), tuple(params[1::2])
    return out


_CNN_CACHE: dict = {}


def digits_cnn(seed: int = 0):
    """The trained digits CNN (:func:`train_cnn`, training seed ``seed``, 40 epochs), with
    its data; trained once per process."""
    if seed not in _CNN_CACHE:
        data = load_digits()
        net = train_cnn(digits_images(data.X_train), data.y_train, seed=seed)
        _CNN_CACHE[seed] = (net, data)
    return _CNN_CACHE[seed]


def cnn_calibration(data, seed: int = 0, n: int = 256):
    """``n`` training images drawn without replacement (seeded), with their labels."""
    idx = np.random.default_rng([seed, 7]).choice(data.X_train.shape[0], n, replace=False)
    return digits_images(data.X_train[idx]), data.y_train[idx]
