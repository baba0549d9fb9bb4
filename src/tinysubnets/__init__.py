"""tinysubnets: TinySubNets (TSN), forget-free continual learning with per-task subnetworks.

    from tinysubnets import RunConfig, run
    cfg = RunConfig.for_scenario("pmnist", tasks=3, train={"epochs": 2})
    result, learner = run(cfg, out="runs/quick")
    print(result.acc, result.bwt)
"""

from tinysubnets.config import RunConfig, TrainConfig
from tinysubnets.errors import ConfigError, DataError, TSNError
from tinysubnets.learner.learner import Learner
from tinysubnets.runs import RunResult, run

__all__ = [
    "ConfigError", "DataError", "Learner", "RunConfig", "RunResult", "TSNError", "TrainConfig",
    "run",
]
__version__ = "0.1.0"
