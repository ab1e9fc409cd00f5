"""Griffe extension for the API reference: kdistill's docstrings name other objects with Sphinx
roles (:func:`kdistill.fit`, :class:`~kdistill.Splits`), which Markdown would show verbatim; this
turns each into inline code (``~`` keeps the last part of the name only, as in Sphinx)."""

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:  # every module, class, function and attribute
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
