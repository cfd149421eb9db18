r"""2-D convolutions as linear layers on patches: geometry, patches, Gram matrices and Eq. 20.

A convolution with weights ``W`` of shape ``(C_out, C_in/groups, kh, kw)`` (PyTorch's layout)
applied to inputs ``X`` of shape ``(N, C_in, H, W)`` computes, for output channel ``o`` in group
``g`` and output position ``(i, j)``,

.. math:: y_{n o i j} = \sum_{c, a, b} W_{o c a b}\,
          X^{pad}_{n,\, g C_g + c,\, i s_h + a d_h,\, j s_w + b d_w}

(cross-correlation, zero padding, stride ``s``, dilation ``d``, ``C_g = C_in / groups``). Every
output is the dot product of the flattened kernel row ``W[o].ravel()`` (order ``c, a, b``, the
order of ``W.reshape(C_out, -1)``) with one *patch* of the input. With the patches as samples the
local loss (Eq. 20) of a rounding ``W_hat`` is, per output channel, the mean over samples *and*
output positions of the squared output error, summed over channels:

.. math:: L(\hat W) = \sum_o e_o^T G_{g(o)} e_o, \qquad
          G_g = \frac{1}{N H_o W_o} \sum_{n, i, j} p^g_{nij} (p^g_{nij})^T ,

one Gram matrix per group (``fan_in = C_g kh kw``). :func:`conv_gram` builds the ``G_g`` one
group at a time and, within a group, in chunks of samples, so that at most
``max(one sample's patches of one group, CHUNK_ELEMENTS)`` patch entries (8 bytes each) exist at
once, besides the padded input chunk and the ``groups * fan_in^2`` Gram entries. A geometry whose
work arrays would exceed :data:`MAX_WORK_ELEMENTS` (a huge padding, a huge fan-in) is refused
with a ValueError naming it, before anything is allocated (:meth:`ConvGeometry.check_work`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .validation import as_float_array, as_int_scalar

__all__ = ["CHUNK_ELEMENTS", "ConvGeometry", "conv_geometry", "conv2d", "conv_gram", "conv_loss", "patches", "patches_all"]

#: Patch entries materialised at once by :func:`conv_gram` (4 Mi float64 = 32 MiB), unless one
#: sample's patches of one group are larger.
CHUNK_ELEMENTS = 1 << 22

#: Float64 entries the work arrays of one call may hold at once (2^28 = 2 GiB): the padded input
#: chunk, its patches, an output chunk or the Gram matrices, besides ``X`` and the result (which
#: grow with the samples). A geometry that needs more is refused before any allocation; it is
#: read at each call, so a machine with more memory may raise it
#: (``reference.conv.MAX_WORK_ELEMENTS = 1 << 30``).
MAX_WORK_ELEMENTS = 1 << 28


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    arr = np.asarray(value)
    if arr.ndim == 0:
        vals = [value]
    elif arr.shape in ((1,), (2,)):
        vals = list(arr.ravel())
    else:
        raise ValueError(f"{name} must be an int or two ints, found shape {arr.shape}")
    out = []
    for v in vals:
        try:
            iv = as_int_scalar(v, name)
        except ValueError:
            raise ValueError(f"{name} must be an int or two ints, found {value!r}") from None
        if iv < minimum:
            raise ValueError(f"{name} must be >= {minimum}, found {value!r}")
        out.append(iv)
    return (out[0], out[-1])


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shapes: ``C_out, C_in, groups, kernel (kh, kw), stride, padding, dilation``.

    ``fan_in = (C_in / groups) kh kw`` is the length of a kernel row and of a patch.
    """

    c_out: int
    c_in: int
    groups: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def c_in_group(self) -> int:
        return self.c_in // self.groups

    @property
    def c_out_group(self) -> int:
        return self.c_out // self.groups

    @property
    def fan_in(self) -> int:
        return self.c_in_group * self.kernel[0] * self.kernel[1]

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """``(H_o, W_o) = floor((H + 2 p - d (k - 1) - 1) / s) + 1`` per axis (PyTorch's formula);
        ValueError when the output map would be empty."""
        out = []
        for size, k, s, p, d, axis in zip((H, W), self.kernel, self.stride, self.padding, self.dilation,
                                          ("height", "width")):
            span = size + 2 * p - d * (k - 1) - 1
            if span < 0:
                raise ValueError(
                    f"X: the output map is empty: input {axis} {size} with padding {p} is smaller than the "
                    f"dilated kernel's extent {d * (k - 1) + 1}"
                )
            out.append(span // s + 1)
        return out[0], out[1]

    def work(self, N: int, H: int, W: int, output: bool = False) -> dict:
        """Float64 entries of the work arrays that exist at once when :func:`conv_gram` (or, with
        ``output``, the convolution :func:`conv2d`) runs on ``N`` samples of ``H x W``: a chunk of
        ``n = min(N, max(1, CHUNK_ELEMENTS // (H_o W_o fan_in)))`` samples padded
        (``n C_in (H + 2 p_h)(W + 2 p_w)``) and as patches of one group (``n H_o W_o fan_in``),
        then the Gram matrices and their symmetrisation (``3 groups fan_in^2``) or one group's
        output chunk (``n H_o W_o C_out/groups``)."""
        Ho, Wo = self.output_size(H, W)
        f = self.fan_in
        n = min(int(N), _chunk(Ho * Wo * f))
        (ph, pw) = self.padding
        pieces = {"padded input": n * self.c_in * (H + 2 * ph) * (W + 2 * pw) if ph or pw else 0,
                  "patches": n * Ho * Wo * f}
        if output:
            pieces["output chunk"] = n * Ho * Wo * self.c_out_group
        else:
            pieces["Gram matrices"] = 3 * self.groups * f * f
        return pieces

    def check_work(self, N: int, H: int, W: int, output: bool = False) -> None:
        """Refuse, before any allocation, a geometry whose :meth:`work` exceeds
        :data:`MAX_WORK_ELEMENTS`, naming what drives it: ``padding`` (and ``dilation``) when the
        unpadded convolution would fit, ``W`` when its Gram matrices are the largest part, else
        ``X`` (the size of its images)."""
        pieces = self.work(N, H, W, output)
        total, limit = sum(pieces.values()), MAX_WORK_ELEMENTS
        if total <= limit:
            return
        culprit = "X (the size of its images)"
        if max(pieces, key=pieces.get) == "Gram matrices":
            culprit = f"W (fan-in (C_in/groups) kh kw = {self.fan_in})"
        if self.padding != (0, 0):
            try:
                unpadded = sum(replace(self, padding=(0, 0)).work(N, H, W, output).values())
            except ValueError:  # without the padding the output would be empty
                unpadded = 0
            if unpadded <= limit:
                culprit = f"padding {self.padding}" + (f" with dilation {self.dilation}" if self.dilation != (1, 1)
                                                      else "")
        parts = ", ".join(f"{k} {v}" for k, v in pieces.items() if v)
        raise ValueError(f"{culprit}: the convolution of X of shape ({N}, {self.c_in}, {H}, {W}) by a "
                         f"{self.kernel[0]}x{self.kernel[1]} kernel would need {total} float64 entries "
                         f"({total * 8 / 2**30:.3g} GiB) of work arrays at once ({parts}), above the limit "
                         f"reference.conv.MAX_WORK_ELEMENTS = {limit}")


def conv_geometry(W_shape, c_in: int, stride=1, padding=0, dilation=1, groups=1) -> ConvGeometry:
    """Validate a convolution's settings against its weight shape and ``C_in``.

    ``stride``, ``padding`` and ``dilation`` are an int or two ints (height, width); ``padding``
    is zero padding on both sides (>= 0), the others >= 1. ``groups`` must divide ``C_in`` and
    ``C_out``, and ``W_shape[1]`` must equal ``C_in / groups``.
    """
    if len(W_shape) != 4:
        raise ValueError(f"W must be 4-D (C_out, C_in/groups, kh, kw), found shape {tuple(W_shape)}")
    c_out, cg, kh, kw = (int(v) for v in W_shape)
    if min(c_out, cg, kh, kw) < 1:
        raise ValueError(f"W must have no empty dimension, found shape {tuple(W_shape)}")
    if c_in < 1:
        raise ValueError(f"X must have at least one input channel (X.shape[1] = C_in), found C_in = {c_in}")
    g = as_int_scalar(groups, "groups")
    if g < 1:
        raise ValueError(f"groups must be >= 1, found {g}")
    if c_in % g:
        raise ValueError(f"groups must divide C_in: C_in = {c_in} is not divisible by groups = {g}")
    if c_out % g:
        raise ValueError(f"groups must divide C_out: C_out = {c_out} is not divisible by groups = {g}")
    if cg != c_in // g:  # X and W disagree: X's channel count is what the weights are checked against
        raise ValueError(f"X has C_in = {c_in} input channels (X.shape[1]), but W of shape {tuple(W_shape)} with "
                         f"groups = {g} takes C_in = W.shape[1] * groups = {cg * g}")
    return ConvGeometry(c_out=c_out, c_in=c_in, groups=g, kernel=(kh, kw), stride=_pair(stride, "stride", 1),
                        padding=_pair(padding, "padding", 0), dilation=_pair(dilation, "dilation", 1))


def _im2col(Xc: np.ndarray, geo: ConvGeometry, Ho: int, Wo: int) -> np.ndarray:
    """Patches of padded inputs ``Xc`` (n, C, H+2p, W+2p): (n, Ho, Wo, C, kh, kw)."""
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    n, C = Xc.shape[:2]
    out = np.empty((n, Ho, Wo, C, kh, kw))
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            win = Xc[:, :, r0:r0 + sh * (Ho - 1) + 1:sh, c0:c0 + sw * (Wo - 1) + 1:sw]  # (n, C, Ho, Wo)
            out[:, :, :, :, a, b] = win.transpose(0, 2, 3, 1)
    return out


def _patches_of(Xp: np.ndarray, geo: ConvGeometry, group: int, Ho: int, Wo: int) -> np.ndarray:
    """Patches of the padded inputs ``Xp`` (n, C_in, H+2p, W+2p) for one group: (n*Ho*Wo, fan_in),
    rows ordered (sample, i, j), columns ``(c, a, b)`` as ``W.reshape(C_out, -1)``."""
    cg = geo.c_in_group
    return _im2col(Xp[:, group * cg:(group + 1) * cg], geo, Ho, Wo).reshape(-1, geo.fan_in)


def _patches_all(Xp: np.ndarray, geo: ConvGeometry, Ho: int, Wo: int) -> np.ndarray:
    """Patches of every group at once: (n*Ho*Wo, groups, fan_in) (channel ``g C_g + c``)."""
    return _im2col(Xp, geo, Ho, Wo).reshape(-1, geo.groups, geo.fan_in)


def _pad(X: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    ph, pw = geo.padding
    if ph == 0 and pw == 0:
        return X
    return np.pad(X, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _check_X(X, c_in: int | None = None) -> np.ndarray:
    X = as_float_array(X, "X", ndim=4)
    if X.shape[0] == 0:
        raise ValueError("X must have at least one sample, found 0")
    if c_in is not None and X.shape[1] != c_in:
        raise ValueError(f"X must have shape (N, {c_in}, H, W) to match the weights, found {X.shape}")
    return X


def patches(X, geo: ConvGeometry, group: int = 0) -> np.ndarray:
    """All patches of one group as a matrix ``(N * H_o * W_o, fan_in)`` (materialised: for small inputs)."""
    X = _check_X(X, geo.c_in)
    Ho, Wo = geo.output_size(X.shape[2], X.shape[3])
    geo.check_work(1, X.shape[2], X.shape[3])
    if X.shape[0] * Ho * Wo * geo.fan_in > MAX_WORK_ELEMENTS:
        raise ValueError(f"X: its {X.shape[0] * Ho * Wo} patches of {geo.fan_in} entries are above the limit "
                         f"reference.conv.MAX_WORK_ELEMENTS = {MAX_WORK_ELEMENTS} entries at once; use conv_gram")
    return _patches_of(_pad(X, geo), geo, group, Ho, Wo)


def patches_all(X, geo: ConvGeometry) -> np.ndarray:
    """The patches of every group at once, ``(N * H_o * W_o, groups, fan_in)`` (channel ``g C_g + c``;
    materialised: for small inputs)."""
    X = _check_X(X, geo.c_in)
    Ho, Wo = geo.output_size(X.shape[2], X.shape[3])
    return _patches_all(_pad(X, geo), geo, Ho, Wo)


def _chunk(n_per_sample: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, n_per_sample))


def conv2d(X, W, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """The convolution (no bias) of ``X`` (N, C_in, H, W) by ``W`` (C_out, C_in/groups, kh, kw):
    ``(N, C_out, H_o, W_o)``, computed on patches in chunks of samples."""
    X = _check_X(X)
    W = as_float_array(W, "W", ndim=4)
    geo = conv_geometry(W.shape, X.shape[1], stride, padding, dilation, groups)
    return _conv2d(X, W.reshape(geo.c_out, -1), geo)


def _conv2d(X: np.ndarray, W2: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Trusting version of :func:`conv2d` with ``W2 = W.reshape(C_out, fan_in)``."""
    N = X.shape[0]
    Ho, Wo = geo.output_size(X.shape[2], X.shape[3])
    geo.check_work(N, X.shape[2], X.shape[3], output=True)
    Y = np.empty((N, geo.c_out, Ho, Wo))
    og = geo.c_out_group
    step = _chunk(Ho * Wo * geo.fan_in)
    for s in range(0, N, step):
        Xp = _pad(X[s:s + step], geo)
        n = Xp.shape[0]
        for g in range(geo.groups):
            P = _patches_of(Xp, geo, g, Ho, Wo)
            Yg = P @ W2[g * og:(g + 1) * og].T  # (n*Ho*Wo, og)
            Y[s:s + n, g * og:(g + 1) * og] = Yg.reshape(n, Ho, Wo, og).transpose(0, 3, 1, 2)
            del P, Yg  # freed before the next group's: one group's chunk at a time, as work() counts
    return Y


def conv_gram(X, geo: ConvGeometry) -> np.ndarray:
    """The Gram matrices ``G_g`` of every group, shape ``(groups, fan_in, fan_in)`` (module docs).

    One group's patches of at most ``CHUNK_ELEMENTS`` entries (or one sample's, if larger) exist
    at a time.
    """
    X = _check_X(X, geo.c_in)
    N = X.shape[0]
    Ho, Wo = geo.output_size(X.shape[2], X.shape[3])
    geo.check_work(N, X.shape[2], X.shape[3])
    f = geo.fan_in
    G = np.zeros((geo.groups, f, f))
    step = _chunk(Ho * Wo * f)
    for s in range(0, N, step):
        Xp = _pad(X[s:s + step], geo)
        for g in range(geo.groups):
            P = _patches_of(Xp, geo, g, Ho, Wo)
            G[g] += P.T @ P
            del P  # freed before the next group's: one group's patches at a time, as work() counts
    G /= N * Ho * Wo
    return (G + G.transpose(0, 2, 1)) / 2


def conv_loss(W, X, W_hat, stride=1, padding=0, dilation=1, groups=1) -> float:
    """Eq. 20 of a convolution from its outputs: ``sum_o mean_{n,i,j} (y_{noij} - y^hat_{noij})^2``."""
    W = as_float_array(W, "W", ndim=4)
    W_hat = as_float_array(W_hat, "W_hat", shape=W.shape)
    X = _check_X(X)
    geo = conv_geometry(W.shape, X.shape[1], stride, padding, dilation, groups)
    R = _conv2d(X, (W - W_hat).reshape(geo.c_out, -1), geo)
    return float(np.einsum("nohw,nohw->", R, R) / (R.shape[0] * R.shape[2] * R.shape[3]))


def _patches_adjoint(dP: np.ndarray, geo: ConvGeometry, n: int, H: int, W: int) -> np.ndarray:
    """The adjoint of :func:`_patches_all`: patch gradients ``dP`` of shape (n*Ho*Wo, groups,
    fan_in) scattered back onto the (unpadded) inputs, shape (n, C_in, H, W)."""
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = geo.kernel, geo.stride, geo.dilation, geo.padding
    Ho, Wo = geo.output_size(H, W)
    dXp = np.zeros((n, geo.c_in, H + 2 * ph, W + 2 * pw))
    D = dP.reshape(n, Ho, Wo, geo.c_in, kh, kw)
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            win = (slice(None), slice(None), slice(r0, r0 + sh * (Ho - 1) + 1, sh), slice(c0, c0 + sw * (Wo - 1) + 1, sw))
            dXp[win] += D[:, :, :, :, a, b].transpose(0, 3, 1, 2)
    return dXp[:, :, ph:ph + H, pw:pw + W]
