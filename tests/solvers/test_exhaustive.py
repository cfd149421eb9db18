import dimod
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers import BQM, solve
from solvers.exhaustive import HARD_MAX_VARS, MAX_VARS, exhaustive_minimum
from tests.strategies import all_states, qubos, small_bqms


def _generated_bqms():
    """210 random BQMs from dimod's own generators, n = 1..14, three families."""
    out = []
    for i in range(70):
        n = 1 + i % 14
        out.append(dimod.generators.gnp_random_bqm(n, 0.6, dimod.BINARY, random_state=i))
        out.append(dimod.generators.uniform(n, dimod.BINARY, low=-2.0, high=1.5, seed=1000 + i))
        out.append(dimod.generators.randint(n, dimod.SPIN, low=-3, high=3, seed=2000 + i))
    return out


def test_exhaustive_equals_dimod_exact_solver_on_generated_bqms():
    bqms = _generated_bqms()
    assert len(bqms) >= 200
    exact = dimod.ExactSolver()
    for bqm in bqms:
        ss = exact.sample(bqm)
        r = solve(bqm, "exhaustive")
        assert r.optimal and r.status == "optimal"
        assert r.energy == pytest.approx(ss.first.energy, rel=1e-12, abs=1e-12)
        # the state is optimal up to ties: dimod itself agrees on its energy
        labels = list(bqm.variables)
        state = {v: int(x) for v, x in zip(labels, r.x)}
        if bqm.vartype is dimod.SPIN:
            state = {v: 2 * x - 1 for v, x in state.items()}
        assert bqm.energy(state) == pytest.approx(ss.first.energy, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n", [17, 19, 21])
@pytest.mark.parametrize("threads", [1, 2])
def test_blocked_enumeration_with_high_bits_equals_dimod(n, threads):
    bqm = dimod.generators.gnp_random_bqm(n, 0.5, dimod.BINARY, random_state=n)
    m = BQM.from_dimod(bqm)
    best = exhaustive_minimum(m.P, m.q, m.c, threads=threads)
    x, e = best.x, best.energy
    ref = dimod.ExactSolver().sample(bqm).first.energy
    assert e == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert m.energy(x) == pytest.approx(ref, rel=1e-12, abs=1e-12)


@given(st.one_of(small_bqms(max_n=9), qubos(min_n=0, max_n=9)))
def test_exhaustive_equals_brute_force(pqc):
    m = BQM(*pqc)
    r = solve(m, "exhaustive")
    P, q, c = pqc
    V = all_states(m.n).astype(np.float64)
    E = np.einsum("si,ij,sj->s", V, P, V) + V @ q + c  # x^T P x + q^T x + c, from the arrays drawn
    tol = 1e-12 * (np.abs(P).sum() + np.abs(q).sum() + abs(c)) + 1e-300
    assert abs(r.energy - E.min()) <= tol
    # the state returned attains that minimum (with ties, any minimiser will do)
    x = np.asarray(r.x, dtype=np.float64)
    assert abs(x @ P @ x + q @ x + c - E.min()) <= tol


@settings(max_examples=10)
@given(st.integers(0, 2**31 - 1))
def test_thread_count_does_not_change_the_answer(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(20, 20))
    m = BQM(A + A.T, rng.normal(size=20))
    r1 = exhaustive_minimum(m.P, m.q, m.c, threads=1)
    r2 = exhaustive_minimum(m.P, m.q, m.c, threads=2)
    assert r1.energy == r2.energy and np.array_equal(r1.x, r2.x)


def test_size_limit_is_refused_before_any_work():
    big = BQM(np.zeros((MAX_VARS + 1, MAX_VARS + 1)))
    with pytest.raises(ValueError, match=rf"{MAX_VARS + 1} variables, above the limit max_vars == {MAX_VARS}"):
        solve(big, "exhaustive")
    with pytest.raises(ValueError, match=rf"max_vars must be an integer >= 0 and <= {HARD_MAX_VARS}, found {HARD_MAX_VARS + 1}"):
        solve(big, "exhaustive", max_vars=HARD_MAX_VARS + 1)
    with pytest.raises(ValueError, match="above the limit max_vars == 3"):
        solve(BQM(np.zeros((4, 4))), "exhaustive", max_vars=3)


def test_empty_model_is_its_offset():
    r = solve(BQM(np.zeros((0, 0)), c=2.5), "exhaustive")
    assert r.energy == 2.5 and r.optimal and r.x.shape == (0,)


def _planted(n: int, t_high: int, seed: int):
    """``E(v) = (v - z)^T A (v - z) - 3`` with ``A`` positive definite (``lambda_min >= 1/2``): its
    unique minimiser is the planted ``z`` (energy -3, every other state >= -2.5). ``z``'s last
    ``n - 18`` bits (the enumeration's high group) spell ``t_high`` in binary; the rest are random."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(2 * n, n))
    A = B.T @ B / n + 0.5 * np.eye(n)
    z = rng.integers(0, 2, size=n).astype(float)
    z[18:] = (t_high >> np.arange(n - 18)) & 1
    return A, -2 * A @ z, float(z @ A @ z) - 3.0, z


@pytest.mark.parametrize("threads, t_high", [(1, 256), (2, 511), (2, 512), (2, 1023)])
def test_multi_batch_enumeration_finds_a_planted_optimum_at_28_variables(threads, t_high):
    """n = 28: 2^10 high states in batches of 256, on one thread (4 batches) or two (2 each);
    the optimum is planted at a batch's or a thread's first or last high state, or the last of all."""
    P, q, c, z = _planted(28, t_high, seed=t_high)
    best = exhaustive_minimum(P, q, c, threads=threads)
    x, e = best.x, best.energy
    np.testing.assert_array_equal(x, z.astype(np.int8))
    assert e == pytest.approx(-3.0, abs=1e-9)


def test_multi_batch_enumeration_equals_the_trees_proven_optimum_at_28_variables():
    rng = np.random.default_rng(28)
    B = rng.normal(size=(40, 28))
    bqm = BQM(B.T @ B / 40, rng.normal(size=28) * 2, 0.7)  # PSD, optimum in no particular batch
    tree = solve(bqm, "tree")
    assert tree.optimal
    best = exhaustive_minimum(bqm.P, bqm.q, bqm.c, threads=2)
    x, e = best.x, best.energy
    assert e == pytest.approx(tree.energy, rel=1e-12, abs=1e-12)
    assert bqm.energy(x) == pytest.approx(tree.energy, rel=1e-12, abs=1e-12)
