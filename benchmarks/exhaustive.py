"""Exhaustive enumeration: this project's ``exhaustive`` against dimod's ExactSolver.

Each measurement runs in its own subprocess, so its peak resident memory (``ru_maxrss``, the
whole process: interpreter, numpy, dimod and the solver) is measured alone. Both solvers get the
same dense random BQM for each ``n`` (dimod's ``gnp_random_bqm`` with p = 1, seed n) and must
agree on the minimum energy.

    python benchmarks/exhaustive.py                 # n = 16..22 vs ExactSolver, ours alone to 30
    python benchmarks/exhaustive.py --max-n 32      # further
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _bqm(n):
    import dimod

    return dimod.generators.gnp_random_bqm(n, 1.0, dimod.BINARY, random_state=n)


def _one(which: str, n: int, repeat: int) -> dict:
    import dimod

    from solvers import BQM, solve

    bqm = _bqm(n)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        if which == "ours":
            energy = solve(BQM.from_dimod(bqm), "exhaustive", max_vars=40).energy
        else:
            energy = float(dimod.ExactSolver().sample(bqm).first.energy)
        times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"which": which, "n": n, "seconds": min(times), "first": times[0], "energy": energy,
            "peak_rss_mb": rss_mb}


def _run(which, n, repeat):
    out = subprocess.run([sys.executable, __file__, "--one", which, str(n), str(repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one", nargs=3, metavar=("WHICH", "N", "REPEAT"), help=argparse.SUPPRESS)
    p.add_argument("--peer-max-n", type=int, default=22)
    p.add_argument("--max-n", type=int, default=30)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), int(args.one[2]))))
        return 0
    print(f"{'n':>3} {'ours s':>9} {'ours Mstates/s':>15} {'ours MB':>8} {'dimod s':>9} {'dimod MB':>9} {'ratio':>8}"
          f" {'ours 1st s':>11} {'1st ratio':>10}")
    for n in range(16, args.max_n + 1):
        ours = _run("ours", n, 4 if n <= 26 else 1)
        rate = 2**n / ours["seconds"] / 1e6
        if n <= args.peer_max_n:
            peer = _run("dimod", n, 1)
            if abs(peer["energy"] - ours["energy"]) > 1e-9 * max(1.0, abs(peer["energy"])):
                raise SystemExit(f"n={n}: energies differ: ours {ours['energy']} dimod {peer['energy']}")
            ratio = peer["seconds"] / ours["seconds"]
            cold = peer["seconds"] / ours["first"]  # a fresh process's first call: what a user times
            print(f"{n:>3} {ours['seconds']:>9.4f} {rate:>15.1f} {ours['peak_rss_mb']:>8.0f} "
                  f"{peer['seconds']:>9.3f} {peer['peak_rss_mb']:>9.0f} {ratio:>7.0f}x "
                  f"{ours['first']:>11.4f} {cold:>9.0f}x", flush=True)
        else:
            print(f"{n:>3} {ours['seconds']:>9.4f} {rate:>15.1f} {ours['peak_rss_mb']:>8.0f} "
                  f"{'-':>9} {'-':>9} {'-':>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
