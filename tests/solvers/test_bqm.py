import dimod
import numpy as np
import pytest
from hypothesis import given

from solvers import BQM
from tests.strategies import all_states, small_bqms


def _naive(P, q, c, v):
    n = len(v)
    return sum(P[i, j] * v[i] * v[j] for i in range(n) for j in range(n)) + sum(q[i] * v[i] for i in range(n)) + c


@given(small_bqms(max_n=6))
def test_batched_energies_equal_the_formula(pqc):
    P, q, c = pqc
    m = BQM(P, q, c)
    V = all_states(m.n)
    expected = [_naive(P, q, c, v) for v in V]
    np.testing.assert_allclose(m.energies(V), expected, rtol=1e-12, atol=1e-9)


@given(small_bqms(max_n=7))
def test_dimod_round_trip_preserves_every_energy(pqc):
    m = BQM(*pqc)
    d = m.to_dimod()
    V = all_states(m.n)
    want = m.energies(V)
    np.testing.assert_allclose(d.energies((V, list(range(m.n)))), want, rtol=1e-12, atol=1e-9)
    back = BQM.from_dimod(d)
    np.testing.assert_allclose(back.energies(V), want, rtol=1e-12, atol=1e-9)


@given(small_bqms(max_n=7))
def test_qubo_dict_round_trip_preserves_every_energy(pqc):
    m = BQM(*pqc)
    Q, offset = m.to_qubo()
    assert all(i <= j for i, j in Q)
    back = BQM.from_qubo(Q, offset, n=m.n)
    V = all_states(m.n)
    np.testing.assert_allclose(back.energies(V), m.energies(V), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(BQM.from_qubo(m.qubo_matrix(), m.c).energies(V), m.energies(V), rtol=1e-12, atol=1e-9)


@given(small_bqms(min_n=1, max_n=7))
def test_continuous_extension_agrees_at_vertices_only_through_its_formula(pqc):
    m = BQM(*pqc)
    V = all_states(m.n)
    np.testing.assert_allclose(m.continuous(V.astype(float)), m.energies(V), rtol=1e-12, atol=1e-9)
    v = np.full(m.n, 0.5)
    assert m.continuous(v) == pytest.approx(v @ m.P @ v + m.q @ v + m.c, rel=1e-12, abs=1e-12)


def test_gradient_of_continuous_extension_matches_finite_differences():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    m = BQM(A + A.T, rng.normal(size=5), 0.3)
    v = rng.uniform(0.2, 0.8, size=5)
    h = 1e-6
    fd = [(m.continuous(v + h * e) - m.continuous(v - h * e)) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(m.gradient(v), fd, rtol=1e-7)


@given(small_bqms(min_n=2, max_n=7))
def test_fixing_variables_reduces_without_changing_energies(pqc):
    m = BQM(*pqc)
    fixed = {0: 1, m.n - 1: 0}
    red, free = m.fix(fixed)
    for v in all_states(red.n):
        full = np.zeros(m.n, dtype=np.int8)
        full[free] = v
        full[0], full[m.n - 1] = 1, 0
        assert red.energy(v) == pytest.approx(m.energy(full), rel=1e-12, abs=1e-9)


def test_spin_models_are_converted():
    spin = dimod.BinaryQuadraticModel({"a": 1.0, "b": -0.5}, {("a", "b"): 2.0}, 0.25, dimod.SPIN)
    m = BQM.from_dimod(spin)
    assert m.labels == ["a", "b"]
    for v in all_states(2):
        s = {"a": 2 * v[0] - 1, "b": 2 * v[1] - 1}
        assert m.energy(v) == pytest.approx(spin.energy(s))


def test_psd_detection():
    assert BQM(np.array([[2.0, 1.0], [1.0, 2.0]])).is_psd()
    assert not BQM(np.array([[1.0, 2.0], [2.0, 1.0]])).is_psd()
    X = np.random.default_rng(0).normal(size=(3, 6))
    assert BQM(X.T @ X).is_psd()  # singular, still PSD


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.array([[0.0, 1.0], [0.0, 0.0]]),), "P must be symmetric"),
        ((np.ones((2, 3)),), "P must be square"),
        ((np.eye(2), np.ones(3)), r"q must have shape \(2\)"),
        ((np.eye(2) * np.nan,), "P must be finite"),
        ((np.eye(2), None, np.inf), "c must be finite"),
    ],
)
def test_bad_models_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        BQM(*args)


def test_energies_refuse_non_binary_states():
    m = BQM(np.eye(3))
    with pytest.raises(ValueError, match="only 0 and 1"):
        m.energies(np.full((1, 3), 0.5))
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(m, 3\)"):
        m.energies(np.zeros(4))
