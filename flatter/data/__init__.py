"""Real data sets, read from the files users get them as (nothing is downloaded at run time)."""

from ._cifar10 import load_cifar10 as load_cifar10
from ._dataset import ImageDataset as ImageDataset, stratified_subset as stratified_subset
from ._fashion_mnist import DEBIAN_FOLDER as DEBIAN_FOLDER, load_fashion_mnist as load_fashion_mnist
from ._idx import read_idx as read_idx

__all__ = [
    "load_cifar10",
    "ImageDataset",
    "stratified_subset",
    "DEBIAN_FOLDER",
    "load_fashion_mnist",
    "read_idx",
]
