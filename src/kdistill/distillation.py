"""``kdistill.distill``: :func:`~kdistill.fit` with a teacher and a distillation objective."""

import os

from . import losses, methods
from .arguments import check_data, check_objective
from .engine import History, fit
from .teachers import CachedTeacher

__all__ = ["distill"]


def distill(teacher, student, data, *, alpha: float = 0.5, temperature: float = losses.TEMPERATURE, objective=None,
            cache=False, **options) -> History:
    """Distil ``teacher`` into ``student``: :func:`fit` with a teacher and a distillation objective.

    Parameters
    ----------
    teacher : object
        Anything :func:`as_teacher` takes: a torch module (frozen in place while it teaches), a
        fitted scikit-learn model, an ONNX, skops or ``transformers`` path, a :class:`Teacher`.
    student : torch.nn.Module
        Trained in place.
    data : Splits
        The splits; their unlabelled inputs, if any, join the distillation terms.
    alpha : float in [0, 1]
        Weight of the distillation term in the default objective
        ``(1 - alpha) * CE(student, labels) + alpha * T^2 KL(teacher || student)``.
    temperature : float > 0
        Its temperature ``T``.
    objective : list, optional
        Replaces the default with any weighted list of terms, as in :func:`fit`, e.g.
        ``[("ce", 0.1), ("kd", 0.9, {"temperature": 4})]``.
    cache : bool or str or Path
        Read the teacher's outputs from the teacher-output cache (computed once per dataset, see
        :class:`CachedTeacher`): ``True`` for the default folder, or a folder.
    **options
        :class:`TrainConfig` fields (``epochs``, ``lr``, ``patience``, ``checkpoint_dir``, ...).

    Returns
    -------
    History
        Per-epoch records; the student ends at its best validation epoch.
    """
    if objective is None:
        objective = methods.kd_objective(alpha, temperature)
    check_objective(objective)
    check_data(data, seeded=False)
    if cache is not False:
        if not isinstance(cache, (bool, str, os.PathLike)):
            raise TypeError(f"cache must be True, False or a folder path, got {cache!r}")
        teacher = CachedTeacher(teacher, cache_dir=None if cache is True else cache)
    return fit(student, data, objective=objective, teacher=teacher, **options)
