"""The registry ``name -> method``: both the dispatch table and the list of names.

A backend registers itself with :func:`register`, declaring the options it accepts (with their
defaults), whether it acts on any QUBO (``kind="qubo"``; on a layer it runs row by row) or only
on a layer (``kind="layer"``), and an optional size check run before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Method", "Outcome", "METHODS", "register", "method_names", "resolve_options"]


def resolve_options(method: str, accepted: dict, given: dict) -> dict:
    """``accepted`` defaults updated with ``given``; an unknown option is an error listing the
    accepted ones (shared by every front door: :func:`solvers.solve`, :func:`solvers.sparse.code`)."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"method {method!r} got unknown option(s) {unknown}; it accepts "
            f"{sorted(accepted) or 'no options'}"
        )
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
    if kind not in ("qubo", "layer"):
        raise ValueError(f"kind must be 'qubo' or 'layer', found {kind!r}")

    def deco(run):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, kind, dict(options or {}), summary, exact, check)
        return run

    return deco


def method_names(kind: str | None = None) -> list[str]:
    """Sorted names of the registered methods (optionally of one kind)."""
    return sorted(n for n, m in METHODS.items() if kind is None or m.kind == kind)
