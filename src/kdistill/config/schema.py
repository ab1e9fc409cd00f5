"""The experiment schema: one pydantic model per section of an experiment file (the model
sections are in :mod:`.sections`).

Every error names the field path, the bad value and what is allowed; an unknown key gets a
did-you-mean. Nothing in a file executes code; a model given by import path is imported to
check that it exists.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..arguments import check_names, check_seeds
from .data import DataConfig
from .section import ConfigError, Section, at, checked, raise_at
from .sections import (
    DistillConfig,
    FreezeConfig,
    FromTeacherConfig,
    MethodConfig,
    ModelConfig,
    StudentConfig,
    StudentModelConfig,
    TeacherConfig,
    TrainSettings,
    check_model,
    train_options,
)
from .tune import TuneConfig

__all__ = ["ConfigError", "DistillConfig", "Experiment", "FreezeConfig", "FromTeacherConfig", "MethodConfig",
           "ModelConfig", "Section", "StudentConfig", "StudentModelConfig", "TeacherConfig", "TrackingConfig",
           "TrainSettings", "TuneConfig", "check_model", "train_options"]


class TrackingConfig(Section):
    """Where every model's per-epoch metrics, hyperparameters and the final table are logged:
    a TensorBoard log folder and/or an MLflow tracking URI (a plain path is a local file store)."""

    tensorboard: str | None = None
    """A log folder (tensorboard --logdir DIR); relative to the experiment file."""
    mlflow: str | None = None
    """A tracking URI, or a folder for a local store (mlflow.db plus artifacts/)."""
    experiment: str | None = None
    """The MLflow experiment (default: the experiment's name)."""


class Experiment(Section):
    """The whole experiment file."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """The run folder's name (runs/<name>): letters, digits, . _ -."""
    title: str | None = None
    """The heading of the table and the report."""
    data: DataConfig
    """Where the samples come from and how they are split."""
    teacher: TeacherConfig
    """The teacher: trained in the study, loaded from weights, or a file used as loaded."""
    student: StudentModelConfig | None = None
    """The default model of every student (the keys of a model, without name and fit), or `from_teacher` (the
    teacher pruned), or `shrink` (the student searched by `kdistill shrink`)."""
    students: list[StudentConfig] = Field(min_length=1)
    """The students, each a model and an objective; at least one without a teacher (the baseline)."""
    train: TrainSettings = Field(default_factory=lambda: TrainSettings())
    """Training settings of every model (those of the training loop, except seed, quiet, checkpoint_dir and resume)."""
    seeds: list[int] = Field([0], min_length=1)
    """Every model is trained once per seed; the table shows mean ± std. A loaded teacher: every seed uses the first
    seed's split."""
    tune: TuneConfig | None = None
    """The search space of `kdistill tune`."""
    tracking: TrackingConfig | None = None
    """Where every model's epochs, hyperparameters and the final table are logged."""
    _base: Path = PrivateAttr(default=Path("."))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        return list(checked(check_seeds, value, "seeds"))

    @model_validator(mode="after")
    def _students(self):
        names = [s.name for s in self.students]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({self.teacher.name} & set(names)))
        if dupes:
            raise at("students", f"model names must be unique (teacher and students), repeated: {dupes}")
        _check_file_names([self.teacher.name, *names])
        if all(s.distilled for s in self.students):
            raise at("students", "one entry must train without a teacher (methods: [{name: ce}]): the baseline "
                                  "that distillation is compared with")
        for i, s in enumerate(self.students):
            if self.from_teacher(s) is not None:
                _check_prunable_teacher(self.teacher, f"students.{i}.from_teacher" if s.from_teacher else
                                        "student.from_teacher")
                continue
            if s.model is None and self.student is None:
                raise at(f"students.{i}.model", f"student {s.name!r} gives no model and there is no default "
                                                 f"`student:` section")
            if s.model is None and s.options is not None:
                raise_at(check_model(self.student.model, s.options), f"students.{i}.")
            _check_sklearn_student(self.student_model(s), s, i)
        if self.tune is not None and self.tune.student is not None and self.tune.student not in names:
            raise at("tune.student", f"{self.tune.student!r} is not a student; students: {names}")
        return self

    def from_teacher(self, s: StudentConfig):
        """The :class:`~kdistill.models.prune.FromTeacher` of student ``s`` (its own ``from_teacher``,
        else the default ``student``'s when ``s`` names no model), or ``None``."""
        own = s.from_teacher or (self.student.from_teacher if self.student is not None and s.model is None
                                 and s.options is None else None)
        return None if own is None else own.spec()

    def refuse_search(self, command: str) -> None:
        """Refuse ``student.shrink`` in a command other than ``kdistill shrink``: it would train the
        family's first model as given and never search (a ValueError naming the field)."""
        if self.student is not None and self.student.shrink is not None:
            raise ValueError(f"student.shrink is the search of `kdistill shrink`, which `{command}` does not run (it "
                             f"would train the family as given and ignore the budget): run `kdistill shrink "
                             f"EXPERIMENT`, or remove student.shrink to {command} the students as listed")

    def student_model(self, s: StudentConfig) -> ModelConfig:
        """The model section of student ``s`` (its own, or the default ``student``)."""
        base = self.student or ModelConfig()
        return base.model_copy(update={k: v for k, v in (("model", s.model), ("options", s.options))
                                       if v is not None})

    def path(self, value: str) -> Path:
        """``value`` resolved against the folder of the experiment file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base / p


def _check_prunable_teacher(teacher: TeacherConfig, where: str) -> None:
    """A student from_teacher prunes a PyTorch teacher that kdistill builds (trained or loaded)."""
    if teacher.file is not None or teacher.sklearn:
        raise at(where, f"a student from_teacher is a pruned copy of a PyTorch teacher; the teacher is "
                        f"{'the file ' + repr(teacher.file) if teacher.file else repr(teacher.model)}, which has no "
                        f"layers to prune: give a PyTorch teacher (model:, weights:)")


def _check_sklearn_student(model: ModelConfig, s: StudentConfig, i: int) -> None:
    """A scikit-learn student learns alone (ce) or from the teacher (kd, or ``distill:``); a
    PyTorch student has no ``distill:`` section."""
    if model.sklearn:
        other = [m.name for m in s.methods if m.name not in ("ce", "kd")]
        if other:
            raise at(f"students.{i}.methods", f"student {s.name!r} is a scikit-learn model, distilled by "
                                              f"DistilledClassifier: its methods are ce (alone) or kd (soft labels "
                                              f"at the kd temperature), not {other}; distill: sets the mode")
    elif s.distill is not None:
        raise at(f"students.{i}.distill", f"distill: applies to scikit-learn students; {s.name!r} is a PyTorch "
                                          f"model ({model.model!r}), distilled by its methods")


def _check_file_names(names: list[str]) -> None:
    """Model names become file names (weights, checkpoints, plots): two that become the same
    one would share a checkpoint, so that one model could continue the other's training (the
    same rule as :func:`kdistill.compare`'s, :func:`kdistill.arguments.check_names`)."""
    try:
        check_names(names, "model names")
    except (TypeError, ValueError) as exc:
        raise at("students", str(exc).removeprefix("model names: ")) from None
