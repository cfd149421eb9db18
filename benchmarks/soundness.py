"""Long randomized soundness run: every certificate against an independent brute force.

    python benchmarks/soundness.py --problems 20000 [--runs 2] [--seed 0] [--families ties,real,...]

Draws problems of up to 14 variables from every family of :mod:`tests.soundness` (general QUBOs
with ties, real indefinite, singular and separable ``P``; rows of linear, token and convolution
layers), solves each with ``--runs`` methods drawn from every bounding method under tiny node and
time budgets and the defaults (each problem its own draw), and checks every bound, every ``optimal`` claim and every energy against the minimum
found by enumerating all states with numpy. Prints the counts and every failure with the
``(family, seed)`` that reproduces it (``tests.soundness.check_problem(family, seed)``); exits 1
if any. Not a speed benchmark: it compares nothing against a peer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.soundness import FAMILIES, check_problem  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=20000, help="QUBOs to check (a layer's rows count one each)")
    ap.add_argument("--seed", type=int, default=0, help="first seed of every family")
    ap.add_argument("--runs", type=int, default=2,
                    help="solver runs per problem, drawn from the full list of tests.soundness (0: all)")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated subset of {FAMILIES}")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    bad = sorted(set(families) - set(FAMILIES))
    if bad or not families or args.problems < 1:
        ap.error(f"--families must name some of {FAMILIES} (found {bad or families}); --problems >= 1")
    counts = {"problems": 0, "bounds": 0, "optimal": 0, "energies": 0, "refused": 0}
    per_family = {f: 0 for f in families}
    failures = []
    t0 = time.process_time()
    seed = args.seed
    while counts["problems"] < args.problems:
        for f in families:
            before = counts["problems"]
            failures += check_problem(f, seed, counts, sample=args.runs or None)
            per_family[f] += counts["problems"] - before
        seed += 1
        if seed % 200 == 0:
            print(f"  seed {seed}: {counts} failures {len(failures)}", flush=True)
    print(f"seeds {args.seed}..{seed - 1}, CPU {time.process_time() - t0:.0f} s")
    print("problems per family:", per_family)
    print("checked:", counts)
    for fail in failures:
        print("FAIL", *fail)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
