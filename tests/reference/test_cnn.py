"""The numpy CNN: gradients against finite differences, the forward against direct loops,
deterministic training (its layers as rounding problems: tests/solvers/test_cnn_layers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from reference.cnn import CNN, ConvSpec, digits_images, train_cnn
from tests.solvers.test_conv import direct_conv

ARCH = dict(input_shape=(2, 6, 6), convs=(ConvSpec(3), ConvSpec(4, stride=2, padding=1),
                                          ConvSpec(4, kernel=2, padding=1, groups=2)), pool=2, dense=(5, 3))


def _net(seed=1):
    return CNN.initialize(ARCH["input_shape"], ARCH["convs"], ARCH["pool"], ARCH["dense"], seed=seed)


def _biased(net, seed=2):
    rng = np.random.default_rng(seed)
    return CNN(net.weights, [rng.normal(size=b.shape) * 0.1 for b in net.biases], net.geometries, net.pool,
               net.input_shape)


def test_gradients_equal_central_finite_differences():
    net = _biased(_net())
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 2, 6, 6)), rng.integers(0, 3, 5)
    dW, db = net.gradients(X, y)
    h = 1e-6
    for layer in range(net.n_layers):
        W = np.array(net.weights[layer])
        fd = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            Wp, Wm = W.copy(), W.copy()
            Wp[idx] += h
            Wm[idx] -= h
            fd[idx] = (net.with_weights(layer, Wp).loss(X, y) - net.with_weights(layer, Wm).loss(X, y)) / (2 * h)
        np.testing.assert_allclose(dW[layer], fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())
        b = np.array(net.biases[layer])
        fdb = np.zeros_like(b)
        for i in range(b.size):
            bp, bm = list(net.biases), list(net.biases)
            bp[layer] = b + h * (np.arange(b.size) == i)
            bm[layer] = b - h * (np.arange(b.size) == i)
            lp = CNN(net.weights, bp, net.geometries, net.pool, net.input_shape).loss(X, y)
            lm = CNN(net.weights, bm, net.geometries, net.pool, net.input_shape).loss(X, y)
            fdb[i] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(db[layer], fdb, rtol=1e-5, atol=1e-8 * max(1e-3, np.abs(fdb).max()))


def test_forward_equals_direct_convolution_loops():
    net = _biased(_net(3))
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, 2, 6, 6))
    a = X
    for layer in range(net.n_conv):
        g = net.geometries[layer]
        z = direct_conv(a, np.asarray(net.weights[layer]), g.stride, g.padding, g.dilation, g.groups)
        a = np.maximum(z + np.asarray(net.biases[layer])[None, :, None, None], 0)
        np.testing.assert_allclose(net.layer_inputs(X)[layer + 1] if layer + 1 < net.n_conv else a, a, rtol=1e-12,
                                   atol=1e-12)
    n, C, H, W = a.shape
    pooled = np.array([[[[a[i, c, 2 * r:2 * r + 2, 2 * s:2 * s + 2].mean() for s in range(W // 2)]
                         for r in range(H // 2)] for c in range(C)] for i in range(n)]).reshape(n, -1)
    np.testing.assert_allclose(net.layer_inputs(X)[net.n_conv], pooled, rtol=1e-12, atol=1e-12)
    h = np.maximum(pooled @ np.asarray(net.weights[3]).T + net.biases[3], 0)
    np.testing.assert_allclose(net.logits(X), h @ np.asarray(net.weights[4]).T + net.biases[4], rtol=1e-12, atol=1e-12)


def test_training_is_deterministic_and_learns():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 2, 6, 6))
    y = (X[:, 0, :3].sum(axis=(1, 2)) > 0).astype(np.int64)
    a = train_cnn(X, y, seed=3, epochs=6, batch_size=16, architecture=ARCH)
    b = train_cnn(X, y, seed=3, epochs=6, batch_size=16, architecture=ARCH)
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        assert np.array_equal(wa, wb)
    c = train_cnn(X, y, seed=4, epochs=6, batch_size=16, architecture=ARCH)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert a.loss(X, y) < _net(3).loss(X, y)


def test_bad_input_is_refused():
    net = _net()
    with pytest.raises(ValueError, match=r"X must have shape \(N >= 1, 2, 6, 6\)"):
        net.logits(np.zeros((2, 1, 6, 6)))
    with pytest.raises(ValueError, match="y must hold classes"):
        net.loss(np.zeros((2, 2, 6, 6)), np.array([0, 3]))
    with pytest.raises(ValueError, match="layer"):
        net.with_weights(5, np.zeros(3))
    with pytest.raises(ValueError, match="X must have 64 columns"):
        digits_images(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="pool must divide"):
        CNN.initialize((1, 5, 5), (ConvSpec(2),), 2, (3,))
