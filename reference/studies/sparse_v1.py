"""The V1 study's four claims (Rentzeperis et al. 2023) on dictionaries learned at scale.

The dictionaries come from :mod:`reference.studies.sparse_scale` (one per penalty and pool size, read
from its checkpoint folder, optionally at an earlier stage ``batches``). For each one:

1. *Claim 1, pool against pool* (``curve``, ``headline``, ``pool`` tables): relative error
   ``mean ||x - Phi a||^2 / mean ||x||^2`` against mean active units on held-out patches, FISTA
   at multiples of the learning lambda, plus one point at the paper notebook's lambda
   (:data:`PAPER_LAM`, converted as in docs/sparse.md). ``headline``: at one pool size, the
   units l1 needs for the others' error and its error at their sparsity
   (:func:`reference.studies.sparse_study.headline_rows`). ``pool``: each penalty's error at
   ``level`` active units against pool size, and the pool l1 needs to reach each other
   penalty's error at its smallest pool (log-log interpolation; a bound when no l1 pool does).
2. *Claim 2, orientation selectivity* (``tuning``): responses to drifting gratings
   (:mod:`reference.gratings`), as sparse codes at the learning lambda and as linear filters
   (:mod:`reference.studies.v1_fields`); the fraction of oriented units (``OSI >= 1/3``), the median OSI,
   silent units.
3. *Claim 3, receptive-field diversity* (``shape``): Gabor fits (:mod:`reference.gabor`),
   Ringach's ``n_x, n_y``, subregions, the fraction of Gabor-like atoms (``r2 >= 0.5``),
   beside the mean active units the dictionary was learned at (the sparsity they are
   compared at).
4. *Optimality* (``exact``): on held-out patches, the l0 objective of each penalty's codes
   against the exact l0 optimum over the whole learned dictionary, at ``lambda = ||x||^2 / 5.9``
   per patch, where supports of three or more atoms cannot beat the empty code, so that
   enumerating the pairs proves the optimum (:func:`solvers.sparse.exact_l0`);
   l1 and l1/2 at the best of :data:`_TUNE` times the lambda whose threshold matches l0's,
   raw and debiased (``lam_mult`` in the table). ``sub_exact``: the
   same at lambda 0.1 (codes of several atoms) on the 16 atoms each dictionary's own codes use
   most, where all 2^16 supports are enumerated (:func:`reference.studies.sparse_study.gap_rows`).

The whole study, learning included (resumable; every dictionary's learning and analysis is an
independent job for ``--jobs`` processes or a Dask ``--scheduler``)::

    python -m reference.studies.sparse_v1 --study DIR --jobs 2 --out docs/figures/sparse --json v1.json

It also learns CEL0, l1/2 and l1 at matched sparsity (:data:`reference.studies.sparse_scale.MATCHED_LAM`,
for claim 3) and analyses the copies of the 500-unit dictionaries kept after 400 and 1,000
batches (table ``scale``: claim 1 against the scale of learning). ``--dicts DIR`` analyses
dictionaries learned by :mod:`reference.studies.sparse_scale`; ``--quick`` runs the whole study on 8x8
patches and small pools (seconds).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from solvers.sparse import code, exact_l0, least_squares_on_supports

from ..gratings import grating_set
from ..patches import PatchStream
from ..sparse import objective
from ..compare.harness import executor
from .sparse_scale import (LEARN_LAM, PENALTY_ORDER, LearnTask, load_learned, matched_tasks, paper_tasks, run_learning,
                           whitened_images)
from .progress import progress_bar
from .sparse_study import gap_rows, headline_rows, interp
from .v1_fields import FREQS, THETAS, shape_row, tuning_rows

__all__ = ["PAPER_LAM", "V1Settings", "analyse", "format_tables", "merge", "pool_rows", "precision_rows",
           "scale_rows", "study"]

#: The paper notebook's lambdas in this project's convention (docs/sparse.md, "Converting lambda").
PAPER_LAM = {"l0": 6.5e-3, "cel0": 0.45, "l1/2": 6.5e-2, "l1": 0.41}


def _config(quick):
    if quick:
        return dict(test=100, sweep=(0.25, 1.0, 4.0), exact_N=30, level=4.0,
                    phases=4, fista=dict(max_iter=500, tol=1e-4), sub_atoms=10)
    return dict(test=500, sweep=(0.25, 0.5, 1.0, 2.0, 4.0), exact_N=200, level=16.0,
                phases=8, fista=dict(max_iter=1000, tol=1e-4, dtype="float32"), sub_atoms=16)


def _curve(Phi, X, pen, K, lams, fista, paper=False):
    xx = np.mean(np.sum(X * X, axis=1))
    rows = []
    for lam in lams:
        r = code(Phi, X, pen, lam, "fista", **fista)
        R = X - r.x @ Phi.T
        rows.append({"table": "curve", "penalty": pen, "K": K, "n": X.shape[1], "lam": float(lam),
                     "paper_lam": paper, "mean_l0": float(np.mean(np.count_nonzero(r.x, axis=1))),
                     "rel_error": float(np.mean(np.sum(R * R, axis=1)) / xx), "converged": r.info["converged"],
                     "seconds": r.seconds})
    return rows


def pool_rows(curves, level: float) -> list[dict]:
    """Error at ``level`` active units per (penalty, K), and the pool l1 needs for each other's error.

    ``curves``: rows with ``penalty``, ``K``, ``mean_l0``, ``rel_error`` (paper-lambda points are
    left out). For each penalty P other than l1, at P's smallest pool K0 with error e: ``l1_pool``
    is the pool at which l1's error at ``level`` units equals e (log-log interpolation between
    l1's pools), or ``> max l1 pool`` when l1's largest pool stays above e (``l1_pool_bound``).
    """
    curves = [c for c in curves if not c.get("paper_lam")]
    err = {}
    for pen in PENALTY_ORDER:
        for K in sorted({c["K"] for c in curves if c["penalty"] == pen}):
            pts = [c for c in curves if c["penalty"] == pen and c["K"] == K]
            err[(pen, K)] = interp(level, [c["mean_l0"] for c in pts], [c["rel_error"] for c in pts])
    rows = [{"table": "pool", "penalty": p, "K": K, "level": level, "error_at_level": e} for (p, K), e in err.items()]
    l1 = sorted((K, e) for (p, K), e in err.items() if p == "l1" and np.isfinite(e))
    for pen in PENALTY_ORDER[:-1]:
        mine = sorted((K, e) for (p, K), e in err.items() if p == pen and np.isfinite(e))
        if not mine or not l1:
            continue
        K0, e0 = mine[0]
        Ks, es = np.array([k for k, _ in l1], float), np.array([e for _, e in l1])
        if es.min() > e0:
            pool, bound = float(Ks.max()), ">"
        elif es[0] <= e0:
            pool, bound = float(Ks[0]), "<="
        else:
            i = int(np.argmax(es <= e0))  # first l1 pool at or below e0
            t = (np.log(e0) - np.log(es[i - 1])) / (np.log(es[i]) - np.log(es[i - 1]))
            pool, bound = float(np.exp(np.log(Ks[i - 1]) + t * (np.log(Ks[i]) - np.log(Ks[i - 1])))), "="
        rows.append({"table": "pool_match", "versus": pen, "K_other": K0, "level": level, "error_other": e0,
                     "l1_errors": {int(k): float(e) for k, e in l1}, "l1_pool": pool, "l1_pool_bound": bound,
                     "pool_ratio": pool / K0})
    return rows


#: Multiples of the threshold-matched lambda tried for l1 and l1/2 against exact l0 (the best is kept).
_TUNE = (0.5, 0.75, 1.0, 1.5)

#: Multiples of the l0 lambda tried for l1 and l1/2 on the 16-atom sub-dictionaries (covering the
#: threshold-matched 4.5x for l1 and 1.6x for l1/2 at lambda 0.1).
_SUB_TUNE = (1.0, 1.6, 3.0, 4.5, 7.0)


def _matched_lambda(pen, lam):
    """The ``pen`` lambda whose prox zeroes the same inputs as hard thresholding at l0's ``lam``.

    Hard thresholding zeroes ``|u| <= sqrt(2 lam)`` (unit step); soft thresholding ``|u| <= t``;
    half thresholding ``|u| <= 1.5 t^(2/3)`` (docs/sparse.md, proximal operators).
    """
    h = np.sqrt(2.0 * lam)
    return {"l0": lam, "cel0": lam, "l1": h, "l1/2": (h / 1.5) ** 1.5}[pen]


def _exact_rows(Phi, X, pen_dict, K, tune):
    """l0 objective of each coder against the exact optimum (supports of <= 2 atoms proven enough).

    Each patch is scaled to ``||x||^2 = 5.9`` and ``lam = 1`` (the l0 problem at
    ``lam = ||x||^2 / 5.9`` for the original patch, up to the factor ``||x||^2 / 5.9`` on the
    objective, so relative gaps are unchanged); then ``floor(||x||^2 / (2 lam)) = 2``: a support
    of three or more atoms costs more than the empty code, and enumerating every support of up
    to two atoms (:func:`solvers.sparse.exact_l0`) proves the optimum.
    """
    X = X * np.sqrt(5.9 / np.sum(X * X, axis=1))[:, None]
    xx = np.sum(X * X, axis=1)
    lam = 1.0
    t0 = time.perf_counter()
    f_star, sup, _ = exact_l0(Phi.T @ Phi, X @ Phi, xx, lam, 2)
    exact_seconds = time.perf_counter() - t0
    if not np.allclose(objective(Phi, X, least_squares_on_supports(Phi, X, sup), "l0", lam), f_star, rtol=1e-9, atol=1e-9):
        raise RuntimeError("exact l0: the enumerated optimum disagrees with its recomputed objective")
    rows = []
    for pen in PENALTY_ORDER:
        mults = (1.0,) if pen in ("l0", "cel0") else tune
        best = None
        for m in mults:
            A = code(Phi, X, pen, _matched_lambda(pen, lam) * m, "fista", max_iter=5000, tol=1e-8).x
            fr, fd = objective(Phi, X, A, "l0", lam), objective(Phi, X, least_squares_on_supports(Phi, X, A != 0), "l0", lam)
            if best is None or np.mean(fd) < np.mean(best[2]):
                best = (m, fr, fd, A)
        m, fr, fd, A = best
        for variant, f in (("raw", fr), ("debiased", fd)):
            rel = (f - f_star) / f_star
            rows.append({"table": "exact", "dictionary": pen_dict, "K": K, "coder": pen, "variant": variant,
                         "lam_over_energy": 1 / 5.9, "lam_mult": m, "matched_lam": _matched_lambda(pen, lam),
                         "mean_rel_gap": float(np.mean(rel)), "max_rel_gap": float(np.max(rel)),
                         "frac_optimal": float(np.mean(f <= f_star * (1 + 1e-9) + 1e-12)),
                         "mean_l0": float(np.mean(np.count_nonzero(A, axis=1))),
                         "exact_mean_l0": float(np.mean(sup.sum(axis=1))), "exact_seconds": exact_seconds,
                         "N": X.shape[0]})
    return rows


def _sub_exact_rows(Phi, X, pen, K, tune, n_atoms=16, lam=0.1):
    """:func:`reference.studies.sparse_study.gap_rows` on the ``n_atoms`` atoms the penalty's own codes use most.

    A proven optimum at a realistic lambda (codes of several atoms), on a sub-dictionary.
    """
    use = np.count_nonzero(code(Phi, X, pen, LEARN_LAM[pen], "fista", max_iter=1000, tol=1e-4).x, axis=0)
    top = np.sort(np.argsort(-use, kind="stable")[:n_atoms])
    rows = gap_rows(Phi[:, top], X, lam, tune, 0)
    for r in rows:
        r.update(table="sub_exact", dictionary=pen, K_dictionary=K)
    return rows


#: Analysis data per process: (size, test patches, exact patches, gratings), built once per key.
_DATA: dict = {}


def _data(cfg, size, seed, images):
    key = (size, cfg["test"], cfg["exact_N"], cfg["phases"], seed, images)
    if key not in _DATA:
        X = PatchStream(whitened_images(images), cfg["test"], size, seed=(seed, 4),
                        block=cfg["test"]).rows(0, cfg["test"])
        _DATA[key] = (X, X[:cfg["exact_N"]], grating_set(size, THETAS, FREQS, cfg["phases"]))
    return _DATA[key]


def _analyse_unit(task, folder, batches, depth, dict_set, cfg, seed, images) -> dict:
    """One dictionary's share of the analysis, run in any process.

    ``depth``: ``"curves"`` (claim 1: error against sparsity, and the notebook's lambda),
    ``"full"`` (also the tolerance check, gratings, Gabor fits and, up to 1,000 units, exact l0),
    ``"shape"`` (gratings and Gabor fits, and the held-out sparsity at the learning lambda).
    Every row carries ``set`` (``dict_set``) and the dictionary's ``batches``.
    """
    c0 = time.process_time()
    try:
        state = load_learned(task, folder, batches)
    except ValueError as exc:
        return {"skip": f"skip {task.name}: {exc}"}
    X, Xe, stim = _data(cfg, task.size, seed, images)
    Phi, hist = state["Phi"], state["history"]
    tail = hist[-min(100, len(hist)):]
    learn_l0 = float(np.mean([h["l0"] for h in tail]))
    pen, K = task.penalty, task.K
    rows = [{"table": "dictionary", "penalty": pen, "K": K, "lam": task.lam, "batches": len(hist),
             "presentations": len(hist) * task.batch_size, "dtype": task.dtype,
             "learn_error": float(np.mean([h["error"] for h in tail])), "learn_l0": learn_l0}]
    out = {"key": (pen, K), "Phi": Phi}
    if depth in ("curves", "full"):
        rows += _curve(Phi, X, pen, K, [task.lam * m for m in cfg["sweep"]], cfg["fista"])
        rows += _curve(Phi, X, pen, K, [PAPER_LAM[pen]], cfg["fista"], paper=True)
    else:
        rows += _curve(Phi, X, pen, K, [task.lam], cfg["fista"])
    if depth == "full":
        tight = _curve(Phi, X, pen, K, [task.lam], dict(max_iter=5000, tol=1e-6))[0]
        loose = next(r for r in rows[::-1] if r["table"] == "curve" and r["lam"] == task.lam and not r["paper_lam"])
        rows.append({"table": "curve_check", "penalty": pen, "K": K, "lam": task.lam,
                     "rel_error": loose["rel_error"], "rel_error_tight": tight["rel_error"],
                     "mean_l0": loose["mean_l0"], "mean_l0_tight": tight["mean_l0"]})
    if depth in ("full", "shape"):
        tu = tuning_rows(Phi, pen, K, stim, cfg["fista"], task.lam)
        row, F = shape_row(Phi, pen, K, learn_l0)
        rows += [tu["code_row"], tu["linear_row"], row]
        out.update(tuning=tu, shape=F)
    if depth == "full" and K <= 1000:
        rows += _exact_rows(Phi, Xe, pen, K, _TUNE)
        rows += _sub_exact_rows(Phi, Xe, pen, K, _SUB_TUNE, n_atoms=cfg["sub_atoms"])
    for r in rows:
        r.update(set=dict_set, batches=len(hist), presentations=len(hist) * task.batch_size)
    out.update(rows=rows, cpu_seconds=time.process_time() - c0)
    return out


def _main_rows(rows, table):
    return [r for r in rows if r["table"] == table and r.get("set", "tuned") == "tuned"]


@dataclass(frozen=True)
class V1Settings:
    """How :func:`analyse` and :func:`study` run.

    ``batches``: analyse the copies kept after this many batches (None: the final dictionaries);
    ``quick``: 8x8 patches and small pools; ``out_dir``: where the figures go (None: none);
    ``images``: a folder of the user's images (None: scikit-image's); ``curves_only``: claim 1
    alone; ``sweep``: multiples of the learning lambda for the curves (None: the default);
    ``jobs`` processes or a Dask ``scheduler`` run the dictionaries, with the same rows;
    ``progress``: a bar of the dictionaries analysed on stderr.
    """

    batches: int | None = None
    quick: bool = False
    out_dir: str | None = None
    seed: int = 0
    images: str | None = None
    curves_only: bool = False
    sweep: tuple | None = None
    jobs: int = 1
    scheduler: str | None = None
    progress: bool = False


def analyse(folder, settings: V1Settings | None = None, tasks=None, matched=(), scale=(), log=None) -> list[dict]:
    """Rows of every table (key ``"table"``) for the dictionaries in ``folder``; figures in ``settings.out_dir``.

    ``tasks`` (default :func:`reference.studies.sparse_scale.paper_tasks`) are analysed in full (claims 1
    to 4; ``settings.curves_only``: claim 1 alone, e.g. for the larger pools; such runs combine with a
    full one through :func:`merge`); ``matched`` tasks (dictionaries learned at matched
    sparsity, :func:`reference.studies.sparse_scale.matched_tasks`) get gratings and Gabor fits (claims
    2 and 3); for every count in ``scale`` the smallest pool's copies kept after that many
    batches get the claim-1 curves (table ``scale``). Each dictionary's analysis is a separate
    job. ``log`` gets one line of text per dictionary.
    """
    s = settings or V1Settings()
    say = log or (lambda m: None)
    cfg = _config(s.quick)
    if s.sweep is not None:
        cfg["sweep"] = tuple(float(m) for m in s.sweep)
    tasks = list(tasks) if tasks is not None else paper_tasks(seed=s.seed, quick=s.quick)
    Kmin = min(t.K for t in tasks)
    units = [(t, s.batches, "curves" if s.curves_only else "full", "tuned") for t in tasks]
    units += [(t, s.batches, "shape", "matched") for t in matched]
    units += [(t, int(b), "curves", "scale") for b in scale for t in tasks if t.K == Kmin and int(b) < t.batches]
    t_start = time.perf_counter()
    rows, dicts, tunings, shapes, matched_shapes, cpu = [], {}, {}, {}, {}, 0.0
    # the most expensive first, so that a pool of workers ends together
    order = sorted(range(len(units)), key=lambda i: (units[i][2] == "curves", -units[i][0].K))
    with executor(s.jobs, s.scheduler) as (ex, _), progress_bar(len(units), s.progress, "v1 analysis") as bar:
        futures = {i: ex.submit(_analyse_unit, units[i][0], folder, *units[i][1:], cfg, s.seed, s.images)
                   for i in order}
        for i in range(len(units)):
            res = futures[i].result()
            bar.update()
            if "skip" in res:
                say(res["skip"])
                continue
            task, _, depth, dict_set = units[i]
            say(f"{task.name} ({dict_set}, {res['rows'][0]['batches']} batches): {depth} done, "
                f"{time.perf_counter() - t_start:.0f}s")
            rows += res["rows"]
            cpu += res["cpu_seconds"]
            if dict_set == "tuned":
                dicts[res["key"]] = res["Phi"]
                if "tuning" in res:
                    tunings[res["key"]], shapes[res["key"]] = res["tuning"], res["shape"]
            elif dict_set == "matched":
                matched_shapes[res["key"]] = res["shape"]
    rows += _summary_rows(rows, cfg["level"])
    if s.out_dir is not None and dicts and not s.curves_only:
        from .sparse_v1_figures import save_figures

        if matched_shapes and ("l0", Kmin) in shapes:
            matched_shapes[("l0", Kmin)] = shapes[("l0", Kmin)]
        for path in save_figures(s.out_dir, dicts, rows, tunings, shapes, tasks[0].size, cfg["level"],
                                 matched_shapes):
            rows.append({"table": "figure", "path": path})
    rows.append({"table": "run", "batches": s.batches, "quick": bool(s.quick), "seed": s.seed, "jobs": s.jobs,
                 "seconds": time.perf_counter() - t_start, "cpu_seconds": cpu})
    return rows


def study(folder, settings: V1Settings | None = None, learn_batches: int = 4000, log=None) -> list[dict]:
    """The whole V1 study: learn every dictionary (``learn_batches`` batches; resuming what
    ``folder`` holds), then analyse the final dictionaries.

    Learns :func:`reference.studies.sparse_scale.paper_tasks` (every penalty at 500 and 1,000 units, l1
    at 2,000) and :func:`reference.studies.sparse_scale.matched_tasks`, keeping copies after 400 and
    1,000 batches; then :func:`analyse` on all of them. The last row (table ``study``) gives the
    wall and CPU seconds of both steps.
    """
    s = replace(settings or V1Settings(), batches=None)
    say = log or (lambda m: None)
    tasks = paper_tasks(learn_batches, seed=s.seed, quick=s.quick)
    matched = matched_tasks(learn_batches, seed=s.seed, quick=s.quick)
    scale = (10, 20) if s.quick else (400, 1000)
    t0, c0 = time.perf_counter(), time.process_time()
    learned = run_learning(tasks + matched, folder, jobs=s.jobs, scheduler=s.scheduler, images=s.images,
                           snapshots=scale, log=lambda r: say(f"learned {r['name']}: {r['done_batches']} batches, "
                                                              f"cpu {r['cpu_seconds']:.0f}s"))
    t1 = time.perf_counter()
    rows = analyse(folder, s, tasks, matched=matched, scale=scale, log=log)
    run = next(r for r in rows if r["table"] == "run")
    rows.append({"table": "study", "jobs": s.jobs, "learn_seconds": t1 - t0,
                 "learn_cpu_seconds": sum(r["cpu_seconds"] for r in learned),
                 "learned_batches": sum(r["done_batches"] - r["start_batch"] for r in learned),
                 "analysis_seconds": run["seconds"], "analysis_cpu_seconds": run["cpu_seconds"],
                 "total_seconds": time.perf_counter() - t0,
                 "main_process_cpu_seconds": time.process_time() - c0})
    return rows


def precision_rows(folder, K: int = 500, batches: int = 200, seed: int = 0, jobs: int = 1, images=None) -> list[dict]:
    """float32 against float64 ISTA iterations: each penalty learned both ways from the same seed.

    Rows (table ``precision``): per penalty and dtype, the mean training error and active units
    over the last half of the run, and on held-out patches the relative error and active units
    at the learning lambda, the fraction of oriented units (linear responses) and of Gabor-like
    atoms. The dictionaries go to ``folder/float32`` and ``folder/float64``.
    """
    base = [LearnTask(p, K, LEARN_LAM[p], batches, seed=seed) for p in PENALTY_ORDER]
    stim = grating_set(16, THETAS, FREQS, 8)
    X = PatchStream(whitened_images(images), 1000, 16, seed=(seed, 4), block=1000).rows(0, 1000)
    rows = []
    for dt in ("float32", "float64"):
        tasks = [replace(t, dtype=dt) for t in base]
        sub = os.path.join(folder, dt)
        done = run_learning(tasks, sub, jobs=jobs, images=images)
        for t, d in zip(tasks, done):
            st = load_learned(t, sub)
            half = st["history"][batches // 2:]
            c = _curve(st["Phi"], X, t.penalty, K, [t.lam], dict(max_iter=3000, tol=1e-6))[0]
            tu = tuning_rows(st["Phi"], t.penalty, K, stim, dict(max_iter=3000, tol=1e-6), t.lam)["linear_row"]
            sh, _ = shape_row(st["Phi"], t.penalty, K, 0.0)
            rows.append({"table": "precision", "penalty": t.penalty, "dtype": dt, "K": K, "batches": batches,
                         "train_error": float(np.mean([h["error"] for h in half])),
                         "train_l0": float(np.mean([h["l0"] for h in half])),
                         "test_rel_error": c["rel_error"], "test_l0": c["mean_l0"],
                         "frac_oriented_linear": tu["frac_oriented"], "frac_gabor": sh["frac_gabor"],
                         "cpu_seconds": d["cpu_seconds"], "seconds": d["seconds"]})
    return rows


def _summary_rows(rows, level):
    curves = _main_rows(rows, "curve")
    return (headline_rows([c for c in curves if not c["paper_lam"]], error_level=0.25, sparsity_level=level)
            + pool_rows(curves, level) + scale_rows(rows, level))


def scale_rows(rows, level: float, error_level: float = 0.25) -> list[dict]:
    """Claim 1 against the scale of learning: per stage (``batches``) of the smallest pool, each
    penalty's error at ``level`` active units and units at ``error_level``, and l1's ratios.

    Uses the curves of the kept copies (``set`` ``"scale"``) and the final dictionaries.
    """
    curves = [r for r in rows if r["table"] == "curve" and not r["paper_lam"] and r.get("set") in ("scale", "tuned")]
    if not curves:
        return []
    Kmin = min(c["K"] for c in curves)
    out = []
    for b in sorted({c["batches"] for c in curves if c["K"] == Kmin}):
        err, units = {}, {}
        for pen in PENALTY_ORDER:
            pts = [c for c in curves if c["K"] == Kmin and c["batches"] == b and c["penalty"] == pen]
            if pts:
                err[pen] = interp(level, [c["mean_l0"] for c in pts], [c["rel_error"] for c in pts])
                units[pen] = interp(error_level, [c["rel_error"] for c in pts], [c["mean_l0"] for c in pts])
        if "l1" not in err:
            continue
        first = next(c for c in curves if c["K"] == Kmin and c["batches"] == b)
        row = {"table": "scale", "K": Kmin, "batches": b, "presentations": first.get("presentations"),
               "level": level, "error_level": error_level}
        for pen in err:
            row[f"error_{pen}"] = err[pen]
        for pen in PENALTY_ORDER[:-1]:
            if pen in err:
                row[f"l1_error_over_{pen}"] = err["l1"] / err[pen]
                row[f"l1_units_over_{pen}"] = units["l1"] / units[pen]
        out.append(row)
    return out


def merge(row_lists, out_dir=None, level: float = 16.0) -> list[dict]:
    """Rows of several :func:`analyse` runs as one (summaries recomputed); redraws the claim-1 figures."""
    rows = [r for rs in row_lists for r in rs if r["table"] not in ("headline", "pool", "pool_match", "scale", "run")]
    rows += _summary_rows(rows, level)
    if out_dir is not None:
        from .sparse_v1_figures import save_curve_figures

        rows += [{"table": "figure", "path": p} for p in save_curve_figures(out_dir, rows, level)]
    return rows


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def format_tables(rows) -> str:
    """Every table of :func:`analyse` as Markdown."""
    out = []
    for name in ("dictionary", "headline", "pool", "pool_match", "scale", "tuning", "shape", "exact", "sub_exact",
                 "curve", "curve_check", "precision", "run", "study"):
        sel = [r for r in rows if r.get("table") == name]
        if not sel:
            continue
        keys = [k for k in sel[0] if k != "table"]
        out += [f"### {name}\n", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        out += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in sel]
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    import argparse
    import json
    import tempfile

    p = argparse.ArgumentParser(prog="python -m reference.studies.sparse_v1",
                                description="The V1 study's claims 1-4 on dictionaries from reference.studies.sparse_scale")
    p.add_argument("--study", metavar="FOLDER", help="the whole study: learn every dictionary into FOLDER "
                   "(resuming what it holds), then analyse them all (with --jobs or --scheduler)")
    p.add_argument("--dicts", help="checkpoint folder of python -m reference.studies.sparse_scale")
    p.add_argument("--batches", type=int, default=None, help="analyse the copies kept at this stage")
    p.add_argument("--out", default=None, help="folder for the PNG figures")
    p.add_argument("--json", default=None, help="write the rows as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--K", default=None, help="analyse only these pool sizes (comma-separated)")
    p.add_argument("--penalties", default=None, help="analyse only these penalties (comma-separated)")
    p.add_argument("--quick", action="store_true", help="learn small dictionaries first, then analyse (seconds)")
    p.add_argument("--precision", metavar="FOLDER", help="instead: learn every penalty in float32 and float64 "
                   "(--precision-K units, --precision-batches batches) into FOLDER and compare")
    p.add_argument("--precision-K", type=int, default=500)
    p.add_argument("--precision-batches", type=int, default=200)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (learning and analysis)")
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address (instead of --jobs)")
    p.add_argument("--curves-only", action="store_true", help="claim 1 alone (error against sparsity)")
    p.add_argument("--sweep", default=None, help="multiples of the learning lambda for the curves "
                   "(comma-separated; default 0.25,0.5,1,2,4)")
    p.add_argument("--progress", action="store_true",
                   help="show a bar of the dictionaries analysed on stderr (default: when stderr is a terminal)")
    p.add_argument("--merge", nargs="+", metavar="ROWS.json", help="instead: combine the --json files of "
                   "several runs (summaries recomputed, claim-1 figures redrawn in --out)")
    a = p.parse_args(argv)
    progress = a.progress or sys.stderr.isatty()
    say = (lambda m: tqdm.write(m, file=sys.stderr))  # above the progress bar, when one is shown
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if a.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, found {a.jobs}")
        if a.merge:
            lists = []
            for path in a.merge:
                with open(path) as fh:
                    lists.append(json.load(fh))
            rows = merge(lists, a.out)
        elif a.precision:
            rows = precision_rows(a.precision, a.precision_K, a.precision_batches, a.seed, a.jobs)
        elif a.quick or a.study:
            with tempfile.TemporaryDirectory() as tmp:
                folder = a.study or a.dicts or tmp
                rows = study(folder, V1Settings(quick=a.quick, out_dir=a.out, seed=a.seed, jobs=a.jobs,
                                                scheduler=a.scheduler, progress=progress), log=say)
        else:
            if not a.dicts or not os.path.isdir(a.dicts):
                raise ValueError(f"--dicts must be an existing folder of learned dictionaries, found {a.dicts!r}")
            tasks = paper_tasks(seed=a.seed)
            if a.K:
                keep = {int(k) for k in a.K.split(",")}
                tasks = [t for t in tasks if t.K in keep]
            if a.penalties:
                tasks = [t for t in tasks if t.penalty in {p.strip() for p in a.penalties.split(",")}]
            sweep = None
            if a.sweep:
                try:
                    sweep = [float(m) for m in a.sweep.split(",")]
                except ValueError:
                    raise ValueError(f"--sweep must be comma-separated numbers, found {a.sweep!r}") from None
                if not sweep or min(sweep) <= 0:
                    raise ValueError(f"--sweep must be positive numbers, found {a.sweep!r}")
            rows = analyse(a.dicts, V1Settings(batches=a.batches, out_dir=a.out, seed=a.seed, curves_only=a.curves_only,
                                               sweep=sweep, jobs=a.jobs, scheduler=a.scheduler, progress=progress),
                           tasks, log=say)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_tables(rows))
    print(f"wall {time.perf_counter() - t0:.0f}s, cpu {time.process_time() - c0:.0f}s")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
