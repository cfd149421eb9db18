"""Capture every conv and linear layer of a model as problem files (``python -m reference.capture``).

:func:`capture` runs a PyTorch module (the ``torch`` extra) or an ONNX model (the ``onnx`` extra,
through onnxruntime) on calibration inputs and writes, for every 2-D convolution and every linear
layer, the problem file ``python -m reference.compare --problem`` reads
(:mod:`reference.compare.problem_files`), then ``manifest.json`` (written last, atomically), which
``python -m reference.compare --model DIR`` reads. docs/guide/real_models.md, section 1.

* Each layer's ``X`` is its input as the layer received it (after any padding the model did in
  its own ``forward`` or in a ``Pad`` node), so the file's ``W`` and ``X`` reproduce the layer's
  output in the model.
* BatchNorm that directly and solely consumes a convolution's output is folded into the
  convolution's weights, as AIMET does before AdaRound:
  ``W'[o] = W[o] * gamma[o] / sqrt(var[o] + eps)`` (the bias, which Eq. 20 does not see, is
  not written); ``fold_bn=False`` keeps the model's own weights.
* The grid is the paper's, fitted by the loader from ``bits`` (:func:`reference.fit_grid`), or a
  user's AIMET encodings (:mod:`reference.capture.encodings`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re

import numpy as np

from ..conv import conv_geometry
from ..grid import fit_grid
from ..compare import problem_files
from ..compare.problem_files import read_inputs
from ..validation import as_float_array, check_bits, check_positive_int
from .encodings import layer_grid, read_encodings
from .onnx_source import capture_onnx, check_inputs, load_model
from .record import CaptureError, Recorder
from .torch_source import capture_torch, is_torch_module

__all__ = ["CaptureError", "capture", "FORMAT", "VERSION"]

FORMAT = "qubo-reference-capture"
VERSION = 1


def _check_options(bits, fold_bn, max_positions, seed, batch_size, layers):
    if not isinstance(fold_bn, (bool, np.bool_)):
        raise TypeError(f"fold_bn must be True or False, found {fold_bn!r}")
    opts = {"bits": check_bits(bits), "fold_bn": bool(fold_bn), "seed": check_positive_int(seed, "seed", minimum=0),
            "batch_size": check_positive_int(batch_size, "batch_size"),
            "max_positions": None if max_positions is None else check_positive_int(max_positions, "max_positions")}
    if layers is not None:
        layers = [layers] if isinstance(layers, str) else list(layers)
        if not layers or not all(isinstance(p, str) and p for p in layers):
            raise ValueError(f"layers must be a non-empty list of name patterns (fnmatch), found {layers!r}")
    opts["layers"] = layers
    return opts


def _check_out_dir(out_dir) -> str:
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise ValueError(f"out_dir: {out_dir} exists and is not an empty directory; give a new directory")
    return out_dir


def _inputs(inputs) -> np.ndarray:
    if isinstance(inputs, (str, os.PathLike)):
        try:
            inputs = read_inputs(os.fspath(inputs))
        except ValueError as exc:
            raise ValueError(f"inputs: {exc}") from None
    elif not isinstance(inputs, np.ndarray) and hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    arr = np.asarray(inputs)
    as_float_array(arr, "inputs")  # real numbers, finite
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"inputs must hold at least one sample along axis 0, found shape {arr.shape}")
    return arr


def capture(model_or_path, inputs, out_dir, bits=4, fold_bn=True, encodings=None, max_positions=None,
            seed=0, batch_size=16, layers=None) -> dict:
    """Run the model on ``inputs`` and write one problem file per conv / linear layer plus ``manifest.json``.

    Parameters
    ----------
    model_or_path : torch.nn.Module, onnx.ModelProto, or path of an ``.onnx`` file
    inputs : array (N, ...) or path of a ``.npy`` / ``.npz``
        Calibration inputs, one sample along axis 0 (the model's single input).
    out_dir : path
        A new (or empty) directory; it receives the files and ``manifest.json``.
    bits : int, default=4
        Fit the paper's grid (symmetric, per output channel, weight-MSE scale) at this width.
    fold_bn : bool, default=True
        Fold a BatchNorm that solely consumes a conv's output into the conv's weights.
    encodings : path, optional
        AIMET encodings (JSON); every captured layer's weight must have one (then ``bits`` is unused).
    max_positions : int, optional
        Keep at most this many output positions (conv) or tokens (token linear layer) per layer,
        a uniform sample without replacement drawn with ``seed``; None keeps all.
    seed : int, default=0
    batch_size : int, default=16
        Samples per forward pass.
    layers : list of str, optional
        Capture only layers whose name matches one of these ``fnmatch`` patterns.

    Returns the manifest (a dict). Bad input raises ValueError (or TypeError) naming the argument,
    before anything is written; a missing optional package raises ImportError naming its extra.
    """
    opts = _check_options(bits, fold_bn, max_positions, seed, batch_size, layers)
    out_dir = _check_out_dir(out_dir)
    enc = read_encodings(os.fspath(encodings)) if encodings is not None else None
    x = _inputs(inputs)
    select = (lambda name: True) if opts["layers"] is None else \
        (lambda name: any(fnmatch.fnmatchcase(name, p) for p in opts["layers"]))
    rec = Recorder(x.shape[0], opts["max_positions"], opts["seed"])
    if is_torch_module(model_or_path):
        source, label = "torch", type(model_or_path).__name__
        found, skipped = capture_torch(model_or_path, x, rec, opts["fold_bn"], opts["batch_size"], select)
    else:
        if not isinstance(model_or_path, (str, os.PathLike)) and type(model_or_path).__name__ != "ModelProto":
            raise TypeError(f"model_or_path must be a torch.nn.Module, an onnx.ModelProto or the path of an "
                            f".onnx file, found {type(model_or_path).__name__}")
        model = load_model(model_or_path)
        source = "onnx"
        label = os.fspath(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else \
            (model.graph.name or "onnx model")
        found, skipped = capture_onnx(model, check_inputs(model, x), rec, opts["fold_bn"], opts["batch_size"],
                                      select)
    if enc is not None:
        missing = [f"{layer.name} ({layer.weight})" for layer in found if layer.weight not in enc]
        if missing:
            names = sorted(enc)
            raise ValueError(f"encodings: no encoding for {len(missing)} of the {len(found)} captured layers: "
                             f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; the file has "
                             f"{len(names)}: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}")
    entries = [_entry(layer, opts, enc) for layer in found]
    manifest = {"format": FORMAT, "version": VERSION, "model": label, "source": source,
                "samples": int(x.shape[0]), "seed": opts["seed"], "max_positions": opts["max_positions"],
                "fold_bn": opts["fold_bn"], "layers": [e for e, _ in entries], "skipped": skipped}
    _write(out_dir, manifest, [files for _, files in entries])
    return manifest


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:80] or "layer"


def _grid(layer, W2, opts, enc):
    """The file's grid keys and the manifest's grid entry for one layer."""
    if enc is None:
        try:
            fit_grid(W2, bits=opts["bits"])  # the loader fits the same grid; refuse here what it would refuse
        except ValueError as exc:
            raise CaptureError(f"layer {layer.name!r}: {exc}") from None
        return {"bits": opts["bits"]}, {"source": "bits", "bits": opts["bits"], "method": "mse",
                                        "symmetric": True, "per_channel": True}
    grid, info = layer_grid(enc[layer.weight], W2, layer.name)
    return {"scale": grid.scale, "qmin": grid.qmin, "qmax": grid.qmax, "zero_point": grid.zero_point}, info


def _entry(layer, opts, enc) -> tuple[dict, tuple]:
    """A layer's manifest entry and its file's arrays (plus the kept positions when sub-sampled)."""
    W = layer.W
    if layer.bn_factor is not None:  # W'[o] = W[o] gamma[o] / sqrt(var[o] + eps)
        W = W * layer.bn_factor.reshape((-1,) + (1,) * (W.ndim - 1))
    W2 = W.reshape(W.shape[0], -1)
    keys, grid_info = _grid(layer, W2, opts, enc)
    X = np.concatenate(layer.chunks)
    layer.chunks = []
    if X.size > problem_files.MAX_ELEMENTS:
        raise CaptureError(f"layer {layer.name!r}: its inputs hold {X.size} numbers, above the "
                           f"{problem_files.MAX_ELEMENTS} a problem file may hold; give max_positions "
                           "(--max-positions) or fewer inputs")
    sampled = layer.plan is not None
    windows = layer.mode == "windows"
    kept = np.concatenate(layer.kept) if sampled else None
    entry = {"name": layer.name, "weight": layer.weight, "kind": layer.kind,
             "file": f"{layer.index:03d}_{_safe(layer.name)}.npz", "index": layer.index, "out": int(W.shape[0]),
             "fan_in": int(W2.shape[1]), "weight_shape": list(map(int, W.shape)),
             "input_shape": list(map(int, layer.input_shape)), "file_input_shape": list(map(int, X.shape)),
             "folded_bn": layer.bn_factor is not None, "bn": layer.bn_name, "grid": grid_info,
             "samples": int(X.shape[0] if layer.mode == "samples" else layer.n_seen), "positions": None, "positions_total": layer.extra.get("positions_total"),
             "positions_file": None}
    entry.update({k: v for k, v in layer.extra.items() if k not in ("positions_total", "attrs", "last_batch")})
    if layer.kind == "conv":
        pad = layer.sym_padding
        geo = {"stride": layer.stride, "padding": pad if pad is not None else (0, 0), "dilation": layer.dilation,
               "groups": layer.groups}
        if windows:  # receptive-field windows: one output position each
            geo.update(stride=(1, 1), padding=(0, 0))
        try:
            g = conv_geometry(W.shape, X.shape[1], **geo)
            h_out, w_out = g.output_size(X.shape[2], X.shape[3])
        except ValueError as exc:
            raise CaptureError(f"layer {layer.name!r}: {exc}") from None
        entry.update(stride=list(layer.stride), dilation=list(layer.dilation), groups=layer.groups,
                     padding=list(pad) if pad is not None else list(layer.pads),
                     layout="windows" if windows else "images",
                     positions=int(X.shape[0] * h_out * w_out))
        keys.update({k: np.array(v) for k, v in geo.items()})
    else:
        entry.update(stride=None, padding=None, dilation=None, groups=None,
                     layout="rows" if X.ndim == 2 else "tokens")
        if "positions_total" in layer.extra:  # tokens: every row of the input is a position
            entry["positions"] = int(X.shape[0] if X.ndim == 2 else X.shape[0] * X.shape[1])
    if sampled:
        entry["positions_file"] = entry["file"][:-4] + ".positions.npy"
    return entry, (dict(W=W, X=X, **keys), kept)


def _write(out_dir: str, manifest: dict, files: list) -> None:
    """Every layer file, then ``manifest.json`` atomically; on any failure remove what was written."""
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    try:
        for entry, (arrays, kept) in zip(manifest["layers"], files):
            path = os.path.join(out_dir, entry["file"])
            tmp = path[:-4] + ".tmp.npz"
            written.append(tmp)
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
            written.append(path)
            if kept is not None:
                pos = os.path.join(out_dir, entry["positions_file"])
                written.append(pos)
                np.save(pos, kept.astype(np.int64))
        tmp = os.path.join(out_dir, ".manifest.json.tmp")
        written.append(tmp)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
        os.replace(tmp, os.path.join(out_dir, "manifest.json"))
    except BaseException:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
