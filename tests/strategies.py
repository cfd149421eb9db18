"""Hypothesis strategies shared by the tests: small layers, grids and BQMs."""

import numpy as np
from hypothesis import strategies as st

from reference import Grid, fit_grid


@st.composite
def small_layers(draw, max_out=3, max_in=6, allow_clipping=True):
    """``(W, X, grid)`` with per-row or per-tensor scales, clipping on some weights, any N >= 1."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = draw(st.integers(1, max_out))
    fan_in = draw(st.integers(1, max_in))
    n = draw(st.integers(1, 3 * fan_in))
    W = rng.normal(size=(out, fan_in)) * draw(st.sampled_from([0.01, 1.0, 30.0]))
    X = rng.normal(size=(n, fan_in)) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    bits = draw(st.integers(2, 5))
    per_row = draw(st.booleans())
    symmetric = draw(st.booleans())
    grid = fit_grid(W, bits=bits, per_row=per_row, symmetric=symmetric)
    if allow_clipping and draw(st.booleans()):
        # shrink the scale so that the largest weights fall off the grid (delta = 0 there)
        grid = Grid(grid.scale * draw(st.sampled_from([0.3, 0.6])), grid.qmin, grid.qmax, grid.zero_point)
    return W, X, grid


@st.composite
def small_bqms(draw, min_n=0, max_n=8):
    """``(P, q, c)`` with symmetric P of mixed scale, any sign."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(min_n, max_n))
    A = rng.normal(size=(n, n)) * draw(st.sampled_from([0.001, 1.0, 100.0]))
    P = (A + A.T) / 2
    q = rng.normal(size=n) * draw(st.sampled_from([0.01, 1.0, 10.0]))
    c = float(rng.normal())
    return P, q, c


def all_states(n):
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
