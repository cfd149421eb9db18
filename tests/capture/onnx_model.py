"""The tiny test network, built with onnx's helper API, and an independent numpy convolution.

x (N, 3, 8, 8) -> Pad (TF "same", stride 2: 0 before, 1 after) -> conv1 3x3 s2 -> BN1 -> Relu
-> conv2 3x3 groups 2 pads 1 -> Relu -> conv3 depthwise 3x3 dilation 2 pads 2 -> BN3 (one gamma 0:
a dead channel after folding) -> Relu -> conv4 2x2 pads (0, 0, 1, 1) -> conv5 1x1 -> BN5, whose
input is also added to its output (so BN5 must not be folded) -> tokens (N, 16, 6) -> MatMul (6 -> 5)
-> Flatten -> Gemm (80 -> 7, transB).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

N_IN = (3, 8, 8)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def weights(seed=0) -> dict:
    rng = np.random.default_rng(seed)
    w = {
        "conv1.weight": rng.normal(size=(8, 3, 3, 3)), "conv1.bias": rng.normal(size=8),
        "conv2.weight": rng.normal(size=(8, 4, 3, 3)) / 3,
        "conv3.weight": rng.normal(size=(8, 1, 3, 3)),
        "conv4.weight": rng.normal(size=(6, 8, 2, 2)) / 3, "conv4.bias": rng.normal(size=6),
        "conv5.weight": rng.normal(size=(6, 6, 1, 1)),
        "tok.weight": rng.normal(size=(6, 5)),
        "fc.weight": rng.normal(size=(7, 80)) / 9, "fc.bias": rng.normal(size=7),
    }
    for bn, c in (("bn1", 8), ("bn3", 8), ("bn5", 6)):
        w[f"{bn}.weight"] = rng.uniform(0.5, 2.0, size=c)
        w[f"{bn}.bias"] = rng.normal(size=c)
        w[f"{bn}.running_mean"] = rng.normal(size=c)
        w[f"{bn}.running_var"] = rng.uniform(0.5, 2.0, size=c)
    w["bn3.weight"][2] = 0.0  # a dead channel once BN3 is folded into conv3
    return {k: np.asarray(v, dtype=np.float32) for k, v in w.items()}


def build(seed=0) -> onnx.ModelProto:
    w = weights(seed)
    n = helper.make_node
    bn = lambda name, x, y: n("BatchNormalization", [x, f"{name}.weight", f"{name}.bias", f"{name}.running_mean",  # noqa: E731
                                                  f"{name}.running_var"], [y], name=name, epsilon=1e-3)
    nodes = [
        n("Pad", ["x", "pads"], ["xp"], name="same_pad"),
        n("Conv", ["xp", "conv1.weight", "conv1.bias"], ["y1"], name="conv1", strides=[2, 2]),
        bn("bn1", "y1", "z1"), n("Relu", ["z1"], ["a1"]),
        n("Conv", ["a1", "conv2.weight"], ["y2"], name="conv2", group=2, pads=[1, 1, 1, 1]),
        n("Relu", ["y2"], ["a2"]),
        n("Conv", ["a2", "conv3.weight"], ["y3"], name="conv3", group=8, pads=[2, 2, 2, 2], dilations=[2, 2]),
        bn("bn3", "y3", "z3"), n("Relu", ["z3"], ["a3"]),
        n("Conv", ["a3", "conv4.weight", "conv4.bias"], ["y4"], name="conv4", pads=[0, 0, 1, 1]),
        n("Conv", ["y4", "conv5.weight"], ["y5"], name="conv5"),
        bn("bn5", "y5", "z5"), n("Add", ["z5", "y5"], ["s5"]),
        n("Reshape", ["s5", "tok_shape"], ["r5"]), n("Transpose", ["r5"], ["t5"], perm=[0, 2, 1]),
        n("MatMul", ["t5", "tok.weight"], ["tokens"], name="tok"),
        n("Flatten", ["tokens"], ["flat"], axis=1),
        n("Gemm", ["flat", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    inits = [_init(k, v) for k, v in w.items()]
    inits += [numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64), "pads"),
              numpy_helper.from_array(np.array([0, 6, 16], dtype=np.int64), "tok_shape")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *N_IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_with_outputs(model, x, names) -> dict:
    """The model's own values ``names`` on ``x``, by onnxruntime."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in names:
        m.graph.output.append(onnx.ValueInfoProto(name=name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, {"x": x.astype(np.float32)})))


def conv_ref(X, W, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct 2-D cross-correlation in float64, one kernel tap at a time (independent of reference.conv)."""
    X = np.pad(np.asarray(X, np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    c_out, cg, kh, kw = W.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho = (X.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (X.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((X.shape[0], c_out, ho, wo))
    per = c_out // groups
    for o in range(c_out):
        g = o // per
        for a in range(kh):
            for b in range(kw):
                patch = X[:, g * cg:(g + 1) * cg, a * dh:a * dh + sh * (ho - 1) + 1:sh,
                          b * dw:b * dw + sw * (wo - 1) + 1:sw]
                out[:, o] += np.einsum("nchw,c->nhw", patch, W[o, :, a, b])
    return out
