"""ResNet trunks for MSGN: torchvision's ResNets and a tiny one for CPU training.

Every backbone has torchvision's attribute layout (``conv1``, ``bn1``, ``relu``, ``maxpool``,
``layer1`` to ``layer4``), so torchvision ImageNet state dicts map onto it by name.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torchvision.models import resnet18, resnet34, resnet50, resnet101, resnext101_32x8d
from torchvision.models.resnet import BasicBlock, Bottleneck

__all__ = [
    "TinyResNet",
    "build_backbone",
    "remove_stride",
    "stage_out_channels",
]

_TORCHVISION: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnext101_32x8d": resnext101_32x8d,
}


class TinyResNet(nn.Module):
    """A narrow ResNet of torchvision ``BasicBlock``s: widths 32-64-128-256, one block a stage.

    Stem: 7x7 conv stride 2 (32 channels), BN, ReLU, 3x3 max-pool stride 2; stages 2 to 4 start
    with stride 2, as in torchvision. ``forward`` maps ``[B, 3, H, W]`` to ``[B, 256, H/32,
    W/32]`` (no pooling, no classifier). About 1.2 M parameters.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = widths[0]
        stages = []
        for index, planes in enumerate(widths):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride, downsample)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def build_backbone(name: str) -> nn.Module:
    """A randomly initialised trunk with torchvision's attribute names.

    ``name`` is one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``,
    ``resnext101_32x8d`` (torchvision models
    built with ``weights=None``; their ``fc`` is unused) or ``tiny`` (:class:`TinyResNet`).
    """
    if name == "tiny":
        return TinyResNet()
    if name not in _TORCHVISION:
        raise ValueError(f"backbone must be one of {(*_TORCHVISION, 'tiny')}, got {name!r}")
    return _TORCHVISION[name](weights=None)


def remove_stride(stage: nn.Sequential) -> nn.Sequential:
    """Set every strided conv of the stage's first block (3x3 and downsample 1x1) to stride 1.

    In place; returns ``stage``. The stage then keeps its input's spatial size.
    """
    block = stage[0]
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
    if hasattr(block, "stride"):
        block.stride = 1
    return stage


def stage_out_channels(stage: nn.Sequential) -> int:
    """Output channels of a stage of ``BasicBlock``s or ``Bottleneck``s."""
    block = stage[-1]
    if isinstance(block, Bottleneck):
        return block.bn3.num_features
    if isinstance(block, BasicBlock):
        return block.bn2.num_features
    raise TypeError(f"unsupported block type {type(block).__name__}")
