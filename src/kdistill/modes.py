"""Online and self distillation, as uses of the one training loop.

A mode only decides which parameters are trained and what teaches whom:

- :func:`mutual` — deep mutual learning: the peers are wrapped in a :class:`Cohort` and the
  ``dml`` method reads each peer's logits through feature taps.
- :func:`born_again` — born-again networks: generation ``k`` teaches generation ``k + 1``.
- :func:`self_distill` — "Be Your Own Teacher": auxiliary heads on tapped layers of the
  student (a :class:`WithHeads` wrapper) learn from its final output through the ``byot``
  method; the heads live in the wrapper only, so the returned student has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .data import Splits
from .engine import History, fit
from .methods import kd_objective
from .models import unfreeze
from .taps import FeatureTaps


@dataclass
class ModeResult:
    """What a mode returns: the trained models and the history of each call of the loop.

    ``models`` are the peers (:func:`mutual`), the generations in order (:func:`born_again`),
    or the one student without heads (:func:`self_distill`).
    """

    models: list[nn.Module]
    histories: list[History]


class Cohort(nn.Module):
    """Peers trained together. ``forward`` returns the mean of their logits (what the loop
    reports as accuracy); the peers' own logits are the outputs of ``peers.0``, ``peers.1``..."""

    def __init__(self, peers):
        super().__init__()
        self.peers = nn.ModuleList(peers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([peer(x) for peer in self.peers]).mean(dim=0)


def mutual(peers, data: Splits, *, temperature: float = 1.0, **options) -> ModeResult:
    """Deep mutual learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018): two or more peers
    trained together from scratch, each with cross-entropy on the labels plus the KL
    divergence to the others' predictions (see :mod:`kdistill.methods.dml`). No teacher.

    Parameters
    ----------
    peers : sequence of nn.Module
        Two or more untrained classifiers (architectures may differ); trained in place.
    data : Splits
        Training and validation data.
    temperature : float
        Temperature of the mutual KL terms (the paper uses 1).
    **options
        :class:`~kdistill.engine.TrainConfig` fields. Validation and early stopping follow
        the mean of the peers' logits.

    Returns
    -------
    ModeResult
        ``models`` are the peers, ``histories`` the one run.
    """
    peers = list(peers)
    if len(peers) < 2 or not all(isinstance(p, nn.Module) for p in peers):
        raise ValueError(f"peers must be a list of at least 2 torch.nn.Module, got "
                         f"{[type(p).__name__ for p in peers]}")
    names = [f"peers.{i}" for i in range(len(peers))]
    history = fit(Cohort(peers), data, objective=[("dml", 1.0, {"peers": names, "temperature": temperature})],
                  **options)
    return ModeResult(peers, [history])


def born_again(make_student: Callable[[], nn.Module], teacher, data: Splits, generations: int = 3, *,
               objective=None, **options) -> ModeResult:
    """Born-again networks (Furlanello, Lipton, Tschannen, Itti & Anandkumar, ICML 2018):
    ``teacher`` teaches generation 1, generation ``k`` teaches generation ``k + 1``, each a
    fresh model from ``make_student`` (usually the teacher's own architecture).

    Parameters
    ----------
    make_student : callable
        ``make_student()`` returns a new untrained ``nn.Module``.
    teacher : nn.Module or Teacher
        The trained generation 0 (frozen in place, as in :func:`kdistill.distill`).
    data : Splits
        Training and validation data.
    generations : int
        Number of student generations, >= 1.
    objective : sequence, optional
        The objective of each generation; default that of :func:`kdistill.distill`,
        :func:`kdistill.methods.kd_objective` (CE + KD, alpha 0.5, T 4). The paper trains on the
        teacher's outputs alone (``[("kd", 1.0, {"temperature": 1.0})]``); on short budgets
        that lets generations drift (digits, 15 epochs: 0.936 then 0.931 test accuracy
        against 0.947 then 0.942 with the labels kept), so the labels stay in by default.
    **options
        :class:`~kdistill.engine.TrainConfig` fields.

    Returns
    -------
    ModeResult
        ``models`` and ``histories`` of the generations in order; the last is the result.
    """
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ValueError(f"generations must be an integer >= 1, got {generations!r}")
    objective = objective if objective is not None else kd_objective()
    models, histories = [], []
    for _ in range(generations):
        student = make_student()
        if not isinstance(student, nn.Module):
            raise TypeError(f"make_student() must return a torch.nn.Module, got {type(student).__name__}")
        histories.append(fit(student, data, objective=objective, teacher=teacher, **options))
        if models:
            unfreeze(models[-1])  # it has taught its successor; hand it back trainable
        models.append(student)
        teacher = student
    return ModeResult(models, histories)


def _head(feat: Tensor, num_classes: int) -> nn.Module:
    if feat.ndim == 4:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(feat.shape[1], num_classes))
    if feat.ndim == 2:
        return nn.Linear(feat.shape[1], num_classes)
    raise ValueError(f"an auxiliary head needs a (batch, channels, height, width) or (batch, features) "
                     f"output, got shape {tuple(feat.shape)}")


class WithHeads(nn.Module):
    """A model plus auxiliary classifier heads on its tapped layers, without modifying it.

    ``forward`` returns the model's own logits; the heads' logits are the outputs of
    ``heads.0``, ``heads.1``... (in the order of ``taps``). Each head is global average
    pooling + a linear layer (a linear layer for vector features), shaped by one dry run.
    """

    def __init__(self, model: nn.Module, taps, num_classes: int, input_shape):
        super().__init__()
        self.model = model
        self._taps = FeatureTaps(model, list(taps))
        if not self._taps.names:
            raise ValueError("taps must name at least one layer of the model to put a head on, got none")
        device = next(iter(model.parameters()), torch.empty(0)).device
        was_training = model.training
        model.eval()
        with torch.no_grad(), self._taps:
            model(torch.zeros(2, *input_shape, device=device))
        model.train(was_training)
        feats = self._taps.collect()
        self.heads = nn.ModuleList(_head(feats[n], num_classes).to(device) for n in self._taps.names)

    def forward(self, x: Tensor) -> Tensor:
        with self._taps:
            logits = self.model(x)
        for head, feat in zip(self.heads, self._taps.collect().values()):
            head(feat)
        return logits


def self_distill(student: nn.Module, data: Splits, taps, *, alpha: float = 0.3, temperature: float = 3.0,
                 **options) -> ModeResult:
    """Deep-to-shallow self-distillation (Zhang et al., "Be Your Own Teacher", ICCV 2019):
    auxiliary heads on the tapped layers learn from the labels and from the student's final
    output; the student learns from the labels and from the heads' gradients through its
    shared layers (see :mod:`kdistill.methods.byot`).

    Parameters
    ----------
    student : nn.Module
        The model to train, in place; it is never modified and the heads are not part of it.
    data : Splits
        Training and validation data.
    taps : sequence of str
        Module names of the shallower layers that get a head, e.g. ``["features.3"]``.
    alpha, temperature : float
        Share of the distillation term in each head's loss, and its temperature.
    **options
        :class:`~kdistill.engine.TrainConfig` fields.

    Returns
    -------
    ModeResult
        ``models == [student]`` (without heads) and the one run's history.
    """
    wrapper = WithHeads(student, [taps] if isinstance(taps, str) else taps, data.num_classes, data.input_shape)
    heads = [f"heads.{i}" for i in range(len(wrapper.heads))]
    history = fit(wrapper, data, objective=[("byot", 1.0, {"heads": heads, "alpha": alpha,
                                                           "temperature": temperature})], **options)
    return ModeResult([student], [history])
