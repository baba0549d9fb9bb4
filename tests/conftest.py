"""Shared fixtures: small, fast configurations on the embedded MNIST subset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinysubnets import RunConfig

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    # Bit-exact comparisons assume the same thread count within a test.
    torch.set_num_threads(2)


def tiny_config(**train: object) -> RunConfig:
    """3 permuted-MNIST tasks on the embedded subset, a few epochs: seconds per run."""
    settings = {"epochs": 2, "batch_size": 128, **train}
    return RunConfig.for_scenario("pmnist", tasks=3, seed=7, train=settings)
