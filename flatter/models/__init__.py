"""Network models in flax nnx, for ``Problem.from_flax``."""

from ._mlp import MLP as MLP
from ._resnet import BasicBlock as BasicBlock, ResNet18 as ResNet18

__all__ = [
    "MLP",
    "BasicBlock",
    "ResNet18",
]
