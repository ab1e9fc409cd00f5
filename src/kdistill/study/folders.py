"""Run folders: chosen so that nothing is overwritten, marked ``INCOMPLETE`` while a run is
going, and where a run caches its teacher's outputs."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ..engine import Runtime
from ..teachers.cache import ENV_VAR

log = logging.getLogger("kdistill")

INCOMPLETE = "INCOMPLETE"
CACHE = "teacher-cache"  # inside the run folder: shared by the students (and sweep trials) of a run


def free_dir(path) -> tuple[Path, bool]:
    """``path`` if it does not exist or is empty, else the first free ``path-2``, ``path-3``...
    Returns the folder and whether it differs from the one asked for."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return path, False
    n = 2
    while Path(f"{path}-{n}").exists():
        n += 1
    return Path(f"{path}-{n}"), True


def open_run_dir(asked, resume: bool = False, runtime: Runtime | None = None) -> Path:
    """The folder a run writes to, created and marked ``INCOMPLETE`` until the run finishes.

    Without ``resume`` an existing non-empty folder is never reused: the next free ``asked-N``
    is used and named in a warning. With ``resume`` ``asked`` must be an interrupted run. Under
    torchrun, rank 0 decides and every rank gets the same folder. The folder is proven writable
    before any data is read.
    """
    rt = runtime or Runtime.current()
    folder = None
    if rt.is_main:
        folder = _choose_run_dir(Path(asked), resume)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / INCOMPLETE).write_text(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}; this run has not "
                                             f"finished: continue it with --resume\n")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write the run folder {folder}: {exc.strerror or exc}; choose a "
                                     f"writable --out") from exc
    return rt.broadcast(folder)


def _choose_run_dir(asked: Path, resume: bool) -> Path:
    if resume:
        if (asked / INCOMPLETE).exists():
            log.info("resuming the interrupted run in %s", asked)
            return asked
        state = "holds a finished run" if (asked / "results.json").exists() else "holds no interrupted run"
        raise FileExistsError(f"cannot resume {asked}: it {state}; --resume continues a folder marked "
                              f"{INCOMPLETE} by an interrupted run")
    folder, moved = free_dir(asked)
    if moved:
        what = ("an interrupted run (continue it with --resume)" if (asked / INCOMPLETE).exists()
                else "a run")
        log.warning("%s already holds %s; writing to %s instead", asked, what, folder)
    return folder


def teacher_cache_dir(out: Path, cache_dir=None) -> Path:
    """Where a run caches its teacher's outputs: ``cache_dir``, else ``$KDISTILL_CACHE_DIR``
    (both kept, so a later run with the same teacher and data reuses them), else the run's own
    ``RUN_DIR/teacher-cache``, shared by its students and trials and removed when it finishes."""
    chosen = cache_dir or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else Path(out) / CACHE


def finish_run_dir(folder: Path) -> None:
    """Mark the run finished: checkpoints and cached teacher outputs are no longer needed once
    the weights are written."""
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / CACHE, ignore_errors=True)
    (folder / INCOMPLETE).unlink(missing_ok=True)
