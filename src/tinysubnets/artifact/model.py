"""The model a `model.tsn` file holds: it predicts for every task, and trains nothing.

It computes with exactly the code the learner evaluates with (`TSNNetwork.task_logits`), on the
same float32 values, so its logits equal the trained model's bit for bit (docs/design.md,
invariant 1).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tinysubnets.artifact.capacity import ModelCapacity
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.inference import TaskPredictor
from tinysubnets.nn.network import TSNNetwork, as_batch, check_task_id
from tinysubnets.tasks import Split

DEFAULT_CACHE_BYTES = 1 << 30


class CompressedModel(TaskPredictor, nn.Module):
    """Masks M_t, the stored values and the heads of every task in a model file, and the
    replay memory of each task when the run kept one.

    Each task's masked weights are computed once and kept (`task_weights`), the least recently
    used dropped past ``max_cache_bytes``: a file's values never change, and inferring a task
    asks every task about every batch.
    """

    def __init__(
        self, net: TSNNetwork, masks: list[dict[str, Tensor]], header: dict[str, Any],
        capacity: ModelCapacity, replay: list[Split] | None = None,
        task_info: list[dict[str, Any]] | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        super().__init__()
        self.net = net
        self.masks = masks
        self.header = header
        self.criterion = (header.get("inference") or {}).get("criterion")  # the run's choice
        self.capacity = capacity
        self.replay_memory = list(replay or [])
        self.task_info = list(task_info or [])
        self.max_cache_bytes = max_cache_bytes
        self._weights: OrderedDict[int, dict[str, Tensor]] = OrderedDict()
        self.requires_grad_(False)

    def task_weights(self, task_id: int) -> dict[str, Tensor]:
        """Task ``task_id``'s masked weights, by their names in the backbone (kept)."""
        task_id = check_task_id(task_id, self.num_tasks)
        if task_id in self._weights:
            self._weights.move_to_end(task_id)
        else:
            self._weights[task_id] = self.net.task_weights(task_id, self.masks[task_id])
        while len(self._weights) > 1 and self.cache_bytes > self.max_cache_bytes:
            self._weights.popitem(last=False)
        return self._weights[task_id]

    @property
    def cache_bytes(self) -> int:
        """Bytes of the masked weights kept (`task_weights`), at most ``max_cache_bytes``
        (or one task's, if that is more)."""
        return sum(w.numel() * w.element_size() for task in self._weights.values()
                   for w in task.values())

    @property
    def num_tasks(self) -> int:
        return len(self.masks)

    @property
    def scenario(self) -> dict[str, Any]:
        """What the writer said about the scenario (name, seed, tasks, data source)."""
        return dict(self.header.get("scenario", {}))

    def n_classes(self, task_id: int) -> int:
        task_id = check_task_id(task_id, self.num_tasks)
        return int(self.header["tasks"][task_id]["classes"])

    def replay(self, task_id: int) -> tuple[Tensor, Tensor]:
        """Task ``task_id``'s replay memory on the host: float32 inputs (count, *input shape)
        and int64 labels; no samples (count 0) when the file keeps no replay memory."""
        task_id = check_task_id(task_id, self.num_tasks)
        if not self.replay_memory:
            shape = self.net.input_shape
            return torch.zeros(0, *shape), torch.zeros(0, dtype=torch.int64)
        memory = self.replay_memory[task_id]
        return memory.x, memory.y

    def logits(self, x: Tensor | np.ndarray | list, task_id: int) -> Tensor:
        """Logits (N, classes) of task ``task_id`` on a batch ``x`` of model-ready inputs,
        moved to the model's device.

        ``x``: a float tensor, numpy array or nested list (N, *input shape); float64 and other
        float widths are cast to float32; integer, bool and uint8 inputs are refused with a
        DataError (raw data needs the task's preprocessing first, `tinysubnets.preprocess.apply`
        with ``task_info[t]["preprocess"]``, as `tsn predict` does); an empty batch gives a
        (0, classes) result; a shape the backbone cannot take is a DataError naming both.
        """
        task_id = check_task_id(task_id, self.num_tasks)
        return self.net.task_logits(as_batch(x).to(self.device), task_id, self.masks,
                                    self.task_weights(task_id))

    def logits_and_hidden(self, x: Tensor | np.ndarray | list, task_id: int
                          ) -> tuple[Tensor, Tensor]:
        """`logits` and the first hidden representation (task inference), one forward."""
        task_id = check_task_id(task_id, self.num_tasks)
        return self.net.task_logits_and_hidden(as_batch(x).to(self.device), task_id, self.masks,
                                               self.task_weights(task_id))

    def labels(self, task_id: int) -> list[Any]:
        """Task ``task_id``'s labels, the user's values, in class-index order."""
        task_id = check_task_id(task_id, self.num_tasks)
        return list(self.task_info[task_id]["labels"])

    def predict_index(self, x: Tensor | np.ndarray | list, task_id: int) -> Tensor:
        """Predicted class index (0..k-1 within the task) for each input (inputs as `logits`
        takes them)."""
        return self.logits(x, task_id).argmax(dim=1)

    def forward(self, x: Tensor, task_id: int) -> Tensor:  # noqa: D102
        return self.logits(x, task_id)

    def evaluate(self, task_id: int, split: Split) -> float:
        """Accuracy (%) of task ``task_id`` on ``split``."""
        task_id = check_task_id(task_id, self.num_tasks)
        return accuracy(self.net, task_id, self.masks[task_id], split.to(self.device))

    @property
    def device(self) -> torch.device:
        """Where the model computes (``to`` moves it; the file loads on the CPU)."""
        return next(self.net.parameters()).device

    def to(self, *args: Any, **kwargs: Any) -> CompressedModel:  # noqa: D102
        super().to(*args, **kwargs)
        self.masks = [{k: m.to(self.device) for k, m in task.items()} for task in self.masks]
        self._weights.clear()
        return self



