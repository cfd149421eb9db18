"""Quality per second of the heuristics on wide rows: ``lns`` against ``tabu``, ``anneal``,
``steepest``, ``gptq`` and the relaxation (``adaround``), same layers, same run.

Families (one layer of ``--rows`` rows per family and width; inputs ``N = 4 n`` samples, weights
``N(0, 0.1^2)``, the paper's 4-bit per-row grid):

* ``mixing``: ``X = Z A + 0.1 E``, ``A`` Gaussian ``n x n`` scaled by ``1/sqrt(n)``;
* ``ar1``: AR(1) correlation ``rho = 0.9``, inputs permuted;
* ``lowrank``: rank ``n/8`` plus noise ``0.1``;
* ``rankdef``: ``n/2`` distinct samples repeated (``G`` singular).

For each layer the table gives each method's loss above the best any method found (in %) and
its seconds. Run: ``python benchmarks/heuristics.py --widths 128,256,512,1024 --rows 2``.

``--proven N`` instead compares ``lns`` (seed 0) with the tree's proven optimum on one-row
layers of width ``N`` (six seeds each of the mixing and AR(1) families and, at N = 64, ten rows
each of ``benchmarks/exact.py``'s AR(1) and MLP layers; the tree needs up to a minute a row on
the mixing rows at N = 64). Run: ``PYTHONPATH=. python benchmarks/heuristics.py --proven 64``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.exact import correlated_layer, mlp_layer
from reference import fit_grid
from solvers import METHODS, LayerProblem, solve

FAMILIES = ("mixing", "ar1", "lowrank", "rankdef")
HEURISTICS = ("lns", "tabu", "anneal", "steepest", "gptq", "adaround")


def family_inputs(family: str, n: int, rng) -> np.ndarray:
    N = 4 * n
    if family == "mixing":
        A = rng.normal(size=(n, n)) / np.sqrt(n)
        return rng.normal(size=(N, n)) @ A + 0.1 * rng.normal(size=(N, n))
    if family == "ar1":
        idx = np.arange(n)
        L = np.linalg.cholesky(0.9 ** np.abs(idx[:, None] - idx[None, :]))
        return (rng.normal(size=(N, n)) @ L.T)[:, rng.permutation(n)]
    if family == "lowrank":
        r = max(2, n // 8)
        return rng.normal(size=(N, r)) @ rng.normal(size=(r, n)) / np.sqrt(r) + 0.1 * rng.normal(size=(N, n))
    if family == "rankdef":
        m = max(1, n // 2)
        return rng.normal(size=(m, n))[np.arange(N) % m]
    raise ValueError(f"family must be one of {FAMILIES}, found {family!r}")


def family_layer(family: str, n: int, rows: int, seed: int = 0) -> LayerProblem:
    rng = np.random.default_rng([seed, n, FAMILIES.index(family)])
    X = family_inputs(family, n, rng)
    W = rng.normal(size=(rows, n)) * 0.1
    return LayerProblem(W, fit_grid(W, bits=4), X=X, name=f"{family}-{n}")


def proven_rows(n: int):
    """(name, one-row problem): six rows each of the mixing and AR(1) families above and, at
    n = 64, rows 0-9 of ``benchmarks/exact.py``'s AR(1) layer and of the trained MLP's layer 0."""
    for fam in ("mixing", "ar1"):
        for seed in range(6):
            yield f"{fam}-{n}-seed{seed}", family_layer(fam, n, 1, seed).row_bqm(0)
    if n == 64:
        for name, layer in (("exact-ar1", correlated_layer(64, 10, 0)), ("exact-mlp", mlp_layer(64, 10, 0))):
            for k in range(10):
                yield f"{name}-64-row{k}", layer.row_bqm(k)


def print_proven(n: int, lns_options: str) -> None:
    """``lns`` (seed 0, its defaults updated with ``lns_options``) against the tree's proven
    optimum (its default budget) on :func:`proven_rows`; one line per row and a summary."""
    opts = json.loads(lns_options)
    gaps, cpu = [], 0.0
    for name, bqm in proven_rows(n):
        opt = solve(bqm, "tree")
        if not opt.optimal:
            print(f"{name:22} not proven", flush=True)
            continue
        t0 = time.process_time()
        r = solve(bqm, "lns", **({"seed": 0} | opts))
        cpu += time.process_time() - t0
        gaps.append(100 * (r.energy - opt.energy) / opt.energy)
        print(f"{name:22} lns {gaps[-1]:8.3f} % above the proven optimum", flush=True)
    g = np.array(gaps)
    print(f"{len(g)} proven rows: {int(np.sum(g <= 1e-9))} on the optimum, worst {g.max():.3f} %, "
          f"{int(np.sum(g > 1))} above 1 %; lns CPU {cpu:.1f} s in all")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="128,256,512,1024")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--methods", default=",".join(HEURISTICS))
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proven", type=int, metavar="N", help="lns against the tree's optimum at width N")
    ap.add_argument("--lns-options", default="{}", help="with --proven: lns options as JSON, e.g. '{\"tree_nodes\": 0}'")
    a = ap.parse_args(argv)
    if a.proven:
        print_proven(a.proven, a.lns_options)
        return
    methods = a.methods.split(",")
    print("family  width  " + "  ".join(f"{m:>16}" for m in methods) + "   (loss above best %, seconds)")
    for n in (int(w) for w in a.widths.split(",")):
        for fam in a.families.split(","):
            p = family_layer(fam, n, a.rows, a.seed)
            res = {}
            for m in methods:
                t0 = time.perf_counter()
                opts = {"seed": a.seed} if "seed" in METHODS[m].options else {}
                r = solve(p, m, **opts)
                res[m] = (r.energy, time.perf_counter() - t0)
            best = min(e for e, _ in res.values())
            cells = [f"{100 * (res[m][0] - best) / best:7.3f} {res[m][1]:7.2f}s" for m in methods]
            print(f"{fam:8} {n:5}  " + "  ".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
