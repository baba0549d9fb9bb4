"""The paper's backbones as plain modules, by name: MLP (p-MNIST), reduced AlexNet (split CIFAR),
TinyNet (TinyImageNet), ResNet-18 (5-datasets, ImageNet-100).

They are ordinary ``nn.Sequential`` modules, built and masked exactly as a user's backbone is
(see `network`): nothing here knows about masks. Layers are bias-free, as in the paper's code.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from tinysubnets.errors import ConfigError
from tinysubnets.nn.convnets import alexnet, tinynet
from tinysubnets.nn.resnet import resnet18


def mlp(in_features: int = 784, hidden: tuple[int, ...] = (100, 100)) -> nn.Sequential:
    """The paper's p-MNIST backbone: 784-100-100, bias-free, ReLU."""
    sizes = (in_features, *hidden)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
        layers[f"fc{i}"] = nn.Linear(a, b, bias=False)
        layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp, "alexnet": alexnet, "tinynet": tinynet, "resnet18": resnet18,
}


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """A built-in backbone by its name in ``BACKBONES``."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)
