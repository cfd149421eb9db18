"""The sparse coding study: relaxations against the exact l0 optimum on natural-image patches.

``run_sparse_suite(seed, out_dir=None, quick=False)`` returns a list of flat result dicts (one
per table row; key ``"table"`` names the table) and, with ``out_dir``, saves the figures as PNG
(needs matplotlib). Parts (docs/sparse.md):

(a) ``"gap"``: on small dictionaries (K <= 16 atoms learned on whitened patches), the l0
    objective ``1/2 ||x - Phi a||^2 + lam ||a||_0`` reached by each relaxation, against its
    exact minimum (:func:`solvers.sparse.code` with ``method="l0-exact"``). Each code is scored as
    returned ("raw") and after least squares on its support ("debiased"). l0 and CEL0 run at
    the l0 ``lam``; l1 and l1/2 run at the multiple of it (from a small grid) that gives the
    lowest mean debiased l0 objective, i.e. tuned in their favour.
(b) ``"curve"``: reconstruction error against sparsity on held-out patches, for each penalty
    with a dictionary learned with that penalty, at several overcompleteness levels; and
    ``"headline"``: at equal relative error, how many more active units l1 needs than each
    l0-like penalty; at equal sparsity, how much larger l1's error is.
(c) figures: learned atoms as an image grid per penalty, and the error/sparsity curves.

Run it with ``python -m reference.studies.sparse_study --out docs/figures/sparse`` (or through
``python -m reference.compare --suite sparse``).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from solvers.sparse import code, learn_dictionary, least_squares_on_supports

from ..patches import natural_images, whiten_images, extract_patches
from ..sparse import objective
from .progress import progress_bar

__all__ = ["atom_grid", "format_tables", "gap_rows", "headline_rows", "interp", "pyplot", "run_sparse_suite"]

PENALTY_ORDER = ("l0", "cel0", "l1/2", "l1")

# Learning lambdas (this project's convention) giving codes of tens of units on whitened
# patches of pooled variance 0.1.
_LEARN_LAM = {"l0": 0.1, "cel0": 0.1, "l1/2": 0.15, "l1": 0.3}


def _config(quick: bool) -> dict:
    if quick:
        return dict(size=8, lr=4.0, gap_K=(8,), gap_lams=(0.1, 0.3), gap_N=40, gap_train=2000,
                    curve_K=(64, 128), train=4000, test=200, sweep=(0.25, 0.5, 1.0, 2.0, 4.0),
                    tune=(0.3, 1.0, 3.0))
    return dict(size=16, lr=4.0, gap_K=(8, 12, 16), gap_lams=(0.05, 0.1, 0.2), gap_N=300, gap_train=20000,
                curve_K=(256, 512), train=15000, test=1000, sweep=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
                tune=(0.1, 0.3, 1.0, 3.0))


def _debias(Phi, X, A):
    return least_squares_on_supports(Phi, X, A != 0)


def gap_rows(Phi, X, lam, tune, seed):
    """Rows of the optimality-gap table at one ``lam``: each coder's codes scored by the l0
    objective against the exact l0 optimum (method ``l0-exact``), raw and debiased."""
    K = Phi.shape[1]
    best = code(Phi, X, "l0", lam, "l0-exact")
    f_star = best.info["objective"]
    rows = []

    def score(name, A, lam_used, seconds):
        for variant, Av in (("raw", A), ("debiased", _debias(Phi, X, A))):
            f = objective(Phi, X, Av, "l0", lam)
            rel = (f - f_star) / np.maximum(f_star, 1e-300)
            rows.append({
                "table": "gap", "K": K, "lam": lam, "method": name, "variant": variant,
                "lam_used": lam_used, "mean_rel_gap": float(np.mean(rel)),
                "max_rel_gap": float(np.max(rel)),
                "frac_optimal": float(np.mean(f <= f_star * (1 + 1e-9) + 1e-12)),
                "mean_l0": float(np.mean(np.count_nonzero(Av, axis=1))),
                "exact_mean_l0": float(np.mean(np.count_nonzero(best.x, axis=1))),
                "seconds": seconds, "N": X.shape[0], "seed": seed,
            })

    rows.append({"table": "gap", "K": K, "lam": lam, "method": "exact", "variant": "raw", "lam_used": lam,
                 "mean_rel_gap": 0.0, "max_rel_gap": 0.0, "frac_optimal": 1.0,
                 "mean_l0": float(np.mean(np.count_nonzero(best.x, axis=1))),
                 "exact_mean_l0": float(np.mean(np.count_nonzero(best.x, axis=1))),
                 "seconds": best.seconds, "N": X.shape[0], "seed": seed})
    for pen in ("l0", "cel0"):
        r = code(Phi, X, pen, lam, "fista", max_iter=5000, tol=1e-8)
        score(f"fista-{pen}", r.x, lam, r.seconds)
    r = code(Phi, X, "l0", lam, "omp")
    score("omp", r.x, lam, r.seconds)
    for pen in ("l1/2", "l1"):
        cands = []
        for m in tune:
            r = code(Phi, X, pen, lam * m, "fista", max_iter=5000, tol=1e-8)
            f = objective(Phi, X, _debias(Phi, X, r.x), "l0", lam)
            cands.append((float(np.mean(f)), m, r))
        _, m, r = min(cands, key=lambda c: c[0])
        score(f"fista-{pen}", r.x, lam * m, r.seconds)
    return rows


def _curve_rows(Phi, X, pen, lam_learn, sweep, K):
    xx = np.sum(X * X, axis=1)
    rows = []
    for m in sweep:
        lam = lam_learn * m
        r = code(Phi, X, pen, lam, "fista", max_iter=3000, tol=1e-6)
        R = X - r.x @ Phi.T
        rows.append({"table": "curve", "penalty": pen, "K": K, "n": X.shape[1], "lam": lam,
                     "mean_l0": float(np.mean(np.count_nonzero(r.x, axis=1))),
                     "rel_error": float(np.mean(np.sum(R * R, axis=1)) / np.mean(xx)),
                     "converged": r.info["converged"], "seconds": r.seconds})
    return rows


def interp(x_query, xs, ys, log=True):
    """Piecewise-linear interpolation of ys at x_query on sorted xs (log-log); NaN outside."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (xs > 0) & (ys > 0)
    xs, ys = xs[ok], ys[ok]
    if xs.size < 2:
        return float("nan")
    o = np.argsort(xs)
    xs, ys = xs[o], ys[o]
    if not xs[0] <= x_query <= xs[-1]:
        return float("nan")
    if log:
        return float(np.exp(np.interp(np.log(x_query), np.log(xs), np.log(ys))))
    return float(np.interp(x_query, xs, ys))


def headline_rows(curves, error_level=0.25, sparsity_level=None):
    """l1 against each l0-like penalty at one error level and one sparsity level (per K).

    ``l1_denser_by``: active units l1 needs at relative error ``error_level`` over those the
    other penalty needs; ``l1_error_ratio``: l1's error at ``sparsity_level`` active units over
    the other's (default: patch dimension / 16, read from the curves' ``n``). Values come from
    log-log interpolation along each curve; NaN where a curve does not reach the level.
    """
    rows = []
    for K in sorted({c["K"] for c in curves}):
        by = {p: [c for c in curves if c["K"] == K and c["penalty"] == p] for p in PENALTY_ORDER}
        l1 = by["l1"]
        if not l1:
            continue
        k = sparsity_level if sparsity_level is not None else l1[0].get("n", 256) / 16
        for pen in ("l0", "cel0", "l1/2"):
            other = by[pen]
            if not other:
                continue
            k_l1 = interp(error_level, [c["rel_error"] for c in l1], [c["mean_l0"] for c in l1])
            k_o = interp(error_level, [c["rel_error"] for c in other], [c["mean_l0"] for c in other])
            e_l1 = interp(k, [c["mean_l0"] for c in l1], [c["rel_error"] for c in l1])
            e_o = interp(k, [c["mean_l0"] for c in other], [c["rel_error"] for c in other])
            rows.append({"table": "headline", "K": K, "versus": pen,
                         "error_level": error_level, "units_l1": k_l1, "units_other": k_o,
                         "l1_denser_by": k_l1 / k_o if k_o else float("nan"),
                         "sparsity_level": k, "error_l1": e_l1, "error_other": e_o,
                         "l1_error_ratio": e_l1 / e_o if e_o else float("nan")})
    return rows


def atom_grid(Phi, size: int | None = None, pad: int = 1) -> np.ndarray:
    """Atoms (columns of ``Phi``, each ``size x size``) tiled in a square grid, each scaled to [-1, 1].

    Returns a 2-D float array (NaN in the padding) ready for ``imshow``.
    """
    Phi = np.asarray(Phi, dtype=np.float64)
    n, K = Phi.shape
    size = int(round(np.sqrt(n))) if size is None else int(size)
    if size * size != n:
        raise ValueError(f"size must satisfy size^2 == atom length {n}, found {size}")
    cols = int(np.ceil(np.sqrt(K)))
    rows = int(np.ceil(K / cols))
    out = np.full((rows * (size + pad) + pad, cols * (size + pad) + pad), np.nan)
    for k in range(K):
        a = Phi[:, k].reshape(size, size)
        m = np.max(np.abs(a))
        r, c = divmod(k, cols)
        out[pad + r * (size + pad):pad + r * (size + pad) + size,
            pad + c * (size + pad):pad + c * (size + pad) + size] = a / m if m > 0 else a
    return out


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError naming the ``plots`` extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the study's figures need the package 'matplotlib' "
                          "(pip install 'qubo-reference[plots]'), or call run_sparse_suite(out_dir=None)") from None
    return plt


def _save_figures(out_dir, dictionaries, curves, size):
    plt = pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    Kmax = max(K for K, _ in dictionaries)
    pens = [p for p in PENALTY_ORDER if (Kmax, p) in dictionaries]
    fig, axes = plt.subplots(1, len(pens), figsize=(4 * len(pens), 4.3))
    for ax, p in zip(np.atleast_1d(axes), pens):
        ax.imshow(atom_grid(dictionaries[(Kmax, p)], size), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{p}, K={Kmax}")
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(out_dir, "sparse_atoms.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    Ks = sorted({c["K"] for c in curves})
    fig, axes = plt.subplots(1, len(Ks), figsize=(5 * len(Ks), 4), squeeze=False)
    for ax, K in zip(axes[0], Ks):
        for p in PENALTY_ORDER:
            pts = sorted(((c["mean_l0"], c["rel_error"]) for c in curves if c["K"] == K and c["penalty"] == p))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=p)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("mean active units per patch")
        ax.set_ylabel("relative reconstruction error")
        ax.set_title(f"K = {K} atoms ({size}x{size} patches)")
        ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "sparse_error_vs_sparsity.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def run_sparse_suite(seed=0, out_dir=None, quick=False, folder=None, progress: bool = False) -> list[dict]:
    """Run the study and return its rows (tables ``gap``, ``curve``, ``headline``, ``figure``).

    Parameters
    ----------
    seed : int, default=0
        Seeds the patches and the initial dictionaries.
    out_dir : str, optional
        Where to save the PNG figures (needs matplotlib); none are drawn when None.
    quick : bool, default=False
        8x8 patches and small sizes (seconds); the full run uses 16x16 patches (minutes).
    folder : str, optional
        A folder of the user's images instead of scikit-image's photographs.
    progress : bool, default=False
        Show a bar of the study's steps (each dictionary learned, each gap table) on stderr.
    """
    cfg = _config(quick)
    total = len(cfg["gap_K"]) * len(cfg["gap_lams"]) + len(cfg["curve_K"]) * len(PENALTY_ORDER)
    with progress_bar(total, progress, "sparse") as bar:
        return _run_sparse_suite(seed, out_dir, quick, folder, cfg, bar)


def _run_sparse_suite(seed, out_dir, quick, folder, cfg, bar) -> list[dict]:
    t0 = time.perf_counter()
    images = whiten_images(natural_images(folder))
    size = cfg["size"]
    results: list[dict] = []

    # (a) optimality gaps on small dictionaries
    train = extract_patches(images, cfg["gap_train"], size, seed=(seed, 1))
    test = extract_patches(images, cfg["gap_N"], size, seed=(seed, 2))
    for K in cfg["gap_K"]:
        Phi = learn_dictionary(train, K, "l1", _LEARN_LAM["l1"], lr=cfg["lr"], seed=seed).Phi
        for lam in cfg["gap_lams"]:
            bar.set_postfix_str(f"gap: K={K} lam={lam}")
            results += gap_rows(Phi, test, lam, cfg["tune"], seed)
            bar.update()

    # (b) error against sparsity, a dictionary per penalty and overcompleteness
    train = extract_patches(images, cfg["train"], size, seed=(seed, 3))
    test = extract_patches(images, cfg["test"], size, seed=(seed, 4))
    dictionaries = {}
    curves = []
    for K in cfg["curve_K"]:
        for pen in PENALTY_ORDER:
            bar.set_postfix_str(f"learn: K={K} penalty={pen}")
            d = learn_dictionary(train, K, pen, _LEARN_LAM[pen], lr=cfg["lr"], seed=seed)
            bar.update()
            dictionaries[(K, pen)] = d.Phi
            results.append({"table": "dictionary", "K": K, "penalty": pen, "lam": _LEARN_LAM[pen],
                            "patches": train.shape[0], "lr": cfg["lr"], "final_error": d.history[-1]["error"],
                            "final_l0": d.history[-1]["l0"], "seconds": d.seconds})
            curves += _curve_rows(d.Phi, test, pen, _LEARN_LAM[pen], cfg["sweep"], K)
    results += curves
    results += headline_rows(curves)

    if out_dir is not None:
        for path in _save_figures(out_dir, dictionaries, curves, size):
            results.append({"table": "figure", "path": path})
    results.append({"table": "run", "seed": seed, "quick": bool(quick), "patch_size": size,
                    "seconds": time.perf_counter() - t0})
    return results


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_tables(results) -> str:
    """The study's rows as Markdown tables, one per ``table`` key."""
    out = []
    for name in ("gap", "headline", "dictionary", "curve"):
        rows = [r for r in results if r.get("table") == name]
        if not rows:
            continue
        keys = [k for k in rows[0] if k not in ("table", "seed")]
        out.append(f"### {name}\n")
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for r in rows:
            out.append("| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m reference.studies.sparse_study",
                                description="Sparse coding study: gaps to exact l0, error/sparsity curves")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the PNG figures")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--folder", default=None, help="a folder of your own images")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    a = p.parse_args(argv)
    res = run_sparse_suite(a.seed, a.out, a.quick, a.folder, progress=a.progress or sys.stderr.isatty())
    print(format_tables(res))


if __name__ == "__main__":
    main()
