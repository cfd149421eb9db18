"""Regression tests of issue 15: one test per failure found by fuzzing (numbered as in the issue).

Each test feeds the hostile input and checks the refusal (ValueError/TypeError naming the
argument; CLI: exit 2 and one ``error:`` line) or the now correct answer, against an independent
check where a number is involved (brute force over every state, the unscaled problem).
"""

import io
import itertools
import json
import os
import sqlite3
import zipfile

import dimod
import numpy as np
import pytest

from reference import fit_grid
from reference.compare.cli import main
from reference.conv import conv_geometry
from reference.testing import assert_rounding_within, assert_sparse_code_within, sparse_code_report
from solvers import BQM, LayerProblem, solve
from solvers.sparse import code

C = ["--jobs", "1", "--methods", "exhaustive"]


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _layer(seed=0, out=3, fan_in=6, n=20):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(out, fan_in)), rng.normal(size=(n, fan_in))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _brute_layer_optimum(W, X, grid):
    """Independent oracle: every up/down rounding of each row, loss ``||X (W_hat - W)^T||^2 / N``."""
    s, z = grid.per_row(W.shape[0])
    total = 0.0
    for k in range(W.shape[0]):
        x = W[k] / s[k, 0]
        lo = np.clip(np.floor(x) + z[k, 0], grid.qmin, grid.qmax)
        hi = np.clip(np.floor(x) + 1 + z[k, 0], grid.qmin, grid.qmax)
        best = np.inf
        for up in itertools.product([0, 1], repeat=W.shape[1]):
            q = np.where(np.array(up) == 1, hi, lo)
            e = X @ (s[k, 0] * (q - z[k, 0]) - W[k])
            best = min(best, float(e @ e) / X.shape[0])
        total += best
    return total


# ------------------------------------------------------------------------------ silently wrong
def test_1_a_copied_file_reuses_the_stored_results_under_its_own_name(tmp_path, capsys):
    W, X = _layer()
    a = _npz(tmp_path / "a.npz", W=W, X=X)
    b = str(tmp_path / "b.npz")
    with open(a, "rb") as fa, open(b, "wb") as fb:
        fb.write(fa.read())
    store = str(tmp_path / "s.db")
    assert main(C + ["--problem", a, "--store", store, "--json", str(tmp_path / "a.json")]) == 0
    assert main(C + ["--problem", b, "--store", store, "--json", str(tmp_path / "b.json")]) == 0
    ra = json.loads((tmp_path / "a.json").read_text())["problems"][0]
    rb = json.loads((tmp_path / "b.json").read_text())["problems"][0]
    assert rb["name"] == "b" and len(rb["results"]) == 1
    assert rb["results"][0]["loss"] == ra["results"][0]["loss"] and rb["results"][0]["optimal"]


def test_2_duplicate_problems_tables_and_methods_never_double_rows(tmp_path, capsys):
    W, X = _layer()
    a = _npz(tmp_path / "a.npz", W=W, X=X)
    b = _npz(tmp_path / "b.npz", W=W, X=X)
    assert main(C + ["--problem", a, "--problem", a]) == 2
    _one_error_line(capsys, "--problem", "more than once")
    assert main(["--jobs", "1", "--methods", "nearest,nearest", "--problem", a]) == 2
    _one_error_line(capsys, "--methods", "nearest")
    out = tmp_path / "o.json"
    assert main(C + ["--problem", a, "--problem", b, "--json", str(out)]) == 0
    recs = json.loads(out.read_text())["problems"]
    assert [r["name"] for r in recs] == ["a"] and len(recs[0]["results"]) == 1
    assert "same content" in capsys.readouterr().err
    toml = tmp_path / "s.toml"
    toml.write_text("[[sweep]]\nfan_in = [4]\nout = 2\n[[sweep]]\nfan_in = [4]\nout = 2\n")
    assert main(C + ["--config", str(toml)]) == 2
    _one_error_line(capsys, "repeats problem")
    toml.write_text("[sweep]\nfan_in = [4, 4]\n")
    assert main(C + ["--config", str(toml)]) == 2
    _one_error_line(capsys, "fan_in", "repeats")


@pytest.mark.parametrize("factor", [1e-200, 1e200, 1e-300, 1e300])
def test_3_4_fit_grid_is_scale_invariant_and_never_returns_garbage(factor):
    W, _ = _layer(1, 4, 9)
    g = fit_grid(W)
    fit_grid(W * 3.0)  # a previous call must not leak into the next (np.empty)
    gs = fit_grid(W * factor)
    np.testing.assert_allclose(gs.scale, g.scale * factor, rtol=1e-12)
    assert np.array_equal(gs.zero_point, g.zero_point)
    ga = fit_grid(W * factor, symmetric=False)
    np.testing.assert_allclose(ga.scale, fit_grid(W, symmetric=False).scale * factor, rtol=1e-12)


def test_3_4_fit_grid_refuses_what_float64_cannot_hold():
    with pytest.raises(ValueError, match="subnormal"):
        fit_grid(np.full((2, 3), 1e-306))
    with pytest.raises(ValueError, match="overflows"):
        fit_grid(np.array([[1.7e308, -1.7e308]]), symmetric=False)


@pytest.mark.parametrize("factor", [1e-300, 1e-150, 1e300])
def test_5_12_a_gram_matrix_that_underflows_or_overflows_is_refused(factor):
    W, X = _layer()
    with pytest.raises(ValueError, match=r"X\^T X / N .*(underflows|overflows|subnormal)"):
        LayerProblem(W, fit_grid(W), X=X * factor)


def test_5_a_tiny_but_representable_gram_matrix_keeps_the_right_optimum():
    W, X = _layer(2, 2, 5)
    grid = fit_grid(W)
    r = solve(LayerProblem(W, grid, X=X * 1e-100), "exhaustive")
    assert r.optimal
    # the optimum of the scaled problem is the optimum of the unscaled one
    assert LayerProblem(W, grid, X=X).loss(r.x) == pytest.approx(_brute_layer_optimum(W, X, grid), rel=1e-9)


def test_6_18_entries_whose_sums_overflow_are_refused(tmp_path, capsys):
    o = tmp_path / "o.txt"
    o.write_text("1\n2 3\n1 1 -1e308\n2 2 -1e308\n1 2 1e308\n")
    for method in ("exhaustive", "tree", "anneal"):
        assert main(["--jobs", "1", "--methods", method, "--qubo", str(o)]) == 2
        _one_error_line(capsys, "o.txt", "overflow")
    with pytest.raises(ValueError, match="overflow"):
        BQM(np.array([[0, 1e308], [1e308, 0]]))
    with pytest.raises(ValueError, match="overflow"):
        BQM.from_qubo({(0, 0): -1e308, (1, 1): -1e308, (0, 1): 1e308})


@pytest.mark.parametrize("text, needle", [
    ("1\n2 -1\n", "entry count"),
    ("-1\n", "number of instances"),
    ("1\n2 2\n1 2 1\n1 2 1\n", "twice"),
    ("1\n2 2\n1 2 1\n2 1 1\n", "twice"),
    ("1\n3 4\n1 1 1\n1 2 1\n2 1 1\n2 2 1\n", "twice"),
    ("1\n2 5\n1 1 1\n", "entry count"),
    ("1\n3 3\n1 1 1\n", "follow"),
    ("1\n2 1\n1 1 nan\n", "not finite"),
])
def test_7_orlib_negative_counts_and_repeated_entries_are_refused(tmp_path, capsys, text, needle):
    f = tmp_path / "q.txt"
    f.write_text(text)
    assert main(C + ["--qubo", str(f)]) == 2
    _one_error_line(capsys, "q.txt", needle)


def test_8_25_tolerances_must_be_finite_and_non_negative():
    W, X = _layer(3, 2, 4)
    grid = fit_grid(W)
    best = solve(LayerProblem(W, grid, X=X), "exhaustive")
    q = LayerProblem(W, grid, X=X).integers(1 - best.x)  # a poor rounding
    for bad in (np.nan, -1, np.inf):
        for kw in ("rtol", "atol"):
            with pytest.raises(ValueError, match=kw):
                assert_rounding_within(W, grid, X=X, q=q, **{kw: bad})
    with pytest.raises(TypeError, match="rtol"):
        assert_rounding_within(W, grid, X=X, q=q, rtol="0.1")
    rng = np.random.default_rng(0)
    Phi, Xs = rng.normal(size=(4, 5)), rng.normal(size=(2, 4))
    for kw in ("rtol", "atol"):
        with pytest.raises(ValueError, match=kw):
            assert_sparse_code_within(Phi, Xs, np.zeros((2, 5)), 0.1, **{kw: np.nan})


# ------------------------------------------------------------------------------ tracebacks
def test_9_22_empty_weights_are_refused_naming_w(tmp_path, capsys):
    for shape in ((3, 0), (0, 8)):
        with pytest.raises(ValueError, match="W must have at least one row and one column"):
            fit_grid(np.zeros(shape))
        p = _npz(tmp_path / "e.npz", W=np.zeros(shape), X=np.zeros((4, shape[1])))
        assert main(C + ["--problem", p]) == 2
        line = _one_error_line(capsys, "e.npz", "W must have at least one row")
        assert "scale" not in line


def test_10_an_array_header_claiming_a_huge_shape_is_refused_before_reading(tmp_path, capsys):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
    p = tmp_path / "h.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("W.npy", buf.getvalue() + b"\0" * 64)
        z.writestr("X.npy", buf.getvalue())
    assert main(C + ["--problem", str(p)]) == 2
    _one_error_line(capsys, "h.npz", "'W'", "(100000, 100000)")
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (300, 300)})
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("W.npy", buf.getvalue() + b"\0" * 64)
    assert main(C + ["--problem", str(p)]) == 2
    _one_error_line(capsys, "h.npz", "holds")


def test_11_21_npy_and_text_files_are_not_npz(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.ones((2, 2)))
    assert main(C + ["--problem", str(tmp_path / "w.npy")]) == 2
    _one_error_line(capsys, "w.npy", ".npy file", "not a .npz file")
    (tmp_path / "t.npz").write_text("W = 1\n")
    assert main(C + ["--problem", str(tmp_path / "t.npz")]) == 2
    line = _one_error_line(capsys, "t.npz", "not a .npz file")
    assert "pickle" not in line


def test_12_huge_inputs_are_refused_when_the_layer_is_read(tmp_path, capsys):
    W, X = _layer()
    for name, data in (("x.npz", {"W": W, "X": X * 1e300}), ("w.npz", {"W": W * 1e300, "X": X})):
        assert main(C + ["--problem", _npz(tmp_path / name, **data)]) == 2
        line = _one_error_line(capsys, name, "overflows")
        assert "scale must" not in line


def test_13_a_qubo_without_variables_is_solved_by_every_method(tmp_path, capsys):
    z = tmp_path / "z.txt"
    z.write_text("1\n0 0\n")
    out = tmp_path / "z.json"
    assert main(["--jobs", "1", "--methods", "exhaustive,tree,anneal,gptq", "--qubo", str(z), "--json", str(out)]) == 0
    res = json.loads(out.read_text())["problems"][0]["results"]
    assert len(res) == 4 and all(r["optimal"] and r["energy"] == 0.0 for r in res)
    r = solve(BQM(np.zeros((0, 0)), c=1.5), "tree")
    assert r.optimal and r.energy == 1.5 and r.x.shape == (0,)


@pytest.mark.parametrize("toml, needle", [
    ("sweep = 3\n", "'sweep' must be a table"),
    ("sweep = [1, 2]\n", "'sweep' must be a table"),
    ("[sweep]\nfan_in = [100000000]\n", "above the limit"),
    ("[sweep]\nout = 100000000\n", "above the limit"),
    ("[sweep]\nseeds = [-1]\n", "seeds"),
    ("[sweep]\nseeds = [1.5]\n", "seeds"),
    ("[sweep]\nname = 3\n", "name"),
    ("[sweep]\nbits = [1]\n", "bits"),
    ("[sweep]\nrho = nan\n", "rho"),
])
def test_14_15_20_bad_sweeps_are_refused_up_front(tmp_path, capsys, toml, needle):
    f = tmp_path / "c.toml"
    f.write_text(toml)
    assert main(C + ["--config", str(f)]) == 2
    _one_error_line(capsys, "c.toml", needle)


def test_20_a_huge_sweep_is_refused_in_well_under_a_second(tmp_path, capsys):
    import time

    f = tmp_path / "c.toml"
    f.write_text(f"[sweep]\nseeds = {list(range(1000))}\nfan_in = {list(range(1, 201))}\n"
                 f"bits = [2, 3, 4, 5, 6, 7, 8]\n")
    t0 = time.perf_counter()
    assert main(C + ["--config", str(f)]) == 2
    assert time.perf_counter() - t0 < 5
    _one_error_line(capsys, "c.toml", "problems", "above the limit")


def test_15_negative_seeds_are_refused(capsys):
    assert main(C + ["--seed", "-1"]) == 2
    _one_error_line(capsys, "--seed")
    W, X = _layer()
    prob = LayerProblem(W, fit_grid(W), X=X)
    for method in ("stochastic", "anneal", "tabu", "steepest", "adaround"):
        with pytest.raises(ValueError, match="seed"):
            solve(prob, method, seed=-1)


def test_16_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path, capsys):
    W, X = _layer()
    p = _npz(tmp_path / "a.npz", W=W, X=X)
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE results (id INTEGER, payload BLOB)")
    con.execute("INSERT INTO results VALUES (1, x'00ff')")
    con.commit()
    con.close()
    before = db.read_bytes()
    assert main(C + ["--problem", p, "--store", str(db)]) == 2
    _one_error_line(capsys, "--store", "not a results store")
    assert db.read_bytes() == before and not os.path.exists(str(db) + "-wal")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 20)
    before = junk.read_bytes()
    assert main(C + ["--problem", p, "--store", str(junk)]) == 2
    _one_error_line(capsys, "--store")
    assert junk.read_bytes() == before


def test_16_an_unwritable_store_and_corrupted_rows_give_one_line(tmp_path, capsys):
    W, X = _layer()
    p = _npz(tmp_path / "a.npz", W=W, X=X)
    assert main(C + ["--problem", p, "--store", str(tmp_path / "missing-dir" / "s.db")]) == 2
    _one_error_line(capsys, "--store")
    store = tmp_path / "s.db"
    assert main(C + ["--problem", p, "--store", str(store)]) == 0
    capsys.readouterr()
    for bad in ("{not json", json.dumps({"problem_hash": "x"}), "[]"):
        con = sqlite3.connect(store)
        con.execute("UPDATE results SET record = ?", (bad,))
        con.commit()
        con.close()
        assert main(C + ["--problem", p, "--store", str(store)]) == 2
        _one_error_line(capsys, "--store", "corrupted")
    capsys.readouterr()


def test_16_a_read_only_store_is_one_line(tmp_path, capsys, monkeypatch):
    """Read-only as SQLite sees it (chmod alone does not stop root, who may run the suite)."""
    import reference.compare.store as store_mod

    W, X = _layer()
    p = _npz(tmp_path / "a.npz", W=W, X=X)
    ro = tmp_path / "ro.db"
    sqlite3.connect(ro).close()
    before = ro.read_bytes()
    real = sqlite3.connect
    monkeypatch.setattr(store_mod.sqlite3, "connect", lambda path: real(f"file:{path}?mode=ro", uri=True))
    assert main(C + ["--problem", p, "--store", str(ro)]) == 2
    _one_error_line(capsys, "--store", "readonly")
    assert ro.read_bytes() == before


def test_17_an_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import reference.compare.harness as harness

    monkeypatch.setattr(harness, "SCHEDULER_TIMEOUT", 1)
    W, X = _layer()
    p = _npz(tmp_path / "a.npz", W=W, X=X)
    assert main(C + ["--problem", p, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    _one_error_line(capsys, "--scheduler", "cannot connect")


def test_19_signals_whose_norms_overflow_are_refused():
    rng = np.random.default_rng(0)
    Phi, X = rng.normal(size=(4, 5)), rng.normal(size=(2, 4))
    for method, penalty in (("l0-exact", "l0"), ("omp", "l0"), ("fista", "l1"), ("iht", "l0")):
        with pytest.raises(ValueError, match="overflow"):
            code(Phi, X * 1e200, penalty, 0.1, method)
        with pytest.raises(ValueError, match="overflow"):
            code(Phi * 1e200, X, penalty, 0.1, method)


# ------------------------------------------------------------------------------ unclear messages
@pytest.mark.parametrize("method, opts, needle", [
    ("exhaustive", {"threads": "a"}, "threads"),
    ("exhaustive", {"threads": 0}, "threads"),
    ("anneal", {"num_reads": "abc"}, "num_reads"),
    ("anneal", {"num_reads": 2.7}, "num_reads"),
    ("anneal", {"seed": "x"}, "seed"),
    ("anneal", {"seed": 1.5}, "seed"),
    ("anneal", {"beta_range": "ab"}, "beta_range"),
    ("anneal", {"beta_range": [np.nan, 1]}, "beta_range"),
    ("anneal", {"beta_range": [2, 1]}, "beta_range"),
    ("anneal", {"num_sweeps": 0}, "num_sweeps"),
    ("tabu", {"timeout": -5}, "timeout"),
    ("tree", {"max_nodes": 0.5}, "max_nodes"),
    ("stochastic", {"seed": -3}, "seed"),
])
def test_23_lenient_bad_options_are_refused_naming_the_option(method, opts, needle):
    W, X = _layer()
    with pytest.raises((ValueError, TypeError), match=needle):
        solve(LayerProblem(W, fit_grid(W), X=X), method, **opts)


def test_24_bad_qubo_dicts_and_row_indices_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"Q\[\(0, 1\)\]"):
        BQM.from_qubo({(0, 1): "x"})
    with pytest.raises(ValueError, match="pairs"):
        BQM.from_qubo({(0, 1, 2): 1.0})
    with pytest.raises(ValueError, match="pairs"):
        BQM.from_qubo({3: 1.0})
    with pytest.raises(ValueError, match="above the limit"):
        BQM.from_qubo({(0, 10**9): 1.0})
    W, X = _layer()
    with pytest.raises(ValueError, match="k must be an integer"):
        LayerProblem(W, fit_grid(W), X=X).row_bqm(1.5)


# ------------------------------------------------------------------------------ refused before allocating
def test_26_the_atom_limit_is_checked_before_the_gram_matrix(monkeypatch):
    from solvers.sparse.problem import SparseProblem

    def no_gram(self):
        raise AssertionError("the Gram matrix was built before the max_atoms check")

    monkeypatch.setattr(SparseProblem, "G", property(no_gram))
    rng = np.random.default_rng(0)
    Phi, X = rng.normal(size=(3, 30)), rng.normal(size=(2, 3))
    with pytest.raises(ValueError, match="max_atoms"):
        code(Phi, X, "l0", 0.1, "l0-exact")
    with pytest.raises(ValueError, match="max_atoms"):
        sparse_code_report(Phi, X, np.zeros((2, 30)), 0.1)


def test_27_an_orlib_header_is_checked_before_allocating(tmp_path, capsys):
    f = tmp_path / "big.txt"
    f.write_text("1\n40000 0\n")
    assert main(C + ["--qubo", str(f)]) == 2
    _one_error_line(capsys, "big.txt", "above the limit")
    f.write_text("1\n4000 3\n1 1 1\n")
    assert main(C + ["--qubo", str(f)]) == 2
    _one_error_line(capsys, "big.txt", "follow")


def test_a_dimod_model_above_the_dense_limit_is_refused():
    from solvers.bqm import MAX_DENSE_VARS

    bqm = dimod.BinaryQuadraticModel({i: 1.0 for i in range(MAX_DENSE_VARS + 1)}, {}, 0.0, "BINARY")
    with pytest.raises(ValueError, match="above the limit"):
        BQM.from_dimod(bqm)


# ------------------------------------------------------------------------------ cosmetic
def test_table_columns_stay_apart_for_huge_gaps():
    from reference.compare.cli import _fmt_table

    rec = {"name": "p", "kind": "qubo", "results": [
        {"method": "nearest", "energy": 1.0, "gap": 123456.789, "optimal": False, "seconds": 0.5, "status": "x"}]}
    line = _fmt_table(rec, "d").splitlines()[-1]
    assert "1.2346e+07 " in line and "  no" in line


# ------------------------------------------------------------------------------ found by the fuzz suite
def test_subnormal_coefficients_are_refused_and_names_kept():
    """Fuzzing found a model with subnormal entries (1e-321) whose factorisation failed with a
    LinAlgError in gptq: such numbers have lost their precision and are refused."""
    with pytest.raises(ValueError, match="P holds subnormal"):
        BQM(np.array([[1e-321, -1e-321], [-1e-321, 0.0]]))
    with pytest.raises(ValueError, match="q holds subnormal"):
        BQM(np.zeros((1, 1)), [5e-324])
    m = BQM(np.array([[0.0, -1e-300], [-1e-300, 0.0]]), [8e-301, 8e-301], name="tiny")  # normal numbers stay
    assert m.name == "tiny" and m.P[0, 1] == -1e-300


def test_multi_line_messages_reach_the_cli_as_one_line(tmp_path, capsys):
    """Fuzzing found a 2-D ``bits`` member whose repr spread the error over two lines."""
    W, X = _layer()
    p = _npz(tmp_path / "b.npz", W=W, X=X, bits=np.zeros((2, 1)))
    assert main(C + ["--problem", p]) == 2
    _one_error_line(capsys, "b.npz", "bits must be an integer", "shape (2, 1)")


def test_huge_counts_and_subnormal_lambdas_do_not_overflow_python_ints():
    """Fuzzing found ``n=1e300`` (OverflowError while writing the message) and ``lam=5e-324``
    (``int(inf)`` in the exact l0 solver's support limit)."""
    with pytest.raises(ValueError, match="above the limit"):
        BQM.from_qubo({}, n=1e300)
    rng = np.random.default_rng(0)
    Phi, X = rng.normal(size=(3, 4)), rng.normal(size=(2, 3))
    r = code(Phi, X, "l0", 5e-324, "l0-exact")
    # with lam that small the optimum fits X exactly: Phi (3 x 4) has rank 3, so some 3 atoms span R^3
    assert np.linalg.matrix_rank(Phi) == 3
    assert np.all(r.info["objective"] <= 1e-20) and r.optimal
    np.testing.assert_allclose(r.x @ Phi.T, X, atol=1e-9)


def test_a_method_that_refuses_a_problem_at_run_time_is_reported_not_a_traceback(tmp_path, monkeypatch):
    """A ValueError raised by a method while it runs (say, a factor that is not finite) becomes that
    method's row, ``refused: <reason>``, with no value and no optimum; the other methods still run."""
    import dataclasses

    import solvers._registry as registry

    def boom(bqm, **opts):
        raise ValueError("the triangular factor is not finite")

    monkeypatch.setitem(registry.METHODS, "tree", dataclasses.replace(registry.METHODS["tree"], run=boom))
    f = tmp_path / "q.txt"
    f.write_text("1\n2 2\n1 1 3\n1 2 -1\n")
    out = tmp_path / "o.json"
    assert main(["--jobs", "1", "--methods", "exhaustive,tree", "--qubo", str(f), "--json", str(out)]) == 0
    by = {r["method"]: r for r in json.loads(out.read_text())["problems"][0]["results"]}
    assert by["tree"]["status"] == "refused: the triangular factor is not finite"
    assert by["tree"]["energy"] is None and not by["tree"]["optimal"]
    assert by["exhaustive"]["optimal"] and by["exhaustive"]["energy"] == -3.0  # maximises 3 x1 - 2 x1 x2: 3 at (1, 0)


# ------------------------------------------------------------------------------ geometry that drives allocation
def _conv_args(kernel, pad, dil=1):
    from reference.conv import conv_geometry

    W = np.ones((1, 1, kernel, kernel))
    X = np.ones((1, 1, 2, 2))
    return W, X, conv_geometry(W.shape, 1, padding=pad, dilation=dil)


@pytest.mark.parametrize("kernel, pad, dil, culprit", [
    (1, 100000, 1, "padding (100000, 100000)"),  # np.pad asked for 298 GiB
    (3, 5000, 1, "padding (5000, 5000)"),  # the 3x3 patches alone: 6.7 GiB
    (3, 10000, 10000, "padding (10000, 10000) with dilation (10000, 10000)"),
])
def test_a_huge_padding_or_dilation_is_refused_from_the_geometry_before_allocating(kernel, pad, dil, culprit):
    import re
    import tracemalloc

    from reference.conv import conv2d, conv_gram, conv_loss, patches
    from solvers import ConvProblem

    W, X, geo = _conv_args(kernel, pad, dil)
    grid = fit_grid(W.reshape(1, -1))
    # one 2 x 2 sample: padded (2 + 2 pad)^2, output side 2 + 2 pad - dil (kernel - 1), kernel^2 per patch
    side = 2 + 2 * pad - dil * (kernel - 1)
    padded, patch = (2 + 2 * pad) ** 2, side * side * kernel**2
    gram, out = padded + patch + 3 * kernel**4, padded + patch + side * side
    calls = [(lambda: ConvProblem(W, grid, X, padding=pad, dilation=dil), gram), (lambda: conv_gram(X, geo), gram),
             (lambda: patches(X, geo), gram), (lambda: conv2d(X, W, padding=pad, dilation=dil), out),
             (lambda: conv_loss(W, X, W, padding=pad, dilation=dil), out)]
    for call, total in calls:
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match="^" + re.escape(
                    f"{culprit}: the convolution of X of shape (1, 1, 2, 2) by a {kernel}x{kernel} kernel would "
                    f"need {total} float64 entries ({total * 8 / 2**30:.3g} GiB) of work arrays at once (padded "
                    f"input {padded}, patches {patch}, ") + r"(Gram matrices|output chunk) \d+\), above the limit "
                    r"reference\.conv\.MAX_WORK_ELEMENTS = 268435456$"):
                call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20  # refused from the shapes: nothing large was allocated
    assert 6.7 < patch * 8 / 2**30 < 6.71 or pad != 5000  # the finding's 6.7 GiB: the 3x3 patches


def test_a_network_with_a_huge_padding_is_refused_when_it_is_built():
    from reference.cnn import CNN, ConvSpec

    with pytest.raises(ValueError, match=r"^padding \(5000, 5000\): the convolution of X of shape \(1, 1, 8, 8\)"):
        CNN.initialize(input_shape=(1, 8, 8), convs=(ConvSpec(2, padding=5000),), pool=1, dense=(3,))
    net = CNN.initialize(input_shape=(1, 8, 8), convs=(ConvSpec(2, padding=1),), pool=1, dense=(3,))
    with pytest.raises(ValueError, match=r"^padding \(5000, 5000\): "):
        CNN(net.weights, net.biases, [conv_geometry((2, 1, 3, 3), 1, padding=5000)], 1, (1, 8, 8))


def test_a_huge_padding_in_a_layer_file_is_one_line(tmp_path, capsys):
    p = _npz(tmp_path / "pad.npz", W=np.ones((1, 1, 3, 3)), X=np.ones((1, 1, 2, 2)), padding=5000)
    assert main(C + ["--problem", p]) == 2
    _one_error_line(capsys, "pad.npz", "padding (5000, 5000): ", "MAX_WORK_ELEMENTS")


def test_a_huge_fan_in_or_image_is_refused_naming_w_or_x():
    from reference.conv import conv_gram, conv_geometry

    W = np.ones((1, 1, 1, 20000))  # a 20000-entry kernel row: Gram matrices of 3 * 4e8 entries
    with pytest.raises(ValueError, match=r"^W \(fan-in \(C_in/groups\) kh kw = 20000\): "):
        conv_gram(np.ones((1, 1, 1, 20000)), conv_geometry(W.shape, 1))
    geo = conv_geometry((1, 1, 7, 7), 1)  # one 3000 x 3000 image: 4.4e8 patch entries
    with pytest.raises(ValueError, match=r"^X \(the size of its images\): .*patches 439237764"):
        conv_gram(np.zeros((1, 1, 3000, 3000)), geo)


def test_the_work_budget_is_what_the_convolution_allocates_and_can_be_raised(monkeypatch):
    """Independent check of ``ConvGeometry.work``: the peak that tracemalloc sees numpy allocate is
    the counted work arrays plus X's validated copy (and the result), within 1 %; a budget of exactly
    that count is accepted and one entry less is refused."""
    import tracemalloc

    import reference.conv as conv

    rng = np.random.default_rng(0)
    for N, C, H, Wd, co, k, s, p, d, g in [(3, 4, 20, 17, 6, 3, 1, 5, 1, 2), (2, 2, 9, 9, 2, 3, 2, 40, 3, 1),
                                           (50, 3, 30, 30, 4, 5, 1, 2, 1, 1), (7, 6, 11, 13, 6, 3, 1, 3, 1, 3)]:
        X, W = rng.normal(size=(N, C, H, Wd)), rng.normal(size=(co, C // g, k, k))
        geo = conv.conv_geometry(W.shape, C, s, p, d, g)
        Ho, Wo = geo.output_size(H, Wd)
        for output in (False, True):
            work = sum(geo.work(N, H, Wd, output).values())
            tracemalloc.start()
            try:
                conv.conv2d(X, W, s, p, d, g) if output else conv.conv_gram(X, geo)
                peak = tracemalloc.get_traced_memory()[1] / 8
            finally:
                tracemalloc.stop()
            expect = work + X.size + (N * co * Ho * Wo if output else 0)
            assert abs(peak - expect) <= 0.03 * expect, (peak, expect)
            monkeypatch.setattr(conv, "MAX_WORK_ELEMENTS", work)
            conv.conv2d(X, W, s, p, d, g) if output else conv.conv_gram(X, geo)
            monkeypatch.setattr(conv, "MAX_WORK_ELEMENTS", work - 1)
            with pytest.raises(ValueError, match=f"would need {work} float64 entries"):
                conv.conv2d(X, W, s, p, d, g) if output else conv.conv_gram(X, geo)
            monkeypatch.undo()


# ------------------------------------------------------------------------------ numbers beyond float64
def test_python_ints_beyond_float64_are_a_value_error_not_an_overflow_error():
    from reference.validation import check_tolerance
    from solvers.sparse import SparseProblem

    with pytest.raises(ValueError, match=r"^time_limit must be a finite number > 0 .*found 1000000000"):
        solve(BQM(np.eye(2)), "tree", time_limit=10**400)
    with pytest.raises(ValueError, match=r"^beta_range must be a pair"):
        solve(BQM(np.eye(2)), "anneal", beta_range=[1, 10**400])
    with pytest.raises(ValueError, match=r"^rtol must be a finite number >= 0, found 1000000000"):
        check_tolerance(10**400, "rtol")
    with pytest.raises(ValueError, match=r"^lam must be finite"):
        SparseProblem(np.eye(2), np.ones(2), lam=10**400)
    assert solve(BQM(np.eye(2)), "tree", time_limit=2**31 - 1).optimal  # the largest limit, as a Python int


def test_integers_beyond_64_bits_are_refused_naming_the_option():
    """Found with 10**400 for every declared option: three reached numpy or float arithmetic and
    raised OverflowError (adaround's iterations, lns's reads, a grid's qmin)."""
    from reference import Grid

    W = np.random.default_rng(0).normal(size=(2, 3))
    layer = LayerProblem(W, fit_grid(W), X=np.eye(3))
    for problem, method, opt in ((layer, "adaround", "iterations"), (BQM(np.eye(3)), "lns", "reads"),
                                 (BQM(np.eye(3)), "anneal", "seed"), (BQM(np.eye(3)), "tree", "max_nodes")):
        for value in (10**400, 2**63, -(2**63) - 1):
            with pytest.raises(ValueError, match=f"^{opt} must be an integer >= .* and fit in 64 bits "
                                                 r"\(\|value\| < 2\^63\), found -?\d"):
                solve(problem, method, **{opt: value})
    assert solve(BQM(np.eye(3), [-2, 2, -2]), "anneal", seed=2**63 - 1).energy == -2.0  # x = (1, 0, 1)
    for qmin, qmax in ((-(10**400), 7), (-(2**53) - 1, 7), (0, 2**53 + 1)):
        with pytest.raises(ValueError, match=r"^qm(in|ax) must lie in \[-2\^53, 2\^53\]"):
            Grid(0.1, qmin, qmax)
    assert Grid(1.0, -(2**53), 2**53).qmax == 2**53


# ------------------------------------------------------------------------------ problem files: write last, atomically
def _safetensors_and_inputs(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a.weight": np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)},
              str(tmp_path / "m.safetensors"))
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(5, 3)))
    np.save(tmp_path / "x4.npy", np.ones((5, 4)))  # 4 columns for 3 inputs: refused
    return ["--weights", str(tmp_path / "m.safetensors"), "--tensor", "a.weight"]


def test_a_refused_problem_file_run_leaves_out_untouched(tmp_path, capsys):
    from reference.compare.problem_files import load_layer
    from reference.compare.problem_files import main as pf_main

    base = _safetensors_and_inputs(tmp_path)
    out = tmp_path / "layer.npz"
    assert pf_main(base + ["--inputs", str(tmp_path / "x4.npy"), "--out", str(out)]) == 2
    _one_error_line(capsys, "X has 4 columns but W has 3 inputs")
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["m.safetensors", "x.npy", "x4.npy"]
    assert pf_main(base + ["--inputs", str(tmp_path / "x.npy"), "--out", str(out), "--bits", "3"]) == 0
    capsys.readouterr()
    good = out.read_bytes()
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    assert out.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777  # the mode of a plain new file
    for bad, needle in ((["--inputs", str(tmp_path / "x4.npy")], "X has 4 columns but W has 3 inputs"),
                        (["--inputs", str(tmp_path / "x.npy"), "--bits", "40"], "bits must be >= 2 and <= 16"),
                        (["--inputs", str(tmp_path / "x.npy"), "--stride", "2"], "apply to a convolution")):
        assert pf_main(base + bad + ["--out", str(out)]) == 2
        _one_error_line(capsys, needle)
        assert out.read_bytes() == good  # the valid file is kept, byte for byte
    assert sorted(os.listdir(tmp_path)) == ["layer.npz", "m.safetensors", "probe", "x.npy", "x4.npy"]
    assert load_layer(str(out)).shape == (2, 3)
    (tmp_path / "d.npz").mkdir()
    for where, needle in ((tmp_path / "d.npz", "d.npz: is a directory, not a file"),
                          (tmp_path / "no" / "l.npz", "l.npz: its directory")):
        assert pf_main(base + ["--inputs", str(tmp_path / "x.npy"), "--out", str(where)]) == 2
        _one_error_line(capsys, needle)


# ------------------------------------------------------------------------------ messages that say what is wrong
def test_a_text_or_pickle_file_as_inputs_is_named_for_what_it_is(tmp_path, capsys):
    import pickle

    from reference.compare.problem_files import read_inputs

    (tmp_path / "x.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"x\.txt: not a \.npy or \.npz file \(numpy\.save writes") as err:
        read_inputs(str(tmp_path / "x.txt"))
    assert "pickle" not in str(err.value).split(": ", 1)[1]
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(np.ones(3)))
    with pytest.raises(ValueError, match=r"x\.pkl: holds Python objects \(pickled data\), which are never loaded"):
        read_inputs(str(tmp_path / "x.pkl"))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"o\.npy: the array holds Python objects \(pickled data\)"):
        read_inputs(str(tmp_path / "o.npy"))
    buf = io.BytesIO()  # a .npy header claiming 1e10 numbers: refused from the header, as in a .npz
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
    (tmp_path / "h.npy").write_bytes(buf.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"h\.npy: the array claims shape \(100000, 100000\), above the limit"):
        read_inputs(str(tmp_path / "h.npy"))
    with open(tmp_path / "z.bin", "wb") as fh:  # a zip of arrays, whatever its name
        np.savez(fh, X=np.ones((2, 3)))
    assert read_inputs(str(tmp_path / "z.bin")).shape == (2, 3)


def test_a_directory_is_not_called_a_missing_file(tmp_path, capsys):
    from reference.compare.problem_files import main as pf_main
    from reference.compare.problem_files import read_inputs, read_safetensors

    d = tmp_path / "dir"
    d.mkdir()
    for call in (lambda: read_inputs(str(d)), lambda: read_safetensors(str(d), "a")):
        with pytest.raises(ValueError, match=r"dir: is a directory, not a file$"):
            call()
    with pytest.raises(ValueError, match=r"nothing: no such file$"):
        read_inputs(str(tmp_path / "nothing"))
    for flag in ("--problem", "--qubo", "--config"):
        assert main(C + [flag, str(d)]) == 2
        _one_error_line(capsys, "is a directory, not a file")
    assert pf_main(["--weights", str(d), "--tensor", "a", "--inputs", str(d), "--out", str(tmp_path / "o.npz")]) == 2
    _one_error_line(capsys, "dir: is a directory, not a file")


def test_conv_files_blame_x_for_what_is_wrong_with_x(tmp_path, capsys):
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(4, 2, 5, 5))
    cases = [
        (dict(W=W, X=X * 1e-160), "X's patch Gram matrix is below 2e-292", "rescale X"),
        (dict(W=W, X=X[:, :0]), "X must have at least one input channel (X.shape[1] = C_in), found C_in = 0"),
        (dict(W=W, X=X[:, :1]), "X has C_in = 1 input channels (X.shape[1]), but W of shape (3, 2, 3, 3) with "
                                "groups = 1 takes C_in = W.shape[1] * groups = 2"),
    ]
    for data, *needles in cases:
        assert main(C + ["--problem", _npz(tmp_path / "c.npz", **data)]) == 2
        line = _one_error_line(capsys, "c.npz", *needles)
        assert "rescale G" not in line and "W must" not in line


def test_underflowing_atoms_are_not_called_zero_atoms():
    from solvers.sparse import SparseProblem

    rng = np.random.default_rng(0)
    Phi, X = rng.normal(size=(5, 4)), rng.normal(size=(3, 5))
    with pytest.raises(ValueError, match=r"^Phi has 4 atom\(s\) \(columns\) whose norm underflows to 0 in float64 "
                                         r"\(largest entry 2\.\d+e-200,.*rescale Phi$"):
        SparseProblem(Phi * 1e-200, X)
    Phi[:, 1] = 0
    with pytest.raises(ValueError, match=r"^Phi must have no zero atom \(column\), found 1$"):
        SparseProblem(Phi, X)


# ------------------------------------------------------------------------------ silently accepted before
def test_boolean_conv_settings_are_refused_in_files_as_by_the_api(tmp_path, capsys):
    from solvers import ConvProblem

    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(4, 2, 5, 5))
    for key, value in (("stride", True), ("padding", False), ("dilation", True), ("groups", True),
                       ("bits", True)):
        assert main(C + ["--problem", _npz(tmp_path / "b.npz", W=W, X=X, **{key: value})]) == 2
        _one_error_line(capsys, "b.npz", f"{key} must be an int")
        if key != "bits":
            with pytest.raises(ValueError, match=f"^{key} must be an int"):
                ConvProblem(W, fit_grid(W.reshape(3, -1)), X, **{key: np.array(value)})


def test_a_boolean_lambda_is_refused():
    from solvers.sparse import SparseProblem

    rng = np.random.default_rng(0)
    for lam in (True, np.bool_(False), np.array(True)):
        with pytest.raises(TypeError, match=r"^lam must be a finite number >= 0, found"):
            SparseProblem(rng.normal(size=(3, 2)), rng.normal(size=3), lam=lam)
        with pytest.raises(TypeError, match=r"^lam must be a finite number"):
            code(rng.normal(size=(3, 2)), rng.normal(size=3), "l1", lam, "ista")


@pytest.mark.parametrize("given", ["", ",", " , "])
def test_methods_naming_no_method_is_refused_not_every_method(tmp_path, capsys, given):
    W, X = _layer()
    p = _npz(tmp_path / "a.npz", W=W, X=X)
    assert main(["--jobs", "1", "--methods", given, "--problem", p]) == 2
    _one_error_line(capsys, f"--methods: no method named (given {given!r}); choose from [")
