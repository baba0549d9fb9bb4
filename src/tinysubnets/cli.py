"""The ``tsn`` command: a thin shell over :func:`tinysubnets.runs.run`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from tinysubnets.config import (
    CLAIM_RULES,
    MAX_THREADS,
    OPTIMIZERS,
    RETEST_RULES,
    SCHEDULES,
    RunConfig,
    config_from_dict,
    preset,
    read_config_file,
)
from tinysubnets.errors import ConfigError, ShapeError, TSNError, shown
from tinysubnets.nn.inference import CRITERIA
from tinysubnets.runs import resolved_config, run
from tinysubnets.scenarios import SCENARIOS

if TYPE_CHECKING:
    from tinysubnets.artifact.model import CompressedModel
    from tinysubnets.artifact.reader import ParsedModel

DESCRIPTION = """\
TinySubNets (TSN): learn a sequence of tasks in one network without forgetting.
Each task learns a binary mask over the shared weights (its subnetwork), reuses frozen weights
of earlier tasks and claims free ones. Every earlier task is re-tested after each task.
"""

RUN_EPILOG = """\
examples:
  tsn run                                     10-task permuted MNIST on the embedded 5k subset
  tsn run --data-dir ../shared/data/mnist     the full MNIST from its IDX files
  tsn run --download                          fetch the data (checksums verified) into a cache
  tsn run --tasks 3 --epochs 2 --out runs/x   a quick run, kept in runs/x
  tsn run --resume runs/x                     continue runs/x from its last finished task
  tsn run --resume runs/x --tasks 20          extend runs/x to 20 tasks (finished ones kept)

Settings are read in this order, later wins: defaults, the scenario's preset,
--config FILE.yaml, flags. The run folder gets config.yaml, results.json,
accuracy_matrix.csv, model.tsn, capacity.json and checkpoint.pt.
"""


PREDICT_EPILOG = """\
examples:
  tsn predict runs/p/model.tsn --task 3 digits.npy        raw (N, 28, 28) uint8 MNIST images
  tsn predict runs/c/model.tsn --task 0 photos/            every image in photos/, by name
  tsn predict runs/u/model.tsn --task 1 x.npy --backbone mynets:MyCNN
                                                          your own tasks: model-ready floats
"""


def _scenario_epilog() -> str:
    from tinysubnets.config import PRESETS
    from tinysubnets.scenarios import SPECS

    lines = ["scenarios and their presets (tasks; epochs, batch, optimizer, lr, keep ratio):"]
    for name, spec in SPECS.items():
        p = PRESETS.get(name, {})
        t = p.get("train", {})
        lines.append(f"  {name:<14} {spec.summary}")
        lines.append(
            f"  {'':<14} preset: {p.get('tasks')} tasks; {t.get('epochs')} epochs, batch "
            f"{t.get('batch_size')}, {t.get('optimizer')} lr {t.get('lr')}, keep "
            f"{t.get('keep_ratio')}"
        )
        extra = [f"keep {layer} {c}" for layer, c in t.get("layer_keep_ratio", {}).items()]
        extra += [f"share {layer} {c}" for layer, c in t.get("layer_share_ratio", {}).items()]
        extra += [f"prune threshold {c}" for k, c in p.get("prune", {}).items() if k == "threshold"]
        if extra:
            lines.append(f"  {'':<14}         {', '.join(extra)}")
    return "\n".join(lines) + "\n"


# flag -> (config key inside "train" or at top level, type, help)
_TRAIN_FLAGS = {
    "epochs": (int, "epochs per task"),
    "batch_size": (int, "mini-batch size"),
    "optimizer": (str, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (float, "learning rate"),
    "momentum": (float, "SGD momentum"),
    "weight_decay": (float, "weight decay (never reaches frozen weights)"),
    "schedule": (str, f"learning-rate schedule: {', '.join(SCHEDULES)}"),
    "keep_ratio": (float, "keep ratio c in (0, 1]: share of each layer a task's mask keeps"),
    "claim": (str, f"how many free weights a task claims, one of {', '.join(CLAIM_RULES)}: "
              "'fair' = free / tasks left (of --tasks), per layer; 'fraction' = "
              "--claim-fraction of what is free, per layer (open-ended streams); 'scores' = "
              "top-k of scores decides (WSN)"),
    "claim_fraction": (float, "the 'fraction' claim rule's share of each layer's free weights "
                       "a task may claim (default 0.1)"),
    "slots": (int, "values of different tasks one weight position may hold (default 1); "
              "S > 1 lets a later task renew a claimed weight with a value of its own"),
}


def _layer_ratio(text: str) -> dict[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return {name: float(value)}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LAYER=RATIO (e.g. fc1=0.1), got {text!r}"
        ) from None


def _text(value: object) -> str:
    """A value from a model file's header as it is printed: text as it is (cut short), other
    values as a short repr."""
    from tinysubnets.errors import clipped, shown

    return clipped(value) if isinstance(value, str) else shown(value)


def _folder(text: str) -> Path:
    """An argparse type: a folder's path, not empty (Path("") is the current folder, and a
    run written there by an empty $VAR would mix with whatever it holds)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: give the folder's path")
    return Path(text)


def _positive(text: str) -> int:
    """An argparse type: a thread count in [1, MAX_THREADS], the bound `RunConfig` holds
    ``threads`` to (tens of thousands of threads crash or hang torch's thread pool)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer") from None
    if not 1 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_THREADS}], got {shown(value)}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "run",
        help="learn a scenario's tasks in sequence and measure them",
        description="Learn a scenario's tasks in sequence; re-test every earlier task after each.",
        epilog=RUN_EPILOG + "\n" + _scenario_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", choices=SCENARIOS, help="scenario to learn (default pmnist)")
    p.add_argument("--tasks", type=int, help="number of tasks (default 10); with --resume, "
                   "more than the run planned extends it")
    p.add_argument("--seed", type=int, help="random seed: same seed, same numbers (default 0)")
    p.add_argument("--data-dir", type=Path, help="folder with the dataset's standard files")
    p.add_argument("--download", action="store_true", default=None,
                   help="download what --data-dir lacks (official sources, checksums verified, "
                   "cached): MNIST, Fashion-MNIST, CIFAR-10/100, SVHN, Tiny ImageNet")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--device", metavar="DEV",
                   help="where to compute: cpu (default), cuda, cuda:N, or auto (a GPU if any)")
    p.add_argument("--datasets", metavar="A,B,...",
                   help="five-datasets only: which datasets, in order (default: all five: "
                   "cifar10,mnist,svhn,fashion-mnist,notmnist)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="imagenet100 only: decode and train at NxN (default 224); the decoded "
                   "images are cached once per size")
    p.add_argument("--retest", choices=RETEST_RULES,
                   help="after each task, 'verify' (default) checks every finished task's "
                   "subnetwork bit for bit and re-tests on data only one that changed, and all "
                   "after the last task; 'all' re-tests every finished task on data each time")
    for key, (typ, text) in _TRAIN_FLAGS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=typ, dest=key, help=text)
    p.add_argument("--post-prune", action=argparse.BooleanOptionalAction, default=None,
                   help="after each task, prune its own weights without gradients and retrain "
                   "what is left (on by default; --no-post-prune for ablations)")
    p.add_argument("--prune-threshold", type=float, metavar="POINTS",
                   help="largest validation accuracy drop post-pruning may cause")
    p.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                   help="after each task, k-means-quantize its own weights and head, bit-width "
                   "searched, then fine-tune the codebooks (on by default; --no-quantize)")
    p.add_argument("--quantize-threshold", type=float, metavar="POINTS",
                   help="largest validation accuracy drop quantization may cause")
    p.add_argument("--b-min", type=int, metavar="BITS", help="bit-width the search starts at")
    p.add_argument("--b-max", type=int, metavar="BITS", help="largest bit-width (at most 16)")
    p.add_argument("--duplicate-above", type=float, metavar="NATS",
                   help="model duplicate: a task whose KL divergence (nats per feature) from "
                   "every earlier task exceeds NATS trains on a fresh copy of the backbone, "
                   "counted in capacity (default: never)")
    p.add_argument("--replay-per-task", type=int, metavar="M",
                   help="keep M reservoir-sampled training samples of each task in model.tsn "
                   "(a replay memory, counted in capacity; default 0 = none)")
    p.add_argument("--outlier-exposure", type=float, metavar="W",
                   help="while a task trains, add W x its cross-entropy to the uniform "
                   "distribution on earlier tasks' replay samples, so that it is unsure on "
                   "other tasks' inputs (task inference; needs --replay-per-task; default 0)")
    p.add_argument("--layer-keep-ratio", type=_layer_ratio, action="append", metavar="LAYER=C",
                   help="keep ratio of one layer, e.g. fc1=0.1 (repeatable)")
    p.add_argument("--layer-share-ratio", type=_layer_ratio, action="append", metavar="LAYER=S",
                   help="most of one layer a mask may reuse frozen, e.g. fc1=0 (repeatable)")
    p.add_argument("--config", type=Path, help="YAML file of settings (keys as in config.yaml)")
    p.add_argument("--out", type=_folder,
                   help="run folder to write (default runs/<scenario>-s<seed>)")
    p.add_argument("--resume", type=_folder, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last finished task")
    p.add_argument("--stop-after", type=int, metavar="K", help="stop once K tasks are finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    e = sub.add_parser(
        "eval", help="measure each task's test accuracy from a model file alone",
        description="Rebuild the scenario's test splits from the data the file records and "
        "measure every task in MODEL.tsn with nothing but the file (no checkpoint, no training "
        "state). The data is read where the run read it, unless --data-dir says otherwise, and "
        "must match the fingerprint the file records.",
    )
    e.add_argument("model", type=Path, metavar="MODEL.tsn")
    e.add_argument("--scenario", choices=SCENARIOS,
                   help="scenario of the model (default: the one its header names)")
    e.add_argument("--data-dir", type=Path,
                   help="folder with the dataset's standard files (default: the folder the file "
                   "records)")
    e.add_argument("--download", action="store_true",
                   help="download what is missing (official sources, checksums verified)")
    e.add_argument("--force", action="store_true",
                   help="evaluate even on data whose fingerprint differs from the recorded one")
    e.add_argument("--backbone", metavar="MODULE:CLASS",
                   help="a model of a built-in scenario trained with your own backbone: import "
                   "MODULE and build CLASS() with no arguments")
    e.add_argument("--infer-task", action="store_true",
                   help="also measure without task ids: how often each input's task is found "
                   "(per input and per batch of 64) and the accuracy with the inferred task "
                   "(class-incremental)")
    e.add_argument("--criterion", choices=CRITERIA,
                   help="how a task's confidence is scored for --infer-task (default: the one "
                   "the run measured best on validation data, recorded in the file; entropy "
                   "for files without one)")
    e.add_argument("--threads", type=_positive, help="CPU threads for torch")
    e.add_argument("--device", default="cpu", metavar="DEV",
                   help="where to compute: cpu (default), cuda, cuda:N, or auto")

    pr = sub.add_parser(
        "predict", help="print the label a model file predicts for each input",
        description="Predict with task T of MODEL.tsn. INPUTS are preprocessed as the file "
        "records for the task\n(image size, normalisation, p-MNIST's permutation); then one "
        "line per input is printed:\nits name (file name, or index in a .npy), a tab, and its "
        "label (the task's own values).",
        epilog=PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("model", type=Path, metavar="MODEL.tsn")
    pr.add_argument("--task", type=int, required=True, metavar="T", help="task id (from 0)")
    pr.add_argument("inputs", type=Path, metavar="INPUTS",
                    help="a .npy file (raw uint8 images for the built-in scenarios, model-ready "
                    "float arrays for your own tasks), an image file, or a folder of images")
    pr.add_argument("--backbone", metavar="MODULE:CLASS",
                    help="for a model trained with your own backbone: import MODULE (from the "
                    "current folder or the Python path) and build CLASS() with no arguments")
    pr.add_argument("--batch-size", type=int, default=256, metavar="N",
                    help="inputs read and predicted at a time (default 256)")
    pr.add_argument("--threads", type=_positive, help="CPU threads for torch")
    pr.add_argument("--device", default="cpu", metavar="DEV",
                    help="where to compute: cpu (default), cuda, cuda:N, or auto")

    i = sub.add_parser(
        "inspect", help="print a model file's capacity per part, task and layer",
        description="Check MODEL.tsn (checksum, layout) and print what it stores: bytes of "
        "weights, codebooks, masks and heads, per task and per layer, as % of the dense backbone.",
    )
    i.add_argument("model", type=Path, metavar="MODEL.tsn")
    i.add_argument("--json", action="store_true", help="print the capacity as JSON")

    r = sub.add_parser(
        "report", help="write report.md, PNG figures and results_long.csv for run folders",
        description="Tables (ACC/BWT/FWT, capacity by part, compression and time per task, the\n"
        "accuracy matrix, FLOPs and bit-operations, accuracy with 4/8/16-bit activations) and\n"
        "PNG figures of one run, or of several side by side (ablations), and results_long.csv:\n"
        "one row per (trained task, tested task) pair of every run.",
        epilog="examples:\n  tsn report runs/pmnist-s0                  into runs/pmnist-s0\n"
        "  tsn report runs/a runs/b --out cmp         two runs side by side, into cmp/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="a run folder written by `tsn run` (holds results.json)")
    r.add_argument("--out", type=_folder, metavar="DIR",
                   help="where to write (default: the run folder for one run, ./report for "
                   "several)")
    r.add_argument("--data-dir", type=Path,
                   help="the scenario's data, for the activation quantization table (default: "
                   "the folder each run's config records)")
    r.add_argument("--backbone", metavar="MODULE:CLASS",
                   help="runs trained with your own backbone: import MODULE and build CLASS() "
                   "with no arguments (Tables 6-7 load the model file with it)")
    r.add_argument("--no-activations", action="store_true",
                   help="skip the tables measured on the data (activation quantization, task "
                   "inference): they re-test every task")
    return parser


def _config(args: argparse.Namespace) -> RunConfig:
    settings = read_config_file(args.config) if args.config is not None else {}
    if args.resume is not None:
        base = resolved_config(args.resume)
    else:
        base = preset(args.scenario or str(settings.get("scenario", "pmnist")))
    if settings:
        base = config_from_dict(settings, base, where=f"config file {args.config}")
    top = {k: getattr(args, k)
           for k in ("scenario", "tasks", "seed", "download", "threads", "device", "datasets",
                     "image_size", "retest")}
    if args.data_dir is not None:
        top["data_dir"] = str(args.data_dir)
    train = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    for key in ("layer_keep_ratio", "layer_share_ratio"):
        if getattr(args, key):
            given = {name: c for pair in getattr(args, key) for name, c in pair.items()}
            train[key] = {**getattr(base.train, key), **given}
    overrides = {k: v for k, v in top.items() if v is not None}
    train = {k: v for k, v in train.items() if v is not None}
    if train:
        overrides["train"] = train
    prune = {"enabled": args.post_prune, "threshold": args.prune_threshold}
    prune = {k: v for k, v in prune.items() if v is not None}
    if prune:
        overrides["prune"] = prune
    quantize = {"enabled": args.quantize, "threshold": args.quantize_threshold,
                "b_min": args.b_min, "b_max": args.b_max}
    quantize = {k: v for k, v in quantize.items() if v is not None}
    if quantize:
        overrides["quantize"] = quantize
    replay = {"per_task": args.replay_per_task, "outlier_exposure": args.outlier_exposure}
    replay = {k: v for k, v in replay.items() if v is not None}
    if replay:
        overrides["replay"] = replay
    if args.duplicate_above is not None:
        overrides["similarity"] = {"duplicate_above": args.duplicate_above}
    return config_from_dict(overrides, base)


def _run(args: argparse.Namespace, console: Console) -> int:
    cfg = _config(args)
    out = args.resume or args.out or Path("runs") / f"{cfg.scenario}-s{cfg.seed}"
    console.print(f"[bold]tsn run[/bold] {cfg.scenario}: {cfg.tasks} tasks, seed {cfg.seed}")
    console.print(f"run folder: {out}")
    result, learner = run(
        cfg, out=out, resume=args.resume is not None, progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    from tinysubnets.metrics import claimed
    from tinysubnets.summary import print_summary

    if result.R:
        print_summary(result.to_json(claimed(learner.net)), console)
    if len(result.R) < cfg.tasks:
        console.print(f"stopped after {len(result.R)} tasks; continue with: tsn run --resume {out}",
                      highlight=False, soft_wrap=True)  # a command to copy: never wrapped
    return 0


def _decoded(args: argparse.Namespace, parsed: ParsedModel) -> CompressedModel:
    """The model of a parsed file on ``--device``, built into ``--backbone`` when the file's
    backbone is the user's own (its class is not in the file)."""
    from tinysubnets.artifact.reader import decode
    from tinysubnets.device import resolve_device
    from tinysubnets.predict_inputs import user_backbone

    spec = parsed.header["backbone"]
    if args.backbone is None and "name" not in spec:
        raise ConfigError(f"{args.model} was trained with your own backbone "
                          f"({spec.get('module', '?')}): pass --backbone MODULE:CLASS, the module "
                          "that defines it and the class name")
    backbone = user_backbone(args.backbone) if args.backbone else None
    return decode(parsed, backbone).to(resolve_device(args.device))


def _eval(args: argparse.Namespace, console: Console) -> int:
    import torch
    from rich.table import Table

    from tinysubnets.artifact.reader import parse, read_bytes
    from tinysubnets.scenarios.recorded import recorded_scenario

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    parsed = parse(read_bytes(args.model), str(args.model))
    n_tasks = len(parsed.header["tasks"])
    if n_tasks == 0:
        raise TSNError(f"{args.model} holds no finished task: nothing to evaluate")
    data_dir = None if args.data_dir is None else str(args.data_dir)
    try:  # before decoding: a user's backbone is not needed to be told the data is missing
        rebuilt = recorded_scenario(parsed.header.get("scenario", {}), n_tasks, data_dir,
                                    args.download, args.scenario, args.force)
    except TSNError as e:
        raise type(e)(f"{args.model}: {e}") from None
    model = _decoded(args, parsed)
    if args.infer_task:
        _eval_inferring(args, console, model, [task.split("test") for task in
                                               rebuilt.scenario.tasks])
    else:
        table = Table(title=f"{args.model}: test accuracy per task, from the file alone")
        table.add_column("task", justify="right")
        table.add_column("accuracy %", justify="right")
        accs = []
        for t, task in enumerate(rebuilt.scenario.tasks):
            accs.append(model.evaluate(t, task.split("test")))
            table.add_row(str(t), f"{accs[-1]:.2f}")
        console.print(table)
        acc = sum(accs) / len(accs)
        console.print(f"ACC {acc:.2f} over {len(accs)} tasks; data: {rebuilt.scenario.source}",
                      highlight=False, soft_wrap=True)
    for note in rebuilt.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    return 0


def _eval_inferring(args: argparse.Namespace, console: Console, model: CompressedModel,
                    splits: list) -> None:
    """`tsn eval --infer-task`: per task, with the given and with the inferred task."""
    from rich.table import Table

    from tinysubnets.nn.inference import measure_inference

    criterion = args.criterion or model.default_criterion
    rows = measure_inference(model, splits, criterion)
    table = Table(title=f"{args.model}: without task ids ({criterion}), from the file alone")
    for col in ("task", "given task %", "task found %", "per batch of 64 %",
                "inferred task %"):
        table.add_column(col, justify="right")
    for t, r in enumerate(rows):
        table.add_row(str(t), f"{r.task_incremental:.2f}", f"{r.task_found:.2f}",
                      f"{r.batch_found:.2f}", f"{r.class_incremental:.2f}")
    console.print(table)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    console.print(
        f"ACC {mean([r.task_incremental for r in rows]):.2f} with the task given (task-"
        f"incremental), {mean([r.class_incremental for r in rows]):.2f} with it inferred "
        f"(class-incremental); task found for {mean([r.task_found for r in rows]):.2f} % of "
        f"inputs, {mean([r.batch_found for r in rows]):.2f} % of batches of 64",
        highlight=False, soft_wrap=True)


def _predict(args: argparse.Namespace, console: Console) -> int:
    import torch

    from tinysubnets.artifact.reader import parse, read_bytes
    from tinysubnets.nn.network import check_task_id
    from tinysubnets.predict_inputs import input_batches
    from tinysubnets.preprocess import apply

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    model = _decoded(args, parse(read_bytes(args.model), str(args.model)))
    check_task_id(args.task, model.num_tasks)
    record = model.task_info[args.task].get("preprocess", {})
    try:
        for names, raw in input_batches(args.inputs, args.batch_size, record):
            labels = model.predict(apply(record, raw), args.task).tolist()
            if len(labels) != len(names):  # a bug between reading and preprocessing
                raise ShapeError(f"{args.inputs}: {len(names)} inputs read, but preprocessing "
                                 f"made {len(labels)}")
            sys.stdout.write("".join(f"{n}\t{v}\n" for n, v in zip(names, labels, strict=True)))
        sys.stdout.flush()
    except BrokenPipeError:  # `tsn predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _inspect(args: argparse.Namespace, console: Console) -> int:
    import json

    from tinysubnets.artifact import inspect
    from tinysubnets.errors import clipped
    from tinysubnets.summary import print_capacity

    parsed = inspect(args.model)
    cap = parsed.capacity.to_dict()
    if args.json:
        print(json.dumps({"header": parsed.header, "capacity": cap}, indent=2))
        return 0
    header, info = parsed.header, parsed.header.get("scenario", {})
    backbone = header["backbone"].get("name") or header["backbone"]["module"]
    # Values from the file are quoted short and printed as text, not as rich markup.
    console.print(
        f"{args.model}: {len(header['tasks'])} tasks, backbone {clipped(backbone)}, scenario "
        f"{_text(info.get('name', '?'))} (seed {_text(info.get('seed', '?'))}), "
        f"{_text(header.get('library', ''))}", markup=False, highlight=False, soft_wrap=True,
    )
    print_capacity(cap, console)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    from tinysubnets.predict_inputs import user_backbone
    from tinysubnets.report.build import write_report

    backbone = user_backbone(args.backbone) if args.backbone else None
    report = write_report(args.runs, args.out, args.data_dir, not args.no_activations,
                          backbone)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"wrote {report.path} and {len(report.files) - 1} more files "
                  f"in {report.path.parent}", highlight=False, soft_wrap=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsn`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    if args.command is None:
        parser.print_help()
        return 2
    commands = {"run": _run, "eval": _eval, "predict": _predict, "inspect": _inspect,
                "report": _report}
    try:
        return commands[args.command](args, console)
    except TSNError as e:
        print(f"tsn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tsn: interrupted; finished tasks are kept (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
