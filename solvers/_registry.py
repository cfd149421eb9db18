"""The registry ``name -> method``: both the dispatch table and the list of names.

A backend registers itself with :func:`register`, declaring the options it accepts (with their
defaults), whether it acts on any QUBO (``kind="qubo"``; on a layer it runs row by row) or only
on a layer (``kind="layer"``) or codes a :class:`solvers.SparseProblem` (``kind="sparse"``,
:func:`solvers.sparse.problem.register_sparse`), and an optional size check run before any work
starts. Names are unique across kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import math
import numbers

import numpy as np

from reference.validation import check_positive_int

__all__ = ["Method", "Outcome", "METHODS", "register", "method_names", "resolve_options", "OPTION_CHECKS"]


#: Largest value of a C ``int``: the samplers of dwave-samplers take their counts as one.
C_INT_MAX = 2**31 - 1


def _count(minimum: int, maximum: int | None = None):
    def check(value, name):
        if isinstance(value, str):
            hi = "" if maximum is None else f" and <= {maximum}"
            raise TypeError(f"{name} must be an integer >= {minimum}{hi}, found the string {value!r}")
        v = check_positive_int(value, name, minimum=minimum)
        if maximum is not None and v > maximum:
            raise ValueError(f"{name} must be <= {maximum}, found {v}")
    return check


def _seconds(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0 or value > C_INT_MAX:
        kind = TypeError if isinstance(value, str) else ValueError
        raise kind(f"{name} must be a positive number (finite, at most {C_INT_MAX}) or None, found {value!r}")


def _beta_range(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair [hot, cold] of inverse temperatures, found {value!r}")
    if any(isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Real) for b in value):
        raise ValueError(f"{name} must hold two real numbers, found {value!r}")
    lo, hi = (float(b) for b in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
        raise ValueError(f"{name} must be two finite numbers 0 < hot <= cold, found {value!r}")


#: Checks of options that several methods share, by name; ``None`` is always accepted (it means
#: the method's own default). Run by :func:`resolve_options` on every given value, so a bad seed
#: or thread count is refused with the option named before any work starts.
OPTION_CHECKS = {
    "seed": _count(0),
    "threads": _count(1, 1024),
    "num_reads": _count(1, C_INT_MAX),
    "num_sweeps": _count(1, C_INT_MAX),
    "num_restarts": _count(1, C_INT_MAX),
    "max_nodes": _count(1),
    "batch": _count(1),
    "max_iter": _count(1),
    "max_vars": _count(0),
    "max_atoms": _count(1),
    "n_nonzero": _count(0),
    "time_limit": _seconds,
    "timeout": _seconds,
    "beta_range": _beta_range,
}


def resolve_options(method: str, accepted: dict, given: dict) -> dict:
    """``accepted`` defaults updated with ``given``; an unknown option is an error listing the
    accepted ones (:func:`solvers.solve`, for every kind of problem).
    Given values of the shared options in :data:`OPTION_CHECKS` are checked here."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"method {method!r} got unknown option(s) {unknown}; it accepts "
            f"{sorted(accepted) or 'no options'}"
        )
    for name, value in given.items():
        check = OPTION_CHECKS.get(name)
        if check is not None and value is not None:
            check(value, name)
    opts = dict(accepted)
    opts.update(given)
    return opts


@dataclass
class Outcome:
    """What a backend hands back to :func:`solvers.solve` (which recomputes the energy)."""

    x: np.ndarray
    optimal: bool = False
    lower_bound: float | None = None
    status: str = "best found"
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., Outcome]
    kind: str
    options: dict
    summary: str
    exact: bool = False
    check: Callable[[int, dict], None] | None = None

    def resolve_options(self, given: dict) -> dict:
        return resolve_options(self.name, self.options, given)

    def check_size(self, n: int, opts: dict) -> None:
        if self.check is not None:
            self.check(n, opts)


METHODS: dict[str, Method] = {}


def register(name: str, *, kind: str, summary: str, options: dict[str, Any] | None = None,
             exact: bool = False, check=None):
    """Decorator registering ``run`` under ``name``."""
    if kind not in ("qubo", "layer", "sparse"):
        raise ValueError(f"kind must be 'qubo', 'layer' or 'sparse', found {kind!r}")

    def deco(run):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, kind, dict(options or {}), summary, exact, check)
        return run

    return deco


def method_names(kind: str | None = None) -> list[str]:
    """Sorted names of the registered methods (optionally of one kind)."""
    return sorted(n for n, m in METHODS.items() if kind is None or m.kind == kind)
