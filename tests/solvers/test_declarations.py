"""Every method is declared once, in ``register``, and everything else is derived from that
declaration: the options' boundaries, the public functions' defaults, the docs table, --help.
A new method is one new file."""

import ast
import inspect
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import solvers
from reference.validation import Array, ByWidth, Choice, Flag, Integer, Interval, Passed, Real
from solvers import BQM, METHODS, Result, method_names, methods_table
from solvers.conv_sequential import conv_asymmetric_relaxation
from solvers.exhaustive import exhaustive_minimum
from solvers.lns import lns
from solvers.relaxation import SETTINGS, resolve_settings
from solvers.sequential import asymmetric_relaxation
from solvers.tree import tree_search

ROOT = pathlib.Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- boundaries
def _outside_and_inside(p, others):
    """``(values just outside the declaration, values just inside)`` for one declared option."""
    out, ins = [], []
    if not p.none:
        out.append(None)
    if isinstance(p, Integer):
        low = others.get(p.low) if isinstance(p.low, str) else p.low
        if low is not None:
            out.append(low - 1)
            ins.append(low)
        if p.high is not None:
            out.append(p.high + 1)
            ins.append(p.high)
        out.append(1.5 if low is None or low <= 1 else low + 0.5)  # not an integer
    elif isinstance(p, Real):
        if p.low is not None:
            below = p.low if p.open_low else math.nextafter(p.low, -math.inf)
            out.append(below)
            ins.append(math.nextafter(p.low, math.inf) if p.open_low else p.low)
        if p.high is not None:
            above = p.high if p.open_high else math.nextafter(p.high, math.inf)
            out.append(above)
            ins.append(math.nextafter(p.high, -math.inf) if p.open_high else p.high)
        out.append(math.nan)
    elif isinstance(p, Choice):
        out.append("no such choice")
        ins.extend(p.choices)
    elif isinstance(p, Flag):
        out.append(1)
        ins.extend([True, False])
    elif isinstance(p, Interval):
        least = 1.0 if p.low is None else float(p.low)
        edge = 0.0 if p.low is None else math.nextafter(least, -math.inf)
        out.extend([(edge, 2.0 * least + 1), (least, math.inf), "ab"])
        ins.append((math.nextafter(0.0, 1.0), 1.0) if p.low is None else (least, least))
        if p.ordered:
            out.append((2.0 * least + 1, least + 1e-9 if p.low is None else least))
    elif isinstance(p, Array):
        out.append("text")
        ins.append(np.zeros(1))
    else:
        assert isinstance(p, Passed), f"no boundary rule for {type(p).__name__}: add one here"
    return out, ins


def _declared():
    for name in method_names():
        for opt, p in METHODS[name].params.items():
            yield pytest.param(name, opt, id=f"{name}.{opt}")


@pytest.mark.parametrize("method, option", list(_declared()))
def test_every_option_is_refused_just_outside_its_range_and_accepted_just_inside(method, option):
    m = METHODS[method]
    p = m.params[option]
    others = {k: q.default for k, q in m.params.items()}
    outside, inside = _outside_and_inside(p, others)
    assert outside, f"{method}.{option}: no value outside its declaration was tried"
    for value in outside:
        with pytest.raises((ValueError, TypeError), match=option):
            m.resolve_options({option: value})
    for value in inside:
        opts = m.resolve_options({option: value})
        assert opts[option] is value


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s != "preset"])
def test_the_relaxation_settings_are_refused_and_accepted_by_the_same_declarations(setting):
    p = SETTINGS[setting]
    outside, inside = _outside_and_inside(p, {})
    for value in outside:
        if value is None:
            continue  # None is "the preset's value" for every override
        with pytest.raises((ValueError, TypeError), match=setting):
            resolve_settings("aimet", **{setting: value})
        with pytest.raises((ValueError, TypeError), match=setting):
            METHODS["adaround"].resolve_options({setting: value})
    for value in inside:
        resolve_settings("aimet", **{setting: value})


def test_adaround_declares_the_relaxation_settings_themselves():
    for name, p in SETTINGS.items():
        assert METHODS["adaround"].params[name] is p


# ---------------------------------------------------------------------------- public twins
TWINS = [(tree_search, "tree"), (exhaustive_minimum, "exhaustive"), (lns, "lns"),
         (asymmetric_relaxation, "adaround"), (conv_asymmetric_relaxation, "adaround")]


@pytest.mark.parametrize("fn, method", TWINS, ids=lambda v: getattr(v, "__name__", v))
def test_a_public_function_s_defaults_are_its_method_s_declaration(fn, method):
    declared = METHODS[method].params
    shared = [(n, p) for n, p in inspect.signature(fn).parameters.items() if n in declared]
    for name, param in shared:
        assert param.default == declared[name].default, f"{fn.__name__}({name}=...) differs from the declaration"


def test_every_public_function_of_a_method_returns_the_one_result():
    bqm = BQM(np.array([[1.0, -2.0], [-2.0, 1.0]]), np.array([-1.0, 0.5]), 0.25)
    results = [tree_search(bqm.P, bqm.q, bqm.c), exhaustive_minimum(bqm.P, bqm.q, bqm.c), lns(bqm, seed=1)]
    assert all(type(r) is Result for r in results)
    energies = {r.energy for r in results}
    brute = min(bqm.energy(np.array(v, dtype=np.int8)) for v in np.ndindex(2, 2))
    assert energies == {brute}


# ---------------------------------------------------------------------------- registration
def _registered_in_source():
    """``{method name: module}`` for every ``register("...")``/``register_sparse("...")`` call in
    the sources of the ``solvers`` package."""
    found = {}
    for path in (ROOT / "solvers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("register", "register_sparse") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found[node.args[0].value] = str(path.relative_to(ROOT))
    return found


def test_every_method_registered_in_the_sources_is_reachable_from_import_solvers():
    code = "import json, solvers; print(json.dumps(sorted(solvers.METHODS)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT).stdout
    reachable = set(__import__("json").loads(out))
    in_source = _registered_in_source()
    assert len(in_source) >= 17
    missing = {n: mod for n, mod in in_source.items() if n not in reachable}
    assert not missing, f"registered in the sources but not by `import solvers`: {missing}"


def test_the_docs_table_is_the_registry_s():
    text = (ROOT / "docs" / "guide" / "python.md").read_text()
    assert methods_table() in text, "docs/guide/python.md: paste solvers.methods_table() over its methods table"
    for name in method_names():
        assert f"| `{name}` |" in methods_table()


def test_metadata_lives_on_the_method():
    assert [n for n in method_names() if METHODS[n].residual] == ["ceil", "floor", "nearest", "stochastic"]
    slow = sorted((m.slow_first, n) for n, m in METHODS.items() if m.slow_first is not None)
    assert [n for _, n in slow] == ["lns", "tree", "anneal", "adaround"]
    assert METHODS["tree"].default_budget(64) == 50_000_000
    assert METHODS["anneal"].default_budget(64) == 128
    assert METHODS["lns"].default_budget(64) == 1_000_000
    assert isinstance(METHODS["tree"].budget_rule, ByWidth)
    with pytest.raises(ValueError, match="residual"):
        solvers.register("not-a-layer-baseline", kind="qubo", summary="", residual=True)


TOY = '''"""A toy method: the all-zero state."""
import numpy as np

from reference.validation import Integer

from ._registry import Outcome, register


@register("toyzero", kind="qubo", summary="the all-zero state (a test's toy)",
          options={"repeats": Integer(1, low=1, high=3)})
def _toy(bqm, repeats):
    return Outcome(x=np.zeros(bqm.n, dtype=np.int8))
'''


def test_a_new_method_is_one_new_file(tmp_path):
    shutil.copytree(ROOT / "solvers", tmp_path / "solvers", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "solvers" / "toy.py").write_text(TOY)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    code = ("import solvers; assert solvers.__file__.startswith(%r), solvers.__file__; "
            "print('toyzero' in solvers.method_names()); print(solvers.methods_table())" % str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, table = out.stdout.split("\n", 1)
    assert first == "True"
    assert "| `toyzero` | qubo | no | `repeats` (1) | the all-zero state (a test's toy) |" in table
    helptext = subprocess.run([sys.executable, "-m", "reference.compare", "--help"], capture_output=True,
                              text=True, env=env, cwd=tmp_path)
    assert helptext.returncode == 0, helptext.stderr
    assert "toyzero" in helptext.stdout
    # and its option is checked by the one resolver, named
    bad = subprocess.run([sys.executable, "-c", "import solvers; solvers.METHODS['toyzero'].resolve_options({'repeats': 4})"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "repeats must be an integer >= 1 and <= 3" in bad.stderr


def test_eq25_with_an_activation_goes_through_the_front_door():
    from reference import fit_grid
    from solvers.sequential import ActivationLayer

    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    X = rng.normal(size=(20, 5))
    X_hat = X + 0.1 * rng.normal(size=X.shape)
    problem = ActivationLayer(W, b, fit_grid(W, 3), X, X_hat, "relu")
    r = solvers.solve(problem, "nearest")
    W_hat = problem.w_hat(r.x)
    relu = lambda u: np.maximum(u, 0.0)  # noqa: E731
    want = np.mean(np.sum((relu(X @ W.T + b) - relu(X_hat @ W_hat.T + b)) ** 2, axis=1))
    assert r.energy == pytest.approx(want, rel=1e-12)
    a = asymmetric_relaxation(W, b, problem.grid, X, X_hat, iterations=50, batch_size=5, seed=1)
    assert type(a) is Result and a.method == "adaround" and a.info["objective"] == "Eq. 25 with ReLU"
    assert a.energy == pytest.approx(problem.loss(a.x), rel=0, abs=0)
    with pytest.raises(ValueError, match="not a QUBO"):
        solvers.solve(problem, "tree")
    with pytest.raises(ValueError, match="no Gram form: use mode='batch'"):
        solvers.solve(problem, "adaround")
