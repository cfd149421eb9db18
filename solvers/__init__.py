"""Solvers for the rounding and sparse-coding QUBOs, behind one front door.

``solve(problem, method=..., **options)`` returns a :class:`Result` whatever backend ran; the
registered names are :func:`method_names`; a :class:`SparseProblem` takes the sparse coders
(``method_names(kind="sparse")``, :mod:`solvers.sparse`).
"""

import importlib
import pkgutil

from ._registry import METHODS, Method, Outcome, method_names, methods_table, register


def discover(package) -> list[str]:
    """Import every public module of ``package`` (a package object), subpackages included, and
    return their names: a module that registers methods does so when imported, so a new backend
    is one new file, with no import line to remember. ``import solvers`` runs this on itself."""
    names = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)
            names.append(info.name)
    return names


# first, so the methods register in the order of their modules' names (compare's default order)
discover(importlib.import_module(__name__))

from ._solve import solve  # noqa: E402  (the rest of the public names, after the discovery)
from .bounds import Bounds, lower_bounds
from .bqm import BQM
from .hessian import DiagonalHessianLayer
from .layer import ConvProblem, LayerProblem, cnn_layer_problem
from .orlib import read_bqp
from .result import Result
from .samplers import ExhaustiveSampler, TreeSampler
from .sequential import AsymmetricLayer, quantize_network
from .sparse import SparseProblem, binary_sparse_coding_bqm

__all__ = [
    "BQM",
    "LayerProblem",
    "ConvProblem",
    "cnn_layer_problem",
    "Result",
    "METHODS",
    "Method",
    "method_names",
    "methods_table",
    "discover",
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
]
