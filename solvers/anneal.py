"""Simulated annealing through dwave-samplers (or dwave-neal, for users who have only that),
and any dimod sampler a user passes in place of a method name.

The best state of all reads is chosen by this project's model (energies recomputed in float64);
the sampler's own energy for that state is kept in ``info["sampler_energy"]``.
"""

from __future__ import annotations

import numpy as np

from reference.validation import ByWidth, Passed

from ._registry import Method, Outcome, register

__all__ = ["simulated_annealing_sampler", "sampler_method", "anneal_reads"]


def anneal_reads(n: int) -> int:
    """``anneal``'s default ``num_reads`` for a QUBO of ``n`` variables: 128 up to 64 variables,
    then the same work per row (``num_reads * n^2 = 128 * 64^2`` sweeps of a dense row) down to
    8 reads from 256 variables on. Chosen by measurement (docs/performance.md, "Default budgets
    by width"): ``anneal`` is never the best per CPU second there (``tabu`` gets a lower loss
    in less time on every family from 64 variables on), and 128 reads at n = 384 cost about
    ten seconds a row."""
    n = int(n)
    return 128 if n <= 64 else max(8, round(128 * (64 / n) ** 2))


def simulated_annealing_sampler():
    """dwave-samplers' ``SimulatedAnnealingSampler``; dwave-neal's if only that is installed."""
    try:
        from dwave.samplers import SimulatedAnnealingSampler
    except ImportError:
        try:
            from neal import SimulatedAnnealingSampler
        except ImportError:
            raise ImportError(
                "method 'anneal' needs the package 'dwave-samplers' (pip install dwave-samplers)"
            ) from None
    return SimulatedAnnealingSampler()


def _best_of(bqm, sampleset) -> Outcome:
    order = [sampleset.variables.index(v) for v in bqm.labels]
    X = np.asarray(sampleset.record.sample)[:, order]
    if X.size and X.min() < 0:  # a SPIN sampler: -1/+1 -> 0/1
        X = (X + 1) // 2
    energies = bqm.energies(X)
    i = int(np.argmin(energies))
    return Outcome(
        x=X[i].astype(np.int8),
        info={"sampler_energy": float(sampleset.record.energy[i]), "reads": int(X.shape[0])},
    )


def _sample(sampler, bqm, **kwargs) -> Outcome:
    if bqm.n == 0:
        return Outcome(x=np.zeros(0, dtype=np.int8), optimal=True, status="optimal")
    return _best_of(bqm, sampler.sample(bqm.to_dimod(), **kwargs))


@register("anneal", kind="qubo", slow_first=2, budget="num_reads",
          options={"num_reads": ByWidth(anneal_reads, "128 up to n = 64, then 128 (64/n)^2, at least 8"),
                   "num_sweeps": 1000, "beta_range": None, "seed": 0},
          summary="simulated annealing (dwave-samplers), best of num_reads (by default 128, fewer on rows "
                  "wider than 64 variables: same work per row, at least 8)")
def _anneal(bqm, num_reads, num_sweeps, beta_range, seed) -> Outcome:
    kwargs = {"num_reads": int(num_reads), "num_sweeps": int(num_sweeps)}
    if beta_range is not None:
        kwargs["beta_range"] = tuple(beta_range)
    if seed is not None:
        kwargs["seed"] = int(seed) % (2**31)  # the sampler takes [0, 2^31)
    return _sample(simulated_annealing_sampler(), bqm, **kwargs)


def sampler_method(sampler) -> Method:
    """Wrap a ``dimod.Sampler`` object (tabu, a QPU, a user's own) as a QUBO method.

    Its options are the keyword names the sampler declares in ``sampler.parameters``; only
    those the caller gives are passed on.
    """
    name = type(sampler).__name__
    params = getattr(sampler, "parameters", None)
    if not callable(getattr(sampler, "sample", None)) or params is None:
        raise ValueError(
            f"method must be a registered name or a dimod sampler (with .sample and .parameters), "
            f"found {name}"
        )
    declared = {p: Passed(_UNSET) for p in params}  # the sampler checks its own parameters

    def run(bqm, **opts):
        return _sample(sampler, bqm, **{k: v for k, v in opts.items() if v is not _UNSET})

    return Method(name=name, run=run, kind="qubo", params=declared, summary=f"dimod sampler {name}")


class _Unset:
    def __repr__(self):
        return "<sampler default>"


_UNSET = _Unset()
