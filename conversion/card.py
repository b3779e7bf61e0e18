"""Write the data set card ``DIR/README.md`` of a converted folder.

``write_card(out_dir, repo_id=None)`` fills ``dataset_card/README.template.md`` with

* the YAML front matter: ``configs:`` (``bigearthnet_txt.configs.card_configs``: every task config
  and split with files), ``dataset_info`` features of the annotation tables, licence, task
  categories, tags, size category;
* statistics read from the data themselves: rows per config and split (Parquet footers), patches
  per split (``patches.parquet``, else ``annotations.json``);
* the band table (``schema.IMAGERY_ARRAYS``, with the store's per-band train mean/std when present);
* the loading snippets for ``repo_id`` (a placeholder when not yet known).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from bigearthnet_txt.configs import card_configs, config_files
from bigearthnet_txt.dataset_card import load_template
from bigearthnet_txt.schema import (
    ANNOTATION_SUMMARY,
    CONFIGS,
    IMAGERY_ARRAYS,
    IMAGERY_STORE,
    PATCH_TABLE,
    RELEASE_REPO_ID,
    S1_BANDS,
    S2_BANDS,
    SPLITS,
    STORE_ATTRS_KEY,
    TABLE_SCHEMA,
)

CARD_FILE = "README.md"
LICENSE = "cdla-permissive-1.0"
PLACEHOLDER_REPO_ID = "<namespace>/bigearthnet_txt"
TASK_CATEGORIES = (
    "visual-question-answering",
    "image-to-text",
    "object-detection",
    "zero-shot-classification",
)
TAGS = (
    "remote-sensing",
    "earth-observation",
    "sentinel-1",
    "sentinel-2",
    "bigearthnet",
    "land-cover",
    "zarr",
)


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
    ]
    return next((label for bound, label in bounds if n < bound), "n>1T")


def row_counts(out_dir: Path) -> dict[str, dict[str, int]]:
    """``{config: {split: rows}}`` from the Parquet footers of the files each config reads."""
    return {
        config: {
            split: sum(
                pq.ParquetFile(p).metadata.num_rows for p in config_files(out_dir, config, split)
            )
            for split in SPLITS
        }
        for config in CONFIGS
    }


def patch_counts(out_dir: Path) -> dict[str, dict[str, int]]:
    """``{split: {"patches": n, "s2": n, "s1": n, "reference_map": n}}`` from the patch table,
    or ``{split: {"patches": n}}`` from ``annotations.json`` when the folder has no imagery."""
    path = out_dir / PATCH_TABLE
    if path.is_file():
        table = pq.read_table(
            path, columns=["split", "has_s2", "has_s1", "has_reference_map"]
        ).to_pylist()
        counts = {s: {"patches": 0, "s2": 0, "s1": 0, "reference_map": 0} for s in SPLITS}
        for row in table:
            c = counts.setdefault(
                row["split"], {"patches": 0, "s2": 0, "s1": 0, "reference_map": 0}
            )
            c["patches"] += 1
            c["s2"] += bool(row["has_s2"])
            c["s1"] += bool(row["has_s1"])
            c["reference_map"] += bool(row["has_reference_map"])
        return counts
    summary = out_dir / ANNOTATION_SUMMARY
    patches = json.loads(summary.read_text())["patches"] if summary.is_file() else {}
    return {s: {"patches": patches.get(s, 0)} for s in SPLITS}


def store_attrs(out_dir: Path) -> dict:
    """The imagery store's ``STORE_ATTRS_KEY`` group attributes, or ``{}`` without a store."""
    path = out_dir / IMAGERY_STORE / "zarr.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("attributes", {}).get(STORE_ATTRS_KEY, {})


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def configs_table() -> str:
    rows = [
        [f"`{c.name}`", ", ".join(f"`data/{t}/`" for t in c.tables), c.description]
        for c in CONFIGS.values()
    ]
    return _table(["config", "reads", "content"], rows)


def rows_table(rows: dict[str, dict[str, int]]) -> str:
    body = [
        [f"`{config}`", *(per[s] for s in SPLITS), sum(per.values())]
        for config, per in rows.items()
    ]
    return _table(["config", *SPLITS, "total"], body)


def patches_table(patches: dict[str, dict[str, int]]) -> str:
    kinds = [
        k for k in ("patches", "s2", "s1", "reference_map") if all(k in c for c in patches.values())
    ]
    labels = {
        "patches": "patches",
        "s2": "with S2",
        "s1": "with S1",
        "reference_map": "with reference map",
    }
    body = [
        [labels[k], *(patches[s][k] for s in SPLITS), sum(patches[s][k] for s in SPLITS)]
        for k in kinds
    ]
    return _table(["", *SPLITS, "total"], body)


def band_table(attrs: dict) -> str:
    """One row per band of ``IMAGERY_ARRAYS`` (the reference map as one row), with mean/std of the
    train split when the store records them."""
    stats = attrs.get("stats") or {}
    present = set(attrs.get("arrays") or {})
    rows = []
    for array in IMAGERY_ARRAYS.values():
        shape = (
            f"[N, {len(array.bands)}, {array.size}, {array.size}]"
            if array.bands
            else f"[N, {array.size}, {array.size}]"
        )
        for band in array.bands or ("—",):
            s = stats.get(band) or {}
            mean = f"{s['mean']:.2f}" if "mean" in s else "—"
            std = f"{s['std']:.2f}" if "std" in s else "—"
            stored = "yes" if array.name in present else "no"
            rows.append(
                [
                    f"`{array.name}`",
                    band,
                    shape,
                    f"{array.resolution_m} m",
                    array.dtype,
                    array.units,
                    "—" if array.nodata is None else array.nodata,
                    mean,
                    std,
                    stored,
                ]
            )
    return _table(
        [
            "array",
            "band",
            "shape",
            "resolution",
            "dtype",
            "units",
            "nodata",
            "train mean",
            "train std",
            "in this store",
        ],
        rows,
    )


def front_matter(out_dir: Path, total_rows: int, pretty_name: str) -> str:
    """The card's YAML metadata (without the ``---`` lines)."""
    from datasets import DatasetInfo, Features
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        pretty_name=pretty_name,
        license=LICENSE,
        language=["en"],
        task_categories=list(TASK_CATEGORIES),
        tags=list(TAGS),
        size_categories=[_size_category(total_rows)],
        configs=card_configs(out_dir),
    )
    features = Features.from_arrow_schema(TABLE_SCHEMA)
    DatasetInfosDict(
        {name: DatasetInfo(features=features) for name in CONFIGS}
    ).to_dataset_card_data(data)
    return data.to_yaml().strip()


def render_card(out_dir: Path | str, repo_id: str | None = None) -> str:
    """The complete card of ``out_dir`` as a string (see the module docstring)."""
    out_dir = Path(out_dir)
    rows = row_counts(out_dir)
    attrs = store_attrs(out_dir)
    stats = attrs.get("stats") or {}
    stats_note = (
        " The mean/std columns are population statistics of the "
        f"`{attrs.get('stats_split', 'train')}` "
        "split (S2 no-data pixels and non-finite S1 values excluded)."
        if stats
        else ""
    )
    pretty_name = "BigEarthNet.txt with BigEarthNet v2.0 imagery"
    return load_template().substitute(
        front_matter=front_matter(out_dir, sum(rows["all"].values()), pretty_name),
        pretty_name="texts + Sentinel-1/2 imagery",
        configs_table=configs_table(),
        rows_table=rows_table(rows),
        patches_table=patches_table(patch_counts(out_dir)),
        patches_source=f"`{PATCH_TABLE}`"
        if (out_dir / PATCH_TABLE).is_file()
        else f"`{ANNOTATION_SUMMARY}`; this folder has no imagery",
        band_table=band_table(attrs),
        s2_band_order=" ".join(S2_BANDS),
        s1_band_order=" ".join(S1_BANDS),
        stats_note=stats_note,
        repo_id=repo_id or PLACEHOLDER_REPO_ID,
        release_repo_id=RELEASE_REPO_ID,
    )


def write_card(out_dir: Path | str, repo_id: str | None = None) -> Path:
    """Write ``out_dir/README.md`` (replacing an earlier one) and return its path."""
    out_dir = Path(out_dir)
    card = render_card(out_dir, repo_id)
    yaml.safe_load(card.split("---\n", 2)[1])  # the front matter must stay valid YAML
    path = out_dir / CARD_FILE
    tmp = path.with_name(CARD_FILE + ".tmp")
    tmp.write_text(card, encoding="utf-8")
    tmp.replace(path)
    return path
