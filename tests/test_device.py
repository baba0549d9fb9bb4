"""Computing on a device: names are checked, a missing GPU is a clear error, and on a GPU (when
there is one) the promises hold there too: forget-free bit-exactly, same seed same numbers,
the model file predicts on the GPU like on the CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config

from tinysubnets import load, run
from tinysubnets.config import RunConfig
from tinysubnets.device import resolve_device
from tinysubnets.errors import ConfigError
from tinysubnets.nn.masked import _select_on_device, topk_mask

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(name)
    with pytest.raises(ConfigError, match="unknown device"):
        RunConfig(device=name).validate()


def test_cpu_and_auto_resolve_here() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_device_selection_picks_the_same_mask_as_the_host_path() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 40, generator=g)  # distinct magnitudes: no ties to break
    allowed = torch.rand(50, 40, generator=g) < 0.6
    for k in (0, 1, 300, int(allowed.sum()), 5000):
        host = topk_mask(scores, k, allowed)
        group = [(allowed.reshape(-1), k, int(allowed.sum()))]
        assert torch.equal(_select_on_device(scores, group), host)
        assert int(host.sum()) == min(k, int(allowed.sum()))


def test_device_is_not_part_of_a_run_identity() -> None:
    assert "device" not in RunConfig(device="cpu").identity()


@needs_gpu
def test_a_run_on_the_gpu_is_forget_free_deterministic_and_its_file_runs_anywhere(
    tmp_path,
) -> None:
    cfg = dataclasses.replace(tiny_config(), tasks=2, device="cuda")
    first, learner = run(cfg, out=tmp_path / "a", progress=False)
    second, _ = run(cfg, out=tmp_path / "b", progress=False)
    assert first.R == second.R
    assert first.bwt == 0.0
    x = torch.randn(32, 784, generator=torch.Generator().manual_seed(1))
    model = load(tmp_path / "a" / "model.tsn")
    for t in range(2):
        on_gpu = learner.logits(x, t)
        assert on_gpu.device.type == "cuda"
        assert torch.equal(model.to("cuda").logits(x, t), on_gpu)
        torch.testing.assert_close(model.to("cpu").logits(x, t), on_gpu.cpu())
