"""``cnnx.data``: datasets, the ``DataLoader`` and image ``transforms`` (torch.utils.data / torchvision
shaped). See docs/training.md for the data formats."""
from __future__ import annotations

from . import datasets, transforms
from .dataloader import DataLoader, default_collate
from .dataset import Dataset, Subset, TensorDataset, random_split

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate", "datasets",
           "transforms"]
