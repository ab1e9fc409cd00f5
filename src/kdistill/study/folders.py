"""Run folders: chosen so that nothing is overwritten, claimed by one process at a time, marked
``INCOMPLETE`` while a run is going, resumed only with the experiment they started with, and
where a run caches its teacher's outputs.

A run claims its folder with an exclusive lock on ``RUN_DIR/.kdistill.lock`` (``fcntl.flock``)
held until it ends: a second run or ``--resume`` of the same folder is refused while the first
is alive, and the kernel drops the lock of a killed process (even ``kill -9``), so a stale
lock never blocks. Where ``fcntl`` is missing (Windows) folders are not locked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..engine import Runtime
from ..files import atomic_write, make_dir
from ..teachers.cache import ENV_VAR

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

log = logging.getLogger("kdistill")

INCOMPLETE = "INCOMPLETE"
CACHE = "teacher-cache"  # inside the run folder: shared by the students (and sweep trials) of a run
LOCK = ".kdistill.lock"
CONFIG = "config.json"
_HELD: dict[Path, int] = {}  # run folders this process has claimed -> the locked file descriptor
_MADE: set[Path] = set()  # run folders this process created (removed again if their run never starts)


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
    """The folder a run writes to, claimed by this process and marked ``INCOMPLETE`` until the
    run finishes (:func:`finish_run_dir`) or gives up (:func:`release_run_dir`).

    Without ``resume`` an existing non-empty folder is never reused: the next free ``asked-N``
    is used and named in a warning. With ``resume`` ``asked`` must be an interrupted run that no
    other process is running. Under torchrun, rank 0 decides and every rank gets the same
    folder. The folder is proven writable before any data is read.
    """
    rt = runtime or Runtime.current()
    folder = None
    if rt.is_main:
        folder = _resumed(Path(asked)) if resume else _fresh(Path(asked))
        try:
            atomic_write(folder / INCOMPLETE, f"started {time.strftime('%Y-%m-%d %H:%M:%S')}; this run has not "
                                              f"finished: continue it with --resume\n")
        except OSError as exc:
            release_run_dir(folder)
            raise OSError(exc.errno, f"cannot write the run folder {folder}: {exc.strerror or exc}; choose a "
                                     f"writable --out") from exc
    return rt.broadcast(folder)


def _fresh(asked: Path) -> Path:
    """The first of ``asked``, ``asked-2``, ``asked-3``... that is missing or empty and that this
    process can claim before any other does."""
    n = 1
    while True:
        folder = asked if n == 1 else Path(f"{asked}-{n}")
        n += 1
        if folder in _HELD or (folder.exists() and not _unused(folder)):
            continue
        if not folder.exists():
            _MADE.add(folder)
        if _claim(folder) and _unused(folder):
            break
        release_run_dir(folder)  # another process claimed it first
    if folder != asked:
        what = ("an interrupted run (continue it with --resume)" if (asked / INCOMPLETE).exists()
                else "a run")
        log.warning("%s already holds %s; writing to %s instead", asked, what, folder)
    return folder


def _unused(folder: Path) -> bool:
    """A folder holding nothing but, perhaps, a lock file (of a run that stopped before it began)."""
    return folder.is_dir() and all(p.name == LOCK for p in folder.iterdir())


def _resumed(asked: Path) -> Path:
    """``asked``, claimed, when it holds an interrupted run that nobody else is running."""
    if asked.is_dir() and not _claim(asked):
        raise FileExistsError(f"cannot resume {asked}: another kdistill process{_holder(asked)} is running in it; "
                              f"wait for it to finish, or stop it first")
    if (asked / INCOMPLETE).exists():
        log.info("resuming the interrupted run in %s", asked)
        return asked
    if asked in _HELD:  # the lock file is ours: no run is going there to protect
        (asked / LOCK).unlink(missing_ok=True)
        release_run_dir(asked)
    state = "holds a finished run" if (asked / "results.json").exists() else "holds no interrupted run"
    raise FileExistsError(f"cannot resume {asked}: it {state}; --resume continues a folder marked "
                          f"{INCOMPLETE} by an interrupted run")


def _claim(folder: Path) -> bool:
    """Create ``folder`` and take its lock without waiting; ``False`` when another process holds it."""
    if folder in _HELD:
        return True
    try:
        make_dir(folder)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the run folder {folder}: {exc.strerror or exc}; choose a "
                                 f"writable --out") from exc
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[folder] = fd
    return True


def _holder(folder: Path) -> str:
    try:
        return f" (pid {int((folder / LOCK).read_text().strip())})"
    except (OSError, ValueError):
        return ""


def release_run_dir(folder: Path) -> None:
    """Give up this process's claim on ``folder`` (nothing if it holds none)."""
    fd = _HELD.pop(Path(folder), None)
    if fd is not None:
        os.close(fd)


def check_same_experiment(folder: Path, config: dict) -> None:
    """Refuse to resume ``folder`` with an experiment other than the one it started with
    (its ``config.json``), naming every field that differs."""
    path = Path(folder) / CONFIG
    try:
        started = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot resume {folder}: its {CONFIG} (the experiment the run started with) cannot be "
                         f"read ({exc}), so the settings cannot be checked; start a new run without --resume") from exc
    now = json.loads(json.dumps(config, default=str))
    changes = differences(started, now)
    if changes:
        raise ValueError(f"cannot resume {folder}: the experiment differs from the one the run started with "
                         f"({path}): {'; '.join(changes[:10])}; resume with the same experiment file and --set "
                         f"values, or start a new run without --resume")


def differences(old, new, where: str = "") -> list[str]:
    """Every difference between two JSON values, as ``"dotted.path: A when the run started, B now"``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new), key=str)
                for d in differences(old.get(key, "(not set)"), new.get(key, "(not set)"),
                                     f"{where}.{key}" if where else str(key))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}.{i}")]
    if old == new:
        return []
    return [f"{where or '(top level)'}: {json.dumps(old)[:80]} when the run started, {json.dumps(new)[:80]} now"]


def teacher_cache_dir(out: Path, cache_dir=None) -> Path:
    """Where a run caches its teacher's outputs: ``cache_dir``, else ``$KDISTILL_CACHE_DIR``
    (both kept, so a later run with the same teacher and data reuses them), else the run's own
    ``RUN_DIR/teacher-cache``, shared by its students and trials and removed when it finishes
    (created here, and refused if it is a link out of the run folder)."""
    chosen = cache_dir or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else make_dir(Path(out) / CACHE, inside=out)


def check_cache_dir(cache_dir=None) -> None:
    """A kept cache folder (``cache_dir``, else ``$KDISTILL_CACHE_DIR``) is made and written once
    before anything trains, so that a read-only one is refused by its flag, not after the
    teacher trained by a temporary file's name."""
    chosen = cache_dir or os.environ.get(ENV_VAR)
    if not chosen:
        return
    flag = f"--cache-dir {str(chosen)!r} (cache_dir)" if cache_dir else f"${ENV_VAR} {str(chosen)!r}"
    try:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kdistill-probe-", dir=chosen)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{flag}: the teacher cache cannot be written there ({exc.strerror or exc}); choose a "
                         f"folder you can write to") from exc


def abandon_run_dir(folder: Path) -> None:
    """Undo :func:`open_run_dir` for a new run that failed before it started training: its
    marker and lock go, and the folder too when this process created it and it is empty."""
    for name in (INCOMPLETE, LOCK):
        (folder / name).unlink(missing_ok=True)
    release_run_dir(folder)
    if folder in _MADE and not any(folder.iterdir()):
        folder.rmdir()
    _MADE.discard(folder)


def finish_run_dir(folder: Path) -> None:
    """Mark the run finished and give up the folder: checkpoints and cached teacher outputs are
    no longer needed once the weights are written."""
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / CACHE, ignore_errors=True)
    (folder / INCOMPLETE).unlink(missing_ok=True)
    (folder / LOCK).unlink(missing_ok=True)
    release_run_dir(folder)
