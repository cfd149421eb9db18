"""The compare harness as a product: problem sources, store and resume, executors, outputs."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import dimod
import numpy as np
import pytest

from reference import fit_grid
from reference.compare import harness
from reference.compare.harness import SLOW_FIRST, _submission_order, make_tasks, run_tasks
from reference.compare.cli import main
from reference.compare.store import ResultStore
from reference.validation import available_cpus
from solvers import LayerProblem

ORLIB = os.path.join(os.path.dirname(__file__), "..", "..", "data", "orlib", "bqp50.txt")
BQP50_OPTIMA = [2098, 3702, 4626, 3544, 4012, 3693, 4520, 4216, 3780, 3507]

SWEEP = """
[sweep]
name = "tiny"
out = 2
fan_in = [4, 6, 8]
bits = [2, 3]
rho = [0.0, 0.6]
samples_per_input = [1, 3]
seeds = [0, 1]
"""


def _strip_seconds(doc):
    for p in doc["problems"]:
        for r in p["results"]:
            r.pop("seconds")
    return doc


def test_orlib_file_solved_by_annealing_gives_the_known_optima(tmp_path):
    out = tmp_path / "o.json"
    assert main(["--qubo", ORLIB, "--methods", "anneal", "--jobs", "1", "--quiet", "--json", str(out)]) == 0
    probs = json.loads(out.read_text())["problems"]
    assert [p["name"] for p in probs] == [f"bqp50#{k}" for k in range(1, 11)]
    energies = [p["results"][0]["energy"] for p in probs]
    assert energies == [-v for v in BQP50_OPTIMA]  # maximisation instances report minus their value
    assert all("loss" not in p["results"][0] for p in probs)


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_dimod_serialised_bqms_are_read(tmp_path, fmt):
    bqm = dimod.generators.gnp_random_bqm(9, 0.5, dimod.SPIN, random_state=4)
    path = tmp_path / f"model.{fmt}"
    if fmt == "binary":
        path.write_bytes(bqm.to_file().read())
    else:
        path.write_text(json.dumps(bqm.to_serializable()))
    out = tmp_path / "o.json"
    assert main(["--qubo", str(path), "--methods", "exhaustive", "--jobs", "1", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["problems"][0]
    assert rec["name"] == "model" and rec["n_vars"] == 9
    assert rec["results"][0]["energy"] == pytest.approx(dimod.ExactSolver().sample(bqm).first.energy)
    assert rec["results"][0]["optimal"] and rec["results"][0]["gap"] == 0.0


def test_config_sweep_builds_the_cartesian_product(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(SWEEP)
    out = tmp_path / "o.json"
    assert main(["--config", str(cfg), "--methods", "exhaustive,nearest", "--jobs", "1", "--quiet",
                 "--json", str(out)]) == 0
    probs = json.loads(out.read_text())["problems"]
    assert len(probs) == 3 * 2 * 2 * 2 * 2
    assert len({p["name"] for p in probs}) == len(probs)
    assert "tiny-in8-b3-rho0.6-spi3-seed1" in {p["name"] for p in probs}
    for p in probs:
        assert p["n_rows"] == 2
        near = [r for r in p["results"] if r["method"] == "nearest"][0]
        assert near["gap"] >= -1e-12


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sweep]\nfan_in = [4]\nbitz = [2]\n", "unknown sweep key(s) ['bitz']"),
        ("[sweep]\nfan_in = ['a']\n", "sweep key 'fan_in' must hold integers"),
        ("[sweep]\nrho = [1.5]\n", "'rho' must lie in [0, 1)"),
        ("[sweep]\nbits = [1]\n", "bits must be >= 2"),
        ("[sweep\n", "not valid TOML"),
        ("[other]\na = 1\n", "expected a [sweep] table"),
    ],
)
def test_malformed_config_gives_one_line_and_exit_2(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(cfg) in err and message in err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"3\n 4 2\n 1 1 5\n", "bqp text ends early"),
        (b"1\n 2 1\n 1 7 5\n", "outside 1..2"),
        (b"DIMODBQM\x02\x00garbage", "not a readable QUBO file"),
        (b"{\"type\": \"nothing\"}", "not a readable QUBO file"),
        (b"\xff\xfe\x00", "not a readable QUBO file"),
    ],
)
def test_malformed_qubo_files_give_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    assert main(["--qubo", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and message in err


def test_serial_parallel_and_dask_runs_give_identical_results(tmp_path):
    from distributed import LocalCluster

    cfg = tmp_path / "s.toml"
    cfg.write_text(SWEEP)
    base = ["--config", str(cfg), "--suite", "default", "--methods", "exhaustive,anneal,stochastic,nearest",
            "--seed", "7", "--quiet"]
    docs = []
    for extra in (["--jobs", "1"], ["--jobs", "2"]):
        out = tmp_path / f"o{len(docs)}.json"
        assert main(base + extra + ["--json", str(out)]) == 0
        docs.append(_strip_seconds(json.loads(out.read_text())))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "dask.json"
        assert main(base + ["--scheduler", cluster.scheduler_address, "--json", str(out)]) == 0
        docs.append(_strip_seconds(json.loads(out.read_text())))
    assert docs[0] == docs[1] == docs[2]


def _blas_threads():
    from threadpoolctl import threadpool_info

    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_worker_processes_cap_their_blas_threads():
    # jobs x BLAS threads must not exceed the cores: each of two workers gets cores // 2
    with harness.executor(2, None) as (ex, workers):
        assert workers == 2
        threads = {ex.submit(_blas_threads).result() for _ in range(4)}
    assert threads == {max(1, available_cpus() // 2)}


def test_progress_bar_shows_count_and_time_left_only_when_asked(capsys):
    assert main(["--methods", "nearest", "--jobs", "1", "--quiet", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "8/8" in err and "<00:00" in err  # done/total (8 layers) and [elapsed<time left]
    assert main(["--methods", "nearest", "--jobs", "1", "--quiet"]) == 0  # stderr is not a terminal here
    assert "8/8" not in capsys.readouterr().err


def test_a_rerun_with_the_store_runs_nothing_again(tmp_path, monkeypatch):
    store = tmp_path / "r.sqlite"
    args = ["--methods", "exhaustive,nearest,stochastic", "--jobs", "1", "--quiet", "--store", str(store)]
    out1, out2 = tmp_path / "1.json", tmp_path / "2.json"
    assert main(args + ["--json", str(out1)]) == 0
    calls = []
    monkeypatch.setattr(harness, "run_task", lambda t: calls.append(t))
    assert main(args + ["--json", str(out2)]) == 0
    assert calls == []
    assert json.loads(out1.read_text()) == json.loads(out2.read_text())
    with ResultStore(str(store)) as s:
        assert len(s.rows()) == 8 * 3 - 2  # exhaustive skips the two wide layers
        v = s.versions()
        assert v["numpy"] == np.__version__ and "dimod" in v and "qubo-reference" in v


def test_without_a_store_nothing_is_cached(tmp_path, monkeypatch):
    calls = []
    real = harness.run_task
    monkeypatch.setattr(harness, "run_task", lambda t: calls.append(t) or real(t))
    for _ in range(2):
        assert main(["--methods", "nearest", "--jobs", "1", "--quiet"]) == 0
    assert len(calls) == 16


def _store_rows(path):
    db = sqlite3.connect(path)
    rows = db.execute("SELECT key, record FROM results ORDER BY key").fetchall()
    db.close()
    out = {}
    for key, rec in rows:
        r = json.loads(rec)
        r.pop("seconds")
        out[key] = r
    return rows, out


def test_killed_run_resumes_to_the_same_store(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(SWEEP.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]"))
    cmd = [sys.executable, "-m", "reference.compare", "--config", str(cfg), "--methods", "exhaustive,anneal,nearest",
           "--jobs", "1", "--quiet"]
    full, part = tmp_path / "full.sqlite", tmp_path / "part.sqlite"
    subprocess.run(cmd + ["--store", str(full)], check=True, capture_output=True)
    n_tasks = 3 * 2 * 2 * 2 * 6 * 3

    proc = subprocess.Popen(cmd + ["--store", str(part)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if part.exists():
            try:
                n = len(_store_rows(str(part))[0])
            except sqlite3.OperationalError:
                continue
            if n >= 20:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_rows = len(_store_rows(str(part))[0])
    assert 20 <= killed_rows < n_tasks

    subprocess.run(cmd + ["--store", str(part)], check=True, capture_output=True)
    rows_full, recs_full = _store_rows(str(full))
    rows_part, recs_part = _store_rows(str(part))
    assert len(rows_full) == len(rows_part) == n_tasks
    assert recs_full == recs_part


def test_csv_and_plot_outputs(tmp_path):
    csv_path, plot_dir = tmp_path / "o.csv", tmp_path / "plots"
    assert main(["--methods", "exhaustive,nearest", "--jobs", "1", "--quiet", "--csv", str(csv_path),
                 "--plot", str(plot_dir)]) == 0
    lines = csv_path.read_text().strip().splitlines()
    assert lines[0].startswith("problem,kind,n_rows,n_vars,method,value,optimal,gap")
    assert len(lines) == 1 + 8 * 2
    png = plot_dir / "gap_vs_size.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_pool_starts_the_slow_methods_first_and_keeps_each_record_at_its_task():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 12))
    wide = LayerProblem(W, fit_grid(W), X=rng.normal(size=(40, 12)), name="wide")
    narrow = LayerProblem(W[:, :6], fit_grid(W[:, :6]), X=rng.normal(size=(40, 6)), name="narrow")
    tasks, _ = make_tasks([narrow, wide], ["gptq", "tree", "lns", "nearest"], 0)
    order = [(t.name, t.method) for _, t in _submission_order(list(enumerate(tasks)))]
    assert SLOW_FIRST[:2] == ("lns", "tree")
    assert order == [("wide", "lns"), ("narrow", "lns"), ("wide", "tree"), ("narrow", "tree"),
                     ("wide", "gptq"), ("wide", "nearest"), ("narrow", "gptq"), ("narrow", "nearest")]
    serial, pooled = run_tasks(tasks, jobs=1), run_tasks(tasks, jobs=2)
    assert [(r["problem"], r["method"]) for r in pooled] == [(t.name, t.method) for t in tasks]
    assert [r["value"] for r in pooled] == [r["value"] for r in serial]
