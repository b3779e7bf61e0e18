"""A picture of one patch: its imagery, the boxes and points of its referring rows, its texts.

>>> show("S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85", "DIR", "patch.png")  # doctest: +SKIP
>>> show(1234, "DIR", "row.png")  # a row ID: its patch, with that row highlighted  # doctest: +SKIP

Layout, left to right: three panels of ``panel`` × ``panel`` pixels (the 120 × 120 patch enlarged
by pixel repetition) — true colour (R=B04, G=B03, B=B02), false colour (R=B08, G=B04, B=B03) and
Sentinel-1 (R=VV, G=VH, B=VV−VH in dB, i.e. the VV/VH ratio) — each channel stretched linearly
between its 2nd and 98th percentile over valid pixels (S2 nodata 0 and non-finite S1 shown black).
A patch without S1 (``has_s1`` false) or without imagery gets a grey panel saying so. Then a text
column: the patch's metadata and every text of the patch, wrapped.

Each referring row gets a colour: its target box is outlined in that colour on all three panels
(box pixels ``[x1·120, x2·120) × [y1·120, y2·120)`` scaled to the panel; the outline lies inside
the box), a ``point`` row's prompt point is a dot of the same colour, and the row's line in the
text column starts with a swatch of it. A row ID given as the query is marked with ``>>`` in the
list and its box is drawn last, with a thicker outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from PIL import Image, ImageDraw, ImageFont

from bigearthnet_txt.schema import (
    CATEGORY_POINT,
    IMAGERY_STORE,
    PATCH_SIZE,
    TYPE_BINARY,
    TYPE_BOX,
    TYPE_CAPTION,
    TYPE_MCQ,
)
from bigearthnet_txt.tables import read_tables

PANEL = 360  # default panel size in pixels (3 x 120)
MARGIN = 12
TITLE_HEIGHT = 24
TEXT_WIDTH = 560
FONT_SIZE = 13
LINE_HEIGHT = 17
BOX_WIDTH = 2
SELECTED_BOX_WIDTH = 4
POINT_RADIUS = 4
PERCENTILES = (2.0, 98.0)
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (20, 20, 20)
MISSING_PANEL = (128, 128, 128)
SHADE = (236, 240, 246)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 64, 0), (0, 255, 64),
    (64, 128, 255), (255, 128, 192), (160, 255, 0), (255, 170, 0), (170, 80, 255),
)  # fmt: skip
ROW_COLUMNS = (
    "ID",
    "patch_id",
    "s1_name",
    "input",
    "output",
    "type",
    "category",
    "split",
    "latitude",
    "longitude",
    "country",
    "season",
    "climate_zone",
    "box",
    "point",
)
TYPE_ORDER = (TYPE_CAPTION, TYPE_BINARY, TYPE_MCQ, TYPE_BOX)


@dataclass
class Sample:
    """One patch: its metadata, its annotation rows and its imagery (None where absent)."""

    patch_id: str
    rows: list[dict]
    info: dict = field(default_factory=dict)  # patch-table row (labels, has_s1, …) when stored
    s2_10m: np.ndarray | None = None  # uint16 [4, 120, 120]: B02 B03 B04 B08
    s1: np.ndarray | None = None  # float32 [2, 120, 120]: VV VH in dB
    selected_id: int | None = None

    @property
    def referring(self) -> list[dict]:
        """The referring rows, in list order (the order their colours are assigned in)."""
        return [r for r in self.rows if r["type"] == TYPE_BOX]

    def colour_of(self, row_id: int) -> tuple[int, int, int]:
        """Palette colour of a referring row (cycling after ``len(PALETTE)`` rows)."""
        ids = [r["ID"] for r in self.referring]
        return PALETTE[ids.index(row_id) % len(PALETTE)]


# --- loading ---------------------------------------------------------------------------------


def load_sample(query: str | int, data_dir: Path | str) -> Sample:
    """The sample for a row ID (digits) or a patch name (``patch_id`` or ``s1_name``)."""
    data_dir = Path(data_dir)
    selected = None
    text = str(query).strip()
    if text.isdigit():
        selected = int(text)
        hit = read_tables(
            data_dir, columns=["ID", "patch_id"], row_filter=pc.field("ID") == selected
        )
        if hit.num_rows == 0:
            raise ValueError(f"{data_dir}: no row with ID {selected}")
        patch_id = hit["patch_id"][0].as_py()
    else:
        patch_id = text
    rows = read_tables(data_dir, columns=ROW_COLUMNS, row_filter=pc.field("patch_id") == patch_id)
    if rows.num_rows == 0:
        rows = read_tables(
            data_dir, columns=ROW_COLUMNS, row_filter=pc.field("s1_name") == patch_id
        )
        if rows.num_rows:
            patch_id = rows["patch_id"][0].as_py()
    ordered = sorted(
        rows.to_pylist(), key=lambda r: (TYPE_ORDER.index(r["type"]), r["category"], r["ID"])
    )
    sample = Sample(patch_id=patch_id, rows=ordered, selected_id=selected)
    if (data_dir / IMAGERY_STORE).is_dir():
        _attach_imagery(sample, data_dir)
    if not sample.rows and not sample.info:
        raise ValueError(
            f"{data_dir}: no patch {patch_id!r} (neither in the tables nor in the store)"
        )
    return sample


def _attach_imagery(sample: Sample, data_dir: Path) -> None:
    from bigearthnet_txt.store import ImageryStore

    store = ImageryStore(data_dir)
    try:
        (index,) = store.indices_of([sample.patch_id])
    except KeyError:
        return
    info = store.patches.filter(pc.equal(store.patches["patch_index"], int(index))).to_pylist()[0]
    sample.info = info
    wanted = [a for a in ("s2_10m", "s1") if a in store.arrays]
    batch = store.read([int(index)], arrays=wanted)
    if "s2_10m" in batch and info.get("has_s2", True):
        sample.s2_10m = batch["s2_10m"][0]
    if "s1" in batch and info.get("has_s1", True) and np.isfinite(batch["s1"][0]).any():
        sample.s1 = batch["s1"][0]


# --- composites ------------------------------------------------------------------------------


def stretch(
    channel: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = PERCENTILES
) -> np.ndarray:
    """uint8 linear stretch of ``channel`` between the given percentiles of its valid pixels
    (invalid pixels 0; a flat channel maps to 128)."""
    values = channel.astype(np.float64)
    out = np.zeros(channel.shape, dtype=np.uint8)
    if not valid.any():
        return out
    low, high = np.percentile(values[valid], percentiles)
    if high <= low:
        out[valid] = 128
        return out
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0
    out[valid] = np.round(scaled[valid]).astype(np.uint8)
    return out


def _composite(channels: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
    return np.stack([stretch(c, valid) for c in channels], axis=-1)


def true_colour(s2_10m: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[120, 120, 3]`` from B04/B03/B02 (``s2_10m`` band order B02 B03 B04 B08)."""
    b02, b03, b04 = s2_10m[0], s2_10m[1], s2_10m[2]
    return _composite([b04, b03, b02], (b02 > 0) & (b03 > 0) & (b04 > 0))


def false_colour(s2_10m: np.ndarray) -> np.ndarray:
    """RGB uint8 from B08/B04/B03: vegetation red."""
    b03, b04, b08 = s2_10m[1], s2_10m[2], s2_10m[3]
    return _composite([b08, b04, b03], (b03 > 0) & (b04 > 0) & (b08 > 0))


def s1_composite(s1: np.ndarray) -> np.ndarray:
    """RGB uint8 from VV, VH and VV−VH (dB; the linear VV/VH ratio)."""
    vv, vh = s1[0].astype(np.float64), s1[1].astype(np.float64)
    ratio = vv - vh
    return _composite([vv, vh, ratio], np.isfinite(vv) & np.isfinite(vh))


# --- drawing ---------------------------------------------------------------------------------


def box_pixels(box, panel: int) -> tuple[int, int, int, int]:
    """Inclusive panel pixel rectangle ``(left, top, right, bottom)`` of a normalised box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = min(round(x1 * panel), panel - 1), min(round(y1 * panel), panel - 1)
    right = max(left, min(panel, round(x2 * panel)) - 1)
    bottom = max(top, min(panel, round(y2 * panel)) - 1)
    return left, top, right, bottom


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _row_text(row: dict, selected: bool) -> str:
    marker = ">> " if selected else ""
    if row["type"] == TYPE_CAPTION:
        return f"{marker}caption ({row['ID']}): {row['output']}"
    kind = row["type"] if row["type"] != TYPE_BOX else "referring"
    return f"{marker}{kind}/{row['category']} ({row['ID']}): {row['input']} -> {row['output']}"


def _header(sample: Sample) -> list[str]:
    first = sample.rows[0] if sample.rows else {}
    info = sample.info
    lines = [sample.patch_id]
    s1_name = first.get("s1_name") or info.get("s1_name")
    if s1_name:
        lines.append(f"S1: {s1_name}" + ("" if info.get("has_s1", True) else " (not in the store)"))
    split = first.get("split") or info.get("split")
    where = ", ".join(
        str(v)
        for v in (
            first.get("country") or info.get("country"),
            first.get("season"),
            first.get("climate_zone"),
        )
        if v
    )
    lines.append(f"split {split}; {where}")
    if first:
        lines.append(
            f"lat {first['latitude']:.4f}, lon {first['longitude']:.4f}; {len(sample.rows)} texts"
        )
    if info.get("labels"):
        lines.append("labels: " + "; ".join(info["labels"]))
    return lines


def _panels(sample: Sample) -> list[tuple[str, np.ndarray | None, str]]:
    s2, s1 = sample.s2_10m, sample.s1
    no_s2 = "no Sentinel-2 imagery"
    return [
        ("True colour (B04 B03 B02)", true_colour(s2) if s2 is not None else None, no_s2),
        ("False colour (B08 B04 B03)", false_colour(s2) if s2 is not None else None, no_s2),
        (
            "Sentinel-1 (VV, VH, VV-VH)",
            s1_composite(s1) if s1 is not None else None,
            "no Sentinel-1 for this patch",
        ),
    ]


def _draw_targets(draw: ImageDraw.ImageDraw, sample: Sample, x0: int, y0: int, panel: int) -> None:
    rows = sorted(sample.referring, key=lambda r: r["ID"] == sample.selected_id)
    for row in rows:
        colour = sample.colour_of(row["ID"])
        width = SELECTED_BOX_WIDTH if row["ID"] == sample.selected_id else BOX_WIDTH
        if row["box"] is not None:
            left, top, right, bottom = box_pixels(row["box"], panel)
            draw.rectangle(
                (x0 + left, y0 + top, x0 + right, y0 + bottom), outline=colour, width=width
            )
        if row["category"] == CATEGORY_POINT and row["point"] is not None:
            px, py = x0 + round(row["point"][0] * panel), y0 + round(row["point"][1] * panel)
            r = POINT_RADIUS
            draw.ellipse((px - r, py - r, px + r, py + r), fill=colour, outline=(0, 0, 0))


def figure_width(panel: int = PANEL) -> int:
    """Width in pixels of the picture for a given panel size."""
    return 3 * (panel + MARGIN) + MARGIN + TEXT_WIDTH + MARGIN


def panel_origin(i: int, panel: int = PANEL) -> tuple[int, int]:
    """Top-left pixel of panel ``i`` (0: true colour, 1: false colour, 2: Sentinel-1)."""
    return MARGIN + i * (panel + MARGIN), MARGIN + TITLE_HEIGHT


@dataclass
class _Line:
    text: str
    bold: bool = False
    indent: bool = False  # under a swatch
    swatch: tuple[int, int, int] | None = None
    shaded: bool = False  # every other text row gets a light background


def _text_lines(sample: Sample, font, bold) -> list[_Line]:
    lines = [
        _Line(part, bold=True) for line in _header(sample) for part in _wrap(line, bold, TEXT_WIDTH)
    ]
    lines.append(_Line(""))
    for n, row in enumerate(sample.rows):
        text = _row_text(row, row["ID"] == sample.selected_id)
        shaded = n % 2 == 1
        if row["type"] != TYPE_BOX:
            lines += [_Line(part, shaded=shaded) for part in _wrap(text, font, TEXT_WIDTH)]
            continue
        parts = _wrap(text, font, TEXT_WIDTH - LINE_HEIGHT - 4)
        lines += [
            _Line(
                part,
                indent=True,
                shaded=shaded,
                swatch=sample.colour_of(row["ID"]) if k == 0 else None,
            )
            for k, part in enumerate(parts)
        ]
    return lines


def render(sample: Sample, panel: int = PANEL) -> Image.Image:
    """The picture of ``sample`` (RGB); see the module docstring for the layout."""
    font, bold = _font(), _font(FONT_SIZE + 2)
    lines = _text_lines(sample, font, bold)
    panels_height = MARGIN + TITLE_HEIGHT + panel + MARGIN
    text_height = 2 * MARGIN + LINE_HEIGHT * len(lines)
    image = Image.new("RGB", (figure_width(panel), max(panels_height, text_height)), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, (title, rgb, missing) in enumerate(_panels(sample)):
        x0, y0 = panel_origin(i, panel)
        draw.text((x0, MARGIN), title, fill=TEXT_COLOUR, font=bold)
        if rgb is None:
            draw.rectangle((x0, y0, x0 + panel - 1, y0 + panel - 1), fill=MISSING_PANEL)
            draw.text(
                (x0 + panel // 2, y0 + panel // 2), missing, fill=BACKGROUND, font=bold, anchor="mm"
            )
            continue
        tile = Image.fromarray(rgb, "RGB").resize((panel, panel), Image.Resampling.NEAREST)
        image.paste(tile, (x0, y0))
        _draw_targets(draw, sample, x0, y0, panel)
    x_text = MARGIN + 3 * (panel + MARGIN)
    for k, line in enumerate(lines):
        y = MARGIN + k * LINE_HEIGHT
        if line.shaded:
            draw.rectangle((x_text - 2, y, x_text + TEXT_WIDTH, y + LINE_HEIGHT - 1), fill=SHADE)
        if line.swatch is not None:
            draw.rectangle(
                (x_text, y + 2, x_text + LINE_HEIGHT - 4, y + LINE_HEIGHT - 2),
                fill=line.swatch,
                outline=(0, 0, 0),
            )
        x = x_text + (LINE_HEIGHT + 4 if line.indent else 0)
        draw.text((x, y), line.text, fill=TEXT_COLOUR, font=bold if line.bold else font)
    return image


def show(query: str | int, data_dir: Path | str, out: Path | str, panel: int = PANEL) -> Path:
    """Render the sample of ``query`` (row ID or patch name) under ``data_dir`` to the PNG
    ``out``."""
    if panel < PATCH_SIZE:
        raise ValueError(f"panel must be at least {PATCH_SIZE} pixels, got {panel}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    render(load_sample(query, data_dir), panel).save(out, format="PNG")
    return out
