"""Capture from ONNX is exact: every problem file's W and X reproduce the layer's own output in the
model (onnxruntime's values), with folded BatchNorm where it applies; the files pose Eq. 20 over
the kept positions; bad input is refused before anything is written. Oracles: onnxruntime running
the model itself, and a direct numpy convolution (tests.capture.onnx_model.conv_ref)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from reference.capture import capture  # noqa: E402
from reference.capture.__main__ import main  # noqa: E402
from reference.compare.problem_files import load_layer  # noqa: E402
from tests.capture.onnx_model import N_IN, build, conv_ref, run_with_outputs, weights  # noqa: E402

#: layer -> (the model's value the file must reproduce, the BN folded into it or None, conv bias)
EXPECT = {"conv1": ("z1", "bn1", "conv1.bias"), "conv2": ("y2", None, None), "conv3": ("z3", "bn3", None),
          "conv4": ("y4", None, "conv4.bias"), "conv5": ("y5", None, None), "tok": ("tokens", None, None),
          "fc": ("y", None, "fc.bias")}
EPS = 1e-3


def _inputs(n=5, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *N_IN)).astype(np.float32)


def _bias(w, layer, folded):
    """The output's additive term: the conv bias, through the BN when it is folded."""
    _, bn, b = EXPECT[layer]
    out = w[layer + ".weight"].shape[0] if layer != "tok" else 5
    bias = np.zeros(out) if b is None else w[b].astype(np.float64)
    if bn is not None and folded:
        f = w[f"{bn}.weight"] / np.sqrt(w[f"{bn}.running_var"].astype(np.float64) + EPS)
        bias = (bias - w[f"{bn}.running_mean"]) * f + w[f"{bn}.bias"]
    return bias


def _file_output(data, entry):
    W, X = data["W"], data["X"].astype(np.float64)
    if entry["kind"] == "linear":
        return X @ W.T
    return conv_ref(X, W, tuple(data["stride"]), tuple(data["padding"]), tuple(data["dilation"]), int(data["groups"]))


def _check_layer(out_dir, entry, model_values, w, fold):
    data = dict(np.load(os.path.join(out_dir, entry["file"])))
    got = _file_output(data, entry)
    value, bn, _ = EXPECT[entry["name"]]
    want = model_values[value if (bn is None or fold) else "y" + value[1:]].astype(np.float64)
    bias = _bias(w, entry["name"], fold)
    if entry["kind"] == "conv":
        got = got + bias[None, :, None, None]
        if entry["layout"] == "windows":
            pos = np.load(os.path.join(out_dir, entry["positions_file"]))
            assert got.shape[2:] == (1, 1) and len(pos) == entry["positions"]
            want = want[pos[:, 0], :, pos[:, 1], pos[:, 2]]
            got = got[:, :, 0, 0]
        elif entry["positions_file"]:  # whole inputs of the kept samples
            pos = np.load(os.path.join(out_dir, entry["positions_file"]))
            assert pos.ndim == 1 and len(pos) == entry["samples"] < 5
            want = want[pos]
    else:
        got = got + bias
        if entry["layout"] == "rows" and entry["positions"] is not None:  # sampled tokens
            pos = np.load(os.path.join(out_dir, entry["positions_file"]))
            want = want[pos[:, 0], pos[:, 1]]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    return data


@pytest.mark.parametrize("max_positions", [None, 7, 40])
@pytest.mark.parametrize("fold", [True, False])
def test_every_layer_reproduces_its_output_in_the_model(tmp_path, max_positions, fold):
    model, x = build(), _inputs()
    man = capture(model, x, tmp_path / "out", fold_bn=fold, max_positions=max_positions, batch_size=2)
    assert [e["name"] for e in man["layers"]] == list(EXPECT)
    assert [e["index"] for e in man["layers"]] == list(range(7))
    values = run_with_outputs(model, x, sorted({v for v, _, _ in EXPECT.values()} | {"y1", "y3"} - {"y"}) + ["y"])
    w = weights()
    for entry in man["layers"]:
        data = _check_layer(tmp_path / "out", entry, values, w, fold)
        assert entry["folded_bn"] == (fold and EXPECT[entry["name"]][1] is not None)
        assert entry["fan_in"] == int(np.prod(data["W"].shape[1:]))
        load_layer(str(tmp_path / "out" / entry["file"]))  # the format compare --problem reads
    by = {e["name"]: e for e in man["layers"]}
    assert by["conv5"]["folded_bn"] is False  # BN5's input is also used by the Add
    assert by["conv4"]["padding"] == [0, 1, 0, 1] and by["conv1"]["stride"] == [2, 2]
    assert by["conv1"]["input_shape"] == [5, 3, 9, 9]  # after the Pad node: what the conv receives
    if max_positions == 7:  # fewer than one sample's 16 positions: windows
        assert by["conv2"]["positions"] == 7 and by["conv2"]["positions_total"] == 80
        assert by["conv2"]["layout"] == "windows" and by["conv2"]["samples"] == 5
        assert by["tok"]["positions"] == 7 and by["fc"]["positions"] is None
    elif max_positions == 40:  # two whole 9x9 inputs (162 numbers a channel) beat 40 3x3 windows (360)
        assert by["conv1"]["layout"] == "images" and by["conv1"]["samples"] == 2
        assert by["conv1"]["positions"] == 32 and by["conv1"]["positions_total"] == 80
        assert by["conv3"]["layout"] == "images"  # 5x5 dilated windows: 40 * 25 > 2 * 8 * 8
    else:
        assert by["conv1"]["positions"] == 5 * 4 * 4 and by["tok"]["positions"] == 80
    with open(tmp_path / "out" / "manifest.json") as fh:
        assert json.load(fh) == json.loads(json.dumps(man))


def test_folding_gives_the_dead_channel_a_zero_row(tmp_path):
    capture(build(), _inputs(), tmp_path / "o")
    W = np.load(tmp_path / "o" / "002_conv3.npz")["W"]
    assert np.all(W[2] == 0) and np.all(np.abs(W[[0, 1, 3]]).reshape(3, -1).max(axis=1) > 0)


@pytest.mark.parametrize("max_positions", [None, 11, 40])
def test_the_files_pose_eq20_over_the_kept_positions(tmp_path, max_positions):
    man = capture(build(), _inputs(4), tmp_path / "o", max_positions=max_positions)
    rng = np.random.default_rng(0)
    for entry in man["layers"]:
        path = tmp_path / "o" / entry["file"]
        p = load_layer(str(path))
        up = rng.integers(0, 2, size=p.shape)
        E = p.w_hat(up) - p.W  # (out, fan_in)
        data = dict(np.load(path))
        err = _file_output({**data, "W": E.reshape(data["W"].shape)}, entry)
        count = err.shape[0] * (err.shape[2] * err.shape[3] if entry["kind"] == "conv" else
                                (err.shape[1] if err.ndim == 3 else 1))
        assert count == (entry["positions"] or entry["samples"])
        assert p.loss(up) == pytest.approx(float(np.sum(err**2)) / count, rel=1e-9)


def test_same_seed_same_files_other_seed_other_positions(tmp_path):
    x = _inputs()
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        capture(build(), x, tmp_path / name, max_positions=9, seed=seed)
    a, b, c = (np.load(tmp_path / d / "001_conv2.positions.npy") for d in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.load(tmp_path / "a" / "001_conv2.npz")["X"], np.load(tmp_path / "b" / "001_conv2.npz")["X"])


def _aimet(man_dir, tmp_path, version="0.6.1"):
    """Per-channel symmetric min-max AIMET encodings of the folded weights (scale max|w|/7, offset -8)."""
    enc = {}
    with open(man_dir / "manifest.json") as fh:
        man = json.load(fh)
    for e in man["layers"]:
        W = np.load(man_dir / e["file"])["W"].reshape(e["out"], -1)
        enc[e["weight"]] = [float(s) for s in np.abs(W).max(axis=1) / 7]
    if version == "0.6.1":
        body = {"version": "0.6.1", "activation_encodings": {}, "param_encodings": {
            k: [{"bitwidth": 4, "dtype": "int", "is_symmetric": "True", "offset": -8, "scale": s,
                 "min": -8 * s, "max": 7 * s} for s in v] for k, v in enc.items()}}
    else:
        body = {"version": "1.0.0", "activation_encodings": [], "param_encodings": [
            {"name": k, "dtype": "INT", "enc_type": "PER_CHANNEL", "bw": 4, "is_sym": True, "scale": v,
             "offset": [-8] * len(v)} for k, v in enc.items()]}
    path = tmp_path / f"enc-{version}.json"
    path.write_text(json.dumps(body))
    return path, enc


@pytest.mark.parametrize("version", ["0.6.1", "1.0.0"])
def test_aimet_encodings_give_the_grid_and_a_dead_channel_is_accepted(tmp_path, version):
    capture(build(), _inputs(), tmp_path / "ref")
    path, enc = _aimet(tmp_path / "ref", tmp_path, version)
    man = capture(build(), _inputs(), tmp_path / "o", encodings=path)
    for e in man["layers"]:
        data = np.load(tmp_path / "o" / e["file"])
        assert e["grid"]["source"] == "encodings" and e["grid"]["bits"] == 4
        assert int(data["qmin"]) == 0 and int(data["qmax"]) == 15 and np.all(data["zero_point"] == 8)
        np.testing.assert_array_equal(data["scale"], enc[e["weight"]])
        p = load_layer(str(tmp_path / "o" / e["file"]))
        if e["name"] == "conv3":  # its dead channel has scale 0: fixed at 0, no variable
            assert e["grid"]["zero_scale_channels"] == 1 and p.free[2].size == 0


def _nothing_written(out):
    assert not os.path.exists(out)


def test_encodings_that_do_not_match_are_refused(tmp_path):
    capture(build(), _inputs(), tmp_path / "ref")
    path, enc = _aimet(tmp_path / "ref", tmp_path)
    body = json.loads(path.read_text())
    del body["param_encodings"]["conv2.weight"]
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"encodings: no encoding for 1 of the 7 captured layers: conv2 \(conv2.weight\)"):
        capture(build(), _inputs(), tmp_path / "o", encodings=path)
    _nothing_written(tmp_path / "o")
    body["param_encodings"]["conv2.weight"] = body["param_encodings"]["conv1.weight"][:3]
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="layer 'conv2' has 8 output channels but its encoding has 3 entries"):
        capture(build(), _inputs(), tmp_path / "o", encodings=path)
    body["param_encodings"]["conv2.weight"] = [dict(e, scale=0.0) for e in body["param_encodings"]["conv1.weight"]]
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"layer 'conv2': grid scale is 0 for row 0 \(output channel 0\)"):
        capture(build(), _inputs(), tmp_path / "o", encodings=path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="encodings: .*not a JSON file"):
        capture(build(), _inputs(), tmp_path / "o", encodings=path)
    _nothing_written(tmp_path / "o")


def test_bad_models_and_inputs_are_refused_before_anything_is_written(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "no_layers",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    relu = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="model: no Conv"):
        capture(relu, np.ones((2, 4), np.float32), out)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01 this is not a protobuf \xff\xff")
    with pytest.raises(ValueError, match="model: .*junk.onnx: not a loadable ONNX file"):
        capture(junk, _inputs(), out)
    with pytest.raises(ValueError, match=r"inputs: shape \[2, 3, 7, 8\] does not match the model's input 'x'"):
        capture(build(), np.ones((2, 3, 7, 8), np.float32), out)
    with pytest.raises(ValueError, match="inputs: shape"):
        capture(build(), np.ones((2, 3, 8), np.float32), out)
    with pytest.raises(ValueError, match="inputs must be finite"):
        capture(build(), np.full((2, 3, 8, 8), np.nan, np.float32), out)
    with pytest.raises(ValueError, match="bits must be"):
        capture(build(), _inputs(), out, bits=1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        capture(build(), _inputs(), out, seed=-1)
    with pytest.raises(ValueError, match="max_positions must be >= 1"):
        capture(build(), _inputs(), out, max_positions=0)
    with pytest.raises(TypeError, match="model_or_path must be a torch.nn.Module, an onnx.ModelProto or the path"):
        capture(object(), _inputs(), out)
    with pytest.raises(ValueError, match="model: no Conv.*layer filter"):
        capture(build(), _inputs(), out, layers=["nothing*"])
    _nothing_written(out)
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(ValueError, match="out_dir: .* is not an empty directory"):
        capture(build(), _inputs(), out)


def test_a_failure_while_writing_leaves_no_manifest_and_no_files(tmp_path, monkeypatch):
    import reference.capture as cap

    calls = []
    real = np.savez

    def failing(path, **arrays):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, **arrays)

    monkeypatch.setattr(cap.np, "savez", failing)
    with pytest.raises(OSError, match="disk full"):
        capture(build(), _inputs(), tmp_path / "o")
    assert len(calls) == 3
    _nothing_written(tmp_path / "o")


def test_layer_filter_keeps_only_matching_layers(tmp_path):
    man = capture(build(), _inputs(), tmp_path / "o", layers=["conv[13]", "fc"])
    assert [e["name"] for e in man["layers"]] == ["conv1", "conv3", "fc"]
    assert sorted(os.listdir(tmp_path / "o")) == ["000_conv1.npz", "001_conv3.npz", "002_fc.npz", "manifest.json"]


def test_cli_writes_the_files_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    import onnx

    model = tmp_path / "tiny.onnx"
    onnx.save(build(), model)
    x = tmp_path / "x.npy"
    np.save(x, _inputs())
    assert main([str(model), "--inputs", str(x), "--out", str(tmp_path / "o"), "--bits", "3",
                 "--max-positions", "20"]) == 0
    out = capture_out = capsys.readouterr().out
    assert "wrote 7 layer files" in capture_out and "000_conv1.npz: conv 8 x 27, BN folded" in out
    with open(tmp_path / "o" / "manifest.json") as fh:
        man = json.load(fh)
    assert man["layers"][0]["grid"] == {"source": "bits", "bits": 3, "method": "mse", "symmetric": True,
                                        "per_channel": True}
    assert int(np.load(tmp_path / "o" / "000_conv1.npz")["bits"]) == 3
    bad = np.ones((2, 3, 5, 5), np.float32)
    np.save(x, bad)
    for argv in ([str(model), "--inputs", str(x), "--out", str(tmp_path / "p")],
                 [str(tmp_path / "missing.onnx"), "--inputs", str(x), "--out", str(tmp_path / "p")],
                 [str(model), "--inputs", str(tmp_path / "none.npy"), "--out", str(tmp_path / "p")],
                 [str(model), "--inputs", str(x), "--out", str(tmp_path / "p"), "--no-fold-bn", "--bits", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        _nothing_written(tmp_path / "p")


def test_a_shared_weight_pools_its_calls_and_refuses_a_position_budget(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="first"),
                           helper.make_node("MatMul", ["h", "w"], ["y"], name="second")], "shared",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])],
                          [numpy_helper.from_array(w, "w")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(1).normal(size=(5, 3, 4)).astype(np.float32)
    man = capture(model, x, tmp_path / "o", batch_size=2)
    (e,) = man["layers"]
    X = np.load(tmp_path / "o" / e["file"])["X"]
    assert e["samples"] == 5 and e["calls_per_pass"] == 2 and X.shape == (10, 3, 4)
    h = x @ w
    assert {tuple(np.round(r.ravel(), 4)) for r in X} == {tuple(np.round(r.ravel(), 4)) for r in np.concatenate([x, h])}
    with pytest.raises(ValueError, match="layer 'first' is called more than once per forward pass"):
        capture(model, x, tmp_path / "p", max_positions=4)
    assert not os.path.exists(tmp_path / "p")


def test_a_layer_too_large_for_a_problem_file_is_refused_naming_the_budget(tmp_path, monkeypatch):
    import reference.compare.problem_files as pf

    monkeypatch.setattr(pf, "MAX_ELEMENTS", 5 * 3 * 9 * 9 - 1)  # conv1's input, less one number
    with pytest.raises(ValueError, match="layer 'conv1': its inputs hold 1215 numbers.*give max_positions"):
        capture(build(), _inputs(), tmp_path / "o")
    _nothing_written(tmp_path / "o")
    capture(build(), _inputs(), tmp_path / "o", max_positions=5)


def test_a_missing_optional_package_is_named_with_its_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ImportError, match=r"'onnx' and 'onnxruntime' \(pip install 'qubo-reference\[onnx\]'\)"):
        capture(build(), _inputs(), tmp_path / "o")
    from reference.capture.torch_source import _import

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"'torch' \(pip install 'qubo-reference\[torch\]'\)"):
        _import()
    _nothing_written(tmp_path / "o")


def test_a_fixed_batch_size_in_the_graph_is_respected(tmp_path):
    model = build()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    man = capture(model, _inputs(), tmp_path / "o", batch_size=4)
    assert man["layers"][0]["samples"] == 5 and man["layers"][0]["input_shape"] == [5, 3, 9, 9]
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    with pytest.raises(ValueError, match="inputs: the model's input 'x' has a fixed batch of 2; give a multiple of 2"):
        capture(model, _inputs(), tmp_path / "p")
    _nothing_written(tmp_path / "p")


def test_a_batchnorm_with_statistics_per_element_is_not_folded(tmp_path):
    """BatchNormalization-7 with spatial=0 keeps one statistic per element (C, H, W), not one per
    output channel: no per-row factor exists, so the conv is captured with its own weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 1, 2, 2)).astype(np.float32)
    stats = {k: rng.uniform(0.5, 2.0, size=(2, 2, 2)).astype(np.float32) for k in "gbmv"}
    inits = [numpy_helper.from_array(W, "w")] + [numpy_helper.from_array(a, k) for k, a in stats.items()]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
             helper.make_node("BatchNormalization", ["y", "g", "b", "m", "v"], ["z"], name="bn", spatial=0)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3, 3])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 7
    man = capture(model, rng.normal(size=(4, 1, 3, 3)).astype(np.float32), tmp_path / "o")
    (e,) = man["layers"]
    assert e["folded_bn"] is False
    np.testing.assert_array_equal(load_layer(str(tmp_path / "o" / e["file"])).W.reshape(W.shape), W)


def test_whole_model_compare_reads_the_manifest_capture_writes(tmp_path, capsys):
    """capture's manifest (run settings, skipped layers, per-layer layout and positions keys) is a
    valid ``--model`` input: compare judges each captured layer, and its per-layer loss of
    ``nearest`` equals the loss of the file's own problem (brute force on the file: the
    ``exhaustive`` proof agrees with ``tree``)."""
    from reference.compare.cli import main as compare_main
    from reference.compare.model_report import load_manifest
    from solvers import solve

    man = capture(build(), _inputs(3), tmp_path / "o", max_positions=7)
    assert {"samples", "seed", "max_positions", "fold_bn", "skipped"} <= set(man)
    layers = load_manifest(str(tmp_path / "o"))
    assert [ly.name for ly in layers.layers] == [e["name"] for e in man["layers"]]
    js = tmp_path / "r.json"
    assert compare_main(["--model", str(tmp_path / "o"), "--methods", "exhaustive,nearest",
                         "--jobs", "1", "--quiet", "--json", str(js)]) == 0
    recs = json.loads(js.read_text())["problems"]
    for e in man["layers"]:
        prob = load_layer(os.path.join(tmp_path / "o", e["file"]))
        near = solve(prob, "nearest").energy
        hits = [r for r in recs if r["name"] == e["name"]]
        assert len(hits) == 1, e["name"]
        got = {r["method"]: r for r in hits[0]["results"]}
        assert np.isclose(got["nearest"]["loss"], near, rtol=1e-12, atol=0)
