"""Continual-learning measures from a measured accuracy matrix; the backbone share claimed.

R[i][j] is the test accuracy on task j after training task i (j <= i), re-tested every time
(docs/design.md, invariant 5). Definitions follow GEM (Lopez-Paz & Ranzato, 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

from tinysubnets.nn.network import COPY_PREFIX, TSNNetwork


def average_accuracy(R: Sequence[Sequence[float]]) -> float:
    """ACC: mean accuracy over all tasks after the last one."""
    return sum(R[-1]) / len(R[-1])


def backward_transfer(R: Sequence[Sequence[float]]) -> float:
    """BWT: mean of R[T-1][j] - R[j][j] over j < T-1 (0 when nothing is forgotten)."""
    T = len(R)
    if T < 2:
        return 0.0
    return sum(R[-1][j] - R[j][j] for j in range(T - 1)) / (T - 1)


def forward_transfer(before: Sequence[float | None], baseline: Sequence[float]) -> float | None:
    """FWT: mean of R[j-1][j] - b_j over j >= 1, where ``before[j]`` is task j's accuracy just
    before it is trained and b_j that of the random-initialised network."""
    pairs = [(b, r) for r, b in zip(before[1:], baseline[1:], strict=False) if r is not None]
    if not pairs:
        return None
    return sum(r - b for b, r in pairs) / len(pairs)


def compression_per_task(tasks: Sequence[dict], backbone_weights: int) -> list[dict]:
    """The paper's Table 2 from the task records: mask density before and after post-pruning
    (% of the backbone), the bit-width chosen per block, and validation accuracy per step."""
    rows = []
    for t in tasks:
        prune, quantize = t.get("prune"), t.get("quantize")
        after = sum(t["mask_size"].values())
        pruned = 0
        if prune:
            pruned = sum(prune["own_before"].values()) - sum(prune["own_after"].values())
        val = {"trained": t["outcome"]["best_val_acc"]}
        if prune:
            val["pruned"] = prune["val_acc_after"]
            if prune.get("retrain"):
                val["retrained"] = prune["retrain"]["val_acc_after"]
        if quantize:
            val["quantized"] = quantize["val_acc_after"]
            if quantize.get("finetune"):
                val["fine_tuned"] = quantize["finetune"]["val_acc_after"]
        rows.append({
            "task": t["task_id"],
            "mask_pct_before_pruning": 100.0 * (after + pruned) / backbone_weights,
            "mask_pct_after_pruning": 100.0 * after / backbone_weights,
            "bits": quantize["bits"] if quantize else None,
            "val_acc": val,
        })
    return rows


def claimed(net: TSNNetwork) -> dict:
    """Share of backbone weights claimed by finished tasks: total, per layer, per owner task.

    Not to be confused with *capacity*, the bytes of the model file (`artifact.capacity`):
    this says how much of the backbone is taken, that how much the file stores. Weights of
    backbone copies ("model duplicate") count as claimed, against the backbone's own size, so a
    run that duplicated can claim more than 100 %.
    """
    layers, per_task, used, total = {}, {}, 0, 0
    for name, layer in net.masked_layers().items():
        owner = layer.owner
        n, n_used = owner.numel(), int((owner >= 0).sum())
        layers[name] = {"weights": n, "used": n_used, "used_pct": 100.0 * n_used / n}
        for t in owner[owner >= 0].unique().tolist():
            per_task[int(t)] = per_task.get(int(t), 0) + int((owner == t).sum())
        used += n_used
        total += 0 if name.startswith(COPY_PREFIX) else n  # 100 % = the backbone, not copies
    return {
        "backbone_weights": total,
        "used": used,
        "used_pct": 100.0 * used / total,
        "layers": layers,
        "own_per_task": [per_task.get(t, 0) for t in range(max(per_task, default=-1) + 1)],
    }
