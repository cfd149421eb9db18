"""Reader for the OR-Library binary quadratic programming files (Beasley 1990; ``bqpN.txt``).

Format: the first token is the number of instances; each instance is ``n nnz`` followed by
``nnz`` triples ``i j q_ij`` (1-indexed, one triangle including the diagonal). The instances
*maximise* ``sum_ij q_ij x_i x_j`` with ``q`` symmetric, so an off-diagonal entry counts twice.
As a minimisation QUBO (``E = -objective``): ``Q_ii = -q_ii``, ``Q_ij = -2 q_ij`` (i < j), i.e.
the :class:`~solvers.BQM` with ``P_ij = -q_ij`` off the diagonal and ``q_i = -q_ii``.

Refused (ValueError): a count below 1, an instance above :data:`solvers.bqm.MAX_DENSE_VARS` variables or
announcing more entries than follow (both before any allocation), an index outside ``1..n``, a
coefficient that is not finite, and an entry given twice, directly or mirrored (``(i, j)`` and
``(j, i)``): a full-matrix file would otherwise count every off-diagonal entry twice.
"""

from __future__ import annotations

import os

import numpy as np

from .bqm import BQM, check_n_vars

__all__ = ["read_bqp", "parse_bqp"]


def parse_bqp(text: str) -> list[BQM]:
    """Parse the text of an OR-Library ``bqp`` file into minimisation models (one per instance)."""
    tokens = text.split()
    if not tokens:
        raise ValueError("bqp text is empty")
    pos = 0

    def take(kind, what):
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"bqp text ends early: expected {what} at token {pos}")
        tok = tokens[pos]
        pos += 1
        try:
            return kind(tok)
        except ValueError:
            raise ValueError(f"bqp text: expected {what} at token {pos - 1}, found {tok!r}") from None

    models = []
    count = take(int, "the number of instances")
    if count < 1:
        raise ValueError(f"bqp text: the number of instances must be >= 1, found {count}")
    for inst in range(count):
        n = take(int, f"n of instance {inst + 1}")
        nnz = take(int, f"the entry count of instance {inst + 1}")
        check_n_vars(n, f"bqp instance {inst + 1}: n")
        if not 0 <= nnz <= n * (n + 1) // 2:
            raise ValueError(f"bqp instance {inst + 1}: the entry count must lie in [0, n (n + 1) / 2] == "
                             f"[0, {n * (n + 1) // 2}], found {nnz}")
        if len(tokens) - pos < 3 * nnz:  # before allocating: the entries must be there
            raise ValueError(f"bqp text ends early: instance {inst + 1} announces {nnz} entries, but only "
                             f"{(len(tokens) - pos) // 3} follow")
        P = np.zeros((n, n))
        q = np.zeros(n)
        seen = set()
        for _ in range(nnz):
            i = take(int, "a row index") - 1
            j = take(int, "a column index") - 1
            val = take(float, "a coefficient")
            if not (0 <= i < n and 0 <= j < n):
                raise ValueError(f"bqp instance {inst + 1}: index ({i + 1}, {j + 1}) outside 1..{n}")
            if not np.isfinite(val):
                raise ValueError(f"bqp instance {inst + 1}: entry ({i + 1}, {j + 1}) is {val!r}, not finite")
            pair = (min(i, j), max(i, j))
            if pair in seen:  # one triangle only: a repeat or a mirrored (j, i) would count twice
                raise ValueError(f"bqp instance {inst + 1}: entry ({i + 1}, {j + 1}) is given twice (as "
                                 f"({pair[0] + 1}, {pair[1] + 1}) or its mirror); give one triangle only")
            seen.add(pair)
            if i == j:
                q[i] -= val
            else:  # q_ij x_i x_j + q_ji x_j x_i, both halves of the symmetric matrix
                P[i, j] -= val
                P[j, i] -= val
        models.append(BQM(P, q, 0.0))
    if pos != len(tokens):
        raise ValueError(f"bqp text has {len(tokens) - pos} tokens after the last instance")
    return models


def read_bqp(path) -> list[BQM]:
    """Read an OR-Library ``bqp`` file; instance ``k`` (1-based in the library) is item ``k-1``."""
    path = os.fspath(path)
    with open(path) as fh:
        return parse_bqp(fh.read())
