"""Figures of the V1 study (:mod:`reference.studies.sparse_v1`), saved as PNG with matplotlib.

``v1_atoms.png`` (the smallest pool of each penalty), ``v1_error_vs_sparsity.png`` and
``v1_error_vs_pool.png``, ``v1_error_vs_presentations.png`` (claim 1), ``v1_tuning_examples.png`` and ``v1_osi.png`` (claim 2),
``v1_rf_shapes.png`` and ``v1_rf_shapes_matched.png`` (claim 3, at the tuned lambdas and at
matched sparsity), ``v1_exact_gap.png`` (optimality).
"""

from __future__ import annotations

import os

import numpy as np

from .sparse_scale import PENALTY_ORDER
from .sparse_study import atom_grid, pyplot
from .v1_fields import THETAS

__all__ = ["save_curve_figures", "save_figures"]

_COLOR = {"l0": "C0", "cel0": "C1", "l1/2": "C2", "l1": "C3"}


def _save(fig, out_dir, name, plt, dpi=100):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_figures(out_dir, dicts, rows, tunings, shapes, size, level, matched_shapes=None) -> list[str]:
    """Draw every figure; returns their paths (``matched_shapes``: Gabor fits of the dictionaries
    learned at matched sparsity, keyed by (penalty, K))."""
    plt = pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    Kmin = min(K for _, K in dicts)
    pens = [p for p in PENALTY_ORDER if (p, Kmin) in dicts]

    fig, axes = plt.subplots(1, len(pens), figsize=(4.2 * len(pens), 4.5), squeeze=False)
    for ax, p in zip(axes[0], pens):
        ax.imshow(atom_grid(dicts[(p, Kmin)], size), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{p}, {Kmin} units")
        ax.axis("off")
    paths.append(_save(fig, out_dir, "v1_atoms.png", plt, dpi=110))

    paths += save_curve_figures(out_dir, rows, level)

    # claim 2: example tuning curves (code responses) and OSI distributions
    fig, axes = plt.subplots(len(pens), 4, figsize=(11, 2.4 * len(pens)), squeeze=False)
    for i, p in enumerate(pens):
        tu = tunings[(p, Kmin)]["code"]
        osi = np.nan_to_num(tu["osi"], nan=-1.0)
        live = np.flatnonzero(osi >= 0)
        picks = live[np.argsort(osi[live])][np.linspace(0, live.size - 1, 4).astype(int)] if live.size >= 4 else live
        for j, k in enumerate(picks):
            ax = axes[i, j]
            ax.plot(np.degrees(THETAS), tu["curve"][k], marker="o", ms=3, color=_COLOR[p])
            ax.set_title(f"{p} unit {k}: OSI {tu['osi'][k]:.2f}, f={tu['pref_freq'][k]:g}", fontsize=8)
            ax.set_xlabel("orientation (deg)", fontsize=7)
            ins = ax.inset_axes([0.72, 0.6, 0.28, 0.4])
            ins.imshow(dicts[(p, Kmin)][:, k].reshape(size, size), cmap="gray", interpolation="nearest")
            ins.axis("off")
    paths.append(_save(fig, out_dir, "v1_tuning_examples.png", plt))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 21)
    for ax, kind in zip(axes, ("code", "linear")):
        for p in pens:
            o = tunings[(p, Kmin)][kind]["osi"]
            ax.hist(o[np.isfinite(o)], bins=bins, histtype="step", color=_COLOR[p], label=p, density=True)
        ax.axvline(1 / 3, color="k", ls=":")
        ax.set_xlabel("OSI")
        ax.set_title(f"OSI, K={Kmin}, {kind} responses")
        ax.legend()
    paths.append(_save(fig, out_dir, "v1_osi.png", plt))

    paths.append(_rf_shapes(plt, out_dir, "v1_rf_shapes.png", {p: shapes[(p, Kmin)] for p in pens},
                            f"K={Kmin}, tuned lambdas"))
    if matched_shapes:
        paths.append(_rf_shapes(plt, out_dir, "v1_rf_shapes_matched.png",
                                {p: F for (p, K), F in sorted(matched_shapes.items(), key=lambda kv:
                                                                PENALTY_ORDER.index(kv[0][0]))},
                                f"K={Kmin}, matched sparsity"))

    ex = [r for r in rows if r["table"] == "exact" and r["K"] == Kmin]
    if ex:
        fig, ax = plt.subplots(figsize=(8, 4))
        w = 0.2
        for i, coder in enumerate(PENALTY_ORDER):
            vals = [next((r["mean_rel_gap"] for r in ex if r["dictionary"] == d and r["coder"] == coder
                          and r["variant"] == "debiased"), np.nan) for d in pens]
            ax.bar(np.arange(len(pens)) + (i - 1.5) * w, vals, w, color=_COLOR[coder], label=f"coder {coder}")
        ax.set_xticks(np.arange(len(pens)))
        ax.set_xticklabels([f"dictionary {d}" for d in pens])
        ax.set_ylabel("mean relative gap to exact l0 (debiased)")
        ax.set_title(f"distance from the proven l0 optimum, K={Kmin}")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir, "v1_exact_gap.png", plt))
    return paths


def _rf_shapes(plt, out_dir, name, fits, label):
    """The Ringach plane and the subregion counts of the Gabor-like atoms, one colour a penalty."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for p, F in fits.items():
        good = F["r2"] >= 0.5
        axes[0].scatter(F["nx"][good], F["ny"][good], s=5, alpha=0.5, color=_COLOR[p], label=p)
        axes[1].hist(np.minimum(F["subregions"][good], 8), bins=np.arange(0.5, 9.5), histtype="step",
                     color=_COLOR[p], label=p, density=True)
    axes[0].set_xlim(0, 1.5)
    axes[0].set_ylim(0, 1.5)
    axes[0].set_xlabel("n_x = sigma_x f")
    axes[0].set_ylabel("n_y = sigma_y f")
    axes[0].set_title(f"Ringach (2002) plane, Gabor-like atoms (r2 >= 0.5), {label}", fontsize=9)
    axes[0].legend()
    axes[1].set_xlabel("subregions (8 = 8 or more)")
    axes[1].set_title("subregions of the fitted Gabors")
    axes[1].legend()
    return _save(fig, out_dir, name, plt)


def save_curve_figures(out_dir, rows, level) -> list[str]:
    """The claim-1 figures (error against sparsity and against pool size) from the rows alone."""
    plt = pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    curves = [r for r in rows if r["table"] == "curve"]
    fig, ax = plt.subplots(figsize=(7, 5))
    Ks = sorted({c["K"] for c in curves})
    styles = dict(zip(Ks, ("-", "--", ":", "-.")))
    for p in PENALTY_ORDER:
        for K in Ks:
            pts = sorted((c["mean_l0"], c["rel_error"]) for c in curves
                         if c["penalty"] == p and c["K"] == K and not c["paper_lam"])
            if pts:
                ax.plot(*zip(*pts), styles[K], marker="o", ms=3, color=_COLOR[p], label=f"{p}, K={K}")
            pl = [(c["mean_l0"], c["rel_error"]) for c in curves if c["penalty"] == p and c["K"] == K and c["paper_lam"]]
            if pl and pl[0][0] > 0:
                ax.plot(*pl[0], "*", ms=11, color=_COLOR[p], mec="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean active units per patch")
    ax.set_ylabel("relative reconstruction error (held-out)")
    ax.set_title("error against sparsity (stars: the paper notebook's lambdas)")
    ax.legend(fontsize=7, ncol=2)
    paths.append(_save(fig, out_dir, "v1_error_vs_sparsity.png", plt))

    pool = [r for r in rows if r["table"] == "pool"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for p in PENALTY_ORDER:
        pts = sorted((r["K"], r["error_at_level"]) for r in pool if r["penalty"] == p and np.isfinite(r["error_at_level"]))
        if pts:
            ax.plot(*zip(*pts), marker="o", color=_COLOR[p], label=p)
    ax.set_xscale("log")
    ax.set_xlabel("pool size K (units)")
    ax.set_ylabel(f"relative error at {level:g} active units")
    ax.set_title("error against pool size at matched sparsity")
    ax.legend()
    paths.append(_save(fig, out_dir, "v1_error_vs_pool.png", plt))

    scale = sorted((r for r in rows if r["table"] == "scale"), key=lambda r: r["batches"])
    if len(scale) > 1:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for p in PENALTY_ORDER:
            pts = [(r["presentations"], r[f"error_{p}"]) for r in scale if np.isfinite(r.get(f"error_{p}", np.nan))]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=_COLOR[p], label=p)
        ax.set_xscale("log")
        ax.set_xlabel("patch presentations during learning")
        ax.set_ylabel(f"relative error at {level:g} active units")
        ax.set_title(f"error against the scale of learning, K={scale[0]['K']}")
        ax.legend()
        paths.append(_save(fig, out_dir, "v1_error_vs_presentations.png", plt))
    return paths
