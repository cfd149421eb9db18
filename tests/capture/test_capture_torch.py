"""Capture from a PyTorch module is exact: the files' W and X reproduce each layer's output in the
model (recorded by forward hooks on the model's own modules, the oracle), with folded BatchNorm
where it applies. Runs where torch is installed (the ``torch`` extra); skipped otherwise."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from reference.capture import capture  # noqa: E402
from reference.compare.problem_files import load_layer  # noqa: E402
from tests.capture.onnx_model import conv_ref  # noqa: E402


class SameConv(nn.Conv2d):
    """TensorFlow "same" padding applied inside forward (as EfficientNet ports do), then conv2d."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        pads = []
        for size, k, s, d in zip((ih, iw), self.kernel_size, self.stride, self.dilation):
            pads.append(max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0))
        x = F.pad(x, [pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = SameConv(3, 8, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False)  # depthwise
        self.bn3 = nn.BatchNorm2d(8)
        self.conv4 = nn.Conv2d(8, 6, 2, padding="same")  # even kernel: PyTorch pads 0 before, 1 after
        self.conv5 = nn.Conv2d(6, 6, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(6)
        self.tok = nn.Linear(6, 5)
        self.fc = nn.Linear(80, 7)

    def forward(self, x):
        a = F.relu(self.bn1(self.conv1(x)))
        a = F.relu(self.conv2(a))
        a = F.relu(self.bn3(self.conv3(a)))
        y5 = self.conv5(self.conv4(a))
        s = self.bn5(y5) + y5  # conv5's output has a second use: BN5 must not be folded
        t = self.tok(s.flatten(2).transpose(1, 2))  # tokens (N, 16, 6) -> (N, 16, 5)
        return self.fc(t.flatten(1))


def _model(seed=0):
    torch.manual_seed(seed)
    m = Tiny()
    with torch.no_grad():
        for bn in (m.bn1, m.bn3, m.bn5):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
        m.bn3.weight[2] = 0.0  # a dead channel once folded
    return m.eval()


FOLDS = {"conv1": "bn1", "conv3": "bn3"}


def _outputs(model, x) -> dict:
    """Each module's own output, by forward hooks (the oracle)."""
    seen, hooks = {}, []
    for name, mod in model.named_modules():
        if name:
            hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.double())))
    with torch.no_grad():
        model(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return {k: v.numpy() for k, v in seen.items()}


@pytest.mark.parametrize("max_positions", [None, 7, 40])
@pytest.mark.parametrize("fold", [True, False])
def test_every_layer_reproduces_its_output_in_the_model(tmp_path, fold, max_positions):
    model = _model()
    x = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32)
    man = capture(model, x, tmp_path / "o", fold_bn=fold, max_positions=max_positions, batch_size=2)
    assert [e["name"] for e in man["layers"]] == ["conv1", "conv2", "conv3", "conv4", "conv5", "tok", "fc"]
    assert man["source"] == "torch" and model.training is False
    outs = _outputs(model, x)
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    for e in man["layers"]:
        data = dict(np.load(tmp_path / "o" / e["file"]))
        W, X = data["W"], data["X"].astype(np.float64)
        bn = FOLDS.get(e["name"]) if fold else None
        assert e["folded_bn"] == (bn is not None) and e["weight"] == e["name"] + ".weight"
        bias = sd.get(e["name"] + ".bias", np.zeros(e["out"]))
        want = outs[bn or e["name"]]
        if bn:
            f = sd[bn + ".weight"] / np.sqrt(sd[bn + ".running_var"] + model.get_submodule(bn).eps)
            bias = (bias - sd[bn + ".running_mean"]) * f + sd[bn + ".bias"]
        if e["kind"] == "conv":
            got = conv_ref(X, W, tuple(data["stride"]), tuple(data["padding"]), tuple(data["dilation"]),
                           int(data["groups"])) + bias[None, :, None, None]
            if e["layout"] == "windows":
                pos = np.load(tmp_path / "o" / e["positions_file"])
                want, got = want[pos[:, 0], :, pos[:, 1], pos[:, 2]], got[:, :, 0, 0]
            elif e["positions_file"]:
                want = want[np.load(tmp_path / "o" / e["positions_file"])]
        else:
            got = X @ W.T + bias
            if e["positions_file"]:
                pos = np.load(tmp_path / "o" / e["positions_file"])
                want = want[pos[:, 0], pos[:, 1]]
        assert got.shape == want.shape, e["name"]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max(), err_msg=e["name"])
        load_layer(str(tmp_path / "o" / e["file"]))
    by = {e["name"]: e for e in man["layers"]}
    assert by["conv1"]["input_shape"] == [5, 3, 9, 9]  # after the module's own F.pad
    assert by["conv4"]["padding"] == [0, 1, 0, 1] and by["conv3"]["groups"] == 8
    assert by["tok"]["input_shape"] == [5, 16, 6]
    if fold:
        assert np.all(np.load(tmp_path / "o" / by["conv3"]["file"])["W"][2] == 0)
    with open(tmp_path / "o" / "manifest.json") as fh:
        assert json.load(fh)["layers"] == json.loads(json.dumps(man["layers"]))


def test_bad_torch_input_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ValueError, match=r"inputs: the model refused inputs of shape \[2, 4, 8, 8\]"):
        capture(_model(), np.ones((2, 4, 8, 8), np.float32), out)
    with pytest.raises(ValueError, match="model: no conv2d or linear call"):
        capture(nn.Sequential(nn.ReLU()), np.ones((2, 4), np.float32), out)
    assert not os.path.exists(out)


def test_a_training_model_is_captured_in_eval_mode_and_restored(tmp_path):
    model = _model().train()
    capture(model, np.ones((2, 3, 8, 8), np.float32), tmp_path / "o")
    assert model.training is True and model.bn1.training is True


class Computed(nn.Module):
    """A weight computed in forward (not a parameter) and a parameter reused twice in one pass."""

    def __init__(self):
        super().__init__()
        self.v = nn.Parameter(torch.randn(4, 3))
        self.g = nn.Parameter(torch.tensor(2.0))
        self.shared = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        h = F.linear(x, self.v * self.g)  # weight norm style: not a parameter
        return self.shared(self.shared(h))


def test_computed_and_shared_weights(tmp_path):
    torch.manual_seed(0)
    model = Computed()
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    man = capture(model, x, tmp_path / "o", batch_size=2)
    assert [(e["name"], e["samples"]) for e in man["layers"]] == [("linear_call0@4x3", 5), ("shared", 5)]
    assert man["layers"][1]["calls_per_pass"] == 2 and man["layers"][1]["file_input_shape"] == [10, 4]
    W = np.load(tmp_path / "o" / man["layers"][0]["file"])["W"]
    np.testing.assert_allclose(W, (model.v * model.g).detach().double().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="layer 'shared' is called more than once per forward pass"):
        capture(model, np.ones((5, 2, 3), np.float32), tmp_path / "p", max_positions=3)


def test_attention_projections_are_captured_and_unused_layers_listed(tmp_path):
    torch.manual_seed(0)

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
            self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.layer(x)

    model = Enc().eval()
    x = np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32)
    man = capture(model, x, tmp_path / "o", batch_size=2)  # batches of 2 and 1
    names = [e["name"] for e in man["layers"]]
    assert names == ["layer.self_attn.in_proj_weight", "layer.self_attn.out_proj", "layer.linear1", "layer.linear2"]
    e = man["layers"][0]  # the packed q, k, v projection receives (T, n, 16): sequence first
    assert e["weight_shape"] == [48, 16] and e["input_shape"] == [5, 2, 16] and e["batch_first"] is False
    assert e["file_input_shape"] == [15, 16] and e["positions"] == 15 and e["samples"] == 3
    # the file's rows are exactly the tokens: X W^T reproduces the packed projection
    X = np.load(tmp_path / "o" / e["file"])["X"].astype(np.float64)
    xt = torch.as_tensor(x).transpose(0, 1).reshape(-1, 16)  # every (token, sample) row
    want = F.linear(xt, model.layer.self_attn.in_proj_weight, model.layer.self_attn.in_proj_bias).detach().double()
    got = X @ np.load(tmp_path / "o" / e["file"])["W"].T + model.layer.self_attn.in_proj_bias.detach().double().numpy()
    assert sorted(map(tuple, np.round(got, 4))) == sorted(map(tuple, np.round(want.numpy(), 4)))
    sub = capture(model, x, tmp_path / "s", batch_size=2, max_positions=7)
    assert sub["layers"][0]["positions"] == 7 and sub["layers"][2]["positions"] == 7
    assert man["skipped"] == [{"name": "unused", "reason": "its weight never reached conv2d / linear in the "
                                                          "forward pass (unused, or run by a fused kernel)"}]
    if hasattr(torch.backends, "mha"):
        assert torch.backends.mha.get_fastpath_enabled()  # restored
