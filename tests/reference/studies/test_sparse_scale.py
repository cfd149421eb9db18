"""Paper-scale learning runner: resumable tasks, the same bits on every executor."""

import json

import numpy as np
import pytest

from reference.studies.sparse_scale import (LEARN_LAM, MATCHED_LAM, LearnTask, load_learned, main, matched_tasks, paper_tasks,
                                    run_learning)

_TASKS = [LearnTask("l0", 16, 0.1, 6, size=8, dtype="float32"), LearnTask("l1/2", 24, 0.15, 6, size=8)]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two small grey images in a folder (faster to whiten than scikit-image's photographs)."""
    from skimage.io import imsave

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(2):
        img = np.cumsum(np.cumsum(rng.normal(size=(48, 64)), 0), 1)
        img = (255 * (img - img.min()) / np.ptp(img)).astype(np.uint8)
        imsave(str(folder / f"im{i}.png"), img, check_contrast=False)
    return str(folder)


def _phis(folder, batches=None):
    return [load_learned(t, folder, batches)["Phi"] for t in _TASKS]


def test_serial_staged_process_pool_and_dask_runs_learn_the_same_bits(tmp_path, images):
    from distributed import LocalCluster

    run_learning(_TASKS, tmp_path / "serial", images=images)
    want = _phis(tmp_path / "serial")
    recs = run_learning(_TASKS, tmp_path / "staged", stages=(2, 6), jobs=2, images=images)
    assert [(r["name"], r["done_batches"]) for r in recs] == [("l0_K16_s0", 2), ("l12_K24_s0", 2),
                                                               ("l0_K16_s0", 6), ("l12_K24_s0", 6)]
    assert recs[2]["start_batch"] == 2 and recs[2]["cpu_seconds"] >= 0
    for a, b in zip(want, _phis(tmp_path / "staged")):
        np.testing.assert_array_equal(a, b)
    assert _phis(tmp_path / "staged", 2)[0].shape == (64, 16)  # the copy kept at stage 2
    lines = (tmp_path / "staged" / "timings.jsonl").read_text().splitlines()
    assert [json.loads(s)["stage"] for s in lines] == [2, 2, 6, 6]
    # copies kept without stages: the same bits as the staged run's stage copy, results in task order
    recs = run_learning(_TASKS[::-1], tmp_path / "snap", jobs=2, images=images, snapshots=(2, 99))
    assert [r["name"] for r in recs] == ["l12_K24_s0", "l0_K16_s0"] and all(r["stage"] is None for r in recs)
    for a, b in zip(_phis(tmp_path / "staged", 2), _phis(tmp_path / "snap", 2)):
        np.testing.assert_array_equal(a, b)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_learning(_TASKS, tmp_path / "dask", scheduler=cluster.scheduler_address, images=images)
    for a, b in zip(want, _phis(tmp_path / "dask")):
        np.testing.assert_array_equal(a, b)


def test_paper_tasks_and_the_command_line(tmp_path, capsys):
    tasks = paper_tasks()
    assert [(t.penalty, t.K, t.batches) for t in tasks][:4] == [("l0", 500, 4000), ("cel0", 500, 4000),
                                                               ("l1/2", 500, 4000), ("l1", 500, 4000)]
    assert (tasks[-1].penalty, tasks[-1].K) == ("l1", 2000) and len(tasks) == 9
    assert all(t.batch_size == 250 and t.size == 16 for t in tasks)
    matched = matched_tasks()
    assert [t.name for t in matched] == [f"cel0_K500_s0_lam{MATCHED_LAM['cel0']:g}", "l12_K500_s0_lam0.2",
                                         f"l1_K500_s0_lam{MATCHED_LAM['l1']:g}"]
    assert all(MATCHED_LAM[t.penalty] != LEARN_LAM[t.penalty] for t in matched)  # names never collide
    assert main(["--out", str(tmp_path), "--K", "x"]) == 2
    assert "--K must be comma-separated integers" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--jobs", "0"]) == 2
    with pytest.raises(ValueError, match="no learned dictionary"):
        load_learned(tasks[0], tmp_path)
