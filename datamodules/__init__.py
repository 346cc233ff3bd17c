"""Datamodules for semi-supervised learning: splits, views and datasets."""
from .array import ArrayDataModule
from .base import Pool, SSLDataModule
from .cifar import CIFAR10DataModule, CIFAR100DataModule
from .folder import ImageFolderDataModule, ImageNetDataModule
from .info import DatasetInfo
from .splits import Split, sample_labeled_indices
from .stl10 import STL10DataModule
from .svhn import SVHNDataModule

__all__ = [
    "ArrayDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DatasetInfo",
    "ImageFolderDataModule",
    "ImageNetDataModule",
    "Pool",
    "SSLDataModule",
    "STL10DataModule",
    "SVHNDataModule",
    "Split",
    "sample_labeled_indices",
]
