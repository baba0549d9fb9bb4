"""tinysubnets: TinySubNets (TSN), forget-free continual learning with per-task subnetworks.

    import tinysubnets as tsn
    tasks = [tsn.Task.from_tensors(f"task{i}", xtr, ytr, xte, yte) for ...]   # any labels
    result, learner = tsn.run({"train": {"epochs": 2}}, out="runs/mine", tasks=tasks,
                              backbone=MyCNN())     # any module mapping inputs to features
    model = tsn.load("runs/mine/model.tsn", backbone=MyCNN())
    labels = model.predict(x, task_id=0)            # the user's own label values

The paper's scenarios run the same way: ``tsn.run({"scenario": "pmnist"}, out="runs/p")``.
"""

__version__ = "0.1.0"  # before the imports: the model writer records it

from tinysubnets.artifact import CompressedModel, load
from tinysubnets.config import RunConfig, TrainConfig
from tinysubnets.errors import ConfigError, DataError, TSNError
from tinysubnets.learner.learner import Learner
from tinysubnets.runs import RunResult, run
from tinysubnets.tasks import Task

__all__ = [
    "CompressedModel", "ConfigError", "DataError", "Learner", "RunConfig", "RunResult",
    "TSNError", "Task", "TrainConfig", "load", "run",
]
