"""The method contract: a method turns one training step into one loss term.

A method is a small ``nn.Module`` registered under a short name. Learnable glue (connectors)
are its submodules and are trained with the student. The engine sums the terms with their
weights and never knows which method runs.

Adding a method is one file in this folder: a :class:`Method` subclass under
``@register("name")``, with its ``example`` options for the contract test suite. The package
imports every module it holds, so nothing else is edited.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import TEMPERATURE, check_alpha, standardize_logits

_REGISTRY: dict[str, type[Method]] = {}


@dataclass
class Step:
    """What a method sees of one batch. ``logits_t`` is ``None`` when no method needs a teacher;
    ``feats_s``/``feats_t`` hold the outputs of the tapped modules, by name.

    ``y`` is each sample's class, ``-1`` for an unlabelled one: distillation terms see every sample,
    label terms only the labelled ones (see :func:`cross_entropy`). ``targets``, when set, are the
    labels as class distributions (views that mix two samples mix their labels too); their rows
    of unlabelled samples are zero.
    """

    x: Tensor
    y: Tensor
    index: Tensor
    logits_s: Tensor
    logits_t: Tensor | None = None
    feats_s: dict[str, Tensor] = field(default_factory=dict)
    feats_t: dict[str, Tensor] = field(default_factory=dict)
    targets: Tensor | None = None


def cross_entropy(logits: Tensor, step: Step) -> Tensor:
    """Cross-entropy of ``logits`` with the labels of ``step``, averaged over its labelled samples
    (mixed labels when ``step.targets`` is set); 0, still in the graph, when none is labelled."""
    labeled = step.y >= 0
    if bool(labeled.all()):
        if step.targets is None:
            return F.cross_entropy(logits.float(), step.y)
        return -(step.targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
    if not bool(labeled.any()):
        return logits.sum() * 0.0
    if step.targets is None:
        return F.cross_entropy(logits[labeled].float(), step.y[labeled])
    return -(step.targets[labeled] * F.log_softmax(logits[labeled].float(), dim=1)).sum(1).mean()


def response_logits(step: Step, standardize: bool) -> tuple[Tensor, Tensor]:
    """The student's and the teacher's logits of ``step``, each z-scored per sample when
    ``standardize`` (logit standardization, :func:`~kdistill.losses.standardize_logits`)."""
    if not standardize:
        return step.logits_s, step.logits_t
    return standardize_logits(step.logits_s), standardize_logits(step.logits_t)


def check_flag(name: str, value) -> bool:
    """``value`` if it is a bool, else an error naming the option and the value."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


class Method(nn.Module):
    """Base class of a registered loss term.

    Attributes
    ----------
    needs_teacher : bool
        Whether ``forward`` reads ``step.logits_t`` or ``step.feats_t``.
    student_taps, teacher_taps : tuple of str
        Module names whose outputs the method needs in ``step.feats_s`` / ``step.feats_t``.
    """

    name = "method"
    #: The family of knowledge it transfers (response, feature, relation, online, self; labels for ce),
    #: and the paper it follows: the docs' list of methods is generated from these.
    family = ""
    paper = ""
    needs_teacher = True
    student_taps: tuple[str, ...] = ()
    teacher_taps: tuple[str, ...] = ()
    #: Options of the contract suite's case (``tests/methods/test_contract.py``): a student
    #: ``cnn((1, 8, 8), 3, channels=(4, 8), hidden=8)`` and a teacher ``channels=(8, 16, 16),
    #: hidden=16``, whose layers ``features.3`` (4x4 maps) and ``features.7`` (2x2) can be tapped.
    example: dict = {}
    #: What the contract case trains: ``"model"``, ``"peers"`` (a ``Cohort`` of two such
    #: students, tapped as ``peers.0``, ``peers.1``) or ``"heads"`` (the student in ``WithHeads``
    #: on ``features.3`` and ``features.7``, tapped as ``heads.0``, ``heads.1``).
    example_student = "model"

    def setup(self, step: Step) -> None:
        """Called once with a dry-run step before training, to shape connectors."""

    def forward(self, step: Step) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def register(name: str):
    """Class decorator registering a :class:`Method` under ``name``."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY:
            raise ValueError(f"a method named {name!r} is already registered ({_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    """Names of the registered methods.

    Returns
    -------
    list of str
        Sorted; :func:`describe` gives each one's summary and options.
    """
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    """One line per registered method: the first line of its docstring (or its module's) and
    its options with their defaults."""
    out = {}
    for name in available():
        cls = method_class(name)
        doc = inspect.cleandoc(cls.__doc__ or inspect.getmodule(cls).__doc__ or "")
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        options = ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params)
        summary = " ".join(doc.split("\n\n")[0].split()) or cls.__qualname__  # the first paragraph, on one line
        out[name] = summary + (f" Options: {options}." if options else "")
    return out


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``; an unknown name is an error listing the registered ones."""
    if name not in _REGISTRY:
        hint = difflib.get_close_matches(name, _REGISTRY, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown method {name!r}{extra}; available methods: {', '.join(available())}")
    return _REGISTRY[name]


def options(name: str) -> list[str]:
    """The options of the method registered as ``name`` (its constructor's parameters)."""
    return [p for p in inspect.signature(method_class(name).__init__).parameters if p != "self"]


def build(name: str, **kwargs) -> Method:
    """Instantiate the method registered as ``name`` with ``kwargs``, with clear errors."""
    cls = method_class(name)
    allowed = options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} got unknown option(s) {unknown}; allowed: {allowed or 'none'}")
    return cls(**kwargs)


ALONE = (("ce", 1.0),)  # the objective of a model trained on labels alone (a teacher, a baseline)


def kd_objective(alpha: float = 0.5, temperature: float = TEMPERATURE) -> list[tuple]:
    """Hinton et al.'s objective, ``(1 - alpha) * CE + alpha * T^2 KL(teacher || student)``.

    Parameters
    ----------
    alpha : float in [0, 1]
        Weight of the distillation term (0: labels alone; 1: the teacher alone).
    temperature : float > 0
        The temperature ``T`` of both softmaxes.

    Returns
    -------
    list of tuple
        ``[("ce", 1 - alpha), ("kd", alpha, {"temperature": T})]``, an ``objective=`` for
        :func:`kdistill.fit`.
    """
    alpha = check_alpha(alpha)
    return [("ce", 1.0 - alpha), ("kd", alpha, {"temperature": temperature})]


@dataclass
class Term:
    """One weighted term of the objective."""

    name: str
    weight: float
    method: Method


def objective(spec) -> list[Term]:
    """Build the objective from ``[(name, weight[, options]), ...]`` or ``Method`` instances
    (weight 1). Names must be unique; add a suffix with ``"kd:2"``-style names to repeat one."""
    terms: list[Term] = []
    for item in spec:
        if isinstance(item, Method):
            terms.append(Term(item.name, 1.0, item))
            continue
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"each objective entry must be (name, weight) or (name, weight, options), got {item!r}")
        label, weight, opts = (*item, {}) if len(item) == 2 else item
        weight = float(weight)
        if weight < 0 or weight != weight:
            raise ValueError(f"weight of method {label!r} must be >= 0, got {weight}")
        terms.append(Term(label, weight, build(label.split(":")[0], **dict(opts))))
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"method names in one objective must be unique, got {names}")
    if not terms:
        raise ValueError("the objective is empty; give at least one (name, weight) entry, e.g. ('ce', 1.0)")
    return terms
