"""The SDP bound with triangle inequalities (solvers.sdp_bound) against numpy brute force."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solvers import BQM, solve
from solvers.sdp_bound import SIGNS, certified_bound, homogeneous_form, triangle_bound
from tests.strategies import all_states, qubos


def brute_min(P, q, c):
    V = all_states(P.shape[0]).astype(np.float64)
    return float((np.einsum("ij,jk,ik->i", V, P, V) + V @ q + c).min())


def pm_states(p):
    """All +-1 vectors of length p with x_0 = 1."""
    return np.array([(1.0,) + s for s in itertools.product((-1.0, 1.0), repeat=p - 1)])


@given(qubos(min_n=1, max_n=7, extreme=False))
def test_homogeneous_form_reproduces_every_energy(pqc):
    P, q, c = pqc
    n = P.shape[0]
    C = homogeneous_form(P, q, c)
    X = pm_states(n + 1)
    V = (1 + X[:, 1:]) / 2
    E = np.einsum("ij,jk,ik->i", V, P, V) + V @ q + c
    scale = np.abs(P).sum() + np.abs(q).sum() + abs(c) + 1
    assert np.allclose(np.einsum("ij,jk,ik->i", X, C, X), E, rtol=0, atol=1e-12 * scale)


@given(qubos(min_n=1, max_n=12, extreme=True), st.sampled_from([0, 3, 8]))
def test_bound_never_exceeds_the_brute_force_minimum(pqc, steps):
    P, q, c = pqc
    lb, info = triangle_bound(P, q, c, steps=steps)
    opt = brute_min(P, q, c)
    assert lb <= opt and info["shor"] <= opt
    assert lb >= info["shor"]


@st.composite
def dual_points(draw):
    """A small C of integers, ANY y (not dual feasible in general), cuts and gamma >= 0."""
    p = draw(st.integers(2, 7))
    A = draw(hnp.arrays(np.int64, (p, p), elements=st.integers(-3, 3))).astype(float)
    C = (A + A.T) / 2
    y = draw(hnp.arrays(np.float64, p, elements=st.floats(-5, 5, allow_subnormal=False)))
    m = draw(st.integers(0, 6)) if p >= 3 else 0
    cuts = np.zeros((0, 4), dtype=np.int64)
    if m:
        trip = [sorted(draw(st.lists(st.integers(0, p - 1), min_size=3, max_size=3, unique=True)))
                for _ in range(m)]
        types = draw(st.lists(st.integers(0, 3), min_size=m, max_size=m))
        cuts = np.array([t + [k] for t, k in zip(trip, types)], dtype=np.int64)
    gamma = draw(hnp.arrays(np.float64, m, elements=st.floats(0, 3, allow_subnormal=False)))
    return C, y, cuts, gamma


@given(dual_points())
def test_certificate_holds_at_any_dual_point(point):
    """(S3) from arbitrary multipliers: the minimum-eigenvalue term makes any y a bound."""
    C, y, cuts, gamma = point
    X = pm_states(C.shape[0])
    assert certified_bound(C, y, cuts, gamma) <= np.einsum("ij,jk,ik->i", X, C, X).min()


@given(st.integers(2, 9), st.integers(0, 2**9 - 1), st.sampled_from([1.0, 3.0, 1e-3, 7e5]))
def test_certificate_tight_within_its_margin(p, bits, scale):
    """``C = -a a^T`` with ``y = p`` is exactly tight (``lambda_min(M) = 0``, optimum
    ``-p^2``): the rounding margin must keep the computed bound below it."""
    a = np.where((bits >> np.arange(p)) & 1, 1.0, -1.0)
    a[0] = 1.0
    C = -scale * np.outer(a, a)
    lb = certified_bound(C, np.full(p, scale * p), np.zeros((0, 4), dtype=np.int64), np.zeros(0))
    assert lb <= -scale * p * p


def test_triangles_raise_the_bound_above_shor():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(10, 10))
    P, q = B @ B.T, rng.normal(size=10) * 3
    lb, info = triangle_bound(P, q, 0.0, steps=20)
    opt = brute_min(P, q, 0.0)
    assert info["shor"] < lb <= opt
    assert (lb - info["shor"]) > 0.3 * (opt - info["shor"])


def test_signs_are_the_four_triangle_patterns():
    X = pm_states(3)
    vals = SIGNS @ np.stack([X[:, 0] * X[:, 1], X[:, 0] * X[:, 2], X[:, 1] * X[:, 2]]) + 1
    assert vals.min() == 0 and np.all(vals >= 0)


def test_tree_root_bound_uses_it():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(10, 10))
    m = BQM(B @ B.T, rng.normal(size=10) * 3)
    opt = brute_min(m.P, m.q, m.c)
    plain = solve(m, "tree", max_nodes=1)
    strong = solve(m, "tree", max_nodes=1, triangle_steps=20)
    assert plain.lower_bound < strong.lower_bound <= opt
    assert strong.info["root_bound"] > plain.info["root_bound"]


@pytest.mark.parametrize("kw, match", [({"steps": -1}, "steps"), ({"separate_every": 0}, "separate_every"),
                                       ({"steps": 2.5}, "steps")])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        triangle_bound(np.eye(3), np.zeros(3), 0.0, **kw)


@pytest.mark.parametrize("P, q, c, match", [(np.ones((2, 3)), np.zeros(2), 0.0, "P must be square"),
                                            (np.eye(2), np.zeros(3), 0.0, "q must"),
                                            (np.array([[0, 1], [0, 0.0]]), np.zeros(2), 0.0, "symmetric"),
                                            (np.eye(2), np.array([np.nan, 0]), 0.0, "finite")])
def test_bad_models(P, q, c, match):
    with pytest.raises(ValueError, match=match):
        triangle_bound(P, q, c)


@given(qubos(min_n=1, max_n=10, extreme=True))
@settings(max_examples=30)
def test_tree_with_the_triangle_root_bound_stays_exact(pqc):
    """The root bound may stop the search early: the state it proves must be a true minimiser."""
    P, q, c = pqc
    res = solve(BQM(P, q, c), "tree", triangle_steps=4)
    opt = brute_min(P, q, c)
    scale = np.abs(P).sum() + np.abs(q).sum() + abs(c)  # both energies are rounded sums
    assert res.optimal and res.lower_bound <= opt + 1e-12 * scale
    assert abs(res.energy - opt) <= 1e-12 * scale
