"""The exact objectives and their I/O-free helpers: quantization grids, the local loss, the
networks, convolution geometry, penalties and the sparse-coding objective. None of them imports
a solver.

The applications are subpackages: :mod:`reference.compare` (``python -m reference.compare``),
:mod:`reference.studies` (the tables of docs/results.md) and :mod:`reference.testing` (the oracle
for your own tests).
"""

from .grid import (
    Grid,
    GridNeighbours,
    asymmetric_range,
    dequantize,
    fit_grid,
    grid_neighbours,
    round_ceil,
    round_floor,
    round_nearest,
    round_stochastic,
    symmetric_range,
)
from .loss import gram, layer_loss, layer_loss_gram

__all__ = [
    "Grid",
    "GridNeighbours",
    "asymmetric_range",
    "dequantize",
    "fit_grid",
    "gram",
    "layer_loss",
    "layer_loss_gram",
    "round_ceil",
    "round_floor",
    "round_nearest",
    "round_stochastic",
    "symmetric_range",
    "grid_neighbours",
]
