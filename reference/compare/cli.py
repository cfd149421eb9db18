"""``python -m reference.compare``: every method on every problem, against the proven optimum.

With no arguments it runs the built-in ``default`` suite (small random layers, every row small
enough for exact enumeration). Problems also come from ``--problem FILE.npz`` (a user's layer),
``--qubo FILE`` (raw QUBOs: OR-Library ``bqp`` text or dimod's serialised BQM),
``--config FILE.toml`` (generator sweeps) and ``--model DIR`` (every layer of a captured model,
with a model summary: :mod:`reference.compare.model_report`). For each problem it prints one table:
method, value (the local loss of Eq. 20 for a layer, the energy for a raw QUBO), gap to the best
proven optimum in %, whether the method proved optimality, and seconds.

The CLI is thin: it builds problems, hands tasks to :mod:`reference.compare.harness`, and prints.
Exit status 0 on success, 2 on bad input (one ``error:`` line naming the file and the problem),
1 when a method's certificate is wrong (a bound or an ``optimal`` claim above a value some
method attains; one ``error: wrong certificate:`` line naming both), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys

import numpy as np

from solvers import METHODS
from solvers.tree import default_max_nodes

from .harness import CertificateError, SchedulerError, aggregate, make_tasks, prob_name, problem_hash, run_tasks
from .model_report import format_summary, load_manifest, plot_model, summarise, write_model_csv
from .problem_files import ProblemFileError, load_layer
from .sources import load_config, load_qubo_file
from .store import ResultStore, StoreError
from .suites import REPORTS, SUITE_OPTIONS, SUITES
from ..validation import available_cpus

__all__ = ["main", "default_methods", "run_problem"]


def default_methods() -> list[str]:
    """Every registered QUBO and layer method: exact ones first, then the others in registration order."""
    rounding = {n: m for n, m in METHODS.items() if m.kind != "sparse"}  # sparse coders take a SparseProblem
    exact = [n for n, m in rounding.items() if m.exact]
    return exact + [n for n, m in rounding.items() if not m.exact]


def run_problem(problem, methods, seed: int = 0) -> dict:
    """Solve one problem with each method, serially; the problem's record with gaps."""
    tasks, skipped = make_tasks([problem], methods, seed)
    return aggregate([problem], run_tasks(tasks) + skipped, methods)[0]


def _pct(x) -> str:
    """A percentage that fits an 11-character column (scientific notation from 1e6 %)."""
    return f"{x:.4f}" if abs(x) < 1e6 else f"{x:.4e}"


def _fmt_table(rec: dict, desc: str) -> str:
    value_key = "loss" if rec["kind"] == "layer" else "energy"
    head = f"{rec['name']}: {desc}"
    lines = [head, f"  {'method':<14}{value_key:>17}{'gap %':>25}  {'optimal':<8}{'seconds':>9}  status"]
    for r in rec["results"]:
        v = r[value_key]
        val = "-" if v is None else f"{v:.10g}" if value_key == "energy" else f"{v:.9e}"
        lo, hi = r.get("gap_low"), r.get("gap_high")
        if r["gap"] is not None:
            gap = _pct(100 * r["gap"])
        elif lo is not None:  # no proven optimum: the interval that holds the gap
            gap = f"[{_pct(100 * lo)}, {'-' if hi is None else _pct(100 * hi)}]"
        else:
            gap = "-"
        opt = "yes" if r["optimal"] else "no"
        status = r["status"] if len(r["status"]) <= 60 else r["status"][:57] + "..."
        lines.append(f"  {r['method']:<14}{val:>17}{gap:>25}  {opt:<8}{r['seconds']:>9.3f}  {status}")
    if rec.get("optimum") is None and rec.get("best_known") is not None:
        lb = rec.get("lower_bound")
        lines.append(f"  no proven optimum: best known {rec['best_known']:.9e} ({rec['best_method']}), certified "
                     f"lower bound {'-' if lb is None else f'{lb:.9e}'}; the gap lies in [low, high]")
    return "\n".join(lines)


def _describe(problem, rec) -> str:
    if rec["kind"] == "qubo":
        return f"raw QUBO, {rec['n_vars']} variables"
    g = problem.grid
    per = "per-row" if g.scale.size > 1 else "per-tensor"
    bits = math.log2(g.qmax - g.qmin + 1)
    b = f"{int(bits)}-bit" if bits.is_integer() else f"{g.qmax - g.qmin + 1} levels"
    dead = int(np.count_nonzero(g.per_row(rec["n_rows"])[0] == 0))
    note = f"; {dead} all-zero row(s) with scale 0, fixed at 0 (loss 0)" if dead else ""
    return (f"{rec['n_rows']} rows, {rec['n_vars']} free variables (at most {rec['max_row_vars']} per row), "
            f"{b} {per} grid [{g.qmin}, {g.qmax}]{note}")


def _summary(records: list[dict], methods: list[str]) -> str:
    lines = ["gap to the proven optimum over all problems (%):",
             f"  {'method':<14}{'problems':>9}{'mean':>12}{'median':>12}{'worst':>12}{'optimal':>10}"]
    for name in methods:
        gaps = [r["gap"] for rec in records for r in rec["results"] if r["method"] == name and r["gap"] is not None]
        if not gaps:
            continue
        g = 100 * np.asarray(gaps)
        at_opt = int(np.sum(g <= 1e-10))
        lines.append(f"  {name:<14}{len(g):>9}{_pct(g.mean()):>12}{_pct(np.median(g)):>12}{_pct(g.max()):>12}"
                     f"{f'{at_opt}/{len(g)}':>10}")
    if len(lines) == 2:
        lines.append("  (no problem has a proven optimum)")
    return "\n".join(lines)


def _write_csv(path: str, records: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["problem", "kind", "n_rows", "n_vars", "method", "value", "optimal", "gap", "gap_low",
                    "gap_high", "lower_bound", "problem_best_known", "problem_lower_bound", "seconds", "status"])
        for rec in records:
            key = "loss" if rec["kind"] == "layer" else "energy"
            for r in rec["results"]:
                w.writerow([rec["name"], rec["kind"], rec["n_rows"], rec["n_vars"], r["method"], r[key],
                            r["optimal"], r["gap"], r["gap_low"], r["gap_high"], r["lower_bound"],
                            rec["best_known"], rec["lower_bound"], r["seconds"], r["status"]])


def _plot(directory: str, records: list[dict], methods: list[str]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs the optional package 'matplotlib' (pip install 'qubo-reference[plots]')") from None
    os.makedirs(directory, exist_ok=True)
    # one colour per method, no lines through unrelated problems: a proven gap is a filled dot, an
    # unproven one the range [gap_low, gap_high] (open circle at gap_low; an arrow to the top when
    # no positive bound exists); methods side by side around each problem's widest row
    floor = 1e-3
    fig, ax = plt.subplots(figsize=(9, 4.8))
    colours = plt.get_cmap("tab20").colors
    top = max([floor * 10] + [100 * v for rec in records for r in rec["results"]
                              for v in (r.get("gap"), r.get("gap_low"), r.get("gap_high")) if v is not None])
    for i, name in enumerate(methods):
        c = colours[i % len(colours)]
        shown = False
        for rec in records:
            for r in rec["results"]:
                if r["method"] != name:
                    continue
                x = rec["max_row_vars"] * (1 + 0.025 * (i - len(methods) / 2))
                label = None if shown else name
                if r["gap"] is not None:
                    ax.plot([x], [max(100 * r["gap"], floor)], "o", color=c, ms=5, label=label)
                elif r.get("gap_low") is not None:
                    lo = max(100 * r["gap_low"], floor)
                    hi = 100 * r["gap_high"] if r.get("gap_high") is not None else top * 3
                    ax.plot([x, x], [lo, max(hi, lo)], "-", color=c, lw=2, label=label)
                    ax.plot([x], [lo], "o", mfc="white", color=c, ms=5)
                    if r.get("gap_high") is None:
                        ax.plot([x], [top * 3], "^", color=c, ms=5)
                else:
                    continue
                shown = True
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("widest row (free variables): what makes a row hard")
    ax.set_ylabel(f"gap to the optimum (%, floor {floor:g})")
    ax.set_title("gap per method: dot = proven optimum, bar = interval [vs best known, vs lower bound]")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    path = os.path.join(directory, "gap_vs_size.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _jsonable(obj):
    """Report data for JSON: tuple keys joined with '|', numpy scalars and arrays as lists."""
    if isinstance(obj, dict):
        return {("|".join(map(str, k)) if isinstance(k, tuple) else str(k)): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reference.compare",
        description="Compare rounding and QUBO methods against the proven optimum of each problem.",
    )
    p.add_argument("--suite", action="append", choices=sorted(set(SUITES) | set(REPORTS)),
                   help="built-in suite (repeatable); 'default' when no other problem source is given; "
                        f"{sorted(REPORTS)} run whole studies with their own tables")
    p.add_argument("--problem", action="append", default=[], metavar="FILE.npz",
                   help="a layer file: keys W (out, in), X (N, in) or tokens (N, T, in), or a convolution's W "
                        "(C_out, C_in/groups, kh, kw), X (N, C_in, H, W) [stride, padding, dilation, groups]; "
                        "and scale/qmin/qmax[/zero_point] or bits")
    p.add_argument("--qubo", action="append", default=[], metavar="FILE",
                   help="raw QUBOs: OR-Library bqp text, or dimod's serialised BQM (binary or JSON)")
    p.add_argument("--config", action="append", default=[], metavar="FILE.toml", help="a generator sweep")
    p.add_argument("--model", metavar="MANIFEST.json|DIR",
                   help="every layer of a captured model (its manifest, or the directory holding manifest.json): "
                        "a table per layer and the model summary (summed loss, model gap interval, median and "
                        "worst layer gap, the layers where each method loses most)")
    p.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    p.add_argument("--seed", type=int, default=0, help="seed for the suites and every random method (default 0)")
    p.add_argument("--tree-nodes", type=int, default=None, metavar="N",
                   help=f"node budget of the exact tree search per row (default: by the row's width n, "
                        f"{default_max_nodes(64):,} up to n = 64, then 5e7 (64/n)^3 but at least 2048 n, e.g. "
                        f"{default_max_nodes(384):,} at n = 384; or the suite's own budget, e.g. cnn's; "
                        "deterministic; a row that needs more reports its best state and a proven bound, "
                        "not an optimum)")
    p.add_argument("--jobs", type=int, default=None,
                   help="parallel worker processes (default: the number of cores; 1 runs serially)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the tasks on a Dask distributed cluster")
    p.add_argument("--store", metavar="FILE.sqlite",
                   help="keep every finished result in this SQLite file; a rerun skips what it holds")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--csv", metavar="OUT.csv", help="write one row per problem and method as CSV")
    p.add_argument("--plot", metavar="DIR", help="save the gap plot here: each method's gap, or the interval "
                   "that holds it, against the widest row (needs matplotlib)")
    p.add_argument("--progress", action="store_true", help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def _distinct(problems) -> list:
    """The problems with distinct content, in order. Results are keyed by content, so a problem met
    again (the same file under two names, overlapping sweeps) would only double the table's rows:
    it is reported once, under its first name, and a note on stderr says so."""
    first, out = {}, []
    for p in problems:
        h = problem_hash(p)
        if h in first:
            print(f"note: {prob_name(p)} has the same content as {prob_name(first[h])}; reported once, as "
                  f"{prob_name(first[h])}", file=sys.stderr)
            continue
        first[h] = p
        out.append(p)
    return out


def _fail(msg: str) -> int:
    msg = " ".join(str(msg).split())  # one line, whatever the message held
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _wrong_certificate(exc) -> int:
    """A method certified a bound that a state beats: nothing of the run can be trusted (exit 1)."""
    print(f"error: wrong certificate: {' '.join(str(exc).split())}", file=sys.stderr)
    return 1


def _default_jobs() -> int:
    return available_cpus()


class _Refused(Exception):
    """Bad input found by the CLI: one ``error:`` line, exit status 2."""


def _methods(args) -> list[str]:
    if args.methods is None:
        return default_methods()
    # an empty --methods names no method: refused, not read as "every method"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    usable = sorted(n for n, m in METHODS.items() if m.kind != "sparse")
    if not methods:
        raise _Refused(f"--methods: no method named (given {args.methods!r}); choose from {usable}")
    unknown = [m for m in methods if m not in usable]
    if unknown:
        raise _Refused(f"--methods: unknown method(s) {unknown}; choose from {usable}")
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise _Refused(f"--methods: {twice} given more than once")
    return methods


def _check_numbers(args) -> int:
    """The worker count; refuses a non-positive ``--jobs`` or ``--tree-nodes``, a negative seed and a file given twice."""
    jobs = _default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise _Refused(f"--jobs must be >= 1, found {jobs}")
    if args.tree_nodes is not None and args.tree_nodes < 1:
        raise _Refused(f"--tree-nodes must be >= 1, found {args.tree_nodes}")
    if args.seed < 0:
        raise _Refused(f"--seed must be >= 0, found {args.seed}")
    for flag, paths in (("--problem", args.problem), ("--qubo", args.qubo), ("--config", args.config)):
        twice = sorted({p for p in paths if paths.count(p) > 1})
        if twice:
            raise _Refused(f"{flag}: {twice} given more than once")
    return jobs


def _problems(args, suites, manifest) -> tuple[list, dict]:
    """The distinct problems of the model, the files and the suites, and ``{id(problem): suite options}``."""
    problems = [] if manifest is None else list(manifest.problems)
    try:
        for path in args.problem:
            problems.append(load_layer(path))
        for path in args.qubo:
            problems.extend(load_qubo_file(path))
        for path in args.config:
            problems.extend(load_config(path))
    except ProblemFileError as exc:
        raise _Refused(str(exc)) from None
    own_options = {}  # id(problem) -> method options of the suite it came from (SUITE_OPTIONS)
    for s in suites:
        if s in SUITES:
            new = SUITES[s](args.seed)
            problems.extend(new)
            own_options.update({id(p): SUITE_OPTIONS.get(s, {}) for p in new})
    return _distinct(problems), own_options


def _reports(args, suites, progress: bool) -> dict:
    """Run the studies among ``suites``, print their tables; returns their data, JSON-ready."""
    reports = {}
    for s in suites:
        if s in REPORTS:
            try:
                text, data = REPORTS[s](args.seed, args.plot, progress)
            except ImportError as exc:
                raise _Refused(f"--suite {s}: {exc}") from None
            print(text, end="\n\n", flush=True)
            reports[s] = _jsonable(data)
    return reports


def _tasks(args, problems, own_options, methods) -> tuple[list, list]:
    tasks, skipped = [], []
    for p in problems:
        opts = {k: dict(v) for k, v in own_options.get(id(p), {}).items()}
        if args.tree_nodes is not None:  # otherwise the suite's budget or the tree's width rule
            opts["tree"] = {"max_nodes": args.tree_nodes}
        t, sk = make_tasks([p], methods, args.seed, opts)
        tasks += t
        skipped += sk
    return tasks, skipped


def _run(args, tasks, jobs: int) -> list:
    """The records of ``tasks`` (from the store when it holds them); KeyboardInterrupt passes through."""
    store = None
    try:
        if args.store:
            try:
                store = ResultStore(args.store)
            except ValueError as exc:
                raise _Refused(f"--store: {exc}") from None
        progress = args.progress or (sys.stderr.isatty() and len(tasks) > 1)
        try:
            return run_tasks(tasks, jobs=jobs, scheduler=args.scheduler, store=store, progress=progress)
        except ImportError as exc:
            raise _Refused(str(exc)) from None
        except StoreError as exc:
            raise _Refused(f"--store: {exc}") from None
        except SchedulerError as exc:
            raise _Refused(f"--scheduler: {exc}") from None
    finally:
        if store is not None:
            store.close()


def _dump_json(path, doc: dict) -> None:
    try:
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)
    except OSError as exc:
        raise _Refused(f"cannot write output: {exc}") from None


def _write(args, records, reports, methods, model=None, layer_records=None) -> None:
    """The ``--json``, ``--csv`` and ``--plot`` outputs (with the model summary under ``--model``)."""
    if args.json:
        _dump_json(args.json, {"problems": records, **({"reports": reports} if reports else {}),
                               **({"model": _jsonable(model)} if model else {})})
    try:
        if args.csv:
            if model:
                write_model_csv(args.csv, model, layer_records)
            else:
                _write_csv(args.csv, records)
        if args.plot:
            print(f"plot: {_plot(args.plot, records, methods)}")
            if model:
                print(f"plot: {plot_model(args.plot, model, layer_records)}")
    except ImportError as exc:
        raise _Refused(str(exc)) from None
    except OSError as exc:
        raise _Refused(f"cannot write output: {exc}") from None


def main(argv=None) -> int:
    """The command line: ``argv`` as for ``python -m reference.compare``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        methods = _methods(args)
        jobs = _check_numbers(args)
        given = args.problem or args.qubo or args.config or args.model
        suites = args.suite or ([] if given else ["default"])
        try:
            manifest = None if args.model is None else load_manifest(args.model)
        except ProblemFileError as exc:
            raise _Refused(str(exc)) from None
        problems, own_options = _problems(args, suites, manifest)
        reports = _reports(args, suites, args.progress or sys.stderr.isatty())
        if not problems:
            if args.json:
                _dump_json(args.json, {"problems": [], "reports": reports})
            return 0
        tasks, skipped = _tasks(args, problems, own_options, methods)
        try:
            recs = _run(args, tasks, jobs)
        except KeyboardInterrupt:
            held = "" if args.store is None else f"; finished results are in {args.store}, rerun to resume"
            print(f"\ninterrupted{held}", file=sys.stderr)
            return 130
        records = aggregate(problems, recs + skipped, methods)
        if not args.quiet:
            for prob, rec in zip(problems, records):
                print(_fmt_table(rec, _describe(prob, rec)), end="\n\n")
        print(_summary(records, methods), flush=True)
        model, layer_records = None, None
        if manifest is not None:
            model, layer_records = summarise(manifest, recs + skipped, methods)
            print("\n" + format_summary(model), flush=True)
        _write(args, records, reports, methods, model, layer_records)
    except _Refused as exc:
        return _fail(str(exc))
    except CertificateError as exc:
        return _wrong_certificate(exc)
    return 0
