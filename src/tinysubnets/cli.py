"""The ``tsn`` command: a thin shell over :func:`tinysubnets.runs.run`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from tinysubnets.config import (
    CLAIM_RULES,
    OPTIMIZERS,
    SCHEDULES,
    RunConfig,
    config_from_dict,
    preset,
    read_config_file,
)
from tinysubnets.errors import TSNError
from tinysubnets.runs import resolved_config, run
from tinysubnets.scenarios import SCENARIOS

DESCRIPTION = """\
TinySubNets (TSN): learn a sequence of tasks in one network without forgetting.
Each task learns a binary mask over the shared weights (its subnetwork), reuses frozen weights
of earlier tasks and claims free ones. Every earlier task is re-tested after each task.
"""

RUN_EPILOG = """\
examples:
  tsn run                                     10-task permuted MNIST on the embedded 5k subset
  tsn run --data-dir ../shared/data/mnist     the full MNIST from its IDX files
  tsn run --download                          fetch MNIST (checksums verified) into a cache
  tsn run --tasks 3 --epochs 2 --out runs/x   a quick run, kept in runs/x
  tsn run --resume runs/x                     continue runs/x from its last finished task

Settings are read in this order, later wins: defaults, --config FILE.yaml, flags.
The run folder gets config.yaml, results.json, accuracy_matrix.csv and checkpoint.pt.
"""

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
              "'fair' = free / tasks left, per layer; 'scores' = top-k of scores decides (WSN)"),
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "run",
        help="learn a scenario's tasks in sequence and measure them",
        description="Learn a scenario's tasks in sequence; re-test every earlier task after each.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", choices=SCENARIOS, help="scenario to learn (default pmnist)")
    p.add_argument("--tasks", type=int, help="number of tasks (default 10)")
    p.add_argument("--seed", type=int, help="random seed: same seed, same numbers (default 0)")
    p.add_argument("--data-dir", type=Path, help="folder with the dataset's standard files")
    p.add_argument("--download", action="store_true", default=None,
                   help="download the dataset (official mirrors, checksums verified)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    for key, (typ, text) in _TRAIN_FLAGS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=typ, dest=key, help=text)
    p.add_argument("--post-prune", action="store_true", default=None,
                   help="after each task, prune its own weights without gradients")
    p.add_argument("--prune-threshold", type=float, metavar="POINTS",
                   help="largest validation accuracy drop post-pruning may cause (default 0.2)")
    p.add_argument("--quantize", action="store_true", default=None,
                   help="after each task, k-means-quantize its own weights (bit-width searched)")
    p.add_argument("--layer-keep-ratio", type=_layer_ratio, action="append", metavar="LAYER=C",
                   help="keep ratio of one layer, e.g. fc1=0.1 (repeatable)")
    p.add_argument("--config", type=Path, help="YAML file of settings (keys as in config.yaml)")
    p.add_argument("--out", type=Path, help="run folder to write (default runs/<scenario>-s<seed>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last finished task")
    p.add_argument("--stop-after", type=int, metavar="K", help="stop once K tasks are finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _config(args: argparse.Namespace) -> RunConfig:
    settings = read_config_file(args.config) if args.config is not None else {}
    if args.resume is not None:
        base = resolved_config(args.resume)
    else:
        base = preset(args.scenario or str(settings.get("scenario", "pmnist")))
    if settings:
        base = config_from_dict(settings, base, where=f"config file {args.config}")
    top = {k: getattr(args, k) for k in ("scenario", "tasks", "seed", "download", "threads")}
    if args.data_dir is not None:
        top["data_dir"] = str(args.data_dir)
    train = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    if args.layer_keep_ratio:
        given = {name: c for pair in args.layer_keep_ratio for name, c in pair.items()}
        train["layer_keep_ratio"] = {**base.train.layer_keep_ratio, **given}
    overrides = {k: v for k, v in top.items() if v is not None}
    train = {k: v for k, v in train.items() if v is not None}
    if train:
        overrides["train"] = train
    prune = {"enabled": args.post_prune, "threshold": args.prune_threshold}
    prune = {k: v for k, v in prune.items() if v is not None}
    if prune:
        overrides["prune"] = prune
    if args.quantize:
        overrides["quantize"] = {"enabled": True}
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
    from tinysubnets.metrics import capacity
    from tinysubnets.summary import print_summary

    if result.R:
        print_summary(result.to_json(capacity(learner.net)), console)
    if len(result.R) < cfg.tasks:
        console.print(f"stopped after {len(result.R)} tasks; continue with: tsn run --resume {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsn`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run(args, console)
    except TSNError as e:
        print(f"tsn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tsn: interrupted; finished tasks are kept (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
