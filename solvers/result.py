"""The one result type every method returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Result", "aligned_repr"]


def aligned_repr(title: str, rows) -> str:
    """``Title(\n  key: value\n ...)`` with the keys right-aligned: the repr of every result type."""
    w = max(len(k) for k, _ in rows)
    return f"{title}(\n" + "\n".join(f"  {k.rjust(w)}: {v}" for k, v in rows) + "\n)"


@dataclass
class Result:
    """Outcome of :func:`solvers.solve`, whatever backend ran.

    Attributes
    ----------
    x : int8 or float64 array
        Binary solution (int8): shape (n,) for a :class:`~solvers.BQM`, (out, in) for a
        :class:`~solvers.LayerProblem` (1 = round up; 0 where the weight's choice is fixed).
        Codes (float64) for a :class:`~solvers.SparseProblem`: shape (N, K), one row per signal
        ((K,) for one signal given as a vector).
    energy : float
        ``E(x)`` recomputed by the problem in float64 (for a layer: the local loss, Eq. 20; for
        a sparse problem: the total objective ``sum_i F(a_i)``, docs/sparse.md).
        A backend's own figure is never reported.
    optimal : bool
        True only when the method proved ``x`` optimal.
    lower_bound : float or None
        A proven lower bound on the optimum, when the method has one (equals ``energy`` when
        ``optimal``).
    seconds : float
        Wall time of the backend.
    method : str
    status : str
        One line: ``"optimal"``, ``"best found"``, or why the method stopped.
    info : dict
        Backend extras (e.g. per-row statuses, the sampler's own energies).
    """

    x: np.ndarray
    energy: float
    optimal: bool
    lower_bound: float | None
    seconds: float
    method: str
    status: str
    info: dict = field(default_factory=dict)

    @property
    def loss(self) -> float:
        """Alias of ``energy`` (the name used for layer problems)."""
        return self.energy

    def __repr__(self) -> str:
        lb = "None" if self.lower_bound is None else f"{self.lower_bound:.10g}"
        rows = [
            ("method", self.method),
            ("status", self.status),
            ("energy", f"{self.energy:.10g}"),
            ("optimal", str(self.optimal)),
            ("lower_bound", lb),
            ("seconds", f"{self.seconds:.4g}"),
            ("x", f"{self.x.dtype} array of shape {self.x.shape}"),
            ("info", ", ".join(sorted(self.info)) or "-"),
        ]
        return aligned_repr("Result", rows)
