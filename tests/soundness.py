"""Soundness of every certificate against an independent brute force (docs/exact.md, "Soundness").

The properties, for a QUBO ``E(v) = v^T P v + q^T v + c`` of at most 14 variables whose minimum
``E*`` is found here by evaluating all ``2^n`` states with numpy (no project code):

* every ``lower_bound`` a method reports is ``<= E*``;
* ``optimal`` is claimed only when the method's energy is ``E*``;
* every reported energy is ``>= E*`` (it is the energy of some state);
* the certified bounds of :mod:`solvers.bounds` (box-QP with 1, 2, 5 and the default number of
  iterations, roof duality, ``lower_bounds``) are ``<= E*``.

The comparisons allow ``1e-12`` of the energy scale ``sum|P| + sum|q| + |c|`` (the brute force's
own rounding is below ``n^2 2^-53`` of it); every bound of the project is lowered by ``1e-9`` of
that scale, so a real violation shows. Problems come from seeded generators (``FAMILIES``):
general QUBOs with ties, real indefinite, singular (``+-B^T B``) and separable ``P``, rows of
linear, token and convolution layers, each solved with tiny node and time budgets as well as the
defaults. Used by ``tests/solvers/test_soundness.py`` (a few seeds per run) and
``benchmarks/soundness.py`` (thousands).
"""

from __future__ import annotations

import numpy as np

from reference import Grid

__all__ = ["FAMILIES", "brute_minimum", "make_problem", "check_problem", "TOL"]

TOL = 1e-12


def brute_minimum(P, q, c) -> float:
    """``min E`` over all ``2^n`` binary states, by numpy (independent of the project)."""
    n = P.shape[0]
    V = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
    E = np.einsum("ij,jk,ik->i", V, P, V) + V @ q + c
    return float(E.min())


def _scale(P, q, c) -> float:
    return float(np.abs(P).sum() + np.abs(q).sum() + abs(c))


# ---------------------------------------------------------------------------- generators
def _qubo(rng, kind: str):
    from solvers import BQM

    n = int(rng.integers(1, 15))
    if kind == "ties":  # small integers: many equal-energy states
        A = rng.integers(-4, 5, size=(n, n)).astype(float)
        P, q = np.triu(A) + np.triu(A, 1).T, rng.integers(-4, 5, size=n).astype(float)
    elif kind == "real":  # four decimals, indefinite
        A = np.round(rng.uniform(-3, 3, size=(n, n)), 4)
        P, q = (A + A.T) / 2, np.round(rng.uniform(-3, 3, size=n), 4)
    elif kind == "singular":  # rank below n, PSD or NSD, integer (ties)
        B = rng.integers(-2, 3, size=(int(rng.integers(1, max(2, n))), n)).astype(float)
        P, q = B.T @ B * rng.choice([1.0, -1.0]), rng.integers(-6, 7, size=n).astype(float)
    else:  # separable
        P, q = np.zeros((n, n)), np.round(rng.uniform(-3, 3, size=n), 4)
    c = float(rng.integers(-3, 4))
    s = 2.0 ** int(rng.choice([0, 0, 0, -60, -20, 20, 60]))  # powers of two: exact, ties kept
    return BQM(P * s, q * s, c * s)


def _grid(rng, W):
    bits = int(rng.integers(2, 5))
    qmax = 2 ** (bits - 1) - 1
    clip = float(rng.choice([1.0, 0.6, 0.3]))  # < 1: some weights clipped (no variable)
    return Grid(clip * np.abs(W).max(axis=1) / qmax + 1e-12, -qmax - 1, qmax)


def _layer(rng, kind: str):
    from solvers import ConvProblem, LayerProblem

    rows = int(rng.integers(1, 3))
    if kind == "conv":
        cg, k = int(rng.integers(1, 3)), (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
        W = rng.normal(size=(rows, cg, *k))
        X = rng.normal(size=(int(rng.integers(1, 3)), cg, int(rng.integers(k[0], 5)), int(rng.integers(k[1], 5))))
        if rng.random() < 0.5:
            X = np.round(X)  # integer inputs: equal losses for different roundings
        return ConvProblem(W, _grid(rng, W.reshape(rows, -1)), X, stride=int(rng.integers(1, 3)),
                           padding=int(rng.integers(0, 2)))
    n = int(rng.integers(1, 15))
    N = int(rng.choice([1, max(1, n // 3), n, 4 * n]))
    X = rng.normal(size=(N, n))
    if n > 1 and rng.random() < 0.5:  # duplicated inputs: singular G
        X[:, rng.integers(0, n, size=max(1, n // 3))] = X[:, rng.integers(0, n, size=max(1, n // 3))]
    if rng.random() < 0.3:
        X = np.round(X)
    W = rng.normal(size=(rows, n))
    if kind == "token":
        X = X.reshape(N, 1, n).repeat(int(rng.integers(1, 4)), axis=1) + rng.normal(size=(N, 1, n)) * 0.1
    return LayerProblem(W, _grid(rng, W), X=X)


FAMILIES = ("ties", "real", "singular", "separable", "layer", "token", "conv")


def make_problem(family: str, seed: int):
    """A BQM (QUBO families) or a LayerProblem / ConvProblem (layer families) from ``seed``."""
    rng = np.random.default_rng([FAMILIES.index(family), int(seed)])
    if family in ("layer", "token", "conv"):
        return _layer(rng, family)
    return _qubo(rng, family)


# ---------------------------------------------------------------------------- checks
def _runs(rng, n: int, sample: int | None = None):
    """(method, options) to run on a QUBO of ``n`` variables: tiny budgets and the defaults."""
    runs = [("exhaustive", {}), ("tree", {}), ("tree", {"max_nodes": int(rng.integers(1, 51))}),
            ("tree", {"max_nodes": int(rng.integers(1, 6)), "diagonal": "uniform", "order": "natural"}),
            ("tree", {"max_nodes": int(rng.integers(1, 20)), "bound": "plain"}),
            ("lns", {"window": 2, "max_window": int(rng.integers(2, 5)), "max_nodes": int(rng.integers(4, 200)),
                     "kicks": int(rng.integers(0, 3)), "kick": 1, "start": "gptq", "tree_nodes": 0}),
            ("lns", {"max_nodes": 50, "start": "gptq"}), ("gptq", {}), ("steepest", {"num_reads": 2})]
    if rng.random() < 0.2:
        runs.append(("tree", {"time_limit": 1e-4}))
    if rng.random() < 0.1:
        runs += [("tabu", {"num_restarts": 2}), ("anneal", {"num_reads": 2, "num_sweeps": 20})]
    if sample is not None:  # the long run: a random few of them per problem
        runs = [runs[i] for i in sorted(rng.choice(len(runs), size=min(sample, len(runs)), replace=False))]
    return runs


def _check_qubo(bqm, rng, counts: dict, failures: list, tag, sample=None) -> float:
    from solvers import solve
    from solvers.bounds import box_qp_bound, lower_bounds, roof_duality_bound

    opt = brute_minimum(bqm.P, bqm.q, bqm.c)
    tol = TOL * _scale(bqm.P, bqm.q, bqm.c)

    def bound(name, value):
        counts["bounds"] += 1
        if value is not None and not value <= opt + tol:
            failures.append((tag, name, f"bound {value!r} above the optimum {opt!r}"))

    for method, opts in _runs(rng, bqm.n, sample):
        try:
            res = solve(bqm, method, **opts)
        except ValueError as err:  # a refusal is not a certificate
            counts["refused"] += 1
            if "span more than float64" not in str(err) and "not finite" not in str(err):
                failures.append((tag, method, f"unexpected refusal: {err}"))
            continue
        name = f"{method}{opts}"
        counts["energies"] += 1
        if not res.energy >= opt - tol:
            failures.append((tag, name, f"energy {res.energy!r} below the optimum {opt!r}"))
        if res.optimal:
            counts["optimal"] += 1
            if not abs(res.energy - opt) <= tol:
                failures.append((tag, name, f"optimal at {res.energy!r}, optimum {opt!r}"))
        if res.lower_bound is not None:
            bound(name, res.lower_bound)
    for it in (1, 2, 5, 2000) if sample is None else (int(rng.choice([1, 2, 5, 2000])),):
        try:
            bound(f"box_qp_bound(max_iter={it})", box_qp_bound(bqm, max_iter=it))
        except ValueError:
            counts["refused"] += 1
    bound("roof_duality_bound", roof_duality_bound(bqm)[0])
    try:
        bound("lower_bounds.best", lower_bounds(bqm).best)
    except ValueError:
        counts["refused"] += 1
    return opt


def _check_layer(problem, rng, counts: dict, failures: list, tag, sample=None) -> None:
    from solvers import solve

    total, scale = 0.0, 0.0
    for k in range(problem.n_rows):
        row = problem.row_bqm(k)
        scale += _scale(row.P, row.q, row.c)
        if row.n == 0:
            total += row.c
            continue
        counts["problems"] += 1
        total += _check_qubo(row, rng, counts, failures, (*tag, f"row {k}"), sample)
    tol = TOL * scale
    for opts in ({"max_nodes": int(rng.integers(1, 30))}, {})[: 2 if sample is None else 1]:
        res = solve(problem, "tree", **opts)
        counts["energies"] += 1
        if not res.energy >= total - tol:
            failures.append((tag, f"layer tree{opts}", f"energy {res.energy!r} below {total!r}"))
        if res.optimal:
            counts["optimal"] += 1
            if not abs(res.energy - total) <= tol:
                failures.append((tag, f"layer tree{opts}", f"optimal at {res.energy!r}, optimum {total!r}"))
        counts["bounds"] += 1
        if not res.lower_bound <= total + tol:
            failures.append((tag, f"layer tree{opts}", f"bound {res.lower_bound!r} above {total!r}"))


def check_problem(family: str, seed: int, counts: dict | None = None, sample: int | None = None) -> list:
    """Run every check on problem ``(family, seed)``; returns the failures ``(tag, what, why)``
    and adds to ``counts`` (problems, bounds, optimal claims, energies, refusals). ``sample``:
    run only that many of the solver runs (drawn from the problem's seed), one box-QP iteration
    count and, for a layer, the node-limited layer solve only (the long run's setting)."""
    counts = {"problems": 0, "bounds": 0, "optimal": 0, "energies": 0, "refused": 0} if counts is None else counts
    failures: list = []
    problem = make_problem(family, seed)
    rng = np.random.default_rng([99, FAMILIES.index(family), int(seed)])
    tag = (family, int(seed))
    if family in ("layer", "token", "conv"):
        _check_layer(problem, rng, counts, failures, tag, sample)
    else:
        counts["problems"] += 1
        _check_qubo(problem, rng, counts, failures, tag, sample)
    return failures
