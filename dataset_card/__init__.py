"""The data set card template of BigEarthNet.txt.

``TEMPLATE_PATH`` is a :class:`string.Template` Markdown file; ``bigearthnet_txt.conversion.card``
fills it with the YAML front matter and the statistics, band table and loading snippets of one
converted folder.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

TEMPLATE_PATH = Path(__file__).with_name("README.template.md")


def load_template() -> Template:
    """The card template (placeholders ``$name`` / ``${name}``; ``$$`` is a literal dollar)."""
    return Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
