"""The compressed model file (`model.tsn`): write it from a learner, load it to predict."""

from tinysubnets.artifact.capacity import ModelCapacity
from tinysubnets.artifact.model import CompressedModel
from tinysubnets.artifact.reader import inspect, load
from tinysubnets.artifact.writer import MODEL_FILE, model_bytes, write_model

__all__ = [
    "MODEL_FILE", "CompressedModel", "ModelCapacity", "inspect", "load", "model_bytes",
    "write_model",
]
