"""A throwaway PostgreSQL cluster in a temporary folder, for tests of Optuna's shared storage:

    python scripts/throwaway_postgres.py start DIR   # prints the database URL
    python scripts/throwaway_postgres.py stop DIR

Uses Debian's ``postgresql`` server binaries (``initdb``, ``pg_ctl`` on PATH or under
/usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser``). Trust authentication, listening on 127.0.0.1 and a free port only.
``start`` raises :class:`Unavailable` (exit status 3 from the command line) with the reason when
no server can be started here.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

USER = "kdistill"
URL_FILE = "url"


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine; the message says why."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise Unavailable(f"no PostgreSQL server binary {name!r} (install Debian's postgresql package)")
    return found


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise Unavailable("running as root and there is no runuser to start the server as 'postgres'")
    return [runuser, "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder) -> str:
    """Initialize and start a cluster in ``folder`` (made if missing); returns its SQLAlchemy URL."""
    folder = Path(folder).resolve()
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        folder.chmod(0o755)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    steps = [[initdb, "-D", str(data), "-A", "trust", "-U", USER, "--no-sync"],
             [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]]
    for step in steps:
        done = subprocess.run(_as_owner(step), capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            log = (folder / "server.log").read_text()[-500:] if (folder / "server.log").exists() else ""
            raise Unavailable(f"{Path(step[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]} {log}")
    url = f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/postgres"
    (folder / URL_FILE).write_text(url + "\n")
    return url


def stop(folder) -> None:
    """Stop the cluster in ``folder`` (immediately; its data is thrown away with the folder)."""
    folder = Path(folder).resolve()
    if (folder / "data").exists():
        subprocess.run(_as_owner([_binary("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, cwd=folder)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        raise SystemExit("usage: throwaway_postgres.py start|stop DIR")
    if sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        try:
            print(start(sys.argv[2]))
        except Unavailable as exc:
            print(f"no PostgreSQL server: {exc}", file=sys.stderr)
            sys.exit(3)
