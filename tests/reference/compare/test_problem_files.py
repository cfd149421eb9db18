"""Conv and token layer files for ``--problem``: what is read, and every refusal (exit 2, one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference.compare.cli import main
from reference.conv import conv_loss
from reference.grid import fit_grid
from reference.compare.problem_files import load_layer
from solvers import ConvProblem, LayerProblem


def _conv(rng, c_out=3, c_in=2, k=3, n=4, hw=5):
    return rng.normal(size=(c_out, c_in, k, k)), rng.normal(size=(n, c_in, hw, hw))


def test_conv_file_is_a_conv_problem_and_json_loss_is_the_local_loss(tmp_path):
    rng = np.random.default_rng(0)
    W, X = _conv(rng, c_out=4, c_in=4)
    path = tmp_path / "dw.npz"
    np.savez(path, W=W[:, :2], X=X, stride=2, padding=np.array([1, 0]), dilation=1, groups=2, bits=3)
    prob = load_layer(str(path))
    assert isinstance(prob, ConvProblem)
    assert prob.geometry.stride == (2, 2) and prob.geometry.padding == (1, 0) and prob.geometry.groups == 2
    out = tmp_path / "o.json"
    assert main(["--problem", str(path), "--methods", "nearest,exhaustive", "--json", str(out), "--jobs", "1"]) == 0
    res = {r["method"]: r for r in json.loads(out.read_text())["problems"][0]["results"]}
    grid = fit_grid(W[:, :2].reshape(4, -1), bits=3)
    s = grid.scale.reshape(-1, 1)
    w_hat = s * np.round(W[:, :2].reshape(4, -1) / s)  # nearest, symmetric grid
    w_hat = np.clip(w_hat, s * grid.qmin, s * grid.qmax).reshape(W[:, :2].shape)
    want = conv_loss(W[:, :2], X, w_hat, stride=2, padding=(1, 0), groups=2)
    assert res["nearest"]["loss"] == pytest.approx(want, rel=1e-10)
    assert res["exhaustive"]["optimal"] and res["exhaustive"]["loss"] <= want * (1 + 1e-12)


def test_conv_file_with_a_per_channel_grid(tmp_path):
    rng = np.random.default_rng(1)
    W, X = _conv(rng)
    path = tmp_path / "c.npz"
    np.savez(path, W=W, X=X, scale=np.array([0.1, 0.2, 0.3]), qmin=-8, qmax=7, padding=1)
    prob = load_layer(str(path))
    assert prob.grid.scale.size == 3 and prob.shape == (3, 18)


def test_token_file_equals_the_flattened_file(tmp_path):
    rng = np.random.default_rng(2)
    W, X = rng.normal(size=(3, 5)), rng.normal(size=(4, 6, 5))
    np.savez(tmp_path / "t.npz", W=W, X=X)
    np.savez(tmp_path / "f.npz", W=W, X=X.reshape(24, 5))
    t, f = load_layer(str(tmp_path / "t.npz")), load_layer(str(tmp_path / "f.npz"))
    assert type(t) is LayerProblem
    np.testing.assert_array_equal(t.G, f.G)


def _bad():
    rng = np.random.default_rng(3)
    W, X = _conv(rng)
    return [
        (dict(W=W, X=X[:, :1]), "X has C_in = 1 input channels (X.shape[1]), but W of shape (3, 2, 3, 3) with "
                                "groups = 1 takes C_in = W.shape[1] * groups = 2"),
        (dict(W=W, X=X, groups=3), "groups must divide C_in"),
        (dict(W=W[:, :1], X=X, groups=2, bits=3), "groups must divide C_out"),
        (dict(W=W, X=X[:, :, :2]), "output map is empty"),
        (dict(W=W, X=X, padding=-1), "padding must be >= 0"),
        (dict(W=W, X=X, stride=0), "stride must be >= 1"),
        (dict(W=W, X=X, dilation=np.array([1, 2, 3])), "dilation must be an int or two ints"),
        (dict(W=W, X=X, groups=1.5), "groups must be an integer"),
        (dict(W=W, X=X[:, :, :, :, None]), "X must be 4-D"),
        (dict(W=W, X=X[:0]), "X must hold at least one sample"),
        (dict(W=W, X=X, scale=np.array([0.1, 0.2]), qmin=-8, qmax=7), "scale"),
        (dict(W=W[0, 0], X=X[0, 0], stride=2), "apply to a convolution"),
        (dict(W=W[0, 0], X=np.ones((2, 3, 4))), "X has 4 columns but W has 3 inputs"),
        (dict(W=W[0], X=X), "W must be 2-D (out, in) or 4-D"),
        (dict(W=W[0, 0], X=np.ones((2, 3, 4, 3))), "X must be 2-D (N, in) or, for token inputs, 3-D"),
    ]


@pytest.mark.parametrize("content, message", _bad())
def test_bad_conv_and_token_files_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    assert main(["--problem", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err, err


# ---------------------------------------------------------------------------- safetensors and captured inputs
def test_layer_from_safetensors_and_npy_equals_the_direct_file(tmp_path):
    from safetensors.numpy import save_file

    from reference.compare.problem_files import main as pf_main

    rng = np.random.default_rng(9)
    W, X = _conv(rng, c_out=4, c_in=2)
    save_file({"features.0.weight": W.astype(np.float32), "features.0.bias": np.zeros(4, np.float32)},
              str(tmp_path / "model.safetensors"))
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    out = tmp_path / "layer.npz"
    assert pf_main(["--weights", str(tmp_path / "model.safetensors"), "--tensor", "features.0.weight",
                    "--inputs", str(tmp_path / "x.npy"), "--out", str(out), "--bits", "3", "--stride", "2",
                    "--padding", "1", "0"]) == 0
    prob = load_layer(str(out))
    ref = ConvProblem(W.astype(np.float32), fit_grid(W.astype(np.float32).reshape(4, -1), bits=3),
                      X.astype(np.float32), stride=2, padding=(1, 0))
    np.testing.assert_array_equal(prob.G, ref.G)
    np.testing.assert_array_equal(prob.W, ref.W)


def test_safetensors_refusals(tmp_path, capsys):
    from safetensors.numpy import save_file

    from reference.compare.problem_files import main as pf_main

    save_file({"a.weight": np.ones((2, 3), np.float32), "a.index": np.ones((2, 3), np.int64)},
              str(tmp_path / "m.safetensors"))
    np.save(tmp_path / "x.npy", np.ones((4, 3)))
    base = ["--weights", str(tmp_path / "m.safetensors"), "--inputs", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "o.npz")]
    for tensor, msg in (("b.weight", "no tensor named 'b.weight'; it holds 2: a.index, a.weight"),
                        ("a.index", "must hold floats, found int64")):
        assert pf_main(base + ["--tensor", tensor]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and msg in err, err
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    assert pf_main(["--weights", str(tmp_path / "bad.safetensors")] + base[2:] + ["--tensor", "a"]) == 2
    assert "cannot read tensor" in capsys.readouterr().err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert pf_main(base[:2] + ["--inputs", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "o.npz"),
                               "--tensor", "a.weight"]) == 2
    assert "pickled data" in capsys.readouterr().err
    np.save(tmp_path / "x4.npy", np.ones((4, 4)))
    assert pf_main(base[:2] + ["--inputs", str(tmp_path / "x4.npy"), "--out", str(tmp_path / "o.npz"),
                               "--tensor", "a.weight"]) == 2
    assert "X has 4 columns but W has 3 inputs" in capsys.readouterr().err


def test_write_layer_refuses_an_output_that_is_not_npz(tmp_path, capsys):
    from reference.compare.problem_files import main as pf_main

    assert pf_main(["--weights", "w.safetensors", "--tensor", "a", "--inputs", "x.npy",
                    "--out", str(tmp_path / "layer.bin")]) == 2
    assert "must end with .npz" in capsys.readouterr().err
