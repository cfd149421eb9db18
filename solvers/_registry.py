"""The registry ``name -> method``: the dispatch table, the list of names, and the one place
where options are checked.

A backend registers itself with :func:`register`, declaring each option it accepts with its
default and the values it accepts (a :class:`~reference.validation.Param`: ``Integer``,
``Real``, ``Choice``, ``Flag``, ``Interval``, ``Array``; options shared by several methods,
such as ``seed`` or ``time_limit``, may be declared by their default alone and take the shared
declaration in :data:`SHARED`), what it acts on (``kind``: ``"qubo"`` any QUBO, row by row on
a layer; ``"layer"`` only a layer's weights whole; ``"sparse"`` a :class:`solvers.SparseProblem`,
registered through :func:`solvers.sparse.problem.register_sparse`), and optionally ``size_limit``, the option
that caps the number of variables, and ``certifies_bound``: whether every ``lower_bound`` it
reports (and every ``optimal`` it claims) is a proof, the only bounds :mod:`reference.compare.harness`
and :func:`reference.testing.rounding_report` take (docs/conventions.md). :func:`resolve_options` checks every given value against
its declaration before any work starts, so a bad value is refused with the option named.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from reference.validation import ByWidth, Integer, Interval, Param, Real

__all__ = ["Method", "Outcome", "METHODS", "SHARED", "KINDS", "C_INT_MAX", "register", "method_names",
           "resolve_options", "at_width"]


#: Largest value of a C ``int``: the samplers of dwave-samplers take their counts as one.
C_INT_MAX = 2**31 - 1

#: What a method can act on.
KINDS = ("qubo", "layer", "sparse")

#: Declarations of options that several methods share, by name: a method that declares one of
#: these names by its default alone gets this constraint (with its own default).
SHARED: dict[str, Param] = {
    "seed": Integer(0, low=0, none=True, doc="seed of every random choice (None: fresh entropy)"),
    "threads": Integer(None, low=1, high=1024, none=True, doc="threads (None: one per available core)"),
    "num_reads": Integer(1, low=1, high=C_INT_MAX, doc="independent runs; the best is returned"),
    "num_sweeps": Integer(1000, low=1, high=C_INT_MAX, doc="sweeps per read"),
    "num_restarts": Integer(20, low=1, high=C_INT_MAX, doc="restarts per read"),
    "max_nodes": Integer(None, low=1, none=True, doc="deterministic work budget in nodes"),
    "max_iter": Integer(1000, low=1, doc="iteration limit"),
    "time_limit": Real(None, low=0, high=C_INT_MAX, open_low=True, none=True,
                       doc="wall-clock limit in seconds (makes results machine dependent)"),
    "beta_range": Interval(None, none=True, doc="[hot, cold] inverse temperatures"),
}


def _declare(method: str, options: dict) -> dict[str, Param]:
    out = {}
    for name, spec in (options or {}).items():
        if isinstance(spec, Param):
            out[name] = spec
        elif name in SHARED:
            p = copy.copy(SHARED[name])
            p.default = spec
            out[name] = p
        else:
            raise TypeError(f"method {method!r}: option {name!r} must be declared with a Param "
                            f"(Integer, Real, Choice, ...), found the bare default {spec!r}")
    return out


def resolve_options(method: str, declared: dict[str, Param], given: dict, n: int | None = None) -> dict:
    """The declared defaults updated with ``given``, every given value checked against its
    declaration; an unknown option is an error listing the accepted ones. A default that depends
    on the width (:class:`~reference.validation.ByWidth`) is evaluated at ``n`` when ``n`` is
    given, and otherwise left for :func:`at_width` (a layer's rows differ in width)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"method {method!r} got unknown option(s) {unknown}; it accepts "
            f"{sorted(declared) or 'no options'}"
        )
    opts = {name: p.default for name, p in declared.items()}
    opts.update(given)
    for name in given:  # after the update: a bound may name another option (``low="window"``)
        declared[name].check(given[name], name, opts)
    for name, p in declared.items():  # a default that a given option now contradicts
        if name not in given and isinstance(getattr(p, "low", None), str) and p.low in given:
            p.check(opts[name], f"{name} (its default)", opts)
    return opts if n is None else at_width(opts, n)


def at_width(opts: dict, n: int) -> dict:
    """``opts`` with every width-dependent default (:class:`~reference.validation.ByWidth`)
    replaced by its value for a QUBO of ``n`` variables."""
    return {k: v(n) if isinstance(v, ByWidth) else v for k, v in opts.items()}


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
    params: dict
    summary: str
    exact: bool = False
    size_limit: str | None = None
    extra: dict = field(default_factory=dict)
    certifies_bound: bool = False

    @property
    def options(self) -> dict:
        """``{option: default}``."""
        return {name: p.default for name, p in self.params.items()}

    def resolve_options(self, given: dict, n: int | None = None) -> dict:
        return resolve_options(self.name, self.params, given, n)

    def check_size(self, n: int, opts: dict) -> None:
        """Refuse a problem with more variables than the option named by ``size_limit`` allows."""
        if self.size_limit is not None and n > opts[self.size_limit]:
            limit, most = opts[self.size_limit], getattr(self.params[self.size_limit], "high", None)
            raise ValueError(
                f"{self.name}: problem has {n} variables, above the limit {self.size_limit} == {limit} "
                f"(raise {self.size_limit}{'' if most is None else f' up to {most}'}, or use another method)"
            )


METHODS: dict[str, Method] = {}


def register(name: str, *, kind: str, summary: str, options: dict[str, Any] | None = None,
             exact: bool = False, size_limit: str | None = None, certifies_bound: bool = False, **extra):
    """Decorator registering ``run`` under ``name`` with its declared options (see the module
    docstring). ``extra`` holds kind-specific metadata (e.g. the penalties a sparse coder accepts)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, found {kind!r}")
    params = _declare(name, options)
    if size_limit is not None and size_limit not in params:
        raise ValueError(f"method {name!r}: size_limit {size_limit!r} is not one of its options")
    for pname, p in params.items():  # a default must satisfy its own declaration
        p.check(p.default, f"{name}: default of {pname}", {k: q.default for k, q in params.items()})

    def deco(run):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, kind, params, summary, exact, size_limit, dict(extra),
                               certifies_bound=bool(certifies_bound))
        return run

    return deco


def method_names(kind: str | None = None) -> list[str]:
    """Sorted names of the registered methods (optionally of one kind: ``"qubo"``, ``"layer"``,
    ``"sparse"``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)} or None, found {kind!r}")
    return sorted(n for n, m in METHODS.items() if kind is None or m.kind == kind)
