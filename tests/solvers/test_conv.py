"""Convolution and token layers against an independent direct convolution written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from reference.grid import fit_grid
from solvers import ConvProblem, LayerProblem


def direct_conv(X, W, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation by loops over output positions and the kernel (no im2col, no shared code)."""
    N, C_in, H, Wd = X.shape
    C_out, cg, kh, kw = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (Wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = C_out // groups
    Y = np.zeros((N, C_out, Ho, Wo))
    for o in range(C_out):
        g = o // og
        for i in range(Ho):
            for j in range(Wo):
                acc = np.zeros(N)
                for c in range(cg):
                    for a in range(kh):
                        for b in range(kw):
                            r = i * sh + a * dh - ph
                            s = j * sw + b * dw - pw
                            if 0 <= r < H and 0 <= s < Wd:
                                acc += W[o, c, a, b] * X[:, g * cg + c, r, s]
                Y[:, o, i, j] = acc
    return Y


def direct_loss(W, X, W_hat, **geo):
    R = direct_conv(X, W - W_hat, **geo)
    return float(np.sum(R * R) / (R.shape[0] * R.shape[2] * R.shape[3]))


def pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


CASES = [
    dict(c_in=2, c_out=3, k=(3, 3), hw=(6, 5), stride=2, padding=0, dilation=1, groups=1),
    dict(c_in=2, c_out=2, k=(3, 2), hw=(5, 5), stride=1, padding=(1, 2), dilation=1, groups=1),
    dict(c_in=3, c_out=2, k=(2, 2), hw=(7, 6), stride=(1, 2), padding=1, dilation=2, groups=1),
    dict(c_in=4, c_out=6, k=(2, 2), hw=(5, 4), stride=1, padding=1, dilation=1, groups=2),
    dict(c_in=3, c_out=3, k=(3, 3), hw=(5, 5), stride=1, padding=1, dilation=1, groups=3),  # depthwise
    dict(c_in=2, c_out=4, k=(3, 3), hw=(4, 4), stride=2, padding=1, dilation=(2, 1), groups=2),
]


def build(case, seed=0, n=3, bits=3):
    rng = np.random.default_rng(seed)
    cg = case["c_in"] // case["groups"]
    W = rng.normal(size=(case["c_out"], cg, *case["k"]))
    X = rng.normal(size=(n, case["c_in"], *case["hw"]))
    grid = fit_grid(W.reshape(case["c_out"], -1), bits=bits)
    geo = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    return W, X, grid, geo


def _direct_geo(geo):
    return dict(stride=pair(geo["stride"]), padding=pair(geo["padding"]), dilation=pair(geo["dilation"]),
                groups=geo["groups"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"s{c['stride']}p{c['padding']}d{c['dilation']}g{c['groups']}")
def test_energy_equals_direct_convolution(case):
    W, X, grid, geo = build(case)
    prob = ConvProblem(W, grid, X, **geo)
    rng = np.random.default_rng(1)
    for _ in range(4):
        v = (rng.random(prob.shape) < 0.5) * prob.movable
        W_hat4 = prob.w_hat_4d(v)
        want = direct_loss(W, X, W_hat4, **_direct_geo(geo))
        assert prob.loss(v) == pytest.approx(want, rel=1e-10, abs=1e-12)
        # the per-row QUBOs give the same energy
        e = sum(prob.row_bqm(k).energy(v[k, prob.free[k]]) for k in range(prob.n_rows))
        assert e == pytest.approx(want, rel=1e-9, abs=1e-12)
    from reference.conv import conv2d
    np.testing.assert_allclose(conv2d(X, W, **geo), direct_conv(X, W, **_direct_geo(geo)), rtol=1e-12, atol=1e-12)


def test_depthwise_rows_use_their_own_channel():
    case = CASES[4]
    W, X, grid, geo = build(case)
    prob = ConvProblem(W, grid, X, **geo)
    for k in range(3):
        P = []
        Xp = np.pad(X[:, k], ((0, 0), (1, 1), (1, 1)))
        for n, i, j in itertools.product(range(X.shape[0]), range(5), range(5)):
            P.append(Xp[n, i:i + 3, j:j + 3].ravel())
        P = np.array(P)
        np.testing.assert_allclose(prob.row_gram(k), P.T @ P / P.shape[0], rtol=1e-12, atol=1e-14)


def test_one_by_one_conv_is_the_linear_layer():
    rng = np.random.default_rng(3)
    W = rng.normal(size=(4, 5, 1, 1))
    X = rng.normal(size=(6, 5, 3, 2))
    grid = fit_grid(W.reshape(4, 5), bits=4)
    conv = ConvProblem(W, grid, X)
    lin = LayerProblem(W.reshape(4, 5), grid, X=X.transpose(0, 2, 3, 1).reshape(-1, 5))
    np.testing.assert_allclose(conv.G, lin.G, rtol=1e-12, atol=1e-14)
    v = (rng.random((4, 5)) < 0.5) * lin.movable
    assert conv.loss(v) == pytest.approx(lin.loss(v), rel=1e-12)
    for m in ("nearest", "exhaustive", "adaround"):
        assert solvers.solve(conv, m).energy == pytest.approx(solvers.solve(lin, m).energy, rel=1e-9, abs=1e-14)


def test_token_inputs_equal_the_flattened_layer():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 6))
    X = rng.normal(size=(5, 7, 6))
    grid = fit_grid(W, bits=3)
    tok = LayerProblem(W, grid, X=X)
    flat = LayerProblem(W, grid, X=X.reshape(35, 6))
    np.testing.assert_array_equal(tok.G, flat.G)
    v = (rng.random((3, 6)) < 0.5) * flat.movable
    assert tok.loss(v) == flat.loss(v)
    with pytest.raises(ValueError, match="X must have shape"):
        LayerProblem(W, grid, X=rng.normal(size=(5, 7, 5)))
    with pytest.raises(ValueError, match="X must have shape"):
        LayerProblem(W, grid, X=rng.normal(size=(2, 5, 7, 6)))


@pytest.mark.parametrize("case", [CASES[0], CASES[4]])
def test_exhaustive_equals_brute_force_over_the_direct_convolution(case):
    case = dict(case, c_out=2 if case["groups"] == 1 else case["c_out"])
    if case["groups"] == 1:
        case = dict(case, c_in=1, k=(2, 3))
    W, X, grid, geo = build(case, seed=5, bits=2)
    prob = ConvProblem(W, grid, X, **geo)
    best = solvers.solve(prob, "exhaustive")
    assert best.optimal
    # brute force: every up/down choice of every row, each judged by the direct convolution
    dgeo = _direct_geo(geo)
    total = 0.0
    for k in range(prob.n_rows):
        idx = prob.free[k]
        best_k = np.inf
        for bitsv in itertools.product((0, 1), repeat=idx.size):
            v = np.zeros(prob.shape)
            v[k, idx] = bitsv
            Wh = prob.w_hat_4d(v)
            # loss of row k only: the other channels' errors are those of W_hat, zero out theirs
            Wk = W.copy()
            mask = np.zeros(prob.n_rows, bool)
            mask[k] = True
            Wh[~mask] = W[~mask]
            best_k = min(best_k, direct_loss(Wk, X, Wh, **dgeo))
        total += best_k
    assert best.energy == pytest.approx(total, rel=1e-9, abs=1e-12)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    # input sizes from "kernel larger than the unpadded input" (padding makes it fit) up to a few outputs
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), dh * (kh - 1) + 1 + 2 * sh))
    Wd = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), dw * (kw - 1) + 1 + 2 * sw))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(c_in=groups * cg, c_out=groups * og, k=(kh, kw), hw=(H, Wd), stride=(sh, sw), padding=(ph, pw),
                dilation=(dh, dw), groups=groups), seed


@settings(deadline=None, max_examples=40)
@given(conv_cases(), st.integers(2, 4))
def test_property_energy_equals_direct_convolution(case_seed, bits):
    case, seed = case_seed
    W, X, grid, geo = build(case, seed=seed, n=2, bits=bits)
    prob = ConvProblem(W, grid, X, **geo)
    rng = np.random.default_rng(seed)
    v = (rng.random(prob.shape) < 0.5) * prob.movable
    want = direct_loss(W, X, prob.w_hat_4d(v), **_direct_geo(geo))
    assert prob.loss(v) == pytest.approx(want, rel=1e-9, abs=1e-12)
    bqm_e = sum(prob.row_bqm(k).energy(v[k, prob.free[k]]) for k in range(prob.n_rows))
    assert bqm_e == pytest.approx(want, rel=1e-8, abs=1e-10)
    # the tree's reported energy is the direct convolution's loss of its rounding, and the state
    # drawn here does not beat it
    res = solvers.solve(prob, "tree")
    got = direct_loss(W, X, prob.w_hat_4d(res.x), **_direct_geo(geo))
    assert res.energy == pytest.approx(got, rel=1e-9, abs=1e-12)
    assert got <= want + 1e-9 * max(1.0, abs(want))


def test_chunked_gram_equals_one_chunk(monkeypatch):
    import reference.conv as rc

    W, X, grid, geo = build(CASES[3], seed=7, n=5)
    full = ConvProblem(W, grid, X, **geo).grams
    monkeypatch.setattr(rc, "CHUNK_ELEMENTS", 1)  # one sample per chunk
    np.testing.assert_allclose(ConvProblem(W, grid, X, **geo).grams, full, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw, msg", [
    (dict(groups=4), "groups must divide C_in"),
    (dict(groups=0), "groups must be >= 1"),
    (dict(padding=-1), "padding must be >= 0"),
    (dict(stride=0), "stride must be >= 1"),
    (dict(dilation=(1, 2, 3)), "dilation must be an int or two ints"),
    (dict(stride=1.5), "stride must be an int"),
])
def test_bad_geometry_is_refused(kw, msg):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 6, 3, 3))
    X = rng.normal(size=(2, 6, 5, 5))
    grid = fit_grid(W.reshape(2, -1), bits=4)
    with pytest.raises(ValueError, match=msg):
        ConvProblem(W, grid, X, **kw)


def test_shape_mismatch_and_empty_output_are_refused():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 3, 3, 3))
    grid = fit_grid(W.reshape(2, -1), bits=4)
    with pytest.raises(ValueError, match="input channels"):
        ConvProblem(W, grid, rng.normal(size=(2, 4, 5, 5)))
    with pytest.raises(ValueError, match="output map is empty"):
        ConvProblem(W, grid, rng.normal(size=(2, 3, 2, 5)))
    with pytest.raises(ValueError, match="X must be 4-D"):
        ConvProblem(W, grid, rng.normal(size=(2, 3, 5)))
    with pytest.raises(ValueError, match="W must be 4-D"):
        ConvProblem(W[0], grid, rng.normal(size=(2, 3, 5, 5)))


def test_grouped_relaxation_equals_one_layer_per_group():
    """The relaxation on a grouped conv (3-D G) equals, row for row, the relaxation on each group
    posed as its own layer from that group's Gram matrix (rows are independent in gram mode)."""
    from reference.grid import Grid

    W, X, grid, geo = build(CASES[3], seed=11, n=4)
    prob = ConvProblem(W, grid, X, **geo)
    r = solvers.solve(prob, "adaround", iterations=300)
    og = prob.geometry.c_out_group
    s, z = grid.per_row(prob.n_rows)
    for g in range(prob.geometry.groups):
        rows = slice(g * og, (g + 1) * og)
        sub = LayerProblem(prob.W[rows], Grid(s[rows, 0], grid.qmin, grid.qmax, z[rows, 0]), G=prob.grams[g])
        rg = solvers.solve(sub, "adaround", iterations=300)
        np.testing.assert_array_equal(r.x[rows], rg.x)


def test_direct_convolution_oracle_agrees_with_scipy():
    """The loops above are PyTorch's cross-correlation: check them against scipy.signal once,
    with padding (explicit zeros), stride (subsampling) and dilation (a kernel with zeros)."""
    from scipy.signal import correlate2d

    rng = np.random.default_rng(12)
    X, W = rng.normal(size=(2, 2, 7, 6)), rng.normal(size=(3, 2, 2, 3))
    Wd = np.zeros((3, 2, 3, 5))
    Wd[:, :, ::2, ::2] = W  # dilation 2 as a kernel with holes
    Xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (2, 2)))
    want = np.array([[sum(correlate2d(Xp[n, c], Wd[o, c], mode="valid") for c in range(2))[::2, ::1]
                      for o in range(3)] for n in range(2)])
    got = direct_conv(X, W, stride=(2, 1), padding=(1, 2), dilation=(2, 2))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv_inputs_whose_gram_underflows_or_overflows_are_refused():
    """The conv layer runs the same range checks as the linear layer on its inputs (it keeps no X)."""
    from reference.grid import fit_grid
    from solvers import ConvProblem

    rng = np.random.default_rng(0)
    W = rng.standard_normal((2, 1, 2, 2))
    g = fit_grid(W.reshape(2, -1), bits=3)
    with pytest.raises(ValueError, match="underflows"):
        ConvProblem(W, g, rng.standard_normal((2, 1, 4, 4)) * 1e-170)
    with pytest.raises(ValueError, match="overflows"):
        ConvProblem(W, g, rng.standard_normal((2, 1, 4, 4)) * 1e200)
