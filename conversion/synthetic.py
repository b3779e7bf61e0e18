"""Annotation files in the exact schema of ``BigEarthNet.txt.parquet``, for tests, demos
and benchmarks.

The text release is not redistributable offline, so the project builds stand-ins that follow its
schema (``RELEASE_SCHEMA``) and every format variant SPEC §1 lists: MCQ options containing commas,
shortest-float boxes with ``0.0`` and ``1.0``, ``<ref>``/``<point>`` prompts, the literal ``None``
category for captions, ``bench`` rows and patches without a caption.

Two modes:

* :func:`sample_annotations` — rows for a list of real patches (default: the real sample patches
  shipped with the project), with labels, country and split from ``metadata.parquet``.
* :func:`write_full_size` — a file of the release's size (9,553,962 rows, 464,044 patches, 78 row
  groups, rows of a patch spread over neighbouring row groups) from realistic templates.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.annotations import render_box, render_mcq, render_point, render_ref
from bigearthnet_txt.schema import (
    CATEGORY_NONE,
    COUNTRIES,
    MCQ_LETTERS,
    RELEASE_SCHEMA,
    SEASONS,
    SPLITS,
    TYPE_BINARY,
    TYPE_BOX,
    TYPE_CAPTION,
    TYPE_MCQ,
)

CLASSES: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
CLIMATE_ZONES: tuple[str, ...] = (
    "Cold, no dry season, warm summer",
    "Temperate, no dry season, warm summer",
    "Cold, no dry season, cold summer",
    "Temperate, dry summer, hot summer",
    "Temperate, dry summer, warm summer",
    "Temperate, no dry season, hot summer",
    "Cold, no dry season, hot summer",
    "Arid, steppe, cold",
    "Polar, tundra",
    "Temperate, no dry season, cold summer",
)
CAPTION_PROMPT = (
    "Give a detailed overview of this satellite scene, including the region and land cover classes."
)
DIRECTIONS = (
    "left",
    "right",
    "top",
    "bottom",
    "top left",
    "top right",
    "bottom left",
    "bottom right",
)

# Real size of the release (SPEC §1).
FULL_ROWS = 9_553_962
FULL_PATCHES = 464_044
FULL_ROW_GROUPS = 78
SPLIT_SHARE = {"train": 0.4893, "validation": 0.2569, "test": 0.2515, "bench": 0.0023}
ROWS_PER_PATCH_BY_TASK = {"binary": 7.812, "mcq": 7.023, "point": 2.465, "reference": 2.288}


@dataclass
class PatchInfo:
    """What the templates need to know about one patch."""

    patch_id: str
    s1_name: str
    split: str
    labels: list[str]
    country: str
    season: str
    climate_zone: str
    latitude: float
    longitude: float
    caption: bool = True  # whether the patch gets a caption (112 bench patches have none)
    extra: dict = field(default_factory=dict)


def season_of(patch_id: str) -> str:
    """Meteorological season of the acquisition date in a Sentinel-2 patch name."""
    month = int(patch_id.split("_")[2][4:6])
    return {12: "Winter", 1: "Winter", 2: "Winter", 3: "Spring", 4: "Spring", 5: "Spring",
            6: "Summer", 7: "Summer", 8: "Summer"}.get(month, "Fall")  # fmt: skip


# --- one patch's rows ------------------------------------------------------------------------


def _box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A box on the 0.01 grid; a third of them touch the image border (0.0 / 1.0)."""
    x1, x2 = sorted(int(v) for v in rng.integers(0, 101, 2))
    y1, y2 = sorted(int(v) for v in rng.integers(0, 101, 2))
    if rng.random() < 0.33:
        x1, y2 = 0, 100
    return (x1 / 100, y1 / 100, x2 / 100, y2 / 100)


def _options(rng: np.random.Generator, correct: str, pool: Sequence[str]) -> tuple[list[str], str]:
    others = [p for p in pool if p != correct]
    picks = [others[i] for i in rng.choice(len(others), 3, replace=False)]
    answer = int(rng.integers(0, 4))
    picks.insert(answer, correct)
    return picks, MCQ_LETTERS[answer]


def _pair(rng: np.random.Generator, pool: Sequence[str]) -> str:
    a, b = sorted(pool[i] for i in rng.choice(len(pool), 2, replace=False))
    return f"{a} and {b}"


def patch_rows(p: PatchInfo, rng: np.random.Generator, counts: dict[str, int]) -> Iterator[tuple]:
    """Yield ``(input, output, type, category)`` for one patch, ``counts`` rows per task kind."""
    labels = p.labels or ["Pastures"]
    absent = [c for c in CLASSES if c not in labels]
    if p.caption:
        names = [c.lower() for c in labels]
        listed = "; ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        text = (
            f"This {p.season.lower()} scene from {p.country}, in a {p.climate_zone.lower()} "
            f"climate, shows {listed}."
        )
        yield CAPTION_PROMPT, text, TYPE_CAPTION, CATEGORY_NONE
    binary = (
        ("presence", "Is there any {c} in the image?"),
        ("area", "Does {c} cover more than a quarter of the image?"),
        ("count", "Are there more than two separate areas of {c}?"),
        ("adjacency", "Would you say that any {c} lies next to {d} in the image?"),
    )
    for i in range(counts["binary"]):
        category, template = binary[i % len(binary)]
        present = bool(rng.random() < 0.5)
        c = (labels if present else absent)[int(rng.integers(len(labels if present else absent)))]
        d = labels[int(rng.integers(len(labels)))]
        yield (
            template.format(c=c.lower(), d=d.lower()),
            "yes" if present else "no",
            TYPE_BINARY,
            category,
        )
    for i in range(counts["mcq"]):
        kind = i % 8
        if kind == 0:
            options, ans = _options(rng, labels[0], CLASSES)
            q = "Which of the following land cover classes is present in the image?"
        elif kind == 1:
            options, ans = _options(rng, labels[-1], CLASSES)
            q = "Which class covers the largest area?"
        elif kind == 2:
            options, ans = _options(
                rng, str(int(rng.integers(1, 6))), [str(n) for n in range(1, 9)]
            )
            q = f"How many separate regions of {labels[0].lower()} are there?"
        elif kind == 3:
            correct = _pair(rng, labels) if len(labels) > 1 else _pair(rng, CLASSES)
            pool = {correct}
            while len(pool) < 6:
                pool.add(_pair(rng, CLASSES))
            options, ans = _options(rng, correct, sorted(pool))
            q = "Which classes share a boundary?"
        elif kind == 4:
            options, ans = _options(rng, "top left", DIRECTIONS)
            q = f"Where is the {labels[0].lower()} relative to the {labels[-1].lower()}?"
            kind_category = "relative pos"
        elif kind == 5:
            options, ans = _options(rng, p.country, COUNTRIES)
            q = "In which country was this image taken?"
        elif kind == 6:
            options, ans = _options(rng, p.season, SEASONS)
            q = "In which season was this image taken?"
        else:
            options, ans = _options(rng, p.climate_zone, CLIMATE_ZONES)
            q = "What is the climate zone of this region?"
        kind_category = ("presence", "area", "count", "adjacency", "relative pos", "country",
                         "season", "climate zone")[kind]  # fmt: skip
        yield render_mcq(q, options), ans, TYPE_MCQ, kind_category
    for _ in range(counts["point"]):
        box = _box(rng)
        x = round((box[0] + box[2]) / 2, 2)
        y = round((box[1] + box[3]) / 2, 2)
        prompt = (
            f"Provide a bounding box for the land cover class instance at {render_point((x, y))}"
        )
        yield prompt, render_box(box), TYPE_BOX, "point"
    for i in range(counts["reference"]):
        what = ("largest connected region of", "smallest region of", "region of")[i % 3]
        expr = f"{what} {labels[i % len(labels)].lower()}"
        yield (
            f"Identify the location of the {render_ref(expr)}.",
            render_box(_box(rng)),
            TYPE_BOX,
            "reference",
        )


def _table(
    rows: list[tuple], patches: list[PatchInfo], owner: list[int], ids: np.ndarray
) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]

    def get(attr):
        return [getattr(patches[i], attr) for i in owner]

    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(get("s1_name"), pa.string()),
            pa.array(get("patch_id"), pa.string()),
            pa.array(cols[0], pa.string()),
            pa.array(cols[1], pa.string()),
            pa.array(cols[2], pa.string()),
            pa.array(cols[3], pa.string()),
            pa.array(get("split"), pa.string()),
            pa.array(get("latitude"), pa.float64()),
            pa.array(get("longitude"), pa.float64()),
            pa.array(get("country"), pa.string()),
            pa.array(get("season"), pa.string()),
            pa.array(get("climate_zone"), pa.string()),
        ],
        schema=RELEASE_SCHEMA,
    )


def annotations_for(
    patches: Sequence[PatchInfo],
    seed: int = 0,
    first_id: int = 0,
    every_category: bool = True,
    scale: float = 1.0,
) -> pa.Table:
    """Release-schema rows for ``patches``, in a shuffled row order.

    Rows per patch follow the release's mix (about 20.6 per patch, times ``scale``);
    ``every_category`` guarantees each patch at least one row of every type and category.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    owner: list[int] = []
    minimum = {"binary": 4, "mcq": 8, "point": 1, "reference": 1} if every_category else {}
    for i, p in enumerate(patches):
        counts = {k: max(int(rng.poisson(v * scale)), minimum.get(k, 0))
                  for k, v in ROWS_PER_PATCH_BY_TASK.items()}  # fmt: skip
        for row in patch_rows(p, rng, counts):
            rows.append(row)
            owner.append(i)
    order = rng.permutation(len(rows))
    rows = [rows[j] for j in order]
    owner = [owner[j] for j in order]
    ids = first_id + rng.permutation(len(rows)).astype(np.int64)
    return _table(rows, list(patches), owner, ids)


# --- the embedded real sample ----------------------------------------------------------------

#: The real Sentinel-2 sample patches (v2 names) and the text split each gets in the fixture.
#: Splits follow ``metadata.parquet`` except one train patch that stands in for ``bench``.
SAMPLE_PATCH_SPLITS: dict[str, str] = {
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_89_18": "train",
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_04_55": "train",
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43": "validation",
    "S2A_MSIL2A_20180526T100031_N9999_R122_T34WFU_14_23": "validation",
    "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_56_35": "test",
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85": "bench",
}
#: A bench patch without a caption, as 112 real bench patches are.
SAMPLE_PATCHES_WITHOUT_CAPTION = frozenset({"S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85"})
SAMPLE_CLIMATE = {"Austria": CLIMATE_ZONES[0], "Ireland": CLIMATE_ZONES[1],
                  "Portugal": CLIMATE_ZONES[4], "Finland": CLIMATE_ZONES[2]}  # fmt: skip


def patch_infos_from_metadata(
    metadata: Path,
    splits: dict[str, str],
    without_caption: frozenset[str] = frozenset(),
    centres: dict[str, tuple[float, float]] | None = None,
) -> list[PatchInfo]:
    """PatchInfo for the given patch ids, labels/country/s1_name from ``metadata.parquet``.

    ``centres`` (``{patch_id: (latitude, longitude)}``, e.g. from
    :func:`bigearthnet_txt.conversion.geo_centre.sample_patch_centres`) gives the coordinates; a
    patch without one gets a value derived from its UTM tile (plausible, not its real place).
    """
    import pyarrow.compute as pc

    table = pq.read_table(metadata, columns=["patch_id", "labels", "country", "s1_name"])
    table = table.filter(pc.is_in(table["patch_id"], pa.array(list(splits))))
    found = dict(zip(table["patch_id"].to_pylist(), table.to_pylist(), strict=True))
    missing = [pid for pid in splits if pid not in found]
    if missing:
        raise ValueError(f"{metadata}: no metadata row for patch(es) {', '.join(missing)}")
    infos = []
    for pid, split in splits.items():
        row = found[pid]
        zone = int(pid.split("_")[5][1:3])
        lat, lon = (centres or {}).get(
            pid, (45.0 + zlib.crc32(pid.encode()) % 1000 / 100, float(zone * 6 - 183))
        )
        infos.append(
            PatchInfo(
                patch_id=pid,
                s1_name=row["s1_name"],
                split=split,
                labels=list(row["labels"]),
                country=row["country"],
                season=season_of(pid),
                climate_zone=SAMPLE_CLIMATE.get(row["country"], CLIMATE_ZONES[0]),
                latitude=round(lat, 6),
                longitude=round(lon, 6),
                caption=pid not in without_caption,
            )
        )
    return infos


def sample_annotations(metadata: Path, seed: int = 0) -> pa.Table:
    """Fixture rows for the real sample patches shipped with the project; their latitude and
    longitude are the centres of the patches' GeoTIFFs."""
    from bigearthnet_txt.conversion.geo_centre import sample_patch_centres

    infos = patch_infos_from_metadata(
        metadata,
        SAMPLE_PATCH_SPLITS,
        SAMPLE_PATCHES_WITHOUT_CAPTION,
        centres=sample_patch_centres(metadata),
    )
    return annotations_for(infos, seed=seed)


def templated_texts(num_patches: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(texts, patch_ids)``: ``input + " " + output`` of release-like rows for made-up patches."""
    rng = np.random.default_rng(seed)
    table = annotations_for(synthetic_patches(num_patches, rng), seed=seed, every_category=False)
    texts = [
        f"{i} {o}"
        for i, o in zip(table["input"].to_pylist(), table["output"].to_pylist(), strict=True)
    ]
    return texts, table["patch_id"].to_pylist()


def write_sample(path: Path, metadata: Path, seed: int = 0, row_group_size: int = 50) -> Path:
    """Write :func:`sample_annotations` to ``path`` (small row groups, so patches straddle them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(sample_annotations(metadata, seed), path, row_group_size=row_group_size)
    return path


# --- full size -------------------------------------------------------------------------------


def synthetic_patches(n: int, rng: np.random.Generator) -> list[PatchInfo]:
    """``n`` made-up patches with release-like names, split shares, labels and metadata."""
    splits = rng.choice(SPLITS, size=n, p=[SPLIT_SHARE[s] for s in SPLITS])
    tiles = [
        f"T{z:02d}{b}{a}{c}" for z in range(29, 36) for b in "STUVW" for a in "NPQU" for c in "DP"
    ]
    infos = []
    for i in range(n):
        tile = tiles[(i // 10_000) % len(tiles)]
        r, c = divmod(i % 10_000, 100)
        month = int(rng.integers(1, 13))
        country = COUNTRIES[int(rng.integers(len(COUNTRIES)))]
        labels = sorted(
            CLASSES[j] for j in rng.choice(len(CLASSES), int(rng.integers(1, 6)), replace=False)
        )
        pid = f"S2A_MSIL2A_2017{month:02d}15T101031_N9999_R022_{tile}_{r}_{c}"
        infos.append(
            PatchInfo(
                patch_id=pid,
                s1_name=f"S1A_IW_GRDH_1SDV_2017{month:02d}15T165043_{tile[1:]}_{r}_{c}",
                split=str(splits[i]),
                labels=labels,
                country=country,
                season=season_of(pid),
                climate_zone=CLIMATE_ZONES[min(int(rng.exponential(1.5)), 9)],
                latitude=float(np.round(rng.uniform(37, 70), 6)),
                longitude=float(np.round(rng.uniform(-10, 30), 6)),
                caption=not (splits[i] == "bench" and rng.random() < 0.1),
            )
        )
    return infos


def write_full_size(
    path: Path,
    rows: int = FULL_ROWS,
    patches: int = FULL_PATCHES,
    row_groups: int = FULL_ROW_GROUPS,
    seed: int = 0,
    block_patches: int = 2_000,
) -> Path:
    """Write a release-sized annotation file (defaults: 9.55 M rows, 78 row groups).

    Patches are generated in blocks whose shuffled rows are written with a fixed row-group
    size, so the rows of a patch are close together but may straddle two row groups, and
    IDs are not in patch order. Rows per patch are scaled to slightly overshoot ``rows`` and
    the file is cut at exactly ``rows``. Memory stays bounded by one block.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale = 1.01 * rows / (patches * FULL_ROWS / FULL_PATCHES)
    infos = synthetic_patches(patches, rng)
    rows_per_group = math.ceil(rows / row_groups)
    written = 0
    id_order = rng.permutation(rows)  # unique IDs, not in patch order
    with pq.ParquetWriter(path, RELEASE_SCHEMA) as writer:
        pending: list[pa.Table] = []
        pending_rows = 0
        for start in range(0, patches, block_patches):
            if written == rows:
                break
            block = infos[start : start + block_patches]
            table = annotations_for(block, seed=seed + start, every_category=False, scale=scale)
            table = table.slice(0, rows - written)
            table = table.set_column(
                0, "ID", pa.array(id_order[written : written + len(table)], pa.int64())
            )
            written += len(table)
            pending.append(table)
            pending_rows += len(table)
            while pending_rows >= rows_per_group:
                merged = pa.concat_tables(pending)
                writer.write_table(merged.slice(0, rows_per_group), row_group_size=rows_per_group)
                rest = merged.slice(rows_per_group)
                pending, pending_rows = [rest], len(rest)
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=rows_per_group)
    return path
