r"""Dictionary learning as the V1 paper does it (docs/sparse.md), for any penalty.

One pass over the patches in batches (250 by default). For each batch ``X`` (shape (b, n)):

1. codes ``A`` by plain ISTA from zero codes (the registered method ``"ista"`` on a :class:`SparseProblem`),
   stopped when every code's relative change is below ``tol`` (1e-2) or after ``max_iter``
   (5000) iterations;
2. one gradient step on the reconstruction term ``1/2 ||X - A Phi^T||^2 / b``:
   ``Phi <- Phi + lr (X - A Phi^T)^T A / b``;
3. every atom rescaled to unit norm.

The paper trains on 1e6 whitened 16x16 patches (:mod:`reference.patches`) with 500 or 1000
units. Its learning rate was not checked here; ``lr`` is this module's choice (see
docs/sparse.md).

Long runs: the training signals may be a :class:`reference.patches.PatchStream` (patches made
on demand, batch ``b`` from its own seed), and ``checkpoint`` saves the dictionary with the
index of the next batch and the history as plain ``.npz`` arrays. Batch ``b``'s update depends
only on the dictionary before it and on batch ``b`` (ISTA starts from zero codes; a dead atom
restarts from seed ``(seed, b)``), so a run resumed from a checkpoint gives the same bits as
one never interrupted (with the same BLAS thread count: ``blas_threads``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from reference.validation import as_float_array, check_positive_int
from reference.sparse import check_lambda, check_penalty

from .._registry import METHODS
from ..runtime import blas_threads
from . import proximal  # noqa: F401  (registers "ista", which the learner runs)
from .problem import SparseProblem

__all__ = ["DictionaryResult", "LearnSettings", "learn_dictionary", "load_checkpoint", "random_dictionary",
           "save_checkpoint", "snapshot_path"]


@dataclass
class DictionaryResult:
    """Outcome of :func:`learn_dictionary`.

    Attributes
    ----------
    Phi : ndarray of shape (n, K)
        Learned dictionary, unit-norm atoms as columns.
    history : list of dict
        Per batch: ``batch``, ``error`` (mean ``1/2 ||x - Phi a||^2`` before the update),
        ``l0`` (mean number of active units), ``iterations`` (ISTA), ``converged``.
    seconds : float
        Wall time of this call (a resumed run counts only its own batches).
    cpu_seconds : float
        Process CPU time of this call.
    start_batch : int
        The batch this call started from (0, or the checkpoint's ``next_batch``).
    """

    Phi: np.ndarray
    history: list = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    start_batch: int = 0

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        return (f"DictionaryResult(Phi shape {self.Phi.shape}, batches {len(self.history)}, "
                f"last error {last.get('error', float('nan')):.4g}, last l0 {last.get('l0', float('nan')):.3g}, "
                f"seconds {self.seconds:.3g})")


def random_dictionary(n: int, K: int, seed=0) -> np.ndarray:
    """Gaussian atoms rescaled to unit norm, shape (n, K)."""
    n = check_positive_int(n, "n")
    K = check_positive_int(K, "K")
    Phi = np.random.default_rng(seed).normal(size=(n, K))
    return Phi / np.linalg.norm(Phi, axis=0)


@dataclass(frozen=True)
class LearnSettings:
    """The settings of :func:`learn_dictionary` other than the data, the penalty and the
    initial dictionary, validated on construction.

    Attributes
    ----------
    batch_size : int, default=250
    lr : float > 0, default=1.0
        Step of the dictionary update (on the batch-mean gradient). On whitened patches of
        variance 0.1, 0.1 barely moves random atoms in 15,000 patches; 1 to 4 gives oriented,
        localised atoms (the study uses 4 for its short runs).
    tol, max_iter : ISTA's stopping rule, default 1e-2 and 5000.
    seed : int, default=0
        Seed of the random initial dictionary (when ``init`` is None) and of dead-atom restarts.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the ISTA iterations (the dictionary and its update stay float64).
    n_batches : int, optional
        Stop after this many batches in all (default: every whole batch of ``X``).
    checkpoint_every : int, default=100
        Batches between two writes of the checkpoint.
    snapshots : iterable of int
        Batch counts at which a copy of the checkpoint is also kept, as ``<checkpoint>`` with
        ``.npz`` replaced by ``.b<count>.npz``.
    blas_threads : int, optional
        Hold the BLAS libraries at this many threads during the call (:func:`solvers.runtime.blas_threads`).
    """

    batch_size: int = 250
    lr: float = 1.0
    tol: float = 1e-2
    max_iter: int = 5000
    seed: object = 0
    dtype: str = "float64"
    n_batches: int | None = None
    checkpoint_every: int = 100
    snapshots: tuple = ()
    blas_threads: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "batch_size", check_positive_int(self.batch_size, "batch_size"))
        lr = float(as_float_array(self.lr, "lr", ndim=0))
        if lr <= 0:
            raise ValueError(f"lr must be > 0, found {lr!r}")
        object.__setattr__(self, "lr", lr)
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', found {self.dtype!r}")
        if self.n_batches is not None:
            object.__setattr__(self, "n_batches", check_positive_int(self.n_batches, "n_batches"))
        object.__setattr__(self, "checkpoint_every", check_positive_int(self.checkpoint_every, "checkpoint_every"))
        snapshots = sorted({check_positive_int(s, "snapshots") for s in self.snapshots})
        object.__setattr__(self, "snapshots", tuple(snapshots))
        if self.blas_threads is not None:
            object.__setattr__(self, "blas_threads", check_positive_int(self.blas_threads, "blas_threads"))


def learn_dictionary(X, K: int, penalty: str = "l1", lam: float = 0.1, settings: LearnSettings | None = None, *,
                     init=None, checkpoint=None, progress=None, **options) -> DictionaryResult:
    """Learn ``K`` unit-norm atoms from the rows of ``X`` in one pass (the V1 paper's procedure).

    Parameters
    ----------
    X : array of shape (N, n), or a :class:`reference.patches.PatchStream`
        Training signals (whitened patches), one a row, used in the given order.
    K : int
        Number of atoms.
    penalty : {"l0", "l1", "l1/2", "cel0"}, default="l1"
    lam : float >= 0, default=0.1
        ``lambda`` in this project's convention (:mod:`reference.penalties`).
    settings : LearnSettings, optional
        Batch size, learning rate, ISTA's stopping rule, seed, precision, checkpoint cadence;
        ``**options`` (the fields of :class:`LearnSettings` by name) override it.
    init : array of shape (n, K), optional
    checkpoint : str, optional
        Path of an ``.npz`` file: resumed from when it exists (it must come from a run with the
        same data and settings, else ValueError), rewritten every ``checkpoint_every`` batches
        and at the end.
    progress : callable, optional
        Called as ``progress(record)`` after each batch with that batch's history record.

    Returns
    -------
    DictionaryResult
    """
    st = dataclasses.replace(settings or LearnSettings(), **options)
    stream = hasattr(X, "rows")
    if not stream:
        X = as_float_array(X, "X", ndim=2)
    N, n = (X.n_patches, X.n_features) if stream else X.shape
    K = check_positive_int(K, "K")
    penalty = check_penalty(penalty)
    lam = check_lambda(lam)
    if N < st.batch_size:
        raise ValueError(f"X must have at least batch_size == {st.batch_size} rows, found {N}")
    total = N // st.batch_size
    if st.n_batches is not None:
        total = check_positive_int(st.n_batches, "n_batches", maximum=total)
    Phi = random_dictionary(n, K, st.seed) if init is None else _unit_atoms(as_float_array(init, "init", shape=(n, K)))
    history, start, fingerprint = [], 0, None
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if not checkpoint.endswith(".npz"):
            raise ValueError(f"checkpoint must be a path ending in .npz, found {checkpoint!r}")
        fingerprint = _fingerprint(X, n, K, penalty, lam, st, init)
        if os.path.exists(checkpoint):
            Phi, start, history = _resume(checkpoint, n, K, fingerprint, total)
    t0, c0 = time.perf_counter(), time.process_time()
    with blas_threads(st.blas_threads):
        for b in range(start, total):
            Xb = X.rows(b * st.batch_size, (b + 1) * st.batch_size) if stream else \
                X[b * st.batch_size:(b + 1) * st.batch_size]
            Phi, record = _learn_batch(Phi, Xb, penalty, lam, st, b, total)
            history.append(record)
            done = b + 1
            if checkpoint is not None and (done % st.checkpoint_every == 0 or done == total or done in st.snapshots):
                save_checkpoint(checkpoint, Phi, done, history, fingerprint)
                if done in st.snapshots:
                    save_checkpoint(snapshot_path(checkpoint, done), Phi, done, history, fingerprint)
            if progress is not None:
                progress(record)
    return DictionaryResult(Phi=Phi, history=history, seconds=time.perf_counter() - t0,
                            cpu_seconds=time.process_time() - c0, start_batch=start)


def _unit_atoms(Phi):
    return Phi / np.linalg.norm(Phi, axis=0)


def _resume(checkpoint, n, K, fingerprint, total):
    """``(Phi, next batch, history)`` of an existing checkpoint of this very run."""
    state = load_checkpoint(checkpoint, n, K)
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {checkpoint!r} comes from another run (data or settings differ): "
                         f"{state['fingerprint']} != {fingerprint}")
    if state["next_batch"] > total:
        raise ValueError(f"checkpoint {checkpoint!r} is at batch {state['next_batch']}, beyond n_batches {total}")
    return state["Phi"], state["next_batch"], state["history"]


def _learn_batch(Phi, Xb, penalty, lam, st: LearnSettings, b: int, total: int):
    """One batch: ISTA codes ``A`` from zero (step 1), one gradient step on
    ``1/2 ||X - A Phi^T||^2 / b`` (step 2), unit-norm atoms (step 3). Returns ``(Phi, record)``."""
    ista = METHODS["ista"]
    problem = SparseProblem(Phi, Xb, penalty, lam)
    out = ista.run(problem, **ista.resolve_options(dict(tol=st.tol, max_iter=st.max_iter, certify=False,
                                                        dtype=st.dtype)))
    A = np.asarray(out.x, dtype=np.float64).reshape(problem.shape)
    R = Xb - A @ Phi.T
    record = {"batch": b, "batches": total, "error": float(0.5 * np.mean(np.sum(R * R, axis=1))),
              "l0": float(np.mean(np.count_nonzero(A, axis=1))), "iterations": out.info["iterations"],
              "converged": out.info["converged"]}
    Phi = Phi + st.lr * (R.T @ A) / st.batch_size
    norms = np.linalg.norm(Phi, axis=0)
    dead = norms == 0
    if np.any(dead):  # an atom pushed exactly to zero: restart it on a random direction
        Phi[:, dead] = random_dictionary(Phi.shape[0], int(dead.sum()), seed=(st.seed, b))
        norms[dead] = 1.0
    return Phi / norms, record


def snapshot_path(checkpoint, batches: int) -> str:
    """Where :func:`learn_dictionary` keeps the copy of ``checkpoint`` taken after ``batches`` batches."""
    checkpoint = os.fspath(checkpoint)
    return f"{checkpoint[:-4]}.b{int(batches)}.npz"


def _fingerprint(X, n, K, penalty, lam, st: LearnSettings, init) -> str:
    """Everything the learned bits depend on, as text: a checkpoint resumes only a run with the same."""
    h = hashlib.sha256()
    if hasattr(X, "fingerprint"):
        h.update(X.fingerprint.encode())
    else:
        h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    if init is not None:
        h.update(np.ascontiguousarray(init, dtype=np.float64).tobytes())
    return json.dumps({"data": h.hexdigest(), "n": n, "K": K, "penalty": penalty, "lam": lam,
                       "batch_size": st.batch_size, "lr": st.lr, "tol": st.tol, "max_iter": st.max_iter,
                       "seed": repr(st.seed), "dtype": st.dtype}, sort_keys=True)


_HISTORY_KEYS = ("error", "l0", "iterations", "converged")


def save_checkpoint(path, Phi, next_batch: int, history, fingerprint: str) -> None:
    """Write the learner's state as plain ``.npz`` arrays (no pickles), atomically (temp file + rename)."""
    arrays = {k: np.array([r[k] for r in history], dtype=np.float64 if k in ("error", "l0") else np.int64)
              for k in _HISTORY_KEYS}
    tmp = f"{path}.{os.getpid()}.tmp.npz"  # one per process: two writers never share a temp file
    np.savez(tmp, Phi=np.asarray(Phi, dtype=np.float64), next_batch=np.int64(next_batch),
             fingerprint=np.array(fingerprint), **arrays)
    os.replace(tmp, path)


def load_checkpoint(path, n: int | None = None, K: int | None = None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, checked for keys, shapes, dtypes, finiteness.

    Returns a dict with ``Phi`` (n, K), ``next_batch`` (int), ``history`` (list of dict),
    ``fingerprint`` (str).
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable .npz file: {exc}") from None
    missing = {"Phi", "next_batch", "fingerprint", *_HISTORY_KEYS} - set(data)
    if missing:
        raise ValueError(f"checkpoint {path!r} lacks the arrays {sorted(missing)}")
    Phi = data["Phi"]
    if Phi.dtype != np.float64 or Phi.ndim != 2 or not np.all(np.isfinite(Phi)):
        raise ValueError(f"checkpoint {path!r}: Phi must be a finite 2-D float64 array, found {Phi.dtype} {Phi.shape}")
    if (n is not None and Phi.shape[0] != n) or (K is not None and Phi.shape[1] != K):
        raise ValueError(f"checkpoint {path!r}: Phi must have shape ({n}, {K}), found {Phi.shape}")
    nb = data["next_batch"]
    if nb.shape != () or nb.dtype.kind != "i" or int(nb) < 0:
        raise ValueError(f"checkpoint {path!r}: next_batch must be a non-negative integer scalar")
    nb = int(nb)
    for k in _HISTORY_KEYS:
        if data[k].shape != (nb,) or not np.all(np.isfinite(data[k])):
            raise ValueError(f"checkpoint {path!r}: {k} must be {nb} finite numbers, found shape {data[k].shape}")
    fp = data["fingerprint"]
    if fp.shape != () or fp.dtype.kind != "U":
        raise ValueError(f"checkpoint {path!r}: fingerprint must be a text scalar")
    history = [{"batch": b, "error": float(data["error"][b]), "l0": float(data["l0"][b]),
                "iterations": int(data["iterations"][b]), "converged": bool(data["converged"][b])}
               for b in range(nb)]
    return {"Phi": Phi, "next_batch": nb, "history": history, "fingerprint": str(fp)}
