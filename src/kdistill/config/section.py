"""The base of every section of an experiment file, and the error that names what is wrong."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """An experiment file or override is invalid. ``problems`` lists ``(path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "experiment"):
        self.problems, self.source = problems, source
        lines = [f"  {path or '(top level)'}: {msg}" for path, msg in problems]
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(lines))


class Section(BaseModel):
    """Base of every section: strict types, and unknown keys rejected with a did-you-mean."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=True, use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data):
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    hint = difflib.get_close_matches(str(key), allowed, n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    raise PydanticCustomError("unknown_key", "unknown key{hint}; allowed keys: {allowed}",
                                              {"key": str(key), "hint": extra, "allowed": ", ".join(allowed)})
        return data


def checked(check, value, *args):
    """``check(value, *args)``, a ``TypeError`` it raises turned into the ``ValueError`` pydantic
    reports at the field (the shared argument checks raise ``TypeError`` for a wrong type)."""
    try:
        return check(value, *args)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def at(path: str, message: str) -> ValueError:
    """An error of a whole-section check, located at ``path`` (read back by ``loading._problem``)."""
    return ValueError(f"@{path}@ {message}")


def raise_at(problem, prefix: str = "") -> None:
    """Raise the ``(field, message)`` problem, if any, at ``prefix + field``."""
    if problem is not None:
        raise at(prefix + problem[0], problem[1])
