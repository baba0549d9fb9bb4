"""Any scenario on real data: TSN beside the dense fine-tuning baseline, same settings, same run.

    python benchmarks/scenario.py --scenario cifar10 --data-dir ../shared/data --epochs 5
    python benchmarks/scenario.py --scenario five-datasets --data-dir ../shared/data \\
        --datasets cifar10,mnist,fashion-mnist,notmnist --tasks 4 --epochs 3

Prints and writes (to --out/benchmark.json) ACC, BWT, capacity of model.tsn, time per task for
TSN, and ACC, BWT, time per task for fine-tuning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from finetune_baseline import finetune_baseline

from tinysubnets import RunConfig, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--datasets", default="")
    parser.add_argument("--image-size", type=int, default=0, help="imagenet100: input size")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--kl", action="store_true",
                        help="act on the KL step: share from the nearest task, adapt capacity")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides: dict = {"seed": args.seed, "data_dir": args.data_dir, "threads": args.threads,
                       "datasets": args.datasets, "device": args.device,
                       "image_size": args.image_size}
    if args.tasks:
        overrides["tasks"] = args.tasks
    if args.epochs:
        overrides["train"] = {"epochs": args.epochs}
    if args.kl:
        overrides["similarity"] = {"share_from_nearest": True, "adapt_capacity": True}
    cfg = RunConfig.for_scenario(args.scenario, **overrides)
    out = args.out or Path("runs") / f"bench-{args.scenario}"
    result, _ = run(cfg, out=out, resume=(out / "checkpoint.pt").exists())
    summary = {
        "scenario": args.scenario, "data": result.source, "tasks": len(result.R),
        "epochs": cfg.train.epochs, "device": args.device, "kl": args.kl,
        "gpu": torch.cuda.get_device_name() if cfg.device != "cpu" else None,
        "tsn": {
            "acc": result.acc, "bwt": result.bwt, "R_last": result.R[-1],
            "capacity_pct": result.model["total_pct"], "parts_pct": result.model["parts_pct"],
            "file_bytes": result.model["file_bytes"],
            "time_per_task_s": [round(t["time_s"], 1) for t in result.tasks],
            "divergence": [t.get("divergence") for t in result.tasks],
            "capacity_scale": [t.get("capacity_scale") for t in result.tasks],
            "time_per_phase_s": {
                phase: round(sum(t.get("phase_s", {}).get(phase, 0.0) for t in result.tasks), 1)
                for phase in ("similarity", "train", "prune", "quantize", "consolidate",
                              "evaluate", "model_file")
            },
        },
    }
    if not args.no_baseline:
        base = finetune_baseline(cfg)
        summary["finetune"] = {"acc": base["acc"], "bwt": base["bwt"], "R_last": base["R"][-1],
                               "time_per_task_s": [round(t, 1) for t in base["time_s"]]}
    print(json.dumps(summary, indent=2))
    (out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
