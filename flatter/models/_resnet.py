"""ResNet-18 for CIFAR-10 with GroupNorm (flax nnx), as in Damian et al.'s public code."""

from __future__ import annotations

import jax
from flax import nnx

GROUP_SIZE = 32
"""Channels per GroupNorm group: normalization within one example, so full-batch GD is well defined."""


class BasicBlock(nnx.Module):
    """Two 3x3 convolutions with GroupNorm, and a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, padding=1, use_bias=False, rngs=rngs)
        self.norm1 = nnx.GroupNorm(cout, num_groups=None, group_size=GROUP_SIZE, rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), strides=1, padding=1, use_bias=False, rngs=rngs)
        self.norm2 = nnx.GroupNorm(cout, num_groups=None, group_size=GROUP_SIZE, rngs=rngs)
        self.project = stride != 1 or cin != cout
        if self.project:
            self.short_conv = nnx.Conv(cin, cout, (1, 1), strides=stride, use_bias=False, rngs=rngs)
            self.short_norm = nnx.GroupNorm(cout, num_groups=None, group_size=GROUP_SIZE, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = jax.nn.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shortcut = self.short_norm(self.short_conv(x)) if self.project else x
        return jax.nn.relu(out + shortcut)


class ResNet18(nnx.Module):
    r"""The CIFAR variant of ResNet-18: a 3x3 stride-1 stem, no max-pool, stages of 64-128-256-512 channels.

    Two :class:`BasicBlock` per stage (strides 1, 2, 2, 2), global average pooling and a linear
    head. GroupNorm (32 channels per group) replaces BatchNorm. With 10 classes it has 11,173,962
    parameters, the published count of this variant (He et al.'s ResNet-18 adapted to 32 x 32 inputs;
    GroupNorm has the same per-channel scale and bias as BatchNorm). Inputs are NHWC. ``width`` (64 in
    the paper) sets the stem's channels, the stages have width x (1, 2, 4, 8); it must be a multiple of
    the group size 32.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, width: int = 64, rngs: nnx.Rngs):
        if isinstance(width, bool) or not isinstance(width, int) or width < GROUP_SIZE or width % GROUP_SIZE:
            raise ValueError(
                f"width must be a positive multiple of the GroupNorm group size {GROUP_SIZE}, got {width!r}"
            )
        self.stem = nnx.Conv(in_channels, width, (3, 3), strides=1, padding=1, use_bias=False, rngs=rngs)
        self.stem_norm = nnx.GroupNorm(width, num_groups=None, group_size=GROUP_SIZE, rngs=rngs)
        blocks, cin = [], width
        for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            blocks += [BasicBlock(cin, cout, stride, rngs=rngs), BasicBlock(cout, cout, 1, rngs=rngs)]
            cin = cout
        self.blocks = nnx.List(blocks)
        self.head = nnx.Linear(8 * width, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(axis=(1, 2)))
