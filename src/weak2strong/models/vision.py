"""The lottery-ticket literature's image classifiers, by the names its papers use.

- `lenet-300-100`: fully connected 784-300-100-10 (Frankle & Carbin 2019, open_lth's
  `mnist_lenet_300_100`).
- `conv-2`, `conv-4`, `conv-6`: VGG-style 3×3 convolutions (64, 64 | 128, 128 | 256, 256,
  each pair followed by 2×2 max-pooling), then fully connected 256-256-classes (Frankle &
  Carbin's Figure 2; Simonyan & Zisserman 2014 in miniature).
- `vgg-16`: open_lth's `cifar_vgg_16`: thirteen 3×3 convolutions with batch norm, global
  average pooling, one linear output layer.
- `resnet-20`: open_lth's `cifar_resnet_20` (He et al. 2016's CIFAR ResNet): three stages
  of three basic blocks, widths 16, 32, 64, batch norm, 1×1 projection shortcuts.

Every network takes images [n, channels, height, width] of any size (the fully connected
layers are sized for the input), and names its output layer `output`, so a pruning rate
for the output layer is one pattern for all. Weights start from Glorot's Gaussian
(`xavier_normal`, Frankle & Carbin) or He's (`kaiming_normal`, open_lth's default for the
convolutional networks), biases from 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from weak2strong.errors import W2SError


class LeNet(nn.Module):
    def __init__(self, shape: tuple[int, int, int], classes: int, hidden: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = shape[0] * shape[1] * shape[2]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.features = nn.Sequential(nn.Flatten(), *layers)
        self.output = nn.Linear(width, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.output(self.features(images))
        return logits


class ConvNet(nn.Module):
    """Frankle & Carbin's Conv-2/4/6: pairs of 3×3 convolutions, each pair max-pooled."""

    def __init__(self, shape: tuple[int, int, int], classes: int, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        channels, height, width = shape
        for index, out in enumerate(widths):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
            channels = out
            if index % 2 == 1:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        self.convolutions = nn.Sequential(*layers)
        flat = channels * height * width
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU()
        )
        self.output = nn.Linear(256, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.output(self.dense(self.convolutions(images)))
        return logits


VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class VGG(nn.Module):
    """open_lth's CIFAR VGG: 3×3 convolutions with batch norm, average-pooled, one output."""

    def __init__(self, shape: tuple[int, int, int], classes: int, plan: tuple[int | str, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        channels = shape[0]
        for entry in plan:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            assert isinstance(entry, int)
            layers += [nn.Conv2d(channels, entry, 3, padding=1), nn.BatchNorm2d(entry), nn.ReLU()]
            channels = entry
        self.convolutions = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.output = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.output(self.convolutions(images))
        return logits


class BasicBlock(nn.Module):
    def __init__(self, channels: int, out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.bn1(self.conv1(x)))
        result: torch.Tensor = torch.relu(self.bn2(self.conv2(hidden)) + self.shortcut(x))
        return result


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): n basic blocks per stage, widths 16, 32, 64."""

    def __init__(self, shape: tuple[int, int, int], classes: int, blocks: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(shape[0], 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        stages: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.output = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.output(self.blocks(self.stem(images)))
        return logits


def _conv_net(shape: tuple[int, int, int], classes: int, depth: int) -> nn.Module:
    return ConvNet(shape, classes, (64, 64, 128, 128, 256, 256)[:depth])


@dataclass(frozen=True)
class Architecture:
    build: Callable[[tuple[int, int, int], int], nn.Module]
    init: str  # "xavier_normal" or "kaiming_normal", for every weight of a conv or linear
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "lenet-300-100": Architecture(
        lambda shape, classes: LeNet(shape, classes, (300, 100)),
        "xavier_normal",
        "fully connected 300-100 (Frankle & Carbin 2019)",
    ),
    **{
        f"conv-{depth}": Architecture(
            functools.partial(_conv_net, depth=depth),
            "xavier_normal",
            f"{depth} 3×3 convolutions, then fully connected 256-256 (Frankle & Carbin 2019)",
        )
        for depth in (2, 4, 6)
    },
    "vgg-16": Architecture(
        lambda shape, classes: VGG(shape, classes, VGG16_PLAN),
        "kaiming_normal",
        "13 convolutions with batch norm (open_lth cifar_vgg_16)",
    ),
    "resnet-20": Architecture(
        lambda shape, classes: ResNet(shape, classes, 3),
        "kaiming_normal",
        "3 stages of 3 basic blocks, widths 16-32-64 (open_lth cifar_resnet_20)",
    ),
}


def build_network(name: str, shape: tuple[int, int, int], classes: int, seed: int) -> nn.Module:
    """The named network for images of `shape`, its weights drawn from `seed`."""
    if name not in ARCHITECTURES:
        raise W2SError(f"unknown network '{name}' (known: {', '.join(ARCHITECTURES)})")
    architecture = ARCHITECTURES[name]
    torch.manual_seed(seed)
    network = architecture.build(shape, classes)
    initialise = getattr(nn.init, f"{architecture.init}_")
    for module in network.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            initialise(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return network
