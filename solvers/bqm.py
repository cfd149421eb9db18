"""The binary quadratic model ``E(v) = v^T P v + q^T v + c`` (docs/conventions.md).

For binary ``v`` this is the QUBO with ``Q_ii = P_ii + q_i``, ``Q_ij = 2 P_ij`` (i < j) and offset
``c``, and dimod's ``BinaryQuadraticModel(..., 'BINARY')`` with the same linear and quadratic
biases. For real ``v`` in ``[0, 1]^n`` the same formula is the continuous extension a relaxation
optimises; it agrees with the QUBO only at the vertices (the split of ``Q_ii`` between ``P_ii``
and ``q_i`` matters there, not on binary points).
"""

from __future__ import annotations

import numpy as np

from reference.validation import as_float_array, as_int_scalar

__all__ = ["BQM", "MAX_DENSE_VARS", "MAX_ENERGY"]

#: Largest bound ``2 sum|P| + sum|q| + |c|`` on the energies (2^1000, about 1e301): it leaves the
#: solvers 2^23 of headroom below float64's largest number for their own sums and shifts.
MAX_ENERGY = 2.0**1000

#: Largest model built as a dense matrix (P alone is 200 MB at this size); checked before allocating.
MAX_DENSE_VARS = 5000


def check_n_vars(n, name: str) -> int:
    """A variable count ``0 <= n <= MAX_DENSE_VARS``, checked before a dense (n, n) matrix is allocated."""
    if n < 0:
        raise ValueError(f"{name} must be >= 0, found {n}")
    if n > MAX_DENSE_VARS:
        size = f"{8 * n * n / 2**30:.1f} GiB" if n < 10**9 else "more than 7 EiB"
        raise ValueError(f"{name} == {n} is above the limit of {MAX_DENSE_VARS} variables of a dense model "
                         f"({size} for P alone)")
    return n


class BQM:
    """``E(v) = v^T P v + q^T v + c`` over ``v`` in {0, 1}^n, all in float64.

    Parameters
    ----------
    P : array of shape (n, n)
        Symmetric. A non-symmetric matrix is refused; build from an upper-triangular QUBO
        matrix with :meth:`from_qubo`.
    q : array of shape (n,), default=zeros
    c : float, default=0
    labels : sequence of n hashables, optional
        Names of the variables (kept through dimod conversions); default ``0 .. n-1``.
    name : str, optional
        A name for tables and result files.

    Attributes
    ----------
    floor : float or None
        A lower bound on every energy that the model's origin proves, None (the default) when
        nothing is known. Only :meth:`solvers.LayerProblem.row_bqm` sets it (0: a row's loss is a
        sum of squares, docs/exact.md, section 2); the tree stops, optimal, at a state that meets
        it. Never set it on a general QUBO.

    Refused (ValueError): NaN or inf, subnormal coefficients (their precision is lost), and
    models whose bound ``2 sum|P| + sum|q| + |c|`` on ``|E(v)|`` exceeds :data:`MAX_ENERGY`.
    """

    __slots__ = ("P", "q", "c", "labels", "name", "floor")

    def __init__(self, P, q=None, c=0.0, labels=None, name=None):
        P = as_float_array(P, "P", ndim=2)
        n = P.shape[0]
        if P.shape != (n, n):
            raise ValueError(f"P must be square, found shape {P.shape}")
        tol = 1e-12 * max(1.0, float(np.max(np.abs(P)))) if n else 0.0
        if n and not np.allclose(P, P.T, rtol=0, atol=tol):
            raise ValueError(
                "P must be symmetric (v^T P v form); for an upper-triangular QUBO matrix use "
                "BQM.from_qubo"
            )
        q = np.zeros(n) if q is None else as_float_array(q, "q", shape=(n,))
        c = float(as_float_array(c, "c", ndim=0))
        if labels is None:
            labels = list(range(n))
        else:
            labels = list(labels)
            if len(labels) != n or len(set(labels)) != n:
                raise ValueError(f"labels must be {n} distinct names, found {len(labels)} ({len(set(labels))} distinct)")
        P = P / 2 + P.T / 2  # halves first: (P + P.T) / 2 overflows for entries near 1e308
        for what, arr in (("P", P), ("q", q)):
            if np.any((arr != 0) & (np.abs(arr) < np.finfo(np.float64).tiny)):
                raise ValueError(f"{what} holds subnormal numbers (nonzero, below {np.finfo(np.float64).tiny:.3g}): "
                                 "they have lost their precision in float64; rescale the model")
        with np.errstate(over="ignore"):
            bound = float(2 * np.sum(np.abs(P)) + np.sum(np.abs(q)) + abs(c))
        if not bound <= MAX_ENERGY:
            raise ValueError(
                f"P, q and c are too large for float64: 2 sum|P| + sum|q| + |c| (a bound on |E(v)|) is "
                f"{bound:.3g}, above {MAX_ENERGY:.3g}; sums of such coefficients overflow to inf or NaN, so "
                "rescale the model"
            )
        self.P = P
        self.q = q
        self.c = c
        self.labels = labels
        self.name = name
        self.floor = None
        self.P.setflags(write=False)
        self.q.setflags(write=False)

    # ------------------------------------------------------------------ basic facts
    @property
    def n(self) -> int:
        """Number of variables."""
        return self.P.shape[0]

    def __repr__(self) -> str:
        nm = f"{self.name!r}, " if self.name else ""
        return f"BQM({nm}n={self.n}, c={self.c:.6g})"

    def qubo_matrix(self) -> np.ndarray:
        """Upper-triangular QUBO matrix ``Q`` with ``E(v) = v^T Q v + c`` on binary ``v``."""
        Q = np.triu(2 * self.P, k=1)
        Q[np.diag_indices(self.n)] = np.diag(self.P) + self.q
        return Q

    def is_psd(self, rtol: float = 1e-10) -> bool:
        """Whether ``P`` is positive semidefinite, up to ``rtol`` times its largest |eigenvalue|."""
        if self.n == 0:
            return True
        w = np.linalg.eigvalsh(self.P)
        return bool(w[0] >= -rtol * max(1.0, float(np.max(np.abs(w)))))

    # ------------------------------------------------------------------ energies
    def _states(self, V, name: str, binary: bool) -> tuple[np.ndarray, bool]:
        V = as_float_array(V, name)
        single = V.ndim == 1
        if single:
            V = V[None, :]
        if V.ndim != 2 or V.shape[1] != self.n:
            raise ValueError(f"{name} must have shape ({self.n},) or (m, {self.n}), found {V.shape if not single else V.shape[1:]}")
        if binary and not np.all((V == 0) | (V == 1)):
            raise ValueError(f"{name} must hold only 0 and 1 (use continuous() for real values)")
        if not binary and (np.any(V < 0) or np.any(V > 1)):
            raise ValueError(f"{name} must lie in [0, 1]")
        return V, single

    @staticmethod
    def _evaluate(P, q, c, V):
        return np.einsum("ij,ij->i", V @ P, V) + V @ q + c

    def energies(self, V) -> np.ndarray:
        """Energies of binary states ``V`` of shape (m, n) (or one state of shape (n,)), in float64."""
        V, single = self._states(V, "V", binary=True)
        e = self._evaluate(self.P, self.q, self.c, V)
        return float(e[0]) if single else e

    def energy(self, x) -> float:
        """Energy of one binary state of shape (n,)."""
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"x must be 1-D, found shape {x.shape}")
        return self.energies(x)

    def continuous(self, V) -> np.ndarray:
        """The same formula for real ``V`` in ``[0, 1]``: the continuous extension."""
        V, single = self._states(V, "V", binary=False)
        e = self._evaluate(self.P, self.q, self.c, V)
        return float(e[0]) if single else e

    def gradient(self, x) -> np.ndarray:
        """Gradient of the continuous extension: ``2 P x + q``."""
        x, _ = self._states(np.asarray(x).reshape(-1), "x", binary=False)
        return 2 * self.P @ x[0] + self.q

    # ------------------------------------------------------------------ reduction
    def fix(self, fixed: dict) -> tuple["BQM", np.ndarray]:
        """Fix variables (by index) to 0/1 and return ``(reduced BQM, indices of the free variables)``.

        With fixed set F (values ``u``) and free set R:
        ``E = v_R^T P_RR v_R + (q_R + 2 P_RF u)^T v_R + (u^T P_FF u + q_F^T u + c)``.
        """
        idx = np.array(sorted(fixed), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(f"fixed indices must lie in [0, {self.n}), found {idx.min()}..{idx.max()}")
        u = np.array([fixed[i] for i in idx.tolist()], dtype=np.float64)
        if not np.all((u == 0) | (u == 1)):
            raise ValueError("fixed values must be 0 or 1")
        free = np.setdiff1d(np.arange(self.n), idx)
        P_RR = self.P[np.ix_(free, free)]
        P_RF = self.P[np.ix_(free, idx)]
        P_FF = self.P[np.ix_(idx, idx)]
        q = self.q[free] + 2 * P_RF @ u
        c = float(u @ P_FF @ u + self.q[idx] @ u + self.c)
        return BQM(P_RR, q, c, labels=[self.labels[i] for i in free]), free

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_qubo(cls, Q, offset: float = 0.0, n: int | None = None) -> "BQM":
        """From a QUBO: a dict ``{(i, j): bias}`` over integer labels, or an (n, n) matrix.

        ``E(v) = sum_{i<=j} Q_ij v_i v_j + offset``. A matrix may be full or triangular: entry
        (i, j) and (j, i) both count, as in ``v^T Q v``.
        """
        if isinstance(Q, dict):
            for key in Q:
                if not isinstance(key, tuple) or len(key) != 2 or any(
                        isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0
                        for k in key):
                    raise ValueError(f"Q dict keys must be pairs (i, j) of non-negative integer indices, "
                                     f"found {key!r}")
            keys = [int(k) for pair in Q for k in pair]
            size = (max(keys) + 1 if keys else 0) if n is None else as_int_scalar(n, "n")
            check_n_vars(size, "n" if n is not None else "the number of variables of Q")
            M = np.zeros((size, size))
            for (i, j), b in Q.items():
                if max(i, j) >= size:
                    raise ValueError(f"Q names variable {max(i, j)} but n == {size}")
                M[i, j] += float(as_float_array(b, f"Q[{(int(i), int(j))}]", ndim=0))
        else:
            M = as_float_array(Q, "Q", ndim=2)
            if M.shape[0] != M.shape[1]:
                raise ValueError(f"Q must be square, found shape {M.shape}")
        M = as_float_array(M, "Q")
        sym = M / 2 + M.T / 2
        q = np.diag(sym).copy()
        np.fill_diagonal(sym, 0.0)
        return cls(sym, q, offset)

    def to_qubo(self) -> tuple[dict, float]:
        """``({(i, j): Q_ij for i <= j, nonzero}, offset)`` with integer indices 0..n-1."""
        Q = self.qubo_matrix()
        rows, cols = np.nonzero(Q)
        return {(int(i), int(j)): float(Q[i, j]) for i, j in zip(rows, cols)}, self.c

    def to_dimod(self):
        """A ``dimod.BinaryQuadraticModel`` (BINARY) with the same energy on every state."""
        import dimod

        Q = self.qubo_matrix()
        linear = np.diag(Q).copy()
        quad = np.triu(Q, k=1)
        bqm = dimod.BinaryQuadraticModel(linear, quad, self.c, dimod.BINARY)
        if self.labels != list(range(self.n)):
            bqm.relabel_variables(dict(enumerate(self.labels)), inplace=True)
        return bqm

    @classmethod
    def from_dimod(cls, bqm) -> "BQM":
        """From a ``dimod.BinaryQuadraticModel`` (SPIN models are converted to BINARY)."""
        import dimod

        if not isinstance(bqm, dimod.BinaryQuadraticModel):
            raise ValueError(f"bqm must be a dimod.BinaryQuadraticModel, found {type(bqm).__name__}")
        if bqm.vartype is dimod.SPIN:
            bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
        labels = list(bqm.variables)
        check_n_vars(len(labels), "the number of variables of bqm")
        vec = bqm.to_numpy_vectors(variable_order=labels)
        n = len(labels)
        P = np.zeros((n, n))
        np.add.at(P, (vec.quadratic.row_indices, vec.quadratic.col_indices), vec.quadratic.biases / 2)
        np.add.at(P, (vec.quadratic.col_indices, vec.quadratic.row_indices), vec.quadratic.biases / 2)
        return cls(P, np.asarray(vec.linear_biases, dtype=np.float64), float(vec.offset), labels=labels)
