"""Exact objectives: quantization grids, the local loss, and (as ``reference.compare``) the CLI."""

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
