"""A scenario: the ordered tasks of one of the paper's benchmarks and where they were read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import overload

from tinysubnets.tasks import Task


class LazyTasks(Sequence[Task]):
    """``count`` tasks, task t built by ``build(t)`` when it is first asked for, then kept.

    A run reaches its tasks one at a time, so a scenario of 30,000 tasks stopped after one
    builds one: nothing that starts a run may cost time or memory per planned task.
    """

    def __init__(self, count: int, build: Callable[[int], Task]) -> None:
        self._count, self._build = count, build
        self._built: dict[int, Task] = {}

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Task: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Task, ...]: ...

    def __getitem__(self, index: int | slice) -> Task | tuple[Task, ...]:
        if isinstance(index, slice):
            return tuple(self[t] for t in range(self._count)[index])
        t = range(self._count)[index]  # IndexError beyond the tasks, negative from the end
        if t not in self._built:
            self._built[t] = self._build(t)
        return self._built[t]

    def __repr__(self) -> str:
        return f"LazyTasks({self._count} tasks, {len(self._built)} built)"


@dataclass(frozen=True)
class Scenario:
    """An ordered sequence of tasks and the input shape the backbone sees."""

    name: str
    tasks: Sequence[Task]  # a tuple, or `LazyTasks` where tasks are many or costly to build
    input_shape: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.tasks)
