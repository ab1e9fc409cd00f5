"""Experiment files: the pydantic schema, safe YAML loading and dotted ``--set`` overrides.

``load(path, overrides)`` returns a validated :class:`Experiment`; every problem raises a
:class:`ConfigError` naming the field path, the bad value and what is allowed.
"""

from .loading import apply_overrides, load, read_yaml, validate
from .schema import Experiment, ModelConfig, StudentConfig, TeacherConfig, train_options
from .section import ConfigError

__all__ = ["ConfigError", "Experiment", "ModelConfig", "StudentConfig", "TeacherConfig", "apply_overrides", "load",
           "read_yaml", "train_options", "validate"]
