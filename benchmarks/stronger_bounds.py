"""Stronger certified lower bounds than Shor's, measured: ``LB / best`` and seconds per bound.

Layers: the first ``--cnn-rows`` rows of the trained digits CNN's 3x3 16->32 conv (``--suite cnn``,
140-142 variables a row) and ``--rows`` rows of each synthetic family of ``benchmarks/bounds.py``
at ``--width``. Per layer (sums over its rows; a negative row bound counts as 0, a row's loss is
``>= 0``):

* ``best``: the lowest loss found by ``lns`` (default options) and the tree (``--tree-nodes``);
* today's certified bounds: ``sdp``, the box-QP bound with the SDP-dual diagonal
  (:mod:`solvers.bounds`, :mod:`solvers.diagonal`), and ``tree``, the tree's proven bound after
  ``--tree-nodes`` nodes (its root bound included), as ``benchmarks/bounds.py`` computes them;
* the candidate, :func:`solvers.sdp_bound.triangle_bound`: ``shor`` (its bound before any cut),
  and ``tri``, after ``--steps`` supergradient steps on the triangle inequalities (Polyak steps
  towards the row's ``best``);
* ``max``: per row the larger of ``tree`` and ``tri`` (what the tree reports with
  ``triangle_steps``), summed.

Each bound is printed as ``LB / best`` and its seconds for the layer (one process, one BLAS
thread). Run::

    PYTHONPATH=. python benchmarks/stronger_bounds.py
    PYTHONPATH=. python benchmarks/stronger_bounds.py --steps 60 --families ar1 --rows 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from solvers.runtime import blas_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bounds import _sdp_box  # noqa: E402
from heuristics import FAMILIES, family_layer  # noqa: E402
from reference.compare.suites import cnn_suite  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.sdp_bound import triangle_bound  # noqa: E402
from solvers.tree import tree_search  # noqa: E402

COLUMNS = ("sdp", "tree", "shor", "tri", "max")


def _timed(f, *args, **kw):
    t0 = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0


def measure(bqms, tree_nodes: int, steps: int, seed: int = 0) -> dict:
    """Layer sums of the best loss and of each bound, and seconds (module docstring)."""
    lb = dict.fromkeys(COLUMNS, 0.0)
    sec = dict.fromkeys(COLUMNS + ("lns",), 0.0)
    best = 0.0
    for m in bqms:
        P, q, c = m.P, m.q, m.c
        r, t = _timed(solve, m, "lns", seed=seed)
        sec["lns"] += t
        tr, t = _timed(tree_search, P, q, c, max_nodes=tree_nodes)
        sec["tree"] += t
        b = min(r.energy, tr.energy)
        best += b
        lb["tree"] += max(0.0, tr.lower_bound)
        sd, t = _timed(_sdp_box, P, q, c)
        lb["sdp"] += max(0.0, sd)
        sec["sdp"] += t
        (tb, info), t = _timed(triangle_bound, P, q, c, steps=steps, upper=b)
        lb["tri"] += max(0.0, tb)
        lb["shor"] += max(0.0, info["shor"])
        lb["max"] += max(0.0, tb, tr.lower_bound)
        sec["tri"] += t
        (_, _), t = _timed(triangle_bound, P, q, c, steps=0)
        sec["shor"] += t
    sec["max"] = sec["tree"] + sec["tri"]
    return {"best": best, "lb": lb, "seconds": sec}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnn-rows", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tree-nodes", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=30, help="supergradient steps of the candidate")
    a = ap.parse_args(argv)
    layers = []
    if a.cnn_rows:
        conv = cnn_suite(a.seed)[1]
        layers.append(("cnn-conv2", [conv.row_bqm(k) for k in range(a.cnn_rows)]))
    for fam in (f for f in a.families.split(",") if f):
        p = family_layer(fam, a.width, a.rows, a.seed)
        layers.append((f"{fam}-{a.width}", [p.row_bqm(k) for k in range(p.n_rows)]))
    print(f"{'layer':12} {'rows':>4} {'best':>10} " + " ".join(f"{c + ' LB/best, s':>17}" for c in COLUMNS)
          + "   lns s", flush=True)
    for name, bqms in layers:
        with blas_threads(1):
            out = measure(bqms, a.tree_nodes, a.steps, a.seed)
        best = out["best"]
        cells = [f"{out['lb'][c] / best:7.3f} {out['seconds'][c]:7.1f}s" for c in COLUMNS]
        print(f"{name:12} {len(bqms):4} {best:10.4g} " + " ".join(f"{x:>17}" for x in cells)
              + f"  {out['seconds']['lns']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
