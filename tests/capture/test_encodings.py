"""AIMET encodings read as grids: the range the file states (min, max) must be the grid's
(oracle: the grid's own end points s (q - z) at q = 0 and q = 2^bw - 1, computed here)."""

import json

import numpy as np
import pytest

from reference.capture.encodings import layer_grid, read_encodings


def _write(tmp_path, encs):
    path = tmp_path / "enc.json"
    path.write_text(json.dumps({"version": "0.6.1", "activation_encodings": {}, "param_encodings": {"w": encs}}))
    return str(path)


def test_a_consistent_legacy_encoding_gives_the_grid_whose_range_it_states(tmp_path):
    s = 0.0004936049808748066
    encs = [{"bitwidth": 8, "dtype": "int", "is_symmetric": "False", "offset": -127, "scale": s,
             "min": -127 * s, "max": 128 * s}]
    grid, info = layer_grid(read_encodings(_write(tmp_path, encs))["w"], np.zeros((3, 2)), "w")
    lo, hi = grid.scale * (0 - grid.zero_point), grid.scale * (grid.qmax - grid.zero_point)
    np.testing.assert_allclose([float(np.squeeze(lo)), float(np.squeeze(hi))], [-127 * s, 128 * s])
    assert info["qmin"] == 0 and info["qmax"] == 255


@pytest.mark.parametrize("offset, lo_steps, hi_steps", [
    (126, -127, 128),   # offset stored with the other sign (min = -offset scale): a grid of [126 s, 381 s]
    (-127, -127, 127),  # strict symmetric: 255 levels, not the 256 of [0, 2^bw - 1]
])
def test_an_encoding_whose_range_is_not_its_grid_is_refused(tmp_path, offset, lo_steps, hi_steps):
    s = 0.0011427081098743512
    encs = [{"bitwidth": 8, "dtype": "int", "is_symmetric": "False", "offset": offset, "scale": s,
             "min": lo_steps * s, "max": hi_steps * s}]
    with pytest.raises(ValueError, match=r"encodings: .*'w': (min|max) .* steps, but the grid"):
        read_encodings(_write(tmp_path, encs))


def test_an_encoding_without_min_and_max_is_read_as_given(tmp_path):
    encs = [{"bitwidth": 4, "dtype": "int", "is_symmetric": "True", "offset": -8, "scale": 0.5}]
    assert read_encodings(_write(tmp_path, encs)) == {"w": [(0.5, -8, 4)]}


@pytest.mark.parametrize("extra", [
    {"enc_type": "LPBQ", "block_size": 2, "compressed_bw": 4, "per_block_int_scale": [1, 3, 2, 5]},
    {"enc_type": "PER_BLOCK", "block_size": 2},
])
def test_a_blockwise_encoding_is_refused_not_read_as_per_channel(tmp_path, extra):
    """LPBQ's 'scale' has one entry per output channel, but each block's step is that scale times
    its per_block_int_scale: read as a per-channel grid it would pose another grid."""
    entry = {"name": "w", "dtype": "INT", "bw": 4, "is_sym": True, "scale": [0.1, 0.2], "offset": [-8, -8],
             **extra}
    path = tmp_path / "enc.json"
    path.write_text(json.dumps({"version": "1.0.0", "activation_encodings": [], "param_encodings": [entry]}))
    with pytest.raises(ValueError, match=r"encodings: .*'w' is a '(LPBQ|PER_BLOCK)' encoding"):
        read_encodings(str(path))
