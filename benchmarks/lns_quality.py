"""How close ``lns`` at its default budget comes to the best any method finds with ten times the
work, on real-layer rows: the trained digits CNN's 3x3 16->32 conv (``reference.compare``'s
``cnn`` suite, layer ``cnn-conv2-3x3-16to32-s2-b4``; 140-142 free variables a row).

Settings (:data:`SETTINGS`; every budget a deterministic count, never the clock):

* ``lns``: the default;
* ``lns-x10``: ten times every budget of ``lns`` (``max_nodes``, the start tree's ``tree_nodes``,
  tabu ``reads`` and ``kicks``);
* ``tree-5e6``, ``tree-5e7``: the tree search with 5,000,000 and 50,000,000 nodes (its
  depth-first incumbent; 5e7 is ten times the 5e6 that beat ``lns`` on this layer before);
* ``tabu``, ``anneal``: their defaults;
* ``lns-t<N>``: ``lns`` with a start tree of ``N`` nodes (the budget-quality curve of the start,
  ``--curve``).

Each cell is the energy (the row's loss, recomputed by the model in float64) above the lowest any
setting found on that row, in %, then nodes (``info["nodes"]``: the tree's, or the window nodes
of ``lns``, which exclude its start tree) and CPU seconds (``time.process_time``, one BLAS
thread; rough on a loaded machine). ``--json`` keeps every number.

Run: ``PYTHONPATH=. python benchmarks/lns_quality.py --rows 0,1,2,3`` (add ``--curve`` for the
start-tree budgets); ``--table A.json B.json`` prints the markdown table of saved runs.
"""

from __future__ import annotations

import argparse
import json
import time

from solvers.runtime import blas_threads

from reference.compare.suites import cnn_suite
from solvers import solve
from solvers.lns import start_tree_nodes

LAYER = 1  # cnn-conv2-3x3-16to32-s2: the 16->32 conv


def settings(n: int, curve: bool):
    """(name, method, options) for a row of ``n`` variables."""
    t0 = start_tree_nodes(n)
    out = [("lns", "lns", {}),
           ("lns-x10", "lns", {"max_nodes": 200_000_000, "tree_nodes": 10 * t0, "reads": 30, "kicks": 320}),
           ("tree-5e6", "tree", {"max_nodes": 5_000_000}),
           ("tree-5e7", "tree", {"max_nodes": 50_000_000}),
           ("tabu", "tabu", {}),
           ("anneal", "anneal", {})]
    if curve:
        out += [(f"lns-t{t:.0e}".replace("+0", ""), "lns", {"tree_nodes": t})
                for t in (1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000)]
    return out


def table(rows) -> str:
    """A markdown table of the rows' records: % above the row's best for each setting, then the
    layer's sum of energies over these rows and total CPU seconds for each setting."""
    names = list(rows[0]["results"])
    lines = ["| row | n | best | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---" * (3 + len(names)) + "|"]
    for r in rows:
        cells = [f"{100 * (v['energy'] - r['best']) / r['best']:.2f}" for v in r["results"].values()]
        lines.append(f"| {r['row']} | {r['n_vars']} | {r['best']:.6f} | " + " | ".join(cells) + " |")
    tot = {n: sum(r["results"][n]["energy"] for r in rows) for n in names}
    cpu = {n: sum(r["results"][n]["cpu_s"] for r in rows) for n in names}
    lines.append(f"| sum | | {sum(r['best'] for r in rows):.5f} | " + " | ".join(f"{tot[n]:.5f}" for n in names) + " |")
    lines.append("| CPU s | | | " + " | ".join(f"{cpu[n]:.0f}" for n in names) + " |")
    within = {n: sum(100 * (r["results"][n]["energy"] - r["best"]) / r["best"] <= 1 for r in rows) for n in names}
    lines.append("| rows within 1 % | | | " + " | ".join(f"{within[n]}/{len(rows)}" for n in names) + " |")
    return "\n".join(lines)


def merge(records) -> list[dict]:
    """Records of the same row from several runs as one (the union of their settings, the best
    recomputed), keeping only rows that have every setting any run has, in row order."""
    rows = {}
    for r in records:
        rows.setdefault(r["row"], {**r, "results": {}})["results"].update(r["results"])
    names = {n for r in rows.values() for n in r["results"]}
    out = [r for _, r in sorted(rows.items()) if set(r["results"]) == names]
    for r in out:
        r["best"] = min(v["energy"] for v in r["results"].values())
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="0,1,2,3", help="comma-separated row indices of the layer")
    ap.add_argument("--curve", action="store_true", help="also lns with start trees of 1e6 to 2e7 nodes")
    ap.add_argument("--only", help="comma-separated setting names to run (default: all)")
    ap.add_argument("--json", metavar="OUT.json")
    ap.add_argument("--table", nargs="+", metavar="IN.json", help="instead: the markdown table of saved runs")
    a = ap.parse_args(argv)
    if a.table:
        print(table(merge([r for path in a.table for r in json.load(open(path))])))
        return
    layer = cnn_suite()[LAYER]
    only = set(a.only.split(",")) if a.only else None
    out = []
    for k in (int(r) for r in a.rows.split(",")):
        bqm = layer.row_bqm(k)
        res = {}
        for name, method, opts in settings(bqm.n, a.curve):
            if only is not None and name not in only:
                continue
            with blas_threads(1):
                t0 = time.process_time()
                r = solve(bqm, method, **opts)
                t = time.process_time() - t0
            res[name] = {"energy": r.energy, "nodes": int(r.info.get("nodes", 0)), "cpu_s": t,
                         "options": opts}
            print(f"  row {k} {name:10} energy {r.energy:.6f}  nodes {res[name]['nodes']:>11,}  {t:7.1f} s",
                  flush=True)
        best = min(v["energy"] for v in res.values())
        winners = [n for n, v in res.items() if v["energy"] <= best]
        cells = "  ".join(f"{n} {100 * (v['energy'] - best) / best:+.2f}%" for n, v in res.items())
        print(f"row {k} (n = {bqm.n}, best {best:.6f} by {', '.join(winners)}): {cells}", flush=True)
        out.append({"layer": layer.name, "row": k, "n_vars": bqm.n, "best": best, "results": res})
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(out, fh, indent=1)
    if out:
        print(table(out))


if __name__ == "__main__":
    main()
