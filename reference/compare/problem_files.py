"""Reading a user's layer file (``.npz``) into a rounding problem. Files are data, never code.

Keys: ``W`` and ``X``, required, as one of

* a linear layer: ``W`` (out, in) and ``X`` (N, in);
* a token layer: ``W`` (out, in) and ``X`` (N, T, in), the ``N*T`` tokens are the samples;
* a convolution: ``W`` (C_out, C_in/groups, kh, kw) and ``X`` (N, C_in, H, W), with optional
  ``stride``, ``padding`` (zeros, >= 0), ``dilation`` (each an int or two ints) and ``groups``
  (an int dividing C_in and C_out); the problem is :class:`solvers.ConvProblem`, whose loss is
  Eq. 20 on patches (mean over samples and output positions, summed over channels);

then either a grid, ``scale`` (scalar or one per row, i.e. per output channel) with ``qmin`` and
``qmax`` and optionally ``zero_point`` (scalar or one per row, default 0), or ``bits`` (2..16,
default 4) to let the oracle fit the paper's grid (symmetric, per row, weight-MSE scale search).
Any other key is refused, so a typo is not silently ignored; the conv keys are refused on a
linear or token layer.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from solvers import ConvProblem, LayerProblem

from ..conv import conv_geometry
from ..validation import as_float_array, as_int_scalar
from ..grid import Grid, fit_grid

__all__ = ["ProblemFileError", "check_file", "load_layer", "main", "read_inputs", "read_safetensors", "write_layer"]

_GRID_KEYS = {"scale", "qmin", "qmax", "zero_point"}
_CONV_KEYS = {"stride", "padding", "dilation", "groups"}
_ALLOWED = {"W", "X", "bits"} | _GRID_KEYS | _CONV_KEYS


class ProblemFileError(ValueError):
    """A problem file that cannot be used; the message names the file and the problem."""


#: Largest array read from a layer file (2^27 numbers, 1 GiB in float64); checked from its header.
MAX_ELEMENTS = 2**27


#: The first bytes of a ``.npy`` array (``numpy.save``).
_NPY_MAGIC = b"\x93NUMPY"


def check_file(path: str) -> None:
    """Refuse a path that is not a readable regular file, saying which: missing, a directory, or
    something else (a device, a pipe)."""
    if os.path.isdir(path):
        raise ProblemFileError(f"{path}: is a directory, not a file")
    if not os.path.exists(path):
        raise ProblemFileError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ProblemFileError(f"{path}: not a regular file")


def _check_header(what: str, fh, stored: int) -> None:
    """Check one ``.npy`` header (shape, dtype) read from ``fh`` against the ``stored`` bytes
    before numpy reads the array; ``what`` names it in the message (``"path: member 'X'"``)."""
    try:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise ProblemFileError(f"{what} is not a readable array ({exc})") from None
    if dtype.hasobject:
        raise ProblemFileError(f"{what} holds Python objects (pickled data), which are never loaded")
    count = int(np.prod(shape, dtype=object))
    if count > MAX_ELEMENTS:
        raise ProblemFileError(f"{what} claims shape {shape}, above the limit of {MAX_ELEMENTS} numbers an array")
    if count * dtype.itemsize > stored:
        raise ProblemFileError(f"{what} claims shape {shape} ({count * dtype.itemsize} bytes) but holds {stored} bytes")


def _check_members(path: str, zf: zipfile.ZipFile) -> None:
    """Check every member's header (shape, dtype) against its stored size before numpy reads it."""
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as fh:
            _check_header(f"{path}: member {info.filename[:-4]!r}", fh, info.file_size)


def _read_npz(path: str) -> dict:
    check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == _NPY_MAGIC:
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
    return _layer_of(path, _read_npz(path))


def _layer_of(path: str, data: dict):
    """The problem of a layer file's arrays ``data``, every check of :func:`load_layer` (a refusal
    names ``path``)."""
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise ProblemFileError(f"{path}: unknown key(s) {unknown}; allowed keys are {sorted(_ALLOWED)}")
    missing = [k for k in ("W", "X") if k not in data]
    if missing:
        raise ProblemFileError(f"{path}: missing key(s) {missing}")
    try:
        W = as_float_array(data["W"], "W")
        X = as_float_array(data["X"], "X")
        if W.ndim in (2, 4) and 0 in W.shape:
            raise ValueError(f"W must have at least one row and one column (no empty dimension), found shape {W.shape}")
        if W.ndim == 4:
            return _conv_layer(path, data, W, X)
        if W.ndim != 2:
            raise ValueError(f"W must be 2-D (out, in) or 4-D (C_out, C_in/groups, kh, kw), found shape {W.shape}")
        conv_given = sorted(_CONV_KEYS & set(data))
        if conv_given:
            raise ValueError(f"key(s) {conv_given} apply to a convolution (4-D W), but W is 2-D")
        if X.ndim not in (2, 3):
            raise ValueError(f"X must be 2-D (N, in) or, for token inputs, 3-D (N, T, in) with a 2-D W, "
                             f"found shape {X.shape}")
        if X.shape[-1] != W.shape[1]:
            raise ValueError(f"X has {X.shape[-1]} columns but W has {W.shape[1]} inputs")
        if X.shape[0] == 0 or (X.ndim == 3 and X.shape[1] == 0):
            raise ValueError(f"X must hold at least one sample, found shape {X.shape}")
        grid = _grid(data, W)
        name = os.path.splitext(os.path.basename(path))[0]
        return LayerProblem(W, grid, X=X, name=name)
    except ProblemFileError:
        raise
    except ValueError as exc:
        raise ProblemFileError(f"{path}: {exc}") from None


def _grid(data: dict, W2) -> Grid:
    """The file's grid keys, or the paper's grid fitted on ``W2`` (out, fan_in)."""
    given = _GRID_KEYS & set(data)
    if given:
        if "bits" in data:
            raise ValueError("give either a grid (scale, qmin, qmax[, zero_point]) or bits, not both")
        need = sorted({"scale", "qmin", "qmax"} - given)
        if need:
            raise ValueError(f"a grid needs scale, qmin and qmax; missing {need}")
        return Grid(data["scale"], as_int_scalar(data["qmin"], "qmin"), as_int_scalar(data["qmax"], "qmax"),
                    data.get("zero_point", 0))
    bits = as_int_scalar(data["bits"], "bits") if "bits" in data else 4
    return fit_grid(W2, bits=bits)


def _conv_layer(path: str, data: dict, W, X):
    if X.ndim != 4:
        raise ValueError(f"X must be 4-D (N, C_in, H, W) for a convolution (4-D W), found shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"X must hold at least one sample, found shape {X.shape}")
    opts = {k: data[k] for k in _CONV_KEYS if k in data}
    geo = conv_geometry(W.shape, X.shape[1], **opts)  # every geometry refusal names its key
    geo.output_size(X.shape[2], X.shape[3])
    geo.check_work(X.shape[0], X.shape[2], X.shape[3])  # a huge padding is refused before the grid is fitted
    grid = _grid(data, W.reshape(W.shape[0], -1))
    name = os.path.splitext(os.path.basename(path))[0]
    return ConvProblem(W, grid, X, name=name, **opts)


# ---------------------------------------------------------------------------- layers of real models
def read_safetensors(path: str, tensor: str) -> np.ndarray:
    """One tensor of a ``.safetensors`` file as float64, read without torch (needs ``safetensors``).

    Refuses a missing file or tensor (naming the tensors the file holds), a non-float dtype, a
    dtype numpy cannot hold (bfloat16: convert it to float32 first) and non-finite values.
    """
    check_file(path)
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError("reading .safetensors needs the package 'safetensors' "
                          "(pip install 'qubo-reference[safetensors]')") from None
    try:
        with safe_open(path, framework="numpy") as fh:
            names = list(fh.keys())
            if tensor not in names:
                shown = ", ".join(sorted(names)[:20]) + (", ..." if len(names) > 20 else "")
                raise ProblemFileError(f"{path}: no tensor named {tensor!r}; it holds {len(names)}: {shown}")
            arr = fh.get_tensor(tensor)
    except ProblemFileError:
        raise
    except Exception as exc:  # the reader's own errors: a corrupt header, an unsupported dtype
        raise ProblemFileError(f"{path}: cannot read tensor {tensor!r} ({exc.__class__.__name__}: {exc})") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise ProblemFileError(f"{path}: tensor {tensor!r} must hold floats, found {arr.dtype}")
    try:
        return as_float_array(arr, tensor)
    except ValueError as exc:
        raise ProblemFileError(f"{path}: {exc}") from None


def read_inputs(path: str, key: str = "X") -> np.ndarray:
    """Calibration inputs from ``.npy`` (one array) or ``.npz`` (key ``key``, or its only array),
    told apart by content; any other file (text, a pickle) is refused naming what it is not."""
    check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if path.endswith(".npz") or zipfile.is_zipfile(path):
        data = _read_npz(path)
        if key not in data:
            if len(data) != 1:
                raise ProblemFileError(f"{path}: no array named {key!r} among {sorted(data)}")
            key = next(iter(data))
        arr = data[key]
    elif head != _NPY_MAGIC:
        if head[:1] == b"\x80":  # the protocol byte of pickle.dump (protocol 2 and above)
            raise ProblemFileError(f"{path}: holds Python objects (pickled data), which are never loaded")
        raise ProblemFileError(f"{path}: not a .npy or .npz file (numpy.save writes a .npy file, which starts "
                               "with the bytes \\x93NUMPY)")
    else:
        with open(path, "rb") as fh:
            _check_header(f"{path}: the array", fh, os.path.getsize(path))
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise ProblemFileError(f"{path}: holds Python objects (pickled data), which are never loaded") from None
            raise ProblemFileError(f"{path}: not a readable .npy file ({exc})") from None
        except (OSError, EOFError) as exc:
            raise ProblemFileError(f"{path}: not a readable .npy file ({exc.__class__.__name__}: {exc})") from None
    try:
        return as_float_array(arr, "X")
    except ValueError as exc:
        raise ProblemFileError(f"{path}: {exc}") from None


def write_layer(out: str, weights: str, tensor: str, inputs: str, **keys) -> str:
    """Write the ``.npz`` that ``--problem`` reads from a model's ``.safetensors`` tensor and a file
    of captured inputs; ``keys`` are the other problem-file keys (``bits``, ``stride``, ...).

    Every check of :func:`load_layer` runs on the arrays first; only then is the file written, to
    a temporary file in the same directory that replaces ``out`` at once (``os.replace``), so a
    refusal or a failed write leaves ``out`` as it was."""
    out = str(out)
    if not out.endswith(".npz"):
        raise ProblemFileError(f"{out}: the output file must end with .npz")
    if os.path.isdir(out):
        raise ProblemFileError(f"{out}: is a directory, not a file")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ProblemFileError(f"{out}: its directory {folder} does not exist")
    W = read_safetensors(weights, tensor)
    X = read_inputs(inputs)
    unknown = sorted(set(keys) - (_ALLOWED - {"W", "X"}))
    if unknown:
        raise ProblemFileError(f"unknown key(s) {unknown}")
    data = {"W": W, "X": X, **{k: np.asarray(v) for k, v in keys.items() if v is not None}}
    _layer_of(out, data)  # as load_layer would read it back: the same arrays, every check
    fd, tmp = tempfile.mkstemp(suffix=".npz", prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> the mode a plain open() would give
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return out


def main(argv=None) -> int:
    """``python -m reference.compare.problem_files``: write a layer file from a model's weights and inputs."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m reference.compare.problem_files",
                                description="Write the layer file (.npz) that python -m reference.compare --problem "
                                            "reads, from a .safetensors tensor and captured inputs (.npy/.npz).")
    p.add_argument("--weights", required=True, metavar="FILE.safetensors")
    p.add_argument("--tensor", required=True, help="the weight tensor's name, e.g. layer1.0.conv1.weight")
    p.add_argument("--inputs", required=True, metavar="FILE.npy|FILE.npz",
                   help="the layer's inputs: (N, in), (N, T, in) or (N, C_in, H, W)")
    p.add_argument("--out", required=True, metavar="LAYER.npz")
    p.add_argument("--bits", type=int)
    for k in ("stride", "padding", "dilation"):
        p.add_argument(f"--{k}", type=int, nargs="+", metavar="N", help=f"convolution {k}: one or two ints")
    p.add_argument("--groups", type=int)
    args = p.parse_args(argv)
    keys = {k: getattr(args, k) for k in ("bits", "stride", "padding", "dilation", "groups")}
    try:
        write_layer(args.out, args.weights, args.tensor, args.inputs, **keys)
    except ProblemFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
