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

    The default objective is :func:`kdistill.methods.kd_objective`, ``(1 - alpha) * CE(student,
    labels) + alpha * kd_loss(T)``, where ``kd_loss`` is T²·KL(teacher ‖ student) at temperature
    ``T``. ``objective`` replaces it with any weighted list of terms, as in :func:`fit`, e.g.
    ``[("ce", 0.1), ("kd", 0.9, {"temperature": 4})]``. ``cache`` reads the teacher's outputs
    from the teacher-output cache (computed once per dataset, see :class:`CachedTeacher`):
    ``True`` for the default folder, or a folder path. ``options`` are :class:`TrainConfig`
    fields (epochs, lr, patience, checkpoint_dir, ...).
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
