"""Heuristic defaults chosen by measurement: quality per CPU second of ``anneal``, ``tabu``,
``steepest``, ``gptq`` and ``lns`` at several budgets, by width and family.

One row (the first) of each layer of ``benchmarks/heuristics.py`` (families ``mixing``,
``ar1``, ``lowrank``, ``rankdef``; seed 0), solved as a QUBO with one BLAS thread. Each cell is
the row's loss above the lowest loss any setting found on that row, in %, and the CPU seconds
of the call (``time.process_time``: less sensitive to other jobs than wall time, but still
not free of them). ``--json`` keeps every number. Settings: :data:`SETTINGS` (a name, the
method, its options; ``default`` is what ``solvers.solve`` gives today).

Run: ``PYTHONPATH=. python benchmarks/defaults.py --widths 64,128,256,512`` and
``--widths 1024 --skip anneal-r128,anneal-r32,anneal-r8s4k,lns-x4``.
"""

from __future__ import annotations

import argparse
import json
import time

from solvers.runtime import blas_threads

from benchmarks.heuristics import FAMILIES, family_layer
from solvers import solve

#: (name, method, options): each method at its default (the bare name) and at budgets around it.
#: ``anneal-r128`` and ``lns-tree0`` are the defaults before the width rules.
SETTINGS = [
    ("anneal-r128", "anneal", {"num_reads": 128, "num_sweeps": 1000}),
    ("anneal-r32", "anneal", {"num_reads": 32, "num_sweeps": 1000}),
    ("anneal-r8", "anneal", {"num_reads": 8, "num_sweeps": 1000}),
    ("anneal-r2", "anneal", {"num_reads": 2, "num_sweeps": 1000}),
    ("anneal-r8s4k", "anneal", {"num_reads": 8, "num_sweeps": 4000}),
    ("anneal-r32s250", "anneal", {"num_reads": 32, "num_sweeps": 250}),
    ("anneal", "anneal", {}),
    ("tabu", "tabu", {}),
    ("tabu-r4", "tabu", {"num_reads": 4}),
    ("steepest", "steepest", {}),
    ("steepest-r256", "steepest", {"num_reads": 256}),
    ("gptq", "gptq", {}),
    ("gptq-act", "gptq", {"order": "act_order"}),
    ("tree", "tree", {}),
    ("lns-tree0", "lns", {"tree_nodes": 0}),
    ("lns", "lns", {}),
    ("lns-x4", "lns", {"reads": 8, "kicks": 128}),
]


def tree_study(widths, families, seed) -> None:
    for n in widths:
        for fam in families:
            if fam == "rankdef":  # its bound is 0 from n = 128 on
                continue
            bqm = family_layer(fam, n, 1, seed).row_bqm(0)
            ref = solve(bqm, "lns", seed=seed, tree_nodes=0).energy
            for nodes in (1, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6):
                with blas_threads(1):
                    t0 = time.process_time()
                    r = solve(bqm, "tree", max_nodes=nodes)
                    t = time.process_time() - t0
                print(f"{fam:8} {n:5} {nodes:>8} nodes: LB / ref {max(r.lower_bound, 0) / ref:.3f}, "
                      f"state / ref {r.energy / ref:.3f}, {t:.2f} CPU s", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,128,256,512")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--only", help="comma-separated setting names to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated setting names to leave out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="OUT.json")
    ap.add_argument("--tree-study", action="store_true",
                    help="instead: the tree's bound and state after 1 to 1e6 nodes (mixing, ar1, lowrank), "
                         "as fractions of lns's loss with tree_nodes=0 (the default before the width rules)")
    a = ap.parse_args(argv)
    if a.tree_study:
        tree_study([int(w) for w in a.widths.split(",")], a.families.split(","), a.seed)
        return
    skip = set(a.skip.split(","))
    only = set(a.only.split(",")) if a.only else None
    settings = [s for s in SETTINGS if s[0] not in skip and (only is None or s[0] in only)]
    out = []
    print("family   width  " + "  ".join(f"{s[0]:>16}" for s in settings) + "   (loss above best %, CPU s)")
    for n in (int(w) for w in a.widths.split(",")):
        for fam in a.families.split(","):
            bqm = family_layer(fam, n, 1, a.seed).row_bqm(0)
            res = {}
            for name, method, opts in settings:
                with blas_threads(1):
                    t0 = time.process_time()
                    r = solve(bqm, method, **({"seed": a.seed} | opts if method not in ("gptq", "tree") else opts))
                    res[name] = (r.energy, time.process_time() - t0)
            best = min(e for e, _ in res.values())
            cells = [f"{100 * (e - best) / best:7.3f} {t:6.2f}s" for e, t in res.values()]
            print(f"{fam:8} {n:5}  " + "  ".join(f"{c:>16}" for c in cells), flush=True)
            out.append({"family": fam, "n": n, "n_vars": bqm.n, "best": best,
                        "results": {k: {"loss": e, "gap": (e - best) / best, "cpu_s": t} for k, (e, t) in res.items()}})
            if a.json:
                with open(a.json, "w") as fh:
                    json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
