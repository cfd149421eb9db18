"""``python -m reference.compare --model``: a hand-made three-layer model (a dense layer, a strided
and padded convolution, a token layer) whose per-layer optima are proved here by an independent
brute force (naive outputs, every rounding), checked against ``--problem`` runs of the same
files; the model summary's soundness; resume; jobs; and every refusal of a bad manifest."""

import csv
import itertools
import json
import math
import os
import shutil
import sqlite3
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference.compare.harness as harness
from reference.compare.cli import main
from reference.compare.model_report import Manifest, ModelLayer, load_manifest, model_summary

QMIN, QMAX = -4, 3
METHODS = "exhaustive,tree,anneal,nearest,floor,stochastic"


def _scale(W2):
    return np.abs(W2).max(axis=1) / 3.6  # some weights clip to qmin, none to a grid point


def _entry(name, kind, file, index, W, X, geo=None, positions=None):
    e = {"name": name, "kind": kind, "file": file, "index": index, "out": W.shape[0],
         "fan_in": int(np.prod(W.shape[1:])), "weight_shape": list(W.shape), "input_shape": list(X.shape),
         "stride": None, "padding": None, "dilation": None, "groups": None, "folded_bn": kind == "conv",
         "grid": {"source": "encodings", "bitwidth": 3}, "samples": X.shape[0], "positions": positions}
    if geo:
        e.update(geo)
    return e


def _make_model(root, seed=0):
    """Three layer files (explicit per-row grids) and their manifest; returns the manifest path."""
    rng = np.random.default_rng(seed)
    os.makedirs(root / "layers", exist_ok=True)
    Wd, Xd = rng.normal(size=(2, 6)), rng.normal(size=(24, 6))
    Wc, Xc = rng.normal(size=(2, 1, 2, 3)), rng.normal(size=(4, 1, 5, 5))
    Wt, Xt = rng.normal(size=(3, 5)), rng.normal(size=(4, 3, 5))
    np.savez(root / "layers" / "dense.npz", W=Wd, X=Xd, scale=_scale(Wd), qmin=QMIN, qmax=QMAX)
    np.savez(root / "layers" / "conv.npz", W=Wc, X=Xc, scale=_scale(Wc.reshape(2, -1)), qmin=QMIN, qmax=QMAX,
             stride=2, padding=1)
    np.savez(root / "layers" / "tok.npz", W=Wt, X=Xt, scale=_scale(Wt), qmin=QMIN, qmax=QMAX)
    geo = {"stride": [2, 2], "padding": [1, 1], "dilation": [1], "groups": 1}
    layers = [_entry("head.fc", "linear", "layers/dense.npz", 2, Wd, Xd),
              _entry("stem.conv", "conv", "layers/conv.npz", 0, Wc, Xc, geo, positions=9),
              _entry("attn.q", "linear", "layers/tok.npz", 1, Wt, Xt, positions=3)]
    man = {"format": "qubo-reference-capture", "version": 1, "model": "tiny", "source": "onnx", "layers": layers}
    path = root / "manifest.json"
    path.write_text(json.dumps(man))
    return str(path)


# ------------------------------------------------------------------ the independent oracle
def _naive_conv(X, K, stride, pad):
    """One output channel of a convolution, by its definition (loops over output positions)."""
    Xp = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = K.shape[-2:]
    Ho, Wo = (Xp.shape[2] - kh) // stride + 1, (Xp.shape[3] - kw) // stride + 1
    out = np.empty((X.shape[0], Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, i, j] = np.einsum("nchw,chw->n", Xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw], K)
    return out


def _brute_force(path):
    """The layer's optimal Eq. 20 loss: per row, every floor/ceil choice of every weight (clipped to
    the grid), the output error recomputed from the samples; rows are independent."""
    d = np.load(path)
    W, X, s = d["W"], d["X"], d["scale"]
    total = 0.0
    for k in range(W.shape[0]):
        w = W[k].ravel()
        cands = [sorted({s[k] * np.clip(f(v / s[k]), QMIN, QMAX) for f in (np.floor, np.ceil)}) for v in w]
        best = math.inf
        for choice in itertools.product(*cands):
            e = (w - np.array(choice)).reshape(W[k].shape)
            if W.ndim == 4:
                err = np.mean(_naive_conv(X, e, int(d["stride"]), int(d["padding"])) ** 2)
            else:
                err = np.mean((X.reshape(-1, X.shape[-1]) @ e) ** 2)
            best = min(best, err)
        total += best
    return total


def _run(argv):
    return main(argv if "--jobs" in argv else [*argv, "--jobs", "1"])


def _json(tmp_path, manifest, *extra, name="out.json"):
    out = tmp_path / name
    assert _run(["--model", manifest, "--json", str(out), "--quiet", *extra]) == 0
    return json.loads(out.read_text())


def _strip(results):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


# ------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    return root, _make_model(root)


def test_default_methods_prove_every_layer_and_match_problem_runs_and_brute_force(model, tmp_path):
    root, manifest = model
    data = _json(tmp_path, str(root))  # the directory works as well as the manifest; default methods
    probs = data["problems"]
    assert [p["name"] for p in probs] == ["stem.conv", "attn.q", "head.fc"]  # forward order (index)
    optima = []
    for rec, f in zip(probs, ["conv", "tok", "dense"]):
        path = str(root / "layers" / f"{f}.npz")
        single = _json(tmp_path, manifest, name=f"{f}.json")  # same numbers from a rerun
        out = tmp_path / f"{f}-problem.json"
        assert main(["--problem", path, "--json", str(out), "--quiet", "--jobs", "1"]) == 0
        alone = json.loads(out.read_text())["problems"][0]
        assert _strip(alone["results"]) == _strip(rec["results"])
        assert {k: alone[k] for k in ("optimum", "best_known", "lower_bound")} == \
            {k: rec[k] for k in ("optimum", "best_known", "lower_bound")}
        assert single["problems"][[p["name"] for p in probs].index(rec["name"])]["optimum"] == rec["optimum"]
        assert rec["optimum"] == pytest.approx(_brute_force(path), rel=1e-9)
        optima.append(rec["optimum"])
    summ = data["model"]
    assert summ["layers_proven"] == 3 and summ["summed_optimum"] == pytest.approx(sum(optima), rel=1e-12)
    assert [lay["name"] for lay in summ["layers"]] == ["stem.conv", "attn.q", "head.fc"]
    for m in summ["methods"]:
        losses = [next(r for r in p["results"] if r["method"] == m["method"])["loss"] for p in probs]
        assert m["summed_loss"] == pytest.approx(sum(losses), rel=1e-12)
        true = (sum(losses) - sum(optima)) / sum(optima)
        assert m["gap"] == m["gap_low"] == m["gap_high"] == pytest.approx(true, rel=1e-9, abs=1e-15)
        gaps = [(loss - o) / o for loss, o in zip(losses, optima)]
        assert m["median_gap_low"] == pytest.approx(np.median(gaps), abs=1e-12)
        assert m["worst_gap_high"] == pytest.approx(max(gaps), abs=1e-12)
        excess = sorted(((loss - o, p["name"]) for loss, o, p in zip(losses, optima, probs) if loss - o > 0),
                        key=lambda t: -t[0])
        assert [w["name"] for w in m["worst_layers"]] == [n for _, n in excess]


def test_without_proofs_the_model_interval_holds_the_true_gap(model, tmp_path):
    root, manifest = model
    optima = [_brute_force(str(root / "layers" / f"{f}.npz")) for f in ("conv", "tok", "dense")]
    data = _json(tmp_path, manifest, "--methods", "tree,nearest,floor,stochastic", "--tree-nodes", "3")
    summ = data["model"]
    assert summ["summed_optimum"] is None
    assert summ["summed_lower_bound"] <= sum(optima) * (1 + 1e-12) <= summ["summed_best_known"] * (1 + 1e-12)
    assert summ["summed_lower_bound"] > 0
    some_open = False
    for m in summ["methods"]:
        losses = [next(r for r in p["results"] if r["method"] == m["method"])["loss"] for p in data["problems"]]
        true = (sum(losses) - sum(optima)) / sum(optima)
        assert m["gap_low"] - 1e-12 <= true <= m["gap_high"] + 1e-12
        some_open |= m["gap_low"] < m["gap_high"]
        gaps = [(loss - o) / o for loss, o in zip(losses, optima)]
        assert m["median_gap_low"] - 1e-12 <= np.median(gaps) <= m["median_gap_high"] + 1e-12
        assert m["worst_gap_low"] - 1e-12 <= max(gaps) <= m["worst_gap_high"] + 1e-12
    assert some_open  # the budget of 3 nodes proves nothing: the intervals are real intervals


def test_a_lower_bound_of_zero_leaves_the_upper_end_open(model, tmp_path, capsys):
    root, manifest = model
    data = _json(tmp_path, manifest, "--methods", "nearest,floor")  # no method certifies a bound
    summ = data["model"]
    assert summ["summed_lower_bound"] == 0.0
    for m in summ["methods"]:
        assert m["gap_high"] is None and m["worst_gap_high"] is None and m["gap_low"] >= 0
    assert "inf]" in capsys.readouterr().out


def test_rerun_with_the_store_runs_nothing_and_prints_the_same(model, tmp_path, monkeypatch):
    root, manifest = model
    store = str(tmp_path / "s.sqlite")
    first = _json(tmp_path, manifest, "--methods", "tree,anneal,stochastic", "--store", store, name="a.json")

    real, ran = harness.run_task, []

    def counted(task):
        ran.append(task.name)
        return real(task)

    monkeypatch.setattr(harness, "run_task", counted)
    again = _json(tmp_path, manifest, "--methods", "tree,anneal,stochastic", "--store", store, name="b.json")
    assert ran == [] and again == first
    # a layer whose rows were lost is the only one run again
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM results WHERE problem_name = 'attn.q'")
    third = _json(tmp_path, manifest, "--methods", "tree,anneal,stochastic", "--store", store, name="c.json")
    assert sorted(set(ran)) == ["attn.q"] and len(ran) == 3
    assert _strip(third["problems"][1]["results"]) == _strip(first["problems"][1]["results"])
    assert third["model"]["methods"][0]["summed_loss"] == first["model"]["methods"][0]["summed_loss"]


def test_two_jobs_give_the_numbers_of_one(model, tmp_path):
    root, manifest = model
    one = _json(tmp_path, manifest, "--methods", "tree,anneal,stochastic,gptq", "--jobs", "1", name="j1.json")
    two = _json(tmp_path, manifest, "--methods", "tree,anneal,stochastic,gptq", "--jobs", "2", name="j2.json")
    for a, b in zip(one["problems"], two["problems"]):
        assert _strip(a["results"]) == _strip(b["results"])
    for a, b in zip(one["model"]["methods"], two["model"]["methods"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_prints_each_layer_table_in_forward_order_then_the_model_summary(model, capsys):
    root, manifest = model
    assert _run(["--model", manifest, "--methods", "tree,nearest", "--progress"]) == 0
    out, err = capsys.readouterr()
    heads = [out.index(f"{n}: 2 rows") if n != "attn.q" else out.index(f"{n}: 3 rows")
             for n in ("stem.conv", "attn.q", "head.fc")]
    assert heads == sorted(heads) and out.index("model tiny (onnx, 3 layers") > heads[-1]
    assert "where each method loses most" in out and "6/6" in err  # the bar counted every task


def test_two_layers_with_the_same_file_content_both_count(model, tmp_path, capsys):
    root, manifest = model
    d = tmp_path / "twice"
    shutil.copytree(root / "layers", d / "layers")
    shutil.copy(d / "layers" / "dense.npz", d / "layers" / "dense2.npz")
    man = json.loads((root / "manifest.json").read_text())
    man["layers"].append(dict(man["layers"][0], name="head.fc2", file="layers/dense2.npz", index=3))
    (d / "manifest.json").write_text(json.dumps(man))
    once = _json(tmp_path, manifest, "--methods", "tree,nearest", name="once.json")
    data = _json(tmp_path, str(d), "--methods", "tree,nearest", name="twice.json")
    assert "reported once" in capsys.readouterr().err and len(data["problems"]) == 3
    assert data["model"]["n_layers"] == 4
    fc = next(p for p in once["problems"] if p["name"] == "head.fc")
    for a, b in zip(once["model"]["methods"], data["model"]["methods"]):
        extra = next(r["loss"] for r in fc["results"] if r["method"] == a["method"])
        assert b["summed_loss"] == pytest.approx(a["summed_loss"] + extra, rel=1e-15)


def test_csv_carries_the_json(model, tmp_path):
    root, manifest = model
    out = tmp_path / "m.csv"
    data = _json(tmp_path, manifest, "--methods", "tree,nearest", "--tree-nodes", "3", "--csv", str(out))
    rows = list(csv.DictReader(out.open()))
    layer_rows = [r for r in rows if r["scope"] == "layer"]
    assert len(layer_rows) == 6
    for r in layer_rows:
        rec = next(p for p in data["problems"] if p["name"] == r["layer"])
        res = next(x for x in rec["results"] if x["method"] == r["method"])
        assert float(r["loss"]) == res["loss"] and float(r["gap_low"]) == res["gap_low"]
        assert float(r["best_known"]) == rec["best_known"] and float(r["lower_bound"]) == rec["lower_bound"]
    for m in data["model"]["methods"]:
        r = next(r for r in rows if r["scope"] == "model" and r["method"] == m["method"])
        for k in ("gap_low", "gap_high", "median_gap_low", "median_gap_high", "worst_gap_low", "worst_gap_high"):
            assert float(r[k]) == m[k]
        assert float(r["loss"]) == m["summed_loss"]
        assert r["loses_most"] == ";".join(w["name"] for w in m["worst_layers"])


def test_plot_draws_the_depth_plot_or_names_the_missing_package(model, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    root, manifest = model
    assert _run(["--model", manifest, "--methods", "tree,nearest", "--quiet", "--plot", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "model_gaps.png").stat().st_size > 1000
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    capsys.readouterr()
    assert _run(["--model", manifest, "--methods", "nearest", "--quiet", "--plot", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0]


def test_summary_of_an_infinite_layer_gap_is_inf_not_a_number(model):
    """A layer whose proven optimum is 0 while a method's loss is not: that method's gap is
    infinite (low end inf), and so are its model gap and worst layer gap."""
    root, manifest = model
    man = load_manifest(manifest)
    recs = []
    for k, lay in enumerate(man.layers):
        opt = 0.0 if k == 0 else 1.0
        loss = 0.5 if k == 0 else 2.0
        recs.append({"n_rows": 2, "n_vars": 4, "optimum": opt, "best_known": opt, "lower_bound": opt, "results": [
            {"method": "m", "loss": loss, "optimal": False, "gap": None if k == 0 else 1.0,
             "gap_low": None if k == 0 else 1.0, "gap_high": None if k == 0 else 1.0, "seconds": 0.0}]})
    m = model_summary(man, recs, ["m"])["methods"][0]
    assert m["summed_loss"] == 4.5 and m["gap"] == pytest.approx(1.25)  # (4.5 - 2) / 2
    assert m["worst_gap_low"] == math.inf and m["median_gap_low"] == 1.0
    assert [w["name"] for w in m["worst_layers"]] == ["attn.q", "head.fc", "stem.conv"]


# ----------------------------------------------------------------------------- bad manifests
def _bad(root, change):
    man = json.loads((root / "manifest.json").read_text())
    change(man)
    return man


def _set(layer, key, value):
    def f(man):
        if value is KeyError:
            del man["layers"][layer][key]
        else:
            man["layers"][layer][key] = value
    return f


BAD = [
    ("missing layer key", _set(0, "fan_in", KeyError), "missing key(s) ['fan_in']"),
    ("missing top key", lambda m: m.pop("source"), "missing key(s) ['source']"),
    ("unknown key", _set(1, "bitz", 4), "unknown key(s) ['bitz']"),
    ("wrong type", _set(0, "out", "2"), "'out' must be an integer >= 1, found '2'"),
    ("bool for int", _set(0, "index", True), "'index' must be an integer >= 0"),
    ("float for int", _set(2, "samples", 4.0), "'samples' must be an integer >= 1"),
    ("bad kind", _set(0, "kind", "attention"), "'kind' must be 'conv' or 'linear'"),
    ("bad format", lambda m: m.update(format="onnx"), "'format' must be 'qubo-reference-capture'"),
    ("bad version", lambda m: m.update(version=2), "'version' must be 1"),
    ("no layers", lambda m: m.update(layers=[]), "'layers' must be a non-empty list"),
    ("bad grid", _set(0, "grid", {"source": "magic"}), "'grid' must be an object whose 'source'"),
    ("positions type", _set(1, "positions", "9"), "'positions' must be an integer >= 1, found '9'"),
    ("folded_bn type", _set(1, "folded_bn", 1), "'folded_bn' must be true or false"),
    ("input_shape", _set(2, "input_shape", [4, 0, 5]), "'input_shape' must be a list of 2 or 3 or 4 integers >= 1"),
    ("empty model name", lambda m: m.update(model=" "), "'model' must be a non-empty string"),
    ("bad source", lambda m: m.update(source="keras"), "'source' must be 'onnx' or 'torch'"),
    ("layer not an object", lambda m: m["layers"].append(3), "layer 3: must be an object, found int"),
    ("geometry on linear", _set(0, "stride", [1]), "apply to a conv layer"),
    ("bad geometry", _set(1, "padding", [-1, 0]), "'padding' must be a list of 1 or 2 or 4 integers >= 0"),
    ("shape vs fan-in", _set(0, "weight_shape", [2, 7]), "does not give 'out' 2 rows of 'fan_in' 6"),
    ("manifest vs file", lambda m: [_set(0, "out", 3)(m), _set(0, "weight_shape", [3, 6])(m)],
     "the file holds 2 rows of fan-in 6"),
    ("conv geometry vs file", _set(1, "stride", [1, 1]), "the file's stride is [2, 2]"),
    ("conv file as linear", lambda m: m["layers"][1].update(kind="linear", weight_shape=[2, 6], stride=None,
                                                            padding=None, dilation=None, groups=None),
     "the file holds a convolution, the manifest says 'kind' 'linear'"),
    ("conv kernel vs file", _set(1, "weight_shape", [2, 1, 3, 2]), "the file's kernel is [2, 1, 2, 3]"),
    ("repeated name", _set(2, "name", "head.fc"), "layers repeat 'name' ['head.fc']"),
    ("repeated file", _set(2, "file", "./layers/dense.npz"), "layers repeat 'file'"),
    ("file outside", _set(0, "file", "../outside.npz"), "lies outside the manifest's directory"),
    ("absolute file", _set(0, "file", "/etc/hosts"), "must be a path relative to the manifest's directory"),
    ("missing file", _set(0, "file", "layers/gone.npz"), "'file' 'layers/gone.npz': no such file"),
]


@pytest.mark.parametrize("what, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_manifest_exits_2_with_one_line(model, tmp_path, capsys, what, change, message):
    root, _ = model
    (tmp_path / "outside.npz").write_bytes((root / "layers" / "dense.npz").read_bytes())
    d = tmp_path / "m"
    shutil.copytree(root / "layers", d / "layers")
    (d / "manifest.json").write_text(json.dumps(_bad(root, change)))
    assert main(["--model", str(d), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a JSON manifest"),
    ("[1, 2]", "a manifest is a JSON object, found list"),
    ('{"format": "qubo-reference-capture", "format": "x"}', "given twice"),
    ('{"version": NaN}', "NaN is not a JSON number"),
    ("\xff\xfe", "not a JSON manifest"),
])
def test_a_manifest_that_is_not_json_exits_2(tmp_path, capsys, text, message):
    path = tmp_path / "manifest.json"
    path.write_bytes(text.encode("latin-1"))
    assert main(["--model", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_link_out_of_the_directory_and_a_missing_manifest_are_refused(model, tmp_path, capsys):
    root, _ = model
    d = tmp_path / "m"
    d.mkdir()
    assert main(["--model", str(d)]) == 2
    assert "manifest.json: no such file" in capsys.readouterr().err
    os.symlink(root / "layers" / "dense.npz", d / "dense.npz")  # inside by name, outside in fact
    man = _bad(root, lambda m: None)
    man["layers"] = [dict(man["layers"][0], file="dense.npz")]
    (d / "manifest.json").write_text(json.dumps(man))
    assert main(["--model", str(d)]) == 2
    assert "lies outside the manifest's directory" in capsys.readouterr().err


# ------------------------------------------------------------- the summary's soundness (property)
@st.composite
def _layer_facts(draw):
    """Per layer: optimum O >= 0 (often 0 or tied), a certified bound 0 <= LB <= O, a best known
    B >= O, and each of two methods' losses L >= B (often equal to B); some optima proven.
    Magnitudes from 1e-200 to 1e200 (a layer's loss is in the unit of its own inputs)."""
    n = draw(st.integers(1, 5))
    facts = []
    for _ in range(n):
        scale = 10.0 ** draw(st.sampled_from([-200, -3, 0, 5, 200]))
        opt = scale * draw(st.sampled_from([0.0, 1.0, 2.5, 1e-9]))
        lb = opt * draw(st.sampled_from([0.0, 0.5, 1.0]))
        best = opt + scale * draw(st.sampled_from([0.0, 0.0, 0.25, 3.0]))
        losses = [best + scale * draw(st.sampled_from([0.0, 0.1, 7.0])) for _ in range(2)]
        facts.append((opt, lb, best, losses, draw(st.booleans()) and best == opt))
    return facts


def _record(opt, lb, best, losses, proven):
    """A layer record as compare's aggregate reports it (docs/guide/compare.md, gap intervals),
    computed here from the definitions: the oracle of the property below."""
    def rel(v, ref):
        return (v - ref) / ref if ref > 0 else (0.0 if v == 0 else None)

    results = []
    for name, loss in zip("ab", losses):
        if proven:
            lo = hi = gap = rel(loss, opt)
        else:
            gap, lo, hi = None, rel(loss, best), (None if lb <= 0 else (loss - lb) / lb)
        results.append({"method": name, "loss": loss, "optimal": proven and loss == opt, "gap": gap,
                        "gap_low": lo, "gap_high": hi, "seconds": 0.0})
    return {"n_rows": 1, "n_vars": 1, "optimum": opt if proven else None, "best_known": best,
            "lower_bound": opt if proven else lb, "results": results}


def _inside(x, lo, hi):
    lo = math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    tol = 1e-12 * max(1.0, abs(x)) if math.isfinite(x) else 0.0
    return lo - tol <= x <= hi + tol


@given(_layer_facts())
def test_model_intervals_hold_the_true_gaps(facts):
    layers = tuple(ModelLayer(i, f"l{i}", "linear", f"l{i}.npz", {}) for i in range(len(facts)))
    man = Manifest("manifest.json", "m", "onnx", layers, tuple(range(len(facts))))
    summ = model_summary(man, [_record(*f) for f in facts], ["a", "b"])
    opt = math.fsum(f[0] for f in facts)
    for k, m in enumerate(summ["methods"]):
        losses = [f[3][k] for f in facts]
        S = math.fsum(losses)
        assert m["summed_loss"] == S
        true = (S - opt) / opt if opt > 0 else (0.0 if S == 0 else math.inf)
        assert _inside(true, m["gap_low"], m["gap_high"])
        gaps = [(L - f[0]) / f[0] if f[0] > 0 else (0.0 if L == 0 else math.inf) for L, f in zip(losses, facts)]
        assert _inside(float(np.median(gaps)), m["median_gap_low"], m["median_gap_high"])
        assert _inside(max(gaps), m["worst_gap_low"], m["worst_gap_high"])
        for w in m["worst_layers"]:
            f = facts[w["index"]]
            assert w["excess_low"] <= f[3][k] - f[0] <= w["excess_high"]


def test_a_bound_above_the_best_known_by_rounding_gives_no_inverted_interval():
    """check_bound lets a certified bound exceed a found loss by float64 rounding; the model's
    interval then takes the bound as the best known (as gap_interval does per layer), so no end
    of it lies below the other or below 0 (the true gap of a best-known loss is >= 0)."""
    B = 1.0
    layers = (ModelLayer(0, "l0", "linear", "l0.npz", {}),)
    man = Manifest("manifest.json", "m", "onnx", layers, (0,))
    rec = {"n_rows": 1, "n_vars": 1, "optimum": None, "best_known": B, "lower_bound": B * (1 + 1e-12),
           "results": [{"method": "a", "loss": B, "optimal": False, "gap": None, "gap_low": 0.0,
                        "gap_high": 0.0, "seconds": 0.0}]}
    summ = model_summary(man, [rec], ["a"])
    m = summ["methods"][0]
    assert summ["summed_lower_bound"] <= summ["summed_best_known"]
    assert 0.0 <= m["gap_low"] <= m["gap_high"]
