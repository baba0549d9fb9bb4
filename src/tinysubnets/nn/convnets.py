"""The paper's convolutional backbones (as in its code, after WSN): reduced AlexNet and TinyNet.

Every conv and linear layer is masked and bias-free; every BatchNorm is per task (the network
holds one set per task, see `TSNNetwork`), so it is named here and handed in at forward time.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tinysubnets.nn.masked import MaskedConv2d, MaskedLinear
from tinysubnets.nn.stages import Norms, Stage, run_stages

NormSpecs = dict[str, tuple[str, int]]  # norm name -> ("1d" | "2d", features)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution."""
    return (size + 2 * padding - kernel) // stride + 1


class AlexNet(nn.Module):
    """Reduced AlexNet (split CIFAR-100): conv 64k4, 128k3, 256k2, each BN-ReLU-maxpool 2,
    then fc 2048, 2048 with BN-ReLU."""

    def __init__(self, in_channels: int = 3, size: int = 32, width: int = 2048) -> None:
        super().__init__()
        self.conv1 = MaskedConv2d(in_channels, 64, 4)
        self.conv2 = MaskedConv2d(64, 128, 3)
        self.conv3 = MaskedConv2d(128, 256, 2)
        s = size
        for k in (4, 3, 2):
            s = conv_out(s, k) // 2
        self.fc1 = MaskedLinear(256 * s * s, width)
        self.fc2 = MaskedLinear(width, width)
        self.out_features = width
        self.input_shape = (in_channels, size, size)
        self.norm_specs: NormSpecs = {
            "bn1": ("2d", 64), "bn2": ("2d", 128), "bn3": ("2d", 256),
            "bn4": ("1d", width), "bn5": ("1d", width),
        }

    def stages(self) -> list[Stage]:
        """One stage per layer: conv-BN-ReLU-pool three times, then fc-BN-ReLU twice."""
        def conv(i: int) -> Stage:
            name = f"conv{i}"

            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                x = getattr(self, name)(x, weights[name])
                return F.max_pool2d(F.relu(norms[f"bn{i}"](x)), 2)
            return Stage((name,), run)

        def fc(i: int) -> Stage:
            name = f"fc{i}"

            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                x = x.flatten(1) if i == 1 else x
                return F.relu(norms[f"bn{i + 3}"](getattr(self, name)(x, weights[name])))
            return Stage((name,), run)

        return [conv(1), conv(2), conv(3), fc(1), fc(2)]

    def forward(self, x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
        return run_stages(self.stages(), x, weights, norms)


class TinyNet(nn.Module):
    """TinyNet (TinyImageNet): 4 conv 3×3 stride 2 padding 1 of 160 channels with BN-ReLU,
    then fc 640, 640 with ReLU."""

    def __init__(self, in_channels: int = 3, size: int = 64, channels: int = 160,
                 width: int = 640) -> None:
        super().__init__()
        s, c = size, in_channels
        for i in range(1, 5):
            setattr(self, f"conv{i}", MaskedConv2d(c, channels, 3, stride=2, padding=1))
            c, s = channels, conv_out(s, 3, 2, 1)
        self.fc1 = MaskedLinear(channels * s * s, width)
        self.fc2 = MaskedLinear(width, width)
        self.out_features = width
        self.input_shape = (in_channels, size, size)
        self.norm_specs: NormSpecs = {f"bn{i}": ("2d", channels) for i in range(1, 5)}

    def stages(self) -> list[Stage]:
        """One stage per layer: conv-BN-ReLU four times, then fc-ReLU twice."""
        def conv(i: int) -> Stage:
            name = f"conv{i}"

            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                return F.relu(norms[f"bn{i}"](getattr(self, name)(x, weights[name])))
            return Stage((name,), run)

        def fc(i: int) -> Stage:
            name = f"fc{i}"

            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                x = x.flatten(1) if i == 1 else x
                return F.relu(getattr(self, name)(x, weights[name]))
            return Stage((name,), run)

        return [conv(1), conv(2), conv(3), conv(4), fc(1), fc(2)]

    def forward(self, x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
        return run_stages(self.stages(), x, weights, norms)
