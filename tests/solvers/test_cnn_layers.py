"""A layer of the numpy CNN posed as a rounding problem (:func:`solvers.cnn_layer_problem`): its
loss is Eq. 20 on the inputs the network computes, checked against direct convolution loops."""

from __future__ import annotations

import numpy as np
import pytest

from reference.grid import fit_grid
from solvers import ConvProblem, LayerProblem, cnn_layer_problem
from tests.reference.test_cnn import _net
from tests.solvers.test_conv import direct_loss


def test_layer_problems_are_eq20_on_the_layer_inputs():
    net = _net(5)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4, 2, 6, 6))
    inputs = net.layer_inputs(X)
    for layer in range(net.n_layers):
        grid = fit_grid(net.rows(layer), bits=3)
        prob = cnn_layer_problem(net, layer, X, grid)
        v = (rng.random(prob.shape) < 0.5) * prob.movable
        W = np.asarray(net.weights[layer])
        W_hat = prob.w_hat(v).reshape(W.shape)
        if layer < net.n_conv:
            assert isinstance(prob, ConvProblem)
            g = net.geometries[layer]
            want = direct_loss(W, inputs[layer], W_hat, stride=g.stride, padding=g.padding, dilation=g.dilation,
                               groups=g.groups)
        else:
            assert type(prob) is LayerProblem
            R = inputs[layer] @ (W - W_hat).T
            want = float(np.sum(R * R) / R.shape[0])
        assert prob.loss(v) == pytest.approx(want, rel=1e-10, abs=1e-14)
        # the quantized network uses exactly these weights
        assert np.array_equal(net.with_weights(layer, prob.w_hat(v)).weights[layer], W_hat)


def test_a_layer_out_of_range_is_refused_by_name():
    net = _net(5)
    with pytest.raises(ValueError, match="layer"):
        cnn_layer_problem(net, net.n_layers, np.zeros((1, 2, 6, 6)), fit_grid(net.rows(0), bits=3))
