"""Overhead of the compare harness against calling the solvers directly in a loop.

A sweep of 1,000 tiny layers (a TOML generator sweep: 2 rows, fan-in 4-8) solved by
``exhaustive``, ``nearest`` and ``stochastic``: ``python -m reference.compare --config ...
--jobs 2`` in-process (problem generation, tasks, worker processes, aggregation, JSON), against
the same problems built and solved in a plain loop in one process. Both produce the same losses
(checked). Target: harness / loop under 1.3.

    python benchmarks/compare_overhead.py [--jobs 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

SWEEP = """
[sweep]
name = "tiny"
out = 2
fan_in = [4, 5, 6, 7, 8]
bits = [2, 3, 4, 5]
rho = [0.0, 0.3, 0.6, 0.8, 0.9]
samples_per_input = [4]
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""
METHODS = ["exhaustive", "nearest", "stochastic"]


def direct(cfg_path):
    from reference.compare.sources import load_config
    from solvers import solve

    out = {}
    for p in load_config(cfg_path):
        for m in METHODS:
            opts = {"seed": 0} if m == "stochastic" else {}
            out[(p.name, m)] = solve(p, m, **opts).energy
    return out


def harness(cfg_path, jobs, json_path):
    from reference.compare.cli import main

    rc = main(["--config", cfg_path, "--methods", ",".join(METHODS), "--jobs", str(jobs), "--quiet",
               "--json", json_path])
    assert rc == 0
    with open(json_path) as fh:
        doc = json.load(fh)
    return {(p["name"], r["method"]): r["loss"] for p in doc["problems"] for r in p["results"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "sweep.toml")
        with open(cfg, "w") as fh:
            fh.write(SWEEP)
        js = os.path.join(tmp, "out.json")
        t_direct, t_harness = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            a = direct(cfg)
            t_direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = harness(cfg, args.jobs, js)
            t_harness.append(time.perf_counter() - t0)
            if a != b:
                raise SystemExit("harness and direct loop disagree")
    n_problems = len(a) // len(METHODS)
    print(f"{n_problems} problems x {len(METHODS)} methods ({', '.join(METHODS)})")
    print(f"direct loop, 1 process   : best {min(t_direct):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in t_direct)})")
    print(f"harness, --jobs {args.jobs:<2}       : best {min(t_harness):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in t_harness)})")
    print(f"ratio harness / direct   : {min(t_harness) / min(t_direct):.2f} (target < 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
