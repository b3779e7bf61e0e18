"""What a converted data set folder holds: tables, patches, imagery store, conversion settings.

>>> print(format_info(describe("DIR")))  # doctest: +SKIP

``describe(DIR)["problems"]`` lists what makes the parts of the folder disagree
(:func:`check_consistency`); empty for a sound folder.

Sources: ``DIR/annotations.json`` (rows per task and split, patches per split, redundancy settings,
source file), the Parquet shards under ``DIR/data`` (counted from their footers when there is no
summary), ``DIR/patches.parquet`` and the attributes and array metadata of ``DIR/imagery.zarr``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.errors import DataNotFoundError
from bigearthnet_txt.schema import (
    ANNOTATION_SUMMARY,
    DATA_DIR,
    IMAGERY_STORE,
    PATCH_TABLE,
    SPLITS,
    TABLE_TASKS,
    shard_glob,
)


#: Store attributes ``info`` prints (``describe`` also keeps complete, settings and sources).
STORE_ATTRS_SHOWN = (
    "codecs",
    "chunk_patches",
    "shard_patches",
    "n_rows",
    "n_patches",
    "split_ranges",
    "stats_split",
    "format_version",
)


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _codec_text(codec: dict) -> str:
    name, config = codec["name"], codec.get("configuration") or {}
    if name == "sharding_indexed":
        return "sharding[" + ", ".join(_codec_text(c) for c in config.get("codecs", ())) + "]"
    if name == "blosc":
        return f"blosc({config.get('cname')}, {config.get('clevel')}, {config.get('shuffle')})"
    if name == "bytes":
        return "bytes"
    shown = ", ".join(f"{k}={v}" for k, v in config.items())
    return f"{name}({shown})" if shown else name


def describe_tables(root: Path) -> dict | None:
    """Rows per task and split, patches per split, files, bytes and settings of the tables."""
    if not (root / DATA_DIR).is_dir():
        return None
    files = sorted((root / DATA_DIR).rglob("*.parquet"))
    summary_path = root / ANNOTATION_SUMMARY
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        rows, patches = summary["rows"], summary.get("patches", {})
        settings, source = summary.get("settings", {}), summary.get("source", {})
    else:
        rows = {
            task: {
                split: sum(
                    pq.ParquetFile(p).metadata.num_rows for p in root.glob(shard_glob(task, split))
                )
                for split in SPLITS
            }
            for task in TABLE_TASKS
        }
        patches, settings, source = {}, {}, {}
    return {
        "rows": rows,
        "patches": patches,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "settings": settings,
        "source": source,
    }


def describe_store(root: Path) -> dict | None:
    """Arrays (shape, dtype, chunk and shard shape, codecs), size on disk, settings of the store."""
    from bigearthnet_txt.store import ImageryStore

    if not (root / IMAGERY_STORE).is_dir():
        return None
    out: dict = {"bytes": folder_bytes(root / IMAGERY_STORE)}
    store = ImageryStore(root)
    try:
        attrs = store.attrs
    except ValueError as err:
        return {**out, "complete": False, "error": str(err)}
    arrays = {}
    for name in store.arrays:
        z = store.group[name]
        meta = z.metadata.to_dict()
        arrays[name] = {
            "shape": list(z.shape),
            "dtype": str(z.dtype),
            "chunks": list(z.chunks),
            "shards": list(z.shards) if z.shards else None,
            "bands": list(store.band_names[name]),
            "codecs": " -> ".join(_codec_text(c) for c in meta.get("codecs", ())),
            "bytes": folder_bytes(root / IMAGERY_STORE / name),
        }
    keys = (*STORE_ATTRS_SHOWN, "complete", "settings", "sources")
    return {**out, "arrays": arrays, **{k: attrs[k] for k in keys if k in attrs}}


def describe_patches(root: Path) -> dict | None:
    """Patches per split and how many have S1, S2 and a reference map."""
    path = root / PATCH_TABLE
    if not path.is_file():
        return None
    table = pq.read_table(path)
    by_split = {s: int(pc.sum(pc.equal(table["split"], s)).as_py() or 0) for s in SPLITS}
    flags = {
        c: int(pc.sum(table[c]).as_py() or 0)
        for c in ("has_s1", "has_s2", "has_reference_map")
        if c in table.column_names
    }
    return {"count": table.num_rows, "by_split": by_split, **flags, "bytes": path.stat().st_size}


def check_consistency(root: Path, store: dict | None, patches: dict | None) -> list[str]:
    """Problems that make the parts of a converted folder disagree (empty when they agree): arrays
    with different patch counts, chunking or shard layouts, arrays that disagree with the store's
    attributes, a patch table whose length or ``patch_index`` values do not fit the store."""
    problems: list[str] = []
    arrays = (store or {}).get("arrays") or {}
    for key, what, expected in (
        ("shape", "patch count", store.get("n_rows") if store else None),
        ("chunks", "patches per chunk", store.get("chunk_patches") if store else None),
        ("shards", "patches per shard", store.get("shard_patches") if store else None),
    ):
        values = {name: (a[key] or [None])[0] for name, a in arrays.items()}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{name} {value}" for name, value in values.items())
            problems.append(f"{IMAGERY_STORE}: the arrays disagree on the {what} ({listed})")
        elif values and expected is not None and set(values.values()) != {expected}:
            problems.append(
                f"{IMAGERY_STORE}: the arrays have {next(iter(values.values()))} as {what}, "
                f"the store's attributes {expected}"
            )
    if patches and store and store.get("complete"):
        n_patches, n_rows = store.get("n_patches"), store.get("n_rows")
        if n_patches is not None and patches["count"] != n_patches:
            problems.append(
                f"{PATCH_TABLE}: {patches['count']} patches, the store's attributes {n_patches}"
            )
        index = pq.read_table(root / PATCH_TABLE, columns=["patch_index"])["patch_index"]
        if n_rows is not None and len(index) and pc.max(index).as_py() >= n_rows:
            problems.append(
                f"{PATCH_TABLE}: patch_index up to {pc.max(index).as_py()}, the store has "
                f"{n_rows} rows"
            )
        if pc.count_distinct(index).as_py() != len(index):
            problems.append(f"{PATCH_TABLE}: a patch_index occurs more than once")
    return problems


def describe(data_dir: Path | str) -> dict:
    """Everything :func:`format_info` prints, as a JSON-ready dict (absent parts are None)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: no such folder")
    info = {
        "path": str(root),
        "tables": describe_tables(root),
        "patches": describe_patches(root),
        "store": describe_store(root),
    }
    if not any(info[k] for k in ("tables", "patches", "store")):
        raise DataNotFoundError(
            f"{root}: not a converted data set (no {DATA_DIR}/, {PATCH_TABLE} or {IMAGERY_STORE})"
        )
    info["problems"] = check_consistency(root, info["store"], info["patches"])
    return info


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _split_table(title: str, rows: dict[str, dict[str, int]]) -> list[str]:
    lines = [f"{title:<12}" + "".join(f"{s:>12}" for s in SPLITS) + f"{'total':>12}"]
    for name, per_split in rows.items():
        values = [int(per_split.get(s, 0)) for s in SPLITS]
        lines.append(f"{name:<12}" + "".join(f"{v:>12,}" for v in values) + f"{sum(values):>12,}")
    return lines


def format_info(info: dict) -> str:
    """Plain-text report of :func:`describe`."""
    lines = [f"BigEarthNet.txt data set at {info['path']}", ""]
    if info.get("problems"):
        lines += ["PROBLEMS (the parts of this folder disagree; convert again into a new folder):"]
        lines += [f"  {p}" for p in info["problems"]] + [""]
    tables, patches, store = info["tables"], info["patches"], info["store"]
    if tables:
        counts = dict(tables["rows"])
        if tables["patches"]:
            counts["patches"] = tables["patches"]
        lines += [f"Annotation tables: {tables['files']} files, {_size(tables['bytes'])}"]
        lines += _split_table("rows", counts)
        if tables["settings"]:
            lines.append("redundancy: " + json.dumps(tables["settings"]))
        if tables["source"]:
            lines.append("source: " + json.dumps(tables["source"]))
        lines.append("")
    if patches:
        lines.append(
            f"Patch table: {patches['count']:,} patches ({_size(patches['bytes'])}); "
            + ", ".join(
                f"{k} {patches[k]:,}"
                for k in ("has_s2", "has_s1", "has_reference_map")
                if k in patches
            )
        )
        lines += _split_table("patches", {"patches": patches["by_split"]})
        lines.append("")
    if store:
        lines.append(f"Imagery store {IMAGERY_STORE}: {_size(store['bytes'])}")
        if not store.get("complete", False):
            lines.append(f"  incomplete: {store.get('error', 'conversion not finished')}")
        for name, a in store.get("arrays", {}).items():
            lines.append(
                f"  {name:<14} {a['dtype']:<8} shape {a['shape']} chunks {a['chunks']} "
                f"shards {a['shards']} {_size(a['bytes'])}"
            )
            lines.append(f"  {'':<14} bands {' '.join(a['bands']) or '-'}; codecs {a['codecs']}")
        for key in STORE_ATTRS_SHOWN:
            if key in store:
                lines.append(f"  {key}: {json.dumps(store[key])}")
        for key, value in (store.get("settings") or {}).items():
            lines.append(f"  setting {key}: {json.dumps(value)}")
    return "\n".join(lines).rstrip() + "\n"
