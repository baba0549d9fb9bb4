"""tinysubnets: TinySubNets (TSN), forget-free continual learning with per-task subnetworks.

    from tinysubnets import RunConfig, run
    cfg = RunConfig.for_scenario("pmnist", tasks=3, train={"epochs": 2})
    result, learner = run(cfg, out="runs/quick")
    print(result.acc, result.bwt)
    model = load("runs/quick/model.tsn")       # the compressed model: predicts for every task
    logits = model.logits(x, task_id=0)
"""

__version__ = "0.1.0"  # before the imports: the model writer records it

from tinysubnets.artifact import CompressedModel, load
from tinysubnets.config import RunConfig, TrainConfig
from tinysubnets.errors import ConfigError, DataError, TSNError
from tinysubnets.learner.learner import Learner
from tinysubnets.runs import RunResult, run

__all__ = [
    "CompressedModel", "ConfigError", "DataError", "Learner", "RunConfig", "RunResult",
    "TSNError", "TrainConfig", "load", "run",
]
