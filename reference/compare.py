"""``python -m reference.compare``: every method on every problem, against the proven optimum.

With no arguments it runs the built-in ``default`` suite (small random layers, every row small
enough for exact enumeration). ``--problem FILE.npz`` (repeatable) adds a user's layer (see
:mod:`reference.problem_files`). For each problem it prints one table: method, local loss
(Eq. 20, design.md units), gap to the best proven-optimal loss in %, whether the method proved
optimality, and seconds. ``--json OUT`` writes the same numbers, with ``gap`` as a fraction
``(loss - optimum) / optimum``.

The CLI is thin: it builds problems, calls :func:`solvers.solve`, and prints.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

__all__ = ["main", "run_problem", "default_methods"]


def default_methods() -> list[str]:
    """Every registered method: exact ones first, then the others in registration order."""
    from solvers import METHODS

    exact = [n for n, m in METHODS.items() if m.exact]
    return exact + [n for n, m in METHODS.items() if not m.exact]


def _gap(loss, optimum):
    if loss is None or optimum is None:
        return None
    if optimum == 0:
        return 0.0 if loss == 0 else None
    return (loss - optimum) / abs(optimum)


def run_problem(problem, methods, seed: int = 0) -> dict:
    """Solve ``problem`` with each method; returns the JSON record of design issue 2."""
    from solvers import METHODS, solve

    results = []
    for name in methods:
        m = METHODS[name]
        opts = {"seed": seed} if "seed" in m.options else {}
        try:
            if m.kind == "qubo":
                m.check_size(problem.max_row_vars, m.resolve_options(opts))
        except ValueError as exc:
            results.append({"method": name, "loss": None, "optimal": False, "gap": None,
                            "seconds": 0.0, "status": f"skipped: {exc}", "lower_bound": None})
            continue
        r = solve(problem, name, **opts)
        results.append({"method": name, "loss": r.energy, "optimal": r.optimal, "gap": None,
                        "seconds": r.seconds, "status": r.status, "lower_bound": r.lower_bound})
    proven = [r["loss"] for r in results if r["optimal"]]
    optimum = min(proven) if proven else None
    for r in results:
        r["gap"] = _gap(r["loss"], optimum)
    return {"name": problem.name, "n_rows": problem.n_rows, "n_vars": problem.n_vars,
            "max_row_vars": problem.max_row_vars, "optimum": optimum, "results": results}


def _fmt_table(rec: dict, grid_txt: str) -> str:
    head = (f"{rec['name']}: {rec['n_rows']} rows, {rec['n_vars']} free variables "
            f"(at most {rec['max_row_vars']} per row), {grid_txt}")
    lines = [head, f"  {'method':<14}{'loss':>16}{'gap %':>12}  {'optimal':<8}{'seconds':>9}  status"]
    for r in rec["results"]:
        loss = "-" if r["loss"] is None else f"{r['loss']:.9e}"
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.4f}"
        opt = "yes" if r["optimal"] else "no"
        status = r["status"] if len(r["status"]) <= 60 else r["status"][:57] + "..."
        lines.append(f"  {r['method']:<14}{loss:>16}{gap:>12}  {opt:<8}{r['seconds']:>9.3f}  {status}")
    return "\n".join(lines)


def _grid_txt(problem) -> str:
    g = problem.grid
    per = "per-row" if g.scale.size > 1 else "per-tensor"
    bits = math.log2(g.qmax - g.qmin + 1)
    b = f"{int(bits)}-bit" if bits.is_integer() else f"{g.qmax - g.qmin + 1} levels"
    return f"{b} {per} grid [{g.qmin}, {g.qmax}]"


def _summary(records: list[dict], methods: list[str]) -> str:
    lines = ["gap to the proven optimum over all problems (%):",
             f"  {'method':<14}{'problems':>9}{'mean':>12}{'median':>12}{'worst':>12}{'optimal':>9}"]
    for name in methods:
        gaps = [r["gap"] for rec in records for r in rec["results"] if r["method"] == name and r["gap"] is not None]
        n_opt = sum(1 for rec in records for r in rec["results"]
                    if r["method"] == name and r["gap"] is not None and r["gap"] <= 1e-12)
        if not gaps:
            lines.append(f"  {name:<14}{0:>9}{'-':>12}{'-':>12}{'-':>12}{'-':>9}")
            continue
        g = 100 * np.asarray(gaps)
        lines.append(f"  {name:<14}{len(g):>9}{g.mean():>12.4f}{np.median(g):>12.4f}{g.max():>12.4f}"
                     f"{n_opt:>6}/{len(g):<2}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from .suites import SUITES

    p = argparse.ArgumentParser(
        prog="python -m reference.compare",
        description="Compare rounding methods against the proven optimum of each layer's QUBO (Eq. 20).",
    )
    p.add_argument("--suite", action="append", choices=sorted(SUITES),
                   help="built-in suite (repeatable); default: 'default' when no --problem is given")
    p.add_argument("--problem", action="append", default=[], metavar="FILE.npz",
                   help="a layer file: keys W (out, in), X (N, in), and scale/qmin/qmax[/zero_point] or bits")
    p.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    p.add_argument("--seed", type=int, default=0, help="seed for the suites and for every random method (default 0)")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    return p


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    from solvers import METHODS

    from .problem_files import ProblemFileError, load_layer
    from .suites import SUITES

    args = _parser().parse_args(argv)
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            return _fail(f"--methods: unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    else:
        methods = default_methods()
    problems = []
    try:
        for path in args.problem:
            problems.append(load_layer(path))
    except ProblemFileError as exc:
        return _fail(str(exc))
    suites = args.suite or ([] if args.problem else ["default"])
    for s in suites:
        problems.extend(SUITES[s](args.seed))

    records = []
    for problem in problems:
        rec = run_problem(problem, methods, seed=args.seed)
        records.append(rec)
        print(_fmt_table(rec, _grid_txt(problem)), end="\n\n", flush=True)
    print(_summary(records, methods))
    if args.json:
        try:
            with open(args.json, "w") as fh:
                json.dump({"problems": records}, fh, indent=2)
        except OSError as exc:
            return _fail(f"--json: cannot write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
