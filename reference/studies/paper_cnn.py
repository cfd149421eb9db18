"""The paper's Tables 1 and 4 on the digits CNN (:mod:`reference.cnn`): real convolutions.

``python -m reference.studies.paper --cnn`` (or ``python -m reference.compare --suite paper-cnn``) trains
the CNN (seed 0, 40 epochs), draws calibration images per seed and quantizes it at 4, 3 and 2
bits:

* **Table 1**: the first convolution quantized, every other layer in float: nearest, floor,
  ceil, stochastic rounding (every draw, and the best draw on the calibration task loss), the
  relaxation (AdaRound, Eqs. 21-24, on Eq. 20) and the Eq. 20 QUBO solved exactly (fan-in 9:
  every row is enumerated, so the optimum is proven).
* **Table 4**: all layers in order: nearest, the relaxation on Eq. 20, the Eq. 20 QUBO solved as
  well as the project can (per row the better of the tree search with a node budget and
  simulated annealing), and the relaxation of Eq. 25 with ReLU
  (:func:`solvers.conv_sequential.conv_asymmetric_relaxation` for the convolutions).

Each Eq. 20 row reports its gap to the best the project knows for the same problems: the proven
optimum where every row is proven (``gap to``: ``optimum``), otherwise the best state found by any
method, with the tree search's proven lower bound beside it (``gap to``: ``best known``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import solvers
from solvers.conv_sequential import conv_asymmetric_relaxation
from solvers.sequential import asymmetric_relaxation

from ..cnn import cnn_calibration, digits_cnn, digits_images
from ..conv import patches_all
from ..grid import fit_grid
from .progress import progress_bar

__all__ = ["CNNSettings", "run_cnn_tables", "format_cnn_tables"]


@dataclass
class CNNSettings:
    """Defaults of the CNN section (docs/results.md explains each choice)."""

    bits: tuple = (4, 3, 2)
    seeds: tuple = (0, 1)
    n_calibration: int = 256
    n_stochastic: int = 100
    tree_nodes: int = 50_000  # per row: rows of fan-in 128-144 are not proven; the bound is reported
    anneal: dict = field(default_factory=lambda: {"num_reads": 32, "num_sweeps": 1000})
    adaround: dict = field(default_factory=lambda: {"preset": "aimet", "iterations": 10_000})
    batch_images: int = 32  # Eq. 25 mini-batches: the patches of this many images


def _rows(problem, x):
    return problem.row_losses(x)


class _Best:
    """Per layer and row, the lowest Eq. 20 loss any method reached, and the tree's proven bounds."""

    def __init__(self, problems):
        self.rows = [np.full(p.n_rows, np.inf) for p in problems]
        self.proven = [np.zeros(p.n_rows, bool) for p in problems]
        self.bound = [np.zeros(p.n_rows) for p in problems]

    def see(self, k, problem, x):
        self.rows[k] = np.minimum(self.rows[k], _rows(problem, x))


def _best_qubo(problem, st, seed):
    """Per row the better of the tree search (node budget, proven bound) and annealing."""
    tree = solvers.solve(problem, "tree", max_nodes=st.tree_nodes)
    x = np.array(tree.x)
    rows_proven = np.array([s == "optimal" for s in tree.info["row_status"]], bool)
    if not tree.optimal:
        ann = solvers.solve(problem, "anneal", seed=seed, **st.anneal)
        better = _rows(problem, ann.x) < _rows(problem, x)
        x[better] = np.asarray(ann.x)[better]
    bound = tree.lower_bound if tree.lower_bound is not None else 0.0
    return x, rows_proven, tree.optimal, float(bound)


def _patches(A, geo):
    Ho, Wo = geo.output_size(A.shape[2], A.shape[3])
    return patches_all(A, geo), Ho * Wo


def run_cnn_tables(settings: CNNSettings | None = None, progress: bool = False) -> dict:
    """Run Tables 1 and 4 on the CNN; rows keyed ``(table, bits, name)`` with per-seed metric lists
    (``acc``, ``loss``, ``energy``, ``gap``, ``gap_to``, ``bound``). BLAS runs on one thread
    (the products are small; results do not depend on it). ``progress`` shows a bar of the
    (bits, seed) steps on stderr."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run(settings or CNNSettings(), progress)


class _Rows:
    """The recorded rows and the float network's test set that scores each quantized network."""

    def __init__(self, net, Xt, yt):
        self.rows: dict = {}
        self.net, self.Xt, self.yt = net, Xt, yt

    def add(self, table, bits, name, **m):
        r = self.rows.setdefault((table, bits, name), {})
        for key, val in m.items():
            r.setdefault(key, []).append(val)

    def evaluate(self, q) -> dict:
        return {"acc": 100 * q.accuracy(self.Xt, self.yt), "loss": q.loss(self.Xt, self.yt)}


@dataclass
class _Step:
    """One (bits, seed) step: calibration images, grids, each layer's inputs and Eq. 20 problem."""

    bits: int
    seed: int
    X: np.ndarray
    y: np.ndarray
    grids: list
    inputs: list
    local: list
    ar: dict


def _run(st: CNNSettings, progress: bool) -> dict:
    t0 = time.perf_counter()
    net, data = digits_cnn(0)
    out = _Rows(net, digits_images(data.X_test), data.y_test)
    L = net.n_layers
    grids = {bits: [fit_grid(net.rows(k), bits=bits) for k in range(L)] for bits in st.bits}
    with progress_bar(len(st.bits) * len(st.seeds), progress, "paper-cnn") as bar:
        for bits, seed in [(bits, seed) for bits in st.bits for seed in st.seeds]:
            bar.set_postfix_str(f"{bits} bits, seed {seed}")
            X, y = cnn_calibration(data, seed, st.n_calibration)
            inputs = net.layer_inputs(X)
            local = [solvers.cnn_layer_problem(net, k, X, grids[bits][k], inputs=inputs[k]) for k in range(L)]
            step = _Step(bits, seed, X, y, grids[bits], inputs, local, dict(st.adaround, seed=seed))
            _table1(out, st, step)
            _table4(out, st, step)
            _table4_eq25(out, st, step)
            bar.update()
    return {"rows": out.rows, "settings": st, "seconds": time.perf_counter() - t0, "float": out.evaluate(net)}


def _table1(out: _Rows, st: CNNSettings, step: _Step) -> None:
    """Table 1, the first convolution only, against its proven optimum (fan-in 9: enumerated)."""
    net, bits, seed, X, y = out.net, step.bits, step.seed, step.X, step.y
    p0 = step.local[0]
    opt = solvers.solve(p0, "exhaustive")
    assert opt.optimal
    t1 = []
    for name in ("nearest", "floor", "ceil"):
        r = solvers.solve(p0, name)
        t1.append((name, r.x, r.energy))
    draws = []
    for j in range(st.n_stochastic):
        r = solvers.solve(p0, "stochastic", seed=int(seed) * 1000 + j)
        q = net.with_weights(0, p0.w_hat(r.x))
        draws.append((q.loss(X, y), out.evaluate(q), r.energy))
    for _, m, e in draws:
        out.add("1", bits, "stochastic (all draws)", **m, energy=e, gap=e - opt.energy, gap_to="optimum",
                bound=None)
    _, m, e = min(draws, key=lambda d: d[0])
    out.add("1", bits, "stochastic (best of draws on calibration loss)", **m, energy=e, gap=e - opt.energy,
            gap_to="optimum", bound=None)
    r = solvers.solve(p0, "adaround", **step.ar)
    t1.append(("relaxation (adaround, Eq. 20)", r.x, r.energy))
    t1.append(("Eq. 20 QUBO, exact (exhaustive)", opt.x, opt.energy))
    for name, x, e in t1:
        out.add("1", bits, name, **out.evaluate(net.with_weights(0, p0.w_hat(x))), energy=e, gap=e - opt.energy,
                gap_to="optimum", bound=None)


def _table4(out: _Rows, st: CNNSettings, step: _Step) -> None:
    """Table 4 on Eq. 20, all layers in order: nearest, the relaxation, and the QUBO (tree + anneal),
    each against the best per row any of them reached (the optimum where the tree proves every row)."""
    net, local, L = out.net, step.local, out.net.n_layers
    best = _Best(local)
    plans = {}
    near = [solvers.solve(p, "nearest").x for p in local]
    relax = [solvers.solve(p, "adaround", **step.ar).x for p in local]
    qubo = [_best_qubo(p, st, step.seed) for p in local]
    for k, p in enumerate(local):
        for x in (near[k], relax[k], qubo[k][0]):
            best.see(k, p, x)
        best.proven[k] = qubo[k][1]
        best.bound[k] = qubo[k][3]
    plans["nearest"] = near
    plans["layer-wise (Eq. 20), relaxation (adaround)"] = relax
    plans["layer-wise (Eq. 20), QUBO (tree + anneal, best per row)"] = [q[0] for q in qubo]
    all_proven = all(q[2] for q in qubo)
    best_total = float(sum(r.sum() for r in best.rows))
    bound_total = float(sum(q[3] for q in qubo))
    for name, xs in plans.items():
        q = net
        for k in range(L):
            q = q.with_weights(k, local[k].w_hat(xs[k]))
        e = float(sum(local[k].loss(xs[k]) for k in range(L)))
        out.add("4", step.bits, name, **out.evaluate(q), energy=e, gap=e - best_total,
                gap_to="optimum" if all_proven else "best known", bound=None if all_proven else bound_total)


def _table4_eq25(out: _Rows, st: CNNSettings, step: _Step) -> None:
    """Table 4's Eq. 25 row with ReLU (identity on the logits), sequential on the quantized
    network's inputs: not a QUBO, so no gap."""
    net, local, L = out.net, step.local, out.net.n_layers
    q = net
    e25 = 0.0
    float_inputs = step.inputs
    for k in range(L):
        x_hat = q.layer_inputs(step.X)[k]
        b = np.asarray(net.biases[k])
        act = "relu" if k < L - 1 else "identity"
        opts = {kk: v for kk, v in step.ar.items()}
        if k < net.n_conv:
            geo = net.geometries[k]
            P, pos = _patches(float_inputs[k], geo)
            P_hat, _ = _patches(x_hat, geo)
            run = conv_asymmetric_relaxation(net.rows(k), b, step.grids[k], P, P_hat, act,
                                             batch_size=min(P.shape[0], st.batch_images * pos), **opts)
            e25 += run.loss
        else:
            run = asymmetric_relaxation(net.rows(k), b, step.grids[k], float_inputs[k], x_hat, act,
                                        batch_size=st.batch_images, **opts)
            e25 += run.loss
        q = q.with_weights(k, local[k].w_hat(run.x))
    out.add("4", step.bits, "asymmetric + ReLU (Eq. 25), relaxation (adaround)", **out.evaluate(q), energy=e25,
            gap=np.nan, gap_to="n/a (not a QUBO)", bound=None)


_TITLES = {
    "1": "CNN Table 1: first convolution (3x3, 1 -> 16) quantized, every other layer in float",
    "4": "CNN Table 4: all layers quantized in order (conv, conv 16 -> 32, depthwise conv, dense)",
}


def _pm(values, fmt):
    a = np.asarray(values, dtype=float)
    return f"{a.mean():{fmt}} +- {a.std():{fmt}}"


def format_cnn_tables(out: dict) -> str:
    """Markdown tables from :func:`run_cnn_tables`."""
    rows, fl, st = out["rows"], out["float"], out["settings"]
    lines = [f"Float CNN: test accuracy {fl['acc']:.1f} %, test loss {fl['loss']:.4f}; seeds {list(st.seeds)}; "
             f"tree budget {st.tree_nodes:,} nodes per row.", ""]
    for table, title in _TITLES.items():
        lines += [f"### {title}", ""]
        for bits in sorted({b for _, b, _ in rows}, reverse=True):
            names = [n for (t, b, n) in rows if t == table and b == bits]
            if not names:
                continue
            lines += [f"**{bits} bits**", "",
                      "| method | test acc. % | test loss | energy (Eq. 20 unless noted) | gap | gap to | "
                      "proven lower bound |", "|---|---|---|---|---|---|---|"]
            for name in names:
                r = rows[table, bits, name]
                gaps = np.asarray(r["gap"], dtype=float)
                gap = "n/a" if np.all(np.isnan(gaps)) else _pm(gaps, ".4g")
                to = sorted(set(r["gap_to"]))
                bounds = [b for b in r["bound"] if b is not None]
                lb = _pm(bounds, ".4g") if bounds else "-"
                energy = _pm(r["energy"], ".4g") + (" (Eq. 25)" if "Eq. 25" in name else "")
                lines.append(f"| {name} | {_pm(r['acc'], '.1f')} | {_pm(r['loss'], '.3f')} | {energy} | {gap} | "
                             f"{' / '.join(to)} | {lb} |")
            lines.append("")
    lines.append(f"Run time: {out['seconds']:.0f} s.")
    return "\n".join(lines)
