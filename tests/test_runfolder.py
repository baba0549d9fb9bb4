"""A run folder has one writer, leaves no temporary files behind, and a resume makes its files
agree with its checkpoint (docs/design.md: a crashed run resumes from its last finished task)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_config

from tinysubnets import run
from tinysubnets.artifact import inspect
from tinysubnets.cli import main
from tinysubnets.errors import ConfigError, WriteError

SRC = Path(__file__).resolve().parents[1] / "src"


def _cfg():
    return dataclasses.replace(tiny_config(epochs=1), tasks=2)


def test_a_second_writer_is_refused_with_the_process_that_holds_the_folder(tmp_path: Path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from tinysubnets.runfolder import locked\n"
         f"with locked(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(SRC)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"{out} is in use by process {holder.pid} on"):
            run(_cfg(), out, progress=False)
        assert not (out / "config.yaml").exists()  # nothing written by the refused run
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    result, _ = run(_cfg(), out, progress=False, stop_after=1)  # the lock went with its process
    assert len(result.R) == 1


def test_resume_rewrites_the_files_to_the_checkpoints_task_count(tmp_path: Path) -> None:
    whole, _ = run(_cfg(), tmp_path / "whole", progress=False)
    out = tmp_path / "cut"
    run(_cfg(), out, progress=False, stop_after=1)
    (out / "model.tsn").unlink()  # as if killed mid-way, or deleted
    (out / ".model.tsn.0123abcd.part").write_bytes(b"half a file")  # a killed writer's temp
    resumed, _ = run(_cfg(), out, progress=False, resume=True, stop_after=1)
    assert len(inspect(out / "model.tsn").header["tasks"]) == 1 == len(resumed.R)
    assert not list(out.glob(".*.part"))
    finished, _ = run(_cfg(), out, progress=False, resume=True)
    assert finished.R == whole.R
    assert (out / "model.tsn").read_bytes() == (tmp_path / "whole" / "model.tsn").read_bytes()


def test_a_folder_killed_before_its_first_task_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_cfg(), out, progress=False, stop_after=0)  # config written, no task finished
    assert (out / "config.yaml").exists() and not (out / "checkpoint.pt").exists()
    result, _ = run(_cfg(), out, progress=False, resume=True)
    assert len(result.R) == 2


def test_out_is_checked_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(ConfigError, match="it is a file, not a folder"):
        run(_cfg(), a_file, progress=False)
    with pytest.raises(ConfigError, match="is a file, so no folder can be made under it"):
        run(_cfg(), a_file / "run", progress=False)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 96 KB tmpfs: room for a config and a model file, not for a checkpoint."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the disk-full test runs as root only")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_clear_error_and_leaves_no_partial_file(tiny_disk: Path, capsys):
    out = tiny_disk / "run"
    with pytest.raises(WriteError, match=r"cannot write .*checkpoint\.pt: No space left"):
        run(_cfg(), out, progress=False)
    assert not list(out.glob(".*.part"))
    assert len(inspect(out / "model.tsn").header["tasks"]) == 1  # the last complete file
    assert main(["run", "--tasks", "2", "--epochs", "1", "--out", str(tiny_disk / "cli")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
