"""The runtime every solver and the compare harness share: the BLAS thread cap and the one
process pool.

:func:`blas_threads` caps the BLAS libraries while a block runs (defined beside
:func:`reference.validation.available_cpus`, the one count of cores). :func:`process_pool` is
the pool behind both ``solvers.solve(layer, method, workers=k)`` and ``python -m
reference.compare --jobs k``: ``k`` processes whose BLAS libraries are capped at
``cores // k`` threads each, so ``k`` workers never oversubscribe the cores. Thread counts
change how fast a product runs, never which state a method returns.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from reference.validation import available_cpus, blas_threads, check_positive_int

__all__ = ["blas_threads", "process_pool", "worker_blas_threads"]

#: The BLAS cap of a pool worker, set by :func:`_start_worker` and kept for the process's life.
_WORKER_LIMIT = None


def worker_blas_threads(workers: int) -> int:
    """BLAS threads of each of ``workers`` pool processes: ``cores // workers``, at least 1."""
    return max(1, available_cpus() // check_positive_int(workers, "workers"))


def _start_worker(threads: int) -> None:
    """Pool initializer: load every BLAS the solvers use, then cap it at ``threads`` threads."""
    global _WORKER_LIMIT
    import scipy.linalg  # noqa: F401  (scipy's BLAS is loaded before the cap, so it is capped too)

    _WORKER_LIMIT = blas_threads(threads)
    _WORKER_LIMIT.__enter__()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``concurrent.futures`` pool of ``workers`` processes, each with its BLAS libraries capped at
    :func:`worker_blas_threads` threads."""
    workers = check_positive_int(workers, "workers")
    return ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                               initargs=(worker_blas_threads(workers),))
