import numpy as np
import pytest
from hypothesis import given

from reference import gram, layer_loss, layer_loss_gram
from tests.strategies import small_layers


@given(small_layers())
def test_sample_form_equals_gram_form(layer):
    W, X, _ = layer
    rng = np.random.default_rng(0)
    W_hat = W + rng.normal(size=W.shape) * 0.1
    a = layer_loss(W, X, W_hat)
    b = layer_loss_gram(W, gram(X), W_hat)
    assert a == pytest.approx(b, rel=1e-10, abs=1e-300)


def test_loss_is_mean_over_samples_of_squared_output_error():
    W = np.array([[1.0, 2.0]])
    W_hat = np.array([[0.0, 2.0]])
    X = np.array([[1.0, 0.0], [3.0, 5.0]])  # output errors 1 and 3 -> (1 + 9) / 2
    assert layer_loss(W, X, W_hat) == 5.0


@pytest.mark.parametrize(
    "W, X, W_hat, match",
    [
        (np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 3)), "W has 3 inputs"),
        (np.ones((2, 3)), np.ones((4, 3)), np.ones((3, 2)), r"W_hat must have shape \(2, 3\)"),
        (np.ones((2, 3)), np.full((4, 3), np.nan), np.ones((2, 3)), "X must be finite"),
        (np.ones(3), np.ones((4, 3)), np.ones((2, 3)), "W must be 2-D"),
        (np.ones((2, 3)), np.ones((0, 3)), np.ones((2, 3)), "at least one sample"),
    ],
)
def test_bad_shapes_and_values_are_refused(W, X, W_hat, match):
    with pytest.raises(ValueError, match=match):
        layer_loss(W, X, W_hat)
