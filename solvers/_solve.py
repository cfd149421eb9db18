"""``solve(problem, method, **options)``: the one front door to every solver."""

from __future__ import annotations

import time

import numpy as np

from reference.validation import available_cpus, check_positive_int

from ._registry import METHODS, Method, Outcome, at_width, method_names
from .anneal import sampler_method
from .bqm import BQM
from .certificates import check_bound
from .layer import LayerProblem
from .result import Result
from .sparse.problem import SparseProblem

__all__ = ["solve"]


def _resolve(method) -> Method:
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {method_names()} or pass a dimod sampler")
        return METHODS[method]
    return sampler_method(method)


def _as_problem(problem):
    if isinstance(problem, (BQM, LayerProblem, SparseProblem)):
        return problem
    try:
        import dimod
    except ImportError:  # pragma: no cover - dimod is a runtime dependency
        dimod = None
    if dimod is not None and isinstance(problem, dimod.BinaryQuadraticModel):
        return BQM.from_dimod(problem)
    raise ValueError(
        f"problem must be a solvers.BQM, a solvers.LayerProblem, a solvers.SparseProblem or a "
        f"dimod.BinaryQuadraticModel, "
        f"found {type(problem).__name__}"
    )


def _row_seeds(seed, n_rows: int):
    if seed is None:
        return [None] * n_rows
    children = np.random.SeedSequence(int(seed)).spawn(n_rows)
    return [int(ch.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF) for ch in children]


def _run_row(name: str, bqm: BQM, row_opts: dict) -> Outcome:
    """One row in a worker process (the method is looked up by name there)."""
    return METHODS[name].run(bqm, **row_opts)


def _row_outcomes(problem: LayerProblem, m: Method, opts: dict, workers: int) -> tuple[list, list]:
    """``(jobs, outcomes)``: each row with its options, and its Outcome (None for a row without
    variables), in parallel processes when ``workers > 1``. Every row gets the same options and
    seed whatever the number of workers, so results depend on the workers only through
    wall-clock limits (``time_limit``)."""
    seeds = _row_seeds(opts.get("seed"), problem.n_rows) if "seed" in opts else None
    jobs = []
    for k in range(problem.n_rows):
        bqm = problem.row_bqm(k)
        row_opts = at_width(opts, bqm.n)  # width-dependent defaults: each row's own width
        if seeds is not None:
            row_opts["seed"] = seeds[k]
        jobs.append((bqm, row_opts))
    todo = [k for k, (bqm, _) in enumerate(jobs) if bqm.n > 0]
    outs = [None] * len(jobs)
    if workers > 1 and len(todo) > 1 and METHODS.get(m.name) is m:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo))) as pool:  # as reference.compare.harness
            futures = {k: pool.submit(_run_row, m.name, *jobs[k]) for k in todo}
            for k, fut in futures.items():
                outs[k] = fut.result()
    else:
        for k in todo:
            outs[k] = m.run(jobs[k][0], **jobs[k][1])
    return jobs, outs


def _per_row(problem: LayerProblem, m: Method, opts: dict, workers: int = 1) -> Outcome:
    states, statuses, bounds = [], [], []
    optimal = True
    jobs, outs = _row_outcomes(problem, m, opts, workers)
    for (bqm, _), out in zip(jobs, outs):
        if out is None:
            states.append(np.zeros(0, dtype=np.int8))
            statuses.append("optimal")
            bounds.append(bqm.c)
            continue
        states.append(out.x)
        statuses.append(out.status)
        optimal &= out.optimal
        e_row = bqm.energy(out.x)
        lb = e_row if out.optimal else out.lower_bound
        if lb is not None:  # a row's bound above its own row's energy is a wrong certificate
            check_bound(float(lb), e_row, bqm, f"method {m.name!r}, row {len(states) - 1}")
        # a row's loss e^T G e (Eq. 20, G positive semidefinite) is never negative: a negative
        # bound is raised to 0, which is still below the row's optimum
        bounds.append(None if lb is None else max(float(lb), 0.0))
    lower = None if any(b is None for b in bounds) else float(np.sum(bounds))
    status = "optimal" if optimal else "best found"
    return Outcome(x=problem.assemble(states), optimal=optimal, lower_bound=lower, status=status,
                   info={"row_status": statuses, "row_lower_bounds": bounds})


def _solve_sparse(problem: SparseProblem, m: Method, opts: dict) -> Result:
    """Codes of a sparse problem; ``energy`` is ``sum_i F(a_i)`` recomputed by the problem in float64."""
    t0 = time.perf_counter()
    out = m.run(problem, **opts)
    seconds = time.perf_counter() - t0
    A = np.asarray(out.x, dtype=np.float64).reshape(problem.shape)
    rows = problem.objective(A, threads=opts.get("threads"))
    energy = float(np.sum(rows))
    if not np.isfinite(energy):  # never report a NaN or an overflow, let alone call it optimal
        raise ValueError(f"method {m.name!r}: the objective of its codes is {energy} in float64; the problem's "
                         "values are too large for it to be computed")
    converged = bool(out.info.get("converged", out.optimal))
    status = "optimal" if out.optimal else (out.status or ("converged" if converged else "iteration limit"))
    lower = energy if out.optimal else out.lower_bound
    if lower is not None:  # an objective of sums of squares and penalties: its own size is the scale
        check_bound(float(lower), energy, abs(energy), f"method {m.name!r}")
    info = {"objective": float(rows[0]) if problem.single else rows, "penalty": problem.penalty,
            "lam": problem.lam, **out.info}
    return Result(x=A[0] if problem.single else A, energy=energy, optimal=bool(out.optimal),
                  lower_bound=None if lower is None else float(min(lower, energy)), seconds=seconds,
                  method=m.name, status=status, info=info)


def solve(problem, method="exhaustive", *, workers=1, **options) -> Result:
    """Minimise a rounding problem, a QUBO or a sparse coding problem with the named method.

    Parameters
    ----------
    problem : LayerProblem, BQM, dimod.BinaryQuadraticModel or SparseProblem
        A layer is solved row by row by QUBO methods (rows are independent under Eq. 20);
        layer methods (``nearest``, ``floor``, ``ceil``, ``stochastic``) act on it whole.
        A :class:`SparseProblem` takes the sparse coders (``method_names(kind="sparse")``).
    method : str or dimod.Sampler, default="exhaustive"
        A name from :func:`solvers.method_names`, or any dimod sampler object.
    workers : int or None, default=1
        Processes solving the rows of a layer in parallel (QUBO methods named by a string;
        None: one per core). The result is the same for any number of workers (each row gets
        the same options and seed); only a ``time_limit`` makes it depend on the machine.
    **options
        The method's own options; an unknown one is an error listing those it accepts.

    Returns
    -------
    Result
        ``energy`` is recomputed by the problem in float64 (the local loss for a layer; for a
        sparse problem the total objective ``sum_i F(a_i)``, with ``x`` the codes, float64 of
        shape (N, K), and per-signal details in ``info``: ``objective``, ``iterations``, ...).
    """
    if workers is None:
        workers = available_cpus()
    workers = check_positive_int(workers, "workers")
    problem = _as_problem(problem)
    m = _resolve(method)
    if (m.kind == "sparse") != isinstance(problem, SparseProblem):
        if m.kind == "sparse":
            raise ValueError(f"method {m.name!r} codes a solvers.SparseProblem, not a {type(problem).__name__}; "
                             f"for it use one of {method_names('qubo') + method_names('layer')}")
        raise ValueError(f"method {m.name!r} does not code a SparseProblem; use one of {method_names('sparse')}")
    opts = m.resolve_options(options)
    if isinstance(problem, SparseProblem):
        return _solve_sparse(problem, m, opts)
    if isinstance(problem, LayerProblem):
        if m.kind == "qubo":
            m.check_size(problem.max_row_vars, opts)
            run = lambda: _per_row(problem, m, opts, workers)  # noqa: E731
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
            run = lambda: m.run(problem, **at_width(opts, problem.n))  # noqa: E731
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
        # a bound above the method's own recomputed energy beyond float64 rounding is a wrong
        # certificate (an error); within rounding the bound is reported as at most the energy
        check_bound(float(lower), energy, problem, f"method {m.name!r}")
        lower = float(min(lower, energy))
    status = out.status if not out.optimal else "optimal"
    return Result(x=x, energy=energy, optimal=bool(out.optimal), lower_bound=lower, seconds=seconds,
                  method=m.name, status=status, info=out.info)
