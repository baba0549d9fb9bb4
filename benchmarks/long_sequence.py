"""Long task sequences: a long permuted-MNIST run summarised, and a finished run extended.

    python benchmarks/long_sequence.py --tasks 100 --slots 4 --out runs/pmnist100-s4
    python benchmarks/long_sequence.py --summary runs/pmnist100-s4      # a finished run folder
    python benchmarks/long_sequence.py --extend runs/bench-pmnist --to 20 --out runs/ext20

A run prints ACC, BWT, the mean final accuracy of the first and last ten tasks, model.tsn's
bytes and capacity by part, and the time per task at tasks 10, 50 and 100 (one thread by
default: time it on a quiet machine). ``--extend`` copies a finished run folder, resumes it to
``--to`` tasks, and checks that rows 1..T of R, the re-test of the first T tasks after the
last task, and every earlier task's logits from model.tsn are unchanged, bit for bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import torch

from tinysubnets import RunConfig, load, run
from tinysubnets.report.pertask import first_last_means
from tinysubnets.runs import resolved_config
from tinysubnets.scenarios import build_scenario

CHECKPOINTS = (10, 50, 100)  # tasks at which the time per task is reported


def summary(run_dir: Path) -> dict:
    """What the closing note reports of a run folder, from its results.json."""
    results = json.loads((run_dir / "results.json").read_text())
    tasks, T = results["per_task"], len(results["R"])
    means = first_last_means(results["R"])  # what `tsn report` shows (None under 20 tasks)
    out = {
        "tasks": T, "acc": round(results["acc"], 2), "bwt": round(results["bwt"], 2),
        "first10": means and round(means[0], 2), "last10": means and round(means[1], 2),
        "file_bytes": results["model"]["file_bytes"],
        "capacity_pct": round(results["model"]["total_pct"], 2),
        "parts_pct": {k: round(v, 2) for k, v in results["model"]["parts_pct"].items()},
        "time_total_s": round(results["time_total_s"]),
        "time_per_task_s": {t: round(tasks[t - 1]["time_s"], 2) for t in CHECKPOINTS if t <= T},
        "evaluate_s": {t: round(tasks[t - 1]["phase_s"].get("evaluate", 0.0), 2)
                       for t in CHECKPOINTS if t <= T},
    }
    print(json.dumps(out, indent=2))
    return out


def _probe(cfg: RunConfig, tasks: int) -> list[torch.Tensor]:
    """256 test inputs of each of the first ``tasks`` tasks."""
    scenario = build_scenario(cfg)
    return [scenario.tasks[t].split("test").x[:256] for t in range(tasks)]


def extend(source: Path, to: int, out: Path) -> None:
    """Copy a finished run, extend it to ``to`` tasks, check its earlier tasks unchanged."""
    if out.exists():
        raise SystemExit(f"{out} exists: give another --out")
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("*.lock", "*.part"))
    cfg = resolved_config(out)
    before_R = json.loads((out / "results.json").read_text())["R"]
    T = len(before_R)
    probe = _probe(cfg, T)
    model = load(out / "model.tsn")
    before = [model.logits(x, t) for t, x in enumerate(probe)]
    result, _ = run(dataclasses.replace(cfg, tasks=to), out, resume=True)
    after_model = load(out / "model.tsn")
    same_logits = all(torch.equal(after_model.logits(x, t), before[t])
                      for t, x in enumerate(probe))
    print(json.dumps({
        "extended": f"{T} -> {len(result.R)} tasks",
        "rows_1_to_T_unchanged": result.R[:T] == before_R,
        # the last row re-tests every task on data: the first T equal row T's, measured then
        "retested_first_T_equal_row_T": result.R[-1][:T] == before_R[-1],
        "earlier_logits_identical": same_logits, "acc": round(result.acc, 2),
        "bwt": round(result.bwt, 2)}, indent=2))
    summary(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--claim", default="fair")
    parser.add_argument("--claim-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", type=Path, metavar="RUN_DIR",
                        help="only summarise a finished run folder")
    parser.add_argument("--extend", type=Path, metavar="RUN_DIR",
                        help="copy this finished run to --out and extend it to --to tasks")
    parser.add_argument("--to", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summary:
        summary(args.summary)
        return
    if args.out is None:
        raise SystemExit("give --out (the run folder to write)")
    if args.extend:
        extend(args.extend, args.to, args.out)
        return
    cfg = RunConfig.for_scenario(
        "pmnist", tasks=args.tasks, seed=args.seed, data_dir=str(args.data_dir),
        threads=args.threads, train={"slots": args.slots, "claim": args.claim,
                                     "claim_fraction": args.claim_fraction})
    run(cfg, args.out, resume=(args.out / "checkpoint.pt").exists())
    summary(args.out)


if __name__ == "__main__":
    main()
