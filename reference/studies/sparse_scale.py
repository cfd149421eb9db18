"""Dictionary learning at the V1 paper's scale, one independent task per (penalty, pool size).

The paper's notebook learns 500 units from 4,000 batches of 250 whitened 16x16 patches (1e6
presentations); this study adds 1,000 units for every penalty and larger pools for l1. Each task
is :func:`solvers.sparse.learn_dictionary` on a :class:`reference.patches.PatchStream`
(patches made per batch from their own seed) with a checkpoint file in ``folder``:

* a task killed at any point resumes from its last checkpoint (every 100 batches) and ends with
  the same bits as an uninterrupted run (BLAS held at one thread per task);
* ``stages`` run every task to 400 batches, then every task to 1,000, ... so that an early stop
  still leaves every (penalty, pool) at the same, largest finished scale; a copy of each
  dictionary is kept at every stage (``<name>.b<batches>.npz``);
* tasks run serially, on a process pool (``jobs``) or on a Dask cluster (``scheduler``, with
  ``folder`` on a file system the workers share), with the same results.

``python -m reference.studies.sparse_scale --out DIR [--stages 400,1000,4000] [--jobs 2] [--quick]``;
the analysis of the learned dictionaries is :mod:`reference.studies.sparse_v1`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from solvers.sparse import learn_dictionary, load_checkpoint, snapshot_path

from ..compare.harness import executor
from ..patches import PatchStream, natural_images, whiten_images

__all__ = ["LEARN_DTYPE", "LEARN_LAM", "MATCHED_LAM", "LearnTask", "checkpoint_path", "load_learned",
           "matched_tasks", "paper_tasks", "run_learning", "run_learning_task", "whitened_images"]

#: Learning lambdas (this project's convention), as in :mod:`reference.studies.sparse_study`.
LEARN_LAM = {"l0": 0.1, "cel0": 0.1, "l1/2": 0.15, "l1": 0.3}

#: Precision of the ISTA iterations per penalty: float32, faster for every penalty and within
#: the results' reported precision (measured: docs/results.md, "Sparse coding", float32 against
#: float64 iterations).
LEARN_DTYPE = {"l0": "float32", "cel0": "float32", "l1/2": "float32", "l1": "float32"}

#: Relative CPU per batch of each penalty at equal pool size (measured, docs/results.md): the
#: order in which a pool of workers takes the tasks, the most expensive first.
_COST = {"l0": 1.0, "l1": 2.0, "l1/2": 3.0, "cel0": 4.0}

PENALTY_ORDER = ("l0", "cel0", "l1/2", "l1")

#: Learning lambdas at which CEL0, l1/2 and l1 learn with about as many active units as l0 at its
#: :data:`LEARN_LAM` (500 units; calibrated on runs of 300 batches, docs/results.md): the
#: dictionaries of claim 3 at matched sparsity.
MATCHED_LAM = {"cel0": 0.13, "l1/2": 0.2, "l1": 0.75}


@dataclass(frozen=True)
class LearnTask:
    """One dictionary to learn: everything its bits depend on, except the images."""

    penalty: str
    K: int
    lam: float
    batches: int
    lr: float = 4.0
    dtype: str = "float64"
    seed: int = 0
    size: int = 16
    batch_size: int = 250

    @property
    def name(self) -> str:
        """``<penalty>_K<K>_s<seed>``, plus ``_lam<lam>`` when ``lam`` is not the penalty's :data:`LEARN_LAM`."""
        extra = "" if self.lam == LEARN_LAM[self.penalty] else f"_lam{self.lam:g}"
        return f"{self.penalty.replace('/', '')}_K{self.K}_s{self.seed}{extra}"


def paper_tasks(batches: int = 4000, Ks=(500, 1000), l1_Ks=(2000,), seed: int = 0, quick: bool = False):
    """The study's tasks: every penalty at every ``Ks``, then l1 alone at ``l1_Ks``.

    ``quick``: 8x8 patches, 32 and 64 units (l1 also 128), 30 batches (about a second each).
    """
    if quick:
        batches, Ks, l1_Ks, size = min(batches, 30), (32, 64), (128,), 8
    else:
        size = 16
    tasks = [LearnTask(p, int(K), LEARN_LAM[p], int(batches), dtype=LEARN_DTYPE[p], seed=seed, size=size)
             for K in Ks for p in PENALTY_ORDER]
    tasks += [LearnTask("l1", int(K), LEARN_LAM["l1"], int(batches), dtype=LEARN_DTYPE["l1"], seed=seed, size=size)
              for K in l1_Ks]
    return tasks


def matched_tasks(batches: int = 4000, K: int = 500, seed: int = 0, quick: bool = False):
    """CEL0, l1/2 and l1 at :data:`MATCHED_LAM` (``quick``: as :func:`paper_tasks`, 32 units)."""
    size = 8 if quick else 16
    if quick:
        batches, K = min(batches, 30), 32
    return [LearnTask(p, int(K), MATCHED_LAM[p], int(batches), dtype=LEARN_DTYPE[p], seed=seed, size=size)
            for p in PENALTY_ORDER if p in MATCHED_LAM]


def checkpoint_path(task: LearnTask, folder, batches: int | None = None) -> str:
    """The task's checkpoint in ``folder`` (``batches``: the copy kept after that many batches)."""
    base = os.path.join(os.fspath(folder), f"{task.name}.npz")
    if batches is None:
        return base

    return snapshot_path(base, batches)


#: Whitened images per folder (None: scikit-image's), made once per process.
_WHITENED: dict = {}


def whitened_images(folder=None) -> list:
    """:func:`reference.patches.whiten_images` of :func:`reference.patches.natural_images`, cached."""
    if folder not in _WHITENED:
        _WHITENED[folder] = whiten_images(natural_images(folder))
    return _WHITENED[folder]


def _stream(task: LearnTask, folder_images=None):
    return PatchStream(whitened_images(folder_images), task.batches * task.batch_size, task.size,
                       seed=(task.seed, 3), block=task.batch_size)


def run_learning_task(task: LearnTask, folder, snapshots=(), images=None, every: int = 100) -> dict:
    """Learn (or resume) one task's dictionary into ``folder``; returns a summary (no arrays).

    Progress goes to stderr every ``every`` batches: batch, error and active units (mean over
    the last ``every`` batches), elapsed time and the time left at the current pace.
    """
    os.makedirs(folder, exist_ok=True)
    X = _stream(task, images)
    t0 = time.perf_counter()
    recent = []

    def progress(rec):
        recent.append(rec)
        b = rec["batch"] + 1
        if b % every == 0 or b == task.batches:
            el = time.perf_counter() - t0
            left = el / len(recent) * (task.batches - b) if recent else float("nan")
            err = np.mean([r["error"] for r in recent[-every:]])
            l0 = np.mean([r["l0"] for r in recent[-every:]])
            print(f"[{task.name}] batch {b}/{task.batches} error {err:.4f} active {l0:.2f} "
                  f"elapsed {el:.0f}s left ~{left:.0f}s", file=sys.stderr, flush=True)

    res = learn_dictionary(X, task.K, task.penalty, task.lam, batch_size=task.batch_size, lr=task.lr,
                           seed=task.seed, dtype=task.dtype, n_batches=task.batches,
                           checkpoint=checkpoint_path(task, folder), snapshots=snapshots, blas_threads=1,
                           progress=progress)
    hist = res.history
    tail = hist[-min(100, len(hist)):]
    return {**asdict(task), "name": task.name, "start_batch": res.start_batch, "done_batches": len(hist),
            "seconds": res.seconds, "cpu_seconds": res.cpu_seconds,
            "final_error": float(np.mean([h["error"] for h in tail])),
            "final_l0": float(np.mean([h["l0"] for h in tail]))}


def _run_one(args):
    return run_learning_task(*args)


def run_learning(tasks, folder, stages=None, jobs: int = 1, scheduler: str | None = None, images=None,
                 log=None, snapshots=()) -> list[dict]:
    """Run every task to each stage in turn (default: straight to its ``batches``).

    ``jobs > 1`` runs the tasks of a stage on a process pool, ``scheduler`` (a Dask address) on a
    cluster, the most expensive first; the results do not depend on either. A copy of each
    dictionary is kept at every stage and at every count in ``snapshots``. Each finished
    (task, stage) appends its summary to ``folder/timings.jsonl`` and is returned, in the
    order of ``tasks``.
    """
    tasks = list(tasks)
    stages = sorted({int(s) for s in stages}) if stages else [None]
    keep = {int(s) for s in snapshots} | {s for s in stages if s is not None}
    out = []
    for stage in stages:
        todo = []
        for t in tasks:
            b = t.batches if stage is None else min(stage, t.batches)
            snaps = tuple(sorted(s for s in keep if s <= b))
            todo.append((LearnTask(**{**asdict(t), "batches": b}), folder, snaps, images))
        order = sorted(range(len(todo)), key=lambda i: -todo[i][0].K * _COST[todo[i][0].penalty])
        with executor(jobs, scheduler) as (ex, _):
            futures = {i: ex.submit(_run_one, todo[i]) for i in order}
            results = [futures[i].result() for i in range(len(todo))]
        for r in results:
            r["stage"] = stage
            if log is not None:
                log(r)
            with open(os.path.join(folder, "timings.jsonl"), "a") as fh:
                fh.write(json.dumps(r) + "\n")
        out += results
    return out


def load_learned(task: LearnTask, folder, batches: int | None = None) -> dict:
    """A task's learned dictionary and history from ``folder`` (checked; ValueError if absent)."""
    path = checkpoint_path(task, folder, batches)
    if not os.path.exists(path):
        raise ValueError(f"no learned dictionary for {task.name} at {path!r}: run python -m reference.studies.sparse_scale")
    n = task.size * task.size
    state = load_checkpoint(path, n, task.K)
    if batches is not None and state["next_batch"] != batches:
        raise ValueError(f"{path!r} holds {state['next_batch']} batches, expected {batches}")
    return state


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m reference.studies.sparse_scale",
                                description="Paper-scale dictionary learning for the V1 study (resumable)")
    p.add_argument("--out", required=True, help="folder for the checkpoints (resumed from when present)")
    p.add_argument("--batches", type=int, default=4000, help="batches of 250 patches per task (default 4000)")
    p.add_argument("--stages", default=None, help="comma-separated batch counts run in turn, e.g. 400,1000,4000")
    p.add_argument("--snapshots", default=None, help="comma-separated batch counts at which a copy is kept "
                   "(without the stages' synchronisation), e.g. 400,1000")
    p.add_argument("--K", default="500,1000", help="pool sizes for every penalty (default 500,1000)")
    p.add_argument("--l1-K", default="2000", help="further pool sizes for l1 alone (default 2000)")
    p.add_argument("--penalties", default=None, help="only these penalties (comma-separated, e.g. l1/2,l1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address")
    p.add_argument("--folder", default=None, help="a folder of your own images")
    p.add_argument("--quick", action="store_true", help="8x8 patches, small pools, 30 batches")
    return p


def _ints(text, name):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()] if text else []
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, found {text!r}") from None
    if any(v < 1 for v in vals):
        raise ValueError(f"{name} must be positive integers, found {text!r}")
    return vals


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        Ks, l1_Ks = _ints(a.K, "--K"), _ints(a.l1_K, "--l1-K")
        stages = _ints(a.stages, "--stages") or None
        snapshots = _ints(a.snapshots, "--snapshots")
        if a.batches < 1 or a.jobs < 1:
            raise ValueError(f"--batches and --jobs must be >= 1, found {a.batches} and {a.jobs}")
        tasks = paper_tasks(a.batches, Ks, l1_Ks, a.seed, a.quick)
        if a.penalties:
            want = [p.strip() for p in a.penalties.split(",") if p.strip()]
            unknown = sorted(set(want) - set(PENALTY_ORDER))
            if unknown:
                raise ValueError(f"--penalties must be among {list(PENALTY_ORDER)}, found {unknown}")
            tasks = [t for t in tasks if t.penalty in want]
        t0 = time.perf_counter()
        run_learning(tasks, a.out, stages, a.jobs, a.scheduler, a.folder, snapshots=snapshots,
                     log=lambda r: print(f"done {r['name']} to batch {r['done_batches']}: wall {r['seconds']:.0f}s "
                                         f"cpu {r['cpu_seconds']:.0f}s error {r['final_error']:.4f} "
                                         f"active {r['final_l0']:.2f}", flush=True))
        print(f"total wall {time.perf_counter() - t0:.0f}s", flush=True)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; the checkpoints in {a.out} resume the run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
