"""The boundary with third-party libraries: their failures on the user's files, settings or
machine (onnxruntime, safetensors, the ONNX exporter, MLflow, TensorBoard, a model factory,
an allocation) become one :class:`BoundaryError` that names the file, field or model and says
what to do, so that the command line ends them with exit status 2, not as a bug of kdistill.
"""

from __future__ import annotations

import contextlib
import errno
import re

from .files import WRITE_ADVICE

_ALLOCATION = re.compile(r"can't allocate memory|not enough memory|DefaultCPUAllocator|out of memory|"
                         r"bad_alloc|Cannot allocate memory", re.IGNORECASE)


class BoundaryError(ValueError):
    """A library kdistill calls refused the user's input, file or machine; the message names
    what and says what to do."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (libraries append pages of context)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def is_allocation_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine running out of memory (``MemoryError``, or torch's and
    onnxruntime's allocation failures, raised as ``RuntimeError``)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and bool(_ALLOCATION.search(str(exc))))


def library_error(where: str, exc: BaseException, message: str) -> Exception:
    """What to raise for a library's failure ``exc``: a ``MemoryError`` naming ``where`` when the
    machine ran out of memory, else a :class:`BoundaryError` saying ``message``."""
    if is_allocation_failure(exc):
        return MemoryError(f"{where}: {first_line(exc)}")
    return BoundaryError(message)


@contextlib.contextmanager
def translated(what: str, advice: str, catch: tuple = (Exception,), keep: tuple = ()):
    """Re-raise a library's failure inside the block as a :class:`BoundaryError`: ``"<what>:
    <the library's first line>; <advice>"``. kdistill's own ``BoundaryError`` and the ``keep``
    types pass through; an allocation failure becomes a ``MemoryError`` naming ``what``."""
    try:
        yield
    except (BoundaryError, *keep):
        raise
    except catch as exc:
        raise library_error(what, exc, f"{what}: {first_line(exc)}; {advice}") from exc


# ---------------------------------------------------------------------------------------------
# The command line's error boundary: which failures are the user's, and the one line it prints


_HINTS = {errno.ENOSPC: "free some disk space and run the command again (a run continues with --resume)",
          errno.EACCES: "check the permissions of that path", errno.EPERM: "check the permissions of that path",
          errno.EROFS: "the file system is read-only: choose another folder",
          errno.ENOENT: "check the path", errno.EISDIR: "give a file, not a folder"}


def explain(exc: BaseException) -> str:
    """One message for a user-caused failure: what happened, naming the file, field or model,
    and what to do."""
    import torch

    text = str(exc).strip()
    if isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError) \
            and is_allocation_failure(exc):
        exc, text = MemoryError(text), text.splitlines()[0][:200] if text else ""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return (f"out of GPU memory ({text.splitlines()[0][:200]}); lower train.batch_size, use precision bf16, or "
                f"use a smaller model")
    if isinstance(exc, MemoryError):
        return (f"out of memory{f' ({text[:200]})' if text else ''}; lower train.batch_size, use smaller images "
                f"(data.images.size) or fewer samples (data.idx.max_train), or free memory")
    hint = _HINTS.get(exc.errno) if isinstance(exc, OSError) else None
    if hint and hint not in text and WRITE_ADVICE not in text:  # a failed write already says what to do
        text = f"{text}; {hint}"
    return text or type(exc).__name__
