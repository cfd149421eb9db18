"""Tasks, executors and aggregation behind ``python -m reference.compare``.

A task is one (problem, method, options, seed). Tasks are independent: each result depends only
on its inputs, so serial, process-parallel (``jobs > 1``) and Dask (``scheduler``) runs give the
same numbers (wall times aside). Finished tasks go to a :class:`~reference.compare.store.ResultStore`
as they complete when one is given, and tasks already in it are not run again.
"""

from __future__ import annotations

import hashlib
import sys
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from solvers import METHODS, ConvProblem, LayerProblem, solve
from solvers.certificates import CertificateError, check_bound, gap_interval

from .store import task_key
from ..validation import available_cpus

__all__ = ["Task", "problem_hash", "problem_kind", "make_tasks", "run_task", "run_tasks", "aggregate",
           "executor", "SchedulerError", "SCHEDULER_TIMEOUT", "CertificateError"]

#: Seconds to wait for a Dask scheduler before giving up with :class:`SchedulerError`.
SCHEDULER_TIMEOUT = 10


class SchedulerError(ValueError):
    """The Dask scheduler given cannot be reached."""


def problem_kind(problem) -> str:
    """``"layer"`` for a LayerProblem (reports ``loss``), ``"qubo"`` for a BQM (reports ``energy``)."""
    return "layer" if isinstance(problem, LayerProblem) else "qubo"


def problem_hash(problem) -> str:
    """SHA-256 of the problem's content (arrays in float64, grid), independent of its name."""
    h = hashlib.sha256()
    if problem_kind(problem) == "layer":
        g = problem.grid
        parts = [b"layer", problem.W, problem.G, g.scale, g.zero_point, np.array([g.qmin, g.qmax], dtype=np.float64)]
        if getattr(problem, "X", None) is not None:  # mini-batch methods read the samples themselves
            parts.append(problem.X)
    else:
        parts = [b"qubo", problem.P, problem.q, np.array([problem.c])]
    for p in parts:
        if isinstance(p, bytes):
            h.update(p)
        else:
            a = np.ascontiguousarray(p, dtype=np.float64)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _size(problem) -> int:
    return problem.max_row_vars if problem_kind(problem) == "layer" else problem.n


def _n_vars(problem) -> int:
    return problem.n_vars if problem_kind(problem) == "layer" else problem.n


@dataclass
class Task:
    problem: object
    name: str
    hash: str
    method: str
    options: dict
    seed: int | None

    @property
    def key(self) -> str:
        return task_key(self.hash, self.method, self.options, self.seed)


def _base_record(task: Task) -> dict:
    return {"problem": task.name, "problem_hash": task.hash, "method": task.method,
            "options": task.options, "seed": task.seed}


def make_tasks(problems, methods, seed, method_options=None):
    """Tasks for every applicable (problem, method), plus records for those skipped by a size limit.

    Layer methods do not apply to raw QUBOs and are left out for them. A QUBO method whose size
    check refuses the problem (``exhaustive`` above its limit) gets a ``skipped`` record.
    Problems of the same content and repeated methods are run once (results are keyed by content).
    Returns ``(tasks, skipped_records)``.
    """
    method_options = method_options or {}
    tasks, skipped = [], []
    hashes = set()
    for prob in problems:
        kind = problem_kind(prob)
        h = problem_hash(prob)
        if h in hashes:
            continue
        hashes.add(h)
        for name in dict.fromkeys(methods):
            m = METHODS[name]
            if kind == "qubo" and m.kind == "layer":
                continue
            opts = dict(method_options.get(name, {}))
            task_seed = seed if "seed" in m.options else None
            task = Task(prob, prob_name(prob), h, name, opts, task_seed)
            try:
                if m.kind == "qubo":
                    m.check_size(_size(prob), m.resolve_options(opts))
            except ValueError as exc:
                rec = _base_record(task)
                rec.update({"kind": kind, "value": None, "optimal": False, "lower_bound": None,
                            "seconds": 0.0, "status": f"skipped: {exc}"})
                skipped.append(rec)
                continue
            tasks.append(task)
    return tasks, skipped


def prob_name(problem) -> str:
    return getattr(problem, "name", None) or "qubo"


def run_task(task: Task) -> dict:
    """Solve one task; the record holds the recomputed value (loss or energy) and the facts.

    A method that refuses the problem at run time (ValueError, e.g. a factor that is not finite)
    gives a record with a null value and the status ``refused: <reason>``, like a size skip."""
    opts = dict(task.options)
    if task.seed is not None:
        opts["seed"] = task.seed
    rec = _base_record(task)
    try:
        r = solve(task.problem, task.method, **opts)
    except (ValueError, ArithmeticError) as exc:  # the method cannot handle this problem: say so
        rec.update({"kind": problem_kind(task.problem), "value": None, "optimal": False, "lower_bound": None,
                    "seconds": 0.0, "status": "refused: " + " ".join(str(exc).split())})
        return rec
    rec.update({"kind": problem_kind(task.problem), "value": r.energy, "optimal": r.optimal,
                "lower_bound": r.lower_bound, "seconds": r.seconds, "status": r.status})
    return rec


def _run_chunk(chunk):
    return [(i, run_task(t)) for i, t in chunk]


class _SerialExecutor(Executor):
    """Runs each submitted call at once, in this process (``jobs=1``): the same loop as a pool."""

    def submit(self, fn, /, *args, **kwargs):
        fut = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # delivered by fut.result(), as a pool would
            fut.set_exception(exc)
        return fut


#: The thread limit of each worker's BLAS, set by :func:`_limit_blas` (kept alive for the process).
_BLAS_LIMIT = None


def _limit_blas(threads: int) -> None:
    """Worker initializer: cap BLAS/OpenMP threads so jobs x threads does not oversubscribe the cores."""
    global _BLAS_LIMIT
    import scipy.linalg  # noqa: F401  (load every BLAS the solvers use before capping them)
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=threads)


@contextmanager
def executor(jobs: int, scheduler: str | None):
    """``(executor, workers)``: a ``concurrent.futures.Executor`` for the tasks and how many run at once.

    ``scheduler`` (a Dask address) gives ``distributed.Client.get_executor()``; ``jobs > 1`` a process
    pool whose workers each get ``cores // jobs`` BLAS threads; otherwise the calls run in this process.
    """
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                "--scheduler needs the optional package 'distributed' (pip install 'qubo-reference[dask]')"
            ) from None
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise SchedulerError(f"cannot connect to {scheduler!r} within {SCHEDULER_TIMEOUT} s "
                                 f"({type(exc).__name__}: {exc})") from None
        with client:
            workers = max(1, len(client.scheduler_info().get("workers", {})), jobs)
            with client.get_executor(pure=False) as ex:
                yield ex, workers
    elif jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_limit_blas,
                                 initargs=(max(1, available_cpus() // jobs),)) as ex:
            yield ex, jobs
    else:
        yield _SerialExecutor(), 1


#: Methods whose tasks a pool starts first, slowest first (on wide rows; docs/performance.md,
#: "Default budgets by width"): a slow task started last would leave the other workers idle at
#: the end. The order never changes a result (each record goes back to its task's index).
SLOW_FIRST = ("lns", "tree", "anneal", "adaround")


def _submission_order(todo):
    """``todo`` (pairs ``(index, task)``) with the tasks of :data:`SLOW_FIRST` methods first, in
    that order, then the others; within each group the widest problems first, then as given."""
    rank = {m: i for i, m in enumerate(SLOW_FIRST)}
    return sorted(todo, key=lambda it: (rank.get(it[1].method, len(rank)), -_size(it[1].problem), it[0]))


def _chunks(items, n_chunks):
    size = max(1, -(-len(items) // n_chunks))
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_tasks(tasks, jobs: int = 1, scheduler: str | None = None, store=None, progress: bool = False):
    """Run ``tasks``; return their records in task order.

    Tasks found in ``store`` are not run. New records are put in the store as they complete.
    ``jobs > 1`` uses a process pool; ``scheduler`` (an address) a Dask distributed cluster; both
    through the same ``concurrent.futures`` loop as a serial run, so the records are the same.
    ``progress`` shows a bar with the time left on stderr (tqdm).
    """
    records: list = [None] * len(tasks)
    todo = []
    for i, t in enumerate(tasks):
        hit = store.get(t.key) if store is not None else None
        if hit is not None:
            records[i] = hit
        else:
            todo.append((i, t))
    if not todo:
        return records
    with executor(jobs, scheduler) as (ex, workers), \
            tqdm(total=len(todo), disable=not progress, file=sys.stderr, unit="task", smoothing=0) as bar:
        # in this process: one task at a time, each stored as it finishes; otherwise about 8 chunks
        # per worker, all submitted at once
        serial = isinstance(ex, _SerialExecutor)
        chunks = _chunks(todo if serial else _submission_order(todo), len(todo) if serial else 8 * workers)
        window = 1 if serial else len(chunks)
        waiting, pending = iter(chunks), set()
        try:
            while True:
                for chunk in waiting:
                    pending.add(ex.submit(_run_chunk, chunk))
                    if len(pending) >= window:
                        break
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    for i, rec in fut.result():
                        records[i] = rec
                        if store is not None:
                            store.put(tasks[i].key, rec)
                        bar.update()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return records


def _gap(value, optimum):
    if value is None or optimum is None:
        return None
    if optimum == 0:
        return 0.0 if value == 0 else None
    return (value - optimum) / abs(optimum)


def _certifies(rec) -> bool:
    m = METHODS.get(rec["method"])
    return m is not None and m.certifies_bound


def _certificates(prob, recs):
    """``(optimum, lower)``: the lowest value that a certifying method proved optimal (None if
    none did), and the largest lower bound the records prove: each certifying method's bound
    (its value when it proved optimality), and 0 for a layer's local loss (``e^T G e`` with ``G``
    positive semidefinite, checked when the layer is built, so never negative); None when there
    is none. Only methods registered with ``certifies_bound`` count. Every such bound is checked
    against every value found: one above a value (beyond float64 rounding,
    :func:`solvers.certificates.check_bound`) raises :class:`CertificateError` naming both methods."""
    found = [r for r in recs if r["value"] is not None and np.isfinite(r["value"])]
    claims = []  # (method, bound)
    for r in recs:
        if not _certifies(r):
            continue
        if r["optimal"] and r["value"] is not None:
            claims.append((r["method"], float(r["value"]), True))
        if r["lower_bound"] is not None and np.isfinite(r["lower_bound"]):
            claims.append((r["method"], float(r["lower_bound"]), False))
    for method, bound, opt in claims:
        for r in found:
            what = "optimum claimed" if opt else "lower bound"
            check_bound(bound, float(r["value"]), prob,
                        f"{prob_name(prob)}: the {what} by {method!r} against the value of {r['method']!r}")
    proven = [b for _, b, opt in claims if opt]
    bounds = [b for _, b, _ in claims]
    if type(prob) in (LayerProblem, ConvProblem):
        bounds.append(0.0)
    return (min(proven) if proven else None), (max(bounds) if bounds else None)


def aggregate(problems, records, methods) -> list[dict]:
    """Group records by problem (in the problems' order) and add each method's gap.

    ``gap = (value - optimum) / |optimum|`` against the best proven-optimal value among that
    problem's records; ``None`` when none is proven. Without a proven optimum each result gets
    ``[gap_low, gap_high]``, the range of that gap over every optimum ``o`` the records allow,
    ``lower_bound <= o <= best_known`` (:func:`solvers.certificates.gap_interval`; ``best_known``
    the lowest value any method found, ``lower_bound`` the problem's certified bound); with a
    proven optimum both equal ``gap``. Optima and bounds come only from methods registered with
    ``certifies_bound``, and each is checked against every value found (a bound above one is a
    :class:`CertificateError`). Layer problems report ``loss``, raw QUBOs ``energy``. Records are
    matched by the problem's content hash alone (the name a record was stored under is a label;
    the table shows the problem's current name), one per method.
    """
    out = []
    by_hash: dict = {}
    for rec in records:
        by_hash.setdefault(rec["problem_hash"], {}).setdefault(rec["method"], rec)
    for prob in problems:
        kind = problem_kind(prob)
        order = {m: i for i, m in enumerate(methods)}
        recs = sorted(by_hash.get(problem_hash(prob), {}).values(), key=lambda r: order.get(r["method"], 1 << 30))
        optimum, lower = _certificates(prob, recs)
        found = [r for r in recs if r["value"] is not None and np.isfinite(r["value"])]
        best = min(found, key=lambda r: r["value"]) if found else None
        best_known = None if best is None else best["value"]
        value_key = "loss" if kind == "layer" else "energy"
        results = []
        for r in recs:
            gap = _gap(r["value"], optimum)
            if optimum is not None:
                low = high = gap
            elif r["value"] is None or best_known is None:
                low = high = None
            else:
                low, high = gap_interval(r["value"], best_known, lower)
            results.append({"method": r["method"], value_key: r["value"], "optimal": r["optimal"],
                            "gap": gap, "gap_low": low, "gap_high": high, "seconds": r["seconds"],
                            "status": r["status"], "lower_bound": r["lower_bound"]})
        rec = {"name": prob_name(prob), "kind": kind, "n_rows": prob.n_rows if kind == "layer" else 1,
               "n_vars": _n_vars(prob), "max_row_vars": _size(prob), "optimum": optimum,
               "best_known": best_known, "best_method": None if best is None else best["method"],
               "lower_bound": lower, "results": results}
        out.append(rec)
    return out
