import sys

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from reference.digits import load_digits
from reference.network import MLP, kron_hessian, loss_and_gradients, train_mlp


def _random_net(seed, sizes=(5, 4, 3, 3), n=7):
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(o, i)) for i, o in zip(sizes, sizes[1:])]
    bs = [rng.normal(size=o) * 0.5 for o in sizes[1:]]
    X = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, sizes[-1], size=n)
    return MLP(Ws, bs), X, y


def _min_preactivation(net, X):
    return min(float(np.min(np.abs(z))) for z in net.forward(X).pre[:-1]) if net.n_layers > 1 else np.inf


def _fd_grad(f, W, h):
    G = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        G[idx] = (f(W + E) - f(W - E)) / (2 * h)
    return G


@given(st.integers(0, 2**32 - 1))
def test_gradient_equals_central_differences_of_the_loss(seed):
    net, X, y = _random_net(seed)
    h = 1e-6
    assume(_min_preactivation(net, X) >= 1e-3)  # no ReLU kink within reach of the differences
    dW, db = net.gradients(X, y)
    for layer in range(net.n_layers):
        fd_W = _fd_grad(lambda W: net.with_weights(layer, W).loss(X, y), net.weights[layer], h)
        assert np.max(np.abs(fd_W - dW[layer])) <= 1e-5 * max(1.0, np.max(np.abs(dW[layer])))

        def loss_b(b, layer=layer):
            bs = list(net.biases)
            bs[layer] = b
            return MLP(net.weights, bs).loss(X, y)

        fd_b = _fd_grad(loss_b, net.biases[layer], h)
        assert np.max(np.abs(fd_b - db[layer])) <= 1e-5 * max(1.0, np.max(np.abs(db[layer])))


@given(st.integers(0, 2**32 - 1))
@example(2039100)
def test_layer_hessian_equals_central_differences_of_the_gradient(seed):
    """Eq. 16 with the Gauss-Newton output Hessian against differences of backprop (rel. err <= 1e-5)."""
    net, X, y = _random_net(seed)
    h = 1e-5
    assume(_min_preactivation(net, X) >= 1e-2)
    for layer in range(net.n_layers):
        W = net.weights[layer]
        H = net.layer_hessian(X, y, layer)
        H_fd = np.zeros_like(H)
        g_max = 0.0
        for j in range(W.size):
            E = np.zeros(W.size)
            E[j] = h
            gp = net.with_weights(layer, W + E.reshape(W.shape)).layer_gradient(X, y, layer)
            gm = net.with_weights(layer, W - E.reshape(W.shape)).layer_gradient(X, y, layer)
            H_fd[:, j] = ((gp - gm) / (2 * h)).ravel()
            g_max = max(g_max, np.abs(gp).max(), np.abs(gm).max())
        # the differences' own rounding, eps |g| / h an entry: it dominates when H is tiny against the
        # gradient (the randomized profile found |H| = 3.8e-5 with |g| = 4); it stays far below |H|
        rounding = 4 * np.finfo(np.float64).eps * g_max / h * np.sqrt(H.size)
        assume(rounding <= 1e-2 * np.linalg.norm(H))
        assert np.linalg.norm(H_fd - H) <= 1e-5 * np.linalg.norm(H) + rounding


def _complex_step_hessian(net, X, y, layer, h=1e-30):
    """d(grad)/dW by the complex step: exact to machine precision for a real-analytic gradient."""
    W = net.weights[layer]
    H = np.zeros((W.size, W.size))
    for j in range(W.size):
        Ws = [w.astype(complex) for w in net.weights]
        E = np.zeros(W.size)
        E[j] = h
        Ws[layer] = Ws[layer] + 1j * E.reshape(W.shape)
        _, dW, _ = loss_and_gradients(Ws, [b.astype(complex) for b in net.biases], X.astype(complex), y)
        H[:, j] = dW[layer].imag.ravel() / h
    return H


@pytest.mark.parametrize("sizes", [(6, 4), (5, 4, 3, 3)])
@pytest.mark.parametrize("seed", range(4))
def test_kronecker_form_equals_the_full_hessian_exactly(sizes, seed):
    """Eq. 16: every dense layer is linear in its weights, so E[C_n kron x x^T] is the Hessian.

    The oracle is the complex-step derivative of the analytic gradient (no truncation error), so
    the agreement is to rounding (1e-12), not to a finite-difference tolerance. ``sizes=(6, 4)``
    is a single linear layer (softmax regression).
    """
    net, X, y = _random_net(seed, sizes=sizes)
    for layer in range(net.n_layers):
        H = net.layer_hessian(X, y, layer)
        H_cs = _complex_step_hessian(net, X, y, layer)
        assert np.max(np.abs(H - H_cs)) <= 1e-12 * max(1.0, np.max(np.abs(H)))


def test_complex_step_oracle_can_fail():
    """The oracle distinguishes the true Hessian from a plausible wrong one (rows ignored)."""
    net, X, y = _random_net(3, sizes=(6, 4))
    C = net.output_hessians(X, y, 0)
    wrong = kron_hessian(C * np.eye(C.shape[1]), net.layer_inputs(X)[0])  # off-diagonal outputs dropped
    H_cs = _complex_step_hessian(net, X, y, 0)
    assert np.max(np.abs(wrong - H_cs)) > 1e-3 * np.max(np.abs(H_cs))


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_taylor_error_shrinks_like_the_cube_of_the_step(layer):
    """L(W + t D) - L(W) - t g.D - t^2/2 D^T H D = O(t^3): halving t divides the error by ~8."""
    net, X, y = _random_net(11)
    W = net.weights[layer]
    D = np.random.default_rng(5).normal(size=W.shape)
    g = net.layer_gradient(X, y, layer).ravel()
    H = net.layer_hessian(X, y, layer)
    L0 = net.loss(X, y)
    pattern = [z > 0 for z in net.forward(X).pre[:-1]]
    errors = []
    for t in (4e-3, 2e-3, 1e-3):
        moved = net.with_weights(layer, W + t * D)
        assert all(np.array_equal(p, z > 0) for p, z in zip(pattern, moved.forward(X).pre[:-1]))
        d = t * D.ravel()
        errors.append(abs(moved.loss(X, y) - L0 - g @ d - 0.5 * d @ H @ d))
    for big, small in zip(errors, errors[1:]):
        assert 6.0 <= big / small <= 10.0


def test_forward_records_every_layer_input():
    net, X, _ = _random_net(2)
    fw = net.forward(X)
    assert fw.inputs[0] is not X and np.array_equal(fw.inputs[0], X)
    for layer in range(net.n_layers - 1):
        assert np.array_equal(fw.inputs[layer + 1], np.maximum(fw.pre[layer], 0))
        assert np.allclose(fw.pre[layer], fw.inputs[layer] @ net.weights[layer].T + net.biases[layer])
    assert np.array_equal(fw.logits, fw.outputs[-1])


def test_loss_is_the_mean_cross_entropy():
    net, X, y = _random_net(4)
    z = net.logits(X)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert net.loss(X, y) == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-12)


def test_with_weights_leaves_the_original_unchanged():
    net, X, y = _random_net(0)
    before = net.loss(X, y)
    other = net.with_weights(1, np.zeros_like(net.weights[1]))
    assert net.loss(X, y) == before
    assert not np.array_equal(other.weights[1], net.weights[1])


def test_training_is_deterministic_and_reaches_the_documented_accuracy():
    """docs/hessian.md: 16-32-10 on 4x4 digits, seed 0, 150 epochs -> 93.2 % test accuracy."""
    d = load_digits(downsample=True)
    a = train_mlp(d.X_train, d.y_train, [16, 32, 10], seed=0, epochs=150)
    b = train_mlp(d.X_train, d.y_train, [16, 32, 10], seed=0, epochs=150)
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert a.accuracy(d.X_test, d.y_test) >= 0.92


def test_digits_split_and_downsampling():
    full = load_digits(n_test=300, seed=1)
    small = load_digits(n_test=300, seed=1, downsample=True)
    assert full.X_train.shape == (1497, 64) and full.X_test.shape == (300, 64)
    assert small.n_features == 16
    img = full.X_test[0].reshape(8, 8)
    assert small.X_test[0][0] == pytest.approx(img[:2, :2].mean())
    assert 0.0 <= full.X_train.min() and full.X_train.max() <= 1.0
    assert np.array_equal(load_digits(n_test=300, seed=1).y_test, full.y_test)


def test_digits_without_scikit_learn_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        load_digits()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MLP([np.ones((3, 4))], []), "equal length"),
        (lambda: MLP([np.ones((3, 4)), np.ones((2, 2))], [np.zeros(3), np.zeros(2)]), r"weights\[1\] must have 3 inputs"),
        (lambda: MLP([np.ones((3, 4))], [np.zeros(2)]), r"biases\[0\] must have shape \(3\)"),
        (lambda: MLP([np.ones((3, 4))], [np.zeros(3)]).loss(np.ones((2, 5)), np.zeros(2, dtype=int)), r"X must have shape \(N, 4\)"),
        (lambda: MLP([np.ones((3, 4))], [np.zeros(3)]).loss(np.ones((2, 4)), np.array([0, 3])), r"classes in \[0, 3\)"),
        (lambda: MLP([np.ones((3, 4))], [np.zeros(3)]).layer_hessian(np.ones((2, 4)), np.zeros(2, dtype=int), 1), "layer must be"),
        (lambda: load_digits(n_test=0), "n_test must be >= 1"),
    ],
)
def test_bad_input_is_refused_with_a_message(make, match):
    with pytest.raises(ValueError, match=match):
        make()
