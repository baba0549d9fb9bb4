"""A scenario: the ordered tasks of one of the paper's benchmarks and where they were read."""

from __future__ import annotations

from dataclasses import dataclass

from tinysubnets.tasks import Task


@dataclass(frozen=True)
class Scenario:
    """An ordered sequence of tasks and the input shape the backbone sees."""

    name: str
    tasks: tuple[Task, ...]
    input_shape: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.tasks)
