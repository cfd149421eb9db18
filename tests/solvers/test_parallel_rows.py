"""Rows of a layer solved in parallel processes (``solve(..., workers=k)``): the same result for
any number of workers, and the argument checked."""

import numpy as np
import pytest

from reference import fit_grid
from solvers import LayerProblem, solve


def _layer(rows=5, n=14, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3 * n, n)) @ (np.eye(n) + 0.5 * rng.normal(size=(n, n)) / np.sqrt(n))
    W = rng.normal(size=(rows, n))
    W[1] = 100.0  # every weight of row 1 clipped: a row without variables
    return LayerProblem(W, fit_grid(W, bits=3), X=X)


@pytest.mark.parametrize("method, opts", [("tree", {"max_nodes": 40}), ("tree", {}),
                                          ("exhaustive", {}), ("tabu", {"seed": 5})])
def test_any_number_of_workers_gives_the_same_result(method, opts):
    problem = _layer()
    one = solve(problem, method, **opts)
    two = solve(problem, method, workers=2, **opts)
    np.testing.assert_array_equal(one.x, two.x)
    assert one.energy == two.energy and one.optimal == two.optimal
    assert one.lower_bound == two.lower_bound
    assert one.info["row_status"] == two.info["row_status"]


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2"])
def test_bad_workers_are_refused(workers):
    with pytest.raises((ValueError, TypeError), match="workers"):
        solve(_layer(), "tree", workers=workers)
