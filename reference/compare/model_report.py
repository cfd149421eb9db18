"""The whole-model compare (``python -m reference.compare --model DIR``): a capture manifest read
into one layer problem per layer, and the model summary of the per-layer results.

A manifest (``DIR/manifest.json``, written by the model capture) lists a network's conv and linear
layers in forward order, each with its problem file in the format ``--problem`` reads. It is a
user's file: JSON only, every key checked, every file inside the manifest's directory; anything
else is refused with one :class:`ManifestError` line before a layer is loaded.

The summary is sound by construction (docs/guide/compare.md, "Whole models", Eq. M1-M5): the layers are
independent rounding problems, so the model's optimum is the sum of the layers' optima
``O = sum_l O_l`` (Eq. M1), and every layer's certified interval ``LB_l <= O_l <= B_l`` sums to
``sum_l LB_l <= O <= sum_l B_l`` (Eq. M2). A method's summed loss ``S`` then has the gap
``(S - O) / O`` in ``[(S - sum B) / sum B, (S - sum LB) / sum LB]`` (Eq. M3).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .harness import aggregate
from .problem_files import ProblemFileError, load_layer

__all__ = ["ManifestError", "ModelLayer", "Manifest", "load_manifest", "model_summary", "summarise", "format_summary",
           "write_model_csv", "plot_model", "MANIFEST_FORMAT", "MANIFEST_VERSION", "MAX_MANIFEST_BYTES",
           "WORST_LAYERS"]

MANIFEST_FORMAT = "qubo-reference-capture"
MANIFEST_VERSION = 1
#: Largest manifest read (bytes): a manifest lists layers, not data.
MAX_MANIFEST_BYTES = 16 * 2**20
#: How many layers the summary names per method as those where it loses most.
WORST_LAYERS = 3

_TOP_KEYS = {"format", "version", "model", "source", "layers"}
_LAYER_KEYS = {"name", "kind", "file", "index", "out", "fan_in", "weight_shape", "input_shape", "stride",
               "padding", "dilation", "groups", "folded_bn", "grid", "samples", "positions"}
#: Keys that reference.capture also writes (its run settings and per-layer record); read, not required.
_TOP_OPTIONAL = {"samples", "seed", "max_positions", "fold_bn", "skipped"}
_LAYER_OPTIONAL = {"weight", "bn", "file_input_shape", "batch_first", "positions_total", "positions_file",
                   "layout", "calls_per_pass"}
_GEOMETRY = {"stride": 1, "padding": 0, "dilation": 1}  # the smallest value each pair entry may take


class ManifestError(ProblemFileError):
    """A manifest that cannot be used; the message names the file, the layer and the key."""


@dataclass(frozen=True)
class ModelLayer:
    """One manifest entry: the layer's name in the model, its kind, its position in the forward
    pass, its problem file (absolute path) and the manifest's own record of it."""

    index: int
    name: str
    kind: str
    file: str
    entry: dict


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: the model's name and source, its layers in forward order, and one
    problem per layer (same order, named after the layer)."""

    path: str
    model: str
    source: str
    layers: tuple
    problems: tuple


# ------------------------------------------------------------------------------------ reading
def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"key(s) {twice} given twice in one object")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: no such file")
    try:
        size = os.path.getsize(path)
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: {size:,} bytes, above the limit of {MAX_MANIFEST_BYTES:,} for a manifest")
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object, found {type(data).__name__}")
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(where, key, v, minimum):
    if not _is_int(v) or v < minimum:
        raise ValueError(f"{where}{key!r} must be an integer >= {minimum}, found {v!r}")
    return v


def _str(where, key, v):
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{where}{key!r} must be a non-empty string, found {v!r}")
    return v


def _ints(where, key, v, minimum, lengths):
    if not isinstance(v, list) or len(v) not in lengths or not all(_is_int(x) and x >= minimum for x in v):
        n = " or ".join(map(str, lengths))
        raise ValueError(f"{where}{key!r} must be a list of {n} integers >= {minimum}, found {v!r}")
    return v


def _check_top(d: dict) -> None:
    missing, unknown = sorted(_TOP_KEYS - set(d)), sorted(set(d) - _TOP_KEYS - _TOP_OPTIONAL)
    if missing or unknown:
        raise ValueError(f"missing key(s) {missing}" if missing
                         else f"unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS | _TOP_OPTIONAL)}")
    if d["format"] != MANIFEST_FORMAT:
        raise ValueError(f"'format' must be {MANIFEST_FORMAT!r}, found {d['format']!r}")
    if not _is_int(d["version"]) or d["version"] != MANIFEST_VERSION:
        raise ValueError(f"'version' must be {MANIFEST_VERSION} (this reader's), found {d['version']!r}")
    _str("", "model", d["model"])
    if d["source"] not in ("onnx", "torch"):
        raise ValueError(f"'source' must be 'onnx' or 'torch', found {d['source']!r}")
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise ValueError(f"'layers' must be a non-empty list, found {d['layers']!r}")


def _check_grid(where, g) -> None:
    if not isinstance(g, dict) or g.get("source") not in ("bits", "encodings"):
        raise ValueError(f"{where}'grid' must be an object whose 'source' is 'bits' or 'encodings', found {g!r}")


def _check_geometry(where, e: dict) -> None:
    """Conv layers: stride, padding, dilation (one or two ints) and groups, as the layer has them.
    Linear layers have no geometry: the four keys are null."""
    keys = [*_GEOMETRY, "groups"]
    if e["kind"] == "linear":
        given = [k for k in keys if e[k] is not None]
        if given:
            raise ValueError(f"{where}key(s) {given} apply to a conv layer; a linear layer has them null")
        return
    for k, minimum in _GEOMETRY.items():
        _ints(where, k, e[k], minimum, (1, 2, 4) if k == "padding" else (1, 2))
    _int(where, "groups", e["groups"], 1)


def _check_entry(where, e) -> None:
    """Every key of one layer entry, by type and range, and the shapes against each other."""
    if not isinstance(e, dict):
        raise ValueError(f"{where}must be an object, found {type(e).__name__}")
    missing, unknown = sorted(_LAYER_KEYS - set(e)), sorted(set(e) - _LAYER_KEYS - _LAYER_OPTIONAL)
    if missing or unknown:
        raise ValueError(f"{where}missing key(s) {missing}" if missing
                         else f"{where}unknown key(s) {unknown}; allowed: {sorted(_LAYER_KEYS | _LAYER_OPTIONAL)}")
    _str(where, "name", e["name"])
    if e["kind"] not in ("conv", "linear"):
        raise ValueError(f"{where}'kind' must be 'conv' or 'linear', found {e['kind']!r}")
    _str(where, "file", e["file"])
    _int(where, "index", e["index"], 0)
    out, fan_in = _int(where, "out", e["out"], 1), _int(where, "fan_in", e["fan_in"], 1)
    ws = _ints(where, "weight_shape", e["weight_shape"], 1, (4,) if e["kind"] == "conv" else (2,))
    _ints(where, "input_shape", e["input_shape"], 1, (2, 3, 4))
    if ws[0] != out or math.prod(ws[1:]) != fan_in:
        raise ValueError(f"{where}'weight_shape' {ws} does not give 'out' {out} rows of 'fan_in' {fan_in}")
    _check_geometry(where, e)
    if not isinstance(e["folded_bn"], bool):
        raise ValueError(f"{where}'folded_bn' must be true or false, found {e['folded_bn']!r}")
    _check_grid(where, e["grid"])
    _int(where, "samples", e["samples"], 1)
    if e["positions"] is not None:
        _int(where, "positions", e["positions"], 1)


def _layer_file(root: str, where: str, rel: str) -> str:
    """The layer's file: a relative path that stays inside the manifest's directory, existing."""
    if os.path.isabs(rel) or rel.startswith(("/", "\\")):
        raise ValueError(f"{where}'file' must be a path relative to the manifest's directory, found {rel!r}")
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, full]) != root:
        raise ValueError(f"{where}'file' {rel!r} lies outside the manifest's directory")
    if not os.path.isfile(full):
        raise ValueError(f"{where}'file' {rel!r}: no such file in the manifest's directory")
    return full


def _matches(where, e: dict, prob) -> None:
    """The problem file holds the layer the manifest describes: rows and fan-in; a 4-D file also
    the kernel shape and geometry. (A conv captured as patches is a 2-D file: rows and fan-in.) The
    geometry a capture file poses: padding 0 where the manifest's padding is asymmetric
    (``[top, bottom, left, right]``, applied to ``X``), stride 1 and padding 0 for ``layout``
    ``"windows"`` (docs/guide/real_models.md, "Memory: the position budget")."""
    if prob.n_rows != e["out"] or prob.W.shape[1] != e["fan_in"]:
        raise ValueError(f"{where}the file holds {prob.n_rows} rows of fan-in {prob.W.shape[1]}, the manifest "
                         f"says 'out' {e['out']} and 'fan_in' {e['fan_in']}")
    geo = getattr(prob, "geometry", None)
    if geo is None:
        return
    if e["kind"] != "conv":
        raise ValueError(f"{where}the file holds a convolution, the manifest says 'kind' {e['kind']!r}")
    if list(prob.kernel_shape) != e["weight_shape"]:
        raise ValueError(f"{where}the file's kernel is {list(prob.kernel_shape)}, "
                         f"'weight_shape' says {e['weight_shape']}")
    posed = dict(e)
    if len(e["padding"]) == 4:  # asymmetric padding: capture applied it to X, the file pads 0
        posed["padding"] = [0, 0]
    if e.get("layout") == "windows":  # one receptive-field window per kept position: stride 1, padding 0
        posed["stride"], posed["padding"] = [1, 1], [0, 0]
    for k in _GEOMETRY:
        want = posed[k] * 2 if len(posed[k]) == 1 else posed[k]
        if list(getattr(geo, k)) != want:
            raise ValueError(f"{where}the file's {k} is {list(getattr(geo, k))}, the manifest says {e[k]}")
    if geo.groups != e["groups"]:
        raise ValueError(f"{where}the file's groups is {geo.groups}, the manifest says {e['groups']}")


def load_manifest(path: str) -> Manifest:
    """Read and check a manifest (a ``manifest.json`` or the directory holding one), then load every
    layer's problem file; :class:`ManifestError` names the file, the layer and the key at fault."""
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    d = _read_json(path)
    root = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    try:
        _check_top(d)
        for i, e in enumerate(d["layers"]):
            _check_entry(f"layer {i}: ", e)
        entries = sorted(d["layers"], key=lambda e: e["index"])
        files = [_layer_file(root, f"layer {e['name']!r}: ", e["file"]) for e in entries]
        for key, vals in (("name", [e["name"] for e in entries]), ("index", [e["index"] for e in entries]),
                          ("file", files)):
            twice = sorted({v for v in vals if vals.count(v) > 1}, key=str)
            if key == "file":
                twice = [os.path.relpath(v, root) for v in twice]
            if twice:
                raise ValueError(f"layers repeat {key!r} {twice}: each layer is listed once")
    except ValueError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    problems = []
    for e, f in zip(entries, files):
        prob = load_layer(f)  # a ProblemFileError names the file
        try:
            _matches(f"layer {e['name']!r}: ", e, prob)
        except ValueError as exc:
            raise ManifestError(f"{path}: {exc}") from None
        prob.name = e["name"]
        problems.append(prob)
    layers = tuple(ModelLayer(e["index"], e["name"], e["kind"], f, e) for e, f in zip(entries, files))
    return Manifest(path, d["model"], d["source"], layers, tuple(problems))


# ------------------------------------------------------------------------------------ summary
def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _interval(r) -> tuple[float, float] | None:
    """A layer result's gap interval ``(low, high)`` as compare reports it (docs/guide/compare.md),
    with ``inf`` for an end that is not finite: a low end is null only when the layer's optimum is
    0 and the loss is not (the gap is infinite), a high end when no positive bound exists (open)."""
    if not _finite(r["loss"]):
        return None
    lo = math.inf if r["gap_low"] is None else r["gap_low"]
    hi = math.inf if r["gap_high"] is None else r["gap_high"]
    return lo, hi


def _relative(value: float, ref: float) -> float:
    """``(value - ref) / ref`` for ``value >= ref >= 0``: 0 when both are 0, ``inf`` when only ``ref`` is."""
    if ref > 0:
        return (value - ref) / ref
    return 0.0 if value == 0 else math.inf


def _totals(records) -> dict:
    """Eq. M1-M2: the summed optimum (when every layer's is proven), best known and certified bound."""
    best = [rec["best_known"] for rec in records]
    optima = [rec["optimum"] for rec in records]
    return {"n_layers": len(records), "layers_proven": sum(o is not None for o in optima),
            "summed_optimum": math.fsum(optima) if all(o is not None for o in optima) else None,
            "summed_best_known": math.fsum(best) if all(_finite(b) for b in best) else None,
            "summed_lower_bound": math.fsum(_bound(rec) for rec in records)}


def _bound(rec) -> float:
    """A layer's certified bound, taken as its best known where it exceeds it (by float64 rounding
    only: :func:`solvers.certificates.check_bound` refuses more), as gap_interval takes it."""
    lb, best = rec["lower_bound"], rec["best_known"]
    return min(lb, best) if _finite(best) else lb


def _worst_layers(layers, records, name) -> list[dict]:
    """The layers where ``name`` loses most: its loss above the layer's best known (largest first),
    with that excess's interval ``[loss - best known, loss - lower bound]`` and the gap interval."""
    rows = []
    for layer, rec in zip(layers, records):
        r = next((r for r in rec["results"] if r["method"] == name), None)
        if r is None or _interval(r) is None or not _finite(rec["best_known"]):
            continue
        excess = r["loss"] - rec["best_known"]
        if excess > 0:
            rows.append({"index": layer.index, "name": layer.name, "loss": r["loss"], "excess_low": excess,
                         "excess_high": r["loss"] - _bound(rec), "gap_low": _interval(r)[0],
                         "gap_high": _interval(r)[1]})
    rows.sort(key=lambda w: (-w["excess_low"], w["index"]))
    return rows[:WORST_LAYERS]


def _method_summary(layers, records, name, totals) -> dict:
    """One method over the model: summed loss, the model's gap interval (Eq. M3), and the median
    and worst of the layers' gap intervals (order statistics are monotone, so the median and the
    maximum of the true gaps lie between those of the low ends and those of the high ends)."""
    results = [next((r for r in rec["results"] if r["method"] == name), None) for rec in records]
    have = [(lay, r) for lay, r in zip(layers, results) if r is not None and _interval(r) is not None]
    missing = [lay.name for lay, r in zip(layers, results) if r is None or _interval(r) is None]
    optimal = bool(have) and not missing and all(r["optimal"] for _, r in have)
    out = {"method": name, "layers": len(have), "missing": missing, "summed_loss": None, "gap": None,
           "gap_low": None, "gap_high": None, "optimal": optimal,
           "seconds": math.fsum(r["seconds"] for r in results if r is not None)}
    if not missing:
        S = math.fsum(r["loss"] for _, r in have)
        out["summed_loss"] = S
        if totals["summed_optimum"] is not None:
            out["gap"] = out["gap_low"] = out["gap_high"] = _relative(S, totals["summed_optimum"])
        elif totals["summed_best_known"] is not None:
            out["gap_low"] = _relative(S, totals["summed_best_known"])
            out["gap_high"] = _relative(S, totals["summed_lower_bound"])
    ivs = np.array([_interval(r) for _, r in have], dtype=np.float64).reshape(-1, 2)
    for stat, f in (("median", np.median), ("worst", np.max)):
        out[f"{stat}_gap_low"] = float(f(ivs[:, 0])) if len(ivs) else None
        out[f"{stat}_gap_high"] = float(f(ivs[:, 1])) if len(ivs) else None
    out["worst_layers"] = _worst_layers(layers, records, name)
    return out


def model_summary(manifest: Manifest, records: list[dict], methods) -> dict:
    """The model summary of ``records`` (compare's aggregated records of ``manifest.problems``, in
    the same order): per layer its place and bounds, per method its summed loss and intervals."""
    if len(records) != len(manifest.problems):
        raise ValueError(f"records must hold one record per layer ({len(manifest.problems)}), found {len(records)}")
    totals = _totals(records)
    root = os.path.dirname(os.path.realpath(manifest.path))
    layers = [{"index": lay.index, "name": lay.name, "kind": lay.kind, "file": os.path.relpath(lay.file, root),
               "n_rows": rec["n_rows"], "n_vars": rec["n_vars"], "optimum": rec["optimum"],
               "best_known": rec["best_known"], "lower_bound": rec["lower_bound"]}
              for lay, rec in zip(manifest.layers, records)]
    return {"model": manifest.model, "source": manifest.source, "manifest": manifest.path, **totals,
            "layers": layers,
            "methods": [_method_summary(manifest.layers, records, m, totals) for m in dict.fromkeys(methods)]}


def summarise(manifest: Manifest, records: list[dict], methods) -> tuple[dict, list[dict]]:
    """``(summary, layer_records)`` from a run's task records: compare's aggregated record of each
    layer (every layer, also one whose file repeats another's content) and :func:`model_summary`."""
    layer_records = aggregate(list(manifest.problems), records, methods)
    return model_summary(manifest, layer_records, methods), layer_records


# ------------------------------------------------------------------------------------ output
def _end(x) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{100 * x:.4f}" if abs(100 * x) < 1e6 else f"{100 * x:.4e}"


def _iv(lo, hi) -> str:
    """A gap interval in %: one number when both ends agree, ``-`` when there is none."""
    if lo is None:
        return "-"
    return _end(lo) if lo == hi else f"[{_end(lo)}, {_end(hi)}]"


def format_summary(summary: dict) -> str:
    """The model summary as text: per method the summed loss, the model's gap interval (Eq. M3),
    the median and worst layer gap intervals, then the layers where each method loses most."""
    s = summary
    proven = f"{s['layers_proven']} with a proven optimum"
    lb, bk = s["summed_lower_bound"], s["summed_best_known"]
    lines = [f"model {s['model']} ({s['source']}, {s['n_layers']} layers, {proven}): summed loss over the layers, "
             "gap to the model's optimum (the sum of the layers' optima) in %",
             f"  summed best known {'-' if bk is None else f'{bk:.9e}'}, summed certified lower bound {lb:.9e}"
             + ("" if s["summed_optimum"] is None else f", summed optimum {s['summed_optimum']:.9e} (proven)"),
             f"  {'method':<14}{'layers':>7}{'summed loss':>17}{'model gap %':>27}{'median layer gap %':>27}"
             f"{'worst layer gap %':>27}"]
    for m in s["methods"]:
        loss = "-" if m["summed_loss"] is None else f"{m['summed_loss']:.9e}"
        lines.append(f"  {m['method']:<14}{m['layers']:>7}{loss:>17}{_iv(m['gap_low'], m['gap_high']):>27}"
                     f"{_iv(m['median_gap_low'], m['median_gap_high']):>27}"
                     f"{_iv(m['worst_gap_low'], m['worst_gap_high']):>27}")
    lines.append("  where each method loses most (loss above the layer's best known, and that layer's gap %):")
    for m in s["methods"]:
        worst = "; ".join(f"{w['name']} +{w['excess_low']:.3e} {_iv(w['gap_low'], w['gap_high'])}"
                          for w in m["worst_layers"]) or "nowhere: the best known loss on every layer it ran"
        if m["missing"]:
            worst += f" (no loss on {len(m['missing'])} layer(s): {', '.join(m['missing'][:3])}" + \
                     (", ...)" if len(m["missing"]) > 3 else ")")
        lines.append(f"    {m['method']:<14}{worst}")
    return "\n".join(lines)


_CSV = ["scope", "index", "layer", "kind", "n_rows", "n_vars", "method", "loss", "optimal", "gap", "gap_low",
        "gap_high", "best_known", "lower_bound", "seconds", "status", "median_gap_low", "median_gap_high",
        "worst_gap_low", "worst_gap_high", "loses_most"]


def _cell(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_model_csv(path: str, summary: dict, records: list[dict]) -> None:
    """One CSV: a ``layer`` row per layer and method (compare's columns), then a ``model`` row per
    method (the summary); an empty cell is a null of the JSON (no value, or no finite end)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV)
        for lay, rec in zip(summary["layers"], records):
            for r in rec["results"]:
                w.writerow(map(_cell, ["layer", lay["index"], lay["name"], lay["kind"], rec["n_rows"], rec["n_vars"],
                                       r["method"], r["loss"], r["optimal"], r["gap"], r["gap_low"], r["gap_high"],
                                       rec["best_known"], rec["lower_bound"], r["seconds"], r["status"],
                                       None, None, None, None, None]))
        rows = sum(lay["n_rows"] for lay in summary["layers"])
        n_vars = sum(lay["n_vars"] for lay in summary["layers"])
        for m in summary["methods"]:
            status = f"no loss on {len(m['missing'])} layer(s)" if m["missing"] else ""
            w.writerow(map(_cell, ["model", None, summary["model"], "model", rows, n_vars, m["method"],
                                   m["summed_loss"], m["optimal"], m["gap"], m["gap_low"], m["gap_high"],
                                   summary["summed_best_known"], summary["summed_lower_bound"], m["seconds"], status,
                                   m["median_gap_low"], m["median_gap_high"], m["worst_gap_low"],
                                   m["worst_gap_high"], ";".join(x["name"] for x in m["worst_layers"])]))


def plot_model(directory: str, summary: dict, records: list[dict]) -> str:
    """``DIR/model_gaps.png``: each method's gap interval per layer along the depth of the network
    (x: the layers in forward order), on a log axis; a dot where the gap is proven, a bar
    ``[gap_low, gap_high]`` otherwise (an arrow at the top for an open end)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs the optional package 'matplotlib' "
                          "(pip install 'qubo-reference[plots]')") from None
    os.makedirs(directory, exist_ok=True)
    floor = 1e-3
    methods = [m["method"] for m in summary["methods"]]
    finite = [100 * v for rec in records for r in rec["results"] for v in (r["gap_low"], r["gap_high"])
              if v is not None]
    top = max([floor * 10] + finite) * 3
    n = len(records)
    fig, ax = plt.subplots(figsize=(min(40.0, max(8.0, 4 + 0.4 * n)), 4.8))
    colours = plt.get_cmap("tab20").colors
    width = 0.8 / max(1, len(methods))
    for i, name in enumerate(methods):
        c, shown = colours[i % len(colours)], False
        for x0, rec in enumerate(records):
            r = next((r for r in rec["results"] if r["method"] == name), None)
            iv = None if r is None else _interval(r)
            if iv is None:
                continue
            x = x0 - 0.4 + width * (i + 0.5)
            lo, hi = (min(max(100 * v, floor), top) for v in iv)
            label = None if shown else name
            shown = True
            if iv[0] == iv[1]:
                ax.plot([x], [lo], "o", color=c, ms=4, label=label)
                continue
            ax.plot([x, x], [lo, hi], "-", color=c, lw=2, label=label)
            ax.plot([x], [lo], "o", mfc="white", color=c, ms=4)
            if math.isinf(iv[1]):
                ax.plot([x], [top], "^", color=c, ms=4)
    ax.set_yscale("log")
    ax.set_xticks(range(n))
    ax.set_xticklabels([f"{lay['index']}: {lay['name']}" for lay in summary["layers"]], rotation=60, ha="right",
                       fontsize=7)
    ax.set_xlabel("layer, in forward order")
    ax.set_ylabel(f"gap to the layer's optimum (%, floor {floor:g})")
    ax.set_title(f"{summary['model']}: gap per layer (dot = proven, bar = [vs best known, vs lower bound])")
    return save_figure(fig, ax, directory, "model_gaps.png", legend_size=7)


def save_figure(fig, ax, directory: str, filename: str, legend_size: int) -> str:
    """Put ``ax``'s legend right of the plot, write ``fig`` to ``directory/filename`` (PNG, 120 dpi),
    close it and return the path (the compare figures' common ending)."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=legend_size, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    path = os.path.join(directory, filename)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
