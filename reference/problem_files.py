"""Reading a user's layer file (``.npz``) into a rounding problem. Files are data, never code.

Keys: ``W`` (out, in) and ``X`` (N, in), required; then either a grid, ``scale`` (scalar or one per
row) with ``qmin`` and ``qmax`` and optionally ``zero_point`` (scalar or one per row, default 0),
or ``bits`` (2..16, default 4) to let the oracle fit the paper's grid (symmetric, per row,
weight-MSE scale search). Any other key is refused, so a typo is not silently ignored.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ._validation import as_float_array, as_int_scalar
from .grid import Grid, fit_grid

__all__ = ["ProblemFileError", "load_layer"]

_GRID_KEYS = {"scale", "qmin", "qmax", "zero_point"}
_ALLOWED = {"W", "X", "bits"} | _GRID_KEYS


class ProblemFileError(ValueError):
    """A problem file that cannot be used; the message names the file and the problem."""


#: Largest array read from a layer file (2^27 numbers, 1 GiB in float64); checked from its header.
MAX_ELEMENTS = 2**27


def _check_members(path: str, zf: zipfile.ZipFile) -> None:
    """Check every member's header (shape, dtype) against its stored size before numpy reads it."""
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename[:-4]
        with zf.open(info) as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
                raise ProblemFileError(f"{path}: member {key!r} is not a readable array ({exc})") from None
        if dtype.hasobject:
            raise ProblemFileError(f"{path}: member {key!r} holds Python objects (pickled data), which are never loaded")
        count = int(np.prod(shape, dtype=object))
        if count > MAX_ELEMENTS:
            raise ProblemFileError(f"{path}: member {key!r} claims shape {shape}, above the limit of "
                                   f"{MAX_ELEMENTS} numbers an array")
        if count * dtype.itemsize > info.file_size:
            raise ProblemFileError(f"{path}: member {key!r} claims shape {shape} ({count * dtype.itemsize} bytes) "
                                   f"but holds {info.file_size} bytes")


def _read_npz(path: str) -> dict:
    if not os.path.isfile(path):
        raise ProblemFileError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        raise ProblemFileError(f"{path}: is a .npy file (one array), not a .npz file; save the layer with "
                               "numpy.savez(path, W=W, X=X, ...)")
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise ProblemFileError(f"{path}: not a readable .npz file (a truncated or corrupted zip archive)")
        raise ProblemFileError(f"{path}: not a .npz file (numpy.savez writes a zip archive of arrays)")
    try:
        with zipfile.ZipFile(path) as zf:
            _check_members(path, zf)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ProblemFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ProblemFileError(f"{path}: holds Python objects (pickled data), which are never loaded") from None
        raise ProblemFileError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise ProblemFileError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from None


def load_layer(path: str):
    """Read ``path`` and return a :class:`solvers.LayerProblem` named after the file."""
    from solvers import LayerProblem

    data = _read_npz(path)
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise ProblemFileError(f"{path}: unknown key(s) {unknown}; allowed keys are {sorted(_ALLOWED)}")
    missing = [k for k in ("W", "X") if k not in data]
    if missing:
        raise ProblemFileError(f"{path}: missing key(s) {missing}")
    try:
        W = as_float_array(data["W"], "W", ndim=2)
        if W.shape[0] == 0 or W.shape[1] == 0:
            raise ValueError(f"W must have at least one row and one column, found shape {W.shape}")
        X = as_float_array(data["X"], "X", ndim=2)
        if X.shape[1] != W.shape[1]:
            raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[1]} inputs")
        given = _GRID_KEYS & set(data)
        if given:
            if "bits" in data:
                raise ValueError("give either a grid (scale, qmin, qmax[, zero_point]) or bits, not both")
            need = sorted({"scale", "qmin", "qmax"} - given)
            if need:
                raise ValueError(f"a grid needs scale, qmin and qmax; missing {need}")
            grid = Grid(data["scale"], as_int_scalar(data["qmin"], "qmin"), as_int_scalar(data["qmax"], "qmax"),
                        data.get("zero_point", 0))
        else:
            bits = as_int_scalar(data["bits"], "bits") if "bits" in data else 4
            grid = fit_grid(W, bits=bits)
        name = os.path.splitext(os.path.basename(path))[0]
        return LayerProblem(W, grid, X=X, name=name)
    except ProblemFileError:
        raise
    except ValueError as exc:
        raise ProblemFileError(f"{path}: {exc}") from None
