"""Hugging Face ``transformers`` classification models as teachers (an optional extra:
``pip install kdistill[transformers]``): their output's ``logits`` are the teacher's logits."""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from ..boundary import first_line, library_error
from .adapters import TorchTeacher
from .base import finish_logits

TASKS = {"ForImageClassification": "image", "ForSequenceClassification": "sequence"}


class TransformersTeacher(TorchTeacher):
    """A ``transformers`` image- or sequence-classification model, frozen like any torch teacher.

    Image models get the batch as ``pixel_values``; sequence models get it as ``input_ids``
    (token ids, cast to integers). The class of each logit comes from the model's ``id2label``
    unless those are the default ``LABEL_i`` names.
    """

    def __init__(self, model: nn.Module, classes=None, task: str | None = None):
        self.task = task or model_task(model.config)
        super().__init__(model, "logits", classes if classes is not None else _labels(model.config))
        self.source = f"the transformers teacher {type(model).__name__}"

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        device = next(iter(self.module.parameters())).device
        with torch.inference_mode():
            inputs = x.to(device)
            out = (self.module(input_ids=inputs.long()) if self.task == "sequence"
                   else self.module(pixel_values=inputs))
        return finish_logits(out.logits.clone(), "logits", x, self.source, self)


def model_task(config) -> str:
    """``"image"`` or ``"sequence"``, from the architecture a model's config names."""
    for arch in config.architectures or []:
        for suffix, task in TASKS.items():
            if arch.endswith(suffix):
                return task
    raise ValueError(f"the transformers model's architectures {config.architectures} are neither image nor "
                     f"sequence classification (...ForImageClassification, ...ForSequenceClassification)")


def _labels(config) -> list | None:
    labels = [config.id2label[i] for i in range(config.num_labels)] if config.id2label else None
    default = labels is not None and all(re.fullmatch(rf"LABEL_{i}", str(v)) for i, v in enumerate(labels))
    return None if default else labels


def load_transformers(path, classes=None) -> TransformersTeacher:
    """The classification model saved with ``save_pretrained`` in the folder ``path``.

    Read offline (``local_files_only``), without remote code, and from safetensors only: a
    folder holding only pickled ``pytorch_model.bin`` weights is refused.
    """
    try:
        import transformers
    except ImportError:
        raise ValueError(f"{path} is a transformers model folder, but transformers is not installed: "
                         f"pip install kdistill[transformers]") from None
    options = {"local_files_only": True, "trust_remote_code": False}
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), **options)
        auto = {"image": transformers.AutoModelForImageClassification,
                "sequence": transformers.AutoModelForSequenceClassification}[model_task(config)]
        model = auto.from_pretrained(str(path), use_safetensors=True, **options)
    except (OSError, KeyError) as exc:
        raise ValueError(f"cannot load the transformers model in {path}: {exc} (it must be saved with "
                         f"save_pretrained, with safetensors weights)") from exc
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors' and transformers' own errors, translated here
        raise library_error(f"the transformers teacher in {path}", exc, f"cannot load the transformers model in "
                            f"{path}: {first_line(exc)} (its weights file is damaged or not safetensors: save the "
                            f"model again with save_pretrained)") from exc
    return TransformersTeacher(model, classes)
