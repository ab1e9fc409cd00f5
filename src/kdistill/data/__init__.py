"""Data: splits whose items are ``(x, y, index)``, batching, readers (built-in datasets, image
folders, IDX files, tables), sources as experiment files name them, normalization and
augmentation.

Python users read data exactly as ``kdistill run`` does with :func:`load_images`,
:func:`load_idx`, :func:`load_table` and :func:`load_dataset`, or split their own arrays with
:func:`split_arrays`.
"""

from .augment import Augment
from .batching import batches, epoch_plan, fetch, global_batches
from .builtin import BUILTIN, load_dataset
from .idx import idx_images, idx_inputs, read_idx
from .images import ImageFolder
from .normalize import Normalize
from .sources import (
                      Source,
                      class_summary,
                      load_idx,
                      load_images,
                      load_table,
                      read_source,
                      split_source,
                      unlabeled_inputs,
)
from .splits import ArrayDataset, Splits, check_labels, combine, split_arrays, split_parts, unlabeled_set
from .tables import read_table, table_encoder
from .views import ViewDataset

__all__ = ["BUILTIN", "ArrayDataset", "Augment", "ImageFolder", "Normalize", "Source", "Splits", "ViewDataset",
           "batches", "check_labels", "class_summary", "combine", "epoch_plan", "fetch", "global_batches", "idx_images",
           "idx_inputs",
           "load_dataset", "load_idx", "load_images", "load_table", "read_idx", "read_source", "read_table",
           "split_arrays", "split_parts", "split_source", "table_encoder", "unlabeled_inputs", "unlabeled_set"]
