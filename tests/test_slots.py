"""Multi-slot weight positions: a later task may renew a claimed weight with a value of its
own in a free slot, and every finished task keeps reading its own value, bit for bit, through
later tasks, the checkpoint and the model file (version 4; version 3 files still read)."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest
import torch
from conftest import rechecksum, tiny_config, with_header

import tinysubnets as tsn
from tinysubnets.artifact.reader import decode, parse
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.nn.masked import MaskedParam

SLOTTED = tiny_config(slots=3)


def _probe() -> torch.Tensor:
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(5))


def test_a_renewed_position_keeps_the_earlier_tasks_value() -> None:
    layer = MaskedParam(torch.arange(6.0).view(2, 3), 3, torch.Generator().manual_seed(0),
                        slots=3)
    mask0 = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    layer.consolidate(mask0, 0)
    assert layer.free_slots() == 3 * 6 - 2 and not bool(layer.full.any())
    first = layer.masked_weight(mask0, task_id=0).clone()
    with torch.no_grad():
        layer.weight += 10.0
    layer.renew, layer.renew_task = torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool), 1
    # the task in progress trains its renewed position and reads the shared one
    assert layer.effective_weight(1)[0, :2].tolist() == [10.0, 1.0]
    assert torch.equal(layer.masked_weight(mask0, task_id=0), first)
    own = layer.consolidate(torch.tensor([[1, 1, 1], [0, 0, 0]], dtype=torch.bool), 1)
    assert own.tolist() == [[True, False, True], [False, False, False]]
    assert torch.equal(layer.masked_weight(mask0, task_id=0), first)
    assert layer.values_for(1)[0].tolist() == [10.0, 1.0, 12.0]
    assert layer.slot_owner[0, 0, 0] == 1 and layer.renew is None
    assert layer.free_slots() == 3 * 6 - 4


@pytest.fixture(scope="module")
def slotted_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("slotted") / "run"
    _, first = tsn.run(SLOTTED, out, progress=False, stop_after=1)
    logits0 = first.logits(_probe(), 0)
    result, learner = tsn.run(SLOTTED, out, progress=False, resume=True)
    return out, result, learner, logits0


def test_slotted_runs_are_forget_free_through_resume_and_the_file(slotted_run) -> None:
    out, result, learner, logits0 = slotted_run
    renewed = sum(int((layer.slot_owner >= 0).sum())
                  for layer in learner.net.masked_layers().values())
    assert renewed > 0  # later tasks did take free slots of claimed weights
    assert torch.equal(learner.logits(_probe(), 0), logits0)
    model = tsn.load(out / "model.tsn")
    assert model.header["slots"] == 3
    for t in range(3):
        assert torch.equal(model.logits(_probe(), t), learner.logits(_probe(), t))
    assert result.bwt == 0.0


def test_a_slotted_run_repeats_byte_for_byte(slotted_run, tmp_path: Path) -> None:
    out, *_ = slotted_run
    again = tmp_path / "again"
    tsn.run(SLOTTED, again, progress=False)
    assert (again / "model.tsn").read_bytes() == (out / "model.tsn").read_bytes()


def test_the_reader_refuses_a_position_with_more_values_than_slots(slotted_run) -> None:
    out, _, learner, _ = slotted_run
    data = (out / "model.tsn").read_bytes()
    # some fc1 weight holds 3 values (tasks 1 and 2 both renewed it): 2 slots cannot hold it
    assert bool((learner.net.masked_layers()["fc1.weight"].slot_owner[1] >= 0).any())
    with pytest.raises(DataError, match=r"forged: layer fc1.weight: task 2 renews a position "
                                        r"that already holds 2 values"):
        decode(parse(with_header(data, lambda h: h.update(slots=2)), "forged"))
    for slots in (0, 33, "3", True):
        with pytest.raises(DataError, match="slots"):
            parse(with_header(data, lambda h, s=slots: h.update(slots=s)), "forged")
    with pytest.raises(DataError, match=r"sections"):  # the renewal sections are then extra
        parse(with_header(data, lambda h: h.update(slots=1)), "forged")


def test_files_of_version_3_still_read(tmp_path: Path) -> None:
    result, learner = tsn.run(dataclasses.replace(tiny_config(), tasks=1), tmp_path / "r",
                              progress=False)
    data = (tmp_path / "r" / "model.tsn").read_bytes()
    assert struct.unpack_from("<H", data, 8)[0] == 4
    old = rechecksum(data[:8] + struct.pack("<H", 3) + data[10:])
    assert torch.equal(decode(parse(old, "old")).logits(_probe(), 0),
                       learner.logits(_probe(), 0))


def test_slots_are_checked_as_a_setting() -> None:
    for slots in (0, 33):
        with pytest.raises(ConfigError, match="slots must be in \\[1, 32\\]"):
            tiny_config(slots=slots).validate()
