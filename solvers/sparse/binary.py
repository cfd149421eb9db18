"""Binary sparse coding as a PSD binary quadratic model (docs/sparse.md, "Binary sparse coding")."""

from __future__ import annotations

from reference.validation import as_float_array
from reference.sparse import check_dictionary, check_lambda

from ..bqm import BQM

__all__ = ["binary_sparse_coding_bqm"]


def binary_sparse_coding_bqm(Phi, x, alpha, lam) -> BQM:
    r"""Binary sparse coding ``a = alpha v``, ``v`` in {0,1}^K, as a PSD binary quadratic model.

    .. math::

        \tfrac12\|x - \alpha \Phi v\|^2 + \lambda \|v\|_0
        = v^T P v + q^T v + c,\quad P = \tfrac{\alpha^2}{2}\Phi^T\Phi,\
        q = -\alpha \Phi^T x + \lambda \mathbf 1,\ c = \tfrac12\|x\|^2

    (docs/sparse.md; ``lambda ||v||_0`` is the l0 penalty of ``alpha v``, and
    ``lambda / |alpha|`` times its l1 norm). Solve it with ``solvers.solve(bqm, method)``: its
    ``Result.x`` (the binary state) is ``v`` here, and ``alpha * Result.x`` is the code.

    Parameters
    ----------
    Phi : array of shape (n, K)
    x : array of shape (n,)
    alpha : float, nonzero
    lam : float >= 0
    """
    Phi = check_dictionary(Phi)
    x = as_float_array(x, "x", shape=(Phi.shape[0],))
    alpha = float(as_float_array(alpha, "alpha", ndim=0))
    if alpha == 0:
        raise ValueError("alpha must be nonzero, found 0.0")
    lam = check_lambda(lam)
    G = Phi.T @ Phi
    P = 0.5 * alpha * alpha * G
    P = 0.5 * (P + P.T)
    q = -alpha * (Phi.T @ x) + lam
    return BQM(P, q, 0.5 * float(x @ x))
