"""The exact methods as dimod samplers, to swap in for ``dimod.ExactSolver``.

:class:`ExhaustiveSampler` enumerates all ``2^n`` states; :class:`TreeSampler` runs the branch
and bound of :mod:`solvers.tree`. Both return a ``dimod.SampleSet`` holding the ``num_states``
lowest states (default 1), lowest first, in the model's own vartype (SPIN models are solved in
BINARY form and converted back); energies are computed by dimod from the caller's model.
The sample set's ``info`` says whether the states are proven to be the lowest (``optimal``) and
gives a proven ``lower_bound`` on the minimum energy.
"""

from __future__ import annotations

import dimod
import numpy as np

from reference.validation import check_positive_int

from .bqm import BQM
from .exhaustive import HARD_MAX_VARS, MAX_VARS, exhaustive_minimum, lowest_states
from .least_squares import ORDERS
from ._registry import METHODS
from .tree import BOUNDS, default_max_nodes, tree_search

__all__ = ["ExhaustiveSampler", "TreeSampler"]


class _ExactSampler(dimod.Sampler):
    """Shared plumbing: vartype conversion, the sample set, the info."""

    def _solve(self, model: BQM, num_states: int, **kw):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, bqm, num_states: int = 1, **kwargs):
        """The ``num_states`` lowest states of ``bqm`` (a ``dimod.BinaryQuadraticModel``)."""
        if not isinstance(bqm, dimod.BinaryQuadraticModel):
            raise ValueError(f"bqm must be a dimod.BinaryQuadraticModel, found {type(bqm).__name__}")
        num_states = check_positive_int(num_states, "num_states")
        model = BQM.from_dimod(bqm)
        states, info = self._solve(model, num_states, **kwargs)
        if bqm.vartype is dimod.SPIN:
            states = 2 * states.astype(np.int8) - 1
        return dimod.SampleSet.from_samples_bqm((states, model.labels), bqm, info=info)


class ExhaustiveSampler(_ExactSampler):
    """Exact sampler enumerating all ``2^n`` states (:mod:`solvers.exhaustive`).

    Parameters of ``sample``: ``num_states`` (default 1) and ``max_vars`` (default 34, at most
    40; more variables are refused before any work starts).

    Examples
    --------
    >>> import dimod
    >>> ss = ExhaustiveSampler().sample(dimod.BQM({"a": 1.0, "b": -1.0}, {"ab": -1.0}, 0, "SPIN"))
    >>> ss.first.energy
    -3.0
    """

    parameters = {"num_states": [], "max_vars": []}
    properties = {"exact": True, "max_vars": MAX_VARS, "hard_max_vars": HARD_MAX_VARS}

    def _solve(self, model, num_states, max_vars=MAX_VARS):
        max_vars = check_positive_int(max_vars, "max_vars", minimum=0, maximum=HARD_MAX_VARS)
        if model.n > max_vars:
            raise ValueError(f"ExhaustiveSampler: the model has {model.n} variables, above the limit "
                             f"max_vars == {max_vars} (at most {HARD_MAX_VARS}); use TreeSampler")
        if num_states == 1:
            res = exhaustive_minimum(model.P, model.q, model.c)
            states, energies = res.x[None, :], np.array([res.energy])
        else:
            states, energies = lowest_states(model.P, model.q, model.c, num_states)
        return states, {"optimal": True, "lower_bound": float(model.energies(states).min()),
                        "status": "optimal"}


class TreeSampler(_ExactSampler):
    """Exact sampler by branch and bound on the triangular factor (:mod:`solvers.tree`).

    Parameters of ``sample``: ``num_states`` (default 1), ``max_nodes`` (default None:
    :func:`solvers.tree.default_max_nodes` of the width unless a ``time_limit`` is given alone), ``time_limit`` (seconds, default None), ``order`` and
    ``bound`` (see
    :func:`solvers.tree.tree_search`). On a limit the best states found are returned with
    ``info["optimal"] == False`` and ``info["lower_bound"]`` the proven bound.
    """

    parameters = {"num_states": [], "max_nodes": [], "time_limit": [], "order": list(ORDERS),
                  "bound": list(BOUNDS)}
    properties = {"exact": True, "orders": list(ORDERS), "bounds": list(BOUNDS)}

    def _solve(self, model, num_states, max_nodes=None, time_limit=None, order="schur",
               bound="rows"):
        METHODS["tree"].resolve_options({"max_nodes": max_nodes, "time_limit": time_limit, "order": order,
                                         "bound": bound})  # the tree method's declared checks
        if max_nodes is None and time_limit is None:
            max_nodes = default_max_nodes(model.n)
        res = tree_search(model.P, model.q, model.c, order=order, bound=bound,
                          num_states=num_states, max_nodes=max_nodes, time_limit=time_limit)
        info = {"optimal": res.optimal, "lower_bound": res.lower_bound, "status": res.status,
                "nodes": res.info["nodes"]}
        return res.info["states"], info
