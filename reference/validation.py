"""Input checks shared by every public entry point.

Each public function validates its arguments here, once, and then calls private code that
trusts clean float64 arrays. Messages name the argument, what was required and what was
found. Nothing is repaired: a NaN is refused, not replaced; a shape is refused, not broadcast
(except a scalar where the documentation says a scalar is accepted).
"""

from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = [
    "TINY",
    "as_float_array",
    "check_tolerance",
    "check_loss_range",
    "as_int_scalar",
    "real_to_float",
    "as_per_row",
    "check_bits",
    "check_positive_int",
    "Param",
    "Integer",
    "Real",
    "Choice",
    "Flag",
    "Interval",
    "Array",
    "Passed",
    "ByWidth",
    "available_cpus",
]


def as_float_array(value, name: str, ndim: int | None = None, shape=None) -> np.ndarray:
    """Return ``value`` as a finite float64 array, or raise ValueError naming ``name``.

    ``shape`` may contain ``None`` for a free dimension.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises for ragged input
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name} must hold real numbers, found dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, found shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(arr.shape, shape)
        ):
            want_txt = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want_txt}, found {arr.shape}")
    arr = np.array(arr, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite, found {bad} NaN or inf entries")
    return arr


#: Below this magnitude (2^-969, about 2e-292) a product of two float64 numbers can fall into the
#: subnormal range and lose precision: quantities that must be squared are refused below it.
TINY = 2.0 ** -969


def check_tolerance(value, name: str) -> float:
    """A tolerance: a finite real number >= 0 (a NaN would make every comparison pass)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number >= 0, found {describe(value)}")
    v = real_to_float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, found {describe(value)}")
    return v


def real_to_float(value) -> float:
    """``float(value)`` of a real number, with a Python int too large for float64 (``10**400``)
    mapped to ``inf`` of its sign, so that a finiteness check refuses it (``float`` would raise
    OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def as_int_scalar(value, name: str) -> int:
    """Return ``value`` as a Python int; refuse non-integral or non-finite numbers, and booleans
    (also a 0-d boolean array, as ``numpy.savez(path, stride=True)`` stores it)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, found bool {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        raise ValueError(f"{name} must be an integer, found a boolean {describe(value)}")
    if arr.ndim == 0 and arr.dtype != object:
        x = arr.item()
        if isinstance(x, numbers.Integral):
            return int(x)
        if isinstance(x, float) and np.isfinite(x) and float(x).is_integer():
            return int(x)
    raise ValueError(f"{name} must be an integer, found {describe(value)}")


def describe(value) -> str:
    """A short one-line description of ``value`` for an error message (arrays by shape and dtype)."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Integer in ``[minimum, maximum]``."""
    v = as_int_scalar(value, name)
    if v < minimum or (maximum is not None and v > maximum):
        hi = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be >= {minimum}{hi}, found {v}")
    return v


def check_bits(bits) -> int:
    """Bit width of a grid: an integer from 2 to 16."""
    return check_positive_int(bits, "bits", minimum=2, maximum=16)


def as_per_row(value, name: str, n_rows: int, integer: bool = False) -> np.ndarray:
    """A scalar (one value for the tensor) or a vector of length ``n_rows`` -> shape (n_rows,).

    A scalar is the documented way to ask for a per-tensor value; any other shape is refused.
    """
    arr = as_float_array(value, name)
    if arr.ndim == 0:
        arr = np.full(n_rows, float(arr))
    elif arr.shape != (n_rows,):
        raise ValueError(
            f"{name} must be a scalar or have shape ({n_rows},) (one per output row), "
            f"found {arr.shape}"
        )
    if integer and not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must hold integers, found non-integral values")
    return arr


def check_loss_range(W, G, grid, X=None, source: str | None = None) -> None:
    """Refuse a layer whose local loss (Eq. 20) cannot be computed in float64: ``G`` overflowed or
    underflowed from nonzero ``X``, or ``|loss| <= max|G| (n_in max|e|)^2`` is above 2^996, or the
    coefficients ``G s^2`` of the row QUBOs underflow (every state would look optimal).

    ``source`` names the argument ``G`` was computed from, for the messages: ``"X"`` when ``X``
    is given (or for a convolution, whose patch Gram matrices come from its ``X``), else ``"G"``."""
    source = source or ("X" if X is not None else "G")
    what = "X^T X / N" if X is not None else ("X's patch Gram matrix" if source == "X" else "G")
    gmax = float(np.max(np.abs(G), initial=0.0))
    if not np.isfinite(gmax):
        raise ValueError(f"X^T X / N overflows float64 (max |X| == {float(np.max(np.abs(X))):.3g}); rescale X")
    if gmax == 0.0:
        if X is not None and np.any(X != 0):
            raise ValueError(f"X^T X / N underflows to 0 in float64 (max |X| == {float(np.max(np.abs(X))):.3g}); "
                             "rescale X")
        return  # G == 0: every rounding has loss 0
    if gmax < TINY:
        raise ValueError(f"{what} is below {TINY:.3g} (max {gmax:.3g}): "
                         f"subnormal in float64, its loss has lost precision; rescale {source}")
    s = grid.scale
    zr = np.abs(np.array([grid.qmin, grid.qmax], dtype=np.float64)[:, None] - grid.zero_point[None, :])
    emax = float(np.max(np.abs(W), initial=0.0)) + float(np.max(s)) * (float(np.max(zr)) + 1.0)
    n_in = max(1, W.shape[1])
    with np.errstate(divide="ignore"):
        log_hi = np.log2(gmax) + 2 * (np.log2(emax) + np.log2(n_in))
        # a zero scale (an all-zero row, fixed at 0) has no coefficient; the smallest positive one counts
        log_lo = np.log2(gmax) + 2 * np.log2(float(np.min(s[s > 0], initial=np.inf)))
    if log_hi > 996:  # the row models' bound is at most 5 times this: below solvers.bqm.MAX_ENERGY
        raise ValueError(f"the local loss overflows float64: max|G| == {gmax:.3g} ({source}) with weights or grid "
                         f"steps up to {emax:.3g} gives losses near 2^{log_hi:.0f}; rescale W (and its grid) or {source}")
    if W.size and np.isfinite(log_lo) and log_lo < np.log2(TINY):
        raise ValueError(f"the row QUBOs' coefficients G s^2 underflow float64: max|G| == {gmax:.3g} ({source}) "
                         f"with grid scale {float(np.min(s[s > 0])):.3g} gives 2^{log_lo:.0f}; rescale W (and its grid) "
                         f"or {source}")
# --- Declared option constraints ---------------------------------------------------------------
# A method declares each option it accepts with one of these when it registers
# (solvers._registry.register); the one resolver checks every given value against it before any
# work starts. ``None`` is accepted only where ``none=True`` (it then means the method's own
# default behaviour). Values are checked, never converted: what the caller gave is what runs.


class ByWidth:
    """A default that depends on the width ``n`` of the QUBO it is used on (its number of
    variables; on a layer, each row's): ``rule(n)``, stated in words by ``text`` (shown by
    ``--help`` and the docs). A deterministic quantity of the problem, never of the clock."""

    def __init__(self, rule, text: str):
        self.rule, self.text = rule, text

    def __call__(self, n: int):
        return self.rule(int(n))

    def __repr__(self) -> str:
        return f"ByWidth({self.text})"


#: Widths at which a :class:`ByWidth` default is checked against its declaration.
_CHECK_WIDTHS = (0, 1, 2, 16, 64, 100, 384, 1024, 4608, 2**16)


class Param:
    """One declared option: its default and what values it accepts (a :class:`ByWidth` default
    must give an accepted value at every width)."""

    def __init__(self, default=None, *, none: bool = False, doc: str = ""):
        self.default = default
        self.none = bool(none)
        self.doc = doc

    def check(self, value, name: str, others: dict | None = None) -> None:
        if isinstance(value, ByWidth):
            for n in _CHECK_WIDTHS:
                self.check(value(n), f"{name} (at width {n})", others)
            return
        if value is None:
            if not self.none:
                raise ValueError(f"{name} must be {self.describe()}, found None")
            return
        self._check(value, name, others or {})

    def _check(self, value, name, others):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def _refuse(self, value, name, kind=ValueError):
        extra = " or None" if self.none else ""
        raise kind(f"{name} must be {self.describe()}{extra}, found {describe(value)}")


def _num(x) -> str:
    """A bound for a message: an integer as an integer (2147483647, not 2.14748e+09)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else f"{x:g}"


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class Integer(Param):
    """An integer in ``[low, high]``; ``low`` may name another option (``"window"``): at least its value."""

    def __init__(self, default=None, low: int | str = 0, high: int | None = None, **kw):
        super().__init__(default, **kw)
        self.low, self.high = low, high

    def describe(self, others: dict | None = None) -> str:
        hi = "" if self.high is None else f" and <= {self.high}"
        low = self.low
        if isinstance(low, str) and others and others.get(low) is not None:
            low = f"{low} ({others[low]})"
        return f"an integer >= {low}{hi}"

    def _check(self, value, name, others):
        if not isinstance(value, (numbers.Integral, float, np.floating)) or isinstance(value, (bool, np.bool_)):
            self._refuse(value, name, TypeError)
        if not isinstance(value, numbers.Integral) and not (np.isfinite(value) and float(value).is_integer()):
            self._refuse(value, name)
        if not -2**63 <= value < 2**63:  # beyond a C long: numpy and float arithmetic would overflow on it
            raise ValueError(f"{name} must be {self.describe(others)}{' or None' if self.none else ''} and fit in "
                             f"64 bits (|value| < 2^63), found {describe(value)}")
        low = self.low
        if isinstance(low, str):
            low = others.get(low)
            if low is None:
                return
        if value < low or (self.high is not None and value > self.high):
            raise ValueError(f"{name} must be {self.describe(others)}{' or None' if self.none else ''}, "
                             f"found {describe(value)}")


class Real(Param):
    """A finite real number in ``[low, high]`` (an open end with ``open_low``/``open_high``)."""

    def __init__(self, default=None, low: float | None = None, high: float | None = None, *,
                 open_low: bool = False, open_high: bool = False, **kw):
        super().__init__(default, **kw)
        self.low, self.high, self.open_low, self.open_high = low, high, bool(open_low), bool(open_high)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {_num(self.high)}")
        return "a finite number" + (" " + " and ".join(parts) if parts else "")

    def _check(self, value, name, others):
        if not _is_real(value):
            self._refuse(value, name, TypeError)
        v = real_to_float(value)
        if not np.isfinite(v):
            self._refuse(value, name)
        if self.low is not None and (v < self.low or (self.open_low and v == self.low)):
            self._refuse(value, name)
        if self.high is not None and (v > self.high or (self.open_high and v == self.high)):
            self._refuse(value, name)


class Choice(Param):
    """One of a fixed set of values (strings, usually)."""

    def __init__(self, default, choices, **kw):
        super().__init__(default, **kw)
        self.choices = tuple(choices)

    def describe(self) -> str:
        return f"one of {list(self.choices)}"

    def _check(self, value, name, others):
        if not isinstance(value, str) and any(isinstance(c, str) for c in self.choices):
            self._refuse(value, name, TypeError)
        if value not in self.choices:
            self._refuse(value, name)


class Flag(Param):
    """True or False."""

    def describe(self) -> str:
        return "True or False"

    def _check(self, value, name, others):
        if not isinstance(value, (bool, np.bool_)):
            self._refuse(value, name, TypeError)


class Interval(Param):
    """A pair of finite numbers > 0: ``[low, high]`` with ``low <= high`` when ``ordered`` (e.g.
    inverse temperatures), any order otherwise (e.g. a schedule's start and end)."""

    def __init__(self, default=None, *, ordered: bool = True, **kw):
        super().__init__(default, **kw)
        self.ordered = bool(ordered)

    def describe(self) -> str:
        if self.ordered:
            return "a pair [low, high] of finite numbers with 0 < low <= high"
        return "a pair (start, end) of finite numbers > 0"

    def _check(self, value, name, others):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2 \
                or not all(_is_real(b) for b in value):
            self._refuse(value, name)
        lo, hi = (real_to_float(b) for b in value)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= 0 or (self.ordered and hi < lo):
            self._refuse(value, name)


class Array(Param):
    """An array checked by the method itself against the problem's shape (e.g. initial codes):
    declared so the option is known; only ``None`` or an array-like is accepted here."""

    def __init__(self, default=None, what: str = "an array", **kw):
        super().__init__(default, **kw)
        self.what = what

    def describe(self) -> str:
        return self.what

    def _check(self, value, name, others):
        if isinstance(value, (str, bytes, dict)):
            self._refuse(value, name, TypeError)


class Passed(Param):
    """An option handed on unchecked to a component that checks it itself (the keyword
    parameters of a user's dimod sampler)."""

    def describe(self) -> str:
        return "a value its owner checks"

    def _check(self, value, name, others):
        return None


def available_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one): the one count
    behind every ``threads=None``/``workers=None``/``jobs`` default."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)
