"""Scenarios by name: an ordered sequence of tasks built from the data a user has."""

from __future__ import annotations

from pathlib import Path

from tinysubnets.config import RunConfig
from tinysubnets.data import load_mnist, mnist_source
from tinysubnets.errors import ConfigError
from tinysubnets.scenarios.base import Scenario, Split, Task, iterate_batches
from tinysubnets.scenarios.pmnist import permuted_mnist

# scenario name -> (backbone name, backbone keyword arguments)
BACKBONE_OF = {"pmnist": ("mlp", {"in_features": 784, "hidden": (100, 100)})}
SCENARIOS = tuple(BACKBONE_OF)


def build_scenario(cfg: RunConfig) -> Scenario:
    """The scenario ``cfg.scenario`` with ``cfg.tasks`` tasks, read from ``cfg.data_dir``."""
    if cfg.scenario not in BACKBONE_OF:
        raise ConfigError(f"unknown scenario {cfg.scenario!r}; known: {', '.join(SCENARIOS)}")
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    train, test = load_mnist(data_dir, download=cfg.download)
    source = mnist_source(data_dir, download=cfg.download)
    return permuted_mnist(train, test, cfg.tasks, cfg.seed, cfg.val_fraction, source)


__all__ = [
    "BACKBONE_OF", "SCENARIOS", "Scenario", "Split", "Task", "build_scenario", "iterate_batches",
]
