"""The paper's convolutional backbones (as in its code, after WSN): reduced AlexNet and TinyNet,
as plain ``nn.Sequential`` modules (bias-free layers; BatchNorm becomes per task)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution."""
    return (size + 2 * padding - kernel) // stride + 1


def alexnet(in_channels: int = 3, size: int = 32, width: int = 2048) -> nn.Sequential:
    """Reduced AlexNet (split CIFAR-100): conv 64k4, 128k3, 256k2, each BN-ReLU-maxpool 2,
    then fc 2048, 2048 with BN-ReLU."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c, s = in_channels, size
    for i, (out, k) in enumerate(((64, 4), (128, 3), (256, 2)), start=1):
        layers[f"conv{i}"] = nn.Conv2d(c, out, k, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(out)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        c, s = out, conv_out(s, k) // 2
    layers["flatten"] = nn.Flatten()
    for i, n_in in ((1, c * s * s), (2, width)):
        layers[f"fc{i}"] = nn.Linear(n_in, width, bias=False)
        layers[f"bn{i + 3}"] = nn.BatchNorm1d(width)
        layers[f"relu{i + 3}"] = nn.ReLU()
    return nn.Sequential(layers)


def tinynet(in_channels: int = 3, size: int = 64, channels: int = 160,
            width: int = 640) -> nn.Sequential:
    """TinyNet (TinyImageNet): 4 conv 3×3 stride 2 padding 1 of 160 channels with BN-ReLU,
    then fc 640, 640 with ReLU."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c, s = in_channels, size
    for i in range(1, 5):
        layers[f"conv{i}"] = nn.Conv2d(c, channels, 3, stride=2, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(channels)
        layers[f"relu{i}"] = nn.ReLU()
        c, s = channels, conv_out(s, 3, 2, 1)
    layers["flatten"] = nn.Flatten()
    for i, n_in in ((1, c * s * s), (2, width)):
        layers[f"fc{i}"] = nn.Linear(n_in, width, bias=False)
        layers[f"relu{i + 4}"] = nn.ReLU()
    return nn.Sequential(layers)
