"""A user's AIMET encodings (JSON) as this project's grids (docs/conventions.md, "The grid").

AIMET's parameter encodings, formats 0.4 to 0.6 (``"param_encodings": {tensor: [Encoding, ...]}``,
one Encoding for the tensor or one per output channel, each with ``bitwidth``, ``scale``,
``offset``, ``is_symmetric`` and optionally ``dtype``, ``min``, ``max``) and format 1.0
(``"param_encodings": [{"name", "bw", "scale": [...], "offset": [...], "enc_type", "dtype", ...}]``).
AIMET quantizes ``q = clamp(round(w / scale) - offset, 0, 2^bw - 1)`` and dequantizes
``w_hat = (q + offset) scale``: the grid ``W_hat = s (q - z)`` with ``qmin = 0``,
``qmax = 2^bw - 1`` and ``zero_point = -offset`` (a symmetric 4-bit encoding has offset -8:
``z = 8``, the signed grid [-8, 7] shifted by 8). The file is read as JSON data only.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..grid import Grid, grid_neighbours

__all__ = ["read_encodings", "layer_grid"]


def read_encodings(path: str) -> dict:
    """``{tensor name: list of (scale, offset, bitwidth) per channel}`` from an AIMET JSON file."""
    if not os.path.isfile(path):
        raise ValueError(f"encodings: {path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"encodings: {path}: not a JSON file ({exc})") from None
    params = data.get("param_encodings") if isinstance(data, dict) else None
    if isinstance(params, dict):
        out = {name: _legacy(path, name, encs) for name, encs in params.items()}
    elif isinstance(params, list):
        out = {}
        for entry in params:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError(f"encodings: {path}: a param_encodings entry without a 'name'")
            out[entry["name"]] = _v1(path, entry)
    else:
        raise ValueError(f"encodings: {path}: no 'param_encodings' (AIMET's parameter encodings) in the file")
    return out


def _number(path, name, value, key, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"encodings: {path}: {name!r}: {key} must be a finite number, found {value!r}")
    if integer and value != int(value):
        raise ValueError(f"encodings: {path}: {name!r}: {key} must be an integer, found {value!r}")
    return value


def _legacy(path, name, encs) -> list:
    if not isinstance(encs, list) or not encs or not all(isinstance(e, dict) for e in encs):
        raise ValueError(f"encodings: {path}: {name!r} must be a non-empty list of encodings (one per channel)")
    out = []
    for e in encs:
        if str(e.get("dtype", "int")).lower() != "int":
            raise ValueError(f"encodings: {path}: {name!r} is a {e.get('dtype')!r} encoding; only integer grids "
                             "are rounding problems")
        missing = [k for k in ("scale", "offset", "bitwidth") if k not in e]
        if missing:
            raise ValueError(f"encodings: {path}: {name!r}: an encoding lacks {missing}")
        enc = (_number(path, name, e["scale"], "scale"), _number(path, name, e["offset"], "offset", True),
               _number(path, name, e["bitwidth"], "bitwidth", True))
        _check_range(path, name, e, *enc)
        out.append(enc)
    return out


#: How far (in steps) a legacy encoding's ``min``/``max`` may lie from ``offset scale`` and
#: ``(offset + 2^bw - 1) scale``: float32 rounding of the stored numbers, far below one step.
RANGE_TOL_STEPS = 1e-3


def _check_range(path, name, e, scale, offset, bw) -> None:
    """A legacy encoding's own ``min``/``max`` (when given) must be the range of the grid read from
    ``scale``/``offset`` (``min = offset scale``, ``max = (offset + 2^bw - 1) scale``): a file with
    the other sign of ``offset`` (``min = -offset scale``, as some exports write it) or a narrower
    integer range (a strict symmetric grid) would otherwise pose a grid other than the one it
    describes. Refused, naming the tensor; a zero scale has no range to compare."""
    if scale == 0:
        return
    for key, want in (("min", offset), ("max", offset + 2**int(bw) - 1)):
        if key in e:
            got = _number(path, name, e[key], key) / scale
            if abs(got - want) > RANGE_TOL_STEPS * max(1.0, abs(want)):
                raise ValueError(
                    f"encodings: {path}: {name!r}: {key} {e[key]!r} is {got:.6g} steps, but the grid "
                    f"q = round(w / scale) - offset in [0, 2^bw - 1] has {key} at {want} steps (offset {offset}, "
                    f"bitwidth {bw}); this reader takes AIMET's convention min = offset * scale")


def _v1(path, entry) -> list:
    name = entry["name"]
    if str(entry.get("dtype", "INT")).upper() != "INT":
        raise ValueError(f"encodings: {path}: {name!r} is a {entry.get('dtype')!r} encoding; only integer grids "
                         "are rounding problems")
    blocked = [k for k in ("block_size", "per_block_int_scale") if k in entry]
    if entry.get("enc_type", "PER_CHANNEL") not in ("PER_TENSOR", "PER_CHANNEL") or blocked:
        # PER_BLOCK / LPBQ: the step varies along a row (LPBQ's 'scale' is per channel but each
        # block multiplies it by its per_block_int_scale), which a per-row grid cannot pose
        raise ValueError(f"encodings: {path}: {name!r} is a {entry.get('enc_type')!r} encoding"
                         + (f" (with {blocked})" if blocked else "") + "; only per-tensor and per-channel "
                         "grids (one step per output channel) are read")
    missing = [k for k in ("scale", "offset", "bw") if k not in entry]
    if missing:
        raise ValueError(f"encodings: {path}: {name!r}: the encoding lacks {missing}")
    scales, offsets = entry["scale"], entry["offset"]
    scales = scales if isinstance(scales, list) else [scales]
    offsets = offsets if isinstance(offsets, list) else [offsets]
    if len(offsets) == 1 and len(scales) > 1:
        offsets = offsets * len(scales)
    if len(scales) != len(offsets) or not scales:
        raise ValueError(f"encodings: {path}: {name!r}: {len(scales)} scales but {len(offsets)} offsets")
    bw = _number(path, name, entry["bw"], "bw", True)
    return [(_number(path, name, s, "scale"), _number(path, name, o, "offset", True), bw)
            for s, o in zip(scales, offsets)]


def layer_grid(encs: list, W2: np.ndarray, layer: str) -> tuple[Grid, dict]:
    """The grid of one layer (``W2`` its (out, fan_in) weights after any folding) and its manifest entry."""
    out = W2.shape[0]
    if len(encs) not in (1, out):
        raise ValueError(f"encodings: layer {layer!r} has {out} output channels but its encoding has "
                         f"{len(encs)} entries (give 1 per tensor or 1 per channel)")
    bws = {int(e[2]) for e in encs}
    if len(bws) != 1:
        raise ValueError(f"encodings: layer {layer!r} mixes bit widths {sorted(bws)}")
    bw = bws.pop()
    if not 2 <= bw <= 16:
        raise ValueError(f"encodings: layer {layer!r}: bitwidth {bw} is outside 2..16")
    scale = np.array([e[0] for e in encs], dtype=np.float64)
    zero_point = -np.array([e[1] for e in encs], dtype=np.float64)
    try:
        grid = Grid(scale, 0, 2**bw - 1, zero_point)
        grid_neighbours(W2, grid)  # a zero scale on a nonzero channel is refused here, naming it
    except ValueError as exc:
        raise ValueError(f"encodings: layer {layer!r}: {exc}") from None
    info = {"source": "encodings", "bits": bw, "qmin": 0, "qmax": 2**bw - 1,
            "per_channel": len(encs) > 1, "zero_scale_channels": int(np.count_nonzero(scale == 0))}
    return grid, info
