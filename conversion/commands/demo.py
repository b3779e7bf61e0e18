"""``bigearthnet-txt demo``: the main job on the embedded real sample, end to end.

Writes annotation fixtures in the release's schema for the real sample patches shipped in
``conversion/samples/``, runs ``bigearthnet-txt convert`` on them and the sample imagery (v2,
pre-release flat and v1.0 folders), prints a few parsed rows per task, and loads a ``vqa``
example with its imagery through ``bigearthnet_txt.load_dataset``. By default the data set goes to
the data home (``$BIGEARTHNET_TXT_HOME``, else ``~/.cache/bigearthnet_txt``), where the bare name
``load_dataset("bigearthnet_txt", ...)`` finds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import positive_int


def register(sub) -> None:
    parser = sub.add_parser(
        "demo",
        help="convert the embedded real sample and load a vqa example from it",
        description="Convert the embedded real sample (annotation fixtures + real imagery), show "
        "parsed rows per task and load a vqa example with load_dataset.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: $BIGEARTHNET_TXT_HOME, else ~/.cache/bigearthnet_txt)",
    )
    parser.add_argument("--rows", type=positive_int, default=1, help="rows shown per task")
    parser.set_defaults(func=run)


SAMPLE_FILE = "BigEarthNet.txt.sample.parquet"


def check_out(out: Path) -> None:
    """Refuse a folder that holds a data set converted from anything but the embedded sample."""
    from bigearthnet_txt.conversion.annotations import read_summary

    summary = read_summary(out)
    if summary is not None and summary.get("source", {}).get("file") != SAMPLE_FILE:
        raise FileExistsError(
            f"{out} holds a data set converted from {summary['source'].get('file')}; "
            "the demo does not replace it: pass --out with another folder"
        )


def convert_sample(out: Path, quiet: bool = True) -> int:
    """Write the sample annotations and run ``bigearthnet-txt convert`` on the embedded sample."""
    from bigearthnet_txt.conversion.sample_data import METADATA_FILE
    from bigearthnet_txt.conversion.synthetic import write_sample

    from bigearthnet_txt.conversion.output_folder import OUTPUT_NAMES, claim_output_folder

    with claim_output_folder(out, "demo", names=(*OUTPUT_NAMES, "sources")):
        check_out(out)
        annotations = write_sample(out / "sources" / SAMPLE_FILE, METADATA_FILE)
        return _convert(out, annotations, quiet)


def _convert(out: Path, annotations: Path, quiet: bool) -> int:
    from bigearthnet_txt.conversion.cli import main
    from bigearthnet_txt.conversion.sample_data import SAMPLE_IMAGERY_SOURCES

    argv = [
        "convert",
        "--annotations",
        str(annotations),
        "--out",
        str(out),
        "--overwrite",
        "--allow-missing-s1",
    ]  # the real v2 S2 samples have no S1 pair on disk
    for flag, paths in SAMPLE_IMAGERY_SOURCES.items():
        for path in paths:
            argv += [f"--{flag}", str(path)]
    return main(argv + (["--quiet"] if quiet else []))


def show_rows(out: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    from bigearthnet_txt.schema import DATA_DIR, TABLE_TASKS

    shown = [
        "ID",
        "patch_id",
        "patch_index",
        "type",
        "category",
        "input",
        "output",
        "options",
        "answer_index",
        "answer_bool",
        "box",
        "point",
        "ref",
        "redundancy_weight",
    ]
    for task in TABLE_TASKS:
        files = sorted((out / DATA_DIR / task).glob("*.parquet"))
        print(f"\n== {task} ({files[0].relative_to(out)})")
        for row in pq.read_table(files[0]).slice(0, rows).to_pylist():
            print({k: row[k] for k in shown if row[k] is not None})


def show_vqa_example(out: Path) -> None:
    from bigearthnet_txt import load_dataset
    from bigearthnet_txt.paths import DEFAULT_NAME, data_home

    name = DEFAULT_NAME if out.resolve() == data_home().resolve() else str(out)
    example = load_dataset(name, "vqa", split="train")[0]
    print(f"\n== load_dataset({name!r}, 'vqa', split='train')[0]")
    print(f"{example['patch_id']} ({example['country']}, {example['season']})")
    print(f"Q: {example['input']}\nA: {example['output']}")
    for key, value in example.items():
        if hasattr(value, "dtype"):
            print(f"  {key}: {value.dtype} {list(value.shape)}")


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.paths import data_home

    out = args.out or data_home()
    code = convert_sample(out)
    if code:
        return code
    show_rows(out, args.rows)
    show_vqa_example(out)
    return 0
