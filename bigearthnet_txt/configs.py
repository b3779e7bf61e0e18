"""Task configs of a converted data set: which Parquet files each ``load_dataset`` config
and split reads.

A converted folder ``DIR`` holds ``DIR/data/<task>/<split>-NNNNN.parquet`` (``TABLE_TASKS``); a
config of ``CONFIGS`` combines one or more tasks (``vqa`` = ``binary`` + ``mcq``,
``all`` = every task).

API::

    card_configs()                     # YAML ``configs:`` entries for the data set card (all globs)
    card_configs(DIR)                  # the same, keeping only globs that match files in DIR
    card_yaml(DIR)                     # "---\\nconfigs:\\n...---\\n", the card's front matter
    config_files(DIR, "vqa", "train")  # [Path, ...] sorted: binary shards, then mcq shards
    present_splits(DIR)                # {"binary": {"train", ...}, ...}

The data set card (``README.md``) embeds ``card_configs()`` so that
``datasets.load_dataset(DIR, CONFIG)`` and ``datasets.load_dataset("<namespace>/<name>", CONFIG)``
read the text tables without any code of ours.
"""

from __future__ import annotations

from pathlib import Path

from bigearthnet_txt.schema import (
    CONFIGS,
    DATA_DIR,
    DEFAULT_CONFIG,
    SPLITS,
    TABLE_TASKS,
    shard_glob,
)


def config_tables(config: str) -> tuple[str, ...]:
    """The table tasks a config reads, e.g. ``("binary", "mcq")`` for ``vqa``;
    ValueError if unknown."""
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {tuple(CONFIGS)}")
    return CONFIGS[config].tables


def present_splits(root: Path | str) -> dict[str, set[str]]:
    """``{task: {split, ...}}``: the splits that have at least one Parquet file under
    ``root/data/<task>``."""
    root = Path(root)
    return {
        task: {split for split in SPLITS if any(root.glob(shard_glob(task, split)))}
        for task in TABLE_TASKS
    }


def card_configs(root: Path | str | None = None) -> list[dict]:
    """The card's YAML ``configs:`` list, one entry per config of ``CONFIGS``::

        {"config_name": "vqa", "data_files": [{"split": "train",
          "path": ["data/binary/train-*.parquet", "data/mcq/train-*.parquet"]}, ...]}

    ``default: true`` marks ``DEFAULT_CONFIG``. With ``root``, globs matching no file are left out
    (and so are splits left with none), since ``datasets`` refuses a glob that matches nothing.
    """
    present = present_splits(root) if root is not None else None
    entries = []
    for name, config in CONFIGS.items():
        data_files = []
        for split in SPLITS:
            globs = [
                shard_glob(task, split)
                for task in config.tables
                if present is None or split in present[task]
            ]
            if globs:
                data_files.append({"split": split, "path": globs})
        entry: dict = {"config_name": name, "data_files": data_files}
        if name == DEFAULT_CONFIG:
            entry["default"] = True
        entries.append(entry)
    return entries


def card_yaml(root: Path | str | None = None) -> str:
    """The card's YAML front matter holding only ``configs:`` (``---`` lines included)."""
    import yaml

    body = yaml.safe_dump({"configs": card_configs(root)}, sort_keys=False)
    return f"---\n{body}---\n"


def config_files(root: Path | str, config: str, split: str) -> list[Path]:
    """Parquet files of one config and split, task by task in config order,
    each task's shards sorted."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    return [
        path
        for task in config_tables(config)
        for path in sorted(root.glob(shard_glob(task, split)))
    ]


def is_converted(root: Path | str) -> bool:
    """Whether ``root`` is a converted data set folder (it has ``root/data/<task>/``)."""
    root = Path(root)
    return any((root / DATA_DIR / task).is_dir() for task in TABLE_TASKS)
