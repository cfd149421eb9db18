"""Batched l1 sparse coding against scikit-learn, and one dictionary-learning pass.

Usage::

    python benchmarks/sparse.py            # the issue's sizes: 5,000 x 256 signals, 512 atoms
    python benchmarks/sparse.py --quick    # 1,000 signals, 10,000 patches (a smoke run)

1. l1 coding (``1/2 ||x - Phi a||^2 + lam ||a||_1``) of N signals of dimension 256 on 512
   unit-norm Gaussian atoms; each signal is a combination of 20 random atoms plus noise, and
   ``lam`` is 0.1 times the mean of ``max_j |phi_j^T x|``. Peer: scikit-learn's
   ``sparse_encode(algorithm="lasso_cd", alpha=lam)`` (its alpha is this project's lambda; it runs
   coordinate descent to its fixed tol=1e-8). Ours: ``solvers.sparse.code(..., method="fista")``
   (float64 and float32 iterations, both finished by the exact Lasso solve on the found support
   and accepted only where the KKT conditions hold), and a naive FISTA (no finish) stopped when
   it reaches the same objective. Every objective is recomputed in float64; the script asserts
   that ours is within 1e-6 (relative, per signal) of scikit-learn's before printing a ratio.
   Each timing is the best of ``--repeat`` runs (the machine may be shared).
2. One pass of the V1 paper's dictionary learning (``reference.dictionary.learn_dictionary``,
   l1, batches of 250, ISTA to 1e-2, default learning rate) on whitened natural patches at
   K = 512 (needs scikit-image for the photographs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def coding(N, repeat, seed=0):
    from sklearn.decomposition import sparse_encode
    from threadpoolctl import threadpool_limits

    from reference.sparse import objective
    from solvers.sparse import code

    rng = np.random.default_rng(seed)
    n, K = 256, 512
    Phi = rng.normal(size=(n, K))
    Phi /= np.linalg.norm(Phi, axis=0)
    A0 = np.zeros((N, K))
    for i in range(N):
        A0[i, rng.choice(K, 20, replace=False)] = rng.normal(size=20)
    X = A0 @ Phi.T + 0.1 * rng.normal(size=(N, n))
    lam = 0.1 * float(np.mean(np.max(np.abs(X @ Phi), axis=1)))
    print(f"l1 coding: N={N} signals, n={n}, K={K} unit-norm atoms, lam={lam:.4f}")

    t_sk, S = _best(lambda: sparse_encode(X, Phi.T, algorithm="lasso_cd", alpha=lam), repeat)
    f_sk = objective(Phi, X, S, "l1", lam)
    print(f"  scikit-learn sparse_encode(lasso_cd):    {t_sk:8.3f} s   "
          f"mean nonzeros {np.count_nonzero(S) / N:.1f}")

    rows = []

    def report(name, t, res):
        rel = (res.objective - f_sk) / f_sk
        worst = float(np.max(rel))
        assert worst <= 1e-6, f"{name}: objective above scikit-learn's by {worst:.3g} (relative)"
        rows.append((name, t, t_sk / t))
        print(f"  {name:40s} {t:8.3f} s   x{t_sk / t:5.2f} faster   "
              f"worst rel. objective vs sklearn {worst:+.1e} (best {float(np.min(rel)):+.1e})")

    t, r = _best(lambda: code(Phi, X, "l1", lam, "fista"), repeat)
    report("fista + exact finish (float64)", t, r)
    t, r = _best(lambda: code(Phi, X, "l1", lam, "fista", dtype="float32"), repeat)
    report("fista + exact finish (float32 iterations)", t, r)
    with threadpool_limits(limits=1, user_api="blas"):
        t, r = _best(lambda: code(Phi, X, "l1", lam, "fista", dtype="float32"), repeat)
    report("same, BLAS on 1 thread", t, r)
    t, r = _best(lambda: code(Phi, X, "l1", lam, "fista", polish=False, tol=1e-9, max_iter=20_000), 1)
    report("naive fista (no finish, tol 1e-9)", t, r)
    return rows


def dictionary_pass(n_patches, seed=0):
    from reference.dictionary import learn_dictionary
    from reference.patches import natural_patches

    t0 = time.perf_counter()
    X = natural_patches(n_patches, size=16, seed=seed)
    t_patch = time.perf_counter() - t0
    res = learn_dictionary(X, 512, "l1", lam=0.3, seed=seed)
    h = res.history
    print(f"dictionary learning: {n_patches} whitened 16x16 patches ({t_patch:.2f} s to cut), K=512, l1 lam=0.3")
    print(f"  one pass: {res.seconds:8.2f} s   ({len(h)} batches of 250, mean ISTA iterations "
          f"{np.mean([r['iterations'] for r in h]):.0f}, last batch error {h[-1]['error']:.3f}, l0 {h[-1]['l0']:.1f})")
    return res.seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--skip-dictionary", action="store_true")
    p.add_argument("--skip-coding", action="store_true")
    a = p.parse_args(argv)
    if not a.skip_coding:
        coding(1000 if a.quick else 5000, a.repeat)
    if not a.skip_dictionary:
        dictionary_pass(10_000 if a.quick else 100_000)


if __name__ == "__main__":
    main()
