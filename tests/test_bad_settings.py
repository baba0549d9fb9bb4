"""Bad settings, through the API and the CLI: one ConfigError naming the setting, before any
work (issue 14's table of inputs that were tracebacks, hangs or silently accepted)."""

from __future__ import annotations

import pytest

from tinysubnets import run
from tinysubnets.cli import main
from tinysubnets.config import config_from_dict
from tinysubnets.errors import ConfigError

BAD = [
    ({"train": {"lr": float("nan")}}, "train setting lr must be a finite number"),
    ({"train": {"lr": float("inf")}}, "train setting lr must be a finite number"),
    ({"train": {"weight_decay": -5}}, "weight_decay must be >= 0"),
    ({"train": {"plateau_factor": -3}}, r"plateau_factor must be in \(0, 1\)"),
    ({"train": {"momentum": 1.5}}, r"momentum in \[0, 1\)"),
    ({"train": {"layer_keep_ratio": {"fc1": float("nan")}}}, "layer_keep_ratio.fc1 must be a "),
    ({"prune": {"threshold": float("nan")}}, "prune setting threshold must be a finite number"),
    ({"quantize": {"finetune_lr": float("inf")}}, "quantize setting finetune_lr must be a fin"),
    ({"seed": -1}, r"seed must be in \[0, 4294967295\], got -1"),
    ({"seed": 2**70}, r"seed must be in \[0, 4294967295\]"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"threads": -1}, "threads must be >= 1"),
    ({"val_fraction": 0.0}, r"validation fraction must be in \(0, 1\)"),
    ({"train": {"slots": 0}}, r"slots must be in \[1, 32\], got 0"),
    ({"train": {"claim_fraction": 0.0}}, r"claim_fraction must be in \(0, 1\], got 0.0"),
    ({"train": {"claim_fraction": 1.5}}, r"claim_fraction must be in \(0, 1\], got 1.5"),
    ({"train": {"claim_fraction": float("nan")}}, "train setting claim_fraction must be a fin"),
    ({"retest": "never"}, r"unknown retest rule 'never'; choose from \('verify', 'all'\)"),
    ({"replay": {"per_task": 5, "outlier_exposure": -1}}, "outlier_exposure must be >= 0"),
    ({"replay": {"outlier_exposure": 0.5}}, "outlier_exposure needs a replay memory"),
    ({"replay": {"per_task": 5, "outlier_exposure": float("nan")}}, "must be a finite"),
]


@pytest.mark.parametrize(("settings", "message"), BAD, ids=[m[:24] for _, m in BAD])
def test_a_bad_setting_is_one_clear_error(settings: dict, message: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(settings).validate()
    with pytest.raises(ConfigError, match=message):
        run(settings, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--lr", "nan"], "lr must be a finite number"),
    (["--seed", "-1"], "seed must be in"),
    (["--threads", "0"], "threads must be >= 1"),
    (["--stop-after", "-1"], "stop_after must be a number of tasks >= 0"),
    (["--slots", "99"], "slots must be in [1, 32], got 99"),
    (["--claim-fraction", "2"], "claim_fraction must be in (0, 1], got 2.0"),
    (["--datasets", "cifar10"], "pmnist reads one dataset; datasets applies to five-datasets"),
    (["--outlier-exposure", "1"], "outlier_exposure needs a replay memory"),
    (["--image-size", "64"], "image_size 64: pmnist's backbone has a fixed input size"),
])
def test_bad_flags_exit_2_with_one_line(flags: list[str], message: str, tmp_path, capsys):
    assert main(["run", "--tasks", "1", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["eval", "m.tsn"], ["predict", "m.tsn", "--task", "0", "x"]])
@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_eval_and_predict_threads_are_checked_by_argparse(command, threads, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--threads", threads])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads:" in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["run", "--out", ""], ["run", "--resume", " "],
                                   ["report", "x", "--out", ""]])
def test_an_empty_folder_path_is_a_usage_error(flags: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(flags)
    assert stop.value.code == 2
    assert "must not be empty" in capsys.readouterr().err
