"""Why the AdaRound relaxation lands far above the optimum on a real layer: iterations, lambda
against the layer's loss scale, and how much of the soft solution is left off the grid.

On one captured layer file (default: EfficientNet-Lite0's stem conv from
``benchmarks/real_networks.py efficientnet --out runs/effnet``), it computes the proven optimum
(``tree``, every row proved or the run says so) and ``nearest``, then runs the project's
``adaround`` for each preset and iteration count, with the preset's own lambda and with lambda
relative to the layer's scale,

    lam = r * c * L_nearest / n_weights,

so that the regulariser at its largest (every ``h`` at 1/2, ``f_reg = 1`` per weight) weighs ``r``
times the data term of rounding to nearest (``c``: the preset's loss normalisation, 1 for
``"sample"`` (aimet, brecq), ``1/out`` for ``"element"`` (torch_ao); docs/adaround.md). For each run it prints the hard rounding's local loss
(Eq. 20, recomputed in float64), its gap to the optimum, the loss of the soft weights, and the
fraction of rectified-sigmoid values ``h`` (Eq. 23) strictly inside (0.05, 0.95) at the end.

Run::

    python benchmarks/relaxation_gap.py runs/effnet/capture/000_conv_stem.npz \\
        --iterations 2000,10000,50000 --presets aimet,brecq,torch_ao --lam-rel 0.01,0.1,1,10

Deterministic (gram mode, seed 0); the seconds are wall time on the machine as loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from reference.compare.problem_files import load_layer  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.relaxation import PRESETS, rectified_sigmoid  # noqa: E402


def soft_fraction(V) -> float:
    """Fraction of ``h(V)`` strictly inside (0.05, 0.95): weights the relaxation left soft."""
    h = rectified_sigmoid(V)
    return float(np.mean((h > 0.05) & (h < 0.95)))


def run(path, presets, iterations, lam_rel, threads=1) -> dict:
    prob = load_layer(path)
    t0 = time.perf_counter()
    opt = solve(prob, "tree")
    t_opt = time.perf_counter() - t0
    near = solve(prob, "nearest")
    n_w = int(np.prod(prob.W.shape))
    head = {"file": os.path.basename(path), "rows": int(prob.W.shape[0]), "fan_in": int(prob.W.shape[1]),
            "optimum": opt.energy, "proved": bool(opt.optimal), "lower_bound": opt.lower_bound,
            "tree_seconds": round(t_opt, 2), "nearest": near.energy, "n_weights": n_w}
    rows = []
    for preset in presets:
        c = 1.0 if PRESETS[preset].normalization == "sample" else 1.0 / prob.n_rows
        lams = [("preset", PRESETS[preset].lam)] + [(f"{r:g} x c L_near/n", r * c * near.energy / n_w)
                                                    for r in lam_rel]
        for it in iterations:
            for label, lam in lams:
                t0 = time.perf_counter()
                res = solve(prob, "adaround", preset=preset, iterations=it, lam=lam, threads=threads)
                dt = time.perf_counter() - t0
                rows.append({"preset": preset, "iterations": it, "lam": lam, "lam_label": label,
                             "loss": res.energy, "gap": res.energy / opt.energy - 1,
                             "soft_loss": float(res.info["soft_loss"]),
                             "soft_fraction": soft_fraction(res.info["V"]), "seconds": round(dt, 2)})
                print(_line(rows[-1]), flush=True)
    return {"layer": head, "runs": rows}


def _line(r) -> str:
    return (f"{r['preset']:<9}{r['iterations']:>8,}  {r['lam_label']:<18}{r['lam']:>11.4g}{r['loss']:>12.4g}"
            f"{100 * r['gap']:>11,.0f}{r['soft_loss']:>12.4g}{100 * r['soft_fraction']:>9.1f}{r['seconds']:>8.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", nargs="?", default="runs/effnet/capture/000_conv_stem.npz")
    p.add_argument("--presets", default="aimet,brecq,torch_ao")
    p.add_argument("--iterations", default="2000,10000,50000")
    p.add_argument("--lam-rel", default="0.01,0.1,1,10", help="r in lam = r * c * L_nearest / n_weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the table as JSON here")
    args = p.parse_args(argv)
    presets = [s for s in args.presets.split(",") if s]
    its = [int(s) for s in args.iterations.split(",") if s]
    rel = [float(s) for s in args.lam_rel.split(",") if s]
    print(f"{'preset':<9}{'iters':>8}  {'lambda':<18}{'value':>11}{'loss':>12}{'gap %':>11}"
          f"{'soft loss':>12}{'soft %':>9}{'s':>8}")
    out = run(args.file, presets, its, rel, args.threads)
    h = out["layer"]
    print(f"\n{h['file']}: {h['rows']} x {h['fan_in']}, optimum {h['optimum']:.6g} "
          f"({'proved' if h['proved'] else 'NOT proved, bound ' + str(h['lower_bound'])}, {h['tree_seconds']} s), "
          f"nearest {h['nearest']:.6g} (+{100 * (h['nearest'] / h['optimum'] - 1):,.0f} %)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
