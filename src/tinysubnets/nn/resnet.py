"""ResNet-18 of masked convolutions with per-task BatchNorm: the reduced version (nf = 20,
5-datasets, as in GPM/WSN's code) and the standard one (nf = 64, ImageNet-100)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tinysubnets.nn.convnets import NormSpecs
from tinysubnets.nn.masked import MaskedConv2d
from tinysubnets.nn.stages import Norms, Stage, run_stages


class BasicBlock(nn.Module):
    """Two 3×3 convs and a shortcut (a 1×1 conv where the shape changes), each conv with BN."""

    def __init__(self, prefix: str, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.conv1 = MaskedConv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = MaskedConv2d(c_out, c_out, 3, padding=1)
        self.shortcut = MaskedConv2d(c_in, c_out, 1, stride=stride) if (
            stride != 1 or c_in != c_out) else None
        self.norm_specs: NormSpecs = {
            f"{prefix}_bn1": ("2d", c_out), f"{prefix}_bn2": ("2d", c_out),
        }
        if self.shortcut is not None:
            self.norm_specs[f"{prefix}_bn_sc"] = ("2d", c_out)

    def forward(self, x: Tensor, weights: dict[str, Tensor], norms: dict[str, nn.Module],
                names: dict[str, str]) -> Tensor:
        p = self.prefix
        out = F.relu(norms[f"{p}_bn1"](self.conv1(x, weights[names["conv1"]])))
        out = norms[f"{p}_bn2"](self.conv2(out, weights[names["conv2"]]))
        if self.shortcut is not None:
            x = norms[f"{p}_bn_sc"](self.shortcut(x, weights[names["shortcut"]]))
        return F.relu(out + x)


class ResNet18(nn.Module):
    """ResNet-18 with masked, bias-free convolutions.

    ``stem="cifar"``: a 3×3 stride-1 first conv and a final 2×2 average pool (32×32 inputs, as in
    GPM's reduced ResNet-18: nf=20 gives 640 features); ``stem="imagenet"``: 7×7 stride 2 and a
    max pool, global average pool at the end.
    """

    def __init__(self, nf: int = 20, in_channels: int = 3, size: int = 32,
                 stem: str = "cifar") -> None:
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"unknown ResNet stem {stem!r}: 'cifar' or 'imagenet'")
        self.stem = stem
        if stem == "cifar":
            self.conv1 = MaskedConv2d(in_channels, nf, 3, padding=1)
        else:
            self.conv1 = MaskedConv2d(in_channels, nf, 7, stride=2, padding=3)
        self.norm_specs: NormSpecs = {"bn1": ("2d", nf)}
        self.blocks = nn.ModuleList()
        c = nf
        for stage, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
            for i in range(2):
                block = BasicBlock(f"layer{stage}_{i}", c, nf * mult, stride if i == 0 else 1)
                self.blocks.append(block)
                self.norm_specs.update(block.norm_specs)
                c = nf * mult
        # Masked layers are keyed by module name ("blocks.0.conv1", ...): precompute per block.
        self._names = [
            {part: f"blocks.{i}.{part}" for part in ("conv1", "conv2", "shortcut")}
            for i in range(len(self.blocks))
        ]
        final = size // 8 // 2 if stem == "cifar" else 1
        self.out_features = c * final * final
        self.input_shape = (in_channels, size, size)

    def stages(self) -> list[Stage]:
        """The stem, each block, then the final pooling (no layer of its own)."""
        def stem(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
            x = F.relu(norms["bn1"](self.conv1(x, weights["conv1"])))
            if self.stem == "imagenet":
                x = F.max_pool2d(x, 3, stride=2, padding=1)
            return x

        def block(b: BasicBlock, names: dict[str, str]) -> Stage:
            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                return b(x, weights, norms, names)
            parts = ("conv1", "conv2") + (("shortcut",) if b.shortcut is not None else ())
            return Stage(tuple(names[p] for p in parts), run)

        def pool(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
            if self.stem == "cifar":
                x = F.avg_pool2d(x, 2)
            else:
                x = F.adaptive_avg_pool2d(x, 1)
            return x.flatten(1)

        blocks = [block(b, names) for b, names in zip(self.blocks, self._names, strict=True)]
        return [Stage(("conv1",), stem), *blocks, Stage((), pool)]

    def forward(self, x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
        return run_stages(self.stages(), x, weights, norms)
