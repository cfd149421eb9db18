"""The AdaRound paper's Tables 1, 2 and 4 in miniature, with the optimum of every QUBO beside them.

``python -m reference.studies.paper`` trains a small MLP on scikit-learn's digits (deterministically),
quantizes it at 4, 3 and 2 bits with every Hessian level and method of docs/math.md, and
prints markdown tables of test accuracy and test task loss (mean +- std over seeds; a seed draws
the calibration samples and seeds every stochastic method) with, for each method, the energy of
the QUBO it is judged by and its gap to that QUBO's optimum (or to a proven lower bound, marked
``<=``, where the optimum is out of reach). ``run_paper_suite`` returns the same as data.

The CLI is thin: it builds the problems with :mod:`solvers.hessian` and :mod:`solvers.sequential`
and calls :func:`solvers.solve`; no solver logic lives here.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import solvers
from solvers.bounds import roof_duality_bound
from solvers.hessian import diagonal_hessian_layer, local_loss_layer, task_loss_qubo
from solvers.sequential import quantize_network

from ..digits import load_digits
from ..grid import fit_grid
from ..network import train_mlp
from .paper_cnn import CNNSettings, format_cnn_tables, run_cnn_tables
from .progress import progress_bar

__all__ = ["PaperSettings", "run_paper_suite", "format_tables", "main"]


@dataclass
class PaperSettings:
    """Defaults of the miniature (docs/hessian.md explains each choice)."""

    bits: tuple = (4, 3, 2)
    seeds: tuple = (0, 1, 2, 3, 4)
    downsample: bool = True  # 4x4 digits: fan-in 16, so every Eq. 18 row is solved exactly
    hidden: int = 32
    epochs: int = 150
    n_calibration: int = 256
    n_stochastic: int = 100
    exact_method: str = "tree"  # falls back to "exhaustive" when not registered
    anneal: dict = field(default_factory=lambda: {"num_reads": 16, "num_sweeps": 500})
    adaround: dict = field(default_factory=lambda: {"preset": "aimet", "iterations": 10_000})
    batch_size: int = 32  # mini-batches of the Table 4 relaxations (AIMET)


def _exact(settings):
    return settings.exact_method if settings.exact_method in solvers.METHODS else "exhaustive"


def _stats(values):
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std())


class _Recorder:
    """Rows of metric lists keyed by (table, bits, row name)."""

    def __init__(self):
        self.rows: dict = {}

    def add(self, table, bits, name, **metrics):
        row = self.rows.setdefault((table, bits, name), {})
        for k, v in metrics.items():
            row.setdefault(k, []).append(v)


@dataclass
class _Suite:
    """What every (bits, seed) step shares: the settings, the trained float network, the test set,
    the exact method and the rows recorded so far."""

    st: PaperSettings
    net: object
    Xt: np.ndarray
    yt: np.ndarray
    exact: str
    rec: _Recorder = field(default_factory=_Recorder)

    def evaluate(self, q) -> dict:
        return {"acc": 100 * q.accuracy(self.Xt, self.yt), "loss": q.loss(self.Xt, self.yt)}

    def with_layers(self, W_hats):
        q = self.net
        for layer, W in W_hats.items():
            q = q.with_weights(layer, W)
        return q


@dataclass
class _Step:
    """One (bits, seed) step: calibration samples, grids, options, and each layer's Eq. 20 and
    Eq. 18 problems with their exact optima."""

    bits: int
    seed: int
    X: np.ndarray
    y: np.ndarray
    grids: list
    ar: dict
    an: dict
    local: list
    opt20: list
    diag: list
    opt18: list


def run_paper_suite(settings: PaperSettings | None = None, progress: bool = False) -> dict:
    """Run the three tables; returns ``{"rows": {(table, bits, name): {metric: [per seed]}}, ...}``.

    Metrics: ``acc`` and ``loss`` (test accuracy and mean cross-entropy of the quantized network),
    ``energy`` (the objective named by ``qubo``), ``gap`` (``energy - optimum``, or
    ``energy - lower bound`` when ``bound`` is True). ``progress`` shows a bar of the
    (bits, seed) steps on stderr.
    """
    st = settings or PaperSettings()
    t_start = time.perf_counter()
    data = load_digits(downsample=st.downsample)
    net = train_mlp(data.X_train, data.y_train, [data.n_features, st.hidden, 10], seed=0, epochs=st.epochs)
    suite = _Suite(st, net, data.X_test, data.y_test, _exact(st))
    grids = {bits: [fit_grid(W, bits) for W in net.weights] for bits in st.bits}
    with progress_bar(len(st.bits) * len(st.seeds), progress, "paper") as bar:
        for bits, seed in [(bits, seed) for bits in st.bits for seed in st.seeds]:
            bar.set_postfix_str(f"{bits} bits, seed {seed}")
            step = _step(suite, data, bits, seed, grids[bits])
            _table1(suite, step)
            taylor = _taylor_qubos(suite, step)
            _table2(suite, step, taylor)
            _table4(suite, step)
            bar.update()
    return {"rows": suite.rec.rows, "settings": st, "seconds": time.perf_counter() - t_start,
            "float": suite.evaluate(net), "exact_method": suite.exact}


def _step(suite: _Suite, data, bits: int, seed: int, grids: list) -> _Step:
    st, net, exact = suite.st, suite.net, suite.exact
    rng = np.random.default_rng([seed, 7])
    idx = rng.choice(data.X_train.shape[0], st.n_calibration, replace=False)
    X, y = data.X_train[idx], data.y_train[idx]
    local = [local_loss_layer(net, k, X, grids[k]) for k in range(net.n_layers)]
    opt20 = [solvers.solve(p, exact) for p in local]
    diag = [diagonal_hessian_layer(net, k, X, y, grids[k]) for k in range(net.n_layers)]
    opt18 = [solvers.solve(p, exact) for p in diag]
    return _Step(bits, seed, X, y, grids, dict(st.adaround, seed=seed), dict(st.anneal, seed=seed),
                 local, opt20, diag, opt18)


def _table1(suite: _Suite, step: _Step) -> None:
    """Table 1, first layer only: the roundings to nearest, up, down and stochastic, and the Eq. 20 optimum."""
    rec, bits, exact = suite.rec, step.bits, suite.exact
    p0, o0 = step.local[0], step.opt20[0]
    for name in ("nearest", "ceil", "floor"):
        r = solvers.solve(p0, name)
        rec.add("1", bits, name, **suite.evaluate(suite.with_layers({0: p0.w_hat(r.x)})),
                qubo="Eq. 20", energy=r.energy, gap=r.energy - o0.energy, bound=False)
    draws = []
    for j in range(suite.st.n_stochastic):
        r = solvers.solve(p0, "stochastic", seed=int(step.seed) * 1000 + j)
        q = suite.with_layers({0: p0.w_hat(r.x)})
        draws.append((q.loss(step.X, step.y), suite.evaluate(q), r.energy))
    for _, m, e in draws:
        rec.add("1", bits, "stochastic (all draws)", **m, qubo="Eq. 20", energy=e, gap=e - o0.energy,
                bound=False)
    _, m, e = min(draws, key=lambda d: d[0])
    rec.add("1", bits, "stochastic (best of draws on calibration loss)", **m, qubo="Eq. 20", energy=e,
            gap=e - o0.energy, bound=False)
    rec.add("1", bits, f"Eq. 20 QUBO, exact ({exact})", **suite.evaluate(suite.with_layers({0: p0.w_hat(o0.x)})),
            qubo="Eq. 20", energy=o0.energy, gap=0.0 if o0.optimal else np.nan, bound=False)


def _taylor_qubos(suite: _Suite, step: _Step) -> dict:
    """The task-loss QUBOs of every layer (Eq. 13, and Eq. 4 + 16 with the gradient) annealed, with a
    proven lower bound; records Table 1's Eq. 13 row. Returns ``{(gradient, k): (qubo, result, bound)}``."""
    net = suite.net
    taylor = {}
    for gradient in (False, True):
        for k in range(net.n_layers):
            fq = task_loss_qubo(net, k, step.X, step.y, step.grids[k], gradient=gradient)
            r = solvers.solve(fq.bqm, "anneal", **step.an)
            lb = roof_duality_bound(fq.bqm)[0]
            if not gradient:  # 1/2 dw^T H dw >= 0: H is a sum of PSD Kronecker terms
                lb = max(lb, 0.0)
            taylor[gradient, k] = (fq, r, lb)
    fq, r, lb = taylor[False, 0]
    suite.rec.add("1", step.bits, "Eq. 13 QUBO, anneal",
                  **suite.evaluate(suite.with_layers({0: fq.w_hat(fq.up_down(r.x))})),
                  qubo="Eq. 13", energy=r.energy, gap=r.energy - lb, bound=True)
    return taylor


def _table2(suite: _Suite, step: _Step, taylor: dict) -> None:
    """Table 2: one Hessian level per row, on the first layer and on all layers."""
    L, bits, exact, rec = suite.net.n_layers, step.bits, suite.exact, suite.rec
    local, opt20 = step.local, step.opt20

    def level(name, qubo, choose):
        """choose(k) -> (W_hat, energy, gap, bound) for layer k."""
        first = choose(0)
        rec.add("2 first", bits, name, **suite.evaluate(suite.with_layers({0: first[0]})), qubo=qubo,
                energy=first[1], gap=first[2], bound=first[3])
        per = [first] + [choose(k) for k in range(1, L)]
        rec.add("2 all", bits, name, **suite.evaluate(suite.with_layers({k: c[0] for k, c in enumerate(per)})),
                qubo=qubo, energy=sum(c[1] for c in per), gap=sum(c[2] for c in per),
                bound=any(c[3] for c in per))

    def nearest(k):
        r = solvers.solve(local[k], "nearest")
        return local[k].w_hat(r.x), r.energy, r.energy - opt20[k].energy, False

    def taylor_level(gradient):
        def choose(k):
            fq, r, lb = taylor[gradient, k]
            return fq.w_hat(fq.up_down(r.x)), r.energy, r.energy - lb, True
        return choose

    def exact_level(problems, optima):
        def choose(k):
            o = optima[k]
            return problems[k].w_hat(o.x), o.energy, 0.0 if o.optimal else np.nan, False
        return choose

    relaxed = [solvers.solve(local[k], "adaround", **step.ar) for k in range(L)]

    def relaxation(k):
        r = relaxed[k]
        return local[k].w_hat(r.x), r.energy, r.energy - opt20[k].energy, False

    level("nearest", "Eq. 20", nearest)
    level("Eq. 13 task-loss QUBO (H only), anneal", "Eq. 13", taylor_level(False))
    level("Eq. 4 + 16 (gradient + H), anneal", "Eq. 4", taylor_level(True))
    level(f"Eq. 18 diagonal output Hessian, exact ({exact})", "Eq. 18", exact_level(step.diag, step.opt18))
    level(f"Eq. 20 local MSE QUBO, exact ({exact})", "Eq. 20", exact_level(local, opt20))
    level("Eq. 21 continuous relaxation (adaround)", "Eq. 20", relaxation)


def _table4(suite: _Suite, step: _Step) -> None:
    """Table 4: all layers quantized in order, layer-wise (Eq. 20) and asymmetric (Eq. 25)."""
    st, exact, ar = suite.st, suite.exact, step.ar
    batch = dict(ar, mode="batch", batch_size=st.batch_size)
    relu_opts = {k: v for k, v in dict(ar, batch_size=st.batch_size).items()}
    for variant, label, method, opts in (
        ("layerwise", "layer-wise (Eq. 20), adaround", "adaround", batch),
        ("asymmetric", "asymmetric (Eq. 25, no activation), adaround", "adaround", batch),
        ("asymmetric_relu", "asymmetric + ReLU (Eq. 25), adaround", "adaround", relu_opts),
        ("layerwise", f"layer-wise (Eq. 20), exact ({exact})", exact, {}),
        ("asymmetric", f"asymmetric (Eq. 25, no activation), exact ({exact})", exact, {}),
    ):
        run = quantize_network(suite.net, step.X, bits=step.bits, method=method, variant=variant, options=opts,
                               grids=step.grids)
        gap = 0.0
        qubo = "Eq. 20" if variant == "layerwise" else "Eq. 25"
        for prob, res in zip(run.problems, run.results):
            if prob is None:  # a ReLU layer of Eq. 25: not a QUBO
                gap = np.nan
                continue
            if not np.isnan(gap):
                best = res if res.optimal else solvers.solve(prob, exact)
                gap += res.energy - best.energy
        suite.rec.add("4", step.bits, label, **suite.evaluate(run.net), qubo=qubo,
                      energy=sum(r.energy for r in run.results), gap=gap, bound=False)


# ---------------------------------------------------------------------------- formatting
_TITLES = {
    "1": "Table 1 in miniature: first layer quantized, every other layer in float",
    "2 first": "Table 2 in miniature: one level per row, first layer only",
    "2 all": "Table 2 in miniature: one level per row, all layers (each layer's problem built on the float network)",
    "4": "Table 4 in miniature: all layers, sequential",
}


def _pm(values, fmt):
    m, s = _stats(values)
    return f"{m:{fmt}} +- {s:{fmt}}"


def format_tables(out: dict) -> str:
    """Markdown tables from :func:`run_paper_suite`'s output."""
    rows = out["rows"]
    fl = out["float"]
    lines = [f"Float network: test accuracy {fl['acc']:.1f} %, test loss {fl['loss']:.4f}.", ""]
    bits_all = sorted({b for _, b, _ in rows}, reverse=True)
    for table, title in _TITLES.items():
        lines += [f"### {title}", ""]
        for bits in bits_all:
            names = [n for (t, b, n) in rows if t == table and b == bits]
            if not names:
                continue
            lines += [f"**{bits} bits**", "",
                      "| method | test acc. % | test loss | QUBO | energy | gap to own optimum (energy units) |",
                      "|---|---|---|---|---|---|"]
            for name in names:
                r = rows[table, bits, name]
                gaps = np.asarray(r["gap"], dtype=float)
                if np.all(np.isnan(gaps)):
                    gap = "n/a (not a QUBO)"
                else:
                    gap = ("<= " if any(r["bound"]) else "") + _pm(gaps, ".4g")
                lines.append(f"| {name} | {_pm(r['acc'], '.1f')} | {_pm(r['loss'], '.3f')} | {r['qubo'][0]} | "
                             f"{_pm(r['energy'], '.4g')} | {gap} |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    """The command line ``python -m reference.studies.paper``: ``argv`` its arguments; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reference.studies.paper", description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2])
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0 .. n-1; default 5, 2 with --cnn)")
    parser.add_argument("--iterations", type=int, default=10_000, help="AdaRound iterations per layer")
    parser.add_argument("--stochastic", type=int, default=100, help="stochastic roundings per seed")
    parser.add_argument("--full-digits", action="store_true", help="8x8 inputs (fan-in 64) instead of 4x4")
    parser.add_argument("--cnn", action="store_true",
                        help="Tables 1 and 4 on the digits CNN (reference.studies.paper_cnn) instead of the MLP; "
                             "--seeds defaults to 2 there")
    parser.add_argument("--tree-nodes", type=int, default=50_000, help="with --cnn: tree node budget per row")
    parser.add_argument("--progress", action="store_true",
                        help="show a progress bar on stderr (default: when stderr is a terminal)")
    args = parser.parse_args(argv)
    args.progress = args.progress or sys.stderr.isatty()
    if args.cnn:
        return _cnn_main(args)
    args.seeds = 5 if args.seeds is None else args.seeds
    st = PaperSettings(bits=tuple(args.bits), seeds=tuple(range(args.seeds)), downsample=not args.full_digits,
                       n_stochastic=args.stochastic)
    st.adaround["iterations"] = args.iterations
    out = run_paper_suite(st, progress=args.progress)
    print(format_tables(out))
    print(f"Run time: {out['seconds']:.0f} s.")
    return 0


def _cnn_main(args) -> int:
    seeds = tuple(range(2 if args.seeds is None else args.seeds))
    st = CNNSettings(bits=tuple(args.bits), seeds=seeds, n_stochastic=args.stochastic,
                     tree_nodes=args.tree_nodes)
    st.adaround["iterations"] = args.iterations
    out = run_cnn_tables(st, progress=args.progress)
    print(format_cnn_tables(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
