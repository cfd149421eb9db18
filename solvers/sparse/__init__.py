r"""Sparse coding behind the one front door, and binary sparse coding as a QUBO (docs/sparse.md).

``solvers.solve(SparseProblem(Phi, X, penalty, lam), method, **options)`` minimises (or, for the
greedy and sparsity-constrained methods, approximately minimises), for every row ``x`` of ``X``,

.. math:: F(a) = \tfrac12 \|x - \Phi a\|^2 + \sum_k r_k(a_k)

and returns a :class:`solvers.Result`: ``x`` the codes (N, K), ``energy`` the total
``sum_i F(a_i)`` recomputed in float64. The coders
(``solvers.method_names(kind="sparse")``), one module per part of the math:

:mod:`~solvers.sparse.problem`
    :class:`SparseProblem` (validated once) and the registration of the coders.
:mod:`~solvers.sparse.proximal`
    ``ista``, ``fista``: proximal gradient, batched; FISTA restarts its momentum per signal.
:mod:`~solvers.sparse.certified`
    for ``l1`` with ``certify=True`` (the default): float32 sweeps and an exact float64 finish
    that proves each code a Lasso minimiser (then ``optimal``).
:mod:`~solvers.sparse.feature_sign`
    feature-sign search, the certified path's sure finish.
:mod:`~solvers.sparse.greedy`
    ``omp`` (orthogonal matching pursuit), ``iht`` (iterative hard thresholding).
:mod:`~solvers.sparse.exact`
    ``l0-exact``: the exact l0 optimum by enumerating supports (proven optimal).
:mod:`~solvers.sparse.binary`
    :func:`binary_sparse_coding_bqm`: ``a = alpha v`` with ``v`` binary, as a PSD QUBO.
:mod:`~solvers.sparse.dictionary`
    :func:`learn_dictionary`: the V1 paper's dictionary learning, with checkpoints.
"""

from __future__ import annotations

from . import certified, exact, feature_sign, greedy, proximal  # noqa: F401  (each registers its methods)
from .binary import binary_sparse_coding_bqm
from .dictionary import (DictionaryResult, LearnSettings, learn_dictionary, load_checkpoint, random_dictionary,
                         save_checkpoint, snapshot_path)
from .exact import EXACT_HARD_MAX_ATOMS, EXACT_MAX_ATOMS, exact_l0, least_squares_on_supports
from .problem import SparseProblem

__all__ = [
    "EXACT_MAX_ATOMS",
    "EXACT_HARD_MAX_ATOMS",
    "DictionaryResult",
    "LearnSettings",
    "SparseProblem",
    "binary_sparse_coding_bqm",
    "exact_l0",
    "learn_dictionary",
    "least_squares_on_supports",
    "load_checkpoint",
    "random_dictionary",
    "save_checkpoint",
    "snapshot_path",
]

