"""Frozen dataclass configs; YAML files and CLI flags override the defaults.

Order of precedence, later wins: dataclass defaults, the scenario's preset (``PRESETS``, the
settings its benchmark measured best), a YAML file, command-line flags.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tinysubnets.device import check_device_name
from tinysubnets.errors import ConfigError, clipped, shown

OPTIMIZERS = ("sgd", "adam", "adamw")
CLAIM_RULES = ("fair", "fraction", "scores")
SCHEDULES = ("cosine", "plateau", "none")
INITS = ("seed", "module")
# How a run re-tests its finished tasks after each task (`runs.retest_row`): "verify" checks
# each one's subnetwork bit for bit (a digest of every tensor its forward reads) and re-tests
# on data only one that changed, and every task after the run's last; "all" re-tests every
# finished task on data after every task (T^2/2 evaluations).
RETEST_RULES = ("verify", "all")


def _per_layer(table: dict[str, float], param: str, default: float | None) -> float | None:
    """A parameter's entry in a per-layer table: its own name first, then its layer's."""
    if param in table:
        return table[param]
    return table.get(param.rsplit(".", 1)[0], default) if "." in param else default


def check_finite(config: Any) -> None:
    """Raise ConfigError naming the first float setting of ``config`` (a dataclass, its own
    fields only) that is NaN or infinite: a NaN compares false with every bound below."""
    for f in fields(config):
        value = getattr(config, f.name)
        values = value.items() if isinstance(value, dict) else [("", value)]
        for key, v in values:
            if isinstance(v, float) and not math.isfinite(v):
                where = f"{f.name}.{clipped(str(key))}" if key else f.name
                raise ConfigError(f"{type(config).__name__.removesuffix('Config').lower()} "
                                  f"setting {where} must be a finite number, got {v}")


# Settings a resumed run may change (see `RunConfig.identity`).
IDENTITY_FREE = ("tasks", "data_dir", "download", "threads", "device", "retest")
MAX_SEED = 2**32 - 1  # numpy and torch both take it; per-task seeds are derived from it
MAX_SLOTS = 32  # values per weight position: a 32-bit weight split into 1-bit parts at most
# A claimed weight's owner task is an int16 (`nn.masked.MaskedParam.owner`, and what the model
# file stores): more tasks would wrap around and corrupt ownership. The model file's reader
# holds files to the same bound (`artifact.bounds.MAX_TASKS`).
MAX_TASKS = 2**15 - 1
# Past these, a setting is a typo, not a plan: 10**20 epochs overflows tqdm's counters, and
# torch/libgomp crash or hang asked for tens of thousands of threads.
MAX_EPOCHS = 10**6
MAX_COUNT = 10**8  # batch sizes, sample counts: more than any data set here holds
MAX_IMAGE_SIZE = 4096  # as a model file's image preprocessing (`preprocess.IMAGE_FIELDS`)
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


def check_range(what: str, value: int, low: int, high: int, why: str = "") -> None:
    """Raise ConfigError unless ``low <= value <= high``; the value is quoted short (a
    5000-digit int cannot even be printed in full)."""
    if not low <= value <= high:
        raise ConfigError(f"{what} must be in [{low}, {high}]{why}, got {shown(value)}")


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
    claim: str = "fair"
    # The ``fraction`` rule's share of each layer's free weights a task may claim: it needs no
    # count of the tasks to come (an open-ended stream), and what post-pruning gives back is
    # free again for the next task.
    claim_fraction: float = 0.1
    # Most of a layer's weights (fraction) a task's mask may reuse frozen from earlier tasks;
    # a layer not named may reuse up to its keep ratio. 0 keeps a layer's masks disjoint.
    layer_share_ratio: dict[str, float] = field(default_factory=dict)
    # Values of different tasks one weight position may hold (`nn.masked`): 1 gives every
    # position one owner; S > 1 lets a task renew a claimed position with a value of its own
    # in a free slot, so a long sequence does not run out of positions.
    slots: int = 1

    def keep_ratio_of(self, param: str) -> float:
        """Keep ratio of one masked parameter ("fc1.weight"): the entry of its own name or of
        its layer ("fc1") in ``layer_keep_ratio``, else ``keep_ratio``."""
        return _per_layer(self.layer_keep_ratio, param, self.keep_ratio)

    def share_ratio_of(self, param: str) -> float | None:
        """Cap on the frozen weights a mask of ``param`` reuses (None: only the keep ratio)."""
        return _per_layer(self.layer_share_ratio, param, None)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        for name, ratio in {"": self.keep_ratio, **self.layer_keep_ratio}.items():
            if not 0.0 < ratio <= 1.0:
                where = f" of layer {clipped(name)}" if name else ""
                raise ConfigError(f"keep ratio{where} must be in (0, 1], got {shown(ratio)}")
        for name, ratio in self.layer_share_ratio.items():
            if not 0.0 <= ratio <= 1.0:
                raise ConfigError(f"share ratio of layer {clipped(name)} must be in [0, 1], got "
                                  f"{shown(ratio)}")
        check_range("slots", self.slots, 1, MAX_SLOTS)
        if not 0.0 < self.claim_fraction <= 1.0:
            raise ConfigError(f"claim_fraction must be in (0, 1], got {shown(self.claim_fraction)}")
        if self.claim not in CLAIM_RULES:
            raise ConfigError(f"unknown claim rule {shown(self.claim)}; choose from "
                              f"{CLAIM_RULES}")
        check_range("epochs", self.epochs, 1, MAX_EPOCHS)
        check_range("batch size", self.batch_size, 1, MAX_COUNT)
        check_range("plateau_patience", self.plateau_patience, 0, MAX_EPOCHS)
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError(f"weight_decay must be >= 0 and momentum in [0, 1), got "
                              f"{self.weight_decay} and {self.momentum}")
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 0:
            raise ConfigError(f"plateau_factor must be in (0, 1) and plateau_patience >= 0, got "
                              f"{self.plateau_factor} and {self.plateau_patience}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {shown(self.optimizer)}; choose from "
                              f"{OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {shown(self.schedule)}; choose from "
                              f"{SCHEDULES}")


@dataclass(frozen=True)
class PruneConfig:
    """Post-pruning without gradients, then retraining what is left (on by default)."""

    enabled: bool = True
    threshold: float = 0.2
    first_step: float = 0.5
    min_step: float = 0.01
    retrain_epochs: int = 2  # the task's own remaining weights and head, after pruning; 0 = off
    retrain_lr: float = 1e-3

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        if self.threshold < 0:
            raise ConfigError(f"prune threshold must be >= 0 points, got {self.threshold}")
        if not 0.0 < self.min_step <= self.first_step <= 1.0:
            raise ConfigError(
                "prune steps must satisfy 0 < min_step <= first_step <= 1, got "
                f"min_step={self.min_step}, first_step={self.first_step}"
            )
        check_range("retrain_epochs", self.retrain_epochs, 0, MAX_EPOCHS)
        if self.retrain_epochs < 0 or self.retrain_lr <= 0:
            raise ConfigError(
                "retraining after pruning needs retrain_epochs >= 0 and retrain_lr > 0, got "
                f"{self.retrain_epochs} and {self.retrain_lr}"
            )


@dataclass(frozen=True)
class QuantizeConfig:
    """Adaptive k-means quantization of each task's own weights and head (on by default)."""

    enabled: bool = True
    b_min: int = 2
    b_max: int = 8
    threshold: float = 0.25
    heads: bool = True  # quantize each task's head too (fp32 heads rival the masks in size)
    finetune_epochs: int = 2  # centroids fine-tuned with codes fixed; 0 = plain k-means
    finetune_lr: float = 5e-4
    # Centroids rounded to float16 before they freeze (16), or kept float32 (32): the model
    # file then stores 2 bytes per centroid instead of 4.
    codebook_bits: int = 16

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        if self.codebook_bits not in (16, 32):
            raise ConfigError(
                "codebook_bits must be 16 (float16 centroids) or 32, got "
                f"{shown(self.codebook_bits)}"
            )
        for name, bits in (("b_min", self.b_min), ("b_max", self.b_max)):
            if not 1 <= bits <= 16:
                raise ConfigError(f"bit-width {name} must be in [1, 16], got {shown(bits)}")
        if self.b_min > self.b_max:
            raise ConfigError(f"bit-width b_min={self.b_min} exceeds b_max={self.b_max}")
        if self.threshold < 0:
            raise ConfigError(f"quantization threshold must be >= 0 points, got {self.threshold}")
        check_range("finetune_epochs", self.finetune_epochs, 0, MAX_EPOCHS)
        if self.finetune_epochs < 0 or self.finetune_lr <= 0:
            raise ConfigError(
                "codebook fine-tuning needs finetune_epochs >= 0 and finetune_lr > 0, got "
                f"{self.finetune_epochs} and {self.finetune_lr}"
            )


@dataclass(frozen=True)
class SimilarityConfig:
    """The KL step: measure each new task's divergence from the earlier ones (always, it is
    cheap and goes into results.json) and, optionally, act on it."""

    measure: bool = True
    sample: int = 256  # images per task the divergence is estimated on
    share_from_nearest: bool = False  # start task t's mask from the nearest task's mask
    adapt_capacity: bool = False  # scale keep ratios and new-weight budgets by divergence
    near: float = 0.5  # nats per feature: below, the task is "near" an earlier one
    far: float = 2.0  # above (from every earlier task), it is "far"
    scale_near: float = 0.75
    scale_far: float = 1.25
    # "Model duplicate": a task farther than this from every earlier task (nats per feature)
    # gets a fresh copy of the backbone, counted in capacity; None = never.
    duplicate_above: float | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        check_range("similarity sample (images)", self.sample, 2, MAX_COUNT)
        if not 0 <= self.near <= self.far:
            raise ConfigError(f"similarity needs 0 <= near <= far, got {self.near}, {self.far}")
        if self.scale_near <= 0 or self.scale_far <= 0:
            raise ConfigError("similarity capacity scales must be > 0")
        acting = self.share_from_nearest or self.adapt_capacity or self.duplicate_above is not None
        if acting and not self.measure:
            raise ConfigError(
                "share_from_nearest, adapt_capacity and duplicate_above need measure: true"
            )
        if self.duplicate_above is not None and self.duplicate_above < 0:
            raise ConfigError(f"duplicate_above must be >= 0 nats, got {self.duplicate_above}")


@dataclass(frozen=True)
class ReplayConfig:
    """A replay memory (the paper's Table 5, "with replay memory"): after each task, keep
    ``per_task`` of its training samples, chosen by reservoir sampling, in the model file (where
    they count in capacity). 0 keeps none.

    ``outlier_exposure`` (0 = off) is the weight of a second loss while a task trains: its
    subnetwork's cross-entropy to the uniform distribution on earlier tasks' replay samples
    (outlier exposure, Hendrycks et al. 2019), so that it is unsure on inputs of other tasks
    and task inference finds the right subnetwork (docs/predict.md). Earlier tasks are never
    retrained: only each new task learns to be unsure on the ones before it."""

    per_task: int = 0
    outlier_exposure: float = 0.0

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        if self.per_task < 0:
            raise ConfigError("replay per_task must be >= 0 samples (0 = no replay memory), "
                              f"got {shown(self.per_task)}")
        check_range("replay per_task (samples)", self.per_task, 0, MAX_COUNT)
        if self.outlier_exposure < 0:
            raise ConfigError("replay outlier_exposure must be >= 0 (a loss weight; 0 = off), "
                              f"got {shown(self.outlier_exposure)}")
        if self.outlier_exposure and not self.per_task:
            raise ConfigError("replay outlier_exposure needs a replay memory (its samples are "
                              "the outliers): set replay per_task > 0")


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
    device: str = "cpu"  # cpu, cuda, cuda:N or auto (see tinysubnets.device)
    datasets: str = ""  # five-datasets: which ones, comma-separated (empty: all five)
    image_size: int = 0  # input size of a scenario that takes one (imagenet100); 0 = its default
    # Initial values of the masked layers: "seed" draws them from the run's seed (each layer's
    # own reset_parameters), so a seed repeats a run whatever RNG state built the module;
    # "module" keeps the values the module was given (pretrained, or a custom init).
    init: str = "seed"
    retest: str = "verify"  # one of RETEST_RULES
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        check_finite(self)
        check_range("number of tasks", self.tasks, 1, MAX_TASKS,
                    " (a weight's owner task is stored as an int16)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"validation fraction must be in (0, 1), got {self.val_fraction}")
        check_range("seed", self.seed, 0, MAX_SEED)
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"threads must be >= 1 and <= {MAX_THREADS} (or unset: torch's "
                              f"default), got {shown(self.threads)}")
        if self.retest not in RETEST_RULES:
            raise ConfigError(f"unknown retest rule {shown(self.retest)}; choose from "
                              f"{RETEST_RULES}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {shown(self.init)}; choose from {INITS}")
        if self.image_size != 0 and self.image_size < 32:
            # ResNet-18's ImageNet stem divides the input by 32 before its last stage.
            raise ConfigError(f"image_size must be 0 (the scenario's default) or >= 32, got "
                              f"{shown(self.image_size)}")
        check_range("image_size", self.image_size, 0, MAX_IMAGE_SIZE)
        try:
            check_device_name(self.device)
        except ConfigError:  # its message would quote a name of any length
            raise ConfigError(f"unknown device {shown(self.device)}; use cpu, cuda, cuda:N or "
                              "auto") from None
        self.train.validate()
        self.prune.validate()
        self.quantize.validate()
        self.similarity.validate()
        self.replay.validate()

    @classmethod
    def for_scenario(cls, scenario: str = "pmnist", **overrides: Any) -> RunConfig:
        """The scenario's preset, then ``overrides`` (``train=`` takes a mapping)."""
        return config_from_dict(overrides, preset(scenario))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What must match for a run folder to be resumed: all but where data is read, what
        computes it, and how many tasks (a finished run may be extended to more; the tasks it
        finished are checked one by one)."""
        d = self.to_dict()
        for key in IDENTITY_FREE:
            d.pop(key)
        return d


# Settings per scenario (tasks, training), overridable by --config and flags. p-MNIST's are
# what its benchmark measured (see README); the image scenarios' are our starting values for a
# CPU (the paper's supplement gives none): Adam, cosine schedule, WSN's keep ratio 0.5.
_IMAGES = {"epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 1e-3,
           "schedule": "cosine", "keep_ratio": 0.5, "claim": "fair"}
PRESETS: dict[str, dict[str, Any]] = {
    "pmnist": {
        "tasks": 10,
        "train": {
            "epochs": 15,
            "batch_size": 512,
            "optimizer": "adam",
            "lr": 5e-3,
            "schedule": "cosine",
            "keep_ratio": 0.5,
            # Layer 1 of a permutation is useless to the others: each task's fc1 mask holds
            # only its own weights (share ratio 0); layer 2 may be shared freely. fc1 keeps
            # 13 %, more than the first task's fair share (10 %): post-pruning gives about 40 %
            # of it back, and later tasks' larger fair shares take it (README: the seed sweep).
            "layer_keep_ratio": {"fc1": 0.13, "fc2": 1.0},
            "layer_share_ratio": {"fc1": 0.0},
            "claim": "fair",
        },
        # Post-pruning stops 0.35 points below the unpruned accuracy: with float16 codebooks
        # this kept every seed of the sweep at ACC >= 97.0 and under 20 % (README).
        "prune": {"threshold": 0.35},
    },
    "cifar10": {"tasks": 5, "train": _IMAGES},
    "cifar100": {"tasks": 10, "train": _IMAGES},
    "five-datasets": {"tasks": 5, "train": _IMAGES},
    "tinyimagenet": {"tasks": 40, "train": _IMAGES},
    "imagenet100": {"tasks": 10, "train": _IMAGES},
}


def preset(scenario: str) -> RunConfig:
    """RunConfig for ``scenario`` with its preset training settings (defaults if it has none)."""
    base = RunConfig(scenario=scenario)
    return config_from_dict(PRESETS.get(scenario, {}), base, where="preset")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a YAML/CLI value against a field's type (ints are accepted where floats are)."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {shown(value)}")
        key_type, value_type = typing.get_args(hint)
        return {_coerce(k, key_type, where): _coerce(v, value_type, f"{where}.{clipped(k)}")
                for k, v in value.items()}
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int of hundreds of digits
            raise ConfigError(f"{where} is too large, got {shown(value)}") from None
    if not ok:
        raise ConfigError(f"{where} must be of type {hint.__name__}, got {shown(value)}")
    return value


def _merge(cls: type, base: Any, overrides: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str):  # str() of a 5000-digit int raises
            raise ConfigError(f"{where}: unknown setting {shown(key)}; known: {', '.join(known)}")
        key = key.replace("-", "_")
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {shown(key)}; known: "
                              f"{', '.join(known)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a mapping, got {shown(value)}")
            value = _merge(hint, getattr(base, key), value, f"{where}: {key}")
        else:
            value = _coerce(value, hint, f"{where}: {key}")
        changes[key] = value
    return dataclasses.replace(base, **changes)


def config_from_dict(
    data: dict[str, Any], base: RunConfig | None = None, where: str = "config"
) -> RunConfig:
    """Overlay a (possibly nested) mapping on ``base``; unknown keys and wrong types are
    errors naming the setting, not silently ignored."""
    return _merge(RunConfig, base or RunConfig(), data, where)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own text spans lines)."""
    problem = getattr(error, "problem", None) or (str(error).strip().splitlines() or ["?"])[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that gives one key twice: plain PyYAML keeps
    the last, so a setting written twice in a config file is silently half-ignored."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # unhashable: the base class reports it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shown(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path``; ConfigError naming ``what`` (e.g. "config file x.yaml")
    when it cannot be read or is not valid YAML."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except OSError as e:
        raise ConfigError(f"cannot read {what}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML: {yaml_problem(e)}") from None
    except ValueError as e:  # e.g. an int of more than 4300 digits, or a bad date
        raise ConfigError(f"{what} holds a value YAML cannot read: {clipped(str(e), 120)}"
                          ) from None
    except RecursionError:  # deeply nested flow collections
        raise ConfigError(f"{what} is nested too deeply to be a configuration") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML config file (keys as in RunConfig, a nested ``train`` mapping)."""
    data = read_yaml(path, f"config file {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data
