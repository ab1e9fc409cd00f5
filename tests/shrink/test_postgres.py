"""Many machines on a real database: shrink candidates and tune trials are trials of Optuna
studies on a PostgreSQL server, shared by several worker processes. The server is a throwaway
cluster (``scripts/throwaway_postgres.py``), the one ``.ci/run`` starts (``$KDISTILL_TEST_POSTGRES``)
or one started here; the tests are skipped, saying why, where none can be started."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import throwaway_postgres  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def postgres():
    """A database URL on a running PostgreSQL server."""
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver (pip install psycopg2-binary, in the dev extra)")
    if os.environ.get("KDISTILL_TEST_POSTGRES"):
        yield os.environ["KDISTILL_TEST_POSTGRES"]
        return
    folder = tempfile.mkdtemp(prefix="kdistill-postgres-")
    try:
        try:
            url = throwaway_postgres.start(folder)
        except throwaway_postgres.Unavailable as exc:
            pytest.skip(f"no PostgreSQL server can be started here: {exc}")
        yield url
    finally:
        throwaway_postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _fresh_database(url: str, name: str) -> str:
    """A new database on the server, so that every test (and every .ci/run) starts empty."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def _kdistill(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "kdistill", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_shrink_workers_share_one_study_on_postgresql(postgres, tiny, tmp_path):
    import optuna

    url = _fresh_database(postgres, "kdistill_shrink")
    tiny["student"] = {"model": "mlp", "options": {"hidden": [8]}, "shrink": {"budget": {"params": 0.3}}}
    path = tmp_path / "shrink.yaml"
    path.write_text(yaml.safe_dump(tiny))
    workers = [_kdistill("shrink", str(path), "--storage", url, "--worker", "--quiet", cwd=tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all("worker done" in out for out in outputs), outputs
    assert not (tmp_path / "runs").exists()  # workers make no run folder
    study = optuna.load_study(study_name="shrink", storage=url)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and "surplus" not in t.user_attrs]
    names = [c["name"] for c in study.user_attrs["kdistill_shrink"]["made"]["candidates"]]  # made once, by one
    assert len(names) == 4 and sorted(t.user_attrs["candidate"] for t in finished) == sorted(names)  # each once
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]
    assert len(surplus) == 2 and len(finished) + 2 == len(study.trials)  # each worker stopped once all were taken
    assert all(t.user_attrs["process"].split(":")[1] in {str(w.pid) for w in workers} for t in finished)


def test_tune_studies_live_on_postgresql_and_keep_their_record(postgres, tiny, tmp_path):
    """A sweep's three studies open on the server; reopened with another space they are refused
    (the same rule as on SQLite, tests/tune/test_shared_storage.py)."""
    from kdistill import config
    from kdistill.tune.context import KINDS, RECORD, Context

    url = _fresh_database(postgres, "kdistill_tune")
    tiny["tune"] = {"temperature": [1.0, 4.0]}
    exp = config.validate(tiny, base=tmp_path)
    ctx = Context(exp, tmp_path / "sweep", url, "shared")
    studies = {kind: ctx.study(kind) for kind in KINDS}
    assert studies["distilled"].user_attrs[RECORD]["tune.temperature"] == [1.0, 4.0]
    tiny["tune"] = {"temperature": [5.0, 8.0]}
    other = Context(config.validate(tiny, base=tmp_path), tmp_path / "sweep", url, "shared")
    with pytest.raises(ValueError, match="differing in tune.temperature"):
        other.study("distilled")
