"""Teacher-cache entries on disk: how one is recognised, checked before use, and cleared.

An entry is a real folder named by its key (32 hexadecimal digits) holding ``meta.json`` and
one ``.npy`` file per part (``values``, and ``indices`` with ``top_k``). ``meta.json`` repeats
the key and records a SHA-256 checksum of each part's values, so an entry is used only when
its name, its metadata, the shapes and types of its arrays and their checksums all agree and
its values are finite. Anything else is rebuilt with a warning, never used. An unfinished
build is a folder ``.<key>.<pid>.<random>.tmp`` (see :func:`kdistill.files.staged`).

Clearing the cache deletes only folders that pass :func:`is_entry`, so a mistaken cache path
never deletes files kdistill did not make.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tokenize
from pathlib import Path

import numpy as np

log = logging.getLogger("kdistill")

META = "meta.json"
DTYPES = {"float16": np.float16, "float32": np.float32}
KEY = re.compile(r"[0-9a-f]{32}")
UNFINISHED = re.compile(r"\.([0-9a-f]{32})\.(\d+)\.[0-9a-f]+\.tmp")
_CHUNK = 1 << 24  # bytes hashed at a time: checking an entry never reads it into memory whole


def is_entry(folder: Path) -> bool:
    """Whether ``folder`` is verifiably a kdistill cache entry (its ``meta.json`` names the key
    it is named by) or an unfinished build of one by a process that no longer runs. Links are
    never entries."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    unfinished = UNFINISHED.fullmatch(folder.name)
    if unfinished:
        return not _running(int(unfinished.group(2)))
    if not KEY.fullmatch(folder.name):
        return False
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("key") == folder.name


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover: this process is not building it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def clear(root: Path) -> tuple[int, int]:
    """Delete the entries in ``root`` (see :func:`is_entry`); returns their number and bytes."""
    if not root.is_dir():
        return 0, 0
    entries, freed = 0, 0
    for folder in sorted(root.iterdir()):
        if is_entry(folder):
            freed += sum(f.lstat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(folder)
            entries += 1
    return entries, freed


def checksum(array: np.ndarray) -> str:
    """SHA-256 of an array's values in row-major order (read a block of rows at a time)."""
    h = hashlib.sha256()
    rows = max(1, _CHUNK // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        h.update(np.ascontiguousarray(array[start:start + rows]).data)
    return h.hexdigest()


def write_meta(folder: Path, key: str, meta: dict) -> None:
    """Write ``meta.json`` of a finished build, with the checksum of every part."""
    sums = {part: checksum(np.load(folder / f"{part}.npy", mmap_mode="r")) for part in meta["parts"]}
    (folder / META).write_text(json.dumps({"key": key, **meta, "checksums": sums}))


def verified(entry: Path, key: str, rows: int) -> dict | None:
    """The entry's metadata if it is whole and matches (see the module's docstring); ``None``
    when there is none. A damaged or mismatched entry is deleted with a warning, so that it is
    rebuilt.

    Raises
    ------
    OSError
        If a symbolic link stands at the entry's name: it is neither followed nor removed.
    """
    if entry.is_symlink():
        raise OSError(f"teacher cache entry {entry} is a symbolic link (to {os.readlink(entry)}); kdistill neither "
                      f"follows nor removes it: delete it yourself or choose another cache folder")
    if not entry.exists():
        return None
    try:
        meta = json.loads((entry / META).read_text())
        problem = _problem(entry, meta, key, rows)
    except (OSError, EOFError, ValueError, KeyError, TypeError, SyntaxError, tokenize.TokenError) as exc:
        # whatever a damaged file makes json or numpy raise (a header's parse error depends on Python's version)
        problem = f"unreadable: {type(exc).__name__}: {exc}"[:300]
    if problem is None:
        return meta
    log.warning("teacher cache %s is stale or damaged (%s); rebuilding it", entry, problem)
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()
    return None


def _problem(entry: Path, meta: dict, key: str, rows: int) -> str | None:
    """What is wrong with an entry, or ``None``."""
    if meta["key"] != key:
        return f"its metadata names the key {str(meta['key'])[:40]!r}"
    if meta["rows"] != rows:
        return f"it holds {meta['rows']} rows for a dataset of {rows}"
    top_k = meta["top_k"]
    expected = {"values": (rows, meta["classes"] if top_k is None else top_k + 1, DTYPES[meta["dtype"]])}
    if top_k is not None:
        expected["indices"] = (rows, top_k, np.int32)
    if sorted(meta["parts"]) != sorted(expected) or sorted(meta["checksums"]) != sorted(expected):
        return f"it holds the parts {meta['parts']}, not {sorted(expected)}"
    for part, (n, width, dtype) in expected.items():
        array = np.load(entry / f"{part}.npy", mmap_mode="r")
        if array.shape != (n, width) or array.dtype != dtype:
            return (f"{part}.npy holds {array.dtype} of shape {array.shape}, not {np.dtype(dtype)} of shape "
                    f"{(n, width)}")
        if checksum(array) != meta["checksums"][part]:
            return f"the checksum of {part}.npy does not match its metadata (the values were changed or damaged)"
        if part == "values" and not all(np.isfinite(array[i:i + 65536]).all() for i in range(0, n, 65536)):
            return "values.npy holds NaN or inf"
    return None
