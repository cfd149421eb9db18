"""Exact solvers: time to prove optimality, nodes with and without the ordering rule, quality
per second of the heuristics against the proven optimum, and the tree (and the peers) on
OR-Library bqp50 and bqp100.

Problems: per-row local-loss QUBOs (Eq. 20) of a layer with ``W ~ N(0, 1/n)`` (10 rows),
4-bit symmetric per-row MSE grid, ``G`` from ``N = 4n`` correlated samples (AR(1) correlation
0.9 between neighbouring inputs, then the inputs randomly permuted, so that the natural order
carries no information about the correlations).

Usage (each part can be run alone)::

    python benchmarks/exact.py prove  [--sizes 24 32 48 64] [--rows 10] [--limit 60]
    python benchmarks/exact.py quality [--sizes 64 128] [--rows 4] [--limit 120]
    python benchmarks/exact.py bqp    [--limit 60] [--sets bqp50 bqp100] [--peers gurobi scip]
    python benchmarks/exact.py diagonal [--sizes 64] [--rows 4] [--limit 60] [--max-nodes N]
    python benchmarks/exact.py peers  [--sizes 64 128] [--rows 10] [--limit 60] [--peer-rows K]
                                      [--families ar1 cnn lowrank mixing mlp] [--peers gurobi scip]

``peers`` runs, on the same per-row QUBOs, the tree (``time_limit`` alone, one BLAS thread),
Gurobi (gurobipy, one thread, ``MIPGap`` 1e-9) and SCIP (pyscipopt, one thread, gap 0), each with
the same time limit, and prints rows proven, median and worst seconds, the tree's nodes, and the
ratio peer/tree on rows both prove (``--peer-rows K``: the peers run on the first ``K`` rows
only, the tree on all; the peer columns then count those rows). A missing peer is skipped with a message naming it
(install them into a separate environment, never as test dependencies). Families (``N = 4n``
samples, 4-bit per-row grid): ``ar1`` the layer above; ``mixing`` ``X = Z A + 0.1 E`` (``A``
Gaussian ``n x n`` over ``sqrt(n)``), weights ``N(0, 0.01)``, scale at 0.9 of min-max;
``lowrank`` ``X = Z B + 0.1 E`` with ``B`` of rank ``n/8``, same weights and grid; ``mlp`` rows of
a numpy MLP ``[64, 128, 10]`` trained on the digits (n = 64: layer 0, n = 128: layer 1, inputs
from 4n training images, the MSE grid); ``cnn`` rows of the trained digits CNN (n = 128: the dense
classifier, n = 144: the 3x3 16->32 convolution; the ``cnn`` suite's layers at 4 bits).

Ratios are printed against peers measured in the same run: ``exhaustive`` (where feasible) and a
plain Python depth-first Schnorr-Euchner search in natural order (:func:`python_tree`).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import Grid, fit_grid  # noqa: E402
from solvers import LayerProblem, method_names, solve  # noqa: E402
from solvers.orlib import read_bqp  # noqa: E402
from solvers.least_squares import least_squares_form  # noqa: E402
from solvers.tree import tree_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Published optima (maximisation; Beasley 1998; tests/data/orlib/README.md)
BQP_OPT = {"bqp50": [2098, 3702, 4626, 3544, 4012, 3693, 4520, 4216, 3780, 3507],
           "bqp100": [7970, 11036, 12723, 10368, 9083, 10210, 10125, 11435, 11455, 12565]}


def correlated_layer(n: int, rows: int = 10, seed: int = 0, rho: float = 0.9) -> LayerProblem:
    """The benchmark layer (module docstring)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    C = rho ** np.abs(idx[:, None] - idx[None, :])
    X = (rng.normal(size=(4 * n, n)) @ np.linalg.cholesky(C).T)[:, rng.permutation(n)]
    W = rng.normal(size=(rows, n)) / np.sqrt(n)
    return LayerProblem(W, fit_grid(W, bits=4), X=X, name=f"ar1-{n}")


def _scaled_grid_layer(X, n, rows, rng, name):
    W = rng.normal(size=(rows, n)) * 0.1
    return LayerProblem(W, Grid(0.9 * np.abs(W).max(axis=1) / 7, -8, 7), X=X, name=name)


def mixing_layer(n: int, rows: int = 10, seed: int = 0) -> LayerProblem:
    """``X = Z A + 0.1 E`` (module docstring)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    X = rng.normal(size=(4 * n, n)) @ A + 0.1 * rng.normal(size=(4 * n, n))
    return _scaled_grid_layer(X, n, rows, rng, f"mixing-{n}")


def lowrank_layer(n: int, rows: int = 10, seed: int = 0) -> LayerProblem:
    """``X = Z B + 0.1 E`` with ``B`` of rank ``n/8`` (module docstring)."""
    rng = np.random.default_rng(seed)
    r = max(2, n // 8)
    X = rng.normal(size=(4 * n, r)) @ rng.normal(size=(r, n)) / np.sqrt(r) + 0.1 * rng.normal(size=(4 * n, n))
    return _scaled_grid_layer(X, n, rows, rng, f"lowrank-{n}")


def mlp_layer(n: int, rows: int = 10, seed: int = 0) -> LayerProblem:
    """Rows of a trained numpy MLP [64, 128, 10] on the digits: layer 0 (n = 64) or 1 (n = 128)."""
    from reference.digits import load_digits
    from reference.network import train_mlp

    if n not in (64, 128):
        raise SystemExit("the mlp family has n = 64 (layer 0) or n = 128 (layer 1)")
    data = load_digits()
    net = train_mlp(data.X_train, data.y_train, [64, 128, 10], seed=seed, epochs=30)
    layer = 0 if n == 64 else 1
    X = data.X_train[: 4 * n]
    W = net.weights[layer][:rows]
    A = net.layer_inputs(X)[layer]
    return LayerProblem(W, fit_grid(W, bits=4), X=A, name=f"mlp-{n}")


class _FirstRows:
    """The first ``rows`` rows of a layer (the row QUBOs are independent under Eq. 20)."""

    def __init__(self, problem, rows: int):
        self.problem, self.n_rows = problem, min(rows, problem.n_rows)

    def row_bqm(self, k: int):
        return self.problem.row_bqm(k)


def cnn_layer(n: int, rows: int = 10, seed: int = 0):
    """Rows of the trained digits CNN (reference.cnn, the ``cnn`` suite's layers at 4 bits): the
    dense classifier (n = 128, ten rows) or the 3x3 16->32 convolution (n = 144)."""
    from reference.compare.suites import cnn_suite

    if n not in (128, 144):
        raise SystemExit("the cnn family has n = 128 (the dense layer) or n = 144 (the 16->32 conv)")
    return _FirstRows(cnn_suite(seed)[3 if n == 128 else 1], rows)


FAMILIES = {"ar1": correlated_layer, "lowrank": lowrank_layer, "mixing": mixing_layer, "mlp": mlp_layer,
            "cnn": cnn_layer}


def gurobi_solve(bqm, limit):
    """Peer: Gurobi MIQP, binary variables, one thread. Returns (energy, proven, seconds)."""
    import gurobipy as gp

    with gp.Env(params={"OutputFlag": 0}) as env, gp.Model(env=env) as m:
        m.Params.Threads, m.Params.TimeLimit, m.Params.MIPGap = 1, limit, 1e-9
        x = m.addMVar(bqm.n, vtype=gp.GRB.BINARY)
        m.setObjective(x @ bqm.P @ x + bqm.q @ x + bqm.c, gp.GRB.MINIMIZE)
        t0 = time.perf_counter()
        m.optimize()
        dt = time.perf_counter() - t0
        e = bqm.energy(np.round(x.X).astype(np.int8)) if m.SolCount else float("inf")
        return e, m.Status == gp.GRB.OPTIMAL, dt


def scip_solve(bqm, limit):
    """Peer: SCIP, binary variables, epigraph of the quadratic objective, one thread."""
    import pyscipopt as ps

    m = ps.Model()
    m.hideOutput()
    m.setParam("limits/time", limit)
    m.setParam("limits/gap", 0.0)
    m.setParam("parallel/maxnthreads", 1)
    n = bqm.n
    x = [m.addVar(vtype="B") for _ in range(n)]
    z = m.addVar(lb=None, ub=None)
    P = bqm.P
    quad = ps.quicksum(P[i, i] * x[i] for i in range(n)) + ps.quicksum(
        2 * P[i, j] * x[i] * x[j] for i in range(n) for j in range(i + 1, n) if P[i, j] != 0)
    m.addCons(z >= quad + ps.quicksum(float(bqm.q[i]) * x[i] for i in range(n)))
    m.setObjective(z + bqm.c, "minimize")
    t0 = time.perf_counter()
    m.optimize()
    dt = time.perf_counter() - t0
    sol = m.getBestSol() if m.getNSols() else None
    e = bqm.energy(np.array([round(m.getSolVal(sol, v)) for v in x], dtype=np.int8)) if sol else float("inf")
    return e, m.getStatus() == "optimal", dt


PEERS = {"gurobi": ("gurobipy", gurobi_solve), "scip": ("pyscipopt", scip_solve)}


def _active_peers(peer_names):
    """The installed peers among ``peer_names``; a missing one is named and skipped."""
    active = []
    for name in peer_names:
        module, fn = PEERS[name]
        if importlib.util.find_spec(module) is None:
            print(f"# peer {name} skipped: the package '{module}' is not installed")
        else:
            active.append((name, fn))
    return active


def peers(sizes, rows, limit, families, peer_names, peer_rows=None):
    active = _active_peers(peer_names)
    print(f"## rows proven within {limit} s, one thread each (tree: time_limit alone, diagonal=sdp)")
    warm = correlated_layer(16, 1).row_bqm(0)
    tree_search(warm.P, warm.q, warm.c)
    for n in sizes:
        for fam in families:
            problem = FAMILIES[fam](n, rows)
            t_tree, nodes, ok_tree = [], [], []
            peer_res = {name: [] for name, _ in active}
            for k in range(problem.n_rows):
                bqm = problem.row_bqm(k)
                t0 = time.perf_counter()
                r = tree_search(bqm.P, bqm.q, bqm.c, time_limit=limit)
                t_tree.append(time.perf_counter() - t0)
                nodes.append(r.info["nodes"])
                ok_tree.append(r.optimal)
                for name, fn in active:
                    if peer_rows is not None and k >= peer_rows:
                        continue
                    e, ok, dt = fn(bqm, limit)
                    if ok and r.optimal:  # two proofs must agree
                        assert abs(e - r.energy) <= 1e-6 * abs(r.energy) + 1e-12, (name, e, r.energy)
                    peer_res[name].append((ok, dt))
                print(f"  {fam}-{n} row {k}: tree {'optimal' if r.optimal else 'open':7s} {t_tree[-1]:7.2f} s "
                      f"{r.info['nodes']:>12,d} nodes; " + "; ".join(
                          f"{name} {'optimal' if ok else 'open':7s} {dt:7.2f} s" for name, (ok, dt) in
                          ((nm, v[-1]) for nm, v in peer_res.items() if len(v) == k + 1)), flush=True)
            m = len(t_tree)
            line = (f"{fam:8s} n={n:<4d} tree {sum(ok_tree)}/{m} proven, median {statistics.median(t_tree):6.2f} s, "
                    f"worst {max(t_tree):6.2f} s, nodes median {statistics.median(nodes):>12,.0f}")
            for name, res in peer_res.items():
                mp = len(res)
                both = [res[i][1] / t_tree[i] for i in range(mp) if res[i][0] and ok_tree[i]]
                only_tree = [i for i in range(mp) if ok_tree[i] and not res[i][0]]
                only_peer = [i for i in range(mp) if res[i][0] and not ok_tree[i]]
                ratio = f"{statistics.median(both):.1f}x" if both else "n/a"
                line += (f" | {name} {sum(ok for ok, _ in res)}/{mp} proven, median "
                         f"{statistics.median(dt for _, dt in res):6.2f} s, {name}/tree on rows both prove "
                         f"{ratio}, only tree {only_tree}, only {name} {only_peer}")
            print(line, flush=True)


def diagonal(sizes, rows, limit, families, max_nodes):
    print("## nodes to prove optimality: uniform shift vs SDP-dual diagonal ('>': not proven)")
    for n in sizes:
        for fam in families:
            problem = FAMILIES[fam](n, rows)
            for k in range(problem.n_rows):
                bqm = problem.row_bqm(k)
                out = []
                for dg in ("uniform", "sdp"):
                    t0 = time.perf_counter()
                    r = tree_search(bqm.P, bqm.q, bqm.c, diagonal=dg, time_limit=limit, max_nodes=max_nodes)
                    out.append(f"{dg} {'' if r.optimal else '>'}{r.info['nodes']:,} ({time.perf_counter() - t0:.2f} s, "
                               f"root bound {r.info['root_bound']:.4g})")
                print(f"  {fam}-{n} row {k}: " + " | ".join(out), flush=True)


def python_tree(P, q, c, time_limit=None):
    """Peer: plain Python recursive Schnorr-Euchner DFS, natural order, plain bound, no initial
    incumbent. Returns (energy, nodes, finished)."""
    form = least_squares_form(P, q, c, order="natural")
    R, y, c0 = form.R.tolist(), form.y.tolist(), form.c0
    n = len(R)
    best = [float("inf")]
    nodes = [0]
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    stopped = [False]

    def visit(j, D, t):
        if stopped[0]:
            return
        if deadline is not None and nodes[0] % 4096 == 0 and time.perf_counter() > deadline:
            stopped[0] = True
            return
        r = R[j][j]
        tj = t[j]
        kids = sorted([(D + tj * tj, 0), (D + (r - tj) ** 2, 1)])
        for Dx, x in kids:
            nodes[0] += 1
            if Dx + c0 >= best[0]:
                break
            if j == 0:
                best[0] = Dx + c0
                continue
            tn = t[:j] if x == 0 else [t[i] - R[i][j] for i in range(j)]
            visit(j - 1, Dx, tn)

    visit(n - 1, 0.0, list(y))
    return best[0], nodes[0], not stopped[0]


def _nanmedian(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def _fmt(xs):
    return f"median {statistics.median(xs):7.3f} s  worst {max(xs):7.3f} s"


def prove(sizes, rows, limit, nat_limit):
    print("## time to prove optimality (per row; tree: order=schur, bound=rows)")
    warm = correlated_layer(16, 1).row_bqm(0)  # imports and first calls out of the timings
    tree_search(warm.P, warm.q, warm.c)
    solve(warm, "exhaustive")
    for n in sizes:
        problem = correlated_layer(n, rows)
        t_tree, t_nat, nodes_s, nodes_n, nodes_p, t_ex, t_py, proved = [], [], [], [], [], [], [], 0
        nat_proved = 0
        for k in range(rows):
            bqm = problem.row_bqm(k)
            t0 = time.perf_counter()
            r = tree_search(bqm.P, bqm.q, bqm.c, time_limit=limit)
            t_tree.append(time.perf_counter() - t0)
            proved += r.optimal
            nodes_s.append(r.info["nodes"])
            t0 = time.perf_counter()
            rn = tree_search(bqm.P, bqm.q, bqm.c, order="natural", time_limit=nat_limit)
            t_nat.append(time.perf_counter() - t0)
            nodes_n.append(rn.info["nodes"] if rn.optimal else float("nan"))
            nat_proved += rn.optimal
            rp = tree_search(bqm.P, bqm.q, bqm.c, bound="plain", time_limit=nat_limit)
            nodes_p.append(rp.info["nodes"] if rp.optimal else float("nan"))
            if n <= 24:
                t0 = time.perf_counter()
                ex = solve(bqm, "exhaustive")
                t_ex.append(time.perf_counter() - t0)
                assert abs(ex.energy - r.energy) <= 1e-9 * (1 + ex.energy), (ex.energy, r.energy)
            if n <= 32:
                t0 = time.perf_counter()
                e_py, _, done = python_tree(bqm.P, bqm.q, bqm.c, time_limit=limit)
                t_py.append(time.perf_counter() - t0)
                assert not done or abs(e_py - r.energy) <= 1e-9 * (1 + abs(e_py))
        print(f"n={n:4d}  tree proved {proved}/{rows}: {_fmt(t_tree)}")
        print(f"        natural order:           {_fmt(t_nat)}  (capped at {nat_limit} s; "
              f"proved {nat_proved}/{rows})")
        print(f"        nodes median: schur+rows {statistics.median(nodes_s):>12,.0f}   "
              f"natural+rows {_nanmedian(nodes_n):>12,.0f}   schur+plain {_nanmedian(nodes_p):>12,.0f}"
              f"   (nan: not proved within {nat_limit} s)")
        if t_ex:
            print(f"        exhaustive:              {_fmt(t_ex)}   "
                  f"ratio exhaustive/tree (medians) {statistics.median(t_ex) / statistics.median(t_tree):.1f}")
        if t_py:
            print(f"        python SE natural:       {_fmt(t_py)}   "
                  f"ratio python/tree (medians) {statistics.median(t_py) / statistics.median(t_tree):.1f}")
        sys.stdout.flush()


QUALITY_METHODS = [("nearest", {}), ("gptq", {}), ("gptq", {"order": "act_order"}),
                   ("steepest", {}), ("anneal", {}), ("tabu", {}), ("adaround", {})]


def quality(sizes, rows, limit):
    print("## quality per second against the proven optimum (sum over rows of the local loss)")
    for n in sizes:
        problem = correlated_layer(n, rows)
        exact = solve(problem, "tree", time_limit=limit, max_nodes=None)
        opt, lb = exact.energy, exact.lower_bound
        rows_proved = sum(s == "optimal" for s in exact.info["row_status"])
        print(f"n={n}: tree {exact.seconds:.1f} s, rows proved {rows_proved}/{rows}, "
              f"best {opt:.6g}, lower bound {lb:.6g}")
        for name, opts in QUALITY_METHODS:
            if name not in method_names():
                print(f"  {name:22s} not registered when measured")
                continue
            res = solve(problem, name, **opts)
            label = name + ("" if not opts else "(" + ",".join(f"{k}={v}" for k, v in opts.items()) + ")")
            print(f"  {label:22s} loss {res.energy:.6g}  gap to optimum {100 * (res.energy - opt) / opt:7.2f} %"
                  f"  ({res.seconds:7.3f} s; tree/method time {exact.seconds / max(res.seconds, 1e-9):8.1f})")
        sys.stdout.flush()


def bqp(limit, sets, peer_names):
    """The tree (and the peers where installed, same time limit) on OR-Library bqp50 / bqp100."""
    active = _active_peers(peer_names)
    for name in sets:
        known = BQP_OPT[name]
        print(f"## tree search on OR-Library {name} (general QUBOs), time_limit {limit} s each", flush=True)
        models = read_bqp(ROOT / "tests" / "data" / "orlib" / f"{name}.txt")
        proved, times, nodes, peer_res = 0, [], [], {p: [] for p, _ in active}
        for i, (m, opt) in enumerate(zip(models, known), 1):
            t0 = time.perf_counter()
            r = tree_search(m.P, m.q, m.c, time_limit=limit)
            dt = time.perf_counter() - t0
            proved += r.optimal
            times.append(dt)
            nodes.append(r.info["nodes"])
            line = (f"{name}.{i:<2d} {'optimal' if r.optimal else r.status:22s} best {r.energy:8.0f} "
                    f"(known {-opt})  bound {r.lower_bound:10.1f}  root bound {r.info['root_bound']:10.1f}  "
                    f"nodes {r.info['nodes']:>12,d}  {dt:6.2f} s")
            for pname, fn in active:
                e, ok, pdt = fn(m, limit)
                if ok and r.optimal:
                    assert abs(e - r.energy) <= 1e-6 * abs(r.energy), (pname, e, r.energy)
                peer_res[pname].append((ok, pdt, r.optimal, dt))
                line += f"; {pname} {'optimal' if ok else 'open':7s} {pdt:6.2f} s (best {e:8.0f})"
            print(line, flush=True)
        summary = (f"{name}: tree {proved}/{len(models)} proven, median {statistics.median(times):.2f} s, "
                   f"worst {max(times):.2f} s, nodes median {statistics.median(nodes):,.0f}")
        for pname, res in peer_res.items():
            both = [pdt / dt for ok, pdt, tok, dt in res if ok and tok]
            summary += (f" | {pname} {sum(ok for ok, *_ in res)}/{len(res)} proven, median "
                        f"{statistics.median(pdt for _, pdt, _, _ in res):.2f} s, {pname}/tree on instances both "
                        f"prove {statistics.median(both):.2f}x" if both else
                        f" | {pname} {sum(ok for ok, *_ in res)}/{len(res)} proven")
        print(summary, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["prove", "quality", "bqp", "peers", "diagonal"])
    ap.add_argument("--max-nodes", type=float, default=None, help="node limit per row (diagonal)")
    ap.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    ap.add_argument("--peers", nargs="*", choices=sorted(PEERS), default=sorted(PEERS))
    ap.add_argument("--sets", nargs="+", choices=sorted(BQP_OPT), default=["bqp50", "bqp100"])
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--peer-rows", type=int, default=None, help="peers run on the first K rows only (peers)")
    ap.add_argument("--limit", type=float, default=60.0, help="time limit per row / instance (s)")
    ap.add_argument("--nat-limit", type=float, default=20.0,
                    help="time limit of the natural-order and plain-bound runs (prove)")
    a = ap.parse_args(argv)
    if a.part == "prove":
        prove(a.sizes or [24, 32, 48, 64], a.rows or 10, a.limit, a.nat_limit)
    elif a.part == "quality":
        quality(a.sizes or [64, 128], a.rows or 4, a.limit)
    elif a.part == "diagonal":
        diagonal(a.sizes or [64], a.rows or 4, a.limit, a.families,
                 None if a.max_nodes is None else int(a.max_nodes))
    elif a.part == "peers":
        peers(a.sizes or [64, 128], a.rows or 10, a.limit, a.families, a.peers, a.peer_rows)
    else:
        bqp(a.limit, a.sets, a.peers)


if __name__ == "__main__":
    main()
