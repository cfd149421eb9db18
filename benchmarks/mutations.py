"""Mutation check of the certificates: each plausible bug applied alone, the tests that must catch it run.

    python benchmarks/mutations.py [--only NAME,...] [--timeout 900]

For every mutation below the working tree (``reference``, ``solvers``, ``tests``, ``benchmarks``,
``pyproject.toml``) is copied to a temporary directory, the one text substitution is applied
there (it must match exactly once), and the named tests are run on the copy under the ``ci``
profile. The same tests are first run on an unmodified copy: they must pass, or "caught" would
mean nothing. Prints a table ``caught`` / ``MISSED`` (a run past ``--timeout`` counts as caught:
the loop-bound mutation makes the test hang); exits 1 if any mutation is missed or a baseline
fails. The working tree is never modified. Not a speed benchmark.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CERT = "tests/solvers/test_bound_certificates.py"

#: (name, file, original text, mutated text, pytest arguments, what it breaks)
MUTATIONS = [
    ("rewrite-diag-1.001", "solvers/least_squares.py", "P, q = P + np.diag(u), q - u",
     "P, q = P + np.diag(1.001 * u), q - u", [CERT, "-k", "rewrite"],
     "the diagonal moved into P is 0.1 % larger than the one taken from q"),
    ("rewrite-diag-1e-7", "solvers/least_squares.py", "P, q = P + np.diag(u), q - u",
     "P, q = P + np.diag(u * (1 + 1e-7)), q - u", [CERT, "-k", "rewrite"],
     "the same, by a factor 1 + 1e-7"),
    ("box-qp-no-certificate", "solvers/bounds.py",
     "bound = fx - float(g @ x) + float(np.minimum(g, 0.0).sum())", "bound = fx", [CERT, "-k", "box_qp"],
     "the box-QP bound is f at the optimiser's point, without the convexity certificate"),
    ("lns-own-energy-as-bound", "solvers/lns.py",
     'return Outcome(x=st.x.astype(np.int8), status="best found", info=info)',
     'return Outcome(x=st.x.astype(np.int8), lower_bound=_energy(P, q, st.x) + bqm.c, status="best found", info=info)',
     ["tests/solvers/test_soundness.py", "-k", "registered or lns_on"], "lns reports its own energy as a lower bound"),
    ("box-qp-no-slack", "solvers/bounds.py",
     "bound = bound - _SAFETY * (A_scale + float(np.abs(b).sum()) + abs(c))", "bound = bound",
     [CERT, "-k", "margin_covers and box_qp"], "the box-QP bound's 1e-9 slack removed"),
    ("unscale-to-nearest", "solvers/least_squares.py", "return float(np.nextafter(bound / s, -np.inf))",
     "return float(bound / s)", [CERT, "-k", "unscale"], "bounds unscaled to nearest instead of down"),
    ("open-node-no-eps", "solvers/tree.py", "default=np.inf) - eps", "default=np.inf)",
     [CERT, "-k", "open_node"], "the tree's open-node bound without its - eps"),
    ("osi-over-peak", "reference/gratings.py", "(peak - orth) / (peak + orth)", "(peak - orth) / peak",
     ["tests/reference/test_gratings_gabor.py", "-k", "tuning or fourier"], "OSI computed as (p - o) / p"),
    ("subregions-sigma-y", "reference/gabor.py", "count_subregions(f[k], sx[k], ph[k])",
     "count_subregions(f[k], sy[k], ph[k])", ["tests/reference/test_gratings_gabor.py", "-k", "subregions"],
     "Gabor subregions counted with sigma_y"),
    ("lns-kick-descent-unbounded", "solvers/lns.py", "for _ in range(KICK_PASSES):", "while True:",
     ["tests/solvers/test_lns.py", "-k", "every_loop_ends"], "the kick descent loops without a cap"),
]

_COPY = ("reference", "solvers", "tests", "benchmarks", "pyproject.toml")


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.pyc")
    for name in _COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


def _run_tests(tree: Path, args: list, timeout: float) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree), HYPOTHESIS_PROFILE="ci")
    cmd = [sys.executable, "-m", "pytest", *args, "-x", "-q", "-p", "no:cacheprovider"]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    if proc.returncode == 0:
        return "pass"
    if proc.returncode == 1:
        return "fail"
    return f"error (pytest exit {proc.returncode}): {proc.stdout[-300:]} {proc.stderr[-300:]}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated mutation names (default: all)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
    args = ap.parse_args(argv)
    names = [m[0] for m in MUTATIONS]
    only = [s for s in args.only.split(",") if s]
    if set(only) - set(names):
        ap.error(f"--only must name mutations of {names}")
    chosen = [m for m in MUTATIONS if not only or m[0] in only]
    rows, bad = [], 0
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        base = Path(tmp) / "base"
        _copy_tree(base)
        baselines = {}
        for name, path, old, new, tests, what in chosen:
            key = tuple(tests)
            if key not in baselines:
                baselines[key] = _run_tests(base, tests, args.timeout)
            if baselines[key] != "pass":
                rows.append((name, "BASELINE FAILS", baselines[key], what))
                bad += 1
                continue
            tree = Path(tmp) / name
            _copy_tree(tree)
            text = (tree / path).read_text()
            if text.count(old) != 1:
                rows.append((name, "NOT APPLIED", f"{old!r} found {text.count(old)} times in {path}", what))
                bad += 1
                continue
            (tree / path).write_text(text.replace(old, new))
            t0 = time.perf_counter()
            outcome = _run_tests(tree, tests, args.timeout)
            caught = outcome in ("fail", "timeout")
            bad += not caught
            rows.append((name, "caught" if caught else "MISSED",
                         f"{outcome} in {time.perf_counter() - t0:.0f} s: {' '.join(tests)}", what))
            print(f"{name}: {rows[-1][1]} ({rows[-1][2]})", flush=True)
            shutil.rmtree(tree)
    print()
    print(f"{'mutation':28s} {'result':15s} tests")
    for name, result, detail, what in rows:
        print(f"{name:28s} {result:15s} {detail}\n{'':44s}({what})")
    print(f"\n{sum(r[1] == 'caught' for r in rows)} of {len(rows)} caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
