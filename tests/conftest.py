"""Shared fixtures: small, fast configurations on the embedded MNIST subset."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tinysubnets import RunConfig
from tinysubnets.artifact.container import CHECKSUM_BYTES

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    # Bit-exact comparisons assume the same thread count within a test.
    torch.set_num_threads(2)


def tiny_config(**train: object) -> RunConfig:
    """3 permuted-MNIST tasks on the embedded subset, a few epochs: seconds per run."""
    settings = {"epochs": 2, "batch_size": 128, **train}
    return RunConfig.for_scenario("pmnist", tasks=3, seed=7, train=settings)


def rechecksum(data: bytes) -> bytes:
    """A model file's bytes with a valid checksum again (to reach the checks behind it)."""
    body = data[:-CHECKSUM_BYTES]
    return body + hashlib.sha256(body).digest()


def with_header(data: bytes, edit: Callable[[dict[str, Any]], object]) -> bytes:
    """The file with its JSON header changed by ``edit`` (a valid checksum again)."""
    size = struct.unpack_from("<I", data, 10)[0]
    header = json.loads(data[14 : 14 + size])
    edit(header)
    head = json.dumps(header, separators=(",", ":")).encode()
    return rechecksum(data[:10] + struct.pack("<I", len(head)) + head + data[14 + size :])


def input_shape_of(name: str, kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The input shape of a built-in backbone built with ``kwargs``."""
    if name == "mlp":
        return (kwargs.get("in_features", 784),)
    return (kwargs.get("in_channels", 3), *(2 * [kwargs.get("size", 64 if name == "tinynet"
                                                                 else 32)]))


def builtin_learner(cfg: RunConfig, name: str = "mlp", **kwargs: Any):
    """A learner of a built-in backbone, its values drawn from the run's seed (as `run` does)."""
    from tinysubnets.learner.learner import Learner
    from tinysubnets.nn.backbones import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        module = build_backbone(name, **kwargs)
    return Learner(module, cfg, input_shape_of(name, kwargs), {"name": name, "kwargs": kwargs})


def builtin_net(name: str, seed: int = 0, **kwargs: Any):
    """A TSNNetwork of a built-in backbone (no head yet)."""
    from tinysubnets.nn.backbones import build_backbone
    from tinysubnets.nn.network import TSNNetwork

    torch.manual_seed(seed)
    return TSNNetwork(build_backbone(name, **kwargs), input_shape_of(name, kwargs),
                      torch.Generator().manual_seed(seed))
