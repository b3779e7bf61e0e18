"""``show`` pictures and ``info`` reports on the embedded real sample, converted once per module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sample_support import convert_sample

from bigearthnet_txt.conversion.annotations import convert_annotations
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.info import describe, format_info
from bigearthnet_txt.show import MISSING_PANEL, PALETTE, box_pixels, load_sample, show, stretch
from bigearthnet_txt.tables import read_tables

BENCH_PATCH = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85"  # has S1
NO_S1_PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
PANEL = 360
MARGIN, TITLE = 12, 24  # layout documented in bigearthnet_txt.show


@pytest.fixture(scope="module")
def converted(tmp_path_factory, sample_release_file) -> Path:
    """Annotations and imagery (S2 of all six sample patches, S1 where the sample has it)."""
    return convert_sample(tmp_path_factory.mktemp("converted"), sample_release_file)


@pytest.fixture(scope="module")
def tables_only(tmp_path_factory, sample_release_file) -> Path:
    out = tmp_path_factory.mktemp("tables_only")
    convert_annotations(sample_release_file, out, progress=False)
    return out


def origin(panel_index: int) -> tuple[int, int]:
    return MARGIN + panel_index * (PANEL + MARGIN), MARGIN + TITLE


def referring_rows(data: Path, patch_id: str) -> list[dict]:
    rows = read_tables(
        data, columns=["ID", "patch_id", "category", "output", "box", "point"]
    ).to_pylist()
    return sorted(
        (r for r in rows if r["patch_id"] == patch_id and r["box"] is not None),
        key=lambda r: (r["category"], r["ID"]),
    )


# --- pure helpers ----------------------------------------------------------------------------


def test_stretch_maps_percentiles_to_0_and_255():
    channel = np.arange(101, dtype=np.float64).reshape(1, 101)
    out = stretch(channel, np.ones_like(channel, dtype=bool))
    assert out.dtype == np.uint8
    assert out[0, 2] == 0 and out[0, 98] == 255 and out[0, 0] == 0 and out[0, 100] == 255
    assert out[0, 50] == 128
    flat = stretch(np.full((2, 2), 7.0), np.array([[True, True], [True, False]]))
    assert flat.tolist() == [[128, 128], [128, 0]]
    assert not stretch(channel, np.zeros_like(channel, dtype=bool)).any()


def test_box_pixels():
    assert box_pixels((0.0, 0.0, 1.0, 1.0), 360) == (0, 0, 359, 359)
    assert box_pixels((0.25, 0.5, 0.5, 0.75), 120) == (30, 60, 59, 89)
    assert box_pixels((0.5, 0.5, 0.5, 0.5), 360) == (180, 180, 180, 180)
    assert box_pixels((1.0, 1.0, 1.0, 1.0), 360) == (359, 359, 359, 359)


# --- pictures --------------------------------------------------------------------------------


def test_png_size_and_panels(converted, tmp_path):
    out = show(BENCH_PATCH, converted, tmp_path / "patch.png")
    image = Image.open(out)
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.width == 3 * (PANEL + MARGIN) + MARGIN + 560 + MARGIN == 1700
    assert image.height >= MARGIN + TITLE + PANEL + MARGIN
    pixels = np.asarray(image)
    for i in range(3):  # imagery, not the grey "missing" fill
        x0, y0 = origin(i)
        tile = pixels[y0 : y0 + PANEL, x0 : x0 + PANEL]
        assert len(np.unique(tile.reshape(-1, 3), axis=0)) > 50
    small = Image.open(show(BENCH_PATCH, converted, tmp_path / "small.png", panel=120))
    assert small.width == 3 * (120 + MARGIN) + MARGIN + 560 + MARGIN


def test_selected_box_is_drawn_at_its_pixels(converted, tmp_path):
    rows = referring_rows(converted, BENCH_PATCH)
    k, row = next((k, r) for k, r in enumerate(rows) if r["category"] == "point")
    colour = PALETTE[k % len(PALETTE)]
    pixels = np.asarray(Image.open(show(row["ID"], converted, tmp_path / "row.png")))
    x1, y1, x2, y2 = (float(v) for v in row["box"])
    left, top = round(x1 * PANEL), round(y1 * PANEL)
    right, bottom = round(x2 * PANEL) - 1, round(y2 * PANEL) - 1
    px, py = round(row["point"][0] * PANEL), round(row["point"][1] * PANEL)
    for i in range(3):
        x0, y0 = origin(i)
        edges = [(left, y) for y in range(top, bottom + 1)] + [
            (right, y) for y in range(top, bottom + 1)
        ]
        edges += [(x, top) for x in range(left, right + 1)] + [
            (x, bottom) for x in range(left, right + 1)
        ]
        away_from_dot = [(x, y) for x, y in edges if abs(x - px) > 6 or abs(y - py) > 6]
        assert len(away_from_dot) > 20
        for x, y in away_from_dot:
            assert tuple(pixels[y0 + y, x0 + x]) == colour, (i, x, y)
        assert tuple(pixels[y0 + py, x0 + px]) == colour  # the prompt point
        inside = (left + 5, (top + bottom) // 2)
        if right - left > 10 and abs(inside[1] - py) > 6:
            assert tuple(pixels[y0 + inside[1], x0 + inside[0]]) != colour


def test_every_referring_box_is_outlined(converted, tmp_path):
    rows = referring_rows(converted, BENCH_PATCH)
    pixels = np.asarray(Image.open(show(BENCH_PATCH, converted, tmp_path / "all.png")))
    x0, y0 = origin(0)
    for k, row in enumerate(rows):
        x1, y1, x2, y2 = (float(v) * PANEL for v in row["box"])  # box edges in panel pixels
        left, top = min(round(x1), PANEL - 1), min(round(y1), PANEL - 1)
        right, bottom = max(left, round(x2) - 1), max(top, round(y2) - 1)
        outline = np.concatenate(
            [
                pixels[y0 + top : y0 + bottom + 1, x0 + left],
                pixels[y0 + top : y0 + bottom + 1, x0 + right],
                pixels[y0 + top, x0 + left : x0 + right + 1],
                pixels[y0 + bottom, x0 + left : x0 + right + 1],
            ]
        )  # boxes drawn later may cover parts of it
        assert (outline == PALETTE[k % len(PALETTE)]).all(axis=1).sum() > 10, row["ID"]


def test_patch_without_s1_gets_a_grey_panel(converted, tmp_path):
    sample = load_sample(NO_S1_PATCH, converted)
    assert sample.s1 is None and sample.s2_10m is not None and sample.info["has_s1"] is False
    pixels = np.asarray(Image.open(show(NO_S1_PATCH, converted, tmp_path / "no_s1.png")))
    x0, y0 = origin(2)
    assert tuple(pixels[y0 + 2, x0 + 2]) == MISSING_PANEL
    assert tuple(pixels[y0 + PANEL - 3, x0 + PANEL - 3]) == MISSING_PANEL


def test_queries_by_s1_name_and_row_id(converted):
    by_patch = load_sample(BENCH_PATCH, converted)
    s1_name = by_patch.rows[0]["s1_name"]
    by_s1 = load_sample(s1_name, converted)
    assert by_s1.patch_id == BENCH_PATCH and len(by_s1.rows) == len(by_patch.rows)
    some_id = by_patch.rows[3]["ID"]
    by_id = load_sample(some_id, converted)
    assert by_id.patch_id == BENCH_PATCH and by_id.selected_id == some_id
    assert by_patch.s2_10m.shape == (4, 120, 120) and by_patch.s1.shape == (2, 120, 120)


def test_without_imagery_store(tables_only, tmp_path):
    pixels = np.asarray(Image.open(show(BENCH_PATCH, tables_only, tmp_path / "texts.png")))
    for i in range(3):
        x0, y0 = origin(i)
        assert tuple(pixels[y0 + 2, x0 + 2]) == MISSING_PANEL


def test_unknown_queries(converted, tmp_path, capsys):
    with pytest.raises(ValueError, match="no row with ID"):
        load_sample(10**9, converted)
    with pytest.raises(ValueError, match="no patch"):
        load_sample("S2B_NOT_A_PATCH", converted)
    assert (
        main(
            ["show", "S2B_NOT_A_PATCH", "--data", str(converted), "--out", str(tmp_path / "x.png")]
        )
        == 2
    )
    assert "no patch" in capsys.readouterr().err


def test_show_cli(converted, tmp_path):
    out = tmp_path / "cli.png"
    assert (
        main(["show", BENCH_PATCH, "--data", str(converted), "--out", str(out), "--panel", "240"])
        == 0
    )
    assert Image.open(out).width == 3 * (240 + MARGIN) + MARGIN + 560 + MARGIN


# --- info ------------------------------------------------------------------------------------


def test_info_describes_tables_patches_and_store(converted):
    info = describe(converted)
    summary = json.loads((converted / "annotations.json").read_text())
    assert info["tables"]["rows"] == summary["rows"]
    assert info["patches"]["count"] == 6 and info["patches"]["by_split"]["bench"] == 1
    assert info["patches"]["has_s1"] == 3
    store = info["store"]
    assert store["complete"] is True and store["n_patches"] == 6 and store["bytes"] > 0
    assert store["arrays"]["s2_10m"]["shape"][1:] == [4, 120, 120]
    assert store["arrays"]["s2_10m"]["chunks"] == [1, 4, 120, 120]
    assert "blosc" in store["arrays"]["s1"]["codecs"]
    text = format_info(info)
    for expected in (
        "Annotation tables",
        "referring",
        "Patch table: 6 patches",
        "imagery.zarr",
        "shard_patches",
        "setting allow_missing_s1: true",
    ):
        assert expected in text


def test_info_cli(converted, tables_only, tmp_path, capsys):
    assert main(["info", str(converted), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["store"]["n_patches"] == 6
    assert main(["info", str(tables_only)]) == 0
    printed = capsys.readouterr().out
    assert "Annotation tables" in printed and "imagery.zarr" not in printed
    assert main(["info", str(tmp_path)]) == 2
    assert "not a converted data set" in capsys.readouterr().err
