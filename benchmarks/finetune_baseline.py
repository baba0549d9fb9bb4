"""The dense fine-tuning baseline: one unmasked network trained task after task (a head and,
where the backbone has them, norms per task), nothing frozen. It shows what forgetting costs:
its R matrix is measured exactly like TSN's (every earlier task re-tested after each task).

    python benchmarks/finetune_baseline.py --scenario pmnist --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from tinysubnets import RunConfig
from tinysubnets.device import resolve_device
from tinysubnets.learner.learner import task_generator
from tinysubnets.learner.trainer import make_optimizer
from tinysubnets.metrics import average_accuracy, backward_transfer
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.network import TSNNetwork
from tinysubnets.runs import setup
from tinysubnets.tasks import iterate_batches


def finetune_baseline(cfg: RunConfig, progress: bool = False) -> dict:
    """R, ACC, BWT and time per task of dense fine-tuning on ``cfg``'s scenario."""
    run_setup = setup(cfg, None, None)  # the scenario and its backbone, as a TSN run has them
    scenario = run_setup.scenario
    device = resolve_device(cfg.device)
    net = TSNNetwork(run_setup.backbone, scenario.input_shape,
                     torch.Generator().manual_seed(cfg.seed)).to(device)
    full = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in net.masked_layers().items()}
    R, times = [], []
    for t, task in enumerate(scenario.tasks):
        start = time.perf_counter()
        net.add_head(task.n_classes, task_generator(cfg.seed, t))
        params = [m.weight for m in net.masked_layers().values()]
        params += list(net.heads[t].parameters())
        params += list(net.norms[t].parameters())
        optimizer = make_optimizer(params, cfg.train)
        train, generator = task.split("train").to(device), task_generator(cfg.seed, t)
        net.train()
        for _ in range(cfg.train.epochs):
            for x, y in iterate_batches(train, cfg.train.batch_size, generator):
                loss = F.cross_entropy(net(x, t, full), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        R.append([accuracy(net, j, full, scenario.tasks[j].split("test").to(device))
                  for j in range(t + 1)])
        times.append(time.perf_counter() - start)
        if progress:
            print(f"fine-tuning: task {t} done, accuracies {[round(a, 2) for a in R[-1]]}")
    return {"R": R, "acc": average_accuracy(R), "bwt": backward_transfer(R), "time_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="pmnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--datasets", default="", help="five-datasets: which ones")
    args = parser.parse_args()
    overrides: dict = {"seed": args.seed, "data_dir": args.data_dir, "device": args.device,
                       "datasets": args.datasets}
    if args.tasks:
        overrides["tasks"] = args.tasks
    if args.epochs:
        overrides["train"] = {"epochs": args.epochs}
    cfg = RunConfig.for_scenario(args.scenario, **overrides)
    print(json.dumps(finetune_baseline(cfg, progress=True), indent=2))


if __name__ == "__main__":
    main()
