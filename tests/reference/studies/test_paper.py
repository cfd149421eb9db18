"""The paper's tables in miniature, on a tiny setting: structure and the facts that must hold."""

import contextlib
import io
import time

import numpy as np
import pytest

from reference.digits import load_digits
from reference.studies.paper import PaperSettings, format_tables, run_paper_suite


@pytest.fixture(scope="module")
def tiny():
    st = PaperSettings(bits=(3,), seeds=(0,), epochs=40, n_stochastic=4,
                       anneal={"num_reads": 4, "num_sweeps": 200},
                       adaround={"preset": "aimet", "iterations": 300})
    t0 = time.perf_counter()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out = run_paper_suite(st, progress=True)
    out["stderr"] = err.getvalue()
    return out, time.perf_counter() - t0


def test_the_study_shows_its_steps_on_stderr(tiny):
    out, _ = tiny
    assert "paper" in out["stderr"] and "1/1" in out["stderr"] and "3 bits, seed 0" in out["stderr"]


def test_every_table_has_rows_and_the_exact_rows_have_zero_gap(tiny):
    out, _ = tiny
    n_test = load_digits(downsample=True).y_test.size
    tables = {t for t, _, _ in out["rows"]}
    assert tables == {"1", "2 first", "2 all", "4"}
    for (table, bits, name), r in out["rows"].items():
        assert bits == 3
        # a test accuracy in percent is a whole number of the test digits, counted once each
        correct = np.asarray(r["acc"]) * n_test / 100
        np.testing.assert_allclose(correct, np.round(correct), rtol=0, atol=1e-9)
        assert np.all((correct >= 0) & (correct <= n_test))
        if "exact" in name:
            assert np.allclose(r["gap"], 0.0), name
        gaps = np.asarray(r["gap"], dtype=float)
        assert np.all(np.isnan(gaps) | (gaps >= -1e-9)), (name, gaps)


def test_exact_local_loss_beats_nearest_floor_and_ceil_on_its_own_objective(tiny):
    out, _ = tiny
    rows = {name: r for (t, b, name), r in out["rows"].items() if t == "1"}
    exact = [r for n, r in rows.items() if n.startswith("Eq. 20") and "exact" in n][0]
    for base in ("nearest", "ceil", "floor"):
        assert np.mean(rows[base]["energy"]) > np.mean(exact["energy"])


def test_tables_render_as_markdown(tiny):
    text = format_tables(tiny[0])
    assert text.count("### ") == 4 and "| nearest |" in text
