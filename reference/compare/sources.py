"""Problem sources for the compare command: raw QUBO files and generator sweeps (TOML).

Layer files (``.npz``) are read by :mod:`reference.compare.problem_files`. Every reader refuses a bad
file with a :class:`~reference.compare.problem_files.ProblemFileError` naming the file and the problem.
"""

from __future__ import annotations

import io
import itertools
import json
import os

import numpy as np

from solvers import BQM, LayerProblem
from solvers.orlib import parse_bqp

from ..grid import fit_grid
from .problem_files import ProblemFileError, check_file
from .suites import correlated_layer

__all__ = ["load_qubo_file", "load_config", "SWEEP_KEYS"]


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def load_qubo_file(path: str):
    """Read raw QUBOs from ``path``, told apart by content.

    * dimod's serialised BQM: the binary file of ``bqm.to_file()`` (starts with ``DIMODBQM``) or
      the JSON of ``bqm.to_serializable()``;
    * otherwise the OR-Library ``bqp`` text format (several instances a file; maximisation
      instances become minimisation QUBOs, so their energy is minus the OR-Library value).

    Returns a list of :class:`solvers.BQM` named ``<file>`` or ``<file>#k`` (1-based).
    """
    import dimod

    check_file(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    name = _name(path)
    try:
        if raw.startswith(b"DIMODBQM"):
            bqm = dimod.BinaryQuadraticModel.from_file(io.BytesIO(raw))
            models = [BQM.from_dimod(bqm)]
        elif raw.lstrip().startswith(b"{"):
            bqm = dimod.BinaryQuadraticModel.from_serializable(json.loads(raw.decode("utf-8")))
            models = [BQM.from_dimod(bqm)]
        else:
            models = parse_bqp(raw.decode("utf-8"))
    except ProblemFileError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProblemFileError(f"{path}: not a readable QUBO file ({exc})") from None
    except Exception as exc:  # dimod's readers raise their own types for corrupt files
        raise ProblemFileError(f"{path}: not a readable QUBO file ({type(exc).__name__}: {exc})") from None
    if not models:
        raise ProblemFileError(f"{path}: holds no QUBO")
    for k, m in enumerate(models):
        m.name = name if len(models) == 1 else f"{name}#{k + 1}"
    return models


#: Keys of a ``[sweep]`` table and their defaults. List values are swept (Cartesian product).
SWEEP_KEYS = {
    "name": "sweep",
    "out": 4,
    "fan_in": [16],
    "bits": [4],
    "rho": [0.5],
    "samples_per_input": [4],
    "seeds": [0],
    "per_row": True,
    "symmetric": True,
}


#: Limits of a sweep file, checked from its keys before any layer is built: problems in one file,
#: and numbers held by one problem (W, X and G) and by all of a file's problems together.
MAX_SWEEP_PROBLEMS = 2000
MAX_PROBLEM_NUMBERS = 2**24
MAX_SWEEP_NUMBERS = 2**27


def _as_list(value, key, path, kind, minimum=None):
    vals = value if isinstance(value, list) else [value]
    if not vals:
        raise ProblemFileError(f"{path}: sweep key {key!r} is an empty list")
    for v in vals:
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ProblemFileError(f"{path}: sweep key {key!r} must hold integers, found {v!r}")
        if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ProblemFileError(f"{path}: sweep key {key!r} must hold numbers, found {v!r}")
        if minimum is not None and v < minimum:
            raise ProblemFileError(f"{path}: sweep key {key!r} must hold values >= {minimum}, found {v!r}")
    if len(set(vals)) != len(vals):
        raise ProblemFileError(f"{path}: sweep key {key!r} repeats a value ({vals}); each problem would be doubled")
    return vals


def _numbers(out, fan_in, spi) -> int:
    return out * fan_in + spi * fan_in * fan_in + fan_in * fan_in  # W, X, G


def load_config(path: str):
    """Layer problems from a TOML sweep file: one ``[sweep]`` table (or several, ``[[sweep]]``).

    Keys (lists are swept): ``fan_in``, ``bits``, ``rho`` (AR(1) input correlation, in [0, 1)),
    ``samples_per_input`` (N = that times fan_in), ``seeds``; scalars ``out`` (rows),
    ``per_row``, ``symmetric``, ``name``. Layers come from
    :func:`reference.compare.suites.correlated_layer` with the paper's MSE grid.

    Refused before any layer is built: a repeated value in a list, a problem given by two
    tables, negative seeds, more than :data:`MAX_SWEEP_PROBLEMS` problems, a layer of more than
    :data:`MAX_PROBLEM_NUMBERS` numbers, or more than :data:`MAX_SWEEP_NUMBERS` in all.
    """
    sweeps = _read_sweeps(path)
    plans, seen, total, numbers = [], {}, 0, 0
    for t, sw in enumerate(sweeps, 1):
        s, out, lists = _check_sweep(path, t, sw)
        fan_ins, bits_l, rhos, spis, seeds = lists
        total += len(fan_ins) * len(bits_l) * len(rhos) * len(spis) * len(seeds)
        numbers += sum(_numbers(out, f, m) for f in fan_ins for m in spis) * len(bits_l) * len(rhos) * len(seeds)
        if total > MAX_SWEEP_PROBLEMS:
            raise ProblemFileError(f"{path}: the sweep(s) give {total:,} problems or more, above the limit of "
                                   f"{MAX_SWEEP_PROBLEMS:,} a file (problems are built before the run); split the file")
        if numbers > MAX_SWEEP_NUMBERS:
            raise ProblemFileError(f"{path}: the sweep(s) hold {numbers:,} numbers or more, above the limit of "
                                   f"{MAX_SWEEP_NUMBERS:,} (1 GiB) a file; split the file")
        for combo in itertools.product(*lists):
            name = "{}-in{}-b{}-rho{:g}-spi{}-seed{}".format(s["name"], *combo[:2], combo[2], *combo[3:])
            key = (out, s["per_row"], s["symmetric"], combo)
            if name in seen or key in seen:
                raise ProblemFileError(f"{path}: sweep {t} repeats problem {name} of sweep {seen.get(name, seen.get(key))}")
            seen[name] = seen[key] = t
            plans.append((s, out, combo, name))
    return _build(path, plans)


def _read_sweeps(path: str) -> list[dict]:
    """The ``[sweep]`` tables of a TOML file, or ProblemFileError naming the file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    check_file(path)
    try:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProblemFileError(f"{path}: not valid TOML ({exc})") from None
    unknown_top = sorted(set(cfg) - {"sweep"})
    if unknown_top or "sweep" not in cfg:
        raise ProblemFileError(f"{path}: expected a [sweep] table (found {sorted(cfg) or 'nothing'})")
    sweeps = cfg["sweep"] if isinstance(cfg["sweep"], list) else [cfg["sweep"]]
    if not sweeps or not all(isinstance(sw, dict) for sw in sweeps):
        raise ProblemFileError(f"{path}: 'sweep' must be a table [sweep] or tables [[sweep]], found {cfg['sweep']!r}")
    return sweeps


def _check_sweep(path: str, t: int, sw: dict) -> tuple[dict, int, list]:
    """Sweep table ``t`` with its defaults, its row count ``out`` and the swept lists
    ``[fan_in, bits, rho, samples_per_input, seeds]``; ProblemFileError on a bad key or value."""
    unknown = sorted(set(sw) - set(SWEEP_KEYS))
    if unknown:
        raise ProblemFileError(f"{path}: unknown sweep key(s) {unknown}; allowed: {sorted(SWEEP_KEYS)}")
    s = {**SWEEP_KEYS, **sw}
    if not isinstance(s["name"], str) or not s["name"]:
        raise ProblemFileError(f"{path}: sweep key 'name' must be a non-empty string, found {s['name']!r}")
    fan_ins = _as_list(s["fan_in"], "fan_in", path, int, minimum=1)
    bits_l = _as_list(s["bits"], "bits", path, int)
    rhos = _as_list(s["rho"], "rho", path, float)
    spis = _as_list(s["samples_per_input"], "samples_per_input", path, int, minimum=1)
    seeds = _as_list(s["seeds"], "seeds", path, int, minimum=0)
    out = s["out"]
    if isinstance(out, bool) or not isinstance(out, int) or out < 1:
        raise ProblemFileError(f"{path}: sweep key 'out' must be an integer >= 1, found {out!r}")
    for key in ("per_row", "symmetric"):
        if not isinstance(s[key], bool):
            raise ProblemFileError(f"{path}: sweep key {key!r} must be true or false, found {s[key]!r}")
    if any(not 0 <= r < 1 for r in rhos):
        raise ProblemFileError(f"{path}: sweep key 'rho' must lie in [0, 1), found {rhos}")
    if any(not 2 <= b <= 16 for b in bits_l):
        raise ProblemFileError(f"{path}: sweep key 'bits': bits must be >= 2 and <= 16, found {bits_l}")
    biggest = _numbers(out, max(fan_ins), max(spis))
    if biggest > MAX_PROBLEM_NUMBERS:
        raise ProblemFileError(
            f"{path}: sweep {t} ('out', 'fan_in', 'samples_per_input') gives a layer of {biggest:,} numbers "
            f"(W, X and G), above the limit of {MAX_PROBLEM_NUMBERS:,} a problem")
    return s, out, [fan_ins, bits_l, rhos, spis, seeds]


def _build(path: str, plans: list) -> list:
    """The layer of each planned problem (seeded by its own values) with the paper's MSE grid."""
    problems = []
    for s, out, (fan_in, bits, rho, spi, seed), name in plans:
        rng = np.random.default_rng([seed, fan_in, bits, spi, int(round(rho * 1000))])
        W, X = correlated_layer(out, fan_in, spi * fan_in, rng, rho=rho)
        try:
            grid = fit_grid(W, bits=bits, per_row=s["per_row"], symmetric=s["symmetric"])
            problems.append(LayerProblem(W, grid, X=X, name=name))
        except ValueError as exc:
            raise ProblemFileError(f"{path}: {name}: {exc}") from None
    return problems
