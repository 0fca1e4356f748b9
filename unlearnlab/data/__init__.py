"""Datasets: in-memory splits (``dataset``), the registry of built-in and user datasets
(``registry``, ``builtin``) and seeded row selections (``sampling``)."""

from . import builtin  # noqa: F401  (registers the built-in datasets)
from .builtin import COLORS, DIGIT_CLASSES, FASHION_CLASSES
from .dataset import Dataset, Split, data_root, from_tensors, tensor_digest
from .registry import (
    DatasetSpec,
    dataset_spec,
    default_arch,
    list_datasets,
    load_dataset,
    register_dataset,
    register_tensors,
)
from .sampling import oversample, stratified_rows, undersample

__all__ = ["COLORS", "DIGIT_CLASSES", "FASHION_CLASSES", "Dataset", "DatasetSpec", "Split",
           "data_root", "dataset_spec", "default_arch", "from_tensors", "list_datasets",
           "load_dataset", "oversample", "register_dataset", "register_tensors",
           "stratified_rows", "tensor_digest", "undersample"]
