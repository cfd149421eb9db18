"""Soundness of every method's certificates against an independent brute force (numpy
enumeration in :mod:`tests.soundness`): a reported ``lower_bound`` is never above the optimum and
``optimal`` is claimed only at it. The long randomized version of the same checks is
``python benchmarks/soundness.py --problems 20000`` (docs/exact.md, "Soundness")."""

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from solvers import BQM, solve
from solvers._registry import METHODS, method_names
from tests.soundness import FAMILIES, brute_minimum, check_problem, make_problem

#: Small budgets, and options that reach every branch that can report a bound (lns: windows
#: smaller than the row, so the search is its own, not the tree's).
OPTIONS = {
    "lns": {"window": 2, "max_window": 3, "max_nodes": 40, "kicks": 1, "kick": 1, "start": "gptq", "tree_nodes": 0},
    "anneal": {"num_reads": 2, "num_sweeps": 10},
    "tabu": {"num_restarts": 1},
    "tree": {"max_nodes": 3},
    "steepest": {"num_reads": 1},
    "adaround": {"iterations": 20},
}
QUBO_FAMILIES = ("ties", "real", "singular", "separable")
LAYER_FAMILIES = ("layer", "token", "conv")


def _check(res, opt, scale, name):
    tol = 1e-12 * scale
    assert res.energy >= opt - tol, (name, res.energy, opt)
    if res.lower_bound is not None:
        assert res.lower_bound <= opt + tol, (name, "bound", res.lower_bound, opt)
    if res.optimal:
        assert abs(res.energy - opt) <= tol, (name, "optimal", res.energy, opt)


def test_the_options_name_registered_methods():
    assert set(OPTIONS) <= set(METHODS)


@example(QUBO_FAMILIES[0], 0)
@given(st.sampled_from(QUBO_FAMILIES + LAYER_FAMILIES), st.integers(0, 2**31 - 1))
def test_every_registered_method_certifies_only_what_holds(family, seed):
    problem = make_problem(family, seed)
    if isinstance(problem, BQM):
        methods = method_names("qubo")
        opt = brute_minimum(problem.P, problem.q, problem.c)
        scale = np.abs(problem.P).sum() + np.abs(problem.q).sum() + abs(problem.c)
    else:
        methods = method_names("qubo") + method_names("layer")
        rows = [problem.row_bqm(k) for k in range(problem.n_rows)]
        opt = sum(brute_minimum(r.P, r.q, r.c) if r.n else r.c for r in rows)
        scale = sum(np.abs(r.P).sum() + np.abs(r.q).sum() + abs(r.c) for r in rows)
    for name in methods:
        try:
            res = solve(problem, name, **OPTIONS.get(name, {}))
        except ValueError as err:  # coefficients beyond what the tree resolves: refused, not certified
            assert "span more than float64" in str(err) or "not finite" in str(err), (name, err)
            continue
        _check(res, opt, scale, name)


@settings(max_examples=20)
@example("ties", 0)
@given(st.sampled_from(FAMILIES), st.integers(0, 2**31 - 1))
def test_every_certificate_of_a_random_problem_holds(family, seed):
    # the long run's checks (tests/soundness.py), all of them on each drawn problem
    assert check_problem(family, seed) == []


def test_lns_on_rows_wider_than_its_windows_certifies_nothing_it_cannot_prove():
    # a fixed set on which the small-window search misses the optimum at least once, so a bound
    # equal to its own energy (or any bound above the optimum) is caught deterministically
    misses = 0
    for seed in range(25):
        for family in ("ties", "real"):
            bqm = make_problem(family, seed)
            opt = brute_minimum(bqm.P, bqm.q, bqm.c)
            res = solve(bqm, "lns", **OPTIONS["lns"])
            scale = np.abs(bqm.P).sum() + np.abs(bqm.q).sum() + abs(bqm.c)
            _check(res, opt, scale, "lns")
            misses += res.energy > opt + 1e-9 * scale
    assert misses > 0
