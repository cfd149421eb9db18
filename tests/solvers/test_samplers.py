"""The exact methods as dimod samplers (solvers/samplers.py): dimod's own conformance helpers,
the k lowest states against dimod's ExactSolver, SPIN models, limits."""

import unittest

import dimod
import dimod.testing
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solvers.exhaustive import lowest_states
from solvers.samplers import ExhaustiveSampler, TreeSampler
from tests.solvers.test_tree import general_bqm
from tests.strategies import qubo_models


@dimod.testing.load_sampler_bqm_tests(ExhaustiveSampler)
class TestExhaustiveSamplerConformance(unittest.TestCase):
    def test_api(self):
        dimod.testing.assert_sampler_api(ExhaustiveSampler())


@dimod.testing.load_sampler_bqm_tests(TreeSampler)
class TestTreeSamplerConformance(unittest.TestCase):
    def test_api(self):
        dimod.testing.assert_sampler_api(TreeSampler())


def _exact_energies(bqm):
    return np.sort(dimod.ExactSolver().sample(bqm).record.energy)


@pytest.mark.parametrize("sampler", [ExhaustiveSampler(), TreeSampler()], ids=["exhaustive", "tree"])
@given(st.one_of(general_bqm(max_n=7), qubo_models(max_n=7, extreme=False)), st.integers(1, 140), st.booleans())
def test_k_lowest_states_match_dimods_exact_solver(sampler, model, k, spin):
    bqm = model.to_dimod()
    if spin:
        bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
    ss = sampler.sample(bqm, num_states=k)
    want = _exact_energies(bqm)[:k]
    assert ss.vartype is bqm.vartype
    assert len(ss) == want.size
    dimod.testing.assert_sampleset_energies(ss, bqm)
    np.testing.assert_allclose(np.sort(ss.record.energy), want, rtol=0,
                               atol=1e-8 * (1 + np.abs(want).max()))
    assert ss.info["optimal"] is True
    assert ss.info["lower_bound"] <= want[0] + 1e-8 * (1 + abs(want[0]))


def test_lowest_states_across_enumeration_blocks():
    rng = np.random.default_rng(2)
    n = 16  # two high bits beyond the 14-bit block
    A = rng.normal(size=(n, n))
    P, q = (A + A.T) / 2, rng.normal(size=n)
    S, E = lowest_states(P, q, 0.3, 50)
    Xall = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    Eall = np.einsum("ij,ij->i", Xall @ P, Xall) + Xall @ q + 0.3
    np.testing.assert_allclose(E, np.sort(Eall)[:50], atol=1e-10)
    Sf = S.astype(float)
    np.testing.assert_allclose(np.einsum("ij,ij->i", Sf @ P, Sf) + Sf @ q + 0.3, E, atol=1e-10)


def test_tree_sampler_on_a_limit_says_not_optimal():
    rng = np.random.default_rng(0)
    n = 30
    X = rng.normal(size=(40, n))
    bqm = dimod.BQM(rng.normal(size=n), {(i, j): 2 * (X.T @ X)[i, j] for i in range(n)
                                         for j in range(i + 1, n)}, 0.0, "BINARY")
    ss = TreeSampler().sample(bqm, max_nodes=5)
    assert ss.info["optimal"] is False and "limit" in ss.info["status"]
    dimod.testing.assert_sampleset_energies(ss, bqm)


def test_exhaustive_sampler_refuses_large_models_before_work():
    bqm = dimod.BQM({i: 1.0 for i in range(41)}, {}, 0.0, "BINARY")
    with pytest.raises(ValueError, match="above the limit max_vars == 34"):
        ExhaustiveSampler().sample(bqm)


def test_samplers_refuse_bad_arguments():
    bqm = dimod.BQM({0: 1.0}, {}, 0.0, "BINARY")
    with pytest.raises(ValueError, match="num_states must be >= 1"):
        TreeSampler().sample(bqm, num_states=0)
    with pytest.raises(ValueError, match="order must be one of"):
        TreeSampler().sample(bqm, order="bad")
    with pytest.raises(ValueError, match="bqm must be a dimod.BinaryQuadraticModel"):
        ExhaustiveSampler().sample({0: 1.0})
