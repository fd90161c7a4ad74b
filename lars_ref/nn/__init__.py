"""Layers and containers with named parameters, gradients and buffers.

``Module`` (in :mod:`lars_ref.nn.module`) is the contract of
docs/architecture.md, section "Layers"; the layers wrap the op pairs of
:mod:`lars_ref.functional`; the containers name their children so that every
parameter has a stable dotted name (``conv1.w``, ``layer1.0.bn1.gamma``).

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from lars_ref.nn.containers import (ChannelsLastNetwork, PadShortcut, ResidualBlock,
                                    Sequential, skip_input_grad)
from lars_ref.nn.layers import Conv2d, Dropout, Linear, ReLU, gaussian, he_normal_std
from lars_ref.nn.module import Module, StateDictError, join_name
from lars_ref.nn.normalization import LRN, BatchNorm
from lars_ref.nn.pooling import AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d

__all__ = [
    "Module", "StateDictError", "join_name",
    "Conv2d", "Linear", "ReLU", "Dropout", "MaxPool2d", "AvgPool2d", "GlobalAvgPool",
    "Flatten", "BatchNorm", "LRN", "Sequential", "ChannelsLastNetwork", "ResidualBlock",
    "PadShortcut", "skip_input_grad",
    "gaussian", "he_normal_std",
]
