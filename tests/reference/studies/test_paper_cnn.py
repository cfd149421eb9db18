"""The CNN section of the paper suite and the cnn suite, on a briefly trained network (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference import cnn
from reference.compare import suites
from reference.cnn import digits_images, train_cnn
from reference.compare.cli import main
from reference.digits import load_digits
from reference.studies.paper_cnn import CNNSettings, format_cnn_tables, run_cnn_tables


@pytest.fixture(scope="module")
def quick_cnn():
    data = load_digits()
    net = train_cnn(digits_images(data.X_train[:64]), data.y_train[:64], seed=0, epochs=1)
    return net, data


@pytest.fixture
def cached(monkeypatch, quick_cnn):
    monkeypatch.setitem(cnn._CNN_CACHE, 0, quick_cnn)
    return quick_cnn


def test_cnn_tables_are_consistent(cached, capsys):
    st = CNNSettings(bits=(2,), seeds=(0,), n_calibration=16, n_stochastic=2, tree_nodes=100,
                     anneal={"num_reads": 2, "num_sweeps": 20}, adaround={"preset": "aimet", "iterations": 20},
                     batch_images=4)
    out = run_cnn_tables(st, progress=True)
    assert "paper-cnn" in capsys.readouterr().err  # the bar of the (bits, seed) steps
    rows = out["rows"]
    exact = rows["1", 2, "Eq. 20 QUBO, exact (exhaustive)"]
    assert exact["gap"] == [0.0]
    for (table, _, name), r in rows.items():
        if "Eq. 25" in name:
            assert r["gap_to"] == ["n/a (not a QUBO)"]
            continue
        assert all(g >= -1e-12 * max(1.0, abs(e)) for g, e in zip(r["gap"], r["energy"])), name
        for b, e in zip(r["bound"], r["energy"]):
            assert b is None or b <= e * (1 + 1e-9)
    near = rows["1", 2, "nearest"]
    # the table's energy is Eq. 20 of the first conv on the calibration inputs, recomputed here
    X, _ = cnn.cnn_calibration(cached[1], 0, 16)
    net = cached[0]
    from reference.grid import fit_grid
    from solvers import cnn_layer_problem, solve
    p0 = cnn_layer_problem(net, 0, X, fit_grid(net.rows(0), bits=2))
    assert near["energy"][0] == pytest.approx(p0.loss(solve(p0, "nearest").x), rel=1e-12)
    text = format_cnn_tables(out)
    assert "CNN Table 1" in text and "CNN Table 4" in text and "gap to" in text


def test_cnn_suite_runs_in_compare(cached, tmp_path):
    probs = suites.cnn_suite(0)
    assert [p.shape for p in probs] == [(16, 9), (32, 144), (32, 9), (10, 128)]
    assert probs[2].geometry.groups == 32
    out = tmp_path / "o.json"
    assert main(["--suite", "cnn", "--methods", "nearest,exhaustive", "--jobs", "1", "--json", str(out)]) == 0
    recs = json.loads(out.read_text())["problems"]
    assert [r["name"] for r in recs][:2] == ["cnn-conv1-3x3-1to16-b4", "cnn-conv2-3x3-16to32-s2-b4"]
    by = {r["name"]: {x["method"]: x for x in r["results"]} for r in recs}
    assert by["cnn-conv1-3x3-1to16-b4"]["exhaustive"]["optimal"]
    assert by["cnn-conv2-3x3-16to32-s2-b4"]["exhaustive"]["status"].startswith("skipped")
    assert np.isfinite(by["cnn-fc-128to10-b4"]["nearest"]["loss"])
