"""One captured layer: its weights, its geometry and the inputs it received, kept to a budget.

Both sources (:mod:`reference.capture.onnx_source`, :mod:`reference.capture.torch_source`) hand
every call of a layer to :meth:`Recorder.add` with the input exactly as the layer received it
(after any padding the model applied itself) and the layer's own padding as four numbers
``(top, bottom, left, right)``. The recorder keeps, per layer, either

* every input (the whole images of a convolution, every token of a linear layer), or
* when a position budget is given and exceeded, a seeded uniform sample of output positions
  (without replacement over all samples and positions), or, for a convolution when that is
  smaller, the whole inputs of a seeded sample of ``M // (H_out W_out)`` samples (each window
  holds every input channel, so for a large kernel on a small map the windows of ``M``
  positions can outweigh the images they come from). A convolution's windows: for each
  chosen output position, its receptive-field window ``x_pad[n, :, i s_h : i s_h + d_h (k_h - 1) + 1,
  j s_w : ...]``: convolving that window with the same ``W`` (stride 1, padding 0, the same
  dilation and groups) gives exactly the layer's output at that position, so the problem file
  poses Eq. 20 as the mean over the kept positions (docs/guide/real_models.md, "Memory").
  A linear layer keeps the chosen tokens (rows) as ``(M, in)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CaptureError", "Layer", "Recorder"]


class CaptureError(ValueError):
    """A model, its inputs or an option that cannot be captured; the message names which."""


@dataclass(eq=False)
class Layer:
    """What is known about one conv or linear layer of the model (before and while it runs)."""

    name: str
    weight: str                      # the weight's parameter / initializer name (encodings key)
    kind: str                        # "conv" or "linear"
    W: np.ndarray                    # float64, the model's own weights (out, in) or (C_out, C_in/g, kh, kw)
    index: int = -1                  # order of the first call in the forward pass
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    groups: int = 1
    pads: tuple = (0, 0, 0, 0)       # top, bottom, left, right, as the layer applies them
    bn_factor: np.ndarray | None = None   # gamma / sqrt(var + eps), one per output channel
    bn_name: str | None = None
    extra: dict = field(default_factory=dict)
    chunks: list = field(default_factory=list)
    kept: list = field(default_factory=list)   # kept (sample, position) pairs, when sub-sampled
    input_shape: list | None = None
    n_seen: int = 0
    plan: np.ndarray | None = None   # sorted global indices of the kept positions (or samples), None for all
    mode: str = "all"                # "all", "windows" (kept positions) or "samples" (kept whole inputs)

    @property
    def sym_padding(self) -> tuple | None:
        t, b, l, r = self.pads
        return (t, l) if (t == b and l == r) else None


def _conv_out(size: int, k: int, s: int, d: int) -> int:
    return (size - d * (k - 1) - 1) // s + 1


class Recorder:
    """Collect each layer's inputs over the batches, sub-sampling positions to ``max_positions``.

    The sources call :meth:`begin_batch` with each forward pass's sample count, then :meth:`add`
    for every call of a layer. A sample is a model input: a convolution's input must be batch-first;
    a linear layer's input may be batch-first ``(n, ..., in)`` or not (a sequence-first attention
    projection ``(T, n, in)``), its rows (tokens) being the positions either way.
    """

    def __init__(self, n_samples: int, max_positions: int | None, seed: int):
        self.n_samples = n_samples
        self.max_positions = max_positions
        self.seed = seed
        self.layers: dict[str, Layer] = {}
        self.batch_start, self.batch_n, self.batch_id = 0, 0, -1

    def begin_batch(self, n: int) -> None:
        """The next forward pass runs the ``n`` samples after those already run."""
        self.batch_start += self.batch_n
        self.batch_n, self.batch_id = n, self.batch_id + 1

    def register(self, layer: Layer) -> Layer:
        """The layer's record (the first registration wins; later calls share it)."""
        if layer.weight not in self.layers:
            layer.index = len(self.layers)
            self.layers[layer.weight] = layer
        return self.layers[layer.weight]

    def add(self, layer: Layer, x: np.ndarray) -> None:
        """One call's inputs ``x`` as ``layer`` received them (float32 or float64)."""
        first = self._check_call(layer, x)
        if layer.kind == "conv":
            self._add_conv(layer, x, first)
        else:
            self._add_linear(layer, x, first)
        layer.n_seen = self.batch_start + self.batch_n

    # ---------------------------------------------------------------- sampling plan
    def _plan(self, layer: Layer, per_sample: int) -> None:
        total = self.n_samples * per_sample
        if self.max_positions is None or total <= self.max_positions:
            layer.plan = None
            return
        rng = np.random.default_rng([self.seed, layer.index])
        layer.plan = np.sort(rng.choice(total, size=self.max_positions, replace=False))

    def _plan_conv(self, layer: Layer, per_sample: int, padded_area: int, window_area: int) -> None:
        """Over budget, keep whichever record is smaller: ``M`` windows (``M * window_area`` numbers
        a channel) or the whole inputs of ``M // per_sample`` samples (each ``padded_area``)."""
        budget = self.max_positions
        if budget is None or self.n_samples * per_sample <= budget:
            layer.mode, layer.plan = "all", None
            return
        n_keep = budget // per_sample
        if n_keep >= 1 and n_keep * padded_area < budget * window_area:
            rng = np.random.default_rng([self.seed, layer.index])
            layer.mode, layer.plan = "samples", np.sort(rng.choice(self.n_samples, size=n_keep, replace=False))
        else:
            layer.mode = "windows"
            self._plan(layer, per_sample)

    def _batch_part(self, layer: Layer, per_sample: int) -> np.ndarray:
        """Kept global indices that fall in this batch, as indices local to the batch."""
        start = self.batch_start * per_sample
        stop = start + self.batch_n * per_sample
        lo, hi = np.searchsorted(layer.plan, [start, stop])
        return layer.plan[lo:hi] - start

    def _check_call(self, layer: Layer, x: np.ndarray) -> bool:
        """Count the call; True on the layer's first. Refuses what cannot be posed as one problem."""
        first = layer.input_shape is None
        if layer.extra.get("last_batch") == self.batch_id:  # a weight used twice in one pass
            layer.extra["calls_per_pass"] = layer.extra.get("calls_per_pass", 1) + (self.batch_id == 0)
            if self.max_positions is not None:
                raise CaptureError(f"layer {layer.name!r} is called more than once per forward pass (a shared "
                                   "weight): its positions cannot be sampled per sample; capture it without "
                                   "max_positions (its calls then pool) or leave it out with layers")
        layer.extra["last_batch"] = self.batch_id
        if x.ndim < 2:
            raise CaptureError(f"layer {layer.name!r}: needs batched inputs, found shape {x.shape}")
        batch_first = x.shape[0] == self.batch_n
        if first:
            layer.input_shape = [self.n_samples] + list(x.shape[1:]) if batch_first else list(x.shape)
            layer.extra["batch_first"] = batch_first
        elif batch_first != layer.extra["batch_first"] or (batch_first and layer.input_shape[1:] != list(x.shape[1:])):
            raise CaptureError(f"layer {layer.name!r} received inputs of shape {list(x.shape)} after "
                               f"{layer.input_shape}: a layer called on differently shaped inputs cannot be "
                               "posed as one problem; capture it with inputs of one shape")
        return first

    # ---------------------------------------------------------------- convolution
    def _add_conv(self, layer: Layer, x: np.ndarray, first: bool) -> None:
        if x.ndim != 4 or x.shape[0] != self.batch_n:
            raise CaptureError(f"layer {layer.name!r}: a 2-D convolution needs batch-first 4-D inputs "
                               f"({self.batch_n}, C, H, W), found shape {x.shape}")
        kh, kw = layer.W.shape[2:]
        (sh, sw), (dh, dw) = layer.stride, layer.dilation
        t, b, l, r = layer.pads
        ho = _conv_out(x.shape[2] + t + b, kh, sh, dh)
        wo = _conv_out(x.shape[3] + l + r, kw, sw, dw)
        if first:
            self._plan_conv(layer, ho * wo, (x.shape[2] + t + b) * (x.shape[3] + l + r),
                            (dh * (kh - 1) + 1) * (dw * (kw - 1) + 1))
            layer.extra["positions_total"] = self.n_samples * ho * wo
        if layer.mode != "windows":
            if layer.mode == "samples":
                local = self._batch_part(layer, 1)
                x = x[local]
                layer.kept.append(local + self.batch_start)
            if layer.sym_padding is None:  # asymmetric padding: applied here, the file then pads 0
                x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
            layer.chunks.append(x)
        else:
            local = self._batch_part(layer, ho * wo)
            xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
            span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
            view = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
            s_idx, rest = np.divmod(local, ho * wo)
            i, j = np.divmod(rest, wo)
            layer.chunks.append(np.ascontiguousarray(view[s_idx, :, i * sh, j * sw]))
            layer.kept.append(np.stack([s_idx + self.batch_start, i, j], axis=1))

    # ---------------------------------------------------------------- linear (dense or tokens)
    def _add_linear(self, layer: Layer, x: np.ndarray, first: bool) -> None:
        n = self.batch_n
        if layer.extra["batch_first"] and x.ndim == 2:  # (n, in): one row a sample, never sub-sampled
            layer.chunks.append(x)
            return
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] % n:
            raise CaptureError(f"layer {layer.name!r}: its input {list(x.shape)} does not split into the "
                               f"{n} samples of the batch")
        tokens = rows.shape[0] // n
        if first:
            self._plan(layer, tokens)
            layer.extra["positions_total"] = self.n_samples * tokens
        if layer.plan is None:  # batch-first (n, T, in) keeps its tokens per sample; otherwise rows
            layer.chunks.append(rows.reshape(n, tokens, -1) if layer.extra["batch_first"] else rows)
        else:
            local = self._batch_part(layer, tokens)
            layer.chunks.append(rows[local])
            s_idx, t_idx = np.divmod(local, tokens)
            layer.kept.append(np.stack([s_idx + self.batch_start, t_idx], axis=1) if layer.extra["batch_first"]
                              else (local + self.batch_start * tokens)[:, None])
