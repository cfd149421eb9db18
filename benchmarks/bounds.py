"""Certified lower bounds against the best rounding found, by width and family: ``LB / best``.

For each family and width, one layer (the families of ``benchmarks/heuristics.py``: random
mixing, AR(1) rho 0.9 permuted, low rank plus noise, rank-deficient ``G`` with ``n/2`` distinct
samples; ``N = 4 n`` samples, the paper's 4-bit per-row grid). ``best`` is the lowest layer loss
found by ``lns``, ``tabu`` and the tree (all with their defaults, the tree at ``--tree-nodes``).
Per row, each certified lower bound of the row's optimum:

* ``roof``: roof duality (:func:`solvers.bounds.roof_duality_bound`);
* ``box``: the box-QP bound of :mod:`solvers.bounds` with the uniform shift ``P + d I``;
* ``sdp``: the box-QP bound with the SDP-dual diagonal of :mod:`solvers.diagonal`, at every
  width (the tree's search uses it up to 512 variables, its root bound up to 1024);
* ``tree``: the tree's bound after ``--tree-nodes`` nodes (the smallest open node's bound, or
  its root box-QP bound if larger: what ``reference.compare`` reports today).

``rowmax``: the largest of the four on each row, summed. The layer's bound is the sum over rows of each row's bound (0 when the bound is negative: a row's
loss is ``e^T G e >= 0``); ``best`` is the sum of the rows' best. Printed: each bound over
``best`` and its seconds (whole layer, one process, one BLAS thread). Run::

    PYTHONPATH=. python benchmarks/bounds.py --widths 64,128,256 --rows 2
    PYTHONPATH=. python benchmarks/bounds.py --widths 512,1024 --rows 1

``--study`` instead gives, on each layer (the families above at ``--widths``, and with ``--cnn``
the trained digits CNN's layers of ``--suite cnn``), the relaxation (``adaround`` with each
preset) and ``nearest``: their loss and the interval ``[gap_low, gap_high]`` that holds their gap
to the unknown optimum, ``gap_low = L / best - 1`` (``best`` the lowest loss of every method
run, lns, tabu and the tree included) and ``gap_high = L / LB - 1`` (``LB`` the ``rowmax`` bound
without roof duality and the uniform box, which never beat the other two)::

    PYTHONPATH=. python benchmarks/bounds.py --study --widths 128,256,512 --rows 2 --cnn
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from solvers.runtime import blas_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))

from heuristics import FAMILIES, family_layer  # noqa: E402
from reference.compare.suites import cnn_suite  # noqa: E402
from solvers import solve  # noqa: E402
from solvers.bounds import _box_qp_bound, _roof_duality  # noqa: E402
from solvers.diagonal import sdp_diagonal  # noqa: E402
from solvers.least_squares import _pow2_scale  # noqa: E402
from solvers.tree import tree_search  # noqa: E402

BOUNDS = ("roof", "box", "sdp", "tree")


def _timed(f, *args, **kw):
    t0 = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0


def _sdp_box(P, q, c):
    s = _pow2_scale(P, q, c)
    u = sdp_diagonal(P * s, q * s)
    return _box_qp_bound(P, q, c, diagonal=u / s)[0]


def layer_bounds(p, tree_nodes: int, seed: int = 0) -> dict:
    """Per-bound layer sums and seconds, and the best loss found (module docstring)."""
    lb = {b: 0.0 for b in BOUNDS + ("max",)}
    sec = {b: 0.0 for b in BOUNDS + ("lns", "tabu")}
    best_rows = []
    for k in range(p.n_rows):
        m = p.row_bqm(k)
        P, q, c = m.P, m.q, m.c
        (rd, _), t = _timed(_roof_duality, P, q, c)
        lb["roof"] += max(0.0, rd)
        sec["roof"] += t
        (bx, _), t = _timed(_box_qp_bound, P, q, c)
        lb["box"] += max(0.0, bx)
        sec["box"] += t
        sd, t = _timed(_sdp_box, P, q, c)
        lb["sdp"] += max(0.0, sd)
        sec["sdp"] += t
        tr, t = _timed(tree_search, P, q, c, max_nodes=tree_nodes)
        lb["tree"] += max(0.0, tr.lower_bound)
        sec["tree"] += t
        lb["max"] += max(0.0, rd, bx, sd, tr.lower_bound)
        found = [tr.energy]
        for name in ("lns", "tabu"):
            r, t = _timed(solve, m, name, seed=seed)
            found.append(r.energy)
            sec[name] += t
        best_rows.append(min(found))
    return {"best": float(np.sum(best_rows)), "lb": lb, "seconds": sec}


STUDY = (("adaround", {"preset": "aimet"}), ("adaround", {"preset": "brecq"}),
         ("adaround", {"preset": "torch_ao"}), ("nearest", {}))


def study_layer(p, tree_nodes: int, seed: int = 0) -> dict:
    """Loss of each studied method, the best loss found and the certified bound of layer ``p``."""
    lb, best, rows = 0.0, 0.0, 0
    t0 = time.perf_counter()
    for k in range(p.n_rows):
        m = p.row_bqm(k)
        if m.n == 0:
            best += m.c
            lb += m.c
            continue
        rows = max(rows, m.n)
        sd = _sdp_box(m.P, m.q, m.c)
        tr = tree_search(m.P, m.q, m.c, max_nodes=tree_nodes)
        lb += max(0.0, sd, tr.lower_bound)
        best += min([tr.energy] + [solve(m, name, seed=seed).energy for name in ("lns", "tabu")])
    t_bound = time.perf_counter() - t0
    loss = {}
    for name, opts in STUDY:
        extra = {"seed": seed} if name == "adaround" else {}
        loss[f"{name}:{opts['preset']}" if opts else name] = solve(p, name, **opts, **extra).energy
    best = min([best] + list(loss.values()))
    return {"best": best, "lb": lb, "loss": loss, "widest": rows, "seconds": t_bound}


def study(layers, tree_nodes: int, seed: int) -> None:
    names = [f"{n}:{o['preset']}" if o else n for n, o in STUDY]
    print(f"{'layer':24} {'rows':>4} {'widest':>6} {'best':>10} {'LB/best':>7}  "
          + "  ".join(f"{n + ' [gap_low, gap_high] %':>38}" for n in names), flush=True)
    for p in layers:
        with blas_threads(1):
            out = study_layer(p, tree_nodes, seed)
        best, lb = out["best"], out["lb"]
        cells = []
        for n in names:
            L = out["loss"][n]
            high = f"{100 * (L - lb) / lb:.1f}" if lb > 0 else "none"
            cells.append(f"{L:10.4g} [{100 * (L - best) / best:.1f}, {high}]")
        print(f"{p.name:24} {p.n_rows:4} {out['widest']:6} {best:10.4g} {lb / best:7.3f}  "
              + "  ".join(f"{c:>38}" for c in cells), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,128,256")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tree-nodes", type=int, default=100_000, help="node budget of the tree per row")
    ap.add_argument("--study", action="store_true", help="the relaxation's and nearest's gap intervals")
    ap.add_argument("--cnn", action="store_true", help="with --study: also the digits CNN's layers")
    a = ap.parse_args(argv)
    if a.study:
        layers = [family_layer(fam, int(n), a.rows, a.seed) for n in a.widths.split(",") if n
                  for fam in a.families.split(",")]
        study(layers + (cnn_suite(a.seed) if a.cnn else []), a.tree_nodes, a.seed)
        return
    print(f"family  width  {'best':>10}  " + "  ".join(f"{b + ' LB/best':>18}" for b in BOUNDS)
          + "  rowmax   lns s  tabu s   (each bound: ratio, seconds for the layer)", flush=True)
    for n in (int(w) for w in a.widths.split(",")):
        for fam in a.families.split(","):
            p = family_layer(fam, n, a.rows, a.seed)
            with blas_threads(1):  # as the tree; no oversubscription
                out = layer_bounds(p, a.tree_nodes, a.seed)
            best = out["best"]
            cells = [f"{out['lb'][b] / best:7.3f} {out['seconds'][b]:8.2f}s" for b in BOUNDS]
            print(f"{fam:8} {n:5}  {best:10.4g}  " + "  ".join(f"{c:>18}" for c in cells)
                  + f"  {out['lb']['max'] / best:7.3f}  {out['seconds']['lns']:6.1f}  {out['seconds']['tabu']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
