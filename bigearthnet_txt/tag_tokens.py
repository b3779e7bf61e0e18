"""The official loader's ``point_token``/``ref_token`` replacement of the tags in a prompt.

``BENTxTDataset.__getitem__`` replaces ``<ref>``/``</ref>`` by ``ref_token[0]``/``ref_token[1]``,
then ``<point>``/``</point>`` by ``point_token[0]``/``point_token[1]``, in the ``input`` text only;
``None`` stands for ``("", "")`` (the tags are removed).

    replace_tags("Where is <ref>the lake</ref>?", ref_token=("<|ref|>", "<|/ref|>"))
    # 'Where is <|ref|>the lake<|/ref|>?'
"""

from __future__ import annotations

from collections.abc import Sequence


def tag_pair(token: Sequence[str] | None, name: str) -> tuple[str, str]:
    """``(start, end)`` of a ``point_token``/``ref_token`` argument (``None`` → ``("", "")``)."""
    if token is None:
        return ("", "")
    pair = tuple(token)
    if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
        raise ValueError(f"{name} must be two strings (start, end), got {token!r}")
    return pair  # type: ignore[return-value]


def replace_tags(
    text: str, point_token: Sequence[str] | None = None, ref_token: Sequence[str] | None = None
) -> str:
    """``text`` with ``<ref>…</ref>`` and ``<point>…</point>`` tags replaced as the official loader
    does (``None`` removes the tags of that kind)."""
    ref = tag_pair(ref_token, "ref_token")
    point = tag_pair(point_token, "point_token")
    text = text.replace("<ref>", ref[0]).replace("</ref>", ref[1])
    return text.replace("<point>", point[0]).replace("</point>", point[1])
