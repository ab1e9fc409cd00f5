"""Touching the file system safely: every writer and reader of kdistill goes through here.

- :func:`atomic_write` writes a file (or, with :func:`staged`, a folder) beside its target and
  renames it into place: a failed write (a full disk, a read-only folder) leaves what was there
  before, and a symbolic link at the target is replaced, never followed. Temporaries are
  created exclusively, so a link planted at their name is never opened either.
- :func:`make_dir` creates the folders kdistill writes into, refusing links inside a run folder.
- :func:`regular_file` opens a file for reading only if it is a regular file, so that a FIFO,
  a device or a folder under a data file's name cannot hang or confuse a reader.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

WRITE_ADVICE = "check that the folder exists and is writable and that the disk has free space"


@contextlib.contextmanager
def staged(path, folder: bool = False):
    """Yield a new temporary file (or, with ``folder``, an empty folder) beside ``path``; when
    the block succeeds, rename it over ``path``.

    The temporary is named ``.<name>.<pid>.<random>.tmp`` and created exclusively (it never
    opens something already there, such as a planted link). A folder may only replace a
    missing or empty one. On failure the temporary is removed and ``path`` is left as it was.
    A link at ``path`` is replaced by the rename, so nothing is ever written through it.
    """
    path = Path(path)
    tmp = _exclusive(path, folder)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _exclusive(path: Path, folder: bool) -> Path:
    """Create a new temporary file or folder beside ``path`` (permissions as the umask says)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                tmp.mkdir()
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def make_dir(path, inside=None) -> Path:
    """Create the folder ``path`` (with its parents) for kdistill to write into, and return it.

    A symbolic link at ``path`` or, with ``inside`` (the run folder), at any folder between
    ``inside`` and ``path``, is refused: files written there would land wherever the link
    points. ``inside`` itself may be a link the user made.

    Raises
    ------
    OSError
        Naming the link and where it points.
    """
    path = Path(path)
    steps = [path]
    if inside is not None:
        below = path.relative_to(inside).parts
        steps = [Path(inside).joinpath(*below[:i + 1]) for i in range(len(below))]
    for step in steps:
        if step.is_symlink():
            raise OSError(f"{step} is a symbolic link (to {os.readlink(step)}); kdistill writes only into real "
                          f"folders it made, never through links: remove the link or choose another folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path, content: str | bytes | Callable[[Path], object], what: str = "") -> Path:
    """Write ``content`` (text, bytes, or a function writing to the path it is given) to
    ``path`` through a temporary file renamed over it. Returns ``path``.

    Raises
    ------
    OSError
        Naming the file, the reason and that an existing file is unchanged.
    """
    path = Path(path)
    existed = path.is_file()
    try:
        with staged(path) as tmp:
            if isinstance(content, str):
                tmp.write_text(content)
            elif isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                content(tmp)
    except OSError as exc:
        kept = f"; the existing {path.name} is unchanged" if existed else ""
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)
        raise OSError(exc.errno, f"cannot write {what}{str(path)!r}: {reason}{kept}; {WRITE_ADVICE}") from exc
    return path


_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def regular_file(path, what: str = "file"):
    """Open ``path`` for reading in binary mode, only if it is a regular file (a link to one is
    followed). It is opened without blocking and checked before a byte is read, so a FIFO or a
    device under a data file's name is refused instead of hanging the reader.

    Raises
    ------
    ValueError
        If ``path`` is not a regular file (``what`` names it in the message).
    FileNotFoundError
        If nothing is there.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")
            raise ValueError(f"{what} {str(path)!r} is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
