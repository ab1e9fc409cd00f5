"""Teacher-output cache: in offline distillation the teacher never changes, so its logits for a
dataset are computed once, stored on disk, memory-mapped and read back by dataset index.

:class:`CachedTeacher` wraps any :class:`~kdistill.teachers.Teacher`. The loop calls
``for_dataset(ds)`` once per split; that builds (or opens) the cache file of ``ds`` and returns
a view whose ``logits(x, index)`` reads the stored rows ``index`` instead of running the
teacher. Everything else (every epoch, every student, every sweep trial, the validation and
test evaluation) reads the same file.

A cache entry is a folder named by a fingerprint of the teacher's weights and of the inputs
exactly as the teacher receives them (so a changed input transform changes it too). An entry
that does not match (another fingerprint, another number of rows or shape, values that fail
their checksum or are not finite, an unfinished write) is rebuilt, never used (see
:mod:`kdistill.teachers.entries`).

Augmentation contract: a dataset the loop augments (``Splits.augment`` on the train split, which
the engine passes on as ``for_dataset(ds, augmented=True)``, or an ``augment`` attribute on the
dataset) is served by the live teacher on the augmented batch.
``cache_augmented=True`` opts in to reading the teacher's outputs on the clean inputs instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data import batches
from ..data.fingerprint import dataset_fingerprint, hash_tensor
from ..files import staged
from .adapters import OnnxTeacher, SklearnTeacher, TorchTeacher
from .base import Teacher
from .entries import DTYPES, clear, verified, write_meta
from .fast import onnx_runner
from .wrap import as_teacher

log = logging.getLogger("kdistill")

ENV_VAR = "KDISTILL_CACHE_DIR"
DEFAULT_DIR = ".kdistill-cache"
_FORMAT = 2  # bump when the file layout changes, so old entries are rebuilt (2: checksums of the values)


def cache_dir(path=None) -> Path:
    """The cache folder: ``path`` if given, else ``$KDISTILL_CACHE_DIR``, else ``./.kdistill-cache``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIR)


def clear_cache(path=None) -> tuple[int, int]:
    """Delete every teacher-output cache entry in the cache folder.

    Only folders that are verifiably kdistill's entries are removed: named by a key that their
    own ``meta.json`` repeats, or unfinished builds of a process that has ended; anything else in
    the folder, and links, are left alone.

    Parameters
    ----------
    path : str or Path, optional
        The cache folder (default ``$KDISTILL_CACHE_DIR``, else ``./.kdistill-cache``).

    Returns
    -------
    entries : int
        Entries deleted.
    bytes : int
        Bytes freed.
    """
    return clear(cache_dir(path))


def teacher_fingerprint(teacher: Teacher) -> str:
    """Hash of a teacher's identity, from its content: a PyTorch (or ``transformers``) teacher's
    structure, parameters and buffers; a scikit-learn teacher's fitted state; an ONNX teacher's
    file bytes and chosen output.

    Other teachers must provide a ``fingerprint()`` method returning a string that changes
    whenever their outputs may change.
    """
    if hasattr(teacher, "fingerprint"):
        return str(teacher.fingerprint())
    if isinstance(teacher, TorchTeacher):
        return _torch_fingerprint(teacher)
    if isinstance(teacher, SklearnTeacher):
        return _sklearn_fingerprint(teacher)
    if isinstance(teacher, OnnxTeacher):
        h = hashlib.sha256(f"onnx\n{teacher.output}\n{teacher.output_name}\n{teacher._output}".encode())
        with open(teacher.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    raise TypeError(f"cannot fingerprint a {type(teacher).__name__} teacher for the cache; give it a "
                    f"fingerprint() method that returns a string changing whenever its outputs change")


def _torch_fingerprint(teacher: TorchTeacher) -> str:
    # The structure (repr lists parameter-free layers and their settings too) and the output
    # kind, besides the weights: two teachers with equal weights may still compute different logits.
    h = hashlib.sha256(f"{type(teacher.module).__qualname__}\n{teacher.module!r}\n{teacher.output}".encode())
    for name, t in teacher.module.state_dict().items():
        h.update(name.encode())
        hash_tensor(h, t)
    return h.hexdigest()


def _sklearn_fingerprint(teacher: SklearnTeacher) -> str:
    """The estimator's whole fitted state, serialized only to be hashed (never read back):
    equal for two fits that learned the same model, different after any change of it."""
    import pickle

    h = hashlib.sha256(f"sklearn\n{type(teacher.estimator).__qualname__}\n{teacher.classes}".encode())
    try:
        h.update(pickle.dumps(teacher.estimator, protocol=4))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(f"cannot fingerprint the scikit-learn teacher {type(teacher.estimator).__name__} for the "
                        f"cache ({exc}); give it a fingerprint() method") from exc
    return h.hexdigest()


def _check_options(dtype, top_k, batch_size) -> str:
    name = {torch.float16: "float16", torch.float32: "float32"}.get(dtype, dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None (dense) or an integer >= 1, got {top_k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return name


class CachedTeacher(Teacher):
    """A teacher whose outputs are computed once per dataset and read back from disk by index.

    Parameters
    ----------
    teacher : Teacher or nn.Module
        The teacher to cache; a module is wrapped with :func:`~kdistill.teachers.as_teacher`.
    cache_dir : str or Path, optional
        Folder of the cache entries; default ``$KDISTILL_CACHE_DIR`` or ``./.kdistill-cache``.
    dtype : {"float16", "float32"}
        Storage precision. float16 halves the file and rounds logits to ~3 significant digits.
    top_k : int, optional
        Store only each sample's ``top_k`` largest logits plus one fill value, for many classes.
        The view returns dense logits in which the dropped classes share the fill logit
        ``log(mean(exp(z_j)))`` over the dropped ``j``: at temperature 1 the softmax is then exact
        for the kept classes and the dropped classes share the remaining probability equally,
        so ``kd_loss`` is the KL to that distribution; at other temperatures the tail is an
        approximation (flattened). Methods see ordinary dense logits.
    batch_size : int
        Batch size of the one teacher pass that builds an entry (on CPU, 512 ran ~1.5x slower
        per sample than 128 for a CNN teacher: its activations no longer fit the caches).
    cache_augmented : bool
        Opt-in: also serve datasets that declare random augmentation (``augment`` attribute)
        from the cache of their clean inputs. By default they get the live teacher.
    """

    def __init__(self, teacher, cache_dir=None, dtype="float16", top_k: int | None = None, batch_size: int = 128,
                 cache_augmented: bool = False):
        self.dtype = _check_options(dtype, top_k, batch_size)
        self.teacher = as_teacher(teacher)
        self.cache_dir, self.top_k, self.batch_size = cache_dir, top_k, batch_size
        self.cache_augmented = bool(cache_augmented)
        self.num_classes, self.classes = self.teacher.num_classes, self.teacher.classes
        self.device = torch.device("cpu")
        self.entries: list[dict] = []  # what each dataset's entry holds and cost (see for_dataset)

    def to(self, device) -> CachedTeacher:
        self.device = torch.device(device)
        self.teacher.to(device)
        return self

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """Live teacher outputs: a batch that belongs to no cached dataset."""
        return self.teacher.logits(x, index)

    def live(self) -> Teacher:
        """The teacher itself: feature methods need its layers to run, which a cache cannot do."""
        return self.teacher

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> Teacher:
        """The view serving ``dataset`` from its cache entry, built on first use; the live
        teacher for a dataset whose batches are augmented (unless ``cache_augmented``)."""
        augmented = augmented or getattr(dataset, "augment", None) is not None
        if augmented and not self.cache_augmented:
            return self.teacher.for_dataset(dataset, augmented)
        key = hashlib.sha256(json.dumps({
            "format": _FORMAT, "teacher": teacher_fingerprint(self.teacher), "data": dataset_fingerprint(dataset),
            "dtype": self.dtype, "top_k": self.top_k}).encode()).hexdigest()[:32]
        entry = cache_dir(self.cache_dir) / key
        meta = verified(entry, key, len(dataset))
        seconds = None
        if meta is None:
            start = time.perf_counter()
            _build(self.teacher, dataset, entry, key, self)
            seconds = time.perf_counter() - start
            meta = verified(entry, key, len(dataset))
        if meta is None:
            raise OSError(f"the teacher cache entry {entry} failed its check right after it was written (see the "
                          f"warning above); the disk or the cache folder {entry.parent} may be faulty")
        self.entries.append(_stats(entry, meta, getattr(dataset, "k", 1), seconds))
        if seconds is not None:
            e = self.entries[-1]
            log.info("teacher cache: %d rows (%d samples x %d views) written to %s in %.1f s: %.1f MB, %d bytes "
                     "per sample and view", e["rows"], e["samples"], e["views"], entry, seconds, e["bytes"] / 1e6,
                     e["bytes_per_row"])
        return _CacheView(entry, meta, self.device)


def _stats(entry: Path, meta: dict, views: int, seconds: float | None) -> dict:
    """An entry's size: rows (samples x views), bytes on disk, bytes per row; build time if built."""
    size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
    return {"entry": entry.name, "rows": meta["rows"], "views": views, "samples": meta["rows"] // views,
            "bytes": size, "bytes_per_row": round(size / max(meta["rows"], 1)), "build_seconds": seconds}


def _build(teacher: Teacher, dataset: Dataset, entry: Path, key: str, opts: CachedTeacher) -> None:
    """One batched teacher pass over ``dataset`` into a new entry, written atomically: into a
    temporary folder renamed at the end, so an interrupted build never leaves an entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        with staged(entry, folder=True) as tmp:
            write_meta(tmp, key, _write_parts(teacher.for_dataset(dataset), dataset, tmp, opts))
    except OSError:
        if not entry.exists():
            raise
        # Another process finished the same entry first; it is identical to ours.


def _write_parts(source: Teacher, dataset: Dataset, folder: Path, opts: CachedTeacher) -> dict:
    n, files, run = len(dataset), {}, None
    with torch.inference_mode():
        for x, _, index in batches(dataset, opts.batch_size):
            x = x.to(opts.device)
            if not files and opts.dtype == "float16":  # the fastest engine (see teachers.fast); a float32
                run = onnx_runner(source, x)  # cache keeps PyTorch's outputs bit for bit
            z = (run(x) if run is not None else source.logits(x, index)).float().cpu()
            _check_range(z, opts.dtype)
            parts = _encode(z, opts.top_k)
            if not files:
                files = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+",
                                                         dtype=_np_dtype(name, opts.dtype), shape=(n, part.shape[1]))
                         for name, part in parts.items()}
            for name, part in parts.items():
                files[name][index.numpy()] = part.numpy()
    for mm in files.values():
        mm.flush()
    return {"rows": n, "classes": z.shape[1], "dtype": opts.dtype, "top_k": opts.top_k, "parts": sorted(files)}


def _check_range(z: Tensor, dtype: str) -> None:
    if not torch.isfinite(z).all():
        raise ValueError("the teacher returned NaN or inf logits; they cannot be cached (check the teacher)")
    if dtype == "float16" and z.abs().max() > np.finfo(np.float16).max:
        raise ValueError(f"the teacher's logits overflow float16 (largest |logit| {z.abs().max():.4g} > 65504); "
                         f"use dtype='float32'")


def _np_dtype(part: str, dtype: str):
    return np.int32 if part == "indices" else DTYPES[dtype]


def _encode(z: Tensor, top_k) -> dict[str, Tensor]:
    """Dense logits, or the top-k values and indices with the fill logit as an extra column."""
    if top_k is None:
        return {"values": z}
    k = z.shape[1]
    if top_k >= k:
        raise ValueError(f"top_k must be smaller than the number of classes ({k}), got {top_k}; "
                         f"use top_k=None to store dense logits")
    values, indices = z.topk(top_k, dim=1)
    rest = z.scatter(1, indices, float("-inf"))
    fill = torch.logsumexp(rest, dim=1, keepdim=True) - np.log(k - top_k)
    return {"values": torch.cat([values, fill], 1), "indices": indices}


class _CacheView(Teacher):
    """Reads one dataset's cached teacher outputs by index from memory-mapped files."""

    stored = True

    def __init__(self, entry: Path, meta: dict, device):
        self.entry, self.meta, self.device = entry, meta, device
        # Copy-on-write maps ("c") are writable arrays, so torch can index them directly (no
        # per-batch numpy round trip); pages are still read from the file on demand, never written.
        self.parts = {name: torch.from_numpy(np.load(entry / f"{name}.npy", mmap_mode="c"))
                      for name in meta["parts"]}
        self.rows = meta["rows"]

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        if index is None:
            raise ValueError("a cached teacher reads outputs by dataset index, but index=None was given")
        rows = index.cpu()
        if len(rows):
            low, high = (int(v) for v in torch.aminmax(rows))
            if low < 0 or high >= self.rows:
                raise IndexError(f"dataset index out of range for the teacher cache {self.entry} "
                                 f"({self.rows} rows): got values from {low} to {high}")
        values = self.parts["values"][rows].to(self.device, torch.float32)
        if "indices" not in self.parts:
            return values
        indices = self.parts["indices"][rows].to(self.device, torch.long)
        dense = values[:, -1:].expand(len(rows), self.meta["classes"]).clone()
        return dense.scatter_(1, indices, values[:, :-1])
