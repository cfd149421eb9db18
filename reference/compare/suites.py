"""Built-in problem suites for ``python -m reference.compare``.

Every suite is a function ``seed -> list of LayerProblem`` registered in :data:`SUITES`. Layers
are random but fixed by the seed: weights ``N(0, 1/in)``, inputs ``N(0, Sigma)`` with the AR(1)
correlation ``Sigma_ij = rho^|i-j|`` (neighbouring inputs correlated, as in images and
activations), and the paper's grid (per-row scale chosen by weight-MSE search).
"""

from __future__ import annotations

import numpy as np

from solvers import LayerProblem, cnn_layer_problem

from ..studies import paper, paper_cnn, sparse_study
from ..cnn import cnn_calibration, digits_cnn
from ..grid import fit_grid

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
    problems = []
    for i, (name, out, fan_in, n, bits, per_row, distinct) in enumerate(_DEFAULT):
        rng = np.random.default_rng([seed, i])
        W, X = correlated_layer(out, fan_in, n, rng, distinct=distinct)
        grid = fit_grid(W, bits=bits, per_row=per_row)
        problems.append(LayerProblem(W, grid, X=X, name=name))
    return problems


def cnn_suite(seed: int = 0, bits: int = 4):
    """The four layers of the trained digits CNN (reference.cnn) under Eq. 20, inputs from 256
    calibration images (drawn with ``seed``; the network is always trained with seed 0), on the
    paper's grid at ``bits``: conv 3x3 1->16 (fan-in 9), conv 3x3 16->32 stride 2 (fan-in 144),
    depthwise conv 3x3 (fan-in 9) and the dense 128->10 classifier (fan-in 128)."""
    net, data = digits_cnn(0)
    X, _ = cnn_calibration(data, seed)
    inputs = net.layer_inputs(X)
    names = ["cnn-conv1-3x3-1to16", "cnn-conv2-3x3-16to32-s2", "cnn-conv3-3x3-depthwise", "cnn-fc-128to10"]
    return [cnn_layer_problem(net, k, X, fit_grid(net.rows(k), bits=bits), inputs=inputs[k], name=f"{names[k]}-b{bits}")
            for k in range(net.n_layers)]


SUITES = {"default": default_suite, "cnn": cnn_suite}

#: Method options a suite brings (``--tree-nodes`` overrides the tree's): the CNN's rows of
#: fan-in 128-144 cannot be proven, so the tree search gets a small fixed budget (the suite's wall
#: time: docs/performance.md, "The compare command") and reports its best state with a proven lower bound.
SUITE_OPTIONS = {"cnn": {"tree": {"max_nodes": 100_000}}}


def _paper_report(seed: int = 0, plot_dir=None, progress: bool = False):
    """Tables 1, 2 and 4 of the paper in miniature (reference.studies.paper), seeds ``seed .. seed+4``."""
    out = paper.run_paper_suite(paper.PaperSettings(seeds=tuple(range(seed, seed + 5))), progress=progress)
    return paper.format_tables(out), out


def _sparse_report(seed: int = 0, plot_dir=None, progress: bool = False):
    """Sparse coding beyond l1 against the exact l0 optimum (reference.studies.sparse_study); the
    figures go to ``plot_dir`` when given."""
    rows = sparse_study.run_sparse_suite(seed, out_dir=plot_dir, progress=progress)
    return sparse_study.format_tables(rows), rows


def _paper_cnn_report(seed: int = 0, plot_dir=None, progress: bool = False):
    """Tables 1 and 4 of the paper on the digits CNN (reference.studies.paper_cnn), seeds ``seed, seed+1``."""
    out = paper_cnn.run_cnn_tables(paper_cnn.CNNSettings(seeds=(seed, seed + 1)), progress=progress)
    return paper_cnn.format_cnn_tables(out), out


#: Studies that are not lists of problems: ``name -> (seed, plot_dir, progress) -> (text, data)``,
#: run by ``python -m reference.compare --suite NAME`` and printed as their own tables
#: (``progress``: a tqdm bar of the study's steps on stderr).
REPORTS = {"paper": _paper_report, "paper-cnn": _paper_cnn_report, "sparse": _sparse_report}
