"""Cross-check of the conv and token posing against PyTorch (a peer; never a test dependency).

Captures each convolution's inputs with a forward pre-hook, exactly as docs/guide/real_models.md
shows, poses ``solvers.ConvProblem`` on them and compares its local loss (Eq. 20 on patches)
for a random up/down rounding with the same loss computed from ``torch.nn.functional.conv2d``
outputs: grouped, depthwise, dilated, strided and asymmetric geometries, and a token layer.

    python benchmarks/conv_torch.py      # in a separate environment with torch installed

Prints one line per case and the largest relative difference; exits 0 with a message naming
torch when it is not installed.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = [  # C_in, C_out, kernel, stride, padding, dilation, groups
    (4, 6, 3, 2, 1, 1, 2),
    (3, 3, 3, 1, 2, 2, 3),
    (2, 5, (3, 2), (2, 1), (1, 0), (1, 2), 1),
]


def main() -> int:
    try:
        import torch
    except ImportError:
        print("skipped: the peer 'torch' is not installed in this Python (pip install torch)")
        return 0
    from reference.grid import fit_grid
    from solvers import ConvProblem, LayerProblem

    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(0)
    worst = 0.0
    for cin, cout, k, s, p, d, g in CASES:
        conv = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=False)
        model = torch.nn.Sequential(torch.nn.Conv2d(cin, cin, 1), conv)
        seen = []
        hook = conv.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().double().numpy()))
        with torch.no_grad():
            for _ in range(3):
                model(torch.from_numpy(rng.normal(size=(4, cin, 7, 6))))
        hook.remove()
        X = np.concatenate(seen)
        W = conv.weight.detach().double().numpy()
        prob = ConvProblem(W, fit_grid(W.reshape(cout, -1), bits=3), X, stride=conv.stride, padding=conv.padding,
                           dilation=conv.dilation, groups=conv.groups)
        v = (rng.random(prob.shape) < 0.5) * prob.movable
        opts = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=g)
        with torch.no_grad():
            xt = torch.from_numpy(X)
            R = (torch.nn.functional.conv2d(xt, torch.from_numpy(W), **opts)
                 - torch.nn.functional.conv2d(xt, torch.from_numpy(prob.w_hat_4d(v)), **opts))
            want = float((R ** 2).sum() / (R.shape[0] * R.shape[2] * R.shape[3]))
        rel = abs(prob.loss(v) - want) / want
        worst = max(worst, rel)
        print(f"conv C_in={cin} C_out={cout} k={k} s={s} p={p} d={d} groups={g}: loss {prob.loss(v):.12e}, "
              f"torch {want:.12e}, relative difference {rel:.1e}")
    lin = torch.nn.Linear(5, 3, bias=False)
    X = rng.normal(size=(4, 6, 5))
    W = lin.weight.detach().double().numpy()
    prob = LayerProblem(W, fit_grid(W, bits=3), X=X)
    v = (rng.random(prob.shape) < 0.5) * prob.movable
    with torch.no_grad():
        e = torch.from_numpy(X) @ torch.from_numpy(W - prob.w_hat(v)).T
        want = float((e ** 2).sum() / (4 * 6))
    rel = abs(prob.loss(v) - want) / want
    worst = max(worst, rel)
    print(f"token layer (4, 6, 5): loss {prob.loss(v):.12e}, torch {want:.12e}, relative difference {rel:.1e}")
    print(f"largest relative difference: {worst:.1e} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
