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
from tinysubnets.nn.inference import BATCH_CRITERIA, CRITERIA, measure_criteria
from tinysubnets.scenarios.recorded import recorded_scenario
from tinysubnets.tasks import Split


def dense_twin(model: tsn.CompressedModel, task_id: int) -> nn.Module:
    """The backbone as a plain module holding task ``task_id``'s weights, and its head: what
    the same computation costs without masks."""
    backbone = copy.deepcopy(model.net.backbone)
    weights = model.task_weights(task_id)
    for name, value in weights.items():
        module_path, _, param = name.rpartition(".")
        module = backbone.get_submodule(module_path)
        module._parameters[param] = nn.Parameter(value.clone(), requires_grad=False)
    for name, value in model.net.norm_state(task_id).items():  # the task's own norms
        module_path, _, attr = name.rpartition(".")
        module = backbone.get_submodule(module_path)
        table = module._parameters if attr in module._parameters else module._buffers
        table[attr] = value.clone()
    return nn.Sequential(backbone, copy.deepcopy(model.net.heads[task_id])).eval()


def best_times(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """The fastest of ``repeats`` runs of each (seconds), after a warm-up, the functions
    taking turns so that a busy moment of the machine does not fall on one of them only."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - start)
    return [min(kept) for kept in times]


def throughput(model: tsn.CompressedModel, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds for every task's logits on ``x``, from the file and densely, and for
    `predict(x)` without a task id against T dense forwards."""
    twins = [dense_twin(model, t) for t in range(model.num_tasks)]
    with torch.no_grad():
        dense, masked, predict = best_times([
            lambda: [twin(x) for twin in twins],
            lambda: [model.logits(x, t) for t in range(model.num_tasks)],
            lambda: model.predict(x)], repeats)
        same = all(torch.equal(twins[t](x), model.logits(x, t)) for t in range(model.num_tasks))
    return {"dense_all_tasks_s": dense, "file_all_tasks_s": masked, "logits_ratio": masked / dense,
            "predict_without_id_s": predict, "predict_ratio_to_T_dense": predict / dense,
            "dense_twin_equal": same, "cache_bytes": model.cache_bytes}


def batch_inference(model: tsn.CompressedModel, splits: list, criterion: str, batch: int,
                    limit: int | None) -> dict[str, float]:
    """Inference of one task per batch of ``batch`` test inputs (the first ``limit`` batches
    of each task; None: all): how often the batch's task is found, the accuracy with it
    (class-incremental), and the milliseconds a batch takes, choice and answer included."""
    found = right = n = batches = 0
    start = time.perf_counter()
    with torch.no_grad():
        for t, split in enumerate(splits):
            stop = len(split) - len(split) % batch
            if limit is not None:
                stop = min(stop, limit * batch)
            for i in range(0, stop, batch):
                x, y = split.x[i : i + batch], split.y[i : i + batch]
                task = int(model.infer_task(x, criterion, per_batch=True)[0])
                found += int(task == t)
                if task == t:
                    right += int((model.logits(x, t).argmax(1) == y).sum())
                n, batches = n + len(x), batches + 1
    seconds = time.perf_counter() - start
    return {"batch_found": 100.0 * found / max(1, batches),
            "class_incremental": 100.0 * right / max(1, n), "batches": batches,
            "ms_per_batch": 1000.0 * seconds / max(1, batches)}


def dense_bounds(model: tsn.CompressedModel, scenario, epochs: int, seed: int
                 ) -> dict[str, dict[str, float]]:
    """The dense network of the same backbone with one head over every task's classes
    (task t's class c is output offset(t) + c): trained on all tasks at once (the upper bound
    of class-incremental accuracy) and on one task after the other (fine-tuning, the lower
    bound). Each reports class-incremental ACC and how often the task is found."""
    sizes = [model.n_classes(t) for t in range(model.num_tasks)]
    offsets = [sum(sizes[:t]) for t in range(len(sizes))]
    train = [task.split("train") for task in scenario.tasks]
    tests = [task.split("test") for task in scenario.tasks]

    def fresh() -> nn.Module:
        torch.manual_seed(seed)
        backbone = copy.deepcopy(model.net.backbone)
        for name in model.net.param_names:  # the masked slots are empty in the decoded net
            module_path, _, param = name.rpartition(".")
            module = backbone.get_submodule(module_path)
            shape = model.net.masked_layers()[name].owner.shape
            module._parameters[param] = nn.Parameter(torch.empty(shape))
            module.reset_parameters()
        return nn.Sequential(backbone, nn.Linear(model.net.out_features, sum(sizes)))

    def fit(net: nn.Module, tasks: list[int]) -> None:
        xs = torch.cat([train[t].x for t in tasks])
        ys = torch.cat([train[t].y + offsets[t] for t in tasks])
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            for batch in torch.randperm(len(xs), generator=generator).split(128):
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(xs[batch]), ys[batch]).backward()
                optimizer.step()

    def score(net: nn.Module) -> dict[str, float]:
        net.eval()
        right = found = n = 0
        with torch.no_grad():
            for t, split in enumerate(tests):
                out = net(split.x).argmax(1)
                right += int((out == split.y + offsets[t]).sum())
                task = torch.bucketize(out, torch.tensor(offsets[1:] + [sum(sizes)]), right=True)
                found += int((task == t).sum())
                n += len(split)
        return {"class_incremental": 100.0 * right / n, "task_found": 100.0 * found / n}

    joint = fresh()
    fit(joint, list(range(len(sizes))))
    finetuned = fresh()
    for t in range(len(sizes)):
        fit(finetuned, [t])
    return {"joint": score(joint), "finetune": score(finetuned)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/bench-pmnist/model.tsn"))
    parser.add_argument("--data-dir", help="where the test data is (default: where recorded)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs timed per task")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--bounds", action="store_true",
                        help="also train the dense joint (upper) and fine-tuned (lower) bounds")
    parser.add_argument("--epochs", type=int, default=3, help="of the bounds' training")
    parser.add_argument("--criteria", default=",".join(CRITERIA),
                        help="criteria measured per input (default: all)")
    parser.add_argument("--test-per-task", type=int,
                        help="measure on the first N test inputs of each task (default: all; "
                             "for many tasks: every input goes through every subnetwork)")
    parser.add_argument("--batch-criteria", default=",".join(BATCH_CRITERIA),
                        help="criteria measured one task per batch of 64, timed, beside the "
                             "model's own criterion (SupSup's one-shot gradient: oneshot)")
    parser.add_argument("--batches-per-task", type=int,
                        help="batches of 64 of each task those take (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = tsn.load(args.model)
    rebuilt = recorded_scenario(model.scenario, model.num_tasks, args.data_dir)
    splits = [task.split("test") for task in rebuilt.scenario.tasks]
    x = splits[0].x[: args.inputs]  # task 0's inputs through every task, timed
    if args.test_per_task:
        splits = [Split(s.x[: args.test_per_task], s.y[: args.test_per_task]) for s in splits]
    report: dict[str, object] = {"model": str(args.model), "tasks": model.num_tasks,
                                 "threads": args.threads, "test_per_task": args.test_per_task,
                                 "criteria": {}}
    criteria = tuple(filter(None, args.criteria.split(",")))
    start = time.perf_counter()
    measured = measure_criteria(model, splits, criteria)  # the same forwards for every one
    seconds = time.perf_counter() - start
    for criterion, rows in measured.items():
        n = len(rows)
        summary = {
            "task_found": sum(r.task_found for r in rows) / n,
            "batch_found": sum(r.batch_found for r in rows) / n,
            "class_incremental": sum(r.class_incremental for r in rows) / n,
            "task_incremental": sum(r.task_incremental for r in rows) / n,
            "seconds_all_criteria": seconds,
            "per_task": [r.__dict__ for r in rows],
        }
        report["criteria"][criterion] = summary
        print(f"{criterion:9s} task found {summary['task_found']:6.2f} % per input, "
              f"{summary['batch_found']:6.2f} % per batch of 64; ACC "
              f"{summary['class_incremental']:.2f} inferred / "
              f"{summary['task_incremental']:.2f} given")
    print(f"({seconds:.1f} s for the {len(criteria)} criteria, from the same forwards)")
    report["per_batch"] = {}
    for criterion in [model.default_criterion, *filter(None, args.batch_criteria.split(","))]:
        row = batch_inference(model, splits, criterion, 64, args.batches_per_task)
        report["per_batch"][criterion] = row
        print(f"{criterion:9s} one task per batch of 64: found {row['batch_found']:6.2f} % of "
              f"{row['batches']} batches, ACC {row['class_incremental']:.2f} inferred, "
              f"{row['ms_per_batch']:.1f} ms a batch")
    speed = throughput(model, x, args.repeats)
    report["speed"] = speed
    print(f"logits of all {model.num_tasks} tasks on {len(x)} inputs: file "
          f"{speed['file_all_tasks_s']:.3f} s, dense fp32 {speed['dense_all_tasks_s']:.3f} s "
          f"(ratio {speed['logits_ratio']:.2f}); predict without a task id "
          f"{speed['predict_without_id_s']:.3f} s = {speed['predict_ratio_to_T_dense']:.2f} x "
          f"the T dense forwards; identical logits: {speed['dense_twin_equal']}; weights kept "
          f"{speed['cache_bytes'] / 2**20:.1f} MiB")
    if args.bounds:
        start = time.perf_counter()
        bounds = dense_bounds(model, rebuilt.scenario, args.epochs, seed=0)
        report["bounds"] = bounds
        for name, b in bounds.items():
            print(f"dense {name:8s} ACC {b['class_incremental']:.2f} class-incremental, task "
                  f"found {b['task_found']:.2f} % ({args.epochs} epochs; "
                  f"{time.perf_counter() - start:.0f} s for both)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
