"""Built-in problem suites for ``python -m reference.compare``.

Every suite is a function ``seed -> list of LayerProblem`` registered in :data:`SUITES`. Layers
are random but fixed by the seed: weights ``N(0, 1/in)``, inputs ``N(0, Sigma)`` with the AR(1)
correlation ``Sigma_ij = rho^|i-j|`` (neighbouring inputs correlated, as in images and
activations), and the paper's grid (per-row scale chosen by weight-MSE search).
"""

from __future__ import annotations

import numpy as np

from .grid import fit_grid

__all__ = ["SUITES", "correlated_layer", "default_suite"]


def correlated_layer(out: int, fan_in: int, n_samples: int, rng, rho: float = 0.5,
                     distinct: int | None = None):
    """Random ``(W, X)`` with AR(1)-correlated inputs.

    ``distinct`` < ``fan_in`` draws only that many distinct samples and repeats them, so the
    Gram matrix is rank deficient (as in real layers with few calibration samples).
    """
    W = rng.normal(size=(out, fan_in)) / np.sqrt(fan_in)
    idx = np.arange(fan_in)
    L = np.linalg.cholesky(rho ** np.abs(idx[:, None] - idx[None, :]))
    m = n_samples if distinct is None else distinct
    X = rng.normal(size=(m, fan_in)) @ L.T
    if distinct is not None:
        X = X[np.arange(n_samples) % m]
    return W, X


# name, out, fan_in, samples, bits, per_row, distinct samples
_DEFAULT = [
    ("fc16x8-b4", 8, 16, 256, 4, True, None),
    ("fc20x8-b4", 8, 20, 256, 4, True, None),
    ("fc24x4-b3", 4, 24, 256, 3, True, None),
    ("fc16x8-b2", 8, 16, 256, 2, True, None),
    ("fc20x8-b4-tensor", 8, 20, 256, 4, False, None),
    ("fc24x4-b4-rankdef", 4, 24, 256, 4, True, 12),
    ("fc40x4-b4", 4, 40, 320, 4, True, None),
    ("fc48x4-b3", 4, 48, 384, 3, True, None),
]


def default_suite(seed: int = 0):
    """Eight small layers: six with fan-in 16 to 24 (2-, 3- and 4-bit, per-row and per-tensor
    grids, a rank-deficient Gram matrix), small enough for ``exhaustive``, and two with fan-in
    40 and 48, beyond enumeration, where the tree search proves the optimum."""
    from solvers import LayerProblem

    problems = []
    for i, (name, out, fan_in, n, bits, per_row, distinct) in enumerate(_DEFAULT):
        rng = np.random.default_rng([seed, i])
        W, X = correlated_layer(out, fan_in, n, rng, distinct=distinct)
        grid = fit_grid(W, bits=bits, per_row=per_row)
        problems.append(LayerProblem(W, grid, X=X, name=name))
    return problems


SUITES = {"default": default_suite}


def _paper_report(seed: int = 0, plot_dir=None):
    """Tables 1, 2 and 4 of the paper in miniature (reference.paper), seeds ``seed .. seed+4``."""
    from .paper import PaperSettings, format_tables, run_paper_suite

    out = run_paper_suite(PaperSettings(seeds=tuple(range(seed, seed + 5))))
    return format_tables(out), out


def _sparse_report(seed: int = 0, plot_dir=None):
    """Sparse coding beyond l1 against the exact l0 optimum (reference.sparse_study); the
    figures go to ``plot_dir`` when given."""
    from .sparse_study import format_tables, run_sparse_suite

    rows = run_sparse_suite(seed, out_dir=plot_dir)
    return format_tables(rows), rows


#: Studies that are not lists of problems: ``name -> (seed, plot_dir) -> (text, data)``, run by
#: ``python -m reference.compare --suite NAME`` and printed as their own tables.
REPORTS = {"paper": _paper_report, "sparse": _sparse_report}
