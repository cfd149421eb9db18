"""Fuzz suite (issue 15): hostile files fed to the CLI in-process and hostile arguments fed to
every public entry point.

Properties checked on every generated case:

* CLI (``reference.compare.cli.main``) on malformed ``.npz``, OR-Library, dimod and TOML files: exit 0
  or exit 2 with exactly one ``error:`` line naming the file, never a traceback or a numpy warning
  on stderr; on exit 0 the JSON holds no NaN/inf and every "optimal" value is finite and no worse
  than any other method's value on the same problem.
* API (``fit_grid``, ``Grid``, ``LayerProblem``, ``BQM``, ``solve`` with every method and its
  options, the sparse coders, the ``reference.testing`` helpers): no exception other than
  ValueError or TypeError (AssertionError too from the ``assert_*`` helpers, whose job it is), and
  a result called optimal has a finite energy that no heuristic beats.

The strategies mix valid and hostile parts so that the deep numeric paths are reached, not only
the first argument check: magnitudes from 1e-320 to 1e308, NaN and inf, empty and ragged shapes,
wrong dtypes (strings, complex, objects), negative and fractional counts, repeated entries.
"""

import io
import json
import math
import warnings

import dimod
import numpy as np
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import Grid, fit_grid
from reference.compare.cli import main
from reference.testing import (assert_rounding_within, assert_sparse_code_within, rounding_report,
                               sparse_code_report)
from solvers import BQM, METHODS, LayerProblem, solve
from solvers import method_names
from solvers.sparse import code

#: Twice the profile's examples (ci: 120 a test, about 30 s for the file).
FUZZ = settings(max_examples=settings.default.max_examples * 2, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much],
                deadline=None)

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e-310, 1e-300, 1e-160, 1e150, 1e300,
           1.7e308, -1.7e308, 0.5, -1.0, 2.5]
_OBJ = object()
HOSTILE_SCALARS = [None, True, False, 0, 1, -1, 2, 2**70, -(2**70), 1.5, -0.5, "a", "", "1", b"x", [],
                   [1, 2], [[1], [2, 3]], {}, {"a": 1}, _OBJ, 1 + 1j, np.float32(np.nan), np.int64(-3)]


def hostile_scalar():
    return st.one_of(st.sampled_from(HOSTILE_SCALARS), st.sampled_from(SPECIAL), st.floats(),
                     st.integers(-5, 5))


def hostile_array():
    dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128,
                              np.dtype("U2"), np.dtype("M8[s]")])
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    return st.one_of(hnp.arrays(dtypes, shapes),
                     st.just(np.array([None, 1.0], dtype=object)),
                     hostile_scalar())


def scaled(shape, seed_max=2**16):
    """A normal array times 10^k, k from -320 to 308, sometimes with one special entry."""
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, seed_max)))
        a = rng.normal(size=shape) * 10.0 ** draw(st.sampled_from([-320, -300, -200, -150, -100, -1, 0, 0, 0, 0, 0,
                                                                   0, 0, 0, 2, 100, 150, 200, 300, 307]))
        if a.size and draw(st.integers(0, 3)) == 0:
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(SPECIAL))
        return a
    return build()


def maybe(valid, p_hostile=hostile_array()):
    """``valid`` four times in five, else a hostile value."""
    @st.composite
    def build(draw):
        return draw(p_hostile) if draw(st.integers(0, 4)) == 0 else draw(valid)
    return build()


def _event(text):
    try:
        event(text)
    except Exception:  # outside a hypothesis test: nothing to record
        pass


def _quiet(fn, *args, allowed=(ValueError, TypeError), **kw):
    """Call ``fn``; a refusal of an allowed type returns None, anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            out = fn(*args, **kw)
        except allowed as exc:
            _event(f"{getattr(fn, '__name__', 'call')}: {type(exc).__name__}")
            return None
    _event(f"{getattr(fn, '__name__', 'call')}: accepted")
    return out


def _check_result(r, *others):
    if r is None:
        return
    if r.optimal:
        assert np.isfinite(r.energy) and r.lower_bound is not None and np.isfinite(r.lower_bound)
        for o in others:
            if o is not None:
                assert r.energy <= o.energy + 1e-9 * max(1.0, abs(o.energy), abs(r.energy))


# ------------------------------------------------------------------------------ CLI on files
def _run_cli(capsys, args, path, jsonpath):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code_ = main(["--jobs", "1", "--quiet", *args, "--json", str(jsonpath)])
    out = capsys.readouterr()
    assert code_ in (0, 2), code_
    _event(f"exit {code_}")
    if code_ == 2:
        # a numpy warning while reading would be a second line on stderr
        assert not caught, [str(w.message) for w in caught]
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), out.err
        assert "Traceback" not in out.err
        return None
    text = jsonpath.read_text()
    assert "NaN" not in text and "Infinity" not in text
    problems = json.loads(text)["problems"]
    for rec in problems:
        key = "loss" if rec["kind"] == "layer" else "energy"
        vals = [r[key] for r in rec["results"] if r[key] is not None]
        for r in rec["results"]:
            if r["optimal"]:
                assert r[key] is not None and math.isfinite(r[key])
                assert all(r[key] <= v + 1e-9 * max(1.0, abs(v)) for v in vals), rec
    return problems


NPZ_KEYS = ["W", "X", "scale", "qmin", "qmax", "zero_point", "bits", "w", "G"]


@st.composite
def npz_members(draw):
    """A valid layer file with, more often than not, one fault planted (or random members)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    out, fan_in = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    data = {"W": rng.normal(size=(out, fan_in)), "X": rng.normal(size=(draw(st.integers(1, 8)), fan_in))}
    grid = draw(st.sampled_from(["bits", "grid", "none"]))
    if grid == "bits":
        data["bits"] = draw(st.integers(2, 6))
    elif grid == "grid":
        data.update(scale=draw(st.sampled_from([0.1, 0.3, np.full(out, 0.2)])), qmin=-4, qmax=3)
        if draw(st.booleans()):
            data["zero_point"] = draw(st.integers(-4, 3))
    fault = draw(st.sampled_from(["none", "none", "none", "random", "scaled", "hostile", "grid", "key"]))
    if fault == "random":
        keys = draw(st.lists(st.sampled_from(NPZ_KEYS), max_size=5, unique=True))
        return {k: draw(hostile_array()) for k in keys}
    if fault == "scaled":
        k = draw(st.sampled_from(["W", "X"]))
        data[k] = draw(scaled(data[k].shape))
    elif fault == "hostile":
        data[draw(st.sampled_from(sorted(data)))] = draw(hostile_array())
    elif fault == "grid":
        data.update({k: draw(st.one_of(st.sampled_from([0, -1, 1e-300, 1e300, 17, 1.5]), hostile_array()))
                     for k in draw(st.lists(st.sampled_from(["scale", "qmin", "qmax", "zero_point", "bits"]),
                                            min_size=1, max_size=2, unique=True))})
    elif fault == "key":
        if draw(st.booleans()):
            data.pop(draw(st.sampled_from(sorted(data))))
        else:
            data[draw(st.sampled_from(["w", "G", "extra"]))] = np.ones(2)
    return data


@FUZZ
@given(members=npz_members(), corrupt=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                st.integers(0, 10**6)))
def test_cli_survives_malformed_npz(tmp_path, capsys, members, corrupt):
    path = tmp_path / "f.npz"
    buf = io.BytesIO()
    try:
        np.savez(buf, **{k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in members.items()})
    except (ValueError, TypeError):
        assume(False)
    raw = bytearray(buf.getvalue())
    if isinstance(corrupt, tuple) and raw:
        raw[corrupt[0] % len(raw)] = corrupt[1]
    elif isinstance(corrupt, int):
        raw = raw[:corrupt % (len(raw) + 1)]
    path.write_bytes(bytes(raw))
    _run_cli(capsys, ["--methods", "exhaustive,nearest,tree", "--problem", str(path)], path, tmp_path / "o.json")


@st.composite
def bqp_text(draw):
    """A valid file (one triangle, 1-based) with, more often than not, one fault planted."""
    fault = draw(st.sampled_from(["none", "none", "none", "count", "n", "nnz", "entry", "value", "token"]))
    count = draw(st.integers(-1, 3)) if fault == "count" else draw(st.integers(1, 2))
    tok = [str(count)]
    for _ in range(max(0, min(count, 2))):
        n = draw(st.sampled_from([-1, 10**6, 40000, 5001])) if fault == "n" else draw(st.integers(0, 6))
        m = min(max(n, 0), 6)  # entries for the first six variables at most
        pairs = [(i, j) for i in range(1, m + 1) for j in range(i, m + 1)]
        chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12)) if pairs else []
        entries = [[i, j, draw(st.floats(-10, 10))] for i, j in chosen]
        if fault == "entry":  # a repeated, mirrored or out-of-range entry
            entries.append([draw(st.integers(0, 8)), draw(st.integers(0, 8)), 1.0])
        if fault == "value" and entries:
            entries[draw(st.integers(0, len(entries) - 1))][2] = draw(st.sampled_from(SPECIAL))
        nnz = draw(st.integers(-2, 30)) if fault == "nnz" else len(entries)
        tok += [str(n), str(nnz)]
        for i, j, v in entries:
            tok += [str(i), str(j), repr(v)]
    if fault == "token":
        tok.insert(draw(st.integers(0, len(tok))), draw(st.sampled_from(["x", "1.5", "", "-", "1e999", "#"])))
    return draw(st.sampled_from([" ", "\n", "\t"])).join(tok)


@FUZZ
@given(text=bqp_text())
def test_cli_survives_malformed_orlib_files(tmp_path, capsys, text):
    path = tmp_path / "q.txt"
    path.write_text(text)
    _run_cli(capsys, ["--methods", "exhaustive,tree,gptq,steepest", "--qubo", str(path)], path, tmp_path / "o.json")


@st.composite
def dimod_bytes(draw):
    n = draw(st.integers(0, 5))
    vals = st.one_of(st.floats(-10, 10), st.sampled_from(SPECIAL))
    linear = {i: draw(vals) for i in range(n)}
    quad = {(i, j): draw(vals) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())}
    vartype = draw(st.sampled_from(["BINARY", "SPIN"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bqm = dimod.BinaryQuadraticModel(linear, quad, draw(vals), vartype)
    if draw(st.booleans()):
        raw = bytearray(bqm.to_file().read())
    else:
        ser = bqm.to_serializable()
        if draw(st.booleans()) and ser:
            key = draw(st.sampled_from(sorted(ser)))
            ser[key] = draw(st.one_of(st.sampled_from([None, -1, 10**12, "x", [], {}, [1, 2, 3], 1.5]),
                                      st.just(ser[key])))
        raw = bytearray(json.dumps(ser).encode())
    if raw and draw(st.booleans()):
        if draw(st.booleans()):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        else:
            raw = raw[:draw(st.integers(0, len(raw)))]
    return bytes(raw)


@FUZZ
@given(raw=dimod_bytes())
def test_cli_survives_malformed_dimod_files(tmp_path, capsys, raw):
    path = tmp_path / "m.bqm"
    path.write_bytes(raw)
    _run_cli(capsys, ["--methods", "exhaustive,tree,gptq", "--qubo", str(path)], path, tmp_path / "o.json")


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"


TOML_KEYS = ["name", "out", "fan_in", "bits", "rho", "samples_per_input", "seeds", "per_row", "symmetric", "typo"]
toml_atoms = st.one_of(st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 17, 10**9, 2**63 - 1, -(2**63)]),
                       st.sampled_from([math.nan, math.inf, -0.5, 0.0, 0.3, 0.99, 1.0, 2.5]),
                       st.sampled_from(["", "x", "a b"]), st.booleans())
toml_values = st.one_of(toml_atoms, st.lists(toml_atoms, max_size=3), st.dictionaries(st.just("k"), toml_atoms, max_size=1))


TOML_VALID = {
    "name": st.sampled_from(["s", "t"]), "out": st.integers(1, 3),
    "fan_in": st.lists(st.integers(1, 5), min_size=1, max_size=2, unique=True),
    "bits": st.lists(st.integers(2, 5), min_size=1, max_size=2, unique=True),
    "rho": st.sampled_from([0.0, 0.5, [0.1, 0.9]]), "samples_per_input": st.sampled_from([1, 2, [1, 3]]),
    "seeds": st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True),
    "per_row": st.booleans(), "symmetric": st.booleans(), "typo": toml_values,
}


@st.composite
def toml_text(draw):
    form = draw(st.sampled_from(["table", "table", "tables", "tables", "scalar", "other"]))
    if form == "scalar":
        return f"sweep = {_toml_value(draw(toml_values))}\n"
    if form == "other":
        return f"{draw(st.sampled_from(['sweeps', 'x']))} = 1\n"
    tables = []
    for _ in range(draw(st.integers(1, 2)) if form == "tables" else 1):
        keys = draw(st.lists(st.sampled_from(TOML_KEYS), max_size=4, unique=True))
        hostile = draw(st.sampled_from(keys + [None] * (len(keys) + 1)))
        body = "".join(f"{k} = {_toml_value(draw(toml_values if k == hostile else TOML_VALID[k]))}\n"
                       for k in keys)
        tables.append(("[[sweep]]\n" if form == "tables" else "[sweep]\n") + body)
    text = "".join(tables)
    if draw(st.integers(0, 4)) == 0:
        text += draw(st.sampled_from(["=", "[sweep", "a = ", "\x00"]))
    return text


@FUZZ
@given(text=toml_text())
def test_cli_survives_malformed_toml(tmp_path, capsys, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    _run_cli(capsys, ["--methods", "nearest,floor", "--config", str(path)], path, tmp_path / "o.json")


# ------------------------------------------------------------------------------ API
@FUZZ
@given(W=maybe(scaled((2, 3))), bits=maybe(st.integers(2, 8), hostile_scalar()),
       symmetric=maybe(st.booleans(), hostile_scalar()), per_row=maybe(st.booleans(), hostile_scalar()),
       method=maybe(st.sampled_from(["mse", "minmax"]), hostile_scalar()),
       n_candidates=maybe(st.integers(1, 20), st.sampled_from([0, -1, 1.5, "a", None, math.nan])))
def test_fit_grid_and_grid_refuse_or_hold_finite_positive_scales(W, bits, symmetric, per_row, method, n_candidates):
    g = _quiet(fit_grid, W, bits=bits, symmetric=symmetric, per_row=per_row, method=method,
               n_candidates=n_candidates)
    if g is not None:
        assert np.all(np.isfinite(g.scale)) and np.all(g.scale > 0)
        assert np.all(g.scale >= np.finfo(np.float64).tiny)


@FUZZ
@given(scale=hostile_array(), qmin=hostile_scalar(), qmax=hostile_scalar(), zero_point=hostile_array())
def test_grid_refuses_hostile_parts(scale, qmin, qmax, zero_point):
    g = _quiet(Grid, scale, qmin, qmax, zero_point)
    if g is not None:
        assert np.all(np.isfinite(g.scale)) and np.all(g.scale > 0) and g.qmin <= g.qmax


@st.composite
def layer_args(draw):
    """``(W, grid, X, G)``: a valid layer with, more often than not, one fault planted."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    W, X, G = rng.normal(size=(2, 3)), rng.normal(size=(draw(st.integers(1, 6)), 3)), None
    fault = draw(st.sampled_from(["none", "none", "none", "none", "W", "W", "X", "X", "G", "grid", "both",
                                  "neither"]))
    if fault == "W":
        W = draw(st.one_of(scaled((2, 3)), hostile_array()))
    elif fault == "X":
        X = draw(st.one_of(scaled(X.shape), scaled(X.shape), hostile_array()))
    elif fault in ("G", "both"):
        with np.errstate(all="ignore"):
            G = draw(st.one_of(st.sampled_from([X.T @ X / X.shape[0], X, -np.eye(3), np.ones((3, 3)) * 1e-300]),
                               scaled((3, 3)), hostile_array()))
        X = X if fault == "both" else None
    elif fault == "neither":
        X = None
    Wf = W if isinstance(W, np.ndarray) and W.ndim == 2 and W.size and W.dtype.kind == "f" else np.ones((2, 3))
    grid = _quiet(fit_grid, Wf, bits=draw(st.integers(2, 5)), symmetric=draw(st.booleans()))
    if fault == "grid":
        which = draw(st.sampled_from(["tiny", "huge", "hostile"]))
        if which == "hostile" or grid is None:
            grid = draw(hostile_array())
        else:
            grid = _quiet(Grid, grid.scale * (1e-300 if which == "tiny" else 1e300), grid.qmin, grid.qmax,
                          grid.zero_point)
    return W, grid, X, G


@FUZZ
@given(args=layer_args())
def test_layer_problem_refuses_or_solves_to_a_finite_optimum(args):
    W, g, X, G = args
    prob = _quiet(LayerProblem, W, g, X=X, G=G)
    if prob is None:
        return
    near = solve(prob, "nearest")
    assert np.isfinite(near.energy)
    best = solve(prob, "exhaustive")
    assert best.optimal
    _check_result(best, near)


@st.composite
def bqm_args(draw):
    """``(P, q, c, labels)``: a valid model with, more often than not, one fault planted."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.integers(0, 4))
    A = rng.normal(size=(n, n))
    P, q, c, labels = (A + A.T) / 2, rng.normal(size=n), float(rng.normal()), None
    fault = draw(st.sampled_from(["none", "none", "none", "P", "P", "q", "c", "asym", "labels"]))
    if fault == "P":
        P = draw(st.one_of(scaled((n, n)), hostile_array()))
        if isinstance(P, np.ndarray) and P.shape == (n, n) and P.dtype.kind == "f":
            with np.errstate(all="ignore"):
                P = P / 2 + P.T / 2
    elif fault == "q":
        q = draw(st.one_of(scaled((n,)), hostile_array()))
    elif fault == "c":
        c = draw(st.one_of(st.sampled_from(SPECIAL), hostile_scalar()))
    elif fault == "asym":
        P = A
    elif fault == "labels":
        labels = draw(st.one_of(st.just(["a"] * n), st.just(list(range(n + 1))), hostile_scalar()))
    return P, q, c, labels


@FUZZ
@given(args=bqm_args())
def test_bqm_refuses_or_gives_finite_energies(args):
    P, q, c, labels = args
    m = _quiet(BQM, P, q, c, labels=labels)
    if m is None:
        return
    best = solve(m, "exhaustive")
    _check_result(best, solve(m, "gptq"), solve(m, "steepest", num_reads=2))
    assert np.all(np.isfinite(m.energies(np.eye(m.n, dtype=np.int8)))) if m.n else True


_valid_qubo = st.dictionaries(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                              st.one_of(st.floats(-10, 10), st.integers(-5, 5)), max_size=6)
_hostile_qubo = st.dictionaries(
    st.one_of(st.tuples(st.integers(-1, 4), st.integers(-1, 4)), st.tuples(st.integers(0, 3)),
              st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
              st.sampled_from([None, 3, "ab", 1.5, (0.5, 1), (True, 0), (0, 10**9)])),
    st.one_of(st.floats(), st.sampled_from(SPECIAL), st.sampled_from([None, "x", "1", [1], 1 + 1j, _OBJ])),
    max_size=5)


@FUZZ
@given(Q=maybe(_valid_qubo, st.one_of(_hostile_qubo, hostile_array())),
       offset=maybe(st.floats(-5, 5), hostile_scalar()), n=maybe(st.none(), hostile_scalar()))
def test_bqm_from_qubo_refuses_hostile_dicts(Q, offset, n):
    m = _quiet(BQM.from_qubo, Q, offset, n)
    if m is not None:
        _check_result(solve(m, "exhaustive"), solve(m, "gptq"))


# options that would only make a run long are given small values; the fuzzed ones replace them
_BASE = {"adaround": {"iterations": 5}, "tabu": {"num_restarts": 1}, "anneal": {"num_reads": 2, "num_sweeps": 10},
         "steepest": {"num_reads": 2}, "tree": {"max_nodes": 2000}}
_HOSTILE_OPTION = st.one_of(st.sampled_from([None, True, 0, -1, 1, 2**70, 1.5, -0.5, math.nan, math.inf, "a", "",
                                             [1, 2], [math.nan, 1], [2, 1], (0.1, 1.0), {}, _OBJ, 1e300, 1e-300]),
                            st.sampled_from(["gram", "natural", "schur", "rows", "aimet", "paper", "linear"]))


@st.composite
def method_and_options(draw):
    name = draw(st.sampled_from(sorted(n for n, m in METHODS.items() if m.kind != "sparse")))
    opts = dict(_BASE.get(name, {}))
    names = sorted(METHODS[name].options) + ["not_an_option"]
    for key in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        val = draw(_HOSTILE_OPTION)
        if key in ("iterations", "max_nodes", "num_reads", "num_sweeps", "num_restarts", "batch_size") and (
                val is None or (isinstance(val, int) and not isinstance(val, bool) and val > 50)):
            continue  # a valid but long run is the caller's choice, not an input error
        opts[key] = val
    return name, opts


@FUZZ
@given(mo=method_and_options(), layer=st.booleans(), seed=st.integers(0, 2**16))
def test_solve_with_every_method_and_hostile_options(mo, layer, seed):
    name, opts = mo
    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=(2, 3)), rng.normal(size=(5, 3))
    prob = LayerProblem(W, fit_grid(W), X=X)
    if not layer:
        prob = prob.row_bqm(0)
    r = _quiet(solve, prob, name, **opts)
    _check_result(r, _quiet(solve, prob, "nearest") if layer else None)
    if r is not None:
        assert np.isfinite(r.energy)


@FUZZ
@given(args=st.deferred(lambda: sparse_args()),
       penalty=maybe(st.sampled_from(["l0", "l1", "l1/2", "cel0"]), hostile_scalar()),
       method=st.sampled_from(method_names(kind="sparse") * 3 + ["nope", "exhaustive"]),
       opts=st.dictionaries(st.sampled_from(["max_iter", "tol", "n_nonzero", "max_atoms", "threads", "step", "init",
                                             "certify", "kkt_tol", "dtype", "bogus"]),
                            _HOSTILE_OPTION.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool)
                                                                  and v > 50)), max_size=2)
       | st.just({}))
def test_sparse_coders_refuse_or_give_finite_objectives(args, penalty, method, opts):
    Phi, X, lam = args["Phi"], args["X"], args["lam"]
    if method == "l0-exact" and penalty in ("l1", "l1/2"):
        penalty = "l0"
    r = _quiet(code, Phi, X, penalty, lam, method, **opts)
    if r is not None:
        assert np.all(np.isfinite(r.info["objective"])) and np.all(np.isfinite(r.x)) and np.isfinite(r.energy)
        assert r.x.shape == np.shape(args["X"])[:-1] + (np.shape(args["Phi"])[1],)


@FUZZ
@given(args=layer_args(), pick=st.sampled_from(["q", "W_hat", "both", "hostile"]), q_bad=hostile_array(),
       rtol=maybe(st.sampled_from([0.0, 0.05]), hostile_scalar()), atol=maybe(st.just(0.0), hostile_scalar()),
       method=maybe(st.sampled_from(["auto", "exhaustive", "tree"]), hostile_scalar()))
def test_testing_helpers_refuse_or_judge(args, pick, q_bad, rtol, atol, method):
    W, g, X, G = args
    prob = _quiet(LayerProblem, W, g, X=X, G=G)
    q = W_hat = None
    if prob is not None:
        v = solve(prob, "nearest").x
        q = prob.integers(v) if pick in ("q", "both") else None
        W_hat = prob.w_hat(v) if pick in ("W_hat", "both") else None
    if pick == "hostile":
        q = q_bad
    rep = _quiet(rounding_report, W, g, X=X, G=G, q=q, W_hat=W_hat, method=method)
    if rep is not None and rep.optimum is not None:
        assert np.isfinite(rep.optimum) and rep.optimum <= rep.loss * (1 + 1e-9) + 1e-300
    _quiet(assert_rounding_within, W, g, X=X, G=G, q=q, W_hat=W_hat, rtol=rtol, atol=atol, method=method,
           allowed=(ValueError, TypeError, AssertionError))


@st.composite
def sparse_args(draw):
    """``(Phi, X, A, lam, max_atoms)``: valid with, more often than not, one fault planted."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    args = {"Phi": rng.normal(size=(3, 4)), "X": rng.normal(size=(2, 3)), "A": rng.normal(size=(2, 4)),
            "lam": draw(st.sampled_from([0.0, 0.1, 1.0])), "max_atoms": None}
    fault = draw(st.sampled_from(["none", "none", "none", "Phi", "X", "A", "lam", "max_atoms"]))
    if fault in ("Phi", "X", "A"):
        args[fault] = draw(st.one_of(scaled(args[fault].shape), hostile_array()))
    elif fault == "lam":
        args["lam"] = draw(st.one_of(st.sampled_from([1e-300, 1e300, -1.0]), hostile_scalar()))
    elif fault == "max_atoms":
        args["max_atoms"] = draw(st.one_of(st.integers(-1, 4), hostile_scalar()))
    return args


@FUZZ
@given(args=sparse_args(), rtol=maybe(st.just(0.0), hostile_scalar()))
def test_sparse_testing_helpers_refuse_or_judge(args, rtol):
    rep = _quiet(sparse_code_report, **args)
    if rep is not None:
        assert np.all(np.isfinite(rep.optimum)) and np.all(rep.optimum <= rep.objective * (1 + 1e-9) + 1e-300)
    _quiet(assert_sparse_code_within, rtol=rtol, **args, allowed=(ValueError, TypeError, AssertionError))


def test_the_cli_wrapper_accepts_valid_files_of_each_kind(tmp_path, capsys):
    """The checks above would prove little if the wrapper refused everything: a valid layer file,
    OR-Library file, dimod file and sweep each run to exit 0 with an optimum."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", W=rng.normal(size=(2, 3)), X=rng.normal(size=(5, 3)))
    (tmp_path / "q.txt").write_text("1\n3 3\n1 1 2\n1 2 -3\n3 3 -1\n")
    (tmp_path / "m.bqm").write_bytes(dimod.BinaryQuadraticModel({0: 1.0, 1: -2.0}, {(0, 1): 1.5}, 0.5,
                                                                "SPIN").to_file().read())
    (tmp_path / "c.toml").write_text("[sweep]\nfan_in = [3]\nout = 2\n")
    for flag, name in (("--problem", "f.npz"), ("--qubo", "q.txt"), ("--qubo", "m.bqm"), ("--config", "c.toml")):
        recs = _run_cli(capsys, ["--methods", "exhaustive,nearest", flag, str(tmp_path / name)], None,
                        tmp_path / "o.json")
        assert recs and all(any(r["optimal"] for r in rec["results"]) for rec in recs)
