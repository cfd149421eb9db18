import json

import numpy as np
import pytest

from reference import fit_grid, layer_loss
from reference.compare.cli import main
from reference.compare.problem_files import ProblemFileError, load_layer
from solvers import LayerProblem, solve


def _layer_file(tmp_path, name="layer", **extra):
    rng = np.random.default_rng(0)
    data = {"W": rng.normal(size=(3, 10)), "X": rng.normal(size=(40, 10))}
    data.update(extra)
    path = tmp_path / f"{name}.npz"
    np.savez(path, **data)
    return str(path), data


def test_json_has_the_documented_fields_and_gaps(tmp_path):
    path, data = _layer_file(tmp_path)
    out = tmp_path / "out.json"
    assert main(["--problem", path, "--methods", "exhaustive,nearest,floor", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["problems"][0]
    assert rec["name"] == "layer" and rec["n_rows"] == 3 and rec["n_vars"] <= 30
    by = {r["method"]: r for r in rec["results"]}
    assert set(by) == {"exhaustive", "nearest", "floor"}
    for r in rec["results"]:
        assert set(r) >= {"method", "loss", "optimal", "gap", "seconds", "status"}
    assert by["exhaustive"]["optimal"] and by["exhaustive"]["gap"] == 0.0
    opt = by["exhaustive"]["loss"]
    assert by["nearest"]["gap"] == pytest.approx((by["nearest"]["loss"] - opt) / opt)
    # the loss printed for nearest is Eq. 20 of round-to-nearest with the paper's 4-bit grid
    grid = fit_grid(data["W"], 4)
    prob = LayerProblem(data["W"], grid, X=data["X"])
    near = solve(prob, "nearest")
    assert by["nearest"]["loss"] == pytest.approx(layer_loss(data["W"], data["X"], prob.w_hat(near.x)), rel=1e-12)


def test_a_file_with_its_own_grid_is_used_as_given(tmp_path):
    path, data = _layer_file(tmp_path, scale=np.full(3, 0.05), qmin=-4, qmax=3, zero_point=0)
    prob = load_layer(path)
    assert prob.grid.qmin == -4 and np.all(prob.grid.scale == 0.05)


def test_gap_is_null_without_a_proven_optimum(tmp_path):
    path, _ = _layer_file(tmp_path)
    out = tmp_path / "o.json"
    assert main(["--problem", path, "--methods", "nearest", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["problems"][0]
    assert rec["results"][0]["gap"] is None


def test_default_suite_runs_and_prints_a_table_per_problem(capsys):
    assert main(["--methods", "exhaustive,nearest"]) == 0
    text = capsys.readouterr().out
    assert text.count("method") >= 8
    assert "gap to the proven optimum" in text


def test_rows_too_large_for_exhaustive_are_reported_as_skipped(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "wide.npz"
    np.savez(path, W=rng.normal(size=(1, 40)), X=rng.normal(size=(80, 40)))
    out = tmp_path / "o.json"
    assert main(["--problem", str(path), "--methods", "exhaustive,nearest", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["problems"][0]["results"]
    assert res[0]["status"].startswith("skipped: exhaustive: problem has")
    assert res[0]["loss"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        (dict(W=np.ones((2, 3))), "missing key(s) ['X']"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 2))), "X has 2 columns but W has 3 inputs"),
        (dict(W=np.full((2, 3), np.nan), X=np.ones((4, 3))), "W must be finite"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 3)), bits=1), "bits must be >= 2 and <= 16, found 1"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 3)), scale=0.1), "missing ['qmax', 'qmin']"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 3)), scale=-0.1, qmin=0, qmax=3), "scale must be > 0"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 3)), scale=0.1, qmin=0, qmax=3, bits=4), "not both"),
        (dict(W=np.ones((2, 3)), X=np.ones((4, 3)), wieghts=1), "unknown key(s) ['wieghts']"),
        (dict(W=np.array(["a", "b"]), X=np.ones((4, 3))), "W must hold real numbers"),
    ],
)
def test_malformed_files_give_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    assert main(["--problem", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err


def test_pickled_objects_are_never_loaded(tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, W=np.array([{"a": 1}], dtype=object), X=np.ones((2, 2)))
    with pytest.raises(ProblemFileError, match="pickled data"):
        load_layer(str(path))


def test_truncated_and_missing_files(tmp_path, capsys):
    good, _ = _layer_file(tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(open(good, "rb").read()[:100])
    assert main(["--problem", str(cut)]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err
    assert main(["--problem", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unknown_method_name_exits_2(capsys):
    assert main(["--methods", "exhaustive,magic"]) == 2
    assert "unknown method(s) ['magic']" in capsys.readouterr().err


def test_tree_node_budget_gives_a_bound_not_an_optimum(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "wide.npz"
    np.savez(path, W=rng.normal(size=(1, 60)) / 8, X=rng.normal(size=(240, 60)))
    out = tmp_path / "o.json"
    assert main(["--problem", str(path), "--methods", "tree,nearest", "--tree-nodes", "50", "--jobs", "1",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())["problems"][0]["results"]
    tree = res[0]
    assert not tree["optimal"] and tree["status"] == "best found"
    assert tree["lower_bound"] is not None and tree["lower_bound"] <= tree["loss"]
    assert res[1]["gap"] is None  # nothing proven, so no gap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_a_proven_optimum_every_gap_interval_holds_the_true_gap(tmp_path, seed):
    """The tree stops at a tiny node budget, so nothing is proven; the true optimum (brute force
    over every state of each row, written here) must lie in [lower_bound, best_known], and each
    method's true gap in [gap_low, gap_high], computed from the JSON's own losses."""
    import itertools

    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=(2, 12)) / 4, rng.normal(size=(6, 12))  # N < in: singular G
    path = tmp_path / "l.npz"
    np.savez(path, W=W, X=X)
    out = tmp_path / "o.json"
    assert main(["--problem", str(path), "--methods", "tree,nearest,gptq", "--tree-nodes", "3",
                 "--jobs", "1", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["problems"][0]
    prob = load_layer(str(path))
    opt = 0.0
    for k in range(prob.n_rows):
        b = prob.row_bqm(k)
        V = np.array(list(itertools.product([0, 1], repeat=b.n)), dtype=float).reshape(-1, b.n)
        opt += float((np.einsum("ij,jk,ik->i", V, b.P, V) + V @ b.q + b.c).min())
    assert rec["optimum"] is None
    losses = {r["method"]: r["loss"] for r in rec["results"]}
    assert rec["best_known"] == min(losses.values()) and losses[rec["best_method"]] == rec["best_known"]
    lb = rec["lower_bound"]
    assert 0 <= lb <= opt * (1 + 1e-9) + 1e-15 and opt <= rec["best_known"] * (1 + 1e-12)
    for r in rec["results"]:
        true_gap = (r["loss"] - opt) / opt
        assert r["gap_low"] == pytest.approx((r["loss"] - rec["best_known"]) / rec["best_known"], abs=1e-12)
        assert r["gap_low"] <= true_gap + 1e-9
        if lb > 0:
            assert r["gap_high"] == pytest.approx((r["loss"] - lb) / lb)
            assert true_gap <= r["gap_high"] + 1e-9
        else:
            assert r["gap_high"] is None


def test_with_a_proven_optimum_the_interval_is_the_gap(tmp_path):
    path, _ = _layer_file(tmp_path)
    out = tmp_path / "o.json"
    assert main(["--problem", path, "--methods", "exhaustive,nearest", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["problems"][0]
    assert rec["lower_bound"] == rec["optimum"] == rec["best_known"] and rec["best_method"] == "exhaustive"
    for r in rec["results"]:
        assert r["gap_low"] == r["gap_high"] == r["gap"]


def test_a_study_suite_shows_its_progress_bar_when_asked(monkeypatch, capsys):
    """``--suite sparse --progress`` hands the flag to the study, whose bar goes to stderr; without
    ``--progress`` (stderr not a terminal under pytest) nothing is shown."""
    from reference.compare import suites
    from reference.studies.progress import progress_bar

    seen = []

    def study(seed, out_dir=None, quick=False, folder=None, progress=False):
        seen.append(progress)
        with progress_bar(3, progress, "sparse") as bar:
            bar.update(3)
        return [{"table": "run", "seed": seed, "quick": quick, "patch_size": 8}]

    monkeypatch.setattr(suites.sparse_study, "run_sparse_suite", study)
    assert main(["--suite", "sparse", "--progress"]) == 0
    printed = capsys.readouterr()
    assert seen == [True] and "sparse" in printed.err and "3/3" in printed.err
    assert main(["--suite", "sparse"]) == 0
    assert seen == [True, False] and "3/3" not in capsys.readouterr().err
