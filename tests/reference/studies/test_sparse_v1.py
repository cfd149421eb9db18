"""The V1 study's analysis: the quick variant end to end, and the pool-against-pool arithmetic."""

import json

import numpy as np
import pytest

from reference.studies.sparse_v1 import main, pool_rows, scale_rows


def _curve(pen, K, pts):
    return [{"penalty": pen, "K": K, "mean_l0": k, "rel_error": e} for k, e in pts]


def test_pool_rows_interpolate_the_pool_l1_needs_and_bound_it_when_none_does():
    curves = (_curve("l0", 100, [(8, 0.2), (32, 0.05)]) + _curve("cel0", 100, [(8, 0.4), (32, 0.1)])
              + _curve("l1", 100, [(8, 0.8), (32, 0.2)]) + _curve("l1", 400, [(8, 0.2), (32, 0.05)])
              + [{"penalty": "l1", "K": 400, "mean_l0": 1, "rel_error": 0.001, "paper_lam": True}])
    rows = pool_rows(curves, 16.0)
    err = {(r["penalty"], r["K"]): r["error_at_level"] for r in rows if r["table"] == "pool"}
    assert err[("l0", 100)] == pytest.approx(0.1)  # log-log midpoint of (8, 0.2) and (32, 0.05)
    assert err[("l1", 100)] == pytest.approx(0.4) and err[("l1", 400)] == pytest.approx(0.1)
    match = {r["versus"]: r for r in rows if r["table"] == "pool_match"}
    assert match["l0"]["l1_pool"] == pytest.approx(400) and match["l0"]["l1_pool_bound"] == "="
    # cel0's error 0.2 at 16 units: l1's error falls from 0.4 (K=100) to 0.1 (K=400) -> K=200 in log-log
    assert match["cel0"]["l1_pool"] == pytest.approx(200) and match["cel0"]["pool_ratio"] == pytest.approx(2)
    worse = pool_rows(_curve("l0", 100, [(8, 0.01), (32, 0.005)]) + _curve("l1", 100, [(8, 0.8), (32, 0.2)])
                      + _curve("l1", 400, [(8, 0.7), (32, 0.1)]), 16.0)
    m = [r for r in worse if r["table"] == "pool_match"][0]
    assert (m["l1_pool"], m["l1_pool_bound"], m["pool_ratio"]) == (400.0, ">", 4.0)


def test_scale_rows_compare_each_stage_of_the_smallest_pool():
    def curve(pen, K, b, pts, dict_set):
        return [{"table": "curve", "penalty": pen, "K": K, "batches": b, "presentations": 250 * b, "set": dict_set,
                 "paper_lam": False, "mean_l0": k, "rel_error": e} for k, e in pts]

    rows = (curve("l0", 100, 40, [(8, 0.4), (32, 0.1)], "scale") + curve("l1", 100, 40, [(8, 0.8), (32, 0.4)], "scale")
            + curve("l0", 100, 400, [(8, 0.2), (32, 0.05)], "tuned")
            + curve("l1", 100, 400, [(8, 0.8), (32, 0.2)], "tuned")
            + curve("l1", 200, 400, [(8, 0.01), (32, 0.001)], "tuned")  # a larger pool: not a stage
            + curve("l0", 100, 40, [(8, 0.001), (32, 0.0001)], "matched"))  # another set: ignored
    out = {r["batches"]: r for r in scale_rows(rows, 16.0, error_level=0.2)}
    assert sorted(out) == [40, 400] and out[40]["presentations"] == 10_000
    assert out[40]["error_l0"] == pytest.approx(0.2) and out[40]["error_l1"] == pytest.approx(np.sqrt(0.32))
    assert out[400]["l1_error_over_l0"] == pytest.approx(0.4 / 0.1)
    # units at error 0.2: l0 at 8, l1 at 32 (both curves' ends) -> l1 needs 4x; at stage 40 l1 never gets there
    assert out[400]["l1_units_over_l0"] == pytest.approx(4.0) and np.isnan(out[40]["l1_units_over_l0"])
    assert scale_rows([r for r in rows if r["penalty"] != "l1"], 16.0) == []  # no l1: nothing to compare


def test_the_quick_study_runs_end_to_end_and_no_code_beats_the_proven_optimum(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert main(["--quick", "--dicts", str(tmp_path / "d"), "--out", str(tmp_path / "fig"), "--json", str(out),
                 "--progress"]) == 0
    printed = capsys.readouterr()
    assert "v1 analysis" in printed.err  # the bar of the dictionaries analysed
    rows = json.loads(out.read_text())
    tables = {r["table"] for r in rows}
    assert {"dictionary", "curve", "headline", "pool", "pool_match", "scale", "tuning", "shape", "exact", "sub_exact",
            "figure", "study"} <= tables
    sets = [r["set"] for r in rows if r["table"] == "dictionary"]
    # 9 paper tasks, 3 at matched sparsity, the 4 smallest pools at 10 and 20 batches
    assert (sets.count("tuned"), sets.count("matched"), sets.count("scale")) == (9, 3, 8)
    assert sorted(r["batches"] for r in rows if r["table"] == "scale") == [10, 20, 30]
    matched = {r["penalty"]: r for r in rows if r["table"] == "shape" and r["set"] == "matched"}
    assert set(matched) == {"cel0", "l1/2", "l1"}
    study = next(r for r in rows if r["table"] == "study")
    assert study["learned_batches"] == 9 * 30 + 3 * 30 and study["total_seconds"] >= study["learn_seconds"] > 0
    for r in rows:
        if r["table"] in ("exact", "sub_exact"):
            assert r["mean_rel_gap"] >= -1e-12 and r["max_rel_gap"] >= -1e-12  # nothing beats a proof
            assert 0 <= r["frac_optimal"] <= 1
        if r["table"] == "tuning":
            assert 0 <= r["frac_oriented"] <= 1 and 0 <= r["frac_silent"] <= 1
        if r["table"] == "shape":
            assert 0 <= r["frac_gabor"] <= 1
    assert len([r for r in rows if r["table"] == "figure"]) == 9
    curves = [r for r in rows if r["table"] == "curve"]
    assert all(0 < c["rel_error"] <= 1.0 + 1e-9 for c in curves if c["mean_l0"] > 0)
    assert sum(c["paper_lam"] for c in curves) == 9 + 8
    assert "### pool_match" in printed.out
    assert np.isfinite([r["error_at_level"] for r in rows if r["table"] == "pool"]).any()


def test_bad_command_lines_exit_2(tmp_path, capsys):
    assert main(["--dicts", str(tmp_path / "none")]) == 2
    assert "--dicts must be an existing folder" in capsys.readouterr().err
    assert main(["--dicts", str(tmp_path), "--sweep", "1,x"]) == 2
    assert "--sweep must be comma-separated numbers" in capsys.readouterr().err
    assert main(["--dicts", str(tmp_path), "--sweep", "0,1"]) == 2
