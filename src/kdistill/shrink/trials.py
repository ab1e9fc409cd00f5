"""The trials of a shrink search on an Optuna study that several processes or machines share:
each candidate is claimed by one trial (by trial number, handed out by the database), trained
with its validation accuracy reported after every epoch to a successive-halving pruner."""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings

import torch

from ..engine import fit
from ..methods import ALONE

log = logging.getLogger("kdistill")

REDUCTION = 3  # successive halving keeps the best third at each rung
WAIT_SECONDS = 2.0  # polling for other workers' trials to finish
RECORD = "kdistill_shrink"
MAKER = "kdistill_shrink_maker"
RECORD_WAIT_S = 900.0  # how long a worker waits for the study's maker to record the candidates


def open_study(url: str, name: str, settings: dict, make, *, halving: bool = True, wait_s: float | None = None):
    """The study ``name`` at ``url`` and its record: what ``make()`` returns (the search's
    candidates, as data), made once by the process that creates the study and read by every other
    process, with the ``settings`` it was made for. A process whose settings differ is refused,
    naming the settings that differ; one that finds the study without a record waits for its maker.
    If ``make`` fails, the maker deletes the study, so that a run again starts afresh."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _storage(url)
        pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION) if halving
                  else optuna.pruners.NopPruner())
        options = {"study_name": name, "storage": storage, "sampler": optuna.samplers.RandomSampler(seed=0),
                   "pruner": pruner}
        try:
            study, maker = optuna.create_study(**options, direction="maximize"), True
        except optuna.exceptions.DuplicatedStudyError:
            try:
                study, maker = optuna.load_study(**options), False
            except KeyError:  # deleted in between: its maker failed
                raise ValueError(_FAILED.format(url=url, name=name)) from None
        optuna.storages.fail_stale_trials(study)
    if maker:
        try:
            study.set_user_attr(MAKER, _process())  # who makes the record, for those who wait on it
            made = make()
        except BaseException:
            optuna.delete_study(study_name=name, storage=storage)
            raise
        study.set_user_attr(RECORD, {"settings": settings, "made": made})
        return study, made
    record = _record(study, url, name, RECORD_WAIT_S if wait_s is None else wait_s)
    if not isinstance(record, dict) or set(record) != {"settings", "made"}:
        raise ValueError(f"storage {url!r}: study {name!r} was not made by this version of kdistill's shrink; give "
                         f"another study_name (--study-name)")
    differ = sorted(k for k in {*settings, *record["settings"]} if settings.get(k) != record["settings"].get(k))
    if differ:
        raise ValueError(f"storage {url!r}: study {name!r} was made for another search, differing in {differ}; its "
                         f"trials would answer for another search. Give another study_name (--study-name)")
    return study, record["made"]


_FAILED = ("storage {url!r}: the process that made study {name!r} failed before recording its candidates (see its "
           "log); run again")


def _record(study, url: str, name: str, wait_s: float):
    """The study's record, waited for (saying so) while its maker is making it; a maker that is
    no longer running on this machine is named at once."""
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            attrs = study.user_attrs
        except KeyError:  # deleted: its maker failed
            raise ValueError(_FAILED.format(url=url, name=name)) from None
        if RECORD in attrs:
            return attrs[RECORD]
        maker = attrs.get(MAKER, "an unknown process")
        running = _running(maker)
        if not running or time.monotonic() > deadline:
            why = f"has made none in {wait_s:.0f} s" if running else "is no longer running"
            raise ValueError(f"storage {url!r}: study {name!r} has no record of its candidates, and the process that "
                             f"made it ({maker}) {why}: it may have died while making them. Delete the study (optuna "
                             f"delete-study --study-name {name} --storage URL) or give another study_name "
                             f"(--study-name)")
        if not said:
            log.warning("study %r on %s: waiting up to %.0f s for %s, which made it, to record its candidates", name,
                        url, wait_s, maker)
            said = True
        time.sleep(WAIT_SECONDS)


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _running(process: str) -> bool:
    """Whether ``host:pid`` may still be running: always, for another machine's."""
    host, _, pid = process.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _storage(url: str, attempts: int = 5):
    """The Optuna storage at ``url``. Workers starting together on an empty database race to
    create its tables, and the loser's attempt fails: it is retried."""
    import optuna

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; the user needs one message
            if attempt == attempts - 1 or "://" not in url:
                raise ValueError(f"storage {url!r} cannot be opened as an Optuna database: {exc}; give a database "
                                 f"URL such as sqlite:///path/to/shrink.db or postgresql+psycopg2://user@host/db"
                                 ) from None
            time.sleep(0.5 * (attempt + 1))


def work(study, objective, names: list[str]) -> None:
    """Run trials until every candidate has one. Trial numbers are handed out by the database one
    by one, so trial ``i`` trains candidate ``i`` and no two workers train the same one; a trial
    numbered past the candidates retries one whose trials all failed (a worker that died: the
    storage's heartbeat fails its trial), or ends this worker (recorded as ``surplus``)."""
    import optuna

    def run(trial):
        name = _claim(study, trial, names)
        if name is None:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise optuna.TrialPruned("every candidate has a trial")
        trial.set_user_attr("candidate", name)
        return objective(trial, name)

    study.optimize(run, catch=())


def _claim(study, trial, names: list[str]) -> str | None:
    if trial.number < len(names):
        return names[trial.number]
    others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
    taken = {t.user_attrs.get("candidate") for t in others if t.state.name in ("RUNNING", "COMPLETE", "PRUNED")}
    return next((n for n in names if n not in taken and any(t.user_attrs.get("candidate") == n for t in others)),
                None)


def wait(study) -> None:
    """Until no trial of the study is running (other workers' included)."""
    import optuna

    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        time.sleep(WAIT_SECONDS)


class Objective:
    """One trial: the grid's candidate, distilled from the cached teacher outputs, reporting its
    validation accuracy after every epoch to the study's pruner. With ``alone`` (a mapping of
    candidate names to epochs), the candidate's architecture from new weights, trained on the
    labels alone and stopped after the epochs its distilled twin had (a reference point of the
    front: what distillation adds at equal training)."""

    def __init__(self, by_name, teacher, served, data, settings, seed, quiet, alone: dict | None = None):
        self.by_name, self.teacher, self.served, self.data = by_name, teacher, served, data
        self.settings, self.seed, self.quiet, self.alone = settings, seed, quiet, alone

    def __call__(self, trial, name: str) -> float:
        cand = self.by_name[name].alone() if self.alone else self.by_name[name]
        trial.set_user_attr("process", _process())
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        model = cand.make(self.teacher, self.data)
        rungs = _Rungs(trial, stop_after=self.alone[name] if self.alone else None)
        objective, teacher = (list(ALONE), None) if self.alone else (self.settings["objective"], self.served)
        train = dict(self.settings["train"])
        if self.alone:  # exactly its twin's epochs: early stopping would end it sooner
            train["patience"] = None
        try:
            history = fit(model, self.data, objective=objective, teacher=teacher, seed=self.seed, quiet=self.quiet,
                          callbacks=[rungs], **train)
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
            trial.set_user_attr("epochs", rungs.epochs)
        return max(r["val_accuracy"] for r in history.epochs)


class _Rungs:
    def __init__(self, trial, stop_after: int | None = None):
        self.trial, self.epochs, self.best, self.stop_after = trial, 0, 0.0, stop_after

    def on_epoch_end(self, state) -> None:
        import optuna

        self.epochs = state.epoch + 1
        self.best = max(self.best, state.history[-1]["val_accuracy"])
        self.trial.report(self.best, self.epochs)
        if self.stop_after is not None and self.epochs >= self.stop_after:
            state.stop = True
        elif self.epochs < state.config.epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"stopped after epoch {self.epochs} of {state.config.epochs}")
