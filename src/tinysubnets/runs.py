"""A continual-learning run: tasks in order, every earlier task re-tested, a checkpoint per task.

Run folder layout:
    config.yaml          the resolved configuration
    checkpoint.pt        state after the last finished task (state dicts only; atomic)
    model.tsn            the compressed model of the finished tasks (see `artifact`; atomic)
    capacity.json        its capacity from the bytes written, and per task the mask density
                         before/after post-pruning and the bit-widths (paper's Tables 1, 2)
    results.json         R, ACC, BWT, FWT, weights claimed, the file's capacity, timings
    accuracy_matrix.csv  R[i][j]: accuracy (%) on task j after training task i
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from tinysubnets import metrics
from tinysubnets.artifact.reader import parse
from tinysubnets.artifact.writer import MODEL_FILE, model_bytes
from tinysubnets.atomic import write_bytes, write_text
from tinysubnets.config import IDENTITY_FREE, RunConfig, config_from_dict, preset, read_yaml
from tinysubnets.errors import ConfigError, DataError, ShapeError, shown
from tinysubnets.learner.learner import Learner
from tinysubnets.nn.backbones import build_backbone
from tinysubnets.nn.inference import choose_criterion
from tinysubnets.runfolder import check_out, locked
from tinysubnets.scenarios import Scenario, backbone_of, build_scenario, image_size_of
from tinysubnets.tasks import Task

CHECKPOINT_FORMAT = 2  # 2: the learner keeps typed records of its finished tasks
RESULTS_FORMAT = 1  # results.json: what `tsn report` reads
CHECKPOINT = "checkpoint.pt"


@dataclass
class RunResult:
    """Everything a run measured. ``R[i]`` holds accuracies on tasks 0..i after task i."""

    config: dict[str, Any]
    source: str
    R: list[list[float]] = field(default_factory=list)
    before: list[float | None] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)  # capacity of model.tsn, in bytes

    @property
    def acc(self) -> float:
        return metrics.average_accuracy(self.R)

    @property
    def bwt(self) -> float:
        return metrics.backward_transfer(self.R)

    @property
    def fwt(self) -> float | None:
        return metrics.forward_transfer(self.before, self.baseline)

    def to_json(self, claimed: dict[str, Any]) -> dict[str, Any]:
        """results.json: ``claimed`` is `metrics.claimed` (weights taken); ``model`` the
        capacity of model.tsn (bytes written)."""
        return {
            "format": RESULTS_FORMAT,
            "config": self.config,
            "data": self.source,
            "tasks_finished": len(self.R),
            "R": self.R,
            "acc": self.acc,
            "bwt": self.bwt,
            "fwt": self.fwt,
            "accuracy_before_training": self.before,
            "random_init_baseline": self.baseline,
            "claimed": claimed,
            "model": self.model,
            "divergence": [t.get("divergence") for t in self.tasks],
            "compression": metrics.compression_per_task(
                self.tasks, claimed.get("backbone_weights", 0) or 1
            ),
            "per_task": self.tasks,
            "time_total_s": sum(t["time_s"] for t in self.tasks),
        }


def accuracy_matrix_csv(R: list[list[float]]) -> str:
    """R as CSV: one row per trained task, one column per tested task; blank above the diagonal."""
    T = len(R)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trained\\tested", *[f"task{j}" for j in range(T)]])
    for i, row in enumerate(R):
        writer.writerow([f"task{i}", *[f"{v:.2f}" for v in row], *[""] * (T - len(row))])
    return out.getvalue()


USER_SCENARIO = "custom"  # the scenario name of a run over the user's own tasks


@dataclass(frozen=True)
class Setup:
    """What a run learns: its tasks, and how to make the untrained learner (its backbone)."""

    scenario: Scenario
    backbone: nn.Module
    spec: dict[str, Any] | None  # a built-in backbone's name and arguments

    def new_learner(self, cfg: RunConfig) -> Learner:
        """The learner a run of ``cfg`` starts from, untrained (also for the FWT baseline)."""
        return Learner(self.backbone, cfg, self.scenario.input_shape, self.spec)


def as_config(cfg: RunConfig | dict[str, Any] | None, user_tasks: bool) -> RunConfig:
    """A RunConfig from a RunConfig, a nested mapping of settings (the keys of config.yaml),
    or None (the defaults). A mapping for a built-in scenario starts from its preset."""
    if isinstance(cfg, RunConfig):
        return cfg
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"cfg must be a RunConfig, a mapping of settings or None, got "
                          f"{type(cfg).__name__}")
    if user_tasks:
        return config_from_dict(cfg)
    return config_from_dict(cfg, preset(str(cfg.get("scenario", RunConfig().scenario))))


def user_scenario(tasks: Sequence[Task]) -> Scenario:
    """The user's tasks as a scenario, checked: Task objects, one input shape for all."""
    tasks = tuple(tasks)
    if not tasks:
        raise ConfigError("tasks is empty: give at least one Task")
    shape: tuple[int, ...] | None = None
    for t, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise ConfigError(f"task {t} is a {type(task).__name__}, not a tinysubnets Task "
                              "(make one with Task.from_tensors or Task.from_datasets)")
        task_shape = tuple(task.split("train").x.shape[1:])
        if shape is not None and task_shape != shape:
            raise ShapeError(f"task {t} ({task.name!r}) has inputs of shape {list(task_shape)},"
                             f" task 0 has {list(shape)}: one backbone takes one input shape")
        shape = task_shape
    return Scenario(USER_SCENARIO, tasks, shape or (), "user tasks (Python API)")


def setup(cfg: RunConfig, tasks: Sequence[Task] | None, backbone: nn.Module | None) -> Setup:
    """The tasks and backbone of a run: the user's, or the built-in scenario's."""
    if tasks is not None:
        if backbone is None:
            raise ConfigError("tasks= needs backbone=: the module that maps the tasks' inputs "
                              "to feature vectors")
        return Setup(user_scenario(tasks), backbone, None)
    if cfg.scenario == USER_SCENARIO:
        raise ConfigError("this run was made with the user's own tasks: pass them again, "
                          "run(cfg, out, tasks=..., backbone=..., resume=True)")
    scenario = build_scenario(cfg)
    if backbone is not None:
        return Setup(scenario, backbone, None)
    name, kwargs = backbone_of(cfg)
    with torch.random.fork_rng(devices=[]):  # the built-in's initial values: from the seed
        torch.manual_seed(cfg.seed)
        module = build_backbone(name, **kwargs)
    return Setup(scenario, module, {"name": name, "kwargs": kwargs})


@dataclass
class _RandomInit:
    """b_j of GEM's FWT: task j's test accuracy with the untrained network and task j's fresh
    head. Measured when a run reaches task j, not for every planned task up front (a run of
    30,000 tasks stopped after one measures one); b_j depends on j alone, whenever measured."""

    cfg: RunConfig
    run_setup: Setup
    fresh: Learner | None = None  # the untrained learner, made at the first measurement

    def measure(self, t: int) -> float:
        if self.fresh is None:
            self.fresh = self.run_setup.new_learner(self.cfg)
        tasks = self.run_setup.scenario.tasks
        while len(self.fresh.n_classes) <= t:  # head j is seeded by j: heads come in order
            self.fresh.add_head(tasks[len(self.fresh.n_classes)].n_classes)
        return self.fresh.probe(t, tasks[t].split("test"))


def _one_line(error: BaseException) -> str:
    """An exception's message on one line, short (torch's load errors span many)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError):
        text = f"no entry {text}"
    return text[:300]


# What `_save` writes: each part and its type. The history's parts may be absent (older runs).
_STATE_PARTS = {"format": int, "identity": dict, "learner": dict, "history": dict}
_LEARNER_PARTS = {"net": dict, "masks": list, "n_classes": list, "finished": list}
_HISTORY_PARTS = {"R": list, "before": list, "baseline": list, "tasks": list, "model": dict}


def _missing(state: dict, parts: dict[str, type], where: str, optional: bool = False) -> str:
    """What ``state`` lacks of ``parts`` or holds with another type ('' when nothing)."""
    for key, kind in parts.items():
        if key not in state:
            if not optional:
                return f"it has no {where}{key!r}"
        elif not isinstance(state[key], kind):
            return (f"its {where}{key!r} is of type {type(state[key]).__name__}, not "
                    f"{kind.__name__}")
    return ""


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of settings' values only (what `RunConfig.identity` holds)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float)


def _checkpoint_problem(state: Any) -> str:
    """Why ``state`` is not a checkpoint `_save` wrote ('' when it is one)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint's mapping"
    fmt = state.get("format")
    if isinstance(fmt, int) and fmt != CHECKPOINT_FORMAT:
        return (f"it has checkpoint format {fmt!r} (this tinysubnets writes "
                f"{CHECKPOINT_FORMAT}; runs from before any module could be a backbone cannot "
                "be continued)")
    problem = (_missing(state, _STATE_PARTS, "")
               or _missing(state["learner"], _LEARNER_PARTS, "learner ")
               or _missing(state["history"], _HISTORY_PARTS, "history ", optional=True))
    if problem:
        return problem
    if not _plain(state["identity"]):
        return "its 'identity' holds values that are not settings"
    history, finished = state["history"], len(state["learner"]["masks"])
    for key in ("R", "before"):
        if len(history.get(key, [])) != finished:
            return (f"its learner has {finished} finished task(s) but its history {key!r} "
                    f"{len(history.get(key, []))}")
    return _history_problem(history) or _tensor_problem(state["learner"], finished)


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (an accuracy a run can have measured)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _history_problem(history: dict) -> str:
    """Why the history's accuracies are not a run's ('' when they are): R[i] holds i+1 finite
    numbers, before[i] and baseline[i] one each (before[0] is None); an edited value would
    otherwise flow silently into ACC, BWT and FWT."""
    for i, row in enumerate(history.get("R", [])):
        if not isinstance(row, list) or len(row) != i + 1 or not all(map(_finite, row)):
            return f"its history 'R' row {i} is {shown(row)}, not {i + 1} finite accuracies"
    for key in ("before", "baseline"):
        for i, value in enumerate(history.get(key, [])):
            if not (_finite(value) or (key == "before" and i == 0 and value is None)):
                return f"its history {key!r} entry {i} is {shown(value)}, not a finite accuracy"
    return ""


def _tensors(value: Any, where: str) -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a learner state (mappings and sequences at any depth), named."""
    if isinstance(value, torch.Tensor):
        return [(where, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _tensors(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [t for i, v in enumerate(value) for t in _tensors(v, f"{where}[{i}]")]
    return []


def _tensor_problem(learner: dict, finished: int) -> str:
    """Why the learner's tensors cannot be a run's ('' when they can): owners outside
    -1..finished-1 (docs/design.md, invariant 2: an owner is a finished task or none), or a
    floating value that is NaN or infinite. Either would resume into silently wrong results."""
    for name, tensor in _tensors(learner, "learner"):
        if name.startswith("learner.net.") and name.endswith("owner") and tensor.numel():
            low, high = int(tensor.min()), int(tensor.max())
            if low < -1 or high > finished - 1:
                bad = low if low < -1 else high
                return (f"its {name[len('learner.'):]!r} holds owner {bad}, but only tasks "
                        f"0..{finished - 1} are finished (-1: no owner)")
        elif tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"its {name[len('learner.'):]!r} holds NaN or infinite values"
    return ""


def _load_checkpoint(run_dir: Path, cfg: RunConfig) -> dict[str, Any]:
    """The checkpoint in ``run_dir``, checked whole before anything is written: a DataError
    naming it when it is unreadable or incomplete, a ConfigError when it is of another run."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"cannot resume: {path} does not exist (no task has finished there)")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises many types for a damaged file
        raise DataError(f"cannot resume: {path} is not a readable checkpoint "
                        f"({_one_line(e)})") from None
    problem = _checkpoint_problem(state)
    if problem:
        raise DataError(f"cannot resume: {path} is damaged or not a tinysubnets checkpoint: "
                        f"{problem}")
    # A setting added after the checkpoint was written took its default in that run (nested
    # ones too, e.g. a new similarity field).
    saved = _with_defaults(state["identity"], RunConfig().identity())
    for key in IDENTITY_FREE:  # checkpoints written before a setting was free to change
        saved.pop(key, None)
    wanted = cfg.identity()
    if saved != wanted:
        diffs = _diff(saved, wanted)
        raise ConfigError(
            f"cannot resume {run_dir}: it was made with another configuration ({diffs})"
        )
    return state


def _restore(run_dir: Path, learner: Learner, state: dict[str, Any]) -> None:
    """Load the checkpoint's learner state; a DataError naming the checkpoint when its tensors
    do not fit this run's network (a damaged or edited file)."""
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise DataError(f"cannot resume: {run_dir / CHECKPOINT} holds a learner state that does "
                        f"not fit this run: {_one_line(e)}") from None


def _with_defaults(saved: dict, defaults: dict) -> dict:
    """``saved`` with every key it lacks taken from ``defaults``, at any depth."""
    out = dict(defaults)
    for key, value in saved.items():
        both = isinstance(value, dict) and isinstance(defaults.get(key), dict)
        out[key] = _with_defaults(value, defaults[key]) if both else value
    return out


def _diff(saved: dict, wanted: dict, prefix: str = "") -> str:
    parts = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _diff(a, b, f"{prefix}{key}.")
            if inner:
                parts.append(inner)
        elif a != b:
            parts.append(f"{prefix}{key}: run has {a!r}, asked {b!r}")
    return "; ".join(parts)


def resolved_config(run_dir: Path) -> RunConfig:
    """The configuration saved in a run folder (what ``--resume`` continues with), checked: a
    ConfigError naming the file when it is not valid YAML or not a valid configuration."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"cannot resume: {path} does not exist; is {run_dir} a run folder?")
    data = read_yaml(path, f"cannot resume: {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"cannot resume: {path} does not hold a configuration (a mapping of "
                          f"settings), it holds {type(data).__name__}")
    cfg = config_from_dict(data, where=f"cannot resume: {path}")
    try:
        cfg.validate()
    except ConfigError as e:
        raise ConfigError(f"cannot resume: {path}: {e}") from None
    return cfg


def scenario_info(cfg: RunConfig, scenario: Scenario, finished: int) -> dict[str, Any]:
    """What a model file records of its scenario, so `tsn eval` can rebuild the test splits:
    where the data was read (``data_dir``, absolute, None for the embedded subset or the
    download cache; ``download``) and a fingerprint of the ``finished`` tasks' test data to
    check it against."""
    from tinysubnets.fingerprint import of_scenario  # computed once per scenario and task

    info = {
        "name": cfg.scenario, "seed": cfg.seed, "tasks": cfg.tasks,
        "val_fraction": cfg.val_fraction, "datasets": cfg.datasets, "data": scenario.source,
    }
    if cfg.scenario == USER_SCENARIO:
        return info
    size = image_size_of(cfg)
    if size:  # only where the scenario takes one: other files stay as they were
        info["image_size"] = size
    info["data_dir"] = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None
    info["download"] = bool(cfg.download)
    info["fingerprint"] = of_scenario(scenario, finished)
    return info


def run(
    cfg: RunConfig | dict[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    tasks: Sequence[Task] | None = None,
    backbone: nn.Module | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> tuple[RunResult, Learner]:
    """Learn a sequence of tasks in order; with ``out``, keep a resumable run folder there.

    ``cfg`` is a RunConfig, a nested mapping of settings (the keys of ``config.yaml``) or
    None. ``tasks`` (a sequence of `Task`) and ``backbone`` (a module mapping inputs to
    feature vectors) run the user's own sequence; without them, ``cfg.scenario`` is built with
    its backbone. ``resume`` continues from the last finished task in ``out``;
    ``stop_after`` ends the run after that many tasks are finished.
    """
    cfg = as_config(cfg, tasks is not None)
    if stop_after is not None and (not isinstance(stop_after, int) or stop_after < 0):
        raise ConfigError(f"stop_after must be a number of tasks >= 0, got {stop_after!r}")
    if tasks is not None:
        tasks = list(tasks)
        cfg = dataclasses.replace(cfg, scenario=USER_SCENARIO, tasks=max(1, len(tasks)))
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if out is not None:
        out = _out_path(out)
        check_out(out)
        if not resume and (out / CHECKPOINT).exists():
            raise ConfigError(
                f"{out} already holds a run; pass --resume {out} to continue it, or another --out"
            )
    run_setup = setup(cfg, tasks, backbone)
    learner = run_setup.new_learner(cfg)
    result = RunResult(config=cfg.to_dict(), source=run_setup.scenario.source)
    if out is None:
        return _learn_tasks(cfg, run_setup, learner, result, None, progress, stop_after)
    with locked(out):
        # A folder killed before its first task finished has no checkpoint: it starts over.
        if resume and not (out / CHECKPOINT).exists():
            _check_nothing_finished(out)
        state = _load_checkpoint(out, cfg) if resume and (out / CHECKPOINT).exists() else None
        if state is not None:
            _restore(out, learner, state)
            _check_extends(out, learner, run_setup.scenario)
            for key in ("R", "before", "baseline", "tasks", "model"):
                setattr(result, key, state["history"].get(key, getattr(result, key)))
        # The files of the checkpoint's task count, whatever was left: made before anything
        # is written, so a checkpoint whose history cannot make them changes nothing.
        files = ({} if state is None else
                 _restored_files(out, cfg, run_setup.scenario, learner, result))
        write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        _save(out, files)
        return _learn_tasks(cfg, run_setup, learner, result, out, progress, stop_after)


def _out_path(out: object) -> Path:
    """``out`` as a Path: a ConfigError for what is not a path (an int gives a TypeError deep in
    pathlib) or an empty string (Path('') is the working folder, surely not meant)."""
    if not isinstance(out, str | os.PathLike):
        raise ConfigError(f"out must be a path (str or Path), got {shown(out)}")
    if isinstance(out, str) and not out.strip():
        raise ConfigError("--out must not be empty: give the run folder's path")
    return Path(out)


def _finished_in_files(out: Path) -> tuple[str, int] | None:
    """The file of ``out`` that records finished tasks, and how many, without a checkpoint:
    results.json (written after the checkpoint, so it means the checkpoint was removed), or a
    model.tsn of 2 or more tasks. A model.tsn of 1 task alone is what a run killed between
    writing it and its first checkpoint leaves: starting over remakes it the same."""
    results = out / "results.json"
    if results.is_file():
        try:
            count = json.loads(results.read_text(encoding="utf-8")).get("tasks_finished")
        except (OSError, ValueError, AttributeError):
            count = None
        return "results.json", count if isinstance(count, int) and count > 0 else 1
    model = out / MODEL_FILE
    if model.is_file():
        try:
            count = len(parse(model.read_bytes(), MODEL_FILE).header["tasks"])
        except Exception:  # a damaged file records nothing a resume could lose
            return None
        if count > 1:
            return MODEL_FILE, count
    return None


def _check_nothing_finished(out: Path) -> None:
    """A resume without checkpoint.pt starts over; refused (a DataError) when the folder's
    files record finished tasks, which starting over would overwrite."""
    found = _finished_in_files(out)
    if found is not None:
        name, count = found
        raise DataError(
            f"cannot resume {out}: {CHECKPOINT} is missing but {name} records {count} finished "
            f"task(s); restore {CHECKPOINT} or start a new folder (another --out)"
        )


def _restored_files(
    out: Path, cfg: RunConfig, scenario: Scenario, learner: Learner, result: RunResult
) -> dict[str, bytes]:
    """The run folder's files from a restored checkpoint, in memory; a DataError naming the
    checkpoint when its history cannot make them (an edited or damaged file)."""
    try:
        return {MODEL_FILE: _model_file(cfg, scenario, learner, result, {}),
                **_run_files(out, cfg, learner, result)}
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise DataError(f"cannot resume: {out / CHECKPOINT} holds a history this run cannot "
                        f"use: {_one_line(e)}") from None


def _model_file(
    cfg: RunConfig, scenario: Scenario, learner: Learner, result: RunResult, mask_cache: dict
) -> bytes:
    """model.tsn of the finished tasks; its capacity (of the bytes) into ``result``."""
    data = model_bytes(learner, scenario_info(cfg, scenario, learner.num_tasks), mask_cache)
    result.model = parse(data, MODEL_FILE).capacity.to_dict()
    return data


def _learn_tasks(
    cfg: RunConfig, run_setup: Setup, learner: Learner, result: RunResult, out: Path | None,
    progress: bool, stop_after: int | None,
) -> tuple[RunResult, Learner]:
    """The run loop: each task learned, every finished task re-tested, the files written.
    Tasks are reached one at a time (a scenario may build them only then)."""
    scenario = run_setup.scenario
    mask_cache: dict = {}  # each finished task's mask coding, kept between model files
    random_init = _RandomInit(cfg, run_setup)
    last = len(scenario) if stop_after is None else min(len(scenario), stop_after)
    bar = tqdm(
        range(learner.num_tasks, last), desc="tasks", unit="task",
        initial=learner.num_tasks, total=last, disable=None if progress else True,
    )
    for t in bar:
        task = scenario.tasks[t]
        while len(result.baseline) <= t:  # a resumed run has those of its finished tasks
            result.baseline.append(random_init.measure(len(result.baseline)))
        start = time.perf_counter()
        learner.add_head(task.n_classes)
        test = task.split("test")
        result.before.append(learner.probe(t, test) if t > 0 else None)
        record = learner.learn(task, task.split("train"), task.split("val"), progress)
        trained = time.perf_counter()
        final = t == last - 1
        row, retest = retest_row(cfg, learner, scenario, result, t, final)
        result.R.append(row)
        inference = _choose_criterion(learner, scenario) if final else None
        tested = time.perf_counter()
        model_file = _model_file(cfg, scenario, learner, result, mask_cache)
        if out is not None:
            write_bytes(out / MODEL_FILE, model_file)
        info = asdict(record)
        info.update(digest=learner.task_digest(t), retest=retest)
        if inference is not None:
            info["inference"] = inference
        info["phase_s"].update(evaluate=tested - trained, model_file=time.perf_counter() - tested)
        info.update(
            time_s=time.perf_counter() - start,  # everything, the model file included
            train_time_s=trained - start,  # the task's learning and compression
            epoch_time_s=(trained - start) / len(record.outcome.val_acc),
        )
        info["model"] = {k: result.model[k] for k in ("file_bytes", "total_pct", "parts_pct")}
        result.tasks.append(info)
        bar.set_postfix(acc=f"{sum(row) / len(row):.2f}", last=f"{row[-1]:.2f}")
        if out is not None:
            _save(out, _run_files(out, cfg, learner, result))
    return result, learner


def _choose_criterion(learner: Learner, scenario: Scenario) -> dict[str, Any]:
    """After the run's last task, the task-inference criterion that finds its tasks best on
    their validation data (`choose_criterion`); the learner keeps it for the model file. Each
    subnetwork scores about 2,560 inputs in all (256 a task up to 10 tasks, at least 32)."""
    T = learner.num_tasks
    learner.criterion, rates = choose_criterion(
        learner, [scenario.tasks[j].split("val") for j in range(T)], max(32, min(256, 2560 // T)))
    return {"criterion": learner.criterion, "task_found_pct": rates}


def retest_row(
    cfg: RunConfig, learner: Learner, scenario: Scenario, result: RunResult, t: int,
    final: bool,
) -> tuple[list[float], dict[str, Any]]:
    """Row t of R (accuracy on tasks 0..t after task t) and how it was measured.

    Task t is tested on its test data. With ``retest: verify`` a finished task j < t whose
    subnetwork digest (`TSNNetwork.task_digest`, every tensor its forward reads) equals the
    one recorded when it finished keeps its accuracy from row t-1, since the same values give
    the same logits; one whose digest moved (forget-free broken: a bug) is re-tested on data
    and listed under ``changed``. The run's last row (``final``) and every row with ``retest:
    all`` re-test every task on data, so ACC and BWT are always measured at the end.
    """
    row, on_data, changed = [], [], []
    for j in range(t + 1):
        if j < t and cfg.retest == "verify" and not final:
            recorded = result.tasks[j].get("digest")
            if recorded is not None and recorded == learner.task_digest(j):
                row.append(result.R[t - 1][j])
                continue
            changed += [j] if recorded is not None else []
        row.append(learner.evaluate(j, scenario.tasks[j].split("test")))
        on_data.append(j)
    return row, {"on_data": len(on_data), "verified": t + 1 - len(on_data), "changed": changed}


def _check_extends(out: Path, learner: Learner, scenario: Scenario) -> None:
    """A resumed run must see the tasks it finished again, first and in order (same names
    and labels); it may go on to more tasks than it planned (an extended run), never fewer."""
    if learner.num_tasks > len(scenario):
        raise ConfigError(
            f"cannot resume {out}: it has finished {learner.num_tasks} tasks, more than the "
            f"{len(scenario)} asked; a run is extended (--tasks {learner.num_tasks} or more), "
            "never shortened"
        )
    for t, info in enumerate(f.info() for f in learner.finished):
        task = scenario.tasks[t]
        if (task.name, list(task.labels)) != (info["name"], info["labels"]):
            given = f"{task.name!r} with labels {list(task.labels)}"
            raise ConfigError(
                f"cannot resume {out}: its task {t} was {info['name']!r} with labels "
                f"{info['labels']}, now {given}"[:400]
            )


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


def _run_files(out: Path, cfg: RunConfig, learner: Learner, result: RunResult
               ) -> dict[str, bytes]:
    """The checkpoint, then the human-readable files, as the bytes `_save` writes."""
    from tinysubnets.report.longcsv import LONG_CSV, long_csv, long_rows  # stdlib-only module

    checkpoint = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "identity": cfg.identity(),
            "learner": learner.state_dict(),
            "history": {
                "R": result.R,
                "before": result.before,
                "baseline": result.baseline,
                "tasks": result.tasks,
                "model": result.model,
            },
        },
        checkpoint,
    )
    results = result.to_json(metrics.claimed(learner.net))
    return {
        CHECKPOINT: checkpoint.getvalue(),
        "results.json": _json(results),
        "capacity.json": _json({"model": result.model, "per_task": results["compression"]}),
        "accuracy_matrix.csv": accuracy_matrix_csv(result.R).encode("utf-8"),
        LONG_CSV: long_csv(long_rows(results, out.resolve().name)).encode("utf-8"),
    }


def _save(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` in their order (the checkpoint before the human-readable files, which
    are made from it): each write is atomic on its own."""
    for name, data in files.items():
        write_bytes(out / name, data)
