"""Experiment tracking: TensorBoard and MLflow, as engine callbacks (optional extras:
``pip install kdistill[tensorboard]`` / ``kdistill[mlflow]``).

Each tracker is a plain callback that logs every epoch's record (losses, each loss term,
accuracies, learning rate) of one fit. A study asks it for one callback per model and seed
(:meth:`callback`, with the model's hyperparameters) and, at the end, logs the final table
(:meth:`log_results`).
"""

from __future__ import annotations

import json
import os
import time
from numbers import Real
from pathlib import Path

from ..boundary import translated
from ..report.tables import results_markdown, slug

_SKIP = ("epoch", "seconds")


TEST_METRICS = ("accuracy", "macro_f1", "agreement", "ece")  # each model's test metrics logged per study


def _slug(name: str) -> str:
    return slug(name) or "run"


def _numbers(record: dict) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k not in _SKIP and isinstance(v, Real) and not isinstance(v, bool)}


def _needs(module: str, extra: str):
    raise ValueError(f"tracking needs {module}, which is not installed: pip install kdistill[{extra}]") from None


class TensorBoard:
    """Log each epoch's metrics as TensorBoard scalars (step = epoch, from 1) into ``log_dir``
    (``log_dir/<run>`` when ``run`` is given), and the hyperparameters as text.

    Parameters
    ----------
    log_dir : str or Path
        The folder TensorBoard reads (``tensorboard --logdir log_dir``).
    run : str, optional
        A sub-folder for this fit; a study uses ``<model>-seed<k>``.
    hyperparams : dict, optional
        Shown as text under ``hyperparameters``.
    """

    def __init__(self, log_dir, run: str | None = None, hyperparams: dict | None = None):
        self.log_dir, self.run, self.hyperparams = Path(log_dir), run, dict(hyperparams or {})
        self._writer = None

    def _open(self, run: str | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            _needs("tensorboard", "tensorboard")
        self.check()
        with translated(f"tracking.tensorboard {str(self.log_dir)!r}", "give a folder TensorBoard can write to",
                        (OSError,)):
            return SummaryWriter(str(self.log_dir / run if run else self.log_dir))

    def check(self) -> None:
        """Raise a ``ValueError`` naming ``tracking.tensorboard`` unless its folder can be made and written."""
        where = f"tracking.tensorboard {str(self.log_dir)!r}"
        blocking = next((p for p in (self.log_dir, *self.log_dir.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ValueError(f"{where}: {blocking} is a file, not a folder; give a folder for TensorBoard's logs")
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{where}: the folder cannot be made ({exc.strerror or exc}); give a folder you can "
                             f"write to") from exc
        if not os.access(self.log_dir, os.W_OK | os.X_OK):
            raise ValueError(f"{where}: the folder is not writable; give a folder you can write to")

    def callback(self, model: str, seed: int, hyperparams: dict) -> TensorBoard:
        """The callback of one model and seed of a study."""
        return TensorBoard(self.log_dir, f"{_slug(model)}-seed{seed}", hyperparams)

    def on_fit_start(self, state) -> None:
        self._writer = self._open(self.run)
        if self.hyperparams:
            self._writer.add_text("hyperparameters", json.dumps(self.hyperparams, default=str))

    def on_epoch_end(self, state) -> None:
        record = state.history[-1]
        for key, value in _numbers(record).items():
            self._writer.add_scalar(key, value, record["epoch"] + 1)

    def on_fit_end(self, state) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def log_results(self, results: dict, folder) -> None:
        """The study's final table as text, and each model's test metrics as scalars, in ``study``."""
        writer = self._open("study")
        writer.add_text("results", results_markdown(results))
        for model in results["models"]:
            for key in TEST_METRICS:
                if model.get(key) is not None:
                    writer.add_scalar(f"test_{key}/{_slug(model['name'])}", model[key], 0)
        writer.close()


class MLflow:
    """Log each fit as an MLflow run: its hyperparameters as params, every epoch's metrics
    (step = epoch, from 1); a study adds one run holding the final table and test metrics.

    Parameters
    ----------
    tracking_uri : str or Path
        An MLflow tracking URI (``http://...``, ``sqlite:///...``); a plain folder path is a
        local store: the SQLite database ``mlflow.db`` and the artifacts in that folder.
    experiment : str
        The MLflow experiment the runs belong to (created when missing).
    run_name : str, optional
    params : dict, optional
        Logged as the run's parameters.
    """

    def __init__(self, tracking_uri, experiment: str = "kdistill", run_name: str | None = None,
                 params: dict | None = None):
        self.tracking_uri, self.experiment = str(tracking_uri), experiment
        self.run_name, self.params = run_name, dict(params or {})
        self._run = None

    def callback(self, model: str, seed: int, hyperparams: dict) -> MLflow:
        """The callback of one model and seed of a study."""
        return MLflow(self.tracking_uri, self.experiment, f"{model} seed {seed}",
                      {"model": model, "seed": seed, **hyperparams})

    def _client(self):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            _needs("mlflow", "mlflow")
        uri, artifacts = self.tracking_uri, None
        where = f"tracking.mlflow {self.tracking_uri!r}"
        if "://" not in uri and not uri.startswith("sqlite:"):
            folder = Path(uri).resolve()
            with translated(where, "give a folder you can write to, or an MLflow tracking URI", (OSError,)):
                folder.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()
        with translated(where, "give an MLflow tracking URI that MLflow can open (http://HOST:PORT, "
                               "sqlite:///FILE.db) or a local folder"):
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(self.experiment)
            exp_id = found.experiment_id if found else client.create_experiment(self.experiment, artifacts)
        return client, exp_id

    def check(self) -> None:
        """Open the tracking store (the experiment is created if missing), as a run will."""
        self._client()

    def _start(self, name: str | None, params: dict):
        try:
            from mlflow.entities import Param
        except ImportError:
            _needs("mlflow", "mlflow")

        client, exp_id = self._client()
        run = client.create_run(exp_id, run_name=name)
        params = [Param(str(k), str(v)[:500]) for k, v in params.items()]
        if params:
            client.log_batch(run.info.run_id, params=params)
        return client, run.info.run_id

    def on_fit_start(self, state) -> None:
        self._run = self._start(self.run_name, self.params)

    def on_epoch_end(self, state) -> None:
        from mlflow.entities import Metric

        client, run_id = self._run
        record, now = state.history[-1], int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, record["epoch"] + 1) for k, v in _numbers(record).items()])

    def on_fit_end(self, state) -> None:
        if self._run is not None:
            client, run_id = self._run
            client.set_terminated(run_id)
            self._run = None

    def log_results(self, results: dict, folder) -> None:
        """One run, ``study: <title>``, with the test metrics of every model and the table."""
        from mlflow.entities import Metric

        client, run_id = self._start(f"study: {results['title']}", {"dataset": results["dataset"],
                                                                     "seeds": results["seeds"], "folder": str(folder)})
        now = int(time.time() * 1000)
        metrics = [Metric(f"{_slug(m['name'])}.test_{key}", float(m[key]), now, 0) for m in results["models"]
                   for key in TEST_METRICS if m.get(key) is not None]
        client.log_batch(run_id, metrics=metrics)
        client.log_text(run_id, results_markdown(results), "results.md")
        client.log_dict(run_id, results, "results.json")
        client.set_terminated(run_id)
