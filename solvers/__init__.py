"""Solvers for the rounding and sparse-coding QUBOs, behind one front door.

``solve(problem, method=..., **options)`` returns a :class:`Result` whatever backend ran.
"""

from . import adaround, anneal, baselines, exhaustive, hessian, rounding, sequential, sparse, tree  # noqa: F401  (each registers its methods)
from ._registry import METHODS, method_names
from ._solve import solve
from .bqm import BQM
from .layer import LayerProblem
from .result import Result

__all__ = ["BQM", "LayerProblem", "Result", "METHODS", "method_names", "solve"]
