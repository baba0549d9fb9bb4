"""`tsn report`: every file is written (report.md, valid PNGs, results_long.csv matching R),
several runs read side by side, and bad or incomplete run folders give one clear message or a
report that says what is missing, never a traceback."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from tinysubnets import RunConfig
from tinysubnets.cli import main
from tinysubnets.errors import DataError
from tinysubnets.report.build import write_report
from tinysubnets.report.figures import RUN_FIGURES, over_tasks
from tinysubnets.report.longcsv import LONG_CSV
from tinysubnets.report.pertask import first_last_means
from tinysubnets.report.rundir import read_run, run_labels
from tinysubnets.runs import resolved_config, run
from tinysubnets.scenarios import build_scenario

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ablation in miniature: 3 tasks with post-pruning, 2 without (1 epoch each). One
    thread: a report's numbers need no bit-exact comparison, and 2 threads on a shared 2-core
    machine run ten times slower."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for name, tasks, prune in (("pruned", 3, True), ("unpruned", 2, False)):
        cfg = RunConfig.for_scenario(
            "pmnist", tasks=tasks, seed=7, threads=1, train={"epochs": 1, "batch_size": 256},
            prune={"enabled": prune, "retrain_epochs": 1}, quantize={"finetune_epochs": 1},
        )
        run(cfg, out=root / name, progress=False)
        folders[name] = root / name
    return folders


def _copy(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dst = tmp_path / (name or src.name)
    shutil.copytree(src, dst)
    return dst


def _long_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_long_csv(rows: list[dict[str, str]], R: list[list[float]], label: str) -> None:
    measured = [r for r in rows if r["run"] == label and r["kind"] == "after_training"]
    T = len(R)
    assert len(measured) == T * (T + 1) // 2
    for r in measured:
        i, j = int(r["trained_task"]), int(r["tested_task"])
        assert float(r["accuracy"]) == pytest.approx(R[i][j], abs=1e-4)


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000, path
    with Image.open(path) as image:
        image.verify()


def _results(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


def test_every_run_folder_gets_the_long_csv(runs: dict[str, Path]) -> None:
    for label, folder in runs.items():
        rows = _long_rows(folder / LONG_CSV)
        results = _results(folder)
        _check_long_csv(rows, results["R"], label)
        assert {r["scenario"] for r in rows} == {"pmnist"} and {r["seed"] for r in rows} == {"7"}
        before = [r for r in rows if r["kind"] == "before_training"]
        assert len(before) == len(results["R"]) - 1  # task 0 has no "before" measure


def test_report_of_one_run(runs: dict[str, Path], tmp_path: Path) -> None:
    rc = dict(matplotlib.rcParams)
    out = tmp_path / "out"
    report = write_report([runs["pruned"]], out)
    assert dict(matplotlib.rcParams) == rc  # no global matplotlib state changed
    text = report.path.read_text()
    for title in ("Table 8", "Table 1", "Table 2", "Table 4", "Accuracy matrix R"):
        assert title in text
    assert "Left out" not in text and "Notes" not in text  # a complete run: nothing missing
    for name in RUN_FIGURES:
        _check_png(out / "figures" / name)
        assert f"](figures/{name})" in text
    results = _results(runs["pruned"])
    assert f"{results['acc']:.2f}" in text
    _check_long_csv(_long_rows(out / LONG_CSV), results["R"], "pruned")
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_report_defaults_to_the_run_folder(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(runs["unpruned"], tmp_path)
    report = write_report([folder])
    assert report.path == folder / "report.md"
    assert (folder / "figures" / "accuracy_matrix.png").is_file()
    assert "Quantization was off" not in report.path.read_text()


def test_two_runs_side_by_side(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    write_report([runs["pruned"], runs["unpruned"]], out)
    text = (out / "report.md").read_text()
    assert "Table 5" in text and "`prune.enabled`" in text
    table8 = text.split("Table 8")[1].split("##")[0]
    assert "| `pruned` |" in table8 and "| `unpruned` |" in table8
    assert "## Run `pruned`" in text and "## Run `unpruned`" in text
    _check_png(out / "figures" / "accuracy_vs_capacity.png")
    for label in runs:
        _check_png(out / "figures" / label / "accuracy_matrix.png")
        assert f"](figures/{label}/capacity.png)" in text
    rows = _long_rows(out / LONG_CSV)
    for label, folder in runs.items():
        _check_long_csv(rows, _results(folder)["R"], label)


def test_same_folder_names_get_distinct_labels(tmp_path: Path) -> None:
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert run_labels([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]
    assert run_labels([tmp_path / "x", tmp_path / "x"]) == ["x (1)", "x (2)"]


def test_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty is not a run folder: it has no results\.json"):
        write_report([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(DataError, match="no such folder"):
        write_report([tmp_path / "missing"], tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad/results\.json is not readable JSON"):
        write_report([bad])
    (bad / "results.json").write_text(json.dumps({"format": 99, "R": [[50.0]]}))
    with pytest.raises(DataError, match="unknown format 99"):
        write_report([bad])
    (bad / "results.json").write_text(json.dumps({"format": 1, "R": [[50.0, 1.0]]}))
    with pytest.raises(DataError, match="row 0 of the accuracy matrix"):
        write_report([bad])
    assert not (tmp_path / "out").exists() and not (bad / "report.md").exists()


def test_missing_parts_are_noted(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(runs["pruned"], tmp_path)
    (folder / "capacity.json").unlink()
    (folder / "model.tsn").unlink()
    results = _results(folder)
    for task in results["per_task"]:
        del task["phase_s"]  # as in runs made before phase timings
    (folder / "results.json").write_text(json.dumps(results))
    report = write_report([folder], tmp_path / "out")
    text = report.path.read_text()
    assert "capacity.json is missing: capacity is taken from results.json" in text
    assert "model.tsn is missing" in text and "time per phase is not recorded" in text
    assert any("capacity.json" in n for n in report.notes)
    assert f"{results['model']['total_pct']:.3f}" in text  # Table 1 from results.json
    _check_png(tmp_path / "out" / "figures" / "phase_times.png")  # total time per task only

    del results["model"]
    (folder / "results.json").write_text(json.dumps(results))
    text = write_report([folder], tmp_path / "out2").path.read_text()
    assert "no capacity is recorded" in text
    assert not (tmp_path / "out2" / "figures" / "capacity.png").exists()


def test_one_task_run(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(runs["pruned"], tmp_path)
    results = _results(folder)
    for key in ("R", "per_task", "compression", "accuracy_before_training"):
        results[key] = results[key][:1]
    results["fwt"] = None
    (folder / "results.json").write_text(json.dumps(results))
    text = write_report([folder], tmp_path / "out").path.read_text()
    assert "one task only" in text and "| n/a |" in text  # FWT
    _check_png(tmp_path / "out" / "figures" / "accuracy_matrix.png")


def test_garbled_record_leaves_a_section_out(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(runs["pruned"], tmp_path)
    results = _results(folder)
    results["compression"][1] = {"task": 1}  # a hand-edited or truncated record
    (folder / "results.json").write_text(json.dumps(results))
    report = write_report([folder], tmp_path / "out")
    assert "Left out" in report.path.read_text()
    assert (tmp_path / "out" / "figures" / "accuracy_matrix.png").is_file()


def _long_run(src: Path, tmp_path: Path, T: int) -> tuple[Path, dict]:
    """A copy of ``src`` whose results claim T tasks (its 3 tasks' records repeated), with an R
    whose entries all differ, so that a mean over the wrong tasks shows."""
    folder = _copy(src, tmp_path, f"run{T}")
    results = _results(folder)
    results["R"] = [[60.0 + (7 * i + 3 * j) % 37 + 0.01 * j for j in range(i + 1)]
                    for i in range(T)]
    results["per_task"] = [dict(copy.deepcopy(results["per_task"][i % 3]), task_id=i)
                           for i in range(T)]
    results["compression"] = [dict(results["compression"][i % 3], task=i) for i in range(T)]
    results["accuracy_before_training"] = [None, *[10.0] * (T - 1)]
    results["acc"] = sum(results["R"][-1]) / T
    (folder / "results.json").write_text(json.dumps(results))
    return folder, results


def test_forty_tasks_render(runs: dict[str, Path], tmp_path: Path) -> None:
    """Long sequences (TinyImageNet has 40 tasks): every figure is still drawn."""
    folder, _ = _long_run(runs["pruned"], tmp_path, 40)
    write_report([folder], tmp_path / "out")
    for name in RUN_FIGURES:
        _check_png(tmp_path / "out" / "figures" / name)


def _over_tasks_table(text: str) -> list[str]:
    part = text.split("## ACC and capacity against the number of tasks")[1].split("\n## ")[0]
    return [line for line in part.splitlines() if line.startswith("| ") and "---" not in line]


def test_first_and_last_ten_and_the_figure_over_tasks(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    folder, results = _long_run(runs["pruned"], tmp_path, 25)
    final = results["R"][-1]
    first, last = sum(final[:10]) / 10, sum(final[15:]) / 10
    assert first != pytest.approx(last)  # the test data tells the two apart
    assert first_last_means(results["R"]) == (first, last)
    report = write_report([folder], tmp_path / "out", activations=False)
    header, row = _over_tasks_table(report.path.read_text())
    assert header == "| tasks | ACC (%) | first 10 (%) | last 10 (%) | model.tsn % |"
    total = results["per_task"][-1]["model"]["total_pct"]
    assert row == f"| 25 | {results['acc']:.2f} | {first:.2f} | {last:.2f} | {total:.3f} |"
    _check_png(tmp_path / "out" / "figures" / "over_tasks.png")
    assert "](figures/over_tasks.png)" in report.path.read_text()

    fig = over_tasks(read_run(folder))  # what the figure draws: the same numbers
    acc_ax, cap_ax = fig.axes
    assert list(acc_ax.lines[0].get_ydata()) == [sum(r) / len(r) for r in results["R"]]
    tops = np.zeros(25)
    for bar in cap_ax.patches:
        tops[round(bar.get_x() + bar.get_width() / 2)] += bar.get_height()
    assert tops == pytest.approx([t["model"]["total_pct"] for t in results["per_task"]])
    labels = [t.get_text() for t in cap_ax.get_xticklabels()]
    assert labels == ["1", "2", "4", "6", "8", "10", "12", "14", "16", "18", "20", "22", "24"]


def test_short_and_older_runs_over_tasks(runs: dict[str, Path], tmp_path: Path) -> None:
    """Under 20 tasks the first and last ten would overlap: ACC only, and a line says why; a run
    that did not record model.tsn after each task gets the accuracy panel alone."""
    folder, results = _long_run(runs["pruned"], tmp_path, 5)
    for task in results["per_task"]:
        del task["model"]
    (folder / "results.json").write_text(json.dumps(results))
    assert first_last_means(results["R"]) is None
    report = write_report([folder], tmp_path / "out", activations=False)
    text = report.path.read_text()
    assert "Left out" not in text and "shown for runs of 20 tasks or more" in text
    assert _over_tasks_table(text) == ["| tasks | ACC (%) | model.tsn % |",
                                       f"| 5 | {results['acc']:.2f} | n/a |"]
    _check_png(tmp_path / "out" / "figures" / "over_tasks.png")
    assert len(over_tasks(read_run(folder)).axes) == 1


def test_cli_report(runs: dict[str, Path], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["report", str(runs["pruned"]), str(runs["unpruned"]), "--out", str(out)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (out / "report.md").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing is not a run folder" in err
    assert "Traceback" not in err


def test_flops_and_activation_tables_are_measured_from_the_model_file(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from tinysubnets import load
    from tinysubnets.report.flops import model_ops

    folder = _copy(runs["pruned"], tmp_path)
    write_report([folder])
    text = (folder / "report.md").read_text()
    table6 = text.split("(Table 6)")[1].split("\n## ")[0]
    ops = model_ops(load(folder / "model.tsn"))
    for o in ops:  # MFLOPs dense and sparse of each task, as the counter gives them
        assert f"| {o.task_id} | {o.dense_flops / 1e6:.3f} | {o.sparse_flops / 1e6:.3f} |" in table6
    table7 = text.split("(Table 7)")[1].split("\n## ")[0]
    rows = [line for line in table7.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["0", "1", "2", "mean"]
    fp32 = [float(r.split("|")[2]) for r in rows[1:-1]]
    assert fp32 == pytest.approx(_results(folder)["R"][-1], abs=0.006)  # the run's own ACC


def test_activation_table_says_how_to_give_missing_data(runs: dict[str, Path], tmp_path) -> None:
    folder = _copy(runs["unpruned"], tmp_path)
    write_report([folder], data_dir=tmp_path / "nothing-here")
    text = (folder / "report.md").read_text()
    assert "Not measured: the scenario's data was not found" in text
    write_report([folder], activations=False)
    assert "(Table 7)" not in (folder / "report.md").read_text()


def test_table3_shows_the_accuracy_the_bit_width_search_measured(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(runs["pruned"], tmp_path)
    write_report([folder], activations=False)
    text = (folder / "report.md").read_text()
    table3 = text.split("(Table 3)")[1].split("\n## ")[0]
    for t in _results(folder)["per_task"]:
        trials = t["quantize"]["uniform_val_acc"]
        assert {"3", "4", "5"} <= set(trials)  # always measured, whatever width was chosen
        row = next(line for line in table3.splitlines() if line.startswith(f"| {t['task_id']} |"))
        assert f"{trials['4']:.2f}" in row


def test_task_inference_table_and_heatmap(runs: dict[str, Path], tmp_path: Path) -> None:
    from tinysubnets import load
    from tinysubnets.nn.inference import CRITERIA, measure_inference

    folder = _copy(runs["pruned"], tmp_path)
    write_report([folder])
    text = (folder / "report.md").read_text()
    model = load(folder / "model.tsn")
    assert model.criterion in CRITERIA  # the run chose one on its validation data
    part = text.split(f"Without task ids (task inference, {model.criterion})")[1].split(
        "\n## ")[0]
    splits = [task.split("test") for task in build_scenario(resolved_config(folder)).tasks]
    rows = measure_inference(model, splits, model.criterion)
    for t, r in enumerate(rows):  # given, found per input and per batch, inferred
        assert (f"| {t} | {r.task_incremental:.2f} | {r.task_found:.2f} | {r.batch_found:.2f} "
                f"| {r.class_incremental:.2f} |") in part
    assert "![Task inference](figures/task_inference.png)" in part
    assert (folder / "figures" / "task_inference.png").stat().st_size > 1000
    write_report([folder], activations=False)
    assert "task inference" not in (folder / "report.md").read_text()
