"""A griffe extension for the docs build: read warmline's docstrings as markdown.

The docstrings are Google style, but a few habits of Sphinx remain and render
badly (or break ``mkdocs build --strict``) when taken as markdown:

- ``Example:`` (singular) is an admonition to griffe, not an examples
  section, so its ``>>>`` lines become prose and an output such as
  ``[0.0, 0.1]`` reads as a broken link: it becomes ``Examples:``;
- Sphinx roles (``:class:`~warmline.Timeouts```) become code spans
  (```Timeouts```), the ``~`` form keeping only the last name;
- a paragraph ending in ``::`` (a literal block follows) ends in ``:``.

Only the text given to the renderer changes; the source stays as it is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::$", re.M)


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown(text: str) -> str:
    """The docstring ``text`` with the Sphinx habits above rewritten."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    text = _ROLE.sub(_role, text)
    return _LITERAL.sub(r"\1:", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, when griffe loads its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
