"""Tasks from what users have: tensors, arrays or datasets; splits and their batches."""

from tinysubnets.tasks.split import Split, iterate_batches, take_rows, train_val_indices
from tinysubnets.tasks.task import Task

__all__ = ["Split", "Task", "iterate_batches", "take_rows", "train_val_indices"]
