"""ResNet-18 as a plain module: the reduced version (nf = 20, 5-datasets, as in GPM/WSN's code)
and the standard one (nf = 64, ImageNet-100). Bias-free convolutions; BatchNorm becomes per task."""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3×3 convs and a shortcut (a 1×1 conv where the shape changes), each conv with BN."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(c_out),
            ))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet18(nf: int = 20, in_channels: int = 3, size: int = 32,
             stem: str = "cifar") -> nn.Sequential:
    """ResNet-18 of stages: the stem, eight blocks, the pooling.

    ``stem="cifar"``: a 3×3 stride-1 first conv and a final 2×2 average pool (32×32 inputs, as in
    GPM's reduced ResNet-18: nf=20 gives 640 features); ``stem="imagenet"``: 7×7 stride 2 and a
    max pool, global average pool at the end.
    """
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"unknown ResNet stem {stem!r}: 'cifar' or 'imagenet'")
    first: OrderedDict[str, nn.Module] = OrderedDict()
    if stem == "cifar":
        first["conv1"] = nn.Conv2d(in_channels, nf, 3, padding=1, bias=False)
    else:
        first["conv1"] = nn.Conv2d(in_channels, nf, 7, stride=2, padding=3, bias=False)
    first["bn1"] = nn.BatchNorm2d(nf)
    first["relu"] = nn.ReLU()
    if stem == "imagenet":
        first["pool"] = nn.MaxPool2d(3, stride=2, padding=1)
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Sequential(first))
    c = nf
    for stage, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
        for i in range(2):
            layers[f"layer{stage}_{i}"] = BasicBlock(c, nf * mult, stride if i == 0 else 1)
            c = nf * mult
    layers["pool"] = nn.AvgPool2d(2) if stem == "cifar" else nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    return nn.Sequential(layers)
