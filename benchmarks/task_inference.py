"""Inference without a task id, from a model file: how often each criterion finds the task (per
input and per batch of 64), the accuracy with the inferred task (class-incremental) beside the
accuracy with the given one, and the speed of `logits(x, t)` and of `predict(x)` against the
dense fp32 network of the same shapes, measured side by side in one run.

    make bench                                    # writes runs/bench-pmnist/model.tsn
    python benchmarks/task_inference.py --model runs/bench-pmnist/model.tsn --threads 1

The test data is rebuilt as `tsn eval` rebuilds it (where the run read it, fingerprint checked).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import tinysubnets as tsn
from tinysubnets.nn.inference import CRITERIA, measure_inference
from tinysubnets.scenarios.recorded import recorded_scenario


def dense_twin(model: tsn.CompressedModel, task_id: int) -> nn.Module:
    """The backbone as a plain module holding task ``task_id``'s weights, and its head: what
    the same computation costs without masks."""
    backbone = copy.deepcopy(model.net.backbone)
    weights = model.task_weights(task_id)
    for name, value in weights.items():
        module_path, _, param = name.rpartition(".")
        module = backbone.get_submodule(module_path)
        module._parameters[param] = nn.Parameter(value.clone(), requires_grad=False)
    return nn.Sequential(backbone, copy.deepcopy(model.net.heads[task_id])).eval()


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs (seconds), after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(model: tsn.CompressedModel, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds for every task's logits on ``x``, from the file and densely, and for
    `predict(x)` without a task id against T dense forwards."""
    twins = [dense_twin(model, t) for t in range(model.num_tasks)]
    with torch.no_grad():
        dense = best_time(lambda: [twin(x) for twin in twins], repeats)
        masked = best_time(lambda: [model.logits(x, t) for t in range(model.num_tasks)],
                           repeats)
        predict = best_time(lambda: model.predict(x), repeats)
        same = all(torch.equal(twins[t](x), model.logits(x, t)) for t in range(model.num_tasks))
    return {"dense_all_tasks_s": dense, "file_all_tasks_s": masked, "logits_ratio": masked / dense,
            "predict_without_id_s": predict, "predict_ratio_to_T_dense": predict / dense,
            "dense_twin_equal": same, "cache_bytes": model.cache_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/bench-pmnist/model.tsn"))
    parser.add_argument("--data-dir", help="where the test data is (default: where recorded)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs timed per task")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = tsn.load(args.model)
    rebuilt = recorded_scenario(model.scenario, model.num_tasks, args.data_dir)
    splits = [task.split("test") for task in rebuilt.scenario.tasks]
    report: dict[str, object] = {"model": str(args.model), "tasks": model.num_tasks,
                                 "threads": args.threads, "criteria": {}}
    for criterion in CRITERIA:
        start = time.perf_counter()
        rows = measure_inference(model, splits, criterion)
        n = len(rows)
        summary = {
            "task_found": sum(r.task_found for r in rows) / n,
            "batch_found": sum(r.batch_found for r in rows) / n,
            "class_incremental": sum(r.class_incremental for r in rows) / n,
            "task_incremental": sum(r.task_incremental for r in rows) / n,
            "seconds": time.perf_counter() - start,
            "per_task": [r.__dict__ for r in rows],
        }
        report["criteria"][criterion] = summary
        print(f"{criterion:9s} task found {summary['task_found']:6.2f} % per input, "
              f"{summary['batch_found']:6.2f} % per batch of 64; ACC "
              f"{summary['class_incremental']:.2f} inferred / "
              f"{summary['task_incremental']:.2f} given ({summary['seconds']:.1f} s)")
    x = torch.cat([s.x[: args.inputs] for s in splits[:1]])
    speed = throughput(model, x, args.repeats)
    report["speed"] = speed
    print(f"logits of all {model.num_tasks} tasks on {len(x)} inputs: file "
          f"{speed['file_all_tasks_s']:.3f} s, dense fp32 {speed['dense_all_tasks_s']:.3f} s "
          f"(ratio {speed['logits_ratio']:.2f}); predict without a task id "
          f"{speed['predict_without_id_s']:.3f} s = {speed['predict_ratio_to_T_dense']:.2f} x "
          f"the T dense forwards; identical logits: {speed['dense_twin_equal']}; weights kept "
          f"{speed['cache_bytes'] / 2**20:.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
