"""``solve(problem, method, **options)``: the one front door to every solver."""

from __future__ import annotations

import time

import numpy as np

from ._registry import METHODS, Method, Outcome, method_names
from .anneal import sampler_method
from .bqm import BQM
from .layer import LayerProblem
from .result import Result

__all__ = ["solve"]


def _resolve(method) -> Method:
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {method_names()} or pass a dimod sampler")
        return METHODS[method]
    return sampler_method(method)


def _as_problem(problem):
    if isinstance(problem, (BQM, LayerProblem)):
        return problem
    try:
        import dimod
    except ImportError:  # pragma: no cover - dimod is a runtime dependency
        dimod = None
    if dimod is not None and isinstance(problem, dimod.BinaryQuadraticModel):
        return BQM.from_dimod(problem)
    raise ValueError(
        f"problem must be a solvers.BQM, a solvers.LayerProblem or a dimod.BinaryQuadraticModel, "
        f"found {type(problem).__name__}"
    )


def _row_seeds(seed, n_rows: int):
    if seed is None:
        return [None] * n_rows
    children = np.random.SeedSequence(int(seed)).spawn(n_rows)
    return [int(ch.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF) for ch in children]


def _per_row(problem: LayerProblem, m: Method, opts: dict) -> Outcome:
    seeds = _row_seeds(opts.get("seed"), problem.n_rows) if "seed" in opts else None
    states, statuses, bounds = [], [], []
    optimal = True
    for k in range(problem.n_rows):
        bqm = problem.row_bqm(k)
        if bqm.n == 0:
            states.append(np.zeros(0, dtype=np.int8))
            statuses.append("optimal")
            bounds.append(bqm.c)
            continue
        row_opts = dict(opts)
        if seeds is not None:
            row_opts["seed"] = seeds[k]
        out = m.run(bqm, **row_opts)
        states.append(out.x)
        statuses.append(out.status)
        optimal &= out.optimal
        lb = bqm.energy(out.x) if out.optimal else out.lower_bound
        bounds.append(lb)
    lower = None if any(b is None for b in bounds) else float(np.sum(bounds))
    status = "optimal" if optimal else "best found"
    return Outcome(x=problem.assemble(states), optimal=optimal, lower_bound=lower, status=status,
                   info={"row_status": statuses, "row_lower_bounds": bounds})


def solve(problem, method="exhaustive", **options) -> Result:
    """Minimise a rounding problem or a QUBO with the named method.

    Parameters
    ----------
    problem : LayerProblem, BQM or dimod.BinaryQuadraticModel
        A layer is solved row by row by QUBO methods (rows are independent under Eq. 20);
        layer methods (``nearest``, ``floor``, ``ceil``, ``stochastic``) act on it whole.
    method : str or dimod.Sampler, default="exhaustive"
        A name from :func:`solvers.method_names`, or any dimod sampler object.
    **options
        The method's own options; an unknown one is an error listing those it accepts.

    Returns
    -------
    Result
        ``energy`` is recomputed by the problem in float64 (the local loss for a layer).
    """
    problem = _as_problem(problem)
    m = _resolve(method)
    opts = m.resolve_options(options)
    if isinstance(problem, LayerProblem):
        if m.kind == "qubo":
            m.check_size(problem.max_row_vars, opts)
            run = lambda: _per_row(problem, m, opts)  # noqa: E731
        else:
            run = lambda: m.run(problem, **opts)  # noqa: E731
        energy_of = problem.loss
    else:
        if m.kind == "layer":
            raise ValueError(
                f"method {m.name!r} rounds the weights of a LayerProblem; for a QUBO use one of "
                f"{method_names('qubo')}"
            )
        m.check_size(problem.n, opts)
        if problem.n == 0:  # no variable: the one (empty) state is optimal, whatever the method
            run = lambda: Outcome(x=np.zeros(0, dtype=np.int8), optimal=True, status="optimal")  # noqa: E731
        else:
            run = lambda: m.run(problem, **opts)  # noqa: E731
        energy_of = problem.energy
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    x = np.asarray(out.x, dtype=np.int8)
    energy = float(energy_of(x))
    if not np.isfinite(energy):  # never report a NaN or an overflow, let alone call it optimal
        raise ValueError(f"method {m.name!r}: the energy of its state is {energy} in float64; the problem's "
                         "coefficients are too large for its energies to be computed")
    lower = energy if out.optimal else out.lower_bound
    if lower is not None:
        lower = float(min(lower, energy))
    status = out.status if not out.optimal else "optimal"
    return Result(x=x, energy=energy, optimal=bool(out.optimal), lower_bound=lower, seconds=seconds,
                  method=m.name, status=status, info=out.info)
