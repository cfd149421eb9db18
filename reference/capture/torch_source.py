"""Capture from a ``torch.nn.Module`` (the ``torch`` extra) by intercepting the functional calls.

A :class:`torch.overrides.TorchFunctionMode` sees every ``torch.nn.functional.conv2d`` and
``linear`` call with its real arguments: the input as the layer receives it (after any ``F.pad``
inside a custom module's ``forward``), the weight tensor (mapped to its parameter name), stride,
padding, dilation and groups. A ``batch_norm`` (in eval mode) whose input is a conv's output is
folded into that conv when it is the only use of that output, in every batch, and the output is
not returned by the model.
"""

from __future__ import annotations

import inspect
import sys

import numpy as np

from .record import CaptureError, Layer, Recorder

__all__ = ["is_torch_module", "capture_torch"]


def _import():
    try:
        import torch
    except ImportError:
        raise ImportError("capturing a PyTorch model needs the package 'torch' "
                          "(pip install 'qubo-reference[torch]')") from None
    return torch


def is_torch_module(model) -> bool:
    """True for a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


#: Tensor functions that read metadata only (attribute reads arrive as ``__get__``).
_METADATA = {"__get__", "dim", "size", "numel", "is_floating_point", "is_contiguous", "is_complex",
             "element_size", "nelement", "ndimension", "get_device", "__len__", "__format__", "__repr__"}


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)


def _conv_pads(padding, W, dilation) -> tuple:
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        total = [d * (k - 1) for d, k in zip(dilation, W.shape[2:])]  # "same", stride 1
        return total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2
    ph, pw = _pair(padding)
    return ph, ph, pw, pw


class _Interceptor:
    """The per-call bookkeeping behind the function mode (kept apart from torch's class)."""

    def __init__(self, torch, names, recorder, select, fold_bn):
        self.torch, self.names, self.recorder = torch, names, recorder
        self.select, self.fold_bn = select, fold_bn
        self.outs: dict[int, tuple] = {}     # id(conv output) -> (tensor, layer)
        self.uses: dict[str, set] = {}       # layer weight name -> kinds of use of its output
        self.bn: dict[str, tuple] = {}
        self.calls = 0                       # conv2d / linear calls so far in this forward pass
        F = torch.nn.functional
        self.conv2d, self.linear = F.conv2d, F.linear   # the real functions

    def layer_for(self, kind, w, args) -> Layer | None:
        pname = self.names.get(id(w))
        name = pname[:-len(".weight")] if pname and pname.endswith(".weight") else pname
        if pname is None:  # a weight computed in forward: named by its call's place in the pass
            pname = name = f"{kind}_call{self.calls}@{'x'.join(map(str, w.shape))}"
        if not self.select(name):
            return None
        W = w.detach().double().cpu().numpy()
        if kind == "conv":
            stride, padding, dilation, groups = args
            dilation = _pair(dilation)
            layer = Layer(name=name, weight=pname, kind="conv", W=W, stride=_pair(stride), dilation=dilation,
                          groups=int(groups), pads=_conv_pads(padding, W, dilation))
        else:
            layer = Layer(name=name, weight=pname, kind="linear", W=W)
        return self.recorder.register(layer)

    def before(self, func, args, kwargs) -> None:
        """Note every use of a recorded conv output (to decide whether its BN may be folded);
        reading its metadata (``dim()``, ``shape``, ...) is not a use."""
        F = self.torch.nn.functional
        if getattr(func, "__name__", "") in _METADATA:
            return
        flat = list(args) + list(kwargs.values())
        for pos, a in enumerate(flat):
            if isinstance(a, (list, tuple)):
                flat.extend(a)
                continue
            hit = self.outs.get(id(a))
            if hit is None or hit[0] is not a:
                continue
            layer = hit[1]
            # only conv outputs are tracked; BatchNorm normalises dim 1, the output channels of a
            # batched (N, C, H, W) output (an unbatched (C, H, W) one would be normalised over H)
            is_bn = (func is F.batch_norm and pos == 0 and not _bn_training(args, kwargs)
                     and len(a.shape) == 4)
            kinds = self.uses.setdefault(layer.weight, set())
            kinds.add("bn" if is_bn else "other")
            if is_bn:
                bn = _bn_args(args, kwargs, self.names)
                old = self.bn.get(layer.weight)
                if old is not None and not np.array_equal(old[0], bn[0]):
                    kinds.add("other")  # a shared weight followed by two different BNs: no one fold
                self.bn[layer.weight] = bn

    def call(self, func, args, kwargs):
        self.before(func, args, kwargs)
        if func is self.conv2d or func is self.linear:
            kind = "conv" if func is self.conv2d else "linear"
            bound = _bind(kind, args, kwargs)
            layer = self.layer_for(kind, bound[1], bound[3:])
            self.calls += 1
            if layer is not None:
                self.recorder.add(layer, bound[0].detach().cpu().numpy())
            out = func(*args, **kwargs)
            if layer is not None and kind == "conv":
                self.outs[id(out)] = (out, layer)
            return out
        if inspect.isfunction(func) and getattr(func, "__module__", "") == "torch.nn.functional":
            return self.composite(func, args, kwargs)
        return func(*args, **kwargs)

    def composite(self, func, args, kwargs):
        """A Python function of ``torch.nn.functional`` (``multi_head_attention_forward``) runs
        with the mode off, so its own ``linear`` / ``conv2d`` calls, looked up in that module's
        namespace, are routed here for the duration of the call."""
        F = self.torch.nn.functional
        F.linear = lambda *a, **k: self.call(self.linear, a, k)
        F.conv2d = lambda *a, **k: self.call(self.conv2d, a, k)
        try:
            return func(*args, **kwargs)
        finally:
            F.linear, F.conv2d = self.linear, self.conv2d


def _bind(kind, args, kwargs) -> tuple:
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups") if kind == "conv" \
        else ("input", "weight", "bias")
    defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    vals = dict(zip(names, args))
    vals.update(kwargs)
    return tuple(vals.get(n, defaults.get(n)) for n in names)


def _bn_training(args, kwargs) -> bool:
    vals = dict(zip(("input", "running_mean", "running_var", "weight", "bias", "training"), args))
    vals.update(kwargs)
    return bool(vals.get("training", False)) or vals.get("running_var") is None


def _bn_args(args, kwargs, names) -> tuple:
    vals = dict(zip(("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"), args))
    vals.update(kwargs)
    var = vals["running_var"].detach().double().cpu().numpy()
    gamma = vals.get("weight")
    gamma = np.ones_like(var) if gamma is None else gamma.detach().double().cpu().numpy()
    pname = names.get(id(vals.get("weight"))) or names.get(id(vals["running_var"]))
    return gamma / np.sqrt(var + float(vals.get("eps", 1e-5))), pname.rsplit(".", 1)[0] if pname else None


def _flatten(obj, out: list) -> list:
    if isinstance(obj, (list, tuple)):
        for o in obj:
            _flatten(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten(o, out)
    else:
        out.append(obj)
    return out


def capture_torch(model, inputs: np.ndarray, recorder: Recorder, fold_bn: bool, batch_size: int, select):
    """Run ``model`` (in eval mode, without gradients) on ``inputs`` in batches, recording every layer."""
    torch = _import()
    names = {id(p): n for n, p in model.named_parameters()}
    names.update({id(b): n for n, b in model.named_buffers()})
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")
    icpt = _Interceptor(torch, names, recorder, select, fold_bn)

    class Mode(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return icpt.call(func, args, kwargs or {})

    was_training = {mod: mod.training for mod in model.modules()}
    model.eval()
    mha = getattr(torch.backends, "mha", None)
    fast = mha.get_fastpath_enabled() if mha is not None else None
    if fast:  # the fused attention kernels bypass F.linear: take the functional path while capturing
        mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            for start in range(0, inputs.shape[0], batch_size):
                batch = torch.as_tensor(inputs[start:start + batch_size])
                recorder.begin_batch(batch.shape[0])
                batch = batch.to(device=device, dtype=dtype if batch.is_floating_point() else batch.dtype)
                try:
                    with Mode():
                        out = model(batch)
                except CaptureError:
                    raise
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                    raise ValueError(f"inputs: the model refused inputs of shape {list(batch.shape)} "
                                     f"({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
                for o in _flatten(out, []):
                    hit = icpt.outs.get(id(o))
                    if hit is not None and hit[0] is o:
                        icpt.uses.setdefault(hit[1].weight, set()).add("returned")
                icpt.outs.clear()
                icpt.calls = 0
    finally:
        for mod, flag in was_training.items():
            mod.training = flag
        if fast:
            mha.set_fastpath_enabled(True)
    if fold_bn:
        for weight, layer in recorder.layers.items():
            if icpt.uses.get(weight) == {"bn"} and weight in icpt.bn:
                layer.bn_factor, layer.bn_name = icpt.bn[weight]
    if not recorder.layers:
        raise ValueError("model: no conv2d or linear call (matching the layer filter) ran in the forward pass")
    return list(recorder.layers.values()), _unseen(torch, model, recorder, select)


def _unseen(torch, model, recorder, select) -> list:
    """Conv2d / Linear modules whose weight never reached F.conv2d / F.linear (a fused kernel, or
    not used in the forward pass): listed, never silently dropped."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and select(name) \
                and f"{name}.weight" not in recorder.layers:
            out.append({"name": name, "reason": "its weight never reached conv2d / linear in the forward pass "
                                                "(unused, or run by a fused kernel)"})
    return out
