"""AdaRound relaxation: this project against AIMET's AdaRound, and its gap to the exact optimum.

Sections (``--sections``, default all):

* ``headline``: a 128-in, 64-out linear layer, 2048 AR(1)-correlated input samples, 4-bit per-row
  symmetric grid (weight-MSE scale), 10,000 iterations. AIMET's AdaRound (aimet-torch, run in its
  own virtual environment in a subprocess, exchanging .npz files) against this project's
  relaxation (gram and mini-batch modes), round-to-nearest and ``anneal`` on the same per-row QUBOs.
  AIMET's grid is forced to ours (``set_range`` per channel) and its effective float32 scale is
  read back and used for every method, so all of them round on the very same grid; losses are the
  local loss (Eq. 20) of each hard rounding, recomputed in float64 by ``LayerProblem.loss``.
* ``lambda`` and ``iterations``: the gap to the proven optimum as lambda (AIMET preset, absolute)
  and the iteration count vary, on the default suite and on its rank-deficient layer.
* ``scale``: lambda is absolute: one layer with its inputs scaled by ``a``, lambda fixed or scaled by ``a^2``.
* ``modes``: cost per step of gram and mini-batch mode as the fan-in grows.
* ``gap``: the optimality-gap table (mean, median, worst) of adaround and nearest on the default suite.

AIMET is optional: pass ``--aimet-python`` (default ``$AIMET_PYTHON`` or /tmp/aimetvenv/bin/python),
a Python with ``aimet-torch`` installed, e.g.::

    python -m venv /tmp/aimetvenv && /tmp/aimetvenv/bin/pip install torch==2.14.1 aimet-torch

Run::

    python benchmarks/adaround.py --threads 1            # everything, about 10 minutes
    python benchmarks/adaround.py --sections gap         # the table in docs/results.md
    python benchmarks/adaround.py --quick                # smoke run, 1,000 iterations

Both peers get the same number of threads (``torch.set_num_threads`` and a BLAS cap).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


# ---------------------------------------------------------------------------- AIMET side
def aimet_worker(inp: str, outp: str) -> None:  # pragma: no cover - runs in the AIMET venv
    """Run AIMET's AdaRound on one linear layer with a given per-channel symmetric grid."""
    import torch

    d = np.load(inp)
    torch.manual_seed(int(d["seed"]))
    np.random.seed(int(d["seed"]))
    torch.set_num_threads(int(d["threads"]))
    W = torch.tensor(d["W"], dtype=torch.float32)
    X = torch.tensor(d["X"], dtype=torch.float32)
    s = torch.tensor(d["scale"], dtype=torch.float32)
    bits = int(d["bits"])

    from aimet_torch._base.adaround import adaround_optimizer as aopt
    from aimet_torch.adaround.adaround_weight import Adaround, AdaroundParameters
    from aimet_torch.common.defs import QuantScheme
    from aimet_torch.quantsim import QuantizationSimModel

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)

        def forward(self, x):
            return self.fc(x)

    model = Net().eval()
    with torch.no_grad():
        model.fc.weight.copy_(W)
    tmp = tempfile.mkdtemp()
    cfg = {"defaults": {"ops": {"is_output_quantized": "True"},
                        "params": {"is_quantized": "True", "is_symmetric": "True"},
                        "per_channel_quantization": "True"},
           "params": {}, "op_type": {}, "supergroups": [],
           "model_input": {"is_input_quantized": "True"}, "model_output": {}}
    with open(os.path.join(tmp, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    dummy = X[:1]
    sim = QuantizationSimModel(model, dummy_input=dummy, quant_scheme=QuantScheme.post_training_tf,
                               default_param_bw=bits, config_file=os.path.join(tmp, "cfg.json"))
    # what Adaround.apply_adaround does before optimising, with our grid instead of its own
    qfc = sim.model.fc
    qfc.input_quantizers = torch.nn.ModuleList([None for _ in qfc.input_quantizers])
    qfc.output_quantizers = torch.nn.ModuleList([None for _ in qfc.output_quantizers])
    wq = qfc.param_quantizers["weight"]
    wq.set_range(wq.qmin * s.view(-1, 1), wq.qmax * s.view(-1, 1))
    loader = torch.utils.data.DataLoader(X, batch_size=64, shuffle=False)
    params = AdaroundParameters(loader, num_batches=len(loader),
                                default_num_iterations=int(d["iterations"]),
                                default_reg_param=float(d["lam"]), default_beta_range=(20, 2),
                                default_warm_start=0.2)
    captured = {}
    original = aopt.AdaroundOptimizer.adaround_module.__func__

    def timed(cls, module, quant_module, *args, **kwargs):
        t = time.perf_counter()
        original(cls, module, quant_module, *args, **kwargs)
        captured["opt_seconds"] = time.perf_counter() - t
        captured["alpha"] = quant_module.alpha.detach().cpu().numpy().copy()
        captured["delta"] = quant_module.broadcasted_delta.detach().cpu().numpy().copy()
        captured["offset"] = quant_module.broadcasted_offset.detach().cpu().numpy().copy()
        captured["clip"] = np.array([quant_module.clip_min, quant_module.clip_max])

    aopt.AdaroundOptimizer.adaround_module = classmethod(timed)
    t = time.perf_counter()
    Adaround._apply_adaround(sim, model, dummy, params, path=tmp, filename_prefix="ada")
    total = time.perf_counter() - t
    import aimet_torch

    np.savez(outp, total_seconds=total, version=str(getattr(aimet_torch, "__version__", "?")),
             torch_version=torch.__version__, **captured)


def run_aimet(python: str, W, X, scale, bits, iterations, lam, seed, threads):
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, W=W, X=X, scale=scale, bits=bits, iterations=iterations, lam=lam, seed=seed,
                 threads=threads)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run([python, os.path.abspath(__file__), "--aimet-worker", inp, outp],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not os.path.exists(outp):
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"AIMET worker failed (exit {proc.returncode}):\n{tail}")
        return dict(np.load(outp))


# ---------------------------------------------------------------------------- helpers
def f32(a):
    """Values that float32 represents exactly, so both peers see the same data."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def gap(loss, opt):
    return 100.0 * (loss - opt) / opt if opt > 0 else (0.0 if loss == opt else float("inf"))


_OPTIMA: dict = {}
_SUITE: list = []


def optimum(problem):
    """Exact optimum (exhaustive search per row), computed once per suite layer."""
    if problem.name not in _OPTIMA:
        from solvers import solve

        _OPTIMA[problem.name] = solve(problem, "exhaustive").energy
    return _OPTIMA[problem.name]


def suite_layers():
    if not _SUITE:
        from reference.compare.suites import default_suite

        _SUITE.extend(default_suite(0)[:6])  # the six layers small enough for exhaustive
    return _SUITE


# ---------------------------------------------------------------------------- sections
def headline(args):
    from reference import Grid, fit_grid
    from reference.compare.suites import correlated_layer
    from solvers import LayerProblem, solve

    rng = np.random.default_rng(args.seed)
    W, X = correlated_layer(64, 128, 2048, rng)
    W, X = f32(W), f32(X)
    grid = fit_grid(W, bits=4, symmetric=True, per_row=True)
    T = args.iterations
    print(f"## Headline: 128-in, 64-out linear layer, N = 2048 correlated samples, 4-bit per-row "
          f"symmetric grid, {T} iterations, {args.threads} thread(s)\n")
    aimet = None
    if args.aimet_python and os.path.exists(args.aimet_python):
        try:
            aimet = run_aimet(args.aimet_python, W, X, grid.scale, 4, T, 0.01, args.seed, args.threads)
        except RuntimeError as exc:
            print(f"AIMET could not be run: {exc}\n")
    else:
        print(f"AIMET not run: no Python with aimet-torch at {args.aimet_python!r}\n")
    if aimet is not None:
        # AIMET recomputes the scale in float32 from the range we set; round on that very grid
        scale = aimet["delta"][:, 0].astype(np.float64)
        drift = np.max(np.abs(scale - grid.scale) / grid.scale)
        grid = Grid(scale, grid.qmin, grid.qmax, 0)
    problem = LayerProblem(W, grid, X=X, name="fc128x64")
    rows = []
    if aimet is not None:
        x = ((aimet["alpha"] >= 0) & (problem.movable == 1)).astype(np.int8)
        # AIMET's own hard weights: (clip(floor(W/d) + [alpha >= 0] - off, cmin, cmax) + off) d
        d, off, (cmin, cmax) = aimet["delta"], aimet["offset"], aimet["clip"]
        wa = (np.clip(np.floor(W / d) + (aimet["alpha"] >= 0) - off, cmin, cmax) + off) * d
        same = np.max(np.abs(wa - problem.w_hat(x)))
        ha = np.clip(1 / (1 + np.exp(-aimet["alpha"].astype(np.float64))) * 1.2 - 0.1, 0, 1)
        far = int(np.sum((ha > 1e-3) & (ha < 1 - 1e-3) & (problem.movable == 1)))
        rows.append(("AIMET AdaRound (batch 32, float32)", float(aimet["opt_seconds"]), problem.loss(x),
                     f"{far} h not binary; whole apply_adaround call {float(aimet['total_seconds']):.1f} s; "
                     f"aimet-torch {aimet['version']}, torch {aimet['torch_version']}"))
        print(f"AIMET scale read back: max relative change {drift:.1e}; its hard weights equal "
              f"ours for its rounding to {same:.1e}\n")
    for label, opts in (("adaround, gram mode (this project)", {"mode": "gram"}),
                        ("adaround, batch mode 32 (this project)", {"mode": "batch"})):
        r = solve(problem, "adaround", iterations=T, threads=args.threads, seed=args.seed, **opts)
        rows.append((label, r.seconds, r.energy,
                     f"soft loss {r.info['soft_loss']:.4f}, {r.info['not_binary']} h not binary"))
    r = solve(problem, "nearest")
    rows.append(("round to nearest", r.seconds, r.energy, ""))
    r = solve(problem, "anneal", seed=args.seed)
    rows.append(("anneal on the per-row QUBOs (32 reads x 1000 sweeps)", r.seconds, r.energy, ""))
    ref_t = rows[0][1] if aimet is not None else None
    ref_l = rows[0][2] if aimet is not None else None
    print("| method | seconds | local loss | time / AIMET | loss / AIMET | note |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for label, sec, loss, note in rows:
        tr = f"{sec / ref_t:.3f}" if ref_t else "-"
        lr = f"{loss / ref_l:.3f}" if ref_l else "-"
        print(f"| {label} | {sec:.2f} | {loss:.5f} | {tr} | {lr} | {note} |")
    print()


def sweep(args, name, values, make_opts):
    from solvers import solve

    layers = suite_layers()
    rankdef = [p for p in layers if "rankdef" in (p.name or "")]
    print(f"## Gap to the optimum (%) against {name}: default suite (mean, worst) and its "
          f"rank-deficient layer {rankdef[0].name if rankdef else '-'}\n")
    opts_note = "AIMET preset, gram mode" + ("" if name == "iterations" else f", {args.iterations} iterations")
    print(f"({opts_note}; optimum by exhaustive search per row. Optimal local losses: "
          + ", ".join(f"{p.name} {optimum(p):.3g}" for p in layers) + ")\n")
    print(f"| {name} | suite mean gap | suite median gap | suite worst gap | rank-deficient gap | "
          f"h not binary (suite) | seconds |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v in values:
        gaps, far, secs, rd = [], 0, 0.0, None
        for p in layers:
            r = solve(p, "adaround", threads=args.threads, **make_opts(v))
            g = gap(r.energy, optimum(p))
            gaps.append(g)
            far += r.info["not_binary"]
            secs += r.seconds
            if p in rankdef:
                rd = g
        print(f"| {v:g} | {np.mean(gaps):.2f} | {np.median(gaps):.2f} | {np.max(gaps):.2f} | "
              f"{'-' if rd is None else f'{rd:.2f}'} | {far} | {secs:.1f} |")
    print()


def loss_scale(args):
    """lambda is absolute: scaling the inputs by a scales L by a^2 and changes the rounding,
    unless lambda is scaled by a^2 too."""
    from solvers import LayerProblem, solve

    base = suite_layers()[0]
    X = base.X
    print(f"## lambda is absolute: layer {base.name} with its inputs scaled by a (AIMET preset, gram, "
          f"{args.iterations} iterations)\n")
    print("| a | optimum | gap, lambda 0.01 | gap, lambda 0.01 a^2 | h not binary (0.01) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for a in (0.1, 0.3, 1.0, 3.0, 10.0):
        p = LayerProblem(base.W, base.grid, X=X * a, name=f"{base.name}-x{a:g}")
        opt = optimum(p)
        r1 = solve(p, "adaround", iterations=args.iterations, threads=args.threads)
        r2 = solve(p, "adaround", iterations=args.iterations, threads=args.threads, lam=0.01 * a * a)
        print(f"| {a:g} | {opt:.4g} | {gap(r1.energy, opt):.2f} % | {gap(r2.energy, opt):.2f} % | "
              f"{r1.info['not_binary']} |")
    print()


def modes(args):
    """Cost per step of gram and mini-batch mode as the fan-in grows (64 outputs, N = 2048)."""
    from reference import fit_grid
    from solvers import LayerProblem, solve

    rng = np.random.default_rng(args.seed)
    T = 300 if args.quick else 1000
    print(f"## Gram or mini-batch mode: milliseconds per step (64 outputs, N = 2048, batch 32, "
          f"best of 3 runs of {T} steps, {args.threads} thread(s))\n")
    print("| fan-in | gram | batch 32 | batch / gram |")
    print("| ---: | ---: | ---: | ---: |")
    for n_in in (32, 64, 128, 256, 512):
        W = rng.normal(size=(64, n_in)) / np.sqrt(n_in)
        X = rng.normal(size=(2048, n_in))
        p = LayerProblem(W, fit_grid(W, bits=4), X=X)
        best = {}
        for mode in ("gram", "batch"):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                solve(p, "adaround", iterations=T, mode=mode, threads=args.threads)
                times.append(time.perf_counter() - t)
            best[mode] = 1000 * min(times) / T
        print(f"| {n_in} | {best['gram']:.3f} | {best['batch']:.3f} | {best['batch'] / best['gram']:.2f} |")
    print()


def gap_table(args):
    from solvers import solve

    layers = suite_layers()
    rows = {"adaround (aimet preset, gram)": [], "adaround (aimet preset, batch 32)": [], "nearest": []}
    print("## Optimality gap on the six small layers of the default suite (`reference.compare.suites.default_suite(0)[:6]`)\n")
    print("| layer | optimum | adaround gram | adaround batch | nearest |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for p in layers:
        opt = optimum(p)
        a = solve(p, "adaround", threads=args.threads, iterations=args.iterations).energy
        b = solve(p, "adaround", mode="batch", seed=args.seed, threads=args.threads,
                  iterations=args.iterations).energy
        n = solve(p, "nearest").energy
        for k, v in zip(rows, (a, b, n)):
            rows[k].append(gap(v, opt))
        print(f"| {p.name} | {opt:.5g} | {a:.5g} ({gap(a, opt):.2f} %) | {b:.5g} ({gap(b, opt):.2f} %) | "
              f"{n:.5g} ({gap(n, opt):.2f} %) |")
    print("\n| method | mean gap | median gap | worst gap |")
    print("| --- | ---: | ---: | ---: |")
    for k, g in rows.items():
        print(f"| {k} | {np.mean(g):.2f} % | {np.median(g):.2f} % | {np.max(g):.2f} % |")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="headline,lambda,iterations,scale,modes,gap")
    ap.add_argument("--iterations", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aimet-python", default=os.environ.get("AIMET_PYTHON", "/tmp/aimetvenv/bin/python"))
    ap.add_argument("--quick", action="store_true", help="1,000 iterations, short sweeps")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations = 1000
    sections = args.sections.split(",")
    t0 = time.perf_counter()
    print(f"`python benchmarks/adaround.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n")
    if "headline" in sections:
        headline(args)
    if "lambda" in sections:
        lams = (0.001, 0.01, 0.1) if args.quick else (0.001, 0.003, 0.01, 0.03, 0.1)
        sweep(args, "lambda", lams, lambda v: {"lam": v, "iterations": args.iterations})
    if "iterations" in sections:
        its = (300, 1000) if args.quick else (1000, 3000, 10_000, 30_000)
        sweep(args, "iterations", its, lambda v: {"iterations": int(v)})
    if "modes" in sections:
        modes(args)
    if "scale" in sections:
        loss_scale(args)
    if "gap" in sections:
        gap_table(args)
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--aimet-worker":
        aimet_worker(sys.argv[2], sys.argv[3])
    else:
        main()
