"""Scenarios by name: an ordered sequence of tasks built from the data a user has, and the
backbone the paper uses for each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinysubnets.config import RunConfig
from tinysubnets.data import load_mnist, mnist_source
from tinysubnets.errors import ConfigError, shown
from tinysubnets.scenarios.base import Scenario
from tinysubnets.scenarios.imagenet import streamed_class_split
from tinysubnets.scenarios.pmnist import permuted_mnist
from tinysubnets.scenarios.sources import load_dataset
from tinysubnets.scenarios.vision import class_split, one_task_per_dataset
from tinysubnets.tasks import Split, Task, iterate_batches

FIVE_DATASETS = ("cifar10", "mnist", "svhn", "fashion-mnist", "notmnist")


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario's backbone (name, keyword arguments) and how its tasks are built."""

    backbone: str
    kwargs: dict[str, Any]
    build: Callable[[RunConfig], Scenario]
    summary: str
    image_size: int = 0  # default input size where --image-size applies; 0: fixed by the backbone


def _pmnist(cfg: RunConfig) -> Scenario:
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    train, test = load_mnist(data_dir, download=cfg.download)
    source = mnist_source(data_dir, download=cfg.download)
    return permuted_mnist(train, test, cfg.tasks, cfg.seed, cfg.val_fraction, source)


def _split(dataset: str, per_task: int, size: int) -> Callable[[RunConfig], Scenario]:
    def build(cfg: RunConfig) -> Scenario:
        train, test, source = load_dataset(dataset, cfg.data_dir, cfg.seed, cfg.download)
        return class_split(dataset, train, test, cfg.tasks, per_task, cfg.seed,
                           cfg.val_fraction, source, size)

    return build


def five_datasets_of(cfg: RunConfig) -> tuple[str, ...]:
    """The datasets a five-datasets run uses: ``cfg.datasets`` (comma-separated) or all five."""
    names = tuple(n.strip() for n in cfg.datasets.split(",") if n.strip()) or FIVE_DATASETS
    unknown = [n for n in names if n not in FIVE_DATASETS]
    if unknown:
        raise ConfigError(
            f"five-datasets: unknown dataset(s) {', '.join(unknown)}; choose among "
            f"{', '.join(FIVE_DATASETS)}"
        )
    return names


def _five(cfg: RunConfig) -> Scenario:
    names = five_datasets_of(cfg)
    if cfg.tasks > len(names):
        raise ConfigError(
            f"five-datasets: {cfg.tasks} tasks asked but {len(names)} datasets chosen "
            f"({', '.join(names)}); pass --tasks {len(names)}"
        )
    loaded = [(n, *load_dataset(n, cfg.data_dir, cfg.seed, cfg.download))
              for n in names[: cfg.tasks]]
    source = "; ".join(f"{n}: {src}" for n, _, _, src in loaded)
    return one_task_per_dataset("five-datasets", [(n, tr, te) for n, tr, te, _ in loaded],
                                cfg.seed, cfg.val_fraction, source)


def _imagenet100(cfg: RunConfig) -> Scenario:
    return streamed_class_split("imagenet100", cfg.data_dir, cfg.tasks, cfg.seed,
                                cfg.val_fraction, image_size_of(cfg) or 0)


SPECS: dict[str, ScenarioSpec] = {
    "pmnist": ScenarioSpec("mlp", {"in_features": 784, "hidden": (100, 100)}, _pmnist,
                           "permuted MNIST, 10 classes per task, MLP 784-100-100"),
    "cifar10": ScenarioSpec("alexnet", {}, _split("cifar10", 2, 32),
                            "split CIFAR-10, 5 tasks x 2 classes, reduced AlexNet"),
    "cifar100": ScenarioSpec("alexnet", {}, _split("cifar100", 10, 32),
                             "split CIFAR-100, 10 tasks x 10 classes, reduced AlexNet"),
    "five-datasets": ScenarioSpec("resnet18", {"nf": 20}, _five,
                                  "5 datasets at 32x32x3, one task each, ResNet-18 nf 20"),
    "tinyimagenet": ScenarioSpec("tinynet", {}, _split("tinyimagenet", 5, 64),
                                 "TinyImageNet, 40 tasks x 5 classes, TinyNet"),
    "imagenet100": ScenarioSpec("resnet18", {"nf": 64, "stem": "imagenet"}, _imagenet100,
                                "ImageNet-100, 10 x 10 classes, ResNet-18 nf 64, from disk",
                                image_size=224),
}
SCENARIOS = tuple(SPECS)


def _spec(name: str) -> ScenarioSpec:
    if name == "custom":
        raise ConfigError("scenario 'custom' is a run over the user's own tasks: it is run "
                          "from Python, tinysubnets.run(cfg, out, tasks=..., backbone=...)")
    if name not in SPECS:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SPECS[name]


def image_size_of(cfg: RunConfig) -> int | None:
    """The input size of ``cfg``'s scenario: ``cfg.image_size``, else the scenario's default;
    None where the backbone fixes it (every scenario but imagenet100)."""
    spec = _spec(cfg.scenario)
    if not spec.image_size:
        if cfg.image_size:
            sized = ", ".join(name for name, s in SPECS.items() if s.image_size)
            raise ConfigError(
                f"image_size {cfg.image_size}: {cfg.scenario}'s backbone has a fixed input "
                f"size; image_size applies to {sized} only"
            )
        return None
    return cfg.image_size or spec.image_size


def backbone_of(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """(name, keyword arguments) of the backbone ``cfg``'s scenario trains, at its input size."""
    spec, size = _spec(cfg.scenario), image_size_of(cfg)
    return spec.backbone, {**spec.kwargs, **({"size": size} if size else {})}


def build_scenario(cfg: RunConfig) -> Scenario:
    """The scenario ``cfg.scenario`` with ``cfg.tasks`` tasks, read from ``cfg.data_dir``."""
    image_size_of(cfg)  # an image size the scenario cannot take is refused before any reading
    if str(cfg.datasets or "").strip() and cfg.scenario != "five-datasets":
        raise ConfigError(f"datasets {shown(cfg.datasets)}: {cfg.scenario} reads one dataset; "
                          "datasets applies to five-datasets only")
    return _spec(cfg.scenario).build(cfg)


def scenario_of_model(
    info: dict[str, Any], tasks: int, data_dir: str | None = None, download: bool = False,
    name: str | None = None,
) -> Scenario:
    """The scenario a model file was trained on, rebuilt from what its header records (name,
    seed, validation fraction, datasets, image size), so its tasks are tested on their own data.

    ``name`` may only confirm the recorded scenario: another one would test the tasks on the
    wrong data.
    """
    recorded = info.get("name")
    if name and recorded not in (None, name):
        raise ConfigError(
            f"the model was trained on {recorded!r}, not {name!r}: its tasks would be tested "
            "on the wrong data"
        )
    name = name or recorded
    if name not in SPECS:
        raise ConfigError("the model file names no known scenario; pass the scenario's name")
    settings = {k: info[k] for k in ("seed", "val_fraction", "datasets", "image_size")
                if k in info}
    cfg = RunConfig.for_scenario(
        name, tasks=tasks, download=download, data_dir=data_dir, **settings
    )
    return build_scenario(cfg)


__all__ = [
    "FIVE_DATASETS", "SCENARIOS", "SPECS", "Scenario", "Split", "Task", "backbone_of",
    "build_scenario", "image_size_of", "iterate_batches", "scenario_of_model",
]
