"""Solvers for the rounding and sparse-coding QUBOs, behind one front door.

``solve(problem, method=..., **options)`` returns a :class:`Result` whatever backend ran; the
registered names are :func:`method_names`; a :class:`SparseProblem` takes the sparse coders
(``method_names(kind="sparse")``, :mod:`solvers.sparse`).
"""

from . import adaround, anneal, baselines, exhaustive, hessian, lns, rounding, sequential, sparse, tree  # noqa: F401  (each registers its methods)
from ._registry import METHODS, Outcome, method_names, register
from ._solve import solve
from .bounds import Bounds, lower_bounds
from .bqm import BQM
from .hessian import DiagonalHessianLayer
from .layer import ConvProblem, LayerProblem, cnn_layer_problem
from .orlib import read_bqp
from .result import Result
from .samplers import ExhaustiveSampler, TreeSampler
from .sequential import AsymmetricLayer, quantize_network
from .sparse import SparseProblem, binary_sparse_coding_bqm, code

__all__ = [
    "BQM",
    "LayerProblem",
    "ConvProblem",
    "cnn_layer_problem",
    "Result",
    "METHODS",
    "method_names",
    "register",
    "Outcome",
    "solve",
    "Bounds",
    "lower_bounds",
    "ExhaustiveSampler",
    "TreeSampler",
    "read_bqp",
    "DiagonalHessianLayer",
    "AsymmetricLayer",
    "quantize_network",
    "SparseProblem",
    "binary_sparse_coding_bqm",
    "code",
]
