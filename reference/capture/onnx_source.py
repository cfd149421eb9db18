"""Capture from an ONNX model through onnxruntime (the ``onnx`` extra).

Every ``Conv`` (2-D, weight an initializer or a ``Constant``), ``Gemm`` and ``MatMul`` whose
second input is a 2-D initializer is a layer. Each layer's data input is added as an extra graph
output and the model runs once per batch, so the recorded input is the tensor the node consumes
(a ``Pad`` before a ``Conv`` is part of it). A ``BatchNormalization`` that is the only consumer
of a ``Conv``'s output (which is not a graph output) is folded into its weights.
"""

from __future__ import annotations

import numpy as np

from .record import Layer, Recorder

__all__ = ["load_model", "capture_onnx"]


def _import():
    try:
        import onnx
        import onnxruntime
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("capturing an ONNX model needs the packages 'onnx' and 'onnxruntime' "
                          "(pip install 'qubo-reference[onnx]')") from None
    return onnx, onnxruntime, numpy_helper


def load_model(model):
    """An ``onnx.ModelProto`` from a path or a ModelProto; a file that does not load is refused."""
    onnx, _, _ = _import()
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load(str(model))
    except Exception as exc:  # protobuf's DecodeError, OSError, ...
        raise ValueError(f"model: {model}: not a loadable ONNX file ({exc.__class__.__name__}: {exc})") from None


def _attrs(node) -> dict:
    onnx, _, _ = _import()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph) -> dict:
    _, _, numpy_helper = _import()
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" in a:
                consts[node.output[0]] = numpy_helper.to_array(a["value"])
    return consts


def _pads(attrs: dict, kernel, dilation, stride, in_hw) -> tuple:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        return int(p[0]), int(p[2]), int(p[1]), int(p[3])
    if auto == "VALID":
        return 0, 0, 0, 0
    if in_hw is None:
        raise ValueError("model: a Conv with auto_pad SAME needs a static input size")
    out = []
    for size, k, d, s in zip(in_hw, kernel, dilation, stride):
        total = max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out[0][0], out[0][1], out[1][0], out[1][1]


def _conv_layer(node, attrs, W, name):
    if W.ndim != 4:
        return None
    return Layer(name=name, weight=node.input[1], kind="conv", W=W.astype(np.float64),
                 stride=tuple(int(v) for v in attrs.get("strides", [1, 1])),
                 dilation=tuple(int(v) for v in attrs.get("dilations", [1, 1])),
                 groups=int(attrs.get("group", 1)))


def _gemm_layer(node, attrs, B, name):
    if attrs.get("transA", 0) not in (0,):
        return None
    W = B if attrs.get("transB", 0) else B.T
    alpha = float(attrs.get("alpha", 1.0))
    layer = Layer(name=name, weight=node.input[1], kind="linear", W=alpha * W.astype(np.float64))
    if alpha != 1.0:
        layer.extra["alpha_folded"] = alpha
    return layer


def _find_layers(graph, consts, fold_bn: bool):
    """``(layers in graph order, skipped)``; ``layers`` holds ``(Layer, data input name)``."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    outputs = {o.name for o in graph.output}
    layers, skipped = [], []
    for k, node in enumerate(graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.name or f"{node.op_type}_{k}"
        B = consts.get(node.input[1])
        if B is None:
            if node.op_type != "MatMul":
                skipped.append({"name": name, "reason": "its weight is computed in the graph, not a constant"})
            continue
        attrs = _attrs(node)
        if node.op_type == "Conv":
            layer = _conv_layer(node, attrs, B, name)
        elif node.op_type == "Gemm":
            layer = _gemm_layer(node, attrs, B, name)
        else:
            layer = Layer(name=name, weight=node.input[1], kind="linear", W=B.T.astype(np.float64)) \
                if B.ndim == 2 else None
        if layer is None:
            skipped.append({"name": name, "reason": f"{node.op_type} with weight shape {list(B.shape)} "
                                                    f"or attributes this capture does not pose"})
            continue
        if layer.kind == "conv":
            layer.extra["attrs"] = attrs
            if fold_bn:
                _fold(layer, node, consumers, outputs, consts)
        layers.append((layer, node.input[0]))
    return layers, skipped


def _fold(layer, node, consumers, outputs, consts) -> None:
    users = consumers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type != "BatchNormalization" or node.output[0] in outputs:
        return
    bn = users[0]
    if bn.input[0] != node.output[0] or any(i not in consts for i in bn.input[1:5]):
        return
    a = _attrs(bn)
    if a.get("training_mode", 0):
        return
    gamma, var = (consts[bn.input[i]].astype(np.float64).reshape(-1) for i in (1, 4))
    if gamma.size != layer.W.shape[0] or var.size != layer.W.shape[0]:
        return  # statistics per element (BatchNormalization-7's spatial=0), not one per output channel
    layer.bn_factor = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    layer.bn_name = bn.name or bn.output[0]


def _session(model, names, ort):
    onnx, _, _ = _import()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
    try:  # the element types of the extra outputs (older onnxruntime wants them); shapes left free
        types = {v.name: v.type.tensor_type.elem_type
                 for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    except Exception:  # inference is a convenience here: onnxruntime infers the types itself
        types = {}
    for name in dict.fromkeys(names):
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None) if types.get(name)
                                  else onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ValueError(f"model: onnxruntime cannot run it ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _graph_input(graph, consts):
    real = [i for i in graph.input if i.name not in consts]
    if len(real) != 1:
        raise ValueError(f"model: capture feeds one input array, but the graph has {len(real)} inputs "
                         f"({[i.name for i in real]})")
    inp = real[0]
    tt = inp.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return inp.name, tt.elem_type, dims


def check_inputs(model, inputs: np.ndarray) -> np.ndarray:
    """``inputs`` cast to the graph input's type; a shape that cannot match it is refused."""
    onnx, _, _ = _import()
    name, elem, dims = _graph_input(model.graph, _constants(model.graph))
    if inputs.ndim != len(dims) or any(d not in (None, 0) and d != s for d, s in zip(dims[1:], inputs.shape[1:])):
        shown = ["N" if d in (None, 0) else d for d in dims]
        raise ValueError(f"inputs: shape {list(inputs.shape)} does not match the model's input {name!r} of "
                         f"shape {shown}")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
    if np.issubdtype(dtype, np.integer) and not np.all(inputs == np.round(inputs)):
        raise ValueError(f"inputs: the model's input {name!r} holds integers ({dtype}), found non-integral values")
    return inputs.astype(dtype)


def capture_onnx(model, inputs: np.ndarray, recorder: Recorder, fold_bn: bool, batch_size: int,
                 select) -> tuple[list, list]:
    """Run ``model`` on ``inputs`` in batches and record every selected layer's inputs."""
    _, ort, _ = _import()
    graph = model.graph
    consts = _constants(graph)
    found, skipped = _find_layers(graph, consts, fold_bn)
    found = [(layer, src) for layer, src in found if select(layer.name)]
    if not found:
        raise ValueError("model: no Conv (2-D), Gemm or MatMul with a constant weight"
                         + (" matches the layer filter" if skipped or graph.node else "") + " in the graph")
    in_name, _, dims = _graph_input(graph, consts)
    if dims and dims[0]:  # a fixed batch size: feed exactly that many samples a run
        if inputs.shape[0] % dims[0]:
            raise ValueError(f"inputs: the model's input {in_name!r} has a fixed batch of {dims[0]}; give a "
                             f"multiple of {dims[0]} samples, found {inputs.shape[0]}")
        batch_size = dims[0]
    sess = _session(model, [src for _, src in found], ort)
    want = list(dict.fromkeys(src for _, src in found if src != in_name))
    found = [(recorder.register(layer), src) for layer, src in found]  # a shared weight is one layer
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start:start + batch_size]
        recorder.begin_batch(batch.shape[0])
        try:
            got = dict(zip(want, sess.run(want, {in_name: batch}))) if want else {}
        except Exception as exc:
            raise ValueError(f"inputs: onnxruntime refused inputs of shape {list(batch.shape)} "
                             f"({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
        got[in_name] = batch
        for layer, src in found:
            x = got[src]
            if layer.kind == "conv" and layer.n_seen == 0:
                a = layer.extra.pop("attrs")
                layer.pads = _pads(a, layer.W.shape[2:], layer.dilation, layer.stride, x.shape[2:])
            recorder.add(layer, np.asarray(x))
    return list(dict.fromkeys(layer for layer, _ in found)), skipped
