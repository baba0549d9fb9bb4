"""Frozen dataclass configs; YAML files and CLI flags override the defaults.

The defaults are the ones the p-MNIST benchmark measured (see README), not the paper's code's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tinysubnets.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "plateau", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How one task is learned: optimisation and the mask's budget."""

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    plateau_patience: int = 2
    plateau_factor: float = 0.3
    keep_ratio: float = 0.5
    layer_keep_ratio: dict[str, float] = field(default_factory=dict)
    free_quota: float = 0.0

    def keep_ratio_of(self, layer: str) -> float:
        """Keep ratio of one layer: its own entry in ``layer_keep_ratio``, else ``keep_ratio``."""
        return self.layer_keep_ratio.get(layer, self.keep_ratio)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        for name, ratio in {"": self.keep_ratio, **self.layer_keep_ratio}.items():
            if not 0.0 < ratio <= 1.0:
                where = f" of layer {name}" if name else ""
                raise ConfigError(f"keep ratio{where} must be in (0, 1], got {ratio}")
        if not 0.0 <= self.free_quota <= 1.0:
            raise ConfigError(f"free quota must be in [0, 1], got {self.free_quota}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")


@dataclass(frozen=True)
class RunConfig:
    """One continual-learning run: which scenario, how many tasks, which seed, how to train."""

    scenario: str = "pmnist"
    tasks: int = 10
    seed: int = 0
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    threads: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        if self.tasks < 1:
            raise ConfigError(f"number of tasks must be >= 1, got {self.tasks}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"validation fraction must be in (0, 1), got {self.val_fraction}")
        self.train.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What must match for a run folder to be resumed (everything but where data is read)."""
        d = self.to_dict()
        for key in ("data_dir", "download", "threads"):
            d.pop(key)
        return d


def _merge(cls: type, base: Any, overrides: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; known: {', '.join(known)}")
        if key == "train":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: 'train' must be a mapping")
            value = _merge(TrainConfig, base.train, value, f"{where} train")
        changes[key] = value
    return dataclasses.replace(base, **changes)


def config_from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay a (possibly nested) mapping on ``base``; unknown keys are errors, not ignored."""
    return _merge(RunConfig, base or RunConfig(), data, "config")


def load_config_file(path: Path, base: RunConfig | None = None) -> RunConfig:
    """Read a YAML config file (same keys as RunConfig, with a nested ``train`` mapping)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return config_from_dict(data, base)
