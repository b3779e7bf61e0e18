"""The single source of truth for BigEarthNet.txt: columns, dtypes, values, bands and task configs.

Everything else in the project (the parsers, the converters, the loaders, the collate
functions and the card) takes its names from here.

Text release
    ``RELEASE_SCHEMA`` — the 13 columns of ``BigEarthNet.txt.parquet`` with their Arrow types.
Annotation tables
    ``TABLE_SCHEMA`` — the 13 release columns, unchanged, followed by the parsed/derived columns
    (``PARSED_FIELDS``). Every task table has exactly this schema.
Imagery store
    ``IMAGERY_ARRAYS`` — the arrays of ``imagery.zarr`` with their bands, shapes and dtypes;
    ``PATCH_SCHEMA`` — the patch table ``patches.parquet``. Its ``has_s1`` / ``has_reference_map``
    columns are also handed out with every example of ``load_dataset``, ``BigEarthNetTxt`` and
    streaming (keys ``has_s1``, and ``has_reference_map`` when the reference map is asked for):
    False means the patch has no such image and its array holds the fill value (S1: all NaN,
    reference map: all 0).
Task configs
    ``TABLE_TASKS`` (one folder of Parquet files each) and ``CONFIGS`` (which tables a
    ``load_dataset`` config combines).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# ---------------------------------------------------------------------------------------------
# The text release (SPEC §1)
# ---------------------------------------------------------------------------------------------

RELEASE_FILENAME = "BigEarthNet.txt.parquet"
RELEASE_REPO_ID = "BIFOLD-BigEarthNetv2-0/BigEarthNet.txt"

RELEASE_SCHEMA = pa.schema(
    [
        ("ID", pa.int64()),
        ("s1_name", pa.string()),
        ("patch_id", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("type", pa.string()),
        ("category", pa.string()),
        ("split", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("country", pa.string()),
        ("season", pa.string()),
        ("climate_zone", pa.string()),
    ]
)
RELEASE_COLUMNS: tuple[str, ...] = tuple(RELEASE_SCHEMA.names)

# `type` values and the categories each admits.
TYPE_BINARY = "binary"
TYPE_MCQ = "mcq"
TYPE_CAPTION = "captioning"
TYPE_BOX = "bounding box"
TYPES: tuple[str, ...] = (TYPE_BINARY, TYPE_MCQ, TYPE_CAPTION, TYPE_BOX)

CATEGORY_NONE = "None"  # the literal string the release uses for captions
CATEGORY_POINT = "point"
CATEGORY_REFERENCE = "reference"
CATEGORY_RELATIVE_POS = "relative pos"
QUESTION_CATEGORIES: tuple[str, ...] = ("presence", "area", "count", "adjacency")
METADATA_CATEGORIES: tuple[str, ...] = ("country", "season", "climate zone")
CATEGORIES: tuple[str, ...] = (
    *QUESTION_CATEGORIES,
    CATEGORY_RELATIVE_POS,
    *METADATA_CATEGORIES,
    CATEGORY_POINT,
    CATEGORY_REFERENCE,
    CATEGORY_NONE,
)
CATEGORIES_BY_TYPE: dict[str, tuple[str, ...]] = {
    TYPE_BINARY: QUESTION_CATEGORIES,
    TYPE_MCQ: (*QUESTION_CATEGORIES, CATEGORY_RELATIVE_POS, *METADATA_CATEGORIES),
    TYPE_CAPTION: (CATEGORY_NONE,),
    TYPE_BOX: (CATEGORY_POINT, CATEGORY_REFERENCE),
}

SPLITS: tuple[str, ...] = ("train", "validation", "test", "bench")
METADATA_SPLITS: tuple[str, ...] = ("train", "validation", "test")

COUNTRIES: tuple[str, ...] = (
    "Austria",
    "Belgium",
    "Finland",
    "Ireland",
    "Kosovo",
    "Lithuania",
    "Luxembourg",
    "Portugal",
    "Serbia",
    "Switzerland",
)
SEASONS: tuple[str, ...] = ("Spring", "Summer", "Fall", "Winter")

BINARY_ANSWERS: dict[str, bool] = {"yes": True, "no": False}
MCQ_LETTERS: tuple[str, ...] = ("a", "b", "c", "d")

# ---------------------------------------------------------------------------------------------
# Annotation tables written by conversion
# ---------------------------------------------------------------------------------------------

BOX_TYPE = pa.list_(pa.float32(), 4)  # x1, y1, x2, y2, normalised to [0, 1], origin top-left
POINT_TYPE = pa.list_(pa.float32(), 2)  # x, y, normalised to [0, 1], origin top-left

PARSED_FIELDS: tuple[pa.Field, ...] = (
    pa.field("patch_index", pa.int32()),  # row of the patch in imagery.zarr; null without imagery
    pa.field("options", pa.list_(pa.string())),  # mcq: the four option texts a-d
    pa.field("answer_index", pa.int8()),  # mcq: 0..3 for a..d
    pa.field("answer_bool", pa.bool_()),  # binary: yes -> True
    pa.field("box", BOX_TYPE),  # bounding box: the target box
    pa.field("point", POINT_TYPE),  # bounding box / point: the prompt's point
    pa.field("ref", pa.string()),  # bounding box / reference: the referring expression
    pa.field(
        "uniqueness", pa.float32()
    ),  # redundancy: 1 - BLEU(text; other texts of the group)/100
    pa.field("redundancy_weight", pa.float32()),  # redundancy: weight within the group (sums to 1)
)
PARSED_COLUMNS: tuple[str, ...] = tuple(f.name for f in PARSED_FIELDS)
TABLE_SCHEMA = pa.schema([*RELEASE_SCHEMA, *PARSED_FIELDS])
TABLE_COLUMNS: tuple[str, ...] = tuple(TABLE_SCHEMA.names)

# Table tasks: one folder ``data/<task>/`` each, holding ``<split>-NNNNN.parquet`` files.
TABLE_TASKS: dict[str, tuple[str, ...]] = {
    "captions": (TYPE_CAPTION,),
    "binary": (TYPE_BINARY,),
    "mcq": (TYPE_MCQ,),
    "referring": (TYPE_BOX,),
}
TASK_OF_TYPE: dict[str, str] = {t: task for task, types in TABLE_TASKS.items() for t in types}


@dataclass(frozen=True)
class TaskConfig:
    """A ``load_dataset`` config: a name, the table tasks it reads and what it is for."""

    name: str
    tables: tuple[str, ...]
    description: str


CONFIGS: dict[str, TaskConfig] = {
    c.name: c
    for c in (
        TaskConfig("captions", ("captions",), "Captioning: one detailed caption per patch."),
        TaskConfig("binary", ("binary",), "Yes/no questions (presence, area, count, adjacency)."),
        TaskConfig("mcq", ("mcq",), "Multiple-choice questions with four options a-d."),
        TaskConfig("vqa", ("binary", "mcq"), "Visual question answering: binary + mcq."),
        TaskConfig("referring", ("referring",), "Referring boxes from a point or an expression."),
        TaskConfig("all", tuple(TABLE_TASKS), "Every task."),
    )
}
DEFAULT_CONFIG = "all"

DATA_DIR = "data"  # DIR/data/<task>/<split>-NNNNN.parquet
ANNOTATION_SUMMARY = "annotations.json"  # DIR/annotations.json: rows per task/split, settings
SHARD_PATTERN = "{split}-{index:05d}.parquet"


def shard_glob(task: str, split: str) -> str:
    """Relative glob of the Parquet shards of one table task and split."""
    return f"{DATA_DIR}/{task}/{split}-*.parquet"


# ---------------------------------------------------------------------------------------------
# Imagery (SPEC §2) and the imagery store
# ---------------------------------------------------------------------------------------------

# Sentinel-2 band order of the official loader (SPEC §1), used for 12-band S2 tensors.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
S1_BANDS: tuple[str, ...] = ("VV", "VH")
PATCH_SIZE = 120  # pixels of the 10 m grid; every patch covers 1200 m x 1200 m


@dataclass(frozen=True)
class ImageryArray:
    """One array of ``imagery.zarr``: shape ``[N, len(bands), size, size]`` (or ``[N, size, size]``
    when ``bands`` is empty), with the given NumPy dtype."""

    name: str
    bands: tuple[str, ...]
    size: int
    resolution_m: int
    dtype: str
    units: str
    nodata: float | int | None


S2_10M = ImageryArray(
    "s2_10m", ("B02", "B03", "B04", "B08"), 120, 10, "uint16", "reflectance x 10000", 0
)
S2_20M = ImageryArray(
    "s2_20m", ("B05", "B06", "B07", "B8A", "B11", "B12"), 60, 20, "uint16", "reflectance x 10000", 0
)
S2_60M = ImageryArray("s2_60m", ("B01", "B09"), 20, 60, "uint16", "reflectance x 10000", 0)
S1 = ImageryArray("s1", S1_BANDS, 120, 10, "float32", "backscatter dB", None)
REFERENCE_MAP = ImageryArray("reference_map", (), 120, 10, "uint16", "CORINE 2018 level-3 code", 0)
S2_ARRAYS: tuple[ImageryArray, ...] = (S2_10M, S2_20M, S2_60M)
IMAGERY_ARRAYS: dict[str, ImageryArray] = {a.name: a for a in (*S2_ARRAYS, S1, REFERENCE_MAP)}
ARRAY_OF_BAND: dict[str, ImageryArray] = {b: a for a in (*S2_ARRAYS, S1) for b in a.bands}

IMAGERY_STORE = "imagery.zarr"
PATCH_TABLE = "patches.parquet"
STORE_ATTRS_KEY = "bigearthnet_txt"  # group attribute holding bands, statistics, sources, settings

PATCH_SCHEMA = pa.schema(
    [
        ("patch_index", pa.int32()),
        ("patch_id", pa.string()),
        ("s1_name", pa.string()),
        ("split", pa.string()),  # text-release split (bench included) or metadata split
        ("labels", pa.list_(pa.string())),
        ("country", pa.string()),
        ("contains_seasonal_snow", pa.bool_()),
        ("contains_cloud_or_shadow", pa.bool_()),
        ("has_s1", pa.bool_()),  # False: no S1 pair; the s1 array is all NaN (examples: has_s1)
        ("crs", pa.string()),  # e.g. "EPSG:32633"
        ("transform", pa.list_(pa.float64(), 6)),  # affine a, b, c, d, e, f of the 10 m grid
        ("has_s2", pa.bool_()),  # False: the S2 arrays hold their fill value for this patch
        ("has_reference_map", pa.bool_()),  # False: no reference map stored for this patch
    ]
)

# Band presets for training tensors (channel order as listed). The four names of the official
# loader (``ben_txt_datamodule.py``: ``RGB``, ``S2-10m20m``, ``S1S2-10m20m``, ``all``) have exactly
# its channel order; ``*-10m-first`` are layouts of this package that put the 10 m bands first.
S2_10M20M_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)  # fmt: skip
S2_10M_FIRST_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12",
)  # fmt: skip
OFFICIAL_BAND_PRESETS: dict[str, tuple[str, ...]] = {
    "RGB": ("B04", "B03", "B02"),
    "S2-10m20m": S2_10M20M_BANDS,
    "S1S2-10m20m": (*S1_BANDS, *S2_10M20M_BANDS),
    "all": (*S1_BANDS, *S2_BANDS),
}
BAND_PRESETS: dict[str, tuple[str, ...]] = {
    **OFFICIAL_BAND_PRESETS,
    "S2-10m-first": S2_10M_FIRST_BANDS,
    "S1S2-10m-first": (*S1_BANDS, *S2_10M_FIRST_BANDS),
}

# The official loader's published per-band statistics (``means``/``stds`` of
# ``ben_txt_datamodule.py``, the same values as ConfigILM's ``BENv2_utils`` "120_nearest" table):
# BigEarthNet v2.0 train split after nearest upsampling to 120 x 120 (S1 values from v1).
OFFICIAL_BAND_STATS: dict[str, dict[str, float]] = {
    "B01": {"mean": 361.0767822265625, "std": 575.0687255859375},
    "B02": {"mean": 438.3720703125, "std": 607.02685546875},
    "B03": {"mean": 614.0556640625, "std": 603.2968139648438},
    "B04": {"mean": 588.4096069335938, "std": 684.56884765625},
    "B05": {"mean": 942.8433227539062, "std": 738.4326782226562},
    "B06": {"mean": 1769.931640625, "std": 1100.4560546875},
    "B07": {"mean": 2049.551513671875, "std": 1275.805419921875},
    "B08": {"mean": 2193.2919921875, "std": 1369.3717041015625},
    "B09": {"mean": 2241.455322265625, "std": 1316.393310546875},
    "B11": {"mean": 1568.226806640625, "std": 1070.1612548828125},
    "B12": {"mean": 997.7324829101562, "std": 813.5276489257812},
    "B8A": {"mean": 2235.556640625, "std": 1356.5440673828125},
    "VH": {"mean": -19.352558135986328, "std": 5.590505599975586},
    "VV": {"mean": -12.643863677978516, "std": 5.133493900299072},
}
