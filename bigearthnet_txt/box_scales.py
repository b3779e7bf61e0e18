"""Coordinate conventions for boxes and points in model targets: one option, ``box_scale``.

The release writes boxes ``[x1 y1, x2 y2]`` and points ``<point>(x, y)</point>`` normalised to
[0, 1] (origin top-left of the 120 × 120 image, y down). VLMs are trained on other grids, so the
fine-tuning collate can re-render them and ``evaluate`` reads predictions back the same way:

========== ====================================== ======================================
box_scale  rendered (box ``(0.64, 0.0, 1.0, 0.71)``) value in the text
========== ====================================== ======================================
``unit``   ``[0.64 0.0, 1.0 0.71]`` (as released)  ``v`` (shortest decimal)
``1000``   ``[640 0, 1000 710]``                   ``round(v × 1000)`` (integers 0–1000)
``pixels`` ``[76.8 0, 120 85.2]``                  ``v × 120`` (shortest decimal, ≤ 4 places)
========== ====================================== ======================================

>>> render_box_scaled((0.64, 0.0, 1.0, 0.71), "1000")
'[640 0, 1000 710]'
>>> to_unit((640, 0, 1000, 710), "1000")
(0.64, 0.0, 1.0, 0.71)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bigearthnet_txt.annotations import (
    POINT_PATTERN,
    format_coordinate,
    parse_box,
    render_box,
    render_point,
)
from bigearthnet_txt.schema import PATCH_SIZE

BOX_SCALES: tuple[str, ...] = ("unit", "1000", "pixels")
SCALE_FACTORS: dict[str, float] = {"unit": 1.0, "1000": 1000.0, "pixels": float(PATCH_SIZE)}

_POINT_RE = re.compile(POINT_PATTERN)


def check_scale(box_scale: str) -> str:
    """``box_scale`` itself, or ``ValueError`` naming the accepted values."""
    if box_scale not in BOX_SCALES:
        raise ValueError(f"box_scale must be one of {BOX_SCALES}, got {box_scale!r}")
    return box_scale


def format_scaled(value: float, box_scale: str) -> str:
    """One normalised coordinate as written on ``box_scale``'s grid (see the module table)."""
    check_scale(box_scale)
    if box_scale == "unit":
        return format_coordinate(value)
    scaled = float(value) * SCALE_FACTORS[box_scale]
    if box_scale == "1000":
        return str(int(round(scaled)))
    return f"{round(scaled, 4):g}"


def to_unit(values: Sequence[float], box_scale: str) -> tuple[float, ...]:
    """Coordinates read on ``box_scale``'s grid → normalised [0, 1] floats (not range-checked)."""
    factor = SCALE_FACTORS[check_scale(box_scale)]
    return tuple(float(v) / factor for v in values)


def render_box_scaled(box: Sequence[float], box_scale: str = "unit") -> str:
    """``"[x1 y1, x2 y2]"`` with the normalised ``box`` written on ``box_scale``'s grid."""
    if check_scale(box_scale) == "unit":
        return render_box(box)
    x1, y1, x2, y2 = (format_scaled(v, box_scale) for v in box)
    return f"[{x1} {y1}, {x2} {y2}]"


def render_point_scaled(point: Sequence[float], box_scale: str = "unit") -> str:
    """``"<point>(x, y)</point>"`` with the normalised ``point`` on ``box_scale``'s grid."""
    if check_scale(box_scale) == "unit":
        return render_point(point)
    x, y = (format_scaled(v, box_scale) for v in point)
    return f"<point>({x}, {y})</point>"


def rescale_texts(prompt: str, target: str, box_scale: str) -> tuple[str, str]:
    """A referring row's ``input``/``output`` with every point tag of the prompt and the target
    box re-rendered on ``box_scale``'s grid (``unit``: returned unchanged). The target must be a
    release box ``[x1 y1, x2 y2]``; raises ``ValueError`` otherwise."""
    if check_scale(box_scale) == "unit":
        return prompt, target
    box = parse_box(target)
    prompt = _POINT_RE.sub(
        lambda m: render_point_scaled((float(m["x"]), float(m["y"])), box_scale), prompt
    )
    return prompt, render_box_scaled(box, box_scale)
